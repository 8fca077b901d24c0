//! End-to-end test support for rdc: the emulated 4G link. The tests are in `tests/e2e.rs`; the
//! emulated camera and the binaries under test are in `src/bin/`.

pub mod browser;
pub mod footage;
pub mod relay;
pub mod rig;
#[cfg(test)]
mod structure;
pub mod tunlink;
pub mod wgnet;
