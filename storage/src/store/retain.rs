//! Retention run: the byte budget the disk allows, making room on a full disk, deletions by
//! age and budget (logged before each unlink), and the running clock ages are measured with.

use super::*;

impl Store {
    // ---- retention --------------------------------------------------------------------------

    /// The file system's size and the bytes available to the store now.
    pub(super) fn disk(&self) -> Result<(u64, u64), Error> {
        let root = &self.inner.cfg.root;
        let st = rustix::fs::statvfs(root).map_err(|e| io_err("statvfs", root)(e.into()))?;
        Ok((
            st.f_blocks.saturating_mul(st.f_frsize),
            st.f_bavail.saturating_mul(st.f_frsize),
        ))
    }

    /// Space set aside for the audit log, which grows with what people ask of the unit: a
    /// fiftieth of the file system, between 2 MiB and 1 GiB (at about 600 bytes an entry, a
    /// 32 GB card keeps a million). The other logs (manifests, destruction, holds) and the
    /// index grow with the footage itself, about 1 KB a segment, and are counted in its
    /// budget as they always were.
    pub fn log_allowance(size: u64) -> u64 {
        (size / 50).clamp(2 << 20, 1 << 30)
    }

    /// Bytes the logs people's requests grow take on disk now: the audit log, the stills
    /// register and the register of subject access requests (each entry of the last two comes
    /// with an audit entry, and may be larger: it keeps the signed documents).
    fn log_bytes(&self) -> u64 {
        let paths = {
            let l = lock(&self.inner.logs);
            [
                l.audit.path().to_owned(),
                l.stills.path().to_owned(),
                l.sars.path().to_owned(),
            ]
        };
        paths
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum()
    }

    /// The bytes the audit log takes and its allowance. Once it takes it all, the uplink
    /// refuses requests (each would add an entry) rather than let the log eat into the
    /// footage's space.
    pub fn log_space(&self) -> Result<(u64, u64), Error> {
        let (size, _) = self.disk()?;
        Ok((self.log_bytes(), Self::log_allowance(size)))
    }

    /// Space kept free on the file system whatever the budget says: a twentieth of it, between
    /// 2 MiB and 256 MiB (a minute of four 4 Mbit/s cameras, for retention to catch up).
    pub(super) fn headroom(size: u64) -> u64 {
        (size / 20).clamp(2 << 20, 256 << 20)
    }

    /// The byte budget now: fixed, or what the file system can give while keeping its reserve;
    /// either way never more than the disk really has (less a headroom), so the store deletes
    /// its oldest footage before the disk fills rather than after.
    ///
    /// The audit log has its allowance ([`Store::log_allowance`]) set aside whether it fills it
    /// or not: as it grows within it the budget stays where it was, so no amount of people's
    /// requests costs footage. (Past it, it would; the uplink refuses requests before that,
    /// see [`Store::log_space`].)
    pub fn budget_bytes(&self) -> Result<u64, Error> {
        let (size, avail) = self.disk()?;
        let total = self.inner.total_bytes.load(Ordering::SeqCst);
        let reserve = match self.inner.cfg.budget {
            Budget::MaxBytes(_) => Self::headroom(size),
            Budget::ReserveFree(r) => r.max(Self::headroom(size)),
        };
        let logs = self.log_bytes();
        let disk =
            (total + avail + logs).saturating_sub(reserve + Self::log_allowance(size).max(logs));
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
        let victims: Vec<SegmentEntry> = {
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
                &c.segment.camera,
                c.segment.seq,
                "the disk was nearly full: the oldest footage not held was deleted so recording could go on",
                &format!(
                    "free space on the disk of unit {} (storage budget)",
                    self.inner.cfg.unit_id
                ),
            )?;
            freed += c.segment.bytes;
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
    pub(super) fn put_reserve(&self) {
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
            let mut merged = MergeOldest { iters, err: None };
            let plan = retention::plan(&mut merged, &holds, &clock_now, days, total, budget);
            (plan, merged.err)
        };
        let (plan, index_err) = plan;
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
            self.destroy_with(&c.segment.camera, c.segment.seq, &why_s, &authority, clock)?;
            report.bytes_freed += c.segment.bytes;
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
        // The index could not be read to the end: what was planned from the part read is
        // done (oldest first, logged), but footage past it that is due or over the budget was
        // not looked at. The caller hears it, and the next open rebuilds the index.
        if let Some(e) = index_err {
            return Err(Error::Index(format!(
                "retention read it only in part: {e}; {} segment(s), {} bytes, were deleted from the part read, the rest was not checked",
                report.expired + report.over_budget,
                report.bytes_freed
            )));
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

    pub(super) fn destroy_with(
        &self,
        camera: &str,
        seq: u64,
        why: &str,
        authority: &str,
        clock: Option<String>,
    ) -> Result<Destruction, Error> {
        let e = self.segment(camera, seq)?;
        let d = Destruction {
            segment: e.segment.clone(),
            why: why.to_owned(),
            how: "file unlinked; it was encrypted and the unit holds no key to it".into(),
            authority: authority.to_owned(),
            clock,
        };
        let now = self.now_ns();
        let dir = self.segments_dir(camera);
        let mut logs = lock(&self.inner.logs);
        logs.destruction.append(now, &d)?;
        let p = dir.join(&e.segment.file);
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
        self.inner
            .total_bytes
            .fetch_sub(e.segment.bytes, Ordering::SeqCst);
        Ok(d)
    }
}

/// Merges per-camera oldest-first iterators into one.
struct MergeOldest<I: Iterator<Item = Result<SegmentEntry, sled::Error>>> {
    iters: Vec<std::iter::Peekable<I>>,
    err: Option<sled::Error>,
}

impl<I: Iterator<Item = Result<SegmentEntry, sled::Error>>> Iterator for MergeOldest<I> {
    type Item = SegmentEntry;

    fn next(&mut self) -> Option<SegmentEntry> {
        let mut best: Option<usize> = None;
        for i in 0..self.iters.len() {
            let start = match self.iters[i].peek() {
                Some(Ok(e)) => e.segment.start_ns,
                Some(Err(_)) => {
                    if let Some(Err(e)) = self.iters[i].next() {
                        self.err = Some(e);
                    }
                    return None;
                }
                None => continue,
            };
            if best.is_none_or(
                |b| matches!(self.iters[b].peek(), Some(Ok(e)) if start < e.segment.start_ns),
            ) {
                best = Some(i);
            }
        }
        self.iters[best?].next()?.ok()
    }
}
