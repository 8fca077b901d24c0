//! One camera's recording: frames in, segments out. The decisions (when to start, cut and
//! sync) are [`Cadence`]'s, pure and tested on simulated time; the segment file is
//! [`OpenSegment`]'s; what is left here is asking the store for a new segment and giving it
//! the finished one back, and what a failing disk does to both.

use super::*;
use crate::manifest::TimeSource;
use crate::writer::{Cadence, Decision};

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
    store: Store,
    camera: String,
    open: Option<OpenSegment>,
    cadence: Cadence,
    clock: ClockState,
    /// Which clock the frames pushed now have their times from, if the caller said.
    times: Option<TimeSource>,
    /// Frames dropped while waiting for the first keyframe.
    pub dropped_before_keyframe: u64,
    /// A segment whose writing failed and that could not be closed yet: (dir, stem, seq).
    orphan: Option<(PathBuf, String, u64)>,
    /// Recording stopped at this wall time for this cause: recorded when it resumes.
    gap: Option<(i64, String)>,
}

impl Store {
    /// The writer for one camera. Only one may exist per camera at a time.
    pub fn writer(&self, camera: &str) -> Result<SegmentWriter, Error> {
        track_name(camera)?;
        if !lock(&self.inner.writers).insert(camera.to_owned()) {
            return Err(Error::WriterBusy(camera.to_owned()));
        }
        let cfg = &self.inner.cfg;
        Ok(SegmentWriter {
            store: self.clone(),
            camera: camera.to_owned(),
            open: None,
            cadence: Cadence::new(cfg.segment_ns, cfg.sync_interval_ns),
            clock: ClockState::UNKNOWN,
            times: None,
            dropped_before_keyframe: 0,
            orphan: None,
            gap: None,
        })
    }
}

impl SegmentWriter {
    pub fn camera(&self) -> &str {
        &self.camera
    }

    /// Cuts the open segment at the next keyframe pushed, so what it holds can be served: a
    /// [`Ended::Cut`], as at the segment length, so no gap follows.
    pub fn cut_at_next_keyframe(&mut self) {
        self.cadence.cut_at_next_keyframe();
    }

    /// Cuts this writer's segments at the first keyframe `ns` after their start, instead of the
    /// store's segment length (a preview track keeps fewer, longer segments).
    pub fn set_segment_ns(&mut self, ns: u64) {
        self.cadence.set_segment_ns(ns);
    }

    /// Says which clock the frames pushed from now on have their times from; a segment with
    /// frames of two sources is recorded as [`TimeSource::Mixed`].
    pub fn set_times(&mut self, source: TimeSource) {
        self.times = Some(source);
    }

    /// Records the clock-sync state; it goes into the manifest of every segment it touches.
    pub fn set_clock(&mut self, state: ClockState) {
        self.clock = state;
        if let Some(o) = &mut self.open
            && !state.synchronized
        {
            o.clock_unsynced();
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
        let r = match self.push_inner(f) {
            Err(e @ Error::Io { .. }) => Ok(self.storage_failed(f, &e)),
            r => r,
        };
        if self.open.is_none() {
            self.cadence.closed();
        }
        r
    }

    fn push_inner(&mut self, f: &Frame<'_>) -> Result<Pushed, Error> {
        let mut out = Pushed::default();
        let decision = self.cadence.on_frame(f.keyframe, f.mono_ns);
        match decision {
            Decision::Drop => {
                self.dropped_before_keyframe += 1;
                out.dropped = true;
                return Ok(out);
            }
            Decision::Cut if self.open.is_some() => {
                out.closed = Some(self.finish(Ended::Cut, Some((f.wall_ns, f.mono_ns)))?);
            }
            Decision::Start | Decision::Cut | Decision::Sync | Decision::Nothing => {}
        }
        if self.open.is_none() {
            if !matches!(decision, Decision::Start | Decision::Cut) {
                // Never so: the cadence is told of every close. Safe if it were.
                self.cadence.closed();
                self.dropped_before_keyframe += 1;
                out.dropped = true;
                return Ok(out);
            }
            if let Some(m) = self.start(f)? {
                out.closed = Some(m);
            }
        }
        let o = self.open.as_mut().expect("started above");
        o.append(f, self.clock.synchronized, self.times)?;
        // A new segment is made durable at its first frame (the keyframe), not a sync interval
        // later: a power cut in its first second then loses nothing already written.
        if decision != Decision::Nothing {
            o.sync()?;
            out.synced = true;
        }
        Ok(out)
    }

    /// Opens a segment at keyframe `f`: first whatever a failed disk left behind is closed
    /// (returned) and the gap it made recorded, then the store hands out the new file.
    fn start(&mut self, f: &Frame<'_>) -> Result<Option<Manifest>, Error> {
        let mut closed = None;
        if let Some((dir, stem, seq)) = self.orphan.take() {
            let cause = "the unit's disk failed or was full";
            match self
                .store
                .close_failed(&self.camera, &dir, &stem, seq, cause)
            {
                Ok(m) => closed = m,
                Err(e) => {
                    self.orphan = Some((dir, stem, seq));
                    return Err(e);
                }
            }
        }
        self.store.ensure_room()?;
        if let Some((start, cause)) = self.gap.take() {
            let why = format!("{}: {cause}", rdc_format::manifest::NOT_RECORDED);
            if let Err(e) = self.store.record_gap(&self.camera, start, f.wall_ns, &why) {
                self.gap = Some((start, cause));
                return Err(e);
            }
        }
        self.open = Some(self.store.begin_segment(&self.camera, f, self.clock)?);
        Ok(closed)
    }

    fn storage_failed(&mut self, f: &Frame<'_>, e: &Error) -> Pushed {
        let cause = format!("the unit's disk failed or was full ({e})");
        tracing::error!(camera = %self.camera, error = %e, "storage failed: closing the segment at its last sync; recording resumes at the next keyframe");
        if let Err(e) = self.store.make_room() {
            tracing::error!(camera = %self.camera, error = %e, "cannot free space");
        }
        if let Some(o) = self.open.take() {
            self.orphan = Some(o.place());
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

    /// Makes everything pushed so far durable now.
    pub fn sync(&mut self) -> Result<(), Error> {
        if let Some(o) = &mut self.open {
            o.sync()?;
            self.cadence.synced(o.last().1);
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
        let (last_wall, last_mono) = o.last();
        let end = end.filter(|(w, m)| *w >= last_wall && *m >= last_mono);
        let ended = Ended::Stopped {
            cause: cause.to_owned(),
        };
        let r = self.finish(ended, end).map(Some);
        self.cadence.closed();
        r
    }

    /// The open segment's sequence number, frames and plaintext bytes so far.
    pub fn current(&self) -> Option<(u64, u64, u64)> {
        self.open.as_ref().map(|o| {
            let (frames, bytes) = o.size();
            (o.seq(), frames, bytes)
        })
    }

    /// Whether a segment is open (recording is in progress).
    pub fn is_recording(&self) -> bool {
        self.open.is_some()
    }

    /// Seals the open segment and gives it to the store.
    fn finish(&mut self, ended: Ended, end: Option<(i64, u64)>) -> Result<Manifest, Error> {
        let mut o = self.open.take().expect("callers check a segment is open");
        let r = o
            .seal(&self.store.config().unit_id, &self.camera, ended, end)
            .and_then(|m| {
                let (dir, stem, _) = o.place();
                self.store.commit_segment(&dir, &stem, &m).map(|()| m)
            });
        if r.is_err() {
            // Closed later from its last sync (or at the next open, as after a power cut).
            self.orphan = Some(o.place());
        }
        r
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        self.store.release_writer(&self.camera);
    }
}
