//! The recorder daemon: cameras over RTSP into the encrypted store, under systemd.
//!
//! [`ingest`] runs one RTSP session per camera (retina, video only); [`camera`] keeps each camera
//! recording through drops and stalls; [`tsmux`] turns access units into MPEG-TS; [`daemon`]
//! ties it to the store, retention and systemd.

#![deny(unsafe_code)]

pub mod camera;
pub mod cli;
pub mod clockstate;
pub mod commission;
pub mod daemon;
pub mod hooks;
pub mod ingest;
pub mod init;
pub mod logging;
pub mod lowat;
pub mod notify;
pub mod selftest;
pub mod stick;
pub mod timing;
pub mod tsmux;
pub mod tunnel;
