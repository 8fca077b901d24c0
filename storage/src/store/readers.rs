//! What the store tells: cameras, segments, manifests, the audit and destruction logs.

use super::*;

impl Store {
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
        track_name(camera)?;
        self.inner
            .index
            .get(camera, seq)
            .map_err(idx_err)?
            .ok_or_else(|| Error::NoSuchSegment(camera.to_owned(), seq))
    }

    /// Opens a finished segment's ciphertext for reading from any offset.
    pub fn open_segment(&self, camera: &str, seq: u64) -> Result<SegmentReader, Error> {
        let entry = self.segment(camera, seq)?;
        let p = self.segments_dir(camera).join(&entry.segment.file);
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
            .join(self.segment(camera, seq)?.segment.file))
    }

    /// Signed manifest entries of `camera` with `from_seq <= seq < to_seq`, in order.
    pub fn manifests(
        &self,
        camera: &str,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<chainlog::Entry>, Error> {
        track_name(camera)?;
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

    /// Records an access as [`Store::audit`] does and returns the signed entry: the receipt an
    /// export carries, so whoever receives it can see the unit logged it.
    pub fn audit_receipt(&self, rec: &AuditRecord) -> Result<chainlog::Entry, Error> {
        let now = self.now_ns();
        lock(&self.inner.logs).audit.append_entry(now, rec)
    }

    // ---- stills register ----------------------------------------------------------------------

    /// Appends an entry to the stills register, durably, and returns it signed.
    pub fn register_still(
        &self,
        e: &rdc_format::stills::RegisterEntry,
    ) -> Result<chainlog::Entry, Error> {
        self.writable()?;
        let now = self.now_ns();
        lock(&self.inner.logs).stills.append_entry(now, e)
    }

    /// The stills register, every entry with its body.
    pub fn stills_register(
        &self,
    ) -> Result<Vec<(chainlog::Entry, rdc_format::stills::RegisterEntry)>, Error> {
        let p = lock(&self.inner.logs).stills.path().to_owned();
        chainlog::read_all(&p)
    }

    /// The signed manifest entry of a camera's segment.
    pub fn manifest_entry(&self, camera: &str, seq: u64) -> Result<chainlog::Entry, Error> {
        self.manifests(camera, seq, seq + 1)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoSuchSegment(camera.to_owned(), seq))
    }

    /// Appends an entry to the register of subject access requests, durably; the signed entry.
    pub fn register_sar(&self, e: &rdc_format::sar::SarEntry) -> Result<chainlog::Entry, Error> {
        self.writable()?;
        let now = self.now_ns();
        lock(&self.inner.logs).sars.append_entry(now, e)
    }

    /// The register of subject access requests.
    pub fn sar_register(&self) -> Result<Vec<(chainlog::Entry, rdc_format::sar::SarEntry)>, Error> {
        let p = lock(&self.inner.logs).sars.path().to_owned();
        chainlog::read_all(&p)
    }
}
