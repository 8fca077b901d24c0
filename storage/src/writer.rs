//! Writes one camera's footage into segments: age-encrypted, cut at keyframes, durable every
//! sync interval.
//!
//! A segment being written is two files: `<stem>.partial`, which holds the age header and every
//! *full* 64 KiB STREAM chunk (append-only, never rewritten), and `<stem>.tail`, which holds the
//! last partial chunk sealed as a *tentative final chunk*, in two alternating slots. At each
//! sync the main file is fdatasync'ed, then the tail slot is written and fdatasync'ed. After a
//! power cut, the newest valid tail record says how long the main file was when it was synced;
//! the main file is cut there and the tail's chunk appended: a complete, standard age file,
//! made without the file key (which the unit never keeps). See ARCHITECTURE.md, "Crash-safe age
//! files", for why this layout and what it costs.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256, digest};
use serde::{Deserialize, Serialize};

use crate::agefmt::{CHUNK, PayloadKey};
use crate::manifest::{ClockState, Ended, Manifest, TimeSource};
use crate::store::Store;
use crate::{Error, io_err};

/// One unit of input: some bytes of the camera's stream (typically one frame of MPEG-TS).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub data: &'a [u8],
    /// A segment may start here: a keyframe with its parameter sets.
    pub keyframe: bool,
    /// Wall-clock time, ns since the epoch (UTC).
    pub wall_ns: i64,
    /// Monotonic time, ns.
    pub mono_ns: u64,
}

/// What a push did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The frame was dropped: no segment is open and it is not a keyframe.
    pub dropped: bool,
    /// A segment was finished (cut at this keyframe).
    pub closed: Option<Manifest>,
    /// Everything up to and including this frame is now durable.
    pub synced: bool,
    /// The disk failed (full, or an I/O error): this frame was dropped, the open segment was
    /// closed at its last sync, and recording resumes at the next keyframe. Why.
    pub failed: Option<String>,
}

/// Writes the segments of one camera. Obtained from [`Store::writer`]; one per camera at a time.
///
/// Dropping it without [`SegmentWriter::close`] leaves the open segment as a crash would: the
/// next [`Store::open`] recovers it up to its last sync.
#[derive(Debug)]
pub struct SegmentWriter {
    pub(crate) store: Store,
    pub(crate) camera: String,
    pub(crate) open: Option<OpenSegment>,
    pub(crate) clock: ClockState,
    /// Which clock the frames pushed now have their times from, if the caller said.
    pub(crate) times: Option<TimeSource>,
    /// Frames dropped while waiting for the first keyframe.
    pub dropped_before_keyframe: u64,
    /// A segment whose writing failed and that could not be closed yet: (dir, stem, seq).
    pub(crate) orphan: Option<(PathBuf, String, u64)>,
    /// Recording stopped at this wall time for this cause: recorded when it resumes.
    pub(crate) gap: Option<(i64, String)>,
    /// Segments are cut at the first keyframe this long after their start (the store's
    /// `segment_ns` unless the track says otherwise).
    pub(crate) segment_ns: u64,
    /// Cut the open segment at the next keyframe, however short it is (someone is waiting to
    /// be served what it holds).
    pub(crate) cut_next: bool,
}

pub(crate) struct OpenSegment {
    pub(crate) seq: u64,
    pub(crate) stem: String,
    pub(crate) dir: PathBuf,
    file: File,
    tail: File,
    key: PayloadKey,
    counter: u64,
    pending: Vec<u8>,
    scratch: Vec<u8>,
    ct_hash: Context,
    written: u64,
    plaintext_len: u64,
    start_wall: i64,
    start_mono: u64,
    last_wall: i64,
    last_mono: u64,
    frames: u64,
    keyframes: u64,
    wall_steps: u32,
    offset_base: i64,
    clock_start: ClockState,
    synced_throughout: bool,
    times_from: Option<TimeSource>,
    last_sync_mono: u64,
    sync_no: u64,
    pub(crate) running_start: Option<u64>,
    /// SHA-256 of the header, then of each chunk written (the manifest signs their digest).
    leaves: Vec<[u8; 32]>,
    /// Where each keyframe starts and how far each chunk reaches; `None` for a track that
    /// is never served in parts (previews).
    index: Option<rdc_format::stills::FrameIndex>,
}

impl SegmentWriter {
    pub fn camera(&self) -> &str {
        &self.camera
    }

    /// Cuts the open segment at the next keyframe pushed, so what it holds can be served: a
    /// [`Ended::Cut`], as at the segment length, so no gap follows.
    pub fn cut_at_next_keyframe(&mut self) {
        self.cut_next = self.open.is_some();
    }

    /// Cuts this writer's segments at the first keyframe `ns` after their start, instead of the
    /// store's segment length (a preview track keeps fewer, longer segments).
    pub fn set_segment_ns(&mut self, ns: u64) {
        self.segment_ns = ns.max(1);
    }

    /// Records the clock-sync state; it goes into the manifest of every segment it touches.
    /// Says which clock the frames pushed from now on have their times from; a segment with
    /// frames of two sources is recorded as [`TimeSource::Mixed`].
    pub fn set_times(&mut self, source: TimeSource) {
        self.times = Some(source);
    }

    pub fn set_clock(&mut self, state: ClockState) {
        self.clock = state;
        if let Some(o) = &mut self.open {
            o.synced_throughout &= state.synchronized;
        }
    }

    /// Adds a frame. A segment is cut at the first keyframe after `segment_secs`; footage is
    /// made durable once `sync_interval` has passed since the last sync.
    ///
    /// A failing disk (full, or an I/O error) does not stop recording: the open segment is
    /// closed at its last sync (as after a power cut), the disk is given room by deleting the
    /// oldest unheld footage, and the next keyframe starts a new segment, after a signed record
    /// of the gap. Such a push returns `Ok` with [`Pushed::failed`] saying why.
    pub fn push(&mut self, f: &Frame<'_>) -> Result<Pushed, Error> {
        match self.push_inner(f) {
            Err(e @ Error::Io { .. }) => Ok(self.storage_failed(f, &e)),
            r => r,
        }
    }

    fn storage_failed(&mut self, f: &Frame<'_>, e: &Error) -> Pushed {
        let cause = format!("the unit's disk failed or was full ({e})");
        tracing::error!(camera = %self.camera, error = %e, "storage failed: closing the segment at its last sync; recording resumes at the next keyframe");
        if let Err(e) = self.store.make_room() {
            tracing::error!(camera = %self.camera, error = %e, "cannot free space");
        }
        if let Some(o) = self.open.take() {
            self.orphan = Some((o.dir.clone(), o.stem.clone(), o.seq));
        }
        let mut out = Pushed {
            dropped: true,
            failed: Some(cause.clone()),
            ..Default::default()
        };
        let mut gap_start = f.wall_ns;
        if let Some((dir, stem, seq)) = self.orphan.take() {
            match self
                .store
                .close_failed(&self.camera, &dir, &stem, seq, &cause)
            {
                Ok(Some(m)) => {
                    gap_start = m.end_ns;
                    out.closed = Some(m);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(camera = %self.camera, error = %e, "cannot close the failed segment yet; retrying at the next keyframe");
                    self.orphan = Some((dir, stem, seq));
                }
            }
        }
        self.gap.get_or_insert((gap_start, cause));
        out
    }

    fn push_inner(&mut self, f: &Frame<'_>) -> Result<Pushed, Error> {
        let mut out = Pushed::default();
        let (segment_ns, sync_ns) = (self.segment_ns, self.store.config().sync_interval_ns);
        if let Some(o) = &self.open
            && f.keyframe
            && (self.cut_next || f.mono_ns.saturating_sub(o.start_mono) >= segment_ns)
        {
            self.cut_next = false;
            out.closed = Some(self.finish(Ended::Cut, Some((f.wall_ns, f.mono_ns)))?);
        }
        if self.open.is_none() {
            if !f.keyframe {
                self.dropped_before_keyframe += 1;
                out.dropped = true;
                return Ok(out);
            }
            if let Some((dir, stem, seq)) = self.orphan.take() {
                let cause = "the unit's disk failed or was full";
                match self
                    .store
                    .close_failed(&self.camera, &dir, &stem, seq, cause)
                {
                    Ok(m) => out.closed = m,
                    Err(e) => {
                        self.orphan = Some((dir, stem, seq));
                        return Err(e);
                    }
                }
            }
            self.store.ensure_room()?;
            if let Some((start, cause)) = self.gap.take() {
                let why = format!("not recorded: {cause}");
                if let Err(e) = self.store.record_gap(&self.camera, start, f.wall_ns, &why) {
                    self.gap = Some((start, cause));
                    return Err(e);
                }
            }
            self.open = Some(self.store.begin_segment(&self.camera, f, self.clock)?);
        }
        let o = self.open.as_mut().expect("opened above");
        o.add(f)?;
        o.synced_throughout &= self.clock.synchronized;
        o.times_from = match (o.times_from, self.times) {
            (Some(a), Some(b)) => Some(a.and(b)),
            (a, b) => a.or(b),
        };
        // A new segment is made durable at its first frame (the keyframe), not a sync interval
        // later: a power cut in its first second then loses nothing already written.
        if o.sync_no == 0 || f.mono_ns.saturating_sub(o.last_sync_mono) >= sync_ns {
            o.sync(f.mono_ns)?;
            out.synced = true;
        }
        Ok(out)
    }

    /// Makes everything pushed so far durable now.
    pub fn sync(&mut self) -> Result<(), Error> {
        if let Some(o) = &mut self.open {
            let now = o.last_mono;
            o.sync(now)?;
        }
        Ok(())
    }

    /// Ends the open segment (if any) because recording stops or pauses: a gap follows.
    pub fn close(&mut self, cause: &str) -> Result<Option<Manifest>, Error> {
        self.close_at(cause, None)
    }

    /// [`SegmentWriter::close`], the segment ending at `end` (wall, monotonic) instead of its
    /// last frame: a preview segment ends where the footage it was taken from ends.
    pub(crate) fn close_at(
        &mut self,
        cause: &str,
        end: Option<(i64, u64)>,
    ) -> Result<Option<Manifest>, Error> {
        let Some(o) = &self.open else {
            return Ok(None);
        };
        let end = end.filter(|(w, m)| *w >= o.last_wall && *m >= o.last_mono);
        self.finish(
            Ended::Stopped {
                cause: cause.to_owned(),
            },
            end,
        )
        .map(Some)
    }

    /// The open segment's sequence number, frames and plaintext bytes so far.
    pub fn current(&self) -> Option<(u64, u64, u64)> {
        self.open
            .as_ref()
            .map(|o| (o.seq, o.frames, o.plaintext_len))
    }

    /// Whether a segment is open (recording is in progress).
    pub fn is_recording(&self) -> bool {
        self.open.is_some()
    }

    fn finish(&mut self, ended: Ended, end: Option<(i64, u64)>) -> Result<Manifest, Error> {
        let mut o = self.open.take().expect("callers check a segment is open");
        let r = self.finish_open(&mut o, ended, end);
        if r.is_err() {
            // Closed later from its last sync (or at the next open, as after a power cut).
            self.orphan = Some((o.dir.clone(), o.stem.clone(), o.seq));
        }
        r
    }

    fn finish_open(
        &mut self,
        o: &mut OpenSegment,
        ended: Ended,
        end: Option<(i64, u64)>,
    ) -> Result<Manifest, Error> {
        let (end_wall, end_mono) = end.unwrap_or((o.last_wall, o.last_mono));
        o.seal_final()?;
        let mut m = o.meta().manifest(
            &self.store.config().unit_id,
            &self.camera,
            o.seq,
            &o.stem,
            (end_wall, end_mono),
            (o.written, hex::encode(o.ct_hash.clone().finish())),
            ended,
        );
        m.chunks_sha256 = Some(rdc_format::stills::leaves_digest(&o.leaves));
        m.index = o.index.take().map(|mut ix| {
            ix.finish(rdc_format::stills::chunk_count(o.plaintext_len));
            ix
        });
        self.store.commit_segment(&o.dir, &o.stem, &m)?;
        Ok(m)
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        self.store.release_writer(&self.camera);
    }
}

impl std::fmt::Debug for OpenSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSegment")
            .field("stem", &self.stem)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl OpenSegment {
    /// Creates `<stem>.partial` holding the age header, and an empty tail file.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create(
        dir: &Path,
        seq: u64,
        stem: String,
        prefix: &[u8],
        key: PayloadKey,
        f: &Frame<'_>,
        clock: ClockState,
    ) -> Result<Self, Error> {
        let p = dir.join(format!("{stem}.partial"));
        let t = dir.join(format!("{stem}.tail"));
        // Nothing is left behind when the disk refuses: no empty files.
        let cleanup = |e: Error| {
            let _ = std::fs::remove_file(&p);
            let _ = std::fs::remove_file(&t);
            e
        };
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .map_err(io_err("create", &p))?;
        file.write_all(prefix)
            .map_err(io_err("write", &p))
            .map_err(cleanup)?;
        let tail = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&t)
            .map_err(io_err("create", &t))
            .map_err(cleanup)?;
        let mut ct_hash = Context::new(&SHA256);
        ct_hash.update(prefix);
        // Previews are served whole; footage (and any track the name does not say) is indexed.
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let index = rdc_format::track::parse_store_name(name)
            .is_none_or(|(_, t)| t.is_footage())
            .then(rdc_format::stills::FrameIndex::default);
        Ok(OpenSegment {
            leaves: vec![rdc_format::stills::leaf(prefix)],
            index,
            seq,
            stem,
            dir: dir.to_owned(),
            file,
            tail,
            key,
            counter: 0,
            pending: Vec::with_capacity(CHUNK + crate::agefmt::TAG),
            scratch: Vec::with_capacity(CHUNK + crate::agefmt::TAG),
            ct_hash,
            written: prefix.len() as u64,
            plaintext_len: 0,
            start_wall: f.wall_ns,
            start_mono: f.mono_ns,
            last_wall: f.wall_ns,
            last_mono: f.mono_ns,
            frames: 0,
            keyframes: 0,
            wall_steps: 0,
            offset_base: f.wall_ns.wrapping_sub(f.mono_ns as i64),
            clock_start: clock,
            synced_throughout: clock.synchronized,
            times_from: None,
            last_sync_mono: f.mono_ns,
            sync_no: 0,
            running_start: None,
        })
    }

    fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.stem))
    }

    fn add(&mut self, f: &Frame<'_>) -> Result<(), Error> {
        let offset = f.wall_ns.wrapping_sub(f.mono_ns as i64);
        if (offset - self.offset_base).abs() > 1_000_000_000 {
            tracing::warn!(segment = %self.stem, step_ms = (offset - self.offset_base) / 1_000_000, "wall clock stepped");
            self.wall_steps += 1;
            self.offset_base = offset;
        }
        if let Some(ix) = &mut self.index {
            ix.note(
                self.plaintext_len,
                f.mono_ns.saturating_sub(self.start_mono),
                f.keyframe,
            );
        }
        let mut data = f.data;
        while !data.is_empty() {
            // Keep 1..=CHUNK bytes pending: a full chunk is sealed non-final only once more data
            // follows it, so there is always a last chunk to seal final.
            if self.pending.len() == CHUNK {
                self.flush_full()?;
            }
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        self.plaintext_len += f.data.len() as u64;
        self.frames += 1;
        self.keyframes += u64::from(f.keyframe);
        self.last_wall = f.wall_ns;
        self.last_mono = f.mono_ns;
        Ok(())
    }

    /// Seals the pending chunk (non-final) and appends it to the main file.
    fn flush_full(&mut self) -> Result<(), Error> {
        self.write_chunk(false)?;
        self.counter += 1;
        Ok(())
    }

    fn sync(&mut self, now_mono: u64) -> Result<(), Error> {
        let p = self.path("partial");
        self.file.sync_data().map_err(io_err("fdatasync", &p))?;
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.pending);
        self.key
            .seal(self.counter, true, &mut self.scratch)
            .map_err(|e| Error::Crypto(e.0))?;
        let meta = self.meta();
        let rec = encode_tail(&meta, &self.scratch);
        let slot = (self.sync_no % 2) * TAIL_SLOT;
        let t = self.path("tail");
        self.tail
            .write_all_at(&rec, slot)
            .map_err(io_err("write", &t))?;
        self.tail.sync_data().map_err(io_err("fdatasync", &t))?;
        self.sync_no += 1;
        self.last_sync_mono = now_mono;
        Ok(())
    }

    /// What the segment is now: the facts a tail record keeps and a manifest signs.
    fn meta(&self) -> TailMeta {
        TailMeta {
            sync_no: self.sync_no,
            main_len: self.written,
            counter: self.counter,
            start_wall: self.start_wall,
            start_mono: self.start_mono,
            last_wall: self.last_wall,
            last_mono: self.last_mono,
            frames: self.frames,
            keyframes: self.keyframes,
            plaintext_len: self.plaintext_len,
            wall_steps: self.wall_steps,
            clock: self.clock_start,
            synced_throughout: self.synced_throughout,
            running_start: self.running_start,
            times_from: self.times_from,
        }
    }

    /// Seals the last chunk as final, appends it, and makes the file durable.
    fn seal_final(&mut self) -> Result<(), Error> {
        self.write_chunk(true)?;
        let p = self.path("partial");
        self.file.sync_data().map_err(io_err("fdatasync", &p))
    }

    /// Seals the pending bytes as chunk `counter` and appends them to the main file.
    fn write_chunk(&mut self, last: bool) -> Result<(), Error> {
        self.key
            .seal(self.counter, last, &mut self.pending)
            .map_err(|e| Error::Crypto(e.0))?;
        self.ct_hash.update(&self.pending);
        self.leaves.push(rdc_format::stills::leaf(&self.pending));
        let p = self.path("partial");
        self.file
            .write_all(&self.pending)
            .map_err(io_err("write", &p))?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

/// Room for one tail record: a sealed chunk plus its metadata.
const TAIL_SLOT: u64 = (CHUNK + crate::agefmt::TAG + 4096) as u64;
const TAIL_MAGIC: &[u8; 8] = b"RDCTAIL1";

/// What a tail record says about the segment at the moment of a sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TailMeta {
    pub sync_no: u64,
    /// Bytes of the main file that were durable: header and full chunks.
    pub main_len: u64,
    pub counter: u64,
    pub start_wall: i64,
    pub start_mono: u64,
    pub last_wall: i64,
    pub last_mono: u64,
    pub frames: u64,
    pub keyframes: u64,
    pub plaintext_len: u64,
    pub wall_steps: u32,
    pub clock: ClockState,
    pub synced_throughout: bool,
    #[serde(default)]
    pub running_start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times_from: Option<TimeSource>,
}

impl TailMeta {
    /// The manifest of the segment these facts describe, ended at `end` (wall, monotonic), its
    /// file `(length, SHA-256)`: the one place a segment's facts become a manifest, for a
    /// segment closed by the writer and one closed from its tail record after a power cut.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn manifest(
        &self,
        unit: &str,
        camera: &str,
        seq: u64,
        stem: &str,
        (end_ns, end_mono_ns): (i64, u64),
        (ciphertext_len, ciphertext_sha256): (u64, String),
        ended: Ended,
    ) -> Manifest {
        Manifest {
            unit: unit.to_owned(),
            camera: camera.to_owned(),
            seq,
            file: format!("{stem}.age"),
            start_ns: self.start_wall,
            end_ns,
            start_mono_ns: self.start_mono,
            end_mono_ns,
            clock: self.clock,
            clock_synced_throughout: self.synced_throughout,
            wall_steps: self.wall_steps,
            frames: self.frames,
            keyframes: self.keyframes,
            plaintext_len: self.plaintext_len,
            ciphertext_len,
            ciphertext_sha256,
            ended,
            running_start_ns: self.running_start,
            times_from: self.times_from,
            chunks_sha256: None,
            index: None,
        }
    }
}

/// `magic ‖ u32 meta_len ‖ meta JSON ‖ u32 chunk_len ‖ sealed chunk ‖ SHA-256 of all before`.
fn encode_tail(meta: &TailMeta, chunk: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(meta).expect("TailMeta serialises");
    let mut rec = Vec::with_capacity(8 + 8 + json.len() + chunk.len() + 32);
    rec.extend_from_slice(TAIL_MAGIC);
    rec.extend_from_slice(&(json.len() as u32).to_le_bytes());
    rec.extend_from_slice(&json);
    rec.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    rec.extend_from_slice(chunk);
    let h = digest(&SHA256, &rec);
    rec.extend_from_slice(h.as_ref());
    rec
}

fn decode_tail(buf: &[u8]) -> Option<(TailMeta, Vec<u8>)> {
    let rest = buf.strip_prefix(TAIL_MAGIC)?;
    let ml = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let json = rest.get(4..4 + ml)?;
    let rest2 = rest.get(4 + ml..)?;
    let cl = u32::from_le_bytes(rest2.get(..4)?.try_into().ok()?) as usize;
    let chunk = rest2.get(4..4 + cl)?;
    let total = 8 + 4 + ml + 4 + cl;
    let sum = buf.get(total..total + 32)?;
    if digest(&SHA256, &buf[..total]).as_ref() != sum {
        return None;
    }
    let meta: TailMeta = serde_json::from_slice(json).ok()?;
    Some((meta, chunk.to_vec()))
}

pub(crate) fn decode_tail_for_fuzzing(buf: &[u8]) -> bool {
    decode_tail(buf).is_some()
}

/// The newest intact tail record whose main-file length the main file still has.
pub(crate) fn best_tail(
    tail_path: &Path,
    main_len: u64,
) -> Result<Option<(TailMeta, Vec<u8>)>, Error> {
    let buf = match std::fs::read(tail_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", tail_path)(e)),
    };
    let mut best: Option<(TailMeta, Vec<u8>)> = None;
    for slot in 0..2u64 {
        let start = (slot * TAIL_SLOT) as usize;
        if let Some((m, c)) = buf.get(start..).and_then(decode_tail)
            && m.main_len <= main_len
            && best.as_ref().is_none_or(|(b, _)| m.sync_no > b.sync_no)
        {
            best = Some((m, c));
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_record_round_trip_and_damage() {
        let meta = TailMeta {
            sync_no: 3,
            main_len: 1000,
            counter: 2,
            start_wall: 1,
            start_mono: 2,
            last_wall: 3,
            last_mono: 4,
            frames: 5,
            keyframes: 1,
            plaintext_len: 99,
            wall_steps: 0,
            clock: ClockState::UNKNOWN,
            synced_throughout: false,
            running_start: Some(7),
            times_from: Some(TimeSource::CameraRtcp),
        };
        let rec = encode_tail(&meta, b"sealed");
        let (m, c) = decode_tail(&rec).unwrap();
        assert_eq!(
            (m.sync_no, m.main_len, c.as_slice()),
            (3, 1000, &b"sealed"[..])
        );
        for i in [0, 10, rec.len() / 2, rec.len() - 1] {
            let mut bad = rec.clone();
            bad[i] ^= 0x40;
            assert!(decode_tail(&bad).is_none(), "flip at {i} accepted");
        }
        assert!(
            decode_tail(&rec[..rec.len() - 1]).is_none(),
            "torn record accepted"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn meta() -> impl Strategy<Value = TailMeta> {
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<i64>(),
                any::<u64>(),
                any::<u32>(),
                any::<bool>(),
                proptest::option::of(any::<u64>()),
            )
                .prop_map(
                    |(sync_no, main_len, counter, wall, mono, steps, synced, running)| TailMeta {
                        sync_no,
                        main_len,
                        counter,
                        start_wall: wall,
                        start_mono: mono,
                        last_wall: wall,
                        last_mono: mono,
                        frames: counter,
                        keyframes: sync_no,
                        plaintext_len: main_len,
                        wall_steps: steps,
                        clock: ClockState::UNKNOWN,
                        synced_throughout: synced,
                        running_start: running,
                        times_from: None,
                    },
                )
        }

        proptest! {
            #[test]
            fn any_bytes_decode_or_are_refused_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
                let _ = decode_tail(&bytes);
                let mut with_magic = TAIL_MAGIC.to_vec();
                with_magic.extend_from_slice(&bytes);
                let _ = decode_tail(&with_magic);
            }

            #[test]
            fn a_record_round_trips_and_any_flipped_byte_is_refused(
                m in meta(),
                chunk in proptest::collection::vec(any::<u8>(), 0..2000),
                at in any::<usize>(),
                bit in 0u8..8,
            ) {
                let rec = encode_tail(&m, &chunk);
                let (back, c) = decode_tail(&rec).unwrap();
                prop_assert_eq!((back.sync_no, back.main_len, back.running_start), (m.sync_no, m.main_len, m.running_start));
                prop_assert_eq!(c, chunk);
                let mut bad = rec.clone();
                let i = at % bad.len();
                bad[i] ^= 1 << bit;
                prop_assert!(decode_tail(&bad).is_none(), "flip at {} accepted", i);
            }

            #[test]
            fn a_garbage_tail_file_never_breaks_recovery(
                bytes in proptest::collection::vec(any::<u8>(), 0..(2 * TAIL_SLOT as usize + 100)),
                main_len in any::<u64>(),
            ) {
                let dir = tempfile::tempdir().unwrap();
                let p = dir.path().join("x.tail");
                std::fs::write(&p, &bytes).unwrap();
                prop_assert!(best_tail(&p, main_len).is_ok());
            }
        }
    }
}
