//! The QUIC uplink between a unit and the `rdc` tool (issue 4; not built yet).
//!
//! Only this crate will touch the network.

#![forbid(unsafe_code)]
