//! Opening a store: read-write (the daemon) or read-only (an engineer's look), the sequence
//! floors, the index catching up with the logs, and the files reconciled with the index.

use super::*;

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

    pub(super) fn open_with(
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
                && rdc_format::track::parse_store_name(cam).is_some()
            {
                manifests.insert(cam.to_owned(), open_log(&ent.path())?);
            }
        }
        let logs = Logs {
            manifests,
            audit: open_log(&logs_dir.join("audit.jsonl"))?,
            destruction: open_log(&logs_dir.join("destruction.jsonl"))?,
            holds: open_log(&logs_dir.join("holds.jsonl"))?,
            stills: open_log(&logs_dir.join("stills.jsonl"))?,
            sars: open_log(&logs_dir.join("sars.jsonl"))?,
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
    pub(super) fn seq_floors(&self) -> Result<(), Error> {
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
                bump(&d.segment.camera, d.segment.seq);
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
    pub(super) fn list_partials(&self, report: &mut OpenReport) -> Result<(), Error> {
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

    /// Applies what the logs say and the index has not seen; rebuilds the index if it is out
    /// of step with the logs.
    pub(super) fn sync_index(&self, report: &mut OpenReport) -> Result<(), Error> {
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
                idx.remove(&d.segment.camera, d.segment.seq)
                    .map_err(idx_err)?;
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
    pub(super) fn reconcile_files(&self, report: &mut OpenReport) -> Result<u64, Error> {
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
                    .next_if(|n| *n < e.segment.file)
                    .map(|n| strays.push((camera.clone(), n)))
                    .is_some()
                {}
                if names.next_if(|n| *n == e.segment.file).is_some() {
                    total += e.segment.bytes;
                } else {
                    missing.push(e);
                }
            }
            strays.extend(names.map(|n| (camera.clone(), n)));
        }
        for e in missing {
            tracing::error!(camera = %e.segment.camera, seq = e.segment.seq, file = %e.segment.file, "segment file missing, and no destruction is logged for it: run verify");
            report
                .missing_files
                .push(format!("{}/{}", e.segment.camera, e.segment.file));
            self.inner
                .index
                .remove(&e.segment.camera, e.segment.seq)
                .map_err(idx_err)?;
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
                    .map(|(_, d)| (d.segment.camera, d.segment.file))
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
