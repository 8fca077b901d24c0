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

/// What the writer does with a frame, decided from the frame's kind and monotonic time alone
/// (as [`crate::retention::plan`] decides deletions), so it is tested on simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No segment is open and this is not a keyframe: the frame is dropped.
    Drop,
    /// Start a segment at this keyframe (none is open), durable at once.
    Start,
    /// End the open segment before this keyframe and start the next one at it, durable at once.
    Cut,
    /// Append the frame, then make everything durable.
    Sync,
    /// Append the frame.
    Nothing,
}

/// When segments are cut and synced: the writer's decisions, without its files.
#[derive(Debug, Clone)]
pub struct Cadence {
    /// Segments are cut at the first keyframe this long after their start.
    segment_ns: u64,
    /// Footage is made durable once this long has passed since the last sync.
    sync_ns: u64,
    /// Cut at the next keyframe, however short the segment is.
    cut_next: bool,
    /// The open segment's first frame and last sync, monotonic ns.
    open: Option<(u64, u64)>,
}

impl Cadence {
    pub fn new(segment_ns: u64, sync_ns: u64) -> Self {
        Cadence {
            segment_ns: segment_ns.max(1),
            sync_ns,
            cut_next: false,
            open: None,
        }
    }

    pub fn on_frame(&mut self, keyframe: bool, mono: u64) -> Decision {
        match self.open {
            None if !keyframe => Decision::Drop,
            None => {
                self.open = Some((mono, mono));
                Decision::Start
            }
            Some((start, _))
                if keyframe && (self.cut_next || mono.saturating_sub(start) >= self.segment_ns) =>
            {
                self.cut_next = false;
                self.open = Some((mono, mono));
                Decision::Cut
            }
            Some((start, last_sync)) if mono.saturating_sub(last_sync) >= self.sync_ns => {
                self.open = Some((start, mono));
                Decision::Sync
            }
            Some(_) => Decision::Nothing,
        }
    }

    /// Everything up to `mono` was made durable outside [`Cadence::on_frame`].
    pub fn synced(&mut self, mono: u64) {
        if let Some((_, last)) = &mut self.open {
            *last = (*last).max(mono);
        }
    }

    /// The open segment ended (stopped, or its disk failed): the next keyframe starts one.
    pub fn closed(&mut self) {
        self.open = None;
        self.cut_next = false;
    }

    /// Cut the open segment at the next keyframe, however short it is.
    pub fn cut_at_next_keyframe(&mut self) {
        self.cut_next = self.open.is_some();
    }

    pub fn set_segment_ns(&mut self, ns: u64) {
        self.segment_ns = ns.max(1);
    }
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
    sync_no: u64,
    pub(crate) running_start: Option<u64>,
    /// SHA-256 of the header, then of each chunk written (the manifest signs their digest).
    leaves: Vec<[u8; 32]>,
    /// Where each keyframe starts and how far each chunk reaches; `None` for a track that
    /// is never served in parts (previews).
    index: Option<rdc_format::stills::FrameIndex>,
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
            sync_no: 0,
            running_start: None,
        })
    }

    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// The last frame's (wall, monotonic) time.
    pub(crate) fn last(&self) -> (i64, u64) {
        (self.last_wall, self.last_mono)
    }

    /// Frames and plaintext bytes so far.
    pub(crate) fn size(&self) -> (u64, u64) {
        (self.frames, self.plaintext_len)
    }

    /// Where the segment is, for closing it from its last sync: (dir, stem, seq).
    pub(crate) fn place(&self) -> (PathBuf, String, u64) {
        (self.dir.clone(), self.stem.clone(), self.seq)
    }

    /// The clock was not synchronised at some point while this segment was written.
    pub(crate) fn clock_unsynced(&mut self) {
        self.synced_throughout = false;
    }

    /// Adds a frame whose time came from `times` (if said), while the clock was `synced`.
    pub(crate) fn append(
        &mut self,
        f: &Frame<'_>,
        synced: bool,
        times: Option<TimeSource>,
    ) -> Result<(), Error> {
        self.add(f)?;
        self.synced_throughout &= synced;
        self.times_from = match (self.times_from, times) {
            (Some(a), Some(b)) => Some(a.and(b)),
            (a, b) => a.or(b),
        };
        Ok(())
    }

    /// Seals the final chunk and makes the segment's manifest, ending at `end` (wall,
    /// monotonic), or at its last frame.
    pub(crate) fn seal(
        &mut self,
        unit: &str,
        camera: &str,
        ended: Ended,
        end: Option<(i64, u64)>,
    ) -> Result<Manifest, Error> {
        let end = end.unwrap_or((self.last_wall, self.last_mono));
        self.seal_final()?;
        let mut m = self.meta().manifest(
            unit,
            camera,
            self.seq,
            &self.stem,
            end,
            (self.written, hex::encode(self.ct_hash.clone().finish())),
            ended,
        );
        m.chunks_sha256 = Some(rdc_format::stills::leaves_digest(&self.leaves));
        m.index = self.index.take().map(|mut ix| {
            ix.finish(rdc_format::stills::chunk_count(self.plaintext_len));
            ix
        });
        Ok(m)
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

    /// Makes everything appended so far durable.
    pub(crate) fn sync(&mut self) -> Result<(), Error> {
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

    const S: u64 = 1_000_000_000;

    /// Frames at 10 fps with a keyframe every 2 s, through 10 s segments synced every 1 s.
    #[test]
    fn the_cadence_starts_at_a_keyframe_cuts_after_the_segment_length_and_syncs_each_interval() {
        let mut c = Cadence::new(10 * S, S);
        let mut seen = Vec::new();
        // The camera joins mid-GOP: frames before the first keyframe are dropped.
        for i in 5..=250u64 {
            let mono = i * S / 10;
            let d = c.on_frame(i % 20 == 0, mono);
            if d != Decision::Nothing {
                seen.push((mono / (S / 10), d));
            }
        }
        let drops = seen.iter().filter(|(_, d)| *d == Decision::Drop).count();
        assert_eq!(drops, 15, "frames 5..20 wait for the keyframe");
        assert_eq!(seen[15], (20, Decision::Start));
        let cuts: Vec<u64> = seen
            .iter()
            .filter(|(_, d)| *d == Decision::Cut)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(cuts, [120, 220], "cut at the first keyframe 10 s on");
        let syncs: Vec<u64> = seen
            .iter()
            .filter(|(_, d)| *d == Decision::Sync)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(syncs[..3], [30, 40, 50], "each second after the start");
        assert!(
            syncs.contains(&130) && !syncs.contains(&120) && !syncs.contains(&125),
            "a cut is durable at once; the next sync is a second later: {syncs:?}"
        );
    }

    #[test]
    fn the_cadence_cuts_at_the_next_keyframe_when_asked_and_restarts_after_a_close() {
        let mut c = Cadence::new(10 * S, S);
        assert_eq!(c.on_frame(true, 0), Decision::Start);
        assert_eq!(c.on_frame(false, S / 2), Decision::Nothing);
        c.cut_at_next_keyframe();
        assert_eq!(c.on_frame(false, S * 6 / 10), Decision::Nothing);
        assert_eq!(c.on_frame(true, S * 7 / 10), Decision::Cut);
        assert_eq!(
            c.on_frame(true, S * 8 / 10),
            Decision::Nothing,
            "asked once"
        );
        // An explicit sync moves the next one on.
        c.synced(S * 15 / 10);
        assert_eq!(c.on_frame(false, S * 17 / 10), Decision::Nothing);
        assert_eq!(c.on_frame(false, S * 25 / 10), Decision::Sync);
        c.closed();
        assert_eq!(c.on_frame(false, 3 * S), Decision::Drop);
        assert_eq!(c.on_frame(true, 4 * S), Decision::Start);
        // Asking with nothing open asks nothing of the next segment.
        c.closed();
        c.cut_at_next_keyframe();
        assert_eq!(c.on_frame(true, 5 * S), Decision::Start);
        assert_eq!(c.on_frame(true, 6 * S), Decision::Sync);
    }

    #[test]
    fn a_monotonic_clock_that_goes_back_neither_cuts_nor_syncs() {
        let mut c = Cadence::new(10 * S, S);
        assert_eq!(c.on_frame(true, 100 * S), Decision::Start);
        assert_eq!(c.on_frame(true, 50 * S), Decision::Nothing);
        assert_eq!(c.on_frame(true, 111 * S), Decision::Cut);
    }

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
