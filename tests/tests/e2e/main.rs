//! End to end: the emulated camera over real RTSP on loopback, the recorder as a process, real
//! files, real age. Segments are checked as an officer would: decrypted with an independent age
//! implementation and probed with ffprobe/ffmpeg.

mod audit;
mod cli;
mod console;
mod export;
mod fetch;
mod field;
mod harness;
mod preview;
mod recording;
mod redact;
mod sar;
mod stick;
mod stills;
mod vpn;
