//! What a unit writes and an officer, an auditor or a court reads: segment manifests, signed
//! hash-chained log entries and how to check them, the records in the unit's logs and answers,
//! times and file hashes. No I/O beyond reading a file to hash it, no database: the officer's
//! `rdc` and the exports build on this without the unit's store.

#![forbid(unsafe_code)]

pub mod chain;
pub mod export;
pub mod manifest;
pub mod records;
pub mod time;
pub mod ts;

pub use manifest::{ClockState, Ended, Manifest, TimeSource};
pub use records::{
    AuditRecord, CameraStatus, Destruction, Hold, HoldRequest, SegmentEntry, SegmentFile, Status,
};

/// Checks an Ed25519 signature by the unit whose public key is `public`.
pub fn verify_signature(public: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
        .verify(msg, sig)
        .is_ok()
}

/// SHA-256 of what is left to read, hex: the file hash the signed manifests carry and
/// `sha256sum` prints.
pub fn sha256_hex(f: &mut impl std::io::Read) -> std::io::Result<String> {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finish()));
        }
        h.update(&buf[..n]);
    }
}
