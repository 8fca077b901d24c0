//! Segments between the writer and the logs: starting and committing them, and closing the
//! ones a power cut or a failing disk left open (at their last sync, without the file key).

use super::*;

impl Store {
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
        let seq = self.next_seq(&mut lock(&self.inner.logs), camera)?;
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

    pub(super) fn manifest_log<'a>(
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

    /// The next sequence number of `camera`'s segments (or gaps), taken.
    fn next_seq(&self, logs: &mut Logs, camera: &str) -> Result<u64, Error> {
        let log_next = self.manifest_log(logs, camera)?.next_seq();
        let mut floors = lock(&self.inner.next_seq);
        let floor = floors.entry(camera.to_owned()).or_default();
        let seq = log_next.max(*floor);
        *floor = seq + 1;
        Ok(seq)
    }

    /// Appends `m` to its camera's signed manifest log, does `then` (what must follow the
    /// durable manifest: a rename, the index entry), and records how far the index has read the
    /// log. The one way a manifest enters the store.
    fn append_manifest(
        &self,
        logs: &mut Logs,
        at_ns: i64,
        m: &Manifest,
        then: impl FnOnce() -> Result<(), Error>,
    ) -> Result<(), Error> {
        let log = self.manifest_log(logs, &m.camera)?;
        log.append(at_ns, m)?;
        let pos = log.len();
        then()?;
        self.inner
            .index
            .set_position(&manifest_log_name(&m.camera), pos)
            .map_err(idx_err)
    }

    /// Makes a written segment part of the store: manifest, rename, index.
    pub(crate) fn commit_segment(&self, dir: &Path, stem: &str, m: &Manifest) -> Result<(), Error> {
        let partial = dir.join(format!("{stem}.partial"));
        let fin = dir.join(&m.file);
        {
            let mut logs = lock(&self.inner.logs);
            self.append_manifest(&mut logs, m.end_ns, m, || {
                std::fs::rename(&partial, &fin).map_err(io_err("rename", &partial))?;
                fsync_dir(dir)?;
                self.inner
                    .index
                    .insert(&SegmentEntry::from(m))
                    .map_err(idx_err)
            })?;
        }
        let _ = std::fs::remove_file(dir.join(format!("{stem}.tail")));
        self.inner
            .total_bytes
            .fetch_add(m.ciphertext_len, Ordering::SeqCst);
        tracing::debug!(camera = %m.camera, seq = m.seq, bytes = m.ciphertext_len, "segment committed");
        Ok(())
    }

    /// Closes every segment that a power cut left open, at its last durable sync.
    pub(super) fn recover_partials(&self, report: &mut OpenReport) -> Result<(), Error> {
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

    pub(super) fn recover_one(
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
    pub(super) fn finish_committed(
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
    pub(super) fn close_from_tail(
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
        let header_len = meta.main_len - meta.counter * rdc_format::stills::CHUNK_CT;
        let (digest, chunks) =
            file_digests(&mut f, header_len).map_err(io_err("read", &partial))?;
        let mut m = meta.manifest(
            &self.inner.cfg.unit_id,
            camera,
            seq,
            stem,
            (meta.last_wall, meta.last_mono),
            (meta.main_len + chunk.len() as u64, digest),
            ended,
        );
        // The pieces' hashes can be had from the file; where the frames are cannot (the unit
        // holds no key), so a still from this segment is served the whole segment.
        m.chunks_sha256 = Some(chunks);
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
        // Nothing of it was ever synced: what reached the disk is discarded, logged first.
        let partial = dir.join(format!("{stem}.partial"));
        if let Ok(mut f) = File::open(&partial) {
            self.discard_partial(
                (camera, dir, stem, seq),
                &mut f,
                &format!("{cause} before the segment's first sync: nothing in it was durable, so no readable file could be made"),
                "file unlinked by the recorder; it was encrypted and the unit holds no key to it",
                &format!("the recorder of unit {}, on a failed write", self.inner.cfg.unit_id),
            )?;
            return Ok(None);
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
        let seq = self.next_seq(&mut logs, camera)?;
        // No file was ever written for a gap: its entry names none, so nobody looks for one
        // (nor for its deletion in the destruction log).
        let m = Manifest::lost(
            &self.inner.cfg.unit_id,
            camera,
            seq,
            String::new(),
            (start_ns, end_ns),
            cause,
        );
        self.append_manifest(&mut logs, end_ns, &m, || Ok(()))?;
        Ok(m)
    }

    /// A segment the power cut before its first sync: no readable file can be made of it (its
    /// final chunk needs the file key, which is gone). What it held is accounted for: the
    /// destruction log records the discarded bytes and why, then the file goes, then a signed
    /// manifest records the segment as lost, so the gap is in the camera's signed record.
    pub(super) fn discard_unsynced(
        &self,
        camera: &str,
        dir: &Path,
        stem: &str,
        seq: u64,
        f: &mut File,
        report: &mut OpenReport,
    ) -> Result<(), Error> {
        let cause = "the power failed before the segment's first sync: nothing in it was durable, so no readable file could be made (its final chunk needs the file key, which the unit never keeps)";
        self.discard_partial(
            (camera, dir, stem, seq),
            f,
            cause,
            "file unlinked at recovery; it was encrypted and the unit holds no key to it",
            &format!("recovery at store open on unit {}", self.inner.cfg.unit_id),
        )?;
        report.discarded.push(format!("{camera}/{stem}"));
        Ok(())
    }

    /// Discards a segment's `.partial` from which no readable file can be made: the destruction
    /// log records its bytes and hash and why, then it goes, then a signed manifest records the
    /// segment as lost. Every deletion is logged first, even of bytes never synced.
    fn discard_partial(
        &self,
        (camera, dir, stem, seq): (&str, &Path, &str, u64),
        f: &mut File,
        cause: &str,
        how: &str,
        authority: &str,
    ) -> Result<(), Error> {
        let partial = dir.join(format!("{stem}.partial"));
        let tail = dir.join(format!("{stem}.tail"));
        let bytes = f.metadata().map_err(io_err("stat", &partial))?.len();
        f.seek(SeekFrom::Start(0))
            .map_err(io_err("seek", &partial))?;
        let digest = sha256_hex(f).map_err(io_err("read", &partial))?;
        let start_ns = parse_stem(&format!("{stem}.partial")).map_or(0, |(_, s, _)| s);
        tracing::warn!(camera, stem, bytes, "{cause}; discarded and logged");
        let d = Destruction {
            segment: SegmentFile {
                camera: camera.to_owned(),
                seq,
                file: format!("{stem}.partial"),
                start_ns,
                end_ns: start_ns,
                bytes,
                ciphertext_sha256: digest,
            },
            why: cause.into(),
            how: how.into(),
            authority: authority.into(),
            clock: None,
        };
        let now = self.now_ns();
        lock(&self.inner.logs).destruction.append(now, &d)?;
        std::fs::remove_file(&partial).map_err(io_err("remove", &partial))?;
        let _ = std::fs::remove_file(&tail);
        fsync_dir(dir)?;
        let m = Manifest::lost(
            &self.inner.cfg.unit_id,
            camera,
            seq,
            format!("{stem}.age"),
            (start_ns, start_ns),
            cause,
        );
        {
            let mut logs = lock(&self.inner.logs);
            self.append_manifest(&mut logs, start_ns, &m, || Ok(()))?;
            self.inner
                .index
                .set_position("destruction.jsonl", logs.destruction.len())
                .map_err(idx_err)?;
        }
        Ok(())
    }
}

/// The SHA-256 of a whole age file and the digest of its pieces' hashes
/// ([`rdc_format::stills::leaves_digest`]), in one read.
fn file_digests(f: &mut File, header_len: u64) -> std::io::Result<(String, String)> {
    use rdc_format::stills::{CHUNK_CT, leaf, leaves_digest};
    use std::io::Read as _;
    let mut whole = ring::digest::Context::new(&ring::digest::SHA256);
    let mut leaves = Vec::new();
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header)?;
    whole.update(&header);
    leaves.push(leaf(&header));
    let mut buf = vec![0u8; CHUNK_CT as usize];
    loop {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        if n == 0 {
            break;
        }
        whole.update(&buf[..n]);
        leaves.push(leaf(&buf[..n]));
        if n < buf.len() {
            break;
        }
    }
    Ok((hex::encode(whole.finish()), leaves_digest(&leaves)))
}
