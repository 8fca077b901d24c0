//! A camera's preview track: one keyframe in every `interval` of wall-clock time, written as a
//! track of its own ([`rdc_format::track`]) by the same writer as the footage, so each preview
//! is encrypted to the scheme's recipients, signed, chained, indexed and retained like the
//! footage it was taken from. Nothing is decoded: a keyframe is a picture on its own.
//!
//! The keyframe kept is the first whose time falls in a new slot of `interval` (slots start at
//! multiples of `interval` since the epoch), so previews line up with the minute and a contact
//! sheet's tiles each find one preview, whatever the camera's keyframe spacing (up to the
//! interval).

use crate::manifest::{ClockState, Manifest, TimeSource};
use crate::writer::Frame;
use crate::{Error, Pushed, SegmentWriter, Store};

/// A preview segment holds this many previews (it is cut at the first preview `interval` times
/// this after its start): at 10 s, ten minutes a segment, six an hour, 144 a day. A segment is
/// served once it is closed; an officer asking for previews the open segment holds has it cut
/// at the next preview ([`PreviewWriter::cut_at_next`]), so the newest are served within one
/// interval.
pub const PREVIEWS_PER_SEGMENT: u64 = 60;

/// Writes one camera's preview track. Obtained from [`Store::preview_writer`].
#[derive(Debug)]
pub struct PreviewWriter {
    writer: SegmentWriter,
    interval_ns: i64,
    last_slot: Option<i64>,
    /// The footage's newest frame (wall, monotonic): where a preview segment closed with the
    /// footage ends.
    last_seen: Option<(i64, u64)>,
}

impl PreviewWriter {
    pub(crate) fn new(mut writer: SegmentWriter, interval_ns: u64) -> Self {
        writer.set_segment_ns(PREVIEWS_PER_SEGMENT * interval_ns);
        PreviewWriter {
            writer,
            interval_ns: interval_ns.max(1) as i64,
            last_slot: None,
            last_seen: None,
        }
    }

    /// Told of every frame of the footage: whether this one is to be kept (a keyframe, the
    /// first in its slot).
    pub fn wants(&mut self, keyframe: bool, wall_ns: i64, mono_ns: u64) -> bool {
        self.last_seen = Some((wall_ns, mono_ns));
        keyframe && self.last_slot != Some(wall_ns.div_euclid(self.interval_ns))
    }

    /// Keeps `f` (a keyframe that [`PreviewWriter::wants`], muxed on its own) as its slot's
    /// preview. A disk failure is handled as the footage's writer handles it.
    pub fn push(&mut self, f: &Frame<'_>) -> Result<Pushed, Error> {
        debug_assert!(f.keyframe, "previews are keyframes");
        let p = self.writer.push(f)?;
        if !p.dropped {
            self.last_slot = Some(f.wall_ns.div_euclid(self.interval_ns));
        }
        Ok(p)
    }

    /// Ends the open preview segment with the footage's, for the same cause, at the footage's
    /// last frame (so the preview track's gaps are the footage's).
    pub fn close(&mut self, cause: &str) -> Result<Option<Manifest>, Error> {
        self.writer.close_at(cause, self.last_seen.take())
    }

    pub fn sync(&mut self) -> Result<(), Error> {
        self.writer.sync()
    }

    /// Cuts the open preview segment at the next preview (someone asked for what it holds).
    pub fn cut_at_next(&mut self) {
        self.writer.cut_at_next_keyframe();
    }

    pub fn set_clock(&mut self, state: ClockState) {
        self.writer.set_clock(state);
    }

    pub fn set_times(&mut self, source: TimeSource) {
        self.writer.set_times(source);
    }

    /// The store name of the track written.
    pub fn track(&self) -> &str {
        self.writer.camera()
    }
}

impl Store {
    /// The preview writer for `camera`, when the store keeps previews (`preview_interval_ns`).
    pub fn preview_writer(&self, camera: &str) -> Result<Option<PreviewWriter>, Error> {
        let Some(every) = self.config().preview_interval_ns else {
            return Ok(None);
        };
        let name = rdc_format::Track::Preview.store_name(camera);
        Ok(Some(PreviewWriter::new(self.writer(&name)?, every)))
    }
}
