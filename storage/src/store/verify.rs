//! Status and verification: what an engineer and an auditor check.

use super::*;

impl Store {
    // ---- status and verification ------------------------------------------------------------

    pub fn status(&self) -> Result<Status, Error> {
        let now = self.now_ns();
        let holds = self.holds()?;
        let held_bytes = self.held_bytes(&holds)?;
        let mut cameras = Vec::new();
        let (mut oldest, mut newest): (Option<i64>, Option<i64>) = (None, None);
        let (mut segments, mut recent_bytes, mut recent_from) = (0u64, 0u64, now);
        let mut previews: BTreeMap<String, rdc_format::PreviewStatus> = BTreeMap::new();
        for cam in self.cameras()? {
            let Some((camera, track)) = rdc_format::track::parse_store_name(&cam) else {
                continue;
            };
            if !track.is_footage() {
                let p = previews.entry(camera.to_owned()).or_default();
                for e in self.inner.index.oldest_first(&cam) {
                    let e = e.map_err(idx_err)?;
                    p.segments += 1;
                    p.bytes += e.segment.bytes;
                    p.oldest_start_ns.get_or_insert(e.segment.start_ns);
                    p.newest_end_ns = p.newest_end_ns.max(Some(e.segment.end_ns));
                }
                continue;
            }
            let mut cs = CameraStatus {
                camera: cam.clone(),
                segments: 0,
                bytes: 0,
                oldest_start_ns: None,
                newest_end_ns: None,
                previews: None,
            };
            for e in self.inner.index.oldest_first(&cam) {
                let e = e.map_err(idx_err)?;
                cs.segments += 1;
                cs.bytes += e.segment.bytes;
                cs.oldest_start_ns = Some(
                    cs.oldest_start_ns
                        .map_or(e.segment.start_ns, |o| o.min(e.segment.start_ns)),
                );
                cs.newest_end_ns = Some(
                    cs.newest_end_ns
                        .map_or(e.segment.end_ns, |n| n.max(e.segment.end_ns)),
                );
                oldest = Some(oldest.map_or(e.segment.start_ns, |o| o.min(e.segment.start_ns)));
                newest = Some(newest.map_or(e.segment.end_ns, |n| n.max(e.segment.end_ns)));
                if e.segment.start_ns >= now - DAY_NS {
                    recent_bytes += e.segment.bytes;
                    recent_from = recent_from.min(e.segment.start_ns);
                }
            }
            segments += cs.segments;
            cameras.push(cs);
        }
        for cs in &mut cameras {
            cs.previews = previews.remove(&cs.camera);
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
            preview_interval_ns: self.inner.cfg.preview_interval_ns,
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
        let (audit, destruction, holds, stills, sars, manifest_logs) = {
            let l = lock(&self.inner.logs);
            (
                l.audit.path().to_owned(),
                l.destruction.path().to_owned(),
                l.holds.path().to_owned(),
                l.stills.path().to_owned(),
                l.sars.path().to_owned(),
                l.manifests.keys().cloned().collect::<BTreeSet<_>>(),
            )
        };
        for p in [&audit, &destruction, &holds, &stills, &sars] {
            problems.extend(chainlog::verify(p, &keys)?);
        }
        let destructions = chainlog::read_all::<Destruction>(&destruction)?;
        let destroyed: HashSet<(String, u64)> = destructions
            .iter()
            .map(|(_, d)| (d.segment.camera.clone(), d.segment.seq))
            .collect();
        let seen = self.cameras_seen(&audit, &destructions)?;
        problems.extend(missing_logs(&seen, &manifest_logs));
        for cam in &manifest_logs {
            self.verify_camera(cam, &keys, &destructions, &destroyed, deep, &mut problems)?;
        }
        Ok(problems)
    }

    /// Every camera seen anywhere, and where it was seen.
    fn cameras_seen(
        &self,
        audit: &Path,
        destructions: &[(chainlog::Entry, Destruction)],
    ) -> Result<BTreeMap<String, BTreeSet<&'static str>>, Error> {
        let mut seen: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
        for c in &self.inner.cfg.cameras {
            seen.entry(c.clone())
                .or_default()
                .insert("the configuration");
        }
        for (_, d) in destructions {
            seen.entry(d.segment.camera.clone())
                .or_default()
                .insert("the destruction log");
        }
        for (_, a) in chainlog::read_all::<AuditRecord>(audit)? {
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
        Ok(seen)
    }

    /// One camera's manifest log: its chain, each manifest against its file and the
    /// destruction log, and no segment file that no manifest accounts for.
    fn verify_camera(
        &self,
        cam: &String,
        keys: &[[u8; 32]],
        destructions: &[(chainlog::Entry, Destruction)],
        destroyed: &HashSet<(String, u64)>,
        deep: bool,
        problems: &mut Vec<String>,
    ) -> Result<(), Error> {
        let lp = self.manifest_log_path(cam);
        problems.extend(
            chainlog::verify(&lp, keys)?
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
            self.check_manifest(cam, &dir, &m, destroyed, deep, problems)?;
        }
        for (_, d) in destructions
            .iter()
            .filter(|(_, d)| d.segment.camera == *cam)
        {
            if !seqs.contains(&d.segment.seq) {
                problems.push(format!(
                    "camera {cam}: the destruction log records segment {} ({}), which its manifest log does not have: manifests were removed from the log",
                    d.segment.seq, d.segment.file
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
        Ok(())
    }

    /// One manifest of `cam`'s log against its file (or, for a lost segment, against the
    /// destruction log).
    fn check_manifest(
        &self,
        cam: &String,
        dir: &Path,
        m: &Manifest,
        destroyed: &HashSet<(String, u64)>,
        deep: bool,
        problems: &mut Vec<String>,
    ) -> Result<(), Error> {
        if m.camera != *cam {
            problems.push(format!(
                "camera {cam}: manifest {} is about camera {}",
                m.seq, m.camera
            ));
        }
        // Frame times go forward: a segment of more than one frame spans a positive
        // time. (The unit cannot see the times inside the ciphertext; `rdc verify` and
        // `rdc fetch` check every frame's.)
        // (A step of the unit's own clock, signed as `wall_steps`, may move the wall
        // range; the monotonic one must still go forward.)
        if m.frames > 1
            && (m.end_mono_ns <= m.start_mono_ns || (m.wall_steps == 0 && m.end_ns <= m.start_ns))
        {
            problems.push(format!(
            "{cam}/{}: segment {} of {} frames has a signed range of {:.3} s ({:.3} s on the monotonic clock): its frame times did not increase",
            m.file,
            m.seq,
            m.frames,
            (m.end_ns - m.start_ns) as f64 / 1e9,
            (m.end_mono_ns as i128 - m.start_mono_ns as i128) as f64 / 1e9
        ));
        }
        // A lost segment has no file: its discarded bytes, if any, are in the
        // destruction log (chained, so a removed entry shows there).
        if let Ended::Lost { cause } = &m.ended {
            // A lost segment holds no footage, and the destruction log agrees with how
            // it says it was lost: a gap record (recording stopped, nothing was written)
            // names no file and no deletion; a segment discarded before its first sync
            // has its discarded bytes in the destruction log.
            if m.frames > 0 || m.ciphertext_len > 0 {
                problems.push(format!(
                    "camera {cam}: manifest {} records a lost segment yet {} frames, {} bytes",
                    m.seq, m.frames, m.ciphertext_len
                ));
            }
            let gap_record =
                m.file.is_empty() || cause.starts_with(rdc_format::manifest::NOT_RECORDED);
            let logged = destroyed.contains(&(cam.clone(), m.seq));
            if gap_record && logged {
                problems.push(format!(
                "camera {cam}: manifest {} records a gap (nothing written), yet the destruction log records deleting segment {}",
                m.seq, m.seq
            ));
            } else if !gap_record && !logged {
                problems.push(format!(
                "camera {cam}: segment {} ({}) was lost, and the destruction log does not record what was discarded of it",
                m.seq, m.file
            ));
            }
            if !m.file.is_empty() && dir.join(&m.file).exists() {
                problems.push(format!(
                    "{cam}/{}: a file of a segment recorded as lost",
                    m.file
                ));
            }
            return Ok(());
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
                    return Ok(());
                }
                let len = f.metadata().map(|md| md.len()).unwrap_or(0);
                if len != m.ciphertext_len {
                    problems.push(format!(
                        "{cam}/{}: segment {} is {len} bytes, its signed manifest says {}: altered",
                        m.file, m.seq, m.ciphertext_len
                    ));
                } else if deep
                    && sha256_hex(&mut f).map_err(io_err("read", &p))? != m.ciphertext_sha256
                {
                    problems.push(format!("{cam}/{}: segment {} does not match the SHA-256 in its signed manifest: altered", m.file, m.seq));
                }
            }
        }
        Ok(())
    }

    /// Flushes the index and the running clock (the logs are always durable already).
    pub fn flush(&self) -> Result<(), Error> {
        self.save_running_clock()?;
        self.inner.index.flush().map_err(idx_err)
    }
}

/// A camera whose footage appears somewhere (the index, files, the destruction log) but that
/// has no manifest log: the log was deleted or replaced.
fn missing_logs(
    seen: &BTreeMap<String, BTreeSet<&'static str>>,
    manifest_logs: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (cam, wheres) in seen {
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
    problems
}
