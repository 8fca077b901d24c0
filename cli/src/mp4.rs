//! The working copy of an export: the decrypted segments of a range remuxed, without
//! re-encoding, into one MP4 (GStreamer's `mp4mux`, moov first so it plays while it downloads)
//! with a subtitle track giving each second's wall-clock time (UTC and UK local) and the camera.
//!
//! The segments' access units are read with `rdc_format::ts` and placed on one timeline by
//! their wall-clock times (each segment's signed start plus its own 90 kHz decode times), so a
//! gap in the footage is a gap in the MP4's timeline: the last frame before it stays on screen
//! and the subtitle says why there is no footage.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rdc_format::export::Gap;
use rdc_format::ts::{self, Codec};

/// One segment's decrypted TS and the wall-clock time of its first frame (from its manifest).
#[derive(Debug, Clone)]
pub struct Piece {
    pub ts: PathBuf,
    pub start_ns: i64,
    /// The segment follows the previous piece without a gap (the previous one was cut, in the
    /// same camera session): its frames continue the previous one's decode times, so the
    /// timeline has no jitter at the cut. Otherwise they are placed by `start_ns`.
    pub continues: bool,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub codec: Codec,
    /// Wall-clock time of the first frame (a keyframe) and of the end of the last.
    pub first_ns: i64,
    pub end_ns: i64,
    pub frames: u64,
}

const NS_PER_TICK_NUM: u64 = 100_000;
const NS_PER_TICK_DEN: u64 = 9;

fn ticks_to_ns(t: u64) -> i64 {
    (t * NS_PER_TICK_NUM / NS_PER_TICK_DEN) as i64
}

/// The text of the subtitle for the second starting at `ns`.
pub fn cue_text(ns: i64, camera: &str, gap: Option<&Gap>) -> String {
    let mut t = format!(
        "{} | {} | camera {camera}",
        rdc_format::time::utc_plain(ns),
        rdc_format::time::uk_local(ns)
    );
    if let Some(g) = gap {
        t.push_str(&format!(" | NO FOOTAGE: {}", g.cause));
    }
    t
}

/// The time track's next cue from `cue_at`: the second it names, where it stops and the gap it
/// is in. A cue runs to the next whole second, or to where a gap starts or ends if sooner, so
/// every gap the manifest lists has a cue of its own however short, even inside one second.
/// Without `end`, only cues that end by `until` (the video has reached them); with it, the
/// rest up to `end`.
pub fn next_cue(
    cue_at: i64,
    until: i64,
    end: Option<i64>,
    gaps: &[Gap],
) -> Option<(i64, i64, Option<&Gap>)> {
    if cue_at >= until {
        return None;
    }
    let second = cue_at.div_euclid(1_000_000_000) * 1_000_000_000;
    let mut stop = second + 1_000_000_000;
    for g in gaps {
        for edge in [g.range.from_ns, g.range.to_ns] {
            if edge > cue_at && edge < stop {
                stop = edge;
            }
        }
    }
    if let Some(e) = end {
        stop = stop.min(e);
    } else if stop > until {
        return None;
    }
    if stop <= cue_at {
        return None;
    }
    let gap = gaps
        .iter()
        .find(|g| g.range.from_ns <= cue_at && cue_at < g.range.to_ns);
    Some((second, stop, gap))
}

/// The decode time and duration the last frame must have after the parser.
type LastFrame = Arc<Mutex<Option<(gst::ClockTime, gst::ClockTime)>>>;

/// A frame ready to be pushed: wall-clock decode time, presentation offset, bytes.
struct Frame {
    dts_wall: i64,
    dts90: u64,
    pts_offset: i64,
    keyframe: bool,
    data: Vec<u8>,
}

/// Builds the working copy of `[from_ns, to_ns)` from `pieces` (in order) into `out`.
/// The copy starts at the keyframe at or before `from_ns`.
pub fn working_copy(
    pieces: &[Piece],
    (from_ns, to_ns): (i64, i64),
    camera: &str,
    gaps: &[Gap],
    out: &Path,
) -> anyhow::Result<Made> {
    gst::init().context("GStreamer could not start")?;
    let Some(first) = pieces.first() else {
        bail!("no footage to put in the working copy");
    };
    let first_video = read_piece(first)?;
    let codec = first_video.codec;
    let (caps_name, parser) = match codec {
        Codec::H264 => ("video/x-h264", "h264parse"),
        Codec::H265 => ("video/x-h265", "h265parse"),
    };
    let caps = gst::Caps::builder(caps_name)
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .build();
    let vsrc = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .block(true)
        .max_bytes(16 << 20)
        .build();
    let text_caps = gst::Caps::builder("text/x-raw")
        .field("format", "utf8")
        .build();
    let tsrc = gst_app::AppSrc::builder()
        .caps(&text_caps)
        .format(gst::Format::Time)
        .block(true)
        .max_bytes(4 << 20)
        .build();
    let parse = gst::ElementFactory::make(parser).build().with_context(|| {
        format!("GStreamer's {parser} is missing: install gstreamer1.0-plugins-bad")
    })?;
    let tmp = out.with_extension("mp4.part-moov");
    let mux = gst::ElementFactory::make("mp4mux")
        .property("faststart", true)
        .property("faststart-file", tmp.to_string_lossy().as_ref())
        .build()
        .context("GStreamer's mp4mux is missing: install gstreamer1.0-plugins-good")?;
    let sink = gst::ElementFactory::make("filesink")
        .property("location", out.to_string_lossy().as_ref())
        .build()
        .context("GStreamer's filesink is missing: install gstreamer1.0-plugins-base")?;
    let pipeline = gst::Pipeline::new();
    pipeline.add_many([vsrc.upcast_ref(), &parse, &mux, &sink, tsrc.upcast_ref()])?;
    gst::Element::link_many([vsrc.upcast_ref(), &parse, &mux, &sink])?;
    let sub_pad = mux
        .request_pad_simple("subtitle_%u")
        .ok_or_else(|| anyhow!("mp4mux gave no subtitle pad"))?;
    tsrc.static_pad("src")
        .ok_or_else(|| anyhow!("appsrc without a src pad"))?
        .link(&sub_pad)
        .map_err(|e| anyhow!("linking the time track: {e:?}"))?;
    // The parser gives every frame the stream's frame duration; the last one must keep the
    // duration `feed` gave it (see there), so it is set again after the parser.
    let last: LastFrame = Arc::new(Mutex::new(None));
    let l = last.clone();
    parse
        .static_pad("src")
        .ok_or_else(|| anyhow!("{parser} without a src pad"))?
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let want = *l.lock().unwrap_or_else(|p| p.into_inner());
            if let (Some((dts, dur)), Some(gst::PadProbeData::Buffer(b))) = (want, &mut info.data)
                && b.dts() == Some(dts)
            {
                b.make_mut().set_duration(dur);
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing)?;

    let result = feed(
        pieces,
        first_video,
        (from_ns, to_ns),
        camera,
        gaps,
        (&vsrc, &tsrc),
        &last,
    );
    let _ = vsrc.end_of_stream();
    let _ = tsrc.end_of_stream();
    let bus = pipeline
        .bus()
        .ok_or_else(|| anyhow!("pipeline without a bus"))?;
    let mut failure = None;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => {
                failure = Some(format!("{} ({:?})", e.error(), e.debug()));
                break;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null)?;
    let _ = std::fs::remove_file(&tmp);
    let made = result?;
    if let Some(f) = failure {
        let _ = std::fs::remove_file(out);
        bail!("the working copy could not be written: {f}");
    }
    Ok(made)
}

fn read_piece(p: &Piece) -> anyhow::Result<ts::Video> {
    let bytes = std::fs::read(&p.ts).with_context(|| format!("reading {}", p.ts.display()))?;
    ts::read_video(&bytes).with_context(|| format!("{} is not readable footage", p.ts.display()))
}

/// Frames of one segment on the wall clock.
/// Frames of one segment on the wall clock: from `anchor` (a wall time and the 90 kHz decode
/// time it belongs to), each frame after the one before it, so a 33-bit wrap is harmless.
fn frames_of(video: ts::Video, anchor: (i64, u64)) -> Vec<Frame> {
    let (mut wall, mut prev) = anchor;
    video
        .units
        .into_iter()
        .map(|u| {
            let off = ts::ticks_since(u.pts, u.dts);
            wall += ticks_to_ns(ts::ticks_since(u.dts, prev));
            prev = u.dts;
            Frame {
                dts_wall: wall,
                dts90: u.dts,
                // A PTS before its DTS (damaged timing) is shown at its decode time.
                pts_offset: if off < 90_000 * 10 {
                    ticks_to_ns(off)
                } else {
                    0
                },
                keyframe: u.keyframe,
                data: u.data,
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn feed(
    pieces: &[Piece],
    first_video: ts::Video,
    (from_ns, to_ns): (i64, i64),
    camera: &str,
    gaps: &[Gap],
    (vsrc, tsrc): (&gst_app::AppSrc, &gst_app::AppSrc),
    last: &LastFrame,
) -> anyhow::Result<Made> {
    let codec = first_video.codec;
    let d0 = first_video.units.first().map_or(0, |u| u.dts);
    let mut first = frames_of(first_video, (pieces[0].start_ns, d0));
    // Start at the last keyframe at or before the requested start (or the first keyframe).
    let start_i = first
        .iter()
        .rposition(|f| f.keyframe && f.dts_wall <= from_ns)
        .or_else(|| first.iter().position(|f| f.keyframe))
        .ok_or_else(|| anyhow!("the first segment has no keyframe"))?;
    first.drain(..start_i);
    let t0 = first[0].dts_wall;
    let mut cue_at = t0; // the next subtitle's start
    let mut last_dts: Option<i64> = None;
    let mut last_dur: i64 = 40_000_000;
    let mut frames = 0u64;
    let mut pending: Option<Frame> = None;
    let mut end_ns = t0;
    let mut max_pts_rel = 0i64;
    // The newest frame's wall and 90 kHz decode times: where a continuing segment goes on.
    let mut last_frame: Option<(i64, u64)> = None;
    // The next frame starts a new session (a piece placed by its own start time).
    let mut join = false;

    // A frame's wall time is its decode time plus the stream's first presentation offset (how
    // the recorder dates frames), so the time track runs that much behind the decode times.
    let shift = first[0].pts_offset;
    // Pushes the whole-second cues that end by `until` (the video has reached their end, so
    // none is longer than the footage), or with `end`, all the rest, the last cut at `end`.
    let push_cues_until = |cue_at: &mut i64, until: i64, end: Option<i64>| -> anyhow::Result<()> {
        while let Some((second, stop, gap)) = next_cue(*cue_at, until, end, gaps) {
            let text = cue_text(second, camera, gap);
            let mut b = gst::Buffer::from_mut_slice(text.into_bytes());
            {
                let b = b.get_mut().expect("a new buffer is writable");
                b.set_pts(gst::ClockTime::from_nseconds((*cue_at - t0 + shift) as u64));
                b.set_duration(gst::ClockTime::from_nseconds((stop - *cue_at) as u64));
            }
            tsrc.push_buffer(b)
                .map_err(|e| anyhow!("the time track stopped: {e:?}"))?;
            *cue_at = stop;
        }
        Ok(())
    };

    let push = |f: Frame, dur: i64, cue_at: &mut i64| -> anyhow::Result<()> {
        let rel = f.dts_wall - t0;
        push_cues_until(cue_at, f.dts_wall + 1, None)?;
        let mut b = gst::Buffer::from_mut_slice(f.data);
        {
            let b = b.get_mut().expect("a new buffer is writable");
            b.set_dts(gst::ClockTime::from_nseconds(rel as u64));
            b.set_pts(gst::ClockTime::from_nseconds((rel + f.pts_offset) as u64));
            b.set_duration(gst::ClockTime::from_nseconds(dur.max(1) as u64));
            if !f.keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        vsrc.push_buffer(b)
            .map_err(|e| anyhow!("the working copy's muxer stopped: {e:?}"))?;
        Ok(())
    };

    let mut video = Some(first);
    let mut idx = 0usize;
    'outer: while let Some(fs) = video.take() {
        for mut f in fs {
            if f.dts_wall >= to_ns && last_dts.is_some() {
                break 'outer;
            }
            // Decode times strictly increase: where a new session starts, by at least a frame
            // (whatever the wall clock did between the two); inside one, as the camera timed
            // its frames.
            if let Some(l) = last_dts {
                let step = if join {
                    last_dur.max(1_000_000)
                } else {
                    1_000_000
                };
                f.dts_wall = f.dts_wall.max(l + step);
            }
            join = false;
            last_frame = Some((f.dts_wall, f.dts90));
            max_pts_rel = max_pts_rel.max(f.dts_wall - t0 + f.pts_offset);
            if let Some(p) = pending.take() {
                let d = f.dts_wall - p.dts_wall;
                if d < 1_000_000_000 {
                    last_dur = d;
                }
                push(p, d, &mut cue_at)?;
                frames += 1;
            }
            last_dts = Some(f.dts_wall);
            end_ns = f.dts_wall + last_dur;
            pending = Some(f);
        }
        idx += 1;
        match pieces.get(idx) {
            Some(p) => {
                let v = read_piece(p)?;
                if v.codec != codec {
                    bail!(
                        "{} is {:?} but the range starts in {:?}: export the two parts separately",
                        p.ts.display(),
                        v.codec,
                        codec
                    );
                }
                let anchor = match (p.continues, last_frame) {
                    (true, Some(a)) => a,
                    _ => {
                        join = true;
                        (p.start_ns, v.units.first().map_or(0, |u| u.dts))
                    }
                };
                video = Some(frames_of(v, anchor));
            }
            None => break,
        }
    }
    if let Some(p) = pending.take() {
        // With B-frames the frame shown last is not the one decoded last: the last sample lasts
        // until the end of the frame shown last, or a player drops that frame (the track ends
        // where the last sample does).
        let rel = p.dts_wall - t0;
        let dur = last_dur.max(max_pts_rel + last_dur - shift - rel);
        end_ns = p.dts_wall + dur;
        *last.lock().unwrap_or_else(|p| p.into_inner()) = Some((
            gst::ClockTime::from_nseconds(rel as u64),
            gst::ClockTime::from_nseconds(dur as u64),
        ));
        push(p, dur, &mut cue_at)?;
        frames += 1;
    }
    push_cues_until(&mut cue_at, end_ns, Some(end_ns))?;
    Ok(Made {
        codec,
        first_ns: t0,
        end_ns,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdc_format::export::Range;

    fn gap(from_ns: i64, to_ns: i64) -> Gap {
        Gap::new(
            Range::new(from_ns, to_ns),
            vec![rdc_format::export::GapCause::PowerLoss],
        )
    }

    /// The cues from `from` to `end`, as (start, stop, in a gap).
    fn cues(from: i64, end: i64, gaps: &[Gap]) -> Vec<(i64, i64, bool)> {
        let mut at = from;
        let mut v = Vec::new();
        while let Some((_, stop, g)) = next_cue(at, end, Some(end), gaps) {
            v.push((at, stop, g.is_some()));
            at = stop;
        }
        v
    }

    #[test]
    fn a_gap_inside_one_second_has_its_own_no_footage_cue() {
        const S: i64 = 1_000_000_000;
        // A power cut from 5.3 s to 5.7 s: inside one wall-clock second.
        let g = [gap(5 * S + 300_000_000, 5 * S + 700_000_000)];
        let c = cues(4 * S, 7 * S, &g);
        assert_eq!(
            c,
            vec![
                (4 * S, 5 * S, false),
                (5 * S, 5 * S + 300_000_000, false),
                (5 * S + 300_000_000, 5 * S + 700_000_000, true),
                (5 * S + 700_000_000, 6 * S, false),
                (6 * S, 7 * S, false),
            ]
        );
        // Every gap, however short, shows.
        for len in [1, 40_000_000, 999_999_999, 2 * S + 1] {
            let g = [gap(3 * S + 123, 3 * S + 123 + len)];
            let c = cues(2 * S + 500, 9 * S, &g);
            assert!(c.iter().any(|x| x.2), "a gap of {len} ns has no cue");
            // Cues tile the range with no hole and no overlap.
            assert!(c.windows(2).all(|w| w[0].1 == w[1].0));
            assert_eq!((c[0].0, c.last().unwrap().1), (2 * S + 500, 9 * S));
        }
        // Without an end, only cues the video has passed.
        assert_eq!(
            next_cue(5 * S + 800_000_000, 5 * S + 900_000_000, None, &[]),
            None
        );
    }
}
