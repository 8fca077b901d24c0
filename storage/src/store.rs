//! The store: segment files, logs and index under one directory, and the operations on them.
//!
//! ```text
//! <root>/segments/<camera>/<seq>-<start_ns>.age      finished segments (standard age files)
//! <root>/segments/<camera>/<seq>-<start_ns>.partial  the segment being written
//! <root>/segments/<camera>/<seq>-<start_ns>.tail     its last sync's tentative final chunk
//! <root>/logs/manifests/<camera>.jsonl              signed, chained manifests, one a segment
//! <root>/logs/{audit,destruction,holds}.jsonl        signed, chained logs
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
use crate::index::{Index, SegmentEntry};
use crate::manifest::{ClockState, Ended, Manifest};
use crate::retention::{self, Candidate, Hold, Why};
use crate::signing::UnitKey;
use crate::writer::{self, Frame, OpenSegment, SegmentWriter};
use crate::{Error, io_err};

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
        }
    }

    pub fn from_config(c: &rdc_config::Config) -> Self {
        StoreConfig {
            retention_days: c.storage.retention_days,
            budget: c.storage.budget,
            segment_ns: u64::from(c.storage.segment_secs) * 1_000_000_000,
            sync_interval_ns: c.storage.sync_interval.as_nanos() as u64,
            cameras: c.cameras.iter().map(|c| c.id.to_string()).collect(),
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

/// Who asked for an access and why: every audit entry (R10).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub who: String,
    pub role: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `granted`, or `refused: <why>`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// For refused connections, aggregated: how many attempts this entry stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One destroyed segment (R7): what, when (the entry's time), how, on whose authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destruction {
    pub camera: String,
    pub seq: u64,
    pub file: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub bytes: u64,
    pub ciphertext_sha256: String,
    pub why: String,
    pub how: String,
    pub authority: String,
    /// For deletions by age: how the age was measured, and the clock state relied on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
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

/// A request to hold footage.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub cameras: Vec<String>,
    pub from_ns: i64,
    pub to_ns: i64,
    pub case_ref: String,
    pub reason: String,
    pub who: String,
    pub review_ns: i64,
}

/// What a retention run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub expired: u64,
    pub over_budget: u64,
    pub bytes_freed: u64,
    pub lapsed_holds: Vec<u64>,
}

/// The state of the store, for `status` and the engineer's check (R5, R16).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub segments: u64,
    pub total_bytes: u64,
    pub budget_bytes: u64,
    pub retention_days: u32,
    pub oldest_ns: Option<i64>,
    pub newest_ns: Option<i64>,
    /// Days the budget holds at the recent recording rate, held footage aside.
    pub capacity_days: Option<f64>,
    pub holds: usize,
    pub held_bytes: u64,
    pub cameras: Vec<CameraStatus>,
}

impl Status {
    /// Days of retention the unit really keeps: the configured days, or fewer if the disk
    /// cannot hold them.
    pub fn effective_retention_days(&self) -> f64 {
        self.capacity_days
            .map_or(f64::from(self.retention_days), |c| {
                c.min(f64::from(self.retention_days))
            })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CameraStatus {
    pub camera: String,
    pub segments: u64,
    pub bytes: u64,
    pub newest_end_ns: Option<i64>,
}

/// A finished segment's ciphertext, for reading from any offset (resumable transfers).
#[derive(Debug)]
pub struct SegmentReader {
    file: File,
    pub entry: SegmentEntry,
}

impl SegmentReader {
    pub fn len(&self) -> u64 {
        self.entry.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.entry.bytes == 0
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

fn manifest_log_name(camera: &str) -> String {
    format!("manifests/{camera}.jsonl")
}

/// Parses `<seq>-<start_ns>.<ext>`.
fn parse_stem(name: &str) -> Option<(u64, i64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    let (seq, start) = stem.split_once('-')?;
    Some((seq.parse().ok()?, start.parse().ok()?, ext))
}

/// The store's signing keys on disk: `unit-public-key` (the key its entries are signed with)
/// and `retired-keys` (keys retired deliberately, one JSON line each).
const PUBLIC_KEY_FILE: &str = "unit-public-key";
/// Space held back for the logs of a full disk (given up by [`Store::make_room`]).
const RESERVE_FILE: &str = "reserve";
const RESERVE_BYTES: u64 = 1 << 20;

/// The store's running clock, persisted: `{"running_ns": …}`.
const RUNNING_CLOCK_FILE: &str = "running-clock";

#[derive(Debug, Default, Serialize, Deserialize)]
struct RunningClock {
    running_ns: u64,
}
const RETIRED_KEYS_FILE: &str = "retired-keys";

/// A key retired by `rdc-recorder store rotate-key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetiredKey {
    pub public: String,
    pub retired_ns: i64,
    pub reason: String,
}

fn read_public_key(root: &Path) -> Result<Option<String>, Error> {
    let p = root.join(PUBLIC_KEY_FILE);
    match std::fs::read_to_string(&p) {
        Ok(t) => Ok(Some(t.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &p)(e)),
    }
}

fn parse_key_hex(h: &str) -> Option<[u8; 32]> {
    hex::decode(h).ok()?.try_into().ok()
}

/// The keys retired from this store (their entries stay verifiable).
pub fn retired_keys(root: &Path) -> Result<Vec<RetiredKey>, Error> {
    let p = root.join(RETIRED_KEYS_FILE);
    match std::fs::read(&p) {
        Ok(b) => Ok(b
            .split(|c| *c == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err("read", &p)(e)),
    }
}

/// Writes `data` to `path` through a new file renamed over it, synced: a crash leaves the old
/// file or the new one.
fn replace_file(path: &Path, data: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    std::io::Write::write_all(&mut f, data).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("rename", &tmp))?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Loads the unit's signing key for a store that will be written: created on a new store, and
/// refused (never silently replaced) when the store's entries were signed by another key or the
/// key file is gone.
pub fn load_unit_key(root: &Path, key_path: &Path) -> Result<UnitKey, Error> {
    let expected = read_public_key(root)?;
    if !key_path.exists() {
        if let Some(expected) = expected {
            return Err(Error::KeyMissing {
                path: key_path.to_owned(),
                root: root.to_owned(),
                expected,
            });
        }
        return Ok(UnitKey::load_or_create(key_path)?);
    }
    let key = UnitKey::load_or_create(key_path)?;
    match expected {
        Some(e) if e != key.public_hex() => Err(Error::KeyMismatch {
            path: key_path.to_owned(),
            root: root.to_owned(),
            expected: e,
            found: key.public_hex(),
        }),
        _ => Ok(key),
    }
}

/// Takes the store's exclusive lock, held as long as the returned file is open.
fn lock_store(root: &Path) -> Result<File, Error> {
    let lock_path = root.join("lock");
    let lock_file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_err("open", &lock_path))?;
    match rustix::fs::flock(
        &lock_file,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    ) {
        Ok(()) => Ok(lock_file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::Busy(root.to_owned())),
        Err(e) => Err(io_err("lock", &lock_path)(e.into())),
    }
}

/// Retires the store's signing key deliberately and starts a new one at `key_path` (the old
/// key file, if any, is kept beside it as `<key>.retired-<time>`). The old public key goes to
/// `retired-keys`, so everything it signed still verifies; the rotation itself is the first
/// entry the new key signs in the audit log. Run with the recorder stopped.
pub fn rotate_key(
    cfg: StoreConfig,
    key_path: &Path,
    reason: &str,
    clocks: Arc<dyn Clocks>,
) -> Result<(Option<String>, String), Error> {
    if reason.trim().is_empty() {
        return Err(Error::Refused(
            "a key rotation needs a reason (--reason): it is recorded in the audit log".into(),
        ));
    }
    let root = cfg.root.clone();
    if !root.join("logs").is_dir() {
        return Err(Error::NoStore(root));
    }
    // Hold the store's lock for the whole change.
    let lock_file = lock_store(&root)?;
    let now = clocks.wall_ns();
    let old = read_public_key(&root)?;
    if key_path.exists() {
        let aside = PathBuf::from(format!("{}.retired-{now}", key_path.display()));
        std::fs::rename(key_path, &aside).map_err(io_err("rename", key_path))?;
    }
    let new = UnitKey::load_or_create(key_path)?;
    if let Some(old) = &old {
        let line = serde_json::to_string(&RetiredKey {
            public: old.clone(),
            retired_ns: now,
            reason: reason.to_owned(),
        })
        .map_err(|e| Error::Encode(e.to_string()))?;
        let p = root.join(RETIRED_KEYS_FILE);
        let mut f = File::options()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&p)
            .map_err(io_err("open", &p))?;
        std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes())
            .map_err(io_err("append to", &p))?;
        f.sync_all().map_err(io_err("fsync", &p))?;
    }
    replace_file(
        &root.join(PUBLIC_KEY_FILE),
        format!("{}\n", new.public_hex()).as_bytes(),
    )?;
    drop(lock_file);
    let (store, _) = Store::open(cfg, Arc::new(new), clocks)?;
    store.audit(&AuditRecord {
        who: "unit".into(),
        role: "system".into(),
        action: "signing_key_rotated".into(),
        reason: Some(reason.to_owned()),
        outcome: "done".into(),
        detail: Some(format!(
            "retired key {}; new key {}",
            old.as_deref().unwrap_or("(none)"),
            store.public_hex()
        )),
        ..Default::default()
    })?;
    Ok((old, store.public_hex()))
}

impl Store {
    /// Opens (creating) the store: recovers segments cut off by a power loss, finishes
    /// interrupted deletions, brings the index up to date (or rebuilds it), and reconciles the
    /// index with the files on disk. Refuses a key other than the one the store was signed with.
    pub fn open(
        cfg: StoreConfig,
        key: Arc<UnitKey>,
        clocks: Arc<dyn Clocks>,
    ) -> Result<(Store, OpenReport), Error> {
        if cfg.recipients.is_empty() {
            return Err(Error::NoRecipients);
        }
        let root = cfg.root.clone();
        for d in ["segments", "logs/manifests"] {
            let p = root.join(d);
            private_dir(&p)?;
        }
        // One process writes at a time: the daemon, or a key rotation, never both.
        let lock_file = lock_store(&root)?;
        match read_public_key(&root)? {
            None => replace_file(
                &root.join(PUBLIC_KEY_FILE),
                format!("{}\n", key.public_hex()).as_bytes(),
            )?,
            Some(e) if e != key.public_hex() => {
                return Err(Error::KeyMismatch {
                    path: PathBuf::from("(the key given)"),
                    root: root.clone(),
                    expected: e,
                    found: key.public_hex(),
                });
            }
            Some(_) => {}
        }
        Self::open_with(cfg, Some(key), clocks, Some(lock_file))
    }

    /// Opens the store only to look at it (`store status|list|verify`): nothing is created,
    /// renamed, recovered, cut or deleted, no key is needed, and a running recorder is not
    /// disturbed. The index is rebuilt in memory from the logs.
    pub fn open_read_only(
        cfg: StoreConfig,
        clocks: Arc<dyn Clocks>,
    ) -> Result<(Store, OpenReport), Error> {
        if !cfg.root.join("logs").is_dir() {
            return Err(Error::NoStore(cfg.root.clone()));
        }
        Self::open_with(cfg, None, clocks, None)
    }

    fn open_with(
        cfg: StoreConfig,
        key: Option<Arc<UnitKey>>,
        clocks: Arc<dyn Clocks>,
        lock_file: Option<File>,
    ) -> Result<(Store, OpenReport), Error> {
        let read_only = key.is_none();
        let mut t = std::time::Instant::now();
        let root = cfg.root.clone();
        let public = match (&key, read_public_key(&root)?) {
            (Some(k), _) => k.public(),
            (None, Some(h)) => parse_key_hex(&h).unwrap_or([0; 32]),
            (None, None) => [0; 32],
        };
        let retired = retired_keys(&root)?
            .iter()
            .filter_map(|k| parse_key_hex(&k.public))
            .collect();
        let open_log = |p: &Path| match &key {
            Some(k) => ChainLog::open(p, k.clone()),
            None => ChainLog::open_read_only(p),
        };
        let logs_dir = root.join("logs");
        let mut manifests = HashMap::new();
        let mdir = logs_dir.join("manifests");
        for ent in std::fs::read_dir(&mdir).map_err(io_err("list", &mdir))? {
            let ent = ent.map_err(io_err("list", &mdir))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if let Some(cam) = name.strip_suffix(".jsonl")
                && rdc_config::Id::parse(cam).is_ok()
            {
                manifests.insert(cam.to_owned(), open_log(&ent.path())?);
            }
        }
        let logs = Logs {
            manifests,
            audit: open_log(&logs_dir.join("audit.jsonl"))?,
            destruction: open_log(&logs_dir.join("destruction.jsonl"))?,
            holds: open_log(&logs_dir.join("holds.jsonl"))?,
        };
        let mut holds: Vec<Hold> = Vec::new();
        for (_, ev) in chainlog::read_all::<HoldEvent>(logs.holds.path())? {
            match ev {
                HoldEvent::Created { hold } => holds.push(hold),
                HoldEvent::Released { id, .. } | HoldEvent::Lapsed { id } => {
                    holds.retain(|h| h.id != id)
                }
            }
        }
        let running_base = std::fs::read(root.join(RUNNING_CLOCK_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<RunningClock>(&b).ok())
            .map_or(0, |r| r.running_ns);
        let mono_at_open = clocks.mono_ns();
        let index_path = root.join("index");
        let mut report = OpenReport::default();
        let mut lap = |report: &mut OpenReport, step| {
            report.timings.push((step, t.elapsed().as_secs_f64()));
            t = std::time::Instant::now();
        };
        lap(&mut report, "logs");
        let index = if read_only {
            Index::open_temporary(cfg.index_cache_bytes).map_err(idx_err)?
        } else {
            match Index::open(&index_path, cfg.index_cache_bytes) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(path = %index_path.display(), error = %e, "the index cannot be opened; rebuilding it from the logs");
                    report.index_rebuilt = Some(format!("it could not be opened: {e}"));
                    std::fs::remove_dir_all(&index_path).map_err(io_err("remove", &index_path))?;
                    Index::open(&index_path, cfg.index_cache_bytes).map_err(idx_err)?
                }
            }
        };
        lap(&mut report, "index open");
        let store = Store {
            inner: Arc::new(Inner {
                cfg,
                key,
                public,
                retired,
                read_only,
                next_seq: Mutex::new(HashMap::new()),
                running_base,
                mono_at_open,
                clocks,
                rng: SystemRandom::new(),
                index,
                logs: Mutex::new(logs),
                holds: Mutex::new(holds),
                total_bytes: AtomicU64::new(0),
                writers: Mutex::new(HashSet::new()),
                _lock: lock_file,
            }),
        };
        // Segment numbers are never reused: the floor is past every number the logs, the index
        // (before any rebuild) and the files on disk have seen.
        store.seq_floors()?;
        lap(&mut report, "sequence floors");
        // The index must have caught up with the logs before recovery commits new segments:
        // a commit marks the whole manifest log as applied.
        store.sync_index(&mut report)?;
        lap(&mut report, "index catch-up");
        if read_only {
            store.list_partials(&mut report)?;
        } else {
            store.recover_partials(&mut report)?;
        }
        lap(&mut report, "recovery");
        let total = store.reconcile_files(&mut report)?;
        store.inner.total_bytes.store(total, Ordering::SeqCst);
        lap(&mut report, "reconcile");
        store.inner.index.flush().map_err(idx_err)?;
        store.put_reserve();
        lap(&mut report, "flush");
        Ok((store, report))
    }

    /// Computes each camera's next segment number: past the newest manifest, the index's
    /// newest entry, recent deletions, and every segment file on disk (finished, partial, tail).
    fn seq_floors(&self) -> Result<(), Error> {
        let mut floors: HashMap<String, u64> = HashMap::new();
        let mut bump = |cam: &str, seq: u64| {
            let f = floors.entry(cam.to_owned()).or_default();
            *f = (*f).max(seq + 1);
        };
        {
            let logs = lock(&self.inner.logs);
            for (cam, log) in &logs.manifests {
                if let Some(s) = log.last_body_seq() {
                    bump(cam, s);
                }
            }
            for d in read_tail::<Destruction>(logs.destruction.path(), 1 << 20)? {
                bump(&d.camera, d.seq);
            }
        }
        for cam in self.inner.index.cameras().map_err(idx_err)? {
            if let Some(s) = self.inner.index.last_seq(&cam).map_err(idx_err)? {
                bump(&cam, s);
            }
        }
        let seg_root = self.inner.cfg.root.join("segments");
        for cam in std::fs::read_dir(&seg_root).map_err(io_err("list", &seg_root))? {
            let cam = cam.map_err(io_err("list", &seg_root))?;
            let camera = cam.file_name().to_string_lossy().into_owned();
            let Ok(rd) = std::fs::read_dir(cam.path()) else {
                continue;
            };
            for f in rd.flatten() {
                if let Some((seq, _, _)) = parse_stem(&f.file_name().to_string_lossy()) {
                    bump(&camera, seq);
                }
            }
        }
        *lock(&self.inner.next_seq) = floors;
        Ok(())
    }

    /// Read-only: the segments a power cut left open, left for the recorder to recover.
    fn list_partials(&self, report: &mut OpenReport) -> Result<(), Error> {
        let seg_root = self.inner.cfg.root.join("segments");
        for cam in std::fs::read_dir(&seg_root).map_err(io_err("list", &seg_root))? {
            let cam = cam.map_err(io_err("list", &seg_root))?;
            let camera = cam.file_name().to_string_lossy().into_owned();
            if let Ok(rd) = std::fs::read_dir(cam.path()) {
                for f in rd.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if name.ends_with(".partial") {
                        report.open_segments.push(format!("{camera}/{name}"));
                    }
                }
            }
        }
        Ok(())
    }

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
    fn save_running_clock(&self) -> Result<(), Error> {
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

    fn keys(&self) -> Vec<[u8; 32]> {
        let mut k = vec![self.inner.public];
        k.extend_from_slice(&self.inner.retired);
        k
    }

    /// Whether this store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    fn writable(&self) -> Result<(), Error> {
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

    fn manifest_log_path(&self, camera: &str) -> PathBuf {
        self.inner
            .cfg
            .root
            .join("logs")
            .join(manifest_log_name(camera))
    }

    fn segments_dir(&self, camera: &str) -> PathBuf {
        self.inner.cfg.root.join("segments").join(camera)
    }

    /// Closes every segment that a power cut left open, at its last durable sync.
    fn recover_partials(&self, report: &mut OpenReport) -> Result<(), Error> {
        let seg_root = self.inner.cfg.root.join("segments");
        for cam in std::fs::read_dir(&seg_root).map_err(io_err("list", &seg_root))? {
            let cam = cam.map_err(io_err("list", &seg_root))?;
            let camera = cam.file_name().to_string_lossy().into_owned();
            let dir = cam.path();
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .map_err(io_err("list", &dir))?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|n| n.ends_with(".partial") || n.ends_with(".tail"))
                .collect();
            names.sort();
            for name in &names {
                let Some((seq, _start, ext)) = parse_stem(name) else {
                    continue;
                };
                let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
                match ext {
                    "partial" => self.recover_one(&camera, &dir, stem, seq, report)?,
                    "tail" if !names.contains(&format!("{stem}.partial")) => {
                        // The segment was committed but its tail not yet removed.
                        let p = dir.join(name);
                        std::fs::remove_file(&p).map_err(io_err("remove", &p))?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn recover_one(
        &self,
        camera: &str,
        dir: &Path,
        stem: &str,
        seq: u64,
        report: &mut OpenReport,
    ) -> Result<(), Error> {
        if self.finish_committed(camera, dir, stem, seq)? {
            return Ok(());
        }
        match self.close_from_tail(camera, dir, stem, seq, Ended::PowerLoss)? {
            Some(m) => {
                tracing::warn!(camera, stem, frames = m.frames, end = %crate::clock::rfc3339(m.end_ns), "recovered a segment ended by power loss");
                report.recovered.push(m);
                Ok(())
            }
            None => {
                let partial = dir.join(format!("{stem}.partial"));
                let mut f = File::open(&partial).map_err(io_err("open", &partial))?;
                self.discard_unsynced(camera, dir, stem, seq, &mut f, report)
            }
        }
    }

    /// A `.partial` whose manifest is already durable needs only its rename. Returns whether
    /// that was the case.
    fn finish_committed(
        &self,
        camera: &str,
        dir: &Path,
        stem: &str,
        seq: u64,
    ) -> Result<bool, Error> {
        let committed = {
            let logs = lock(&self.inner.logs);
            logs.manifests
                .get(camera)
                .and_then(|l| l.last_body_seq())
                .is_some_and(|last| seq <= last)
        };
        if committed {
            tracing::info!(
                camera,
                stem,
                "finishing the commit of a segment interrupted after its manifest"
            );
            let partial = dir.join(format!("{stem}.partial"));
            let fin = dir.join(format!("{stem}.age"));
            std::fs::rename(&partial, &fin).map_err(io_err("rename", &partial))?;
            let _ = std::fs::remove_file(dir.join(format!("{stem}.tail")));
            fsync_dir(dir)?;
        }
        Ok(committed)
    }

    /// Closes a segment at its last durable sync, without the file key: the main file is cut
    /// to the newest valid tail record's length and the record's sealed final chunk appended,
    /// then the segment is committed as `ended`. `None` when no sync ever completed.
    fn close_from_tail(
        &self,
        camera: &str,
        dir: &Path,
        stem: &str,
        seq: u64,
        ended: Ended,
    ) -> Result<Option<Manifest>, Error> {
        let partial = dir.join(format!("{stem}.partial"));
        let tail = dir.join(format!("{stem}.tail"));
        let mut f = File::options()
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(io_err("open", &partial))?;
        let len = f.metadata().map_err(io_err("stat", &partial))?.len();
        let Some((meta, chunk)) = writer::best_tail(&tail, len)? else {
            return Ok(None);
        };
        f.set_len(meta.main_len)
            .map_err(io_err("truncate", &partial))?;
        f.write_all_at(&chunk, meta.main_len)
            .map_err(io_err("write", &partial))?;
        f.sync_all().map_err(io_err("fsync", &partial))?;
        f.seek(SeekFrom::Start(0))
            .map_err(io_err("seek", &partial))?;
        let digest = sha256_hex(&mut f).map_err(io_err("read", &partial))?;
        let m = Manifest {
            unit: self.inner.cfg.unit_id.clone(),
            camera: camera.to_owned(),
            seq,
            file: format!("{stem}.age"),
            start_ns: meta.start_wall,
            end_ns: meta.last_wall,
            start_mono_ns: meta.start_mono,
            end_mono_ns: meta.last_mono,
            clock: meta.clock,
            clock_synced_throughout: meta.synced_throughout,
            wall_steps: meta.wall_steps,
            frames: meta.frames,
            keyframes: meta.keyframes,
            plaintext_len: meta.plaintext_len,
            ciphertext_len: meta.main_len + chunk.len() as u64,
            ciphertext_sha256: digest,
            ended,
            running_start_ns: meta.running_start,
        };
        self.commit_segment(dir, stem, &m)?;
        Ok(Some(m))
    }

    /// A segment whose writing failed (a full or failing disk): closed at its last durable
    /// sync with `cause`; if nothing of it was durable, its files are removed (nothing in them
    /// was ever acknowledged) and the gap is recorded when recording resumes.
    pub(crate) fn close_failed(
        &self,
        camera: &str,
        dir: &Path,
        stem: &str,
        seq: u64,
        cause: &str,
    ) -> Result<Option<Manifest>, Error> {
        if self.finish_committed(camera, dir, stem, seq)? {
            return Ok(None);
        }
        let ended = Ended::Stopped {
            cause: cause.to_owned(),
        };
        if let Some(m) = self.close_from_tail(camera, dir, stem, seq, ended)? {
            return Ok(Some(m));
        }
        for ext in ["partial", "tail"] {
            let p = dir.join(format!("{stem}.{ext}"));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &p)(e)),
            }
        }
        fsync_dir(dir)?;
        Ok(None)
    }

    /// Records in `camera`'s signed manifest log that nothing was recorded from `start_ns` to
    /// `end_ns`, and why (a full or failing disk), when recording resumes.
    pub(crate) fn record_gap(
        &self,
        camera: &str,
        start_ns: i64,
        end_ns: i64,
        cause: &str,
    ) -> Result<Manifest, Error> {
        self.writable()?;
        let mut logs = lock(&self.inner.logs);
        let log_next = self.manifest_log(&mut logs, camera)?.next_seq();
        let seq = {
            let mut floors = lock(&self.inner.next_seq);
            let floor = floors.entry(camera.to_owned()).or_default();
            let seq = log_next.max(*floor);
            *floor = seq + 1;
            seq
        };
        let m = Manifest {
            unit: self.inner.cfg.unit_id.clone(),
            camera: camera.to_owned(),
            seq,
            file: format!("{seq:010}-{start_ns}.age"),
            start_ns,
            end_ns,
            start_mono_ns: 0,
            end_mono_ns: 0,
            clock: ClockState::UNKNOWN,
            clock_synced_throughout: false,
            wall_steps: 0,
            frames: 0,
            keyframes: 0,
            plaintext_len: 0,
            ciphertext_len: 0,
            ciphertext_sha256: String::new(),
            ended: Ended::Lost {
                cause: cause.to_owned(),
            },
            running_start_ns: None,
        };
        let log = self.manifest_log(&mut logs, camera)?;
        log.append(end_ns, &m)?;
        let pos = log.len();
        self.inner
            .index
            .set_position(&manifest_log_name(camera), pos)
            .map_err(idx_err)?;
        Ok(m)
    }

    /// A segment the power cut before its first sync: no readable file can be made of it (its
    /// final chunk needs the file key, which is gone). What it held is accounted for: the
    /// destruction log records the discarded bytes and why, then the file goes, then a signed
    /// manifest records the segment as lost, so the gap is in the camera's signed record.
    fn discard_unsynced(
        &self,
        camera: &str,
        dir: &Path,
        stem: &str,
        seq: u64,
        f: &mut File,
        report: &mut OpenReport,
    ) -> Result<(), Error> {
        let partial = dir.join(format!("{stem}.partial"));
        let tail = dir.join(format!("{stem}.tail"));
        let bytes = f.metadata().map_err(io_err("stat", &partial))?.len();
        f.seek(SeekFrom::Start(0))
            .map_err(io_err("seek", &partial))?;
        let digest = sha256_hex(f).map_err(io_err("read", &partial))?;
        let start_ns = parse_stem(&format!("{stem}.partial")).map_or(0, |(_, s, _)| s);
        let cause = "the power failed before the segment's first sync: nothing in it was durable, so no readable file could be made (its final chunk needs the file key, which the unit never keeps)";
        tracing::warn!(camera, stem, bytes, "{cause}; discarded and logged");
        let d = Destruction {
            camera: camera.to_owned(),
            seq,
            file: format!("{stem}.partial"),
            start_ns,
            end_ns: start_ns,
            bytes,
            ciphertext_sha256: digest,
            why: cause.into(),
            how: "file unlinked at recovery; it was encrypted and the unit holds no key to it"
                .into(),
            authority: format!("recovery at store open on unit {}", self.inner.cfg.unit_id),
            clock: None,
        };
        let now = self.now_ns();
        lock(&self.inner.logs).destruction.append(now, &d)?;
        std::fs::remove_file(&partial).map_err(io_err("remove", &partial))?;
        let _ = std::fs::remove_file(&tail);
        fsync_dir(dir)?;
        let m = Manifest {
            unit: self.inner.cfg.unit_id.clone(),
            camera: camera.to_owned(),
            seq,
            file: format!("{stem}.age"),
            start_ns,
            end_ns: start_ns,
            start_mono_ns: 0,
            end_mono_ns: 0,
            clock: ClockState::UNKNOWN,
            clock_synced_throughout: false,
            wall_steps: 0,
            frames: 0,
            keyframes: 0,
            plaintext_len: 0,
            ciphertext_len: 0,
            ciphertext_sha256: String::new(),
            ended: Ended::Lost {
                cause: cause.into(),
            },
            running_start_ns: None,
        };
        {
            let mut logs = lock(&self.inner.logs);
            let log = self.manifest_log(&mut logs, camera)?;
            log.append(start_ns, &m)?;
            let pos = log.len();
            self.inner
                .index
                .set_position(&manifest_log_name(camera), pos)
                .map_err(idx_err)?;
            self.inner
                .index
                .set_position("destruction.jsonl", logs.destruction.len())
                .map_err(idx_err)?;
        }
        report.discarded.push(format!("{camera}/{stem}"));
        Ok(())
    }

    /// Applies what the logs say and the index has not seen; rebuilds the index if it is out
    /// of step with the logs.
    fn sync_index(&self, report: &mut OpenReport) -> Result<(), Error> {
        let idx = &self.inner.index;
        let logs = lock(&self.inner.logs);
        let mut lens: BTreeMap<String, u64> = logs
            .manifests
            .iter()
            .map(|(c, l)| (manifest_log_name(c), l.len()))
            .collect();
        lens.insert("destruction.jsonl".into(), logs.destruction.len());
        let pos = match idx.positions() {
            Ok(p) => p,
            Err(e) => {
                report
                    .index_rebuilt
                    .get_or_insert(format!("its positions are unreadable: {e}"));
                BTreeMap::new()
            }
        };
        let ahead = pos
            .iter()
            .find(|(k, v)| lens.get(*k).is_none_or(|l| *v > l));
        if let Some((k, _)) = ahead {
            report.index_rebuilt.get_or_insert(format!(
                "it is ahead of {k} (the log was truncated or replaced)"
            ));
        }
        let start = if report.index_rebuilt.is_some() {
            tracing::warn!(
                reason = report.index_rebuilt.as_deref().unwrap_or(""),
                "rebuilding the index from the logs"
            );
            idx.clear().map_err(idx_err)?;
            BTreeMap::new()
        } else {
            pos
        };
        // Manifests first, then deletions: a destroyed segment's manifest always precedes it.
        for (cam, log) in &logs.manifests {
            let name = manifest_log_name(cam);
            let from = start.get(&name).copied().unwrap_or(0);
            if from < log.len() {
                for m in read_from::<Manifest>(log.path(), from)? {
                    if !matches!(m.ended, Ended::Lost { .. }) {
                        idx.insert(&SegmentEntry::from(&m)).map_err(idx_err)?;
                    }
                    report.replayed += 1;
                }
                idx.set_position(&name, log.len()).map_err(idx_err)?;
            }
        }
        let from = start.get("destruction.jsonl").copied().unwrap_or(0);
        if from < logs.destruction.len() {
            for d in read_from::<Destruction>(logs.destruction.path(), from)? {
                idx.remove(&d.camera, d.seq).map_err(idx_err)?;
                report.replayed += 1;
            }
            idx.set_position("destruction.jsonl", logs.destruction.len())
                .map_err(idx_err)?;
        }
        Ok(())
    }

    /// Files on disk against the index: finish logged deletions, report the rest. Returns the
    /// bytes of footage indexed. One camera at a time, merge-joining its sorted file names with
    /// its index entries (file names sort in sequence order), so memory stays small.
    fn reconcile_files(&self, report: &mut OpenReport) -> Result<u64, Error> {
        let seg_root = self.inner.cfg.root.join("segments");
        let mut cams: Vec<String> = std::fs::read_dir(&seg_root)
            .map_err(io_err("list", &seg_root))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        for c in self.cameras()? {
            if !cams.contains(&c) {
                cams.push(c);
            }
        }
        let mut total = 0u64;
        let mut missing = Vec::new();
        let mut strays = Vec::new();
        for camera in cams {
            let dir = self.segments_dir(&camera);
            let mut names: Vec<String> = match std::fs::read_dir(&dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                    .filter(|n| n.ends_with(".age"))
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(io_err("list", &dir)(e)),
            };
            names.sort_unstable();
            let mut names = names.into_iter().peekable();
            for e in self.inner.index.by_seq(&camera) {
                let e = e.map_err(idx_err)?;
                while names
                    .next_if(|n| *n < e.file)
                    .map(|n| strays.push((camera.clone(), n)))
                    .is_some()
                {}
                if names.next_if(|n| *n == e.file).is_some() {
                    total += e.bytes;
                } else {
                    missing.push(e);
                }
            }
            strays.extend(names.map(|n| (camera.clone(), n)));
        }
        for e in missing {
            tracing::error!(camera = %e.camera, seq = e.seq, file = %e.file, "segment file missing, and no destruction is logged for it: run verify");
            report
                .missing_files
                .push(format!("{}/{}", e.camera, e.file));
            self.inner.index.remove(&e.camera, e.seq).map_err(idx_err)?;
        }
        if self.inner.read_only {
            report
                .unaccounted_files
                .extend(strays.into_iter().map(|(c, f)| format!("{c}/{f}")));
            return Ok(total);
        }
        if !strays.is_empty() {
            let destroyed: HashSet<(String, String)> =
                chainlog::read_all::<Destruction>(lock(&self.inner.logs).destruction.path())?
                    .into_iter()
                    .map(|(_, d)| (d.camera, d.file))
                    .collect();
            for (camera, file) in strays {
                let p = self.segments_dir(&camera).join(&file);
                if destroyed.contains(&(camera.clone(), file.clone())) {
                    std::fs::remove_file(&p).map_err(io_err("remove", &p))?;
                    fsync_dir(&self.segments_dir(&camera))?;
                    report.finished_deletions += 1;
                } else {
                    tracing::error!(path = %p.display(), "segment file without a manifest: kept, but not listed; run verify");
                    report.unaccounted_files.push(format!("{camera}/{file}"));
                }
            }
        }
        Ok(total)
    }

    /// The writer for one camera. Only one may exist per camera at a time.
    pub fn writer(&self, camera: &str) -> Result<SegmentWriter, Error> {
        rdc_config::Id::parse(camera).map_err(|m| Error::BadCamera(camera.to_owned(), m))?;
        if !lock(&self.inner.writers).insert(camera.to_owned()) {
            return Err(Error::WriterBusy(camera.to_owned()));
        }
        Ok(SegmentWriter {
            store: self.clone(),
            camera: camera.to_owned(),
            open: None,
            clock: ClockState::UNKNOWN,
            dropped_before_keyframe: 0,
            orphan: None,
            gap: None,
        })
    }

    pub(crate) fn release_writer(&self, camera: &str) {
        lock(&self.inner.writers).remove(camera);
    }

    pub(crate) fn begin_segment(
        &self,
        camera: &str,
        f: &Frame<'_>,
        clock: ClockState,
    ) -> Result<OpenSegment, Error> {
        self.writable()?;
        let dir = self.segments_dir(camera);
        private_dir(&dir)?;
        let seq = {
            let mut logs = lock(&self.inner.logs);
            let log_next = self.manifest_log(&mut logs, camera).map(|l| l.next_seq())?;
            let mut floors = lock(&self.inner.next_seq);
            let floor = floors.entry(camera.to_owned()).or_default();
            let seq = log_next.max(*floor);
            *floor = seq + 1;
            seq
        };
        let stem = format!("{seq:010}-{}", f.wall_ns);
        let new = agefmt::new_file(&self.inner.cfg.recipients, &self.inner.rng)
            .map_err(|e| Error::Crypto(e.0))?;
        let mut seg = OpenSegment::create(&dir, seq, stem, &new.prefix, new.payload, f, clock)?;
        seg.running_start = Some(self.running_ns());
        if let Err(e) = fsync_dir(&dir) {
            for ext in ["partial", "tail"] {
                let _ = std::fs::remove_file(dir.join(format!("{}.{ext}", seg.stem)));
            }
            return Err(e);
        }
        Ok(seg)
    }

    fn manifest_log<'a>(
        &self,
        logs: &'a mut Logs,
        camera: &str,
    ) -> Result<&'a mut ChainLog, Error> {
        if !logs.manifests.contains_key(camera) {
            let key = self.inner.key.clone().ok_or(Error::ReadOnly)?;
            let p = self.manifest_log_path(camera);
            logs.manifests
                .insert(camera.to_owned(), ChainLog::open(&p, key)?);
        }
        Ok(logs.manifests.get_mut(camera).expect("inserted above"))
    }

    /// Makes a written segment part of the store: manifest, rename, index.
    pub(crate) fn commit_segment(&self, dir: &Path, stem: &str, m: &Manifest) -> Result<(), Error> {
        let partial = dir.join(format!("{stem}.partial"));
        let fin = dir.join(&m.file);
        {
            let mut logs = lock(&self.inner.logs);
            let log = self.manifest_log(&mut logs, &m.camera)?;
            log.append(m.end_ns, m)?;
            std::fs::rename(&partial, &fin).map_err(io_err("rename", &partial))?;
            fsync_dir(dir)?;
            let pos = log.len();
            let idx = &self.inner.index;
            idx.insert(&SegmentEntry::from(m)).map_err(idx_err)?;
            idx.set_position(&manifest_log_name(&m.camera), pos)
                .map_err(idx_err)?;
        }
        let _ = std::fs::remove_file(dir.join(format!("{stem}.tail")));
        self.inner
            .total_bytes
            .fetch_add(m.ciphertext_len, Ordering::SeqCst);
        tracing::debug!(camera = %m.camera, seq = m.seq, bytes = m.ciphertext_len, "segment committed");
        Ok(())
    }

    // ---- readers ----------------------------------------------------------------------------

    /// Cameras the store has a manifest log for: every camera it has ever recorded, whether or
    /// not footage of it is left.
    pub fn known_cameras(&self) -> Result<Vec<String>, Error> {
        let mut v: Vec<String> = lock(&self.inner.logs).manifests.keys().cloned().collect();
        v.sort();
        Ok(v)
    }

    /// Cameras with footage in the store.
    pub fn cameras(&self) -> Result<Vec<String>, Error> {
        self.inner.index.cameras().map_err(idx_err)
    }

    /// Finished segments of `camera` overlapping `[from_ns, to_ns)`, by start time.
    pub fn list(&self, camera: &str, from_ns: i64, to_ns: i64) -> Result<Vec<SegmentEntry>, Error> {
        self.inner
            .index
            .range(camera, from_ns, to_ns)
            .map_err(idx_err)
    }

    pub fn segment(&self, camera: &str, seq: u64) -> Result<SegmentEntry, Error> {
        rdc_config::Id::parse(camera).map_err(|m| Error::BadCamera(camera.to_owned(), m))?;
        self.inner
            .index
            .get(camera, seq)
            .map_err(idx_err)?
            .ok_or_else(|| Error::NoSuchSegment(camera.to_owned(), seq))
    }

    /// Opens a finished segment's ciphertext for reading from any offset.
    pub fn open_segment(&self, camera: &str, seq: u64) -> Result<SegmentReader, Error> {
        let entry = self.segment(camera, seq)?;
        let p = self.segments_dir(camera).join(&entry.file);
        let file = File::open(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NoSuchSegment(camera.to_owned(), seq)
            } else {
                io_err("open", &p)(e)
            }
        })?;
        Ok(SegmentReader { file, entry })
    }

    /// The path of a finished segment (for local export and tests).
    pub fn segment_path(&self, camera: &str, seq: u64) -> Result<PathBuf, Error> {
        Ok(self
            .segments_dir(camera)
            .join(self.segment(camera, seq)?.file))
    }

    /// Signed manifest entries of `camera` with `from_seq <= seq < to_seq`, in order.
    pub fn manifests(
        &self,
        camera: &str,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<chainlog::Entry>, Error> {
        rdc_config::Id::parse(camera).map_err(|m| Error::BadCamera(camera.to_owned(), m))?;
        let p = self.manifest_log_path(camera);
        Ok(chainlog::read_all::<serde_json::Value>(&p)?
            .into_iter()
            .map(|(e, _)| e)
            .filter(|e| {
                e.body["seq"]
                    .as_u64()
                    .is_some_and(|s| (from_seq..to_seq).contains(&s))
            })
            .collect())
    }

    /// The audit log's entries from `from_seq` on.
    pub fn audit_entries(
        &self,
        from_seq: u64,
    ) -> Result<Vec<(chainlog::Entry, AuditRecord)>, Error> {
        let p = lock(&self.inner.logs).audit.path().to_owned();
        Ok(chainlog::read_all::<AuditRecord>(&p)?
            .into_iter()
            .filter(|(e, _)| e.seq >= from_seq)
            .collect())
    }

    /// The destruction log.
    pub fn destructions(&self) -> Result<Vec<(chainlog::Entry, Destruction)>, Error> {
        let p = lock(&self.inner.logs).destruction.path().to_owned();
        chainlog::read_all::<Destruction>(&p)
    }

    // ---- audit ------------------------------------------------------------------------------

    /// Records an access, durably, before the caller acts on it (R10).
    pub fn audit(&self, rec: &AuditRecord) -> Result<u64, Error> {
        let now = self.now_ns();
        lock(&self.inner.logs).audit.append(now, rec)
    }

    // ---- holds ------------------------------------------------------------------------------

    /// Active holds (lapsing those past their review date first).
    pub fn holds(&self) -> Result<Vec<Hold>, Error> {
        self.lapse_holds()?;
        Ok(lock(&self.inner.holds).clone())
    }

    fn lapse_holds(&self) -> Result<Vec<u64>, Error> {
        if self.inner.read_only {
            // Looked at, not changed: lapsed holds are left for the recorder to log.
            let now = self.now_ns();
            lock(&self.inner.holds).retain(|h| h.review_ns > now);
            return Ok(Vec::new());
        }
        let now = self.now_ns();
        let lapsed: Vec<Hold> = lock(&self.inner.holds)
            .iter()
            .filter(|h| h.review_ns <= now)
            .cloned()
            .collect();
        for h in &lapsed {
            tracing::warn!(hold = h.id, case = %h.case_ref, "hold lapsed: its review date passed without renewal; its footage now follows normal retention");
            let mut logs = lock(&self.inner.logs);
            logs.holds.append(now, &HoldEvent::Lapsed { id: h.id })?;
            logs.audit.append(
                now,
                &AuditRecord {
                    who: "unit".into(),
                    role: "system".into(),
                    action: "hold_lapsed".into(),
                    case_ref: Some(h.case_ref.clone()),
                    outcome: "done".into(),
                    detail: Some(format!(
                        "hold {} passed its review date {}",
                        h.id,
                        crate::clock::rfc3339(h.review_ns)
                    )),
                    ..Default::default()
                },
            )?;
            drop(logs);
            lock(&self.inner.holds).retain(|x| x.id != h.id);
        }
        Ok(lapsed.iter().map(|h| h.id).collect())
    }

    fn held_bytes(&self, holds: &[Hold]) -> Result<u64, Error> {
        let now = self.now_ns();
        let mut seen = HashSet::new();
        let mut total = 0;
        for h in holds {
            let cams = if h.cameras.is_empty() {
                self.cameras()?
            } else {
                h.cameras.clone()
            };
            for c in cams {
                for e in self.list(&c, h.from_ns, h.to_ns)? {
                    if h.covers(&e.camera, e.start_ns, e.end_ns, now)
                        && seen.insert((e.camera.clone(), e.seq))
                    {
                        total += e.bytes;
                    }
                }
            }
        }
        Ok(total)
    }

    /// Holds footage past retention (R6). Refused without a case reference and reason, with a
    /// review date in the past or more than a year ahead, or when held footage would take more
    /// than its share of the budget (recording must never stop).
    pub fn create_hold(&self, req: HoldRequest) -> Result<Hold, Error> {
        let now = self.now_ns();
        let refuse = |m: String| Err(Error::HoldRefused(m));
        if req.case_ref.trim().is_empty()
            || req.reason.trim().is_empty()
            || req.who.trim().is_empty()
        {
            return refuse("a hold needs a case reference, a reason and who asked for it".into());
        }
        if req.from_ns >= req.to_ns {
            return refuse("the time range is empty: 'from' must be before 'to'".into());
        }
        if req.review_ns <= now || req.review_ns > now + 366 * DAY_NS {
            return refuse("the review date must be in the future and at most a year ahead (holds are reviewed at least yearly)".into());
        }
        let mut all = self.holds()?;
        let id = chainlog::read_all::<HoldEvent>(lock(&self.inner.logs).holds.path())?
            .iter()
            .filter_map(|(_, e)| {
                if let HoldEvent::Created { hold } = e {
                    Some(hold.id)
                } else {
                    None
                }
            })
            .max()
            .map_or(1, |m| m + 1);
        let hold = Hold {
            id,
            cameras: req.cameras,
            from_ns: req.from_ns,
            to_ns: req.to_ns,
            case_ref: req.case_ref,
            reason: req.reason,
            who: req.who,
            review_ns: req.review_ns,
            created_ns: now,
        };
        all.push(hold.clone());
        let held = self.held_bytes(&all)?;
        let cap = (self.budget_bytes()? as f64 * self.inner.cfg.max_held_fraction) as u64;
        if held > cap {
            return refuse(format!(
                "held footage would be {held} bytes, over the cap of {cap} bytes ({:.0} % of the budget) that keeps recording going: narrow the hold or release another",
                self.inner.cfg.max_held_fraction * 100.0
            ));
        }
        let mut logs = lock(&self.inner.logs);
        logs.holds
            .append(now, &HoldEvent::Created { hold: hold.clone() })?;
        logs.audit.append(
            now,
            &AuditRecord {
                who: hold.who.clone(),
                role: "manager".into(),
                action: "hold_created".into(),
                from_ns: Some(hold.from_ns),
                to_ns: Some(hold.to_ns),
                case_ref: Some(hold.case_ref.clone()),
                reason: Some(hold.reason.clone()),
                outcome: "granted".into(),
                detail: Some(format!(
                    "hold {} on {}",
                    hold.id,
                    if hold.cameras.is_empty() {
                        "all cameras".into()
                    } else {
                        hold.cameras.join(", ")
                    }
                )),
                ..Default::default()
            },
        )?;
        drop(logs);
        lock(&self.inner.holds).push(hold.clone());
        Ok(hold)
    }

    /// Releases a hold; its footage then follows normal retention.
    pub fn release_hold(&self, id: u64, who: &str, reason: &str) -> Result<Hold, Error> {
        let hold = lock(&self.inner.holds)
            .iter()
            .find(|h| h.id == id)
            .cloned()
            .ok_or(Error::NoSuchHold(id))?;
        let now = self.now_ns();
        let mut logs = lock(&self.inner.logs);
        logs.holds.append(
            now,
            &HoldEvent::Released {
                id,
                who: who.into(),
                reason: reason.into(),
            },
        )?;
        logs.audit.append(
            now,
            &AuditRecord {
                who: who.into(),
                role: "manager".into(),
                action: "hold_released".into(),
                case_ref: Some(hold.case_ref.clone()),
                reason: Some(reason.into()),
                outcome: "granted".into(),
                detail: Some(format!("hold {id}")),
                ..Default::default()
            },
        )?;
        drop(logs);
        lock(&self.inner.holds).retain(|h| h.id != id);
        Ok(hold)
    }

    // ---- retention --------------------------------------------------------------------------

    /// The file system's size and the bytes available to the store now.
    fn disk(&self) -> Result<(u64, u64), Error> {
        let root = &self.inner.cfg.root;
        let st = rustix::fs::statvfs(root).map_err(|e| io_err("statvfs", root)(e.into()))?;
        Ok((
            st.f_blocks.saturating_mul(st.f_frsize),
            st.f_bavail.saturating_mul(st.f_frsize),
        ))
    }

    /// Space kept free on the file system whatever the budget says: a twentieth of it, between
    /// 2 MiB and 256 MiB (a minute of four 4 Mbit/s cameras, for retention to catch up).
    fn headroom(size: u64) -> u64 {
        (size / 20).clamp(2 << 20, 256 << 20)
    }

    /// The byte budget now: fixed, or what the file system can give while keeping its reserve;
    /// either way never more than the disk really has (less a headroom), so the store deletes
    /// its oldest footage before the disk fills rather than after.
    pub fn budget_bytes(&self) -> Result<u64, Error> {
        let (size, avail) = self.disk()?;
        let total = self.inner.total_bytes.load(Ordering::SeqCst);
        let reserve = match self.inner.cfg.budget {
            Budget::MaxBytes(_) => Self::headroom(size),
            Budget::ReserveFree(r) => r.max(Self::headroom(size)),
        };
        let disk = (total + avail).saturating_sub(reserve);
        Ok(match self.inner.cfg.budget {
            Budget::MaxBytes(b) => b.min(disk),
            Budget::ReserveFree(_) => disk,
        })
    }

    /// Called before a segment starts: if the file system is down to its headroom (something
    /// else filled it, or footage arrived faster than retention ran), deletes the oldest unheld
    /// footage now. Cheap when there is room (one `statvfs`).
    pub fn ensure_room(&self) -> Result<u64, Error> {
        let (size, avail) = self.disk()?;
        if avail >= Self::headroom(size) {
            return Ok(0);
        }
        self.make_room()
    }

    /// Deletes the oldest unheld footage (each deletion logged) until the file system has its
    /// headroom free again. The reserve file is given up first, so that the destruction log
    /// can be appended even on a full disk, and put back after. Returns the bytes freed.
    pub fn make_room(&self) -> Result<u64, Error> {
        self.writable()?;
        let reserve = self.inner.cfg.root.join(RESERVE_FILE);
        let _ = std::fs::remove_file(&reserve);
        let holds = lock(&self.inner.holds).clone();
        let now = self.now_ns();
        let mut freed = 0;
        let cams = self.cameras()?;
        let victims: Vec<Candidate> = {
            let idx = &self.inner.index;
            let iters: Vec<_> = cams
                .iter()
                .map(|c| idx.oldest_first(c).peekable())
                .collect();
            MergeOldest { iters, err: None }
                .filter(|c| !retention::held(&holds, c, now))
                .take(10_000)
                .collect()
        };
        for c in victims {
            let (size, avail) = self.disk()?;
            if avail >= Self::headroom(size) + RESERVE_BYTES {
                break;
            }
            self.destroy(
                &c.camera,
                c.seq,
                "the disk was nearly full: the oldest footage not held was deleted so recording could go on",
                &format!(
                    "free space on the disk of unit {} (storage budget)",
                    self.inner.cfg.unit_id
                ),
            )?;
            freed += c.bytes;
        }
        if freed > 0 {
            tracing::warn!(
                bytes = freed,
                "the disk was nearly full: deleted the oldest footage"
            );
        }
        self.put_reserve();
        Ok(freed)
    }

    /// Keeps [`RESERVE_BYTES`] allocated, to give up when the disk is full.
    fn put_reserve(&self) {
        if self.inner.read_only {
            return;
        }
        let p = self.inner.cfg.root.join(RESERVE_FILE);
        if std::fs::metadata(&p).is_ok_and(|m| m.len() == RESERVE_BYTES) {
            return;
        }
        let r = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&p)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, &vec![0u8; RESERVE_BYTES as usize])?;
                f.sync_all()
            });
        if r.is_err() {
            let _ = std::fs::remove_file(&p);
        }
    }

    /// Deletes what retention and the budget require (R5), logging each deletion (R7). Call it
    /// at least every minute.
    pub fn enforce_retention(&self) -> Result<RetentionReport, Error> {
        self.writable()?;
        let lapsed_holds = self.lapse_holds()?;
        let holds = lock(&self.inner.holds).clone();
        let now = self.now_ns();
        let clock_now = retention::Now {
            wall_ns: now,
            wall_synced: self.inner.clocks.clock_state().synchronized,
            running_ns: self.running_ns(),
        };
        self.save_running_clock()?;
        let budget = self.budget_bytes()?;
        let days = self.inner.cfg.retention_days;
        let total = self.inner.total_bytes.load(Ordering::SeqCst);
        let cams = self.cameras()?;
        let plan = {
            let idx = &self.inner.index;
            let iters: Vec<_> = cams
                .iter()
                .map(|c| idx.oldest_first(c).peekable())
                .collect();
            let merged = MergeOldest { iters, err: None };
            retention::plan(merged, &holds, &clock_now, days, total, budget)
        };
        let mut report = RetentionReport {
            lapsed_holds,
            ..Default::default()
        };
        for (c, why) in plan {
            let (age_ns, basis) = retention::age(&c, &clock_now);
            let (why_s, authority) = match why {
                Why::Expired => (
                    format!("older than the retention period of {days} days"),
                    format!(
                        "retention policy of unit {} (storage.retention_days = {days})",
                        self.inner.cfg.unit_id
                    ),
                ),
                Why::OverBudget => (
                    format!(
                        "the store was over its budget of {budget} bytes; oldest footage first"
                    ),
                    format!("storage budget of unit {}", self.inner.cfg.unit_id),
                ),
            };
            let clock = matches!(why, Why::Expired).then(|| basis.describe(age_ns, &clock_now));
            self.destroy_with(&c.camera, c.seq, &why_s, &authority, clock)?;
            report.bytes_freed += c.bytes;
            match why {
                Why::Expired => report.expired += 1,
                Why::OverBudget => report.over_budget += 1,
            }
        }
        if report.expired + report.over_budget > 0 {
            tracing::info!(
                expired = report.expired,
                over_budget = report.over_budget,
                bytes = report.bytes_freed,
                "retention deleted footage"
            );
        }
        Ok(report)
    }

    /// Destroys one segment: logged, unlinked, directory synced, dropped from the index.
    pub fn destroy(
        &self,
        camera: &str,
        seq: u64,
        why: &str,
        authority: &str,
    ) -> Result<Destruction, Error> {
        self.destroy_with(camera, seq, why, authority, None)
    }

    fn destroy_with(
        &self,
        camera: &str,
        seq: u64,
        why: &str,
        authority: &str,
        clock: Option<String>,
    ) -> Result<Destruction, Error> {
        let e = self.segment(camera, seq)?;
        let d = Destruction {
            camera: e.camera.clone(),
            seq,
            file: e.file.clone(),
            start_ns: e.start_ns,
            end_ns: e.end_ns,
            bytes: e.bytes,
            ciphertext_sha256: e.ciphertext_sha256.clone(),
            why: why.to_owned(),
            how: "file unlinked; it was encrypted and the unit holds no key to it".into(),
            authority: authority.to_owned(),
            clock,
        };
        let now = self.now_ns();
        let dir = self.segments_dir(camera);
        let mut logs = lock(&self.inner.logs);
        logs.destruction.append(now, &d)?;
        let p = dir.join(&e.file);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err("remove", &p)(err)),
        }
        fsync_dir(&dir)?;
        self.inner.index.remove(camera, seq).map_err(idx_err)?;
        self.inner
            .index
            .set_position("destruction.jsonl", logs.destruction.len())
            .map_err(idx_err)?;
        drop(logs);
        self.inner.total_bytes.fetch_sub(e.bytes, Ordering::SeqCst);
        Ok(d)
    }

    // ---- status and verification ------------------------------------------------------------

    pub fn status(&self) -> Result<Status, Error> {
        let now = self.now_ns();
        let holds = self.holds()?;
        let held_bytes = self.held_bytes(&holds)?;
        let mut cameras = Vec::new();
        let (mut oldest, mut newest): (Option<i64>, Option<i64>) = (None, None);
        let (mut segments, mut recent_bytes, mut recent_from) = (0u64, 0u64, now);
        for cam in self.cameras()? {
            let mut cs = CameraStatus {
                camera: cam.clone(),
                segments: 0,
                bytes: 0,
                newest_end_ns: None,
            };
            for e in self.inner.index.oldest_first(&cam) {
                let e = e.map_err(idx_err)?;
                cs.segments += 1;
                cs.bytes += e.bytes;
                cs.newest_end_ns = Some(cs.newest_end_ns.map_or(e.end_ns, |n| n.max(e.end_ns)));
                oldest = Some(oldest.map_or(e.start_ns, |o| o.min(e.start_ns)));
                newest = Some(newest.map_or(e.end_ns, |n| n.max(e.end_ns)));
                if e.start_ns >= now - DAY_NS {
                    recent_bytes += e.bytes;
                    recent_from = recent_from.min(e.start_ns);
                }
            }
            segments += cs.segments;
            cameras.push(cs);
        }
        let span = (now - recent_from).max(0);
        // An hour of footage is the least that gives a useful rate.
        let per_day = if span >= 3600 * 1_000_000_000 {
            recent_bytes as f64 * DAY_NS as f64 / span as f64
        } else {
            0.0
        };
        let budget = self.budget_bytes()?;
        Ok(Status {
            segments,
            total_bytes: self.inner.total_bytes.load(Ordering::SeqCst),
            budget_bytes: budget,
            retention_days: self.inner.cfg.retention_days,
            oldest_ns: oldest,
            newest_ns: newest,
            capacity_days: retention::capacity_days(budget, held_bytes, per_day),
            holds: holds.len(),
            held_bytes,
            cameras,
        })
    }

    /// Checks everything an auditor relies on: every log's chain and signatures; every
    /// manifest's segment either present (and, with `deep`, matching its signed length and
    /// SHA-256) or recorded in the destruction log; no segment file without a manifest; and
    /// every camera seen anywhere (the configuration, the recorder's start records in the audit
    /// log, the destruction log, the index, the files on disk) still has its manifest log.
    /// Returns one message per problem; empty means intact.
    pub fn verify(&self, deep: bool) -> Result<Vec<String>, Error> {
        let keys = self.keys();
        let mut problems = Vec::new();
        if self.inner.public == [0; 32] {
            problems.push(format!(
                "{PUBLIC_KEY_FILE} is missing or unreadable: no signature can be checked"
            ));
        }
        let (audit, destruction, holds, manifest_logs) = {
            let l = lock(&self.inner.logs);
            (
                l.audit.path().to_owned(),
                l.destruction.path().to_owned(),
                l.holds.path().to_owned(),
                l.manifests.keys().cloned().collect::<BTreeSet<_>>(),
            )
        };
        for p in [&audit, &destruction, &holds] {
            problems.extend(chainlog::verify(p, &keys)?);
        }
        let destructions = chainlog::read_all::<Destruction>(&destruction)?;
        let destroyed: HashSet<(String, u64)> = destructions
            .iter()
            .map(|(_, d)| (d.camera.clone(), d.seq))
            .collect();
        // Every camera seen anywhere, and where it was seen.
        let mut seen: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
        for c in &self.inner.cfg.cameras {
            seen.entry(c.clone())
                .or_default()
                .insert("the configuration");
        }
        for (_, d) in &destructions {
            seen.entry(d.camera.clone())
                .or_default()
                .insert("the destruction log");
        }
        for (_, a) in chainlog::read_all::<AuditRecord>(&audit)? {
            // "version …, config … sha256 …, cameras front,rear, unit public key …"
            if a.action == "recorder_started"
                && let Some(list) = a
                    .detail
                    .as_deref()
                    .and_then(|d| d.split(", cameras ").nth(1))
                    .and_then(|r| r.split(", ").next())
            {
                for c in list.split(',').filter(|c| rdc_config::Id::parse(c).is_ok()) {
                    seen.entry(c.to_owned())
                        .or_default()
                        .insert("the audit log's recorder start records");
                }
            }
        }
        for c in self.cameras()? {
            seen.entry(c).or_default().insert("the index");
        }
        let seg_root = self.inner.cfg.root.join("segments");
        if let Ok(rd) = std::fs::read_dir(&seg_root) {
            for d in rd.flatten() {
                let name = d.file_name().to_string_lossy().into_owned();
                let has_files = std::fs::read_dir(d.path())
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(false);
                if has_files {
                    seen.entry(name)
                        .or_default()
                        .insert("segment files on disk");
                }
            }
        }
        for (cam, wheres) in &seen {
            if manifest_logs.contains(cam) {
                continue;
            }
            // Only footage implies a log: a camera named in the configuration or the start
            // records that never delivered a frame (unreachable, refused) has none and needs none.
            let footage = ["the index", "segment files on disk", "the destruction log"];
            if !footage.iter().any(|f| wheres.contains(f)) {
                continue;
            }
            problems.push(format!(
                "camera {cam}: its manifest log logs/manifests/{cam}.jsonl is missing, yet the camera appears in {}: the log was deleted or replaced",
                wheres.iter().copied().collect::<Vec<_>>().join(", ")
            ));
        }
        for cam in &manifest_logs {
            let lp = self.manifest_log_path(cam);
            problems.extend(
                chainlog::verify(&lp, &keys)?
                    .into_iter()
                    .map(|m| format!("camera {cam}: {m}")),
            );
            let dir = self.segments_dir(cam);
            let mut named = HashSet::new();
            let mut seqs = HashSet::new();
            let mut last_seq: Option<u64> = None;
            for (_, m) in chainlog::read_all::<Manifest>(&lp)? {
                named.insert(m.file.clone());
                if !seqs.insert(m.seq) || last_seq.is_some_and(|l| m.seq <= l) {
                    problems.push(format!(
                        "camera {cam}: segment number {} appears again or out of order in the manifest log",
                        m.seq
                    ));
                }
                last_seq = Some(m.seq);
                if m.camera != *cam {
                    problems.push(format!(
                        "camera {cam}: manifest {} is about camera {}",
                        m.seq, m.camera
                    ));
                }
                // A lost segment has no file: its discarded bytes, if any, are in the
                // destruction log (chained, so a removed entry shows there).
                if let Ended::Lost { .. } = m.ended {
                    continue;
                }
                let p = dir.join(&m.file);
                match File::open(&p) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if !destroyed.contains(&(cam.clone(), m.seq)) {
                            problems.push(format!("{cam}/{}: segment {} is missing and the destruction log does not record its deletion", m.file, m.seq));
                        }
                    }
                    Err(e) => problems.push(format!("{cam}/{}: cannot be read: {e}", m.file)),
                    Ok(mut f) => {
                        if destroyed.contains(&(cam.clone(), m.seq)) {
                            continue;
                        }
                        let len = f.metadata().map(|md| md.len()).unwrap_or(0);
                        if len != m.ciphertext_len {
                            problems.push(format!("{cam}/{}: segment {} is {len} bytes, its signed manifest says {}: altered", m.file, m.seq, m.ciphertext_len));
                        } else if deep
                            && sha256_hex(&mut f).map_err(io_err("read", &p))?
                                != m.ciphertext_sha256
                        {
                            problems.push(format!("{cam}/{}: segment {} does not match the SHA-256 in its signed manifest: altered", m.file, m.seq));
                        }
                    }
                }
            }
            for (_, d) in destructions.iter().filter(|(_, d)| d.camera == *cam) {
                if !seqs.contains(&d.seq) {
                    problems.push(format!(
                        "camera {cam}: the destruction log records segment {} ({}), which its manifest log does not have: manifests were removed from the log",
                        d.seq, d.file
                    ));
                }
            }
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for f in rd.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if name.ends_with(".age") && !named.contains(&name) {
                        problems.push(format!("{cam}/{name}: segment file that no manifest of this unit accounts for: inserted, from another unit, or its manifest was removed from the log"));
                    }
                }
            }
        }
        Ok(problems)
    }

    /// Flushes the index and the running clock (the logs are always durable already).
    pub fn flush(&self) -> Result<(), Error> {
        self.save_running_clock()?;
        self.inner.index.flush().map_err(idx_err)
    }
}

/// SHA-256 of what is left to read in `f`, hex: the one file hash of the store, `rdc` and the
/// recorder (what the signed manifests carry, and `sha256sum` prints).
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

/// Reads a log's entries from byte `from` on, typed.
fn read_from<T: serde::de::DeserializeOwned>(path: &Path, from: u64) -> Result<Vec<T>, Error> {
    use std::io::BufRead as _;
    let mut f = File::open(path).map_err(io_err("open", path))?;
    f.seek(SeekFrom::Start(from))
        .map_err(io_err("seek", path))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).split(b'\n') {
        let line = line.map_err(io_err("read", path))?;
        if let Ok(e) = serde_json::from_slice::<chainlog::Entry>(&line)
            && let Ok(t) = serde_json::from_value(e.body)
        {
            out.push(t);
        }
    }
    Ok(out)
}

/// Reads the entries in the last `window` bytes of a log, typed (a partial first line is
/// skipped).
fn read_tail<T: serde::de::DeserializeOwned>(path: &Path, window: u64) -> Result<Vec<T>, Error> {
    use std::io::BufRead as _;
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let len = f.metadata().map_err(io_err("stat", path))?.len();
    let start = len.saturating_sub(window);
    f.seek(SeekFrom::Start(start))
        .map_err(io_err("seek", path))?;
    let mut lines = std::io::BufReader::new(f).split(b'\n');
    if start > 0 {
        lines.next();
    }
    Ok(lines
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_slice::<chainlog::Entry>(&l).ok())
        .filter_map(|e| serde_json::from_value(e.body).ok())
        .collect())
}

/// Merges per-camera oldest-first iterators into one.
struct MergeOldest<I: Iterator<Item = Result<SegmentEntry, sled::Error>>> {
    iters: Vec<std::iter::Peekable<I>>,
    err: Option<sled::Error>,
}

impl<I: Iterator<Item = Result<SegmentEntry, sled::Error>>> Iterator for MergeOldest<I> {
    type Item = Candidate;

    fn next(&mut self) -> Option<Candidate> {
        let mut best: Option<usize> = None;
        for i in 0..self.iters.len() {
            let start = match self.iters[i].peek() {
                Some(Ok(e)) => e.start_ns,
                Some(Err(_)) => {
                    if let Some(Err(e)) = self.iters[i].next() {
                        tracing::error!(error = %e, "index error during retention; rebuilt at next open");
                        self.err = Some(e);
                    }
                    return None;
                }
                None => continue,
            };
            if best
                .is_none_or(|b| matches!(self.iters[b].peek(), Some(Ok(e)) if start < e.start_ns))
            {
                best = Some(i);
            }
        }
        let e = self.iters[best?].next()?.ok()?;
        Some(Candidate {
            camera: e.camera,
            seq: e.seq,
            start_ns: e.start_ns,
            end_ns: e.end_ns,
            bytes: e.bytes,
            clock_synced: e.clock_synced,
            running_start_ns: e.running_start_ns,
        })
    }
}
