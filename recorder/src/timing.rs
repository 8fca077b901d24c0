//! Frame timing, as pure code: the decode times MPEG-TS needs (`Stamper`), camera time onto the
//! unit's monotonic clock (`TimeMap`), and which clock a frame's wall time comes from
//! (`choose_wall`). The camera's writer uses them; ARCHITECTURE.md ("Ingest") says why.

use rdc_storage::TimeSource;

/// How far the camera's clock may be from the unit's for frame times to be the camera's.
const CAMERA_CLOCK_TOLERANCE_NS: i64 = 1_000_000_000;

/// A frame's wall time and where it comes from: the camera's clock (capture time, from its
/// RTCP sender reports) while it agrees with the unit's within a second, else the unit's.
/// A camera clock further off is wrong or unset, and the unit's clock is the one whose
/// synchronisation state every manifest records.
pub(crate) fn choose_wall(camera_wall: Option<i64>, unit_wall: i64) -> (i64, TimeSource) {
    match camera_wall {
        Some(c) if c.abs_diff(unit_wall) <= CAMERA_CLOCK_TOLERANCE_NS as u64 => {
            (c, TimeSource::CameraRtcp)
        }
        _ => (unit_wall, TimeSource::UnitArrival),
    }
}

/// How far a frame's mapped time may be from its arrival before the map is in doubt.
const DRIFT_LIMIT_NS: u64 = 2_000_000_000;
/// How long frames must keep arriving that late before the map is re-anchored: longer than
/// any hiccup a camera recovers from without the session ending (the stall timeout is 5 s).
const LATE_FOR_NS: u64 = 10_000_000_000;

/// Maps a camera's decode timestamps onto the unit's monotonic clock, re-anchoring when the
/// two drift apart (a camera clock running fast or slow, or a camera restart).
///
/// A frame that arrives late was still captured at its timestamp: a camera that froze for
/// 3 s and then sends its backlog, or a unit too busy to read for a moment, must not move its
/// frames' times (nor a segment's cut). So a frame mapped more than 2 s before its arrival
/// keeps the map's time, and only lateness that lasts `LATE_FOR_NS` (a slow camera clock,
/// timestamps that jumped) re-anchors. A frame mapped more than 2 s after its arrival cannot
/// have been captured then (the anchor frame itself came late, or the timestamps jumped
/// forward), and re-anchors at once.
#[derive(Debug)]
pub(crate) struct TimeMap {
    anchor: Option<(u64, u64)>,
    last_mono: u64,
    /// The last frame's timestamp (what `last_mono` was mapped from).
    last_ts: Option<u64>,
    /// The last frame's wall time, the unit clock's wall-minus-monotonic offset then, and the
    /// frame's monotonic time.
    last_wall: Option<(i64, i64, u64)>,
    /// Arrival of the first frame of a run of frames arriving over 2 s late.
    late_since: Option<u64>,
    /// Where the last frame's wall time came from (to log changes).
    pub(crate) source: TimeSource,
    /// PTS minus DTS of the session's first frame.
    pub(crate) lag0: Option<u64>,
    /// The session's first frame's monotonic time and decode time: where the stream's times
    /// start.
    pub(crate) stream0: Option<(u64, u64)>,
}

impl Default for TimeMap {
    fn default() -> Self {
        TimeMap {
            anchor: None,
            last_mono: 0,
            last_ts: None,
            last_wall: None,
            late_since: None,
            source: TimeSource::UnitArrival,
            lag0: None,
            stream0: None,
        }
    }
}

impl TimeMap {
    /// The monotonic time of a frame with decode timestamp `ts_ns` that arrived at
    /// `arrival_mono`. Strictly increasing, by at least the timestamps' own step: a re-anchor
    /// never lands before the previous frame (which could be up to 2 s ahead of its arrival),
    /// so frames never share a time however the camera's timestamps jump.
    pub(crate) fn mono_for(&mut self, ts_ns: Option<u64>, arrival_mono: u64) -> u64 {
        // Where a re-anchored frame goes: its arrival, but never at or before the last frame,
        // which it follows by its timestamp's step (or one 90 kHz tick).
        // (A step up to a few frames: a jump forward is no step to keep.)
        let step = match (ts_ns, self.last_ts) {
            (Some(ts), Some(l)) if ts > l => (ts - l).clamp(MIN_STEP_NS, MAX_FLOOR_STEP_NS),
            _ => MIN_STEP_NS,
        };
        let floor = self.last_mono + step;
        let mono = match (ts_ns, self.anchor) {
            (Some(ts), Some((t0, m0))) if ts >= t0 => {
                let m = m0 + (ts - t0);
                let late = arrival_mono.saturating_sub(m) > DRIFT_LIMIT_NS;
                let early = m.saturating_sub(arrival_mono) > DRIFT_LIMIT_NS;
                if late {
                    self.late_since.get_or_insert(arrival_mono);
                } else {
                    self.late_since = None;
                }
                let late_too_long = self
                    .late_since
                    .is_some_and(|s| arrival_mono - s >= LATE_FOR_NS);
                if early || late_too_long {
                    let at = arrival_mono.max(floor);
                    tracing::info!(
                        drift_ms = (m as i64 - arrival_mono as i64) / 1_000_000,
                        "camera timestamps drifted from the unit clock; re-anchoring"
                    );
                    self.anchor = Some((ts, at));
                    self.late_since = None;
                    at
                } else {
                    m
                }
            }
            (Some(ts), _) => {
                let at = arrival_mono.max(floor);
                if self.anchor.is_some() {
                    tracing::info!("camera timestamps went back; re-anchoring");
                }
                self.anchor = Some((ts, at));
                self.late_since = None;
                at
            }
            (None, _) => arrival_mono.max(floor),
        };
        let mono = mono.max(floor);
        self.last_mono = mono;
        self.last_ts = ts_ns;
        mono
    }

    /// A frame's wall time, given the one chosen for it (`choose_wall`), its monotonic time and
    /// the unit clock's wall-minus-monotonic offset now: strictly increasing, advancing by the
    /// monotonic step where the chosen time would not (a camera clock that moved back, or the
    /// switch from the camera's clock to the unit's). A step of the unit's own clock (its offset
    /// moved over a second) is taken as it is: the segment writer signs it as a wall step.
    pub(crate) fn wall_for(&mut self, wall: i64, mono: u64, unit_offset: i64) -> i64 {
        let w = match self.last_wall {
            Some((last, off, last_mono))
                if wall <= last && (unit_offset - off).abs() <= CLOCK_STEP_NS =>
            {
                last + mono.saturating_sub(last_mono).max(1) as i64
            }
            _ => wall,
        };
        self.last_wall = Some((w, unit_offset, mono));
        w
    }
}

/// The smallest step between two frames' times: one tick of MPEG-TS's 90 kHz clock (rounded
/// up), so no two frames share a time in the stream either.
pub(crate) const MIN_STEP_NS: u64 = 11_112;
/// The most a re-anchored frame is kept after the previous one (a few frames).
const MAX_FLOOR_STEP_NS: u64 = 100_000_000;
/// A change of the unit clock's wall-minus-monotonic offset beyond this is a clock step.
const CLOCK_STEP_NS: i64 = 1_000_000_000;
/// How far a camera's timestamps may go back before it is a jump, not B-frame reordering.
const JUMP_BACK_NS: u64 = 1_000_000_000;

/// Gives every access unit a presentation and a decode time that MPEG-TS accepts.
///
/// Cameras' RTP gives presentation times only, in decode order, and the parser leaves DTS unset
/// (and the odd PTS too). With B-frames, PTS goes back and forth; TS needs DTS increasing and
/// never after PTS. The decode clock here starts `REORDER` frames before the first PTS and
/// advances one frame duration per frame, never passing the frame's PTS; at a keyframe (closed
/// GOP: nothing after it shows earlier) it catches up so it never lags after a gap.
#[derive(Debug, Default)]
pub(crate) struct Stamper {
    last_dts: Option<u64>,
    last_pts: Option<u64>,
    /// Added to the camera's presentation times: moved when they jump back (an encoder that
    /// restarts its timestamps), so the stream goes on from where it was.
    offset: u64,
    /// The highest presentation time so far (after `offset`).
    max_pts: u64,
    recent: Vec<u64>,
    dur: u64,
}

const REORDER: u64 = 4;

impl Stamper {
    /// A stamper for a stream that declares this frame interval (plausible ones only: 1 to
    /// 120 frames a second).
    pub(crate) fn with_frame_duration(frame_ns: Option<u64>) -> Self {
        Stamper {
            dur: frame_ns
                .filter(|d| (8_000_000..=1_000_000_000).contains(d))
                .unwrap_or(0),
            ..Stamper::default()
        }
    }

    pub(crate) fn frame_duration(&self) -> u64 {
        if self.dur == 0 { 40_000_000 } else { self.dur }
    }

    /// Returns (pts, dts) in ns.
    pub(crate) fn stamp(
        &mut self,
        pts: Option<u64>,
        dts: Option<u64>,
        keyframe: bool,
    ) -> (u64, u64) {
        let dur = self.frame_duration();
        // A presentation time more than a second before the latest is no B-frame: the camera's
        // timestamps jumped back. Go on one frame after the latest instead.
        let mut pts = pts.map(|p| p + self.offset);
        if let Some(p) = pts
            && self.last_pts.is_some()
            && p + JUMP_BACK_NS < self.max_pts
        {
            let to = self.max_pts + dur;
            tracing::info!(
                jump_ms = (p as i64 - self.max_pts as i64) / 1_000_000,
                "the camera's timestamps jumped back; its frames go on from the last"
            );
            self.offset += to - p;
            self.recent.clear();
            pts = Some(to);
        }
        // RTP depayloaders stamp only the first buffer of an RTP timestamp: no PTS means the
        // previous buffer's.
        let pts = pts.or(self.last_pts).unwrap_or(REORDER * dur);
        self.last_pts = Some(pts);
        self.max_pts = self.max_pts.max(pts);
        // Learn the frame duration from the smallest gap between recent presentation times:
        // with B-frames the smallest shows only after a few frames, so until then it may only
        // shrink.
        self.recent.push(pts);
        if self.recent.len() > 8 {
            self.recent.remove(0);
        }
        let mut sorted = self.recent.clone();
        sorted.sort_unstable();
        if let Some(d) = sorted
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 1_000_000)
            .min()
            && (self.recent.len() > REORDER as usize || d < self.frame_duration())
        {
            self.dur = d;
        }
        let dur = self.frame_duration();
        let dts = match (dts, self.last_dts) {
            (Some(d), Some(last)) if d > last && d <= pts => d,
            (Some(d), None) if d <= pts => d,
            (_, None) => pts.saturating_sub(REORDER * dur),
            (_, Some(last)) => {
                let mut d = (last + dur).min(pts);
                if keyframe {
                    d = d.max(pts.saturating_sub(REORDER * dur));
                }
                d.max(last + MIN_STEP_NS)
            }
        };
        self.last_dts = Some(dts);
        (pts.max(dts), dts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamper_gives_increasing_dts_never_after_pts() {
        const F: u64 = 40_000_000;
        // Decode order I0 P3 B1 B2 P6 B4 B5 I9 ..., one PTS missing, as cameras send them.
        let order = [0u64, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11];
        let mut s = Stamper::default();
        let mut last = None;
        for (i, p) in order.iter().enumerate() {
            let pts = if i == 5 {
                None
            } else {
                Some(1_000_000_000 + p * F)
            };
            let key = p % 9 == 0;
            let (pts, dts) = s.stamp(pts, None, key);
            assert!(dts <= pts, "frame {i}: dts {dts} after pts {pts}");
            if let Some(l) = last {
                assert!(dts > l, "frame {i}: dts not increasing");
            }
            last = Some(dts);
        }
        assert_eq!(s.frame_duration(), F);
        // A gap (camera hiccup): the decode clock catches up at the next keyframe.
        let (pts, dts) = s.stamp(Some(1_000_000_000 + 100 * F), None, true);
        assert!(pts - dts <= REORDER * F);
    }

    #[test]
    fn the_cameras_clock_is_used_only_while_it_agrees_with_the_units() {
        let unit = 1_800_000_000_000_000_000i64;
        assert_eq!(
            choose_wall(Some(unit - 40_000_000), unit),
            (unit - 40_000_000, TimeSource::CameraRtcp),
            "capture 40 ms before arrival: the camera's time"
        );
        assert_eq!(
            choose_wall(Some(unit + 999_000_000), unit),
            (unit + 999_000_000, TimeSource::CameraRtcp)
        );
        // A camera whose clock is 2 s or a year off, or that sends no sender reports.
        for camera in [
            Some(unit + 2_000_000_000),
            Some(unit - 31_536_000_000_000_000),
            None,
        ] {
            assert_eq!(
                choose_wall(camera, unit),
                (unit, TimeSource::UnitArrival),
                "{camera:?}"
            );
        }
        assert_eq!(
            TimeSource::CameraRtcp.and(TimeSource::UnitArrival),
            TimeSource::Mixed
        );
        assert_eq!(
            TimeSource::CameraRtcp.and(TimeSource::CameraRtcp),
            TimeSource::CameraRtcp
        );
    }

    #[test]
    fn stamper_starts_with_the_declared_frame_interval_under_b_frames() {
        const F: u64 = 40_000_000;
        // Decode order I0 P3 B1 B2 P6 B4 B5: the first gap seen is 3 frames.
        let order = [0u64, 3, 1, 2, 6, 4, 5, 9, 7, 8];
        for declared in [Some(F), None] {
            let mut s = Stamper::with_frame_duration(declared);
            let dts: Vec<u64> = order
                .iter()
                .map(|p| s.stamp(Some(10 * F + p * F), None, *p == 0).1)
                .collect();
            for w in dts.windows(2) {
                assert_eq!(w[1] - w[0], F, "{declared:?}: {dts:?}");
            }
        }
    }

    #[test]
    fn time_map_follows_timestamps_and_reanchors() {
        let mut t = TimeMap::default();
        assert_eq!(t.mono_for(Some(1_000), 50_000), 50_000);
        // Jittery arrival, steady timestamps: frame times follow the timestamps.
        assert_eq!(t.mono_for(Some(40_001_000), 40_090_000), 40_050_000);
        // A camera restart (timestamps back to 0): re-anchored, still increasing.
        let m = t.mono_for(Some(0), 90_000_000);
        assert_eq!(m, 90_000_000);
        // Timestamps 2 s and more ahead of arrival: re-anchored on arrival at once.
        assert_eq!(
            t.mono_for(Some(10_000_000_000), 1_000_000_000),
            1_000_000_000
        );
        // Never backwards.
        assert!(t.mono_for(None, 5) > 1_000_000_000);
    }

    #[test]
    fn late_frames_keep_their_times_until_lateness_lasts() {
        const S: u64 = 1_000_000_000;
        const F: u64 = 40_000_000;
        let mut t = TimeMap::default();
        assert_eq!(t.mono_for(Some(0), 100 * S), 100 * S);
        // A 3 s freeze, then the backlog in a burst: every frame keeps its capture time.
        for i in 1..=150u64 {
            // Frames 25 to 99 are captured during the freeze (1 s to 4 s) and sent at 4 s.
            let arrival = if (25..100).contains(&i) {
                104 * S + (i - 25) * 2_000_000
            } else {
                100 * S + i * F
            };
            assert_eq!(
                t.mono_for(Some(i * F), arrival),
                100 * S + i * F,
                "frame {i}"
            );
        }
        // Then on time again.
        assert_eq!(
            t.mono_for(Some(200 * F), 100 * S + 200 * F + 5),
            100 * S + 200 * F
        );
        // A camera clock that falls 3 s behind and stays there: kept for 10 s, then
        // re-anchored on arrival.
        let base = 100 * S + 200 * F;
        let mut re_anchored = None;
        for i in 1..=400u64 {
            let ts = 200 * F + i * F;
            let arrival = base + 3 * S + i * F;
            let m = t.mono_for(Some(ts), arrival);
            if m == arrival {
                re_anchored = Some(i);
                break;
            }
            assert_eq!(m, base + i * F);
        }
        assert_eq!(
            re_anchored,
            Some(251),
            "re-anchored after 10 s late, at frame 251"
        );
        assert_eq!(
            t.mono_for(Some(200 * F + 252 * F), base + 3 * S + 252 * F),
            base + 3 * S + 252 * F
        );
    }

    /// A camera's frames through the stamper and the map, as the writer gives them: (raw
    /// presentation time, arrival) in, (dts, mono) out.
    fn run(frames: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let mut s = Stamper::with_frame_duration(Some(40_000_000));
        let mut t = TimeMap::default();
        frames
            .iter()
            .enumerate()
            .map(|(i, &(pts, arrival))| {
                let (_, dts) = s.stamp(Some(pts), None, i % 25 == 0);
                (dts, t.mono_for(Some(dts), arrival))
            })
            .collect()
    }

    #[test]
    fn timestamps_that_jump_back_never_make_frames_share_a_time() {
        const S: u64 = 1_000_000_000;
        const F: u64 = 40_000_000;
        // An encoder that restarts its timestamps every 8 s (200 frames), and one that jumps
        // back 14.669 s once (a second client on the camera), for 60 s of arrivals.
        let restarts: Vec<(u64, u64)> = (0..1500u64)
            .map(|i| (S + (i % 200) * F, 100 * S + i * F))
            .collect();
        let once: Vec<(u64, u64)> = (0..1500u64)
            .map(|i| {
                let pts = 20 * S + i * F;
                (
                    if i >= 400 { pts - 14_669_000_000 } else { pts },
                    100 * S + i * F,
                )
            })
            .collect();
        for (what, frames) in [("restarts", restarts), ("one jump", once)] {
            let out = run(&frames);
            for (i, w) in out.windows(2).enumerate() {
                let (d, m) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
                assert!(
                    (F / 2..=2 * F).contains(&d) && (F / 2..=2 * F).contains(&m),
                    "{what}: frame {}: decode step {d}, mono step {m}",
                    i + 1
                );
            }
            for (i, ((_, m), (_, arrival))) in out.iter().zip(&frames).enumerate() {
                assert!(
                    m.abs_diff(*arrival) <= DRIFT_LIMIT_NS,
                    "{what}: frame {i} at {m}, arrived {arrival}"
                );
            }
        }
    }

    #[test]
    fn a_re_anchor_never_lands_at_or_before_the_last_frame() {
        const S: u64 = 1_000_000_000;
        const F: u64 = 40_000_000;
        let mut t = TimeMap::default();
        t.mono_for(Some(0), 100 * S);
        // Frames mapped 1.9 s ahead of their arrival (they arrive early: the anchor came late).
        let mut last = 0;
        for i in 1..50u64 {
            last = t.mono_for(Some(i * F), 100 * S + i * F - 1_900_000_000);
        }
        // Timestamps jump 5 s ahead: re-anchored, yet after the last frame by a frame's step.
        let m = t.mono_for(Some(50 * F + 5 * S), 100 * S + 50 * F - 1_900_000_000);
        assert_eq!(m, last + 100_000_000);
    }

    #[test]
    fn wall_times_increase_strictly_unless_the_units_clock_steps() {
        const S: i64 = 1_000_000_000;
        let mut t = TimeMap::default();
        let off = 1_800_000_000 * S;
        assert_eq!(t.wall_for(off + 10 * S, 10 * S as u64, off), off + 10 * S);
        // The camera's clock moved back 14.669 s: the frame goes on by its monotonic step.
        let w = t.wall_for(
            off + 10 * S - 14_669_000_000,
            10 * S as u64 + 40_000_000,
            off,
        );
        assert_eq!(w, off + 10 * S + 40_000_000);
        // Back on the unit's clock (0.5 s behind the camera's): still forward.
        let w2 = t.wall_for(off + 10 * S - 500_000_000, 10 * S as u64 + 80_000_000, off);
        assert_eq!(w2, off + 10 * S + 80_000_000);
        // The unit's own clock stepped back an hour: taken as it is (the writer signs the step).
        let back = off - 3600 * S;
        let w3 = t.wall_for(back + 10 * S, 10 * S as u64 + 120_000_000, back);
        assert_eq!(w3, back + 10 * S);
    }
}
