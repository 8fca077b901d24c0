//! The recorder daemon: cameras over RTSP into the encrypted store, under systemd.

#![deny(unsafe_code)]

pub mod tsmux;
