//! The encrypted ring-buffer store of an rdc unit.
//!
//! Footage arrives as frames ([`Frame`]) through a per-camera [`SegmentWriter`], is encrypted
//! into standard age files (X25519 recipients, written with ring; the unit holds no key that
//! decrypts them), made durable every sync interval, cut into segments at keyframes, and
//! described by manifests the unit signs and chains per camera. The [`Store`] keeps retention
//! and holds, logs every deletion and access in signed hash-chained logs, recovers from power
//! cuts at open, and serves ciphertext from any offset for resumable transfers.

#![forbid(unsafe_code)]

pub mod agefmt;
pub mod chainlog;
pub mod clock;
mod index;
/// Segment manifests (defined in `rdc-format`, what both sides read).
pub mod manifest {
    pub use rdc_format::manifest::*;
}
mod preview;
pub mod retention;
pub mod signing;
mod store;
mod writer;

use std::path::{Path, PathBuf};

pub use clock::{Clocks, RealClocks, SimulatedClocks};
pub use manifest::{ClockState, Ended, Manifest, TimeSource};
pub use preview::{PREVIEWS_PER_SEGMENT, PreviewWriter};
pub use rdc_format::SegmentEntry;
pub use retention::Hold;
pub use signing::UnitKey;
pub use store::{
    AuditRecord, Budget, CameraStatus, Destruction, HoldRequest, OpenReport, Pushed,
    RetentionReport, RetiredKey, SegmentReader, SegmentWriter, Status, Store, StoreConfig,
    load_unit_key, retired_keys, rotate_key, sha256_hex,
};
pub use writer::{Cadence, Decision, Frame};

/// What can go wrong in the store. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the segment index failed ({0}); restart the recorder and the index is rebuilt from the logs"
    )]
    Index(String),
    #[error(transparent)]
    Key(#[from] signing::KeyError),
    #[error("{0}")]
    Crypto(&'static str),
    #[error("cannot encode a log entry: {0}")]
    Encode(String),
    #[error(
        "the store at {0} is in use by another process (the recorder is running?): stop it first (systemctl stop rdc-recorder), or ask the running unit with `rdc status`"
    )]
    Busy(PathBuf),
    #[error("no recipients: footage must be encrypted to at least one age public key")]
    NoRecipients,
    #[error("camera id {0:?} is not valid: {1}")]
    BadCamera(String, String),
    #[error("camera {0} already has a writer: one recorder per camera")]
    WriterBusy(String),
    #[error(
        "no segment {0}/{1}: it was never recorded or has been deleted (see the destruction log)"
    )]
    NoSuchSegment(String, u64),
    #[error("no active hold {0}: list holds to see their ids")]
    NoSuchHold(u64),
    #[error("hold refused: {0}")]
    HoldRefused(String),
    #[error(
        "the store was opened read-only (store status, list, verify): nothing on the unit is changed by these commands"
    )]
    ReadOnly,
    #[error(
        "the unit signing key {path} is missing, but the store at {root} holds entries signed by key {expected}. Restore the key from its backup; if it is lost for good, retire it deliberately with `rdc-recorder store rotate-key --reason \"...\"` (logged, and old entries stay verifiable)"
    )]
    KeyMissing {
        path: PathBuf,
        root: PathBuf,
        expected: String,
    },
    #[error(
        "the unit signing key {path} is key {found}, but the store at {root} was signed by key {expected}: this is another unit's key or a replaced one. Put the right key back, or change keys deliberately with `rdc-recorder store rotate-key --reason \"...\"` (logged)"
    )]
    KeyMismatch {
        path: PathBuf,
        root: PathBuf,
        expected: String,
        found: String,
    },
    #[error("no store at {0}: the recorder creates it when it first runs")]
    NoStore(PathBuf),
    #[error("{0}")]
    Refused(String),
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Entry points for the fuzz targets (`fuzz/`): the parsers of bytes a thief, a failing disk
/// or a tampering insider can hand the store. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes one tail record (what recovery reads after a power cut).
    pub fn tail_record(bytes: &[u8]) -> bool {
        crate::writer::decode_tail_for_fuzzing(bytes)
    }
}

#[cfg(test)]
mod tests;

/// Bytes of the files under `dir` (its folders walked, links not followed); what cannot be
/// read counts nothing.
pub fn bytes_under(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}
