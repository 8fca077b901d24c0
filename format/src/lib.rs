//! What a unit writes and an officer, an auditor or a court reads: segment manifests, signed
//! hash-chained log entries and how to check them, the records in the unit's logs and answers,
//! times and file hashes. No I/O beyond reading a file to hash it, no database: the officer's
//! `rdc` and the exports build on this without the unit's store.

#![forbid(unsafe_code)]

pub mod chain;
pub mod export;
pub mod human;
pub mod manifest;
pub mod pieces;
pub mod records;
pub mod sar;
pub mod stick;
pub mod stills;
pub mod time;
pub mod track;
pub mod ts;

pub use manifest::{ClockState, Ended, Manifest, TimeSource};
pub use records::{
    Actor, AuditRecord, CameraStatus, Destruction, Hold, HoldRequest, Outcome, PreviewStatus,
    Purpose, Role, SegmentEntry, SegmentFile, Status,
};
pub use track::Track;

/// Bytes recorded in each `bucket_ns` of `[from_ns, to_ns)`, each segment's bytes spread
/// evenly over its span: how busy a camera's scene was, for a passthrough recorder whose
/// bitrate rises with motion.
pub fn activity(segments: &[SegmentEntry], from_ns: i64, to_ns: i64, bucket_ns: i64) -> Vec<u64> {
    if bucket_ns <= 0 || to_ns <= from_ns {
        return Vec::new();
    }
    let n = ((to_ns - from_ns) as u64).div_ceil(bucket_ns as u64) as usize;
    let mut out = vec![0f64; n];
    for e in segments {
        let (s, t) = (
            e.segment.start_ns,
            e.segment.end_ns.max(e.segment.start_ns + 1),
        );
        let per_ns = e.segment.bytes as f64 / (t - s) as f64;
        let (lo, hi) = (s.max(from_ns), t.min(to_ns));
        let mut at = lo;
        while at < hi {
            let i = ((at - from_ns) / bucket_ns) as usize;
            let end = (from_ns + (i as i64 + 1) * bucket_ns).min(hi);
            out[i] += per_ns * (end - at) as f64;
            at = end;
        }
    }
    out.into_iter().map(|b| b.round() as u64).collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u64, start_s: i64, end_s: i64, bytes: u64) -> SegmentEntry {
        SegmentEntry {
            segment: SegmentFile {
                camera: "c".into(),
                seq,
                file: String::new(),
                start_ns: start_s * 1_000_000_000,
                end_ns: end_s * 1_000_000_000,
                bytes,
                ciphertext_sha256: String::new(),
            },
            ended: Ended::Cut,
            clock_synced: true,
            frames: 1,
            running_start_ns: None,
        }
    }

    #[test]
    fn activity_spreads_each_segment_over_its_buckets() {
        const S: i64 = 1_000_000_000;
        // 0-20 s: 2000 bytes; 30-40 s: 500 bytes; buckets of 10 s over 0-50 s.
        let segs = [seg(0, 0, 20, 2000), seg(1, 30, 40, 500)];
        assert_eq!(activity(&segs, 0, 50 * S, 10 * S), [1000, 1000, 0, 500, 0]);
        // A range starting inside a segment counts only its part.
        assert_eq!(activity(&segs, 15 * S, 35 * S, 10 * S), [500, 250]);
        assert!(activity(&segs, 10, 5, S).is_empty());
    }
}
