//! The unit's signing key on the store's side: which key the store was signed with, keys
//! retired deliberately, loading the key without ever replacing it silently, and rotation.

use super::*;

/// The store's signing keys on disk: `unit-public-key` (the key its entries are signed with)
/// and `retired-keys` (keys retired deliberately, one JSON line each).
pub(super) const PUBLIC_KEY_FILE: &str = "unit-public-key";

pub(super) const RETIRED_KEYS_FILE: &str = "retired-keys";

/// A key retired by `rdc-recorder store rotate-key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetiredKey {
    pub public: String,
    pub retired_ns: i64,
    pub reason: String,
}

pub(super) fn read_public_key(root: &Path) -> Result<Option<String>, Error> {
    let p = root.join(PUBLIC_KEY_FILE);
    match std::fs::read_to_string(&p) {
        Ok(t) => Ok(Some(t.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &p)(e)),
    }
}

pub(super) fn parse_key_hex(h: &str) -> Option<[u8; 32]> {
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
pub(super) fn replace_file(path: &Path, data: &[u8]) -> Result<(), Error> {
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
pub(super) fn lock_store(root: &Path) -> Result<File, Error> {
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
        role: rdc_format::Actor::System,
        action: "signing_key_rotated".into(),
        reason: Some(reason.to_owned()),
        outcome: rdc_format::Outcome::Done,
        detail: Some(format!(
            "retired key {}; new key {}",
            old.as_deref().unwrap_or("(none)"),
            store.public_hex()
        )),
        ..Default::default()
    })?;
    Ok((old, store.public_hex()))
}
