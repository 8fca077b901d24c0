//! The uplink between a unit and the `rdc` tool: the `rdc/1` protocol over QUIC.
//!
//! [`protocol`] is the sans-IO core: framing, typed requests and answers, justification checks
//! and role authorisation. [`server`] is the unit's side (served by `rdc-recorder run`),
//! [`client`] the officer's; [`tls`] builds their rustls/QUIC configurations, [`pki`] the
//! scheme's certificates, and [`strangers`] aggregates refused connections before they are
//! audited. Only this crate touches the network (besides the cameras' RTSP in the recorder).
//!
//! The server, which needs the unit's store, is the default feature `server`; the officer's
//! `rdc` uses this crate without it, so it links neither the store nor sled.

#![forbid(unsafe_code)]

mod cert;
pub mod client;
pub mod congestion;
pub mod limits;
pub mod pki;
pub mod protocol;
#[cfg(feature = "server")]
pub mod server;
pub mod stick;
pub mod stills;
pub mod strangers;
pub mod tls;
pub mod vpn;

#[cfg(all(test, feature = "server"))]
mod tests;
