//! A segment's pieces: an age file is a header, then STREAM chunks of 64 KiB of plaintext. The
//! writer records where each frame is in them ([`FrameIndex`]) and hashes each piece
//! ([`leaves_digest`]), so a part of a segment can be served and proved against its manifest.

use serde::{Deserialize, Serialize};

/// Plaintext bytes in an age STREAM chunk.
pub const CHUNK: u64 = 64 * 1024;
/// Ciphertext bytes in a full chunk (plaintext and its Poly1305 tag).
pub const CHUNK_CT: u64 = CHUNK + 16;
/// Where a segment's frames are in its plaintext, recorded by the writer as it encrypts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameIndex {
    /// Each keyframe: the plaintext offset where its packets (tables first) start, and its
    /// time in ns after the segment's first frame (its decode time).
    pub keyframes: Vec<[u64; 2]>,
    /// For each chunk, the latest decode time (ms after the first frame, rounded down) of a
    /// frame that starts in it or before it.
    pub chunk_ms: Vec<u64>,
}

impl FrameIndex {
    /// Notes a frame starting at plaintext `offset`, `rel_ns` after the segment's first.
    pub fn note(&mut self, offset: u64, rel_ns: u64, keyframe: bool) {
        if keyframe {
            self.keyframes.push([offset, rel_ns]);
        }
        let c = (offset / CHUNK) as usize;
        let ms = rel_ns / 1_000_000;
        let prev = self.chunk_ms.last().copied().unwrap_or(0);
        while self.chunk_ms.len() <= c {
            self.chunk_ms.push(prev);
        }
        let last = self.chunk_ms.len() - 1;
        self.chunk_ms[last] = self.chunk_ms[last].max(ms);
    }

    /// Extends the per-chunk times to `chunks` chunks (chunks no frame starts in).
    pub fn finish(&mut self, chunks: u64) {
        let prev = self.chunk_ms.last().copied().unwrap_or(0);
        while (self.chunk_ms.len() as u64) < chunks {
            self.chunk_ms.push(prev);
        }
        self.chunk_ms.truncate(chunks as usize);
    }
}

/// Chunks in an age file of `plaintext_len` bytes (at least one, the final, possibly empty).
pub fn chunk_count(plaintext_len: u64) -> u64 {
    plaintext_len.div_ceil(CHUNK).max(1)
}

/// The SHA-256 that a manifest's `chunks_sha256` signs: over the SHA-256 of each piece of the
/// file, the header first, then each chunk's ciphertext.
pub fn leaves_digest(leaves: &[[u8; 32]]) -> String {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    for l in leaves {
        h.update(l);
    }
    hex::encode(h.finish())
}

/// SHA-256 of one piece.
pub fn leaf(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
