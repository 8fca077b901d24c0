//! The uplink between a unit and the `rdc` tool: the `rdc/1` protocol over QUIC.
//!
//! Built so far: [`protocol`], the sans-IO framing, requests, justification checks and role
//! authorisation. The QUIC server and client (issue 4) are not built yet. Only this crate will
//! touch the network.

#![forbid(unsafe_code)]

pub mod client;
pub mod pki;
pub mod protocol;
pub mod server;
pub mod tls;

#[cfg(test)]
mod tests;
