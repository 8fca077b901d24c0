//! Signed, hash-chained log entries: the shape of every line of a unit's audit, destruction,
//! hold and manifest logs, how an entry's hash is computed and how its signature is checked.
//! The unit writes them (`rdc-storage`); officers, auditors and exports check them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

/// One entry as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub time_ns: i64,
    pub prev: String,
    pub body: serde_json::Value,
    pub hash: String,
    pub sig: String,
}

#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    time_ns: i64,
    body: &'a serde_json::Value,
}

/// The `prev` of a log's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `SHA-256(prev ‖ canonical JSON of {seq, time_ns, body})`, hex: what the unit signs.
pub fn entry_hash(prev: &str, seq: u64, time_ns: i64, body: &serde_json::Value) -> String {
    let mut buf = prev.as_bytes().to_vec();
    // serde_json writes maps in key order (no preserve_order feature): canonical.
    serde_json::to_writer(&mut buf, &Hashed { seq, time_ns, body })
        .expect("a Value always serialises");
    hex::encode(digest(&SHA256, &buf))
}

/// Checks one entry on its own: its hash matches its content and the unit signed it. (A
/// reader checks the chain by comparing each entry's `prev` with the previous entry's `hash`.)
pub fn verify_entry(e: &Entry, public: &[u8; 32]) -> Result<(), EntryError> {
    verify_entry_by(e, std::slice::from_ref(public))
}

/// As [`verify_entry`], accepting a signature by any of `keys` (the unit's key and the keys it
/// retired deliberately, `rdc-recorder store rotate-key`).
pub fn verify_entry_by(e: &Entry, keys: &[[u8; 32]]) -> Result<(), EntryError> {
    if entry_hash(&e.prev, e.seq, e.time_ns, &e.body) != e.hash {
        return Err(EntryError::Altered { seq: e.seq });
    }
    if !signed_by_any(e, keys) {
        return Err(EntryError::NotSigned { seq: e.seq });
    }
    Ok(())
}

/// Why an entry does not check out on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("entry {seq} was altered: its content does not match its hash")]
    Altered { seq: u64 },
    #[error("entry {seq} is not signed by this unit")]
    NotSigned { seq: u64 },
}

/// Whether the entry's signature is by one of `keys`.
pub fn signed_by_any(e: &Entry, keys: &[[u8; 32]]) -> bool {
    B64.decode(&e.sig).is_ok_and(|s| {
        keys.iter()
            .any(|k| crate::verify_signature(k, e.hash.as_bytes(), &s))
    })
}
