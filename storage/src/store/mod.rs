//! The store: segment files, logs and index under one directory, and the operations on them.
//!
//! ```text
//! <root>/segments/<camera>/<seq>-<start_ns>.age      finished segments (standard age files)
//! <root>/segments/<camera>/<seq>-<start_ns>.partial  the segment being written
//! <root>/segments/<camera>/<seq>-<start_ns>.tail     its last sync's tentative final chunk
//! <root>/logs/manifests/<camera>.jsonl              signed, chained manifests, one a segment
//! <root>/logs/{audit,destruction,holds,stills,sars}.jsonl signed, chained logs
//! <root>/index/                                      sled: a cache, rebuilt from the logs
//! <root>/unit-public-key                            the key that verifies all signatures
//! ```
//!
//! Commit order (as Moonfire NVR's): a segment is written and fdatasync'ed, its manifest
//! appended and fdatasync'ed, then it is renamed into place and the directory fsync'ed, and
//! only then indexed. A deletion is logged (durably) before the unlink, the directory fsync'ed,
//! and only then dropped from the index. So the logs are always the truth and the index can be
//! rebuilt from them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{Seek as _, SeekFrom};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};

use crate::agefmt;
use crate::chainlog::{self, ChainLog};
use crate::clock::{Clocks, DAY_NS};
use crate::index::Index;
use crate::manifest::{ClockState, Ended, Manifest};
use crate::retention::{self, Hold, Why};
use crate::signing::UnitKey;
use crate::writer::{self, Frame, OpenSegment};
use crate::{Error, io_err};
pub use rdc_format::{
    AuditRecord, CameraStatus, Destruction, HoldRequest, SegmentEntry, SegmentFile, Status,
    sha256_hex,
};

pub use rdc_config::Budget;

/// What the store needs to know; [`StoreConfig::from_config`] takes it from the unit's file.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub root: PathBuf,
    pub unit_id: String,
    /// age X25519 recipients: every segment is encrypted to all of them.
    pub recipients: Vec<[u8; 32]>,
    pub retention_days: u32,
    pub budget: Budget,
    pub segment_ns: u64,
    pub sync_interval_ns: u64,
    /// sled's page cache. A unit has little memory.
    pub index_cache_bytes: u64,
    /// Held footage may use at most this share of the budget, so recording never stops.
    pub max_held_fraction: f64,
    /// The configured cameras: `verify` accounts for each (with every camera seen anywhere).
    pub cameras: Vec<String>,
    /// Each camera's preview track keeps a keyframe this often; `None`: no previews.
    pub preview_interval_ns: Option<u64>,
}

impl StoreConfig {
    /// A configuration with the defaults of `recorder.toml`: 31 days, a 1 GiB free-space
    /// reserve, 60 s segments, a sync a second.
    pub fn new(root: PathBuf, unit_id: &str, recipients: Vec<[u8; 32]>) -> Self {
        StoreConfig {
            root,
            unit_id: unit_id.to_owned(),
            recipients,
            retention_days: rdc_config::DEFAULT_RETENTION_DAYS,
            budget: Budget::ReserveFree(1 << 30),
            segment_ns: 60_000_000_000,
            sync_interval_ns: 1_000_000_000,
            index_cache_bytes: 2 << 20,
            max_held_fraction: 0.5,
            cameras: Vec::new(),
            preview_interval_ns: None,
        }
    }

    pub fn from_config(c: &rdc_config::Config) -> Self {
        StoreConfig {
            retention_days: c.storage.retention_days,
            budget: c.storage.budget,
            segment_ns: u64::from(c.storage.segment_secs) * 1_000_000_000,
            sync_interval_ns: c.storage.sync_interval.as_nanos() as u64,
            cameras: c.cameras.iter().map(|c| c.id.to_string()).collect(),
            preview_interval_ns: c.storage.preview_interval.map(|d| d.as_nanos() as u64),
            ..StoreConfig::new(
                c.storage.path.clone(),
                c.unit.id.as_str(),
                c.recipients.iter().map(|r| r.key).collect(),
            )
        }
    }
}

/// What opening the store found and repaired.
#[derive(Debug, Default)]
pub struct OpenReport {
    /// Segments that were being written when the unit lost power, now closed.
    pub recovered: Vec<Manifest>,
    /// Segments that had nothing durable yet (power lost before their first sync).
    pub discarded: Vec<String>,
    /// Why the index was rebuilt from the logs, if it was.
    pub index_rebuilt: Option<String>,
    /// Log entries the index had not yet applied (replayed).
    pub replayed: u64,
    /// Deletions that were logged but not finished (now finished).
    pub finished_deletions: u64,
    /// Indexed segments whose file is gone without a destruction record (also in `verify`).
    pub missing_files: Vec<String>,
    /// Segment files no manifest accounts for (kept, never deleted; also in `verify`).
    pub unaccounted_files: Vec<String>,
    /// Segments still being written (read-only opens leave them for the recorder to recover).
    pub open_segments: Vec<String>,
    /// How long each step of the open took: (step, seconds).
    pub timings: Vec<(&'static str, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum HoldEvent {
    Created {
        hold: Hold,
    },
    Released {
        id: u64,
        who: String,
        reason: String,
    },
    Lapsed {
        id: u64,
    },
}

/// What a retention run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub expired: u64,
    pub over_budget: u64,
    pub bytes_freed: u64,
    pub lapsed_holds: Vec<u64>,
}

/// A finished segment's ciphertext, for reading from any offset (resumable transfers).
#[derive(Debug)]
pub struct SegmentReader {
    file: File,
    pub entry: SegmentEntry,
}

impl SegmentReader {
    pub fn len(&self) -> u64 {
        self.entry.segment.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.entry.segment.bytes == 0
    }

    /// Reads at `offset`; returns 0 at the end.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    /// The file, positioned at `offset`.
    pub fn into_file_at(mut self, offset: u64) -> std::io::Result<File> {
        self.file.seek(SeekFrom::Start(offset))?;
        Ok(self.file)
    }
}

struct Logs {
    manifests: HashMap<String, ChainLog>,
    audit: ChainLog,
    destruction: ChainLog,
    holds: ChainLog,
    /// The stills register (001 §5.15): requests, approvals, productions, releases.
    stills: ChainLog,
    /// Subject access requests (002 §43): opened, extended, closed.
    sars: ChainLog,
}

struct Inner {
    cfg: StoreConfig,
    /// `None` when opened read-only.
    key: Option<Arc<UnitKey>>,
    /// The key that verifies the store's signatures, and the ones retired deliberately.
    public: [u8; 32],
    retired: Vec<[u8; 32]>,
    read_only: bool,
    /// Per camera, the next segment number: past every number seen anywhere.
    next_seq: Mutex<HashMap<String, u64>>,
    /// The running clock: its value at this open, and the monotonic time of the open.
    running_base: u64,
    mono_at_open: u64,
    clocks: Arc<dyn Clocks>,
    rng: SystemRandom,
    index: Index,
    logs: Mutex<Logs>,
    holds: Mutex<Vec<Hold>>,
    total_bytes: AtomicU64,
    writers: Mutex<HashSet<String>>,
    /// Holds the store's exclusive lock while open (none when read-only).
    _lock: Option<File>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.read_only {
            let running =
                self.running_base + self.clocks.mono_ns().saturating_sub(self.mono_at_open);
            if let Ok(json) = serde_json::to_vec(&RunningClock {
                running_ns: running,
            }) {
                let _ = replace_file(&self.cfg.root.join(RUNNING_CLOCK_FILE), &json);
            }
        }
    }
}

/// The encrypted ring buffer. Cheap to clone; share it between cameras and the uplink.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Damages the index entry of `camera`'s segment `seq` (see `Index::corrupt_for_test`).
    #[cfg(test)]
    pub(crate) fn corrupt_index_for_test(&self, camera: &str, seq: u64) {
        self.inner.index.corrupt_for_test(camera, seq);
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.cfg.root)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent on-disk state (every step is
    // ordered for crashes), so the data behind a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn fsync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Creates a directory (and its parents) readable by the daemon only, whatever the umask.
fn private_dir(p: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(io_err("create directory", p))
}

fn idx_err(e: sled::Error) -> Error {
    Error::Index(e.to_string())
}

/// Refuses a store name that is neither a camera id nor a camera's preview track: no name that
/// could reach a path (`../audit`, `a/b`, `.`) gets to the file system.
fn track_name(name: &str) -> Result<(), Error> {
    match rdc_format::track::parse_store_name(name) {
        Some(_) => Ok(()),
        None => Err(Error::BadCamera(
            name.to_owned(),
            rdc_config::IdError.to_string(),
        )),
    }
}

fn manifest_log_name(camera: &str) -> String {
    format!("manifests/{camera}.jsonl")
}

/// Parses `<seq>-<start_ns>.<ext>`.
fn parse_stem(name: &str) -> Option<(u64, i64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    let (seq, start) = stem.split_once('-')?;
    Some((seq.parse().ok()?, start.parse().ok()?, ext))
}

/// Space held back for the logs of a full disk (given up by [`Store::make_room`]).
const RESERVE_FILE: &str = "reserve";
const RESERVE_BYTES: u64 = 1 << 20;
/// The store's running clock, persisted: `{"running_ns": …}`.
const RUNNING_CLOCK_FILE: &str = "running-clock";
#[derive(Debug, Default, Serialize, Deserialize)]
struct RunningClock {
    running_ns: u64,
}

mod holds;
mod keys;
mod open;
mod readers;
mod recording;
mod retain;
mod segments;
mod verify;

use keys::{PUBLIC_KEY_FILE, lock_store, parse_key_hex, read_public_key, replace_file};
pub use keys::{RetiredKey, load_unit_key, retired_keys, rotate_key};
pub use recording::{Pushed, SegmentWriter};

impl Store {
    /// The store's running clock now: ns of its own life, restarts included, power-off time
    /// not counted. Retention measures ages with it when the wall clock cannot be trusted.
    pub fn running_ns(&self) -> u64 {
        self.inner.running_base
            + self
                .inner
                .clocks
                .mono_ns()
                .saturating_sub(self.inner.mono_at_open)
    }

    /// Persists the running clock (every retention run, and when the store closes). A crash
    /// loses at most the time since: ages are then under-estimated, never over.
    pub(super) fn save_running_clock(&self) -> Result<(), Error> {
        if self.inner.read_only {
            return Ok(());
        }
        let json = serde_json::to_vec(&RunningClock {
            running_ns: self.running_ns(),
        })
        .map_err(|e| Error::Encode(e.to_string()))?;
        replace_file(&self.inner.cfg.root.join(RUNNING_CLOCK_FILE), &json)
    }

    /// The key that verifies this store's entries.
    pub fn public_key(&self) -> [u8; 32] {
        self.inner.public
    }

    /// Keys retired deliberately; entries they signed still verify.
    pub fn retired_public_keys(&self) -> &[[u8; 32]] {
        &self.inner.retired
    }

    pub(super) fn keys(&self) -> Vec<[u8; 32]> {
        let mut k = vec![self.inner.public];
        k.extend_from_slice(&self.inner.retired);
        k
    }

    /// Whether this store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    pub(super) fn writable(&self) -> Result<(), Error> {
        if self.inner.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// The unit's public signing key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.inner.public)
    }

    pub fn now_ns(&self) -> i64 {
        self.inner.clocks.wall_ns()
    }

    pub(super) fn manifest_log_path(&self, camera: &str) -> PathBuf {
        self.inner
            .cfg
            .root
            .join("logs")
            .join(manifest_log_name(camera))
    }

    pub(super) fn segments_dir(&self, camera: &str) -> PathBuf {
        self.inner.cfg.root.join("segments").join(camera)
    }
}
