//! The segment index in sled: a cache of what the manifest and destruction logs say.
//!
//! Two trees: `seq` (camera, seq) -> entry, and `time` (camera, start, seq) -> seq for range
//! queries. `meta` records how far into each log the index has applied, so an open after a
//! crash replays only the tail of the logs; anything odd and the store rebuilds it from scratch.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

pub use rdc_format::SegmentEntry;

#[derive(Debug)]
pub(crate) struct Index {
    db: sled::Db,
    seq: sled::Tree,
    time: sled::Tree,
    meta: sled::Tree,
    /// The longest wall-clock span of any segment: how far back a range query must look.
    max_span_ns: AtomicI64,
}

fn seq_key(camera: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(camera.len() + 9);
    k.extend_from_slice(camera.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn time_prefix(camera: &str, start_ns: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(camera.len() + 17);
    k.extend_from_slice(camera.as_bytes());
    k.push(0);
    k.extend_from_slice(&((start_ns as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn time_key(camera: &str, start_ns: i64, seq: u64) -> Vec<u8> {
    let mut k = time_prefix(camera, start_ns);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

type R<T> = Result<T, sled::Error>;

fn decode(v: &[u8]) -> R<SegmentEntry> {
    serde_json::from_slice(v)
        .map_err(|e| sled::Error::Unsupported(format!("index entry does not decode: {e}")))
}

impl Index {
    pub(crate) fn open(path: &Path, cache_bytes: u64) -> R<Self> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            .flush_every_ms(Some(1000))
            .open()?;
        let seq = db.open_tree("seq")?;
        let time = db.open_tree("time")?;
        let meta = db.open_tree("meta")?;
        let max_span_ns = meta
            .get("max_span_ns")?
            .and_then(|v| v.as_ref().try_into().ok())
            .map_or(0, i64::from_be_bytes);
        Ok(Index {
            db,
            seq,
            time,
            meta,
            max_span_ns: AtomicI64::new(max_span_ns),
        })
    }

    /// An index held in memory only (read-only inspection of a store), rebuilt from the logs.
    pub(crate) fn open_temporary(cache_bytes: u64) -> R<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(cache_bytes)
            .open()?;
        Ok(Index {
            seq: db.open_tree("seq")?,
            time: db.open_tree("time")?,
            meta: db.open_tree("meta")?,
            db,
            max_span_ns: AtomicI64::new(0),
        })
    }

    /// The highest segment number indexed for `camera`.
    pub(crate) fn last_seq(&self, camera: &str) -> R<Option<u64>> {
        let mut prefix = camera.as_bytes().to_vec();
        prefix.push(0);
        match self.seq.scan_prefix(prefix).next_back() {
            Some(kv) => Ok(Some(decode(&kv?.1)?.segment.seq)),
            None => Ok(None),
        }
    }

    pub(crate) fn clear(&self) -> R<()> {
        self.seq.clear()?;
        self.time.clear()?;
        self.meta.clear()?;
        self.max_span_ns.store(0, Ordering::SeqCst);
        Ok(())
    }

    pub(crate) fn insert(&self, e: &SegmentEntry) -> R<()> {
        let v = serde_json::to_vec(e).expect("SegmentEntry serialises");
        self.seq
            .insert(seq_key(&e.segment.camera, e.segment.seq), v)?;
        self.time.insert(
            time_key(&e.segment.camera, e.segment.start_ns, e.segment.seq),
            &e.segment.seq.to_be_bytes(),
        )?;
        let span = e.segment.end_ns.saturating_sub(e.segment.start_ns).max(0);
        if span > self.max_span_ns.fetch_max(span, Ordering::SeqCst) {
            self.meta.insert("max_span_ns", &span.to_be_bytes())?;
        }
        Ok(())
    }

    pub(crate) fn remove(&self, camera: &str, seq: u64) -> R<Option<SegmentEntry>> {
        let Some(v) = self.seq.remove(seq_key(camera, seq))? else {
            return Ok(None);
        };
        let e = decode(&v)?;
        self.time
            .remove(time_key(camera, e.segment.start_ns, seq))?;
        Ok(Some(e))
    }

    pub(crate) fn get(&self, camera: &str, seq: u64) -> R<Option<SegmentEntry>> {
        self.seq
            .get(seq_key(camera, seq))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Segments of `camera` that overlap `[from_ns, to_ns)`, by start time.
    pub(crate) fn range(&self, camera: &str, from_ns: i64, to_ns: i64) -> R<Vec<SegmentEntry>> {
        let lo = time_prefix(
            camera,
            from_ns.saturating_sub(self.max_span_ns.load(Ordering::SeqCst)),
        );
        let hi = time_prefix(camera, to_ns);
        let mut out = Vec::new();
        for kv in self.time.range(lo..hi) {
            let (_, seq) = kv?;
            let seq = u64::from_be_bytes(
                seq.as_ref()
                    .try_into()
                    .map_err(|_| sled::Error::Unsupported("bad time index value".into()))?,
            );
            if let Some(e) = self.get(camera, seq)?
                && (e.segment.end_ns > from_ns
                    || (e.segment.end_ns == e.segment.start_ns && e.segment.start_ns >= from_ns))
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// A camera's segments by ascending start time.
    pub(crate) fn oldest_first<'a>(
        &'a self,
        camera: &str,
    ) -> impl Iterator<Item = R<SegmentEntry>> + 'a {
        let mut prefix = camera.as_bytes().to_vec();
        prefix.push(0);
        let camera = camera.to_owned();
        self.time.scan_prefix(prefix).map(move |kv| {
            let (_, seq) = kv?;
            let seq = u64::from_be_bytes(
                seq.as_ref()
                    .try_into()
                    .map_err(|_| sled::Error::Unsupported("bad time index value".into()))?,
            );
            self.get(&camera, seq)?
                .ok_or_else(|| sled::Error::Unsupported("time index names a missing entry".into()))
        })
    }

    /// Drops `camera`'s entry `seq` from the sequence tree only, leaving its time entry: the
    /// index as a failing disk or an interrupted write could leave it, for tests of what
    /// readers do then.
    #[cfg(test)]
    pub(crate) fn corrupt_for_test(&self, camera: &str, seq: u64) {
        self.seq.remove(seq_key(camera, seq)).expect("sled remove");
    }

    /// A camera's entries in sequence order (which is also their file names' order).
    pub(crate) fn by_seq<'a>(&'a self, camera: &str) -> impl Iterator<Item = R<SegmentEntry>> + 'a {
        let mut prefix = camera.as_bytes().to_vec();
        prefix.push(0);
        self.seq.scan_prefix(prefix).map(|kv| decode(&kv?.1))
    }

    /// Cameras with at least one segment.
    pub(crate) fn cameras(&self) -> R<Vec<String>> {
        let mut out = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        while let Some((k, _)) = self.seq.range(from.clone()..).next().transpose()? {
            let end = k.iter().position(|b| *b == 0).unwrap_or(k.len());
            let cam = String::from_utf8_lossy(&k[..end]).into_owned();
            from = k[..end].to_vec();
            from.push(1);
            out.push(cam);
        }
        Ok(out)
    }

    /// How far into each log (by file name) the index has applied.
    pub(crate) fn positions(&self) -> R<BTreeMap<String, u64>> {
        Ok(self
            .meta
            .get("positions")?
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default())
    }

    pub(crate) fn set_position(&self, log: &str, pos: u64) -> R<()> {
        let mut p = self.positions()?;
        p.insert(log.to_owned(), pos);
        self.meta
            .insert("positions", serde_json::to_vec(&p).expect("map serialises"))?;
        Ok(())
    }

    pub(crate) fn flush(&self) -> R<()> {
        self.db.flush().map(|_| ())
    }
}
