//! `rdc preview`: a contact sheet of a camera's preview track, to find the minutes that matter
//! before fetching them. The unit keeps one keyframe of each camera every few seconds
//! (`preview_interval`), encrypted, signed and retained like the footage; `rdc` fetches the
//! preview segments of the range (resumable, checked against the unit's signed manifests),
//! decrypts them with the officer's identity, decodes the keyframes here (GStreamer) and lays
//! them out as a grid, each tile captioned with its time in UTC and UK local time, a tile with
//! nothing in it showing why (camera stopped, power cut, deleted under retention ...).

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rdc_format::export::{Gap, GapCause};
use rdc_format::ts::{self, Codec};
use serde::Serialize;

use crate::CheckFailed;
use crate::audit::unit_keys;
use crate::decode::element;
use crate::events::Events;
use crate::fetch::{fetch_segments, seq_span, status_and_list};
use crate::font;
use crate::select::{Footage, Target};
use crate::time;
use crate::units::connect;
use anyhow::{Context as _, anyhow, bail};
use rdc_config::Id;
use rdc_format::Manifest;
use rdc_uplink::protocol::{Justification, Track, TrackRef};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub(crate) struct PreviewArgs {
    #[command(flatten)]
    pub(crate) footage: Footage,
    /// One tile per this much time, e.g. 10s, 1m (default: 10s, or wider so that the sheet
    /// has at most 720 tiles). Tiles start at whole multiples of it (18:00:00, 18:00:10 ...).
    #[arg(long)]
    pub(crate) every: Option<String>,
    /// The officer's age identity (AGE-SECRET-KEY-…) that decrypts the previews.
    #[arg(long)]
    pub(crate) identity: PathBuf,
    /// The contact sheet (PNG). The fetched previews are kept beside it, in <name>.previews/,
    /// so the same command resumes or redraws without fetching again.
    #[arg(long, short)]
    pub(crate) out: PathBuf,
    /// Tiles across.
    #[arg(long, default_value_t = 10)]
    pub(crate) columns: usize,
    /// Open the sheet in the desktop's image viewer (xdg-open) when it is written.
    #[arg(long)]
    pub(crate) open: bool,
    /// Print the sheet's tiles (times, pictures, gaps with their causes) as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A thumbnail's size; a multiple of 4 across, so RGB rows need no padding.
const THUMB: (usize, usize) = (256, 144);
const MARGIN: usize = 4;
const CAPTION_SCALE: usize = 2;
const MAX_TILES: i64 = 5000;
const DEFAULT_TILES: i64 = 720;

/// What the sheet shows, tile by tile (printed with --json).
#[derive(Debug, Serialize)]
pub(crate) struct Sheet {
    pub camera: String,
    pub from: String,
    pub to: String,
    pub every_ns: i64,
    pub columns: usize,
    pub width: usize,
    pub height: usize,
    pub tiles: Vec<Tile>,
    pub gaps: Vec<Gap>,
    /// Preview segments fetched, and their bytes (ciphertext, as on the link).
    pub segments: usize,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Tile {
    pub start_ns: i64,
    pub start: String,
    /// The time of the keyframe shown, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture_ns: Option<i64>,
    /// Why the tile is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<String>,
    /// Why, typed: what the tile says.
    #[serde(skip)]
    pub empty: Option<Empty>,
}

/// Why a tile has no picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Empty {
    /// There is footage, but no keyframe in the tile's span to show.
    NoKeyframe,
    /// A gap in the footage, and why.
    Gap(Option<GapCause>),
}

/// A keyframe of the preview track and its signed wall-clock time.
#[derive(Debug)]
pub(crate) struct Picture {
    pub(crate) at_ns: i64,
    pub(crate) codec: Codec,
    pub(crate) data: Vec<u8>,
}

pub(crate) async fn preview(target: &Target, a: &PreviewArgs) -> anyhow::Result<()> {
    let (from_ns, to_ns) = time::parse_range(&a.footage.from, &a.footage.to)?;
    let every_ns = every(a.every.as_deref(), to_ns - from_ns)?;
    // Tiles start on whole multiples of the spacing (18:00:00, 18:00:10 ...), as the unit keeps
    // its previews, so each finds one: the sheet starts at the tile --from falls in.
    let from_ns = from_ns - from_ns.rem_euclid(every_ns);
    if a.columns == 0 || a.columns > 50 {
        bail!("--columns must be 1 to 50");
    }
    let identities = crate::keys::read_identities(&a.identity)?;
    let just = a.footage.why.justification()?;
    let camera = &a.footage.camera;
    let Previews {
        status,
        gaps,
        pictures,
        segments,
        bytes,
    } = previews(
        target,
        camera,
        (from_ns, to_ns),
        &identities,
        &just,
        &work_dir(&a.out),
        &Events::terminal(),
    )
    .await?;

    let (out, columns, cam) = (a.out.clone(), a.columns, camera.to_string());
    let title = format!(
        "UNIT {}  CAMERA {}  {} TO {}  EVERY {}  CASE {}",
        status.unit,
        camera,
        rdc_format::time::utc_plain(from_ns),
        rdc_format::time::utc_plain(to_ns),
        human_every(every_ns),
        just.case_ref
    );
    let sheet = tokio::task::spawn_blocking(move || {
        let (tiles, chosen) = lay_out((from_ns, to_ns), every_ns, &pictures, &gaps);
        let (w, h) = draw_sheet(&tiles, &chosen, &pictures, columns, &title, &out)?;
        anyhow::Ok(Sheet {
            camera: cam,
            from: rdc_format::time::rfc3339(from_ns),
            to: rdc_format::time::rfc3339(to_ns),
            every_ns,
            columns,
            width: w,
            height: h,
            tiles,
            gaps,
            segments,
            bytes,
        })
    })
    .await??;
    let shown = sheet
        .tiles
        .iter()
        .filter(|t| t.picture_ns.is_some())
        .count();
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&sheet)?);
    } else {
        outln!(
            "{}: {} tiles of {} from {} to {}, {shown} with a picture ({} preview segments, {:.1} MB fetched)",
            a.out.display(),
            sheet.tiles.len(),
            human_every(every_ns),
            sheet.from,
            sheet.to,
            sheet.segments,
            sheet.bytes as f64 / 1e6
        );
        for g in &sheet.gaps {
            outln!("  gap {} to {}: {}", g.range.from, g.range.to, g.cause);
        }
        outln!(
            "then: rdc fetch (or rdc export) --camera {camera} --from <a tile's time> --to <…> takes the minutes that matter"
        );
    }
    if a.open {
        match std::process::Command::new("xdg-open").arg(&a.out).spawn() {
            Ok(_) => {}
            Err(e) => eprintln!(
                "cannot open {} ({e}): open it with any image viewer",
                a.out.display()
            ),
        }
    }
    Ok(())
}

/// A camera's previews in a range, fetched (resuming from `work`), checked and decrypted.
#[derive(Debug)]
pub(crate) struct Previews {
    pub(crate) status: rdc_uplink::protocol::StatusAnswer,
    pub(crate) gaps: Vec<Gap>,
    /// In time order.
    pub(crate) pictures: Vec<Picture>,
    /// Preview segments fetched, and their bytes (ciphertext, as on the link).
    pub(crate) segments: usize,
    pub(crate) bytes: u64,
}

/// Fetches the preview segments of `camera` overlapping `range` into `work/<camera>`
/// (resuming, checked against the unit's signed manifests), decrypts them and returns their
/// keyframes in the range, with the range's gaps and their causes.
pub(crate) async fn previews(
    target: &Target,
    camera: &Id,
    (from_ns, to_ns): (i64, i64),
    identities: &[crate::keys::AgeIdentity],
    just: &Justification,
    work: &Path,
    events: &Events,
) -> anyhow::Result<Previews> {
    let mut client = connect(target).await?;
    let of = TrackRef::previews(camera);
    let dir = work.join(camera.as_str());
    let (status, entries, lead) =
        status_and_list(&client, of, (from_ns, to_ns), just, &dir).await?;
    let unit_keys = unit_keys(&status.unit_public_key, &status.retired_keys)?;
    if entries.is_empty() {
        bail!(none_there(&status, camera, (from_ns, to_ns)));
    }
    let (lo, hi) = seq_span(&entries);
    let (log, fetched) = fetch_segments(
        &mut client,
        target,
        (camera, Track::Preview),
        &entries,
        (lo.saturating_sub(1), hi + 1),
        &unit_keys,
        &dir,
        just,
        Some(identities),
        lead,
        events,
    )
    .await?;
    client.close();
    let run: Vec<Manifest> = log
        .iter()
        .map(|e| serde_json::from_value(e.body.clone()))
        .collect::<Result<_, _>>()
        .context("a preview manifest is not readable")?;
    let present: std::collections::HashSet<u64> = entries.iter().map(|e| e.segment.seq).collect();
    let gaps = rdc_format::export::gaps((from_ns, to_ns), &run, &|s| present.contains(&s));
    let mut pictures = Vec::new();
    for f in &fetched {
        let Some(ts_path) = &f.ts else { continue };
        let bytes = std::fs::read(ts_path)?;
        let video = ts::read_video(&bytes).map_err(|e| {
            CheckFailed(format!(
                "preview segment {} decrypts but is not a video stream: {e}",
                f.manifest.seq
            ))
        })?;
        let Some(first) = video.units.first().map(|u| u.dts) else {
            continue;
        };
        for u in video.units {
            // Placed as the footage is: the segment's signed start plus 90 kHz decode times.
            let at_ns = f.manifest.start_ns
                + (ts::ticks_since(u.dts, first) as i128 * 1_000_000_000 / 90_000) as i64;
            if (from_ns..to_ns).contains(&at_ns) {
                pictures.push(Picture {
                    at_ns,
                    codec: video.codec,
                    data: u.data,
                });
            }
        }
    }
    pictures.sort_by_key(|p| p.at_ns);
    Ok(Previews {
        status,
        gaps,
        pictures,
        segments: entries.len(),
        bytes: entries.iter().map(|e| e.segment.bytes).sum(),
    })
}

/// The tile spacing: as asked (at least a second, at most MAX_TILES tiles), or 10 s widened
/// to whole minutes past DEFAULT_TILES tiles.
fn every(asked: Option<&str>, span_ns: i64) -> anyhow::Result<i64> {
    const S: i64 = 1_000_000_000;
    let ns = match asked {
        Some(s) => {
            let d = rdc_config::parse_duration(s)
                .map_err(|e| anyhow!("--every {s:?}: {e} (e.g. 10s, 1m)"))?;
            let ns = d.as_nanos() as i64;
            if ns < S {
                bail!("--every {s:?}: at least 1s");
            }
            ns
        }
        None if span_ns / (10 * S) <= DEFAULT_TILES => 10 * S,
        None => ceil_div(span_ns / DEFAULT_TILES, 60 * S) * 60 * S,
    };
    if ceil_div(span_ns, ns) > MAX_TILES {
        bail!(
            "{} tiles is too many for one sheet: use a wider --every or a shorter range",
            ceil_div(span_ns, ns)
        );
    }
    Ok(ns)
}

/// `a / b` rounded up, for `a >= 0`, `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

fn human_every(ns: i64) -> String {
    let s = ns / 1_000_000_000;
    // The sheet's font has capitals only.
    if s % 60 == 0 {
        format!("{} MIN", s / 60)
    } else {
        format!("{s} S")
    }
}

/// `sheet.png` keeps its previews in `sheet.previews/`.
fn work_dir(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or_else(|| "sheet".into(), |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}.previews"))
}

/// Why there is no preview to show, with what the unit has.
fn none_there(
    status: &rdc_uplink::protocol::StatusAnswer,
    camera: &Id,
    (from_ns, to_ns): (i64, i64),
) -> String {
    let t = rdc_format::time::rfc3339;
    let mut msg = format!(
        "no previews of {camera} between {} and {}.",
        t(from_ns),
        t(to_ns)
    );
    match crate::export::camera_status(status, camera) {
        None => msg.push_str(&format!(" The unit has no footage of {camera} at all.")),
        Some(c) => match &c.previews {
            Some(p) if p.segments > 0 => msg.push_str(&format!(
                " The unit has {camera}'s previews from {} to {}; the newest are served within one preview interval of asking.",
                p.oldest_start_ns.map_or_else(|| "?".into(), t),
                p.newest_end_ns.map_or_else(|| "?".into(), t),
            )),
            _ => match status.store.preview_interval_ns {
                Some(every) => msg.push_str(&format!(
                    " The unit keeps a preview of {camera} every {} s, but none of the range is finished yet (the camera has not sent a keyframe since recording began, or it is not recording now: see `rdc status`); ask again shortly, or list and fetch the footage.",
                    every / 1_000_000_000
                )),
                None => msg.push_str(&format!(
                    " The unit keeps no previews of {camera} (its [storage] preview_interval is \"off\", or its recorder predates previews); list and fetch the footage instead."
                )),
            },
        },
    }
    msg
}

/// The tiles of `[from, to)`, `every` apart, each showing the first picture in its span, and
/// for each the index of that picture.
fn lay_out(
    (from_ns, to_ns): (i64, i64),
    every_ns: i64,
    pictures: &[Picture],
    gaps: &[Gap],
) -> (Vec<Tile>, Vec<Option<usize>>) {
    let n = ceil_div(to_ns - from_ns, every_ns);
    let mut tiles = Vec::with_capacity(n as usize);
    let mut chosen = Vec::with_capacity(n as usize);
    let mut next = 0;
    for k in 0..n {
        let start = from_ns + k * every_ns;
        let end = (start + every_ns).min(to_ns);
        while next < pictures.len() && pictures[next].at_ns < start {
            next += 1;
        }
        let pic = (next < pictures.len() && pictures[next].at_ns < end).then_some(next);
        let (gap, empty) = match pic {
            Some(_) => (None, None),
            None => match gaps
                .iter()
                .find(|g| g.range.from_ns < end && g.range.to_ns > start)
            {
                Some(g) => (
                    Some(g.cause.clone()),
                    Some(Empty::Gap(g.causes.first().cloned())),
                ),
                None => (
                    Some("no keyframe in this span (the camera's keyframes are further apart than the spacing; the footage is there to fetch)".to_owned()),
                    Some(Empty::NoKeyframe),
                ),
            },
        };
        tiles.push(Tile {
            start_ns: start,
            start: rdc_format::time::rfc3339(start),
            picture_ns: pic.map(|i| pictures[i].at_ns),
            gap,
            empty,
        });
        chosen.push(pic);
    }
    (tiles, chosen)
}

/// What a tile without a picture says, in two lines, and its colour. Only a gap in the footage
/// says NO FOOTAGE (dark red); a span with footage but no keyframe to show, or a picture that
/// would not decode, says so on grey: there is footage there to fetch.
fn tile_words(empty: Option<&Empty>) -> (&'static str, &'static str, [u8; 3]) {
    const GAP: [u8; 3] = [0x50, 0x18, 0x18];
    const FOOTAGE: [u8; 3] = [0x38, 0x38, 0x40];
    match empty {
        None => ("FOOTAGE RECORDED", "PICTURE UNREADABLE", FOOTAGE),
        Some(Empty::NoKeyframe) => ("FOOTAGE RECORDED", "NO KEYFRAME HERE", FOOTAGE),
        Some(Empty::Gap(cause)) => (
            "NO FOOTAGE",
            cause.as_ref().map_or("NOT RECORDED", GapCause::short),
            GAP,
        ),
    }
}

/// Decodes the chosen pictures, draws the sheet and writes it as a PNG; its size.
fn draw_sheet(
    tiles: &[Tile],
    chosen: &[Option<usize>],
    pictures: &[Picture],
    columns: usize,
    title: &str,
    out: &Path,
) -> anyhow::Result<(usize, usize)> {
    let wanted: Vec<usize> = chosen.iter().flatten().copied().collect();
    let thumbs = thumbnails(pictures, &wanted)?;
    let line = font::line_height(CAPTION_SCALE);
    let (cell_w, cell_h) = (THUMB.0 + 2 * MARGIN, THUMB.1 + 2 * line + 2 * MARGIN);
    let header = 2 * line + MARGIN;
    let rows = tiles.len().div_ceil(columns);
    let (w, h) = (columns * cell_w, header + rows * cell_h);
    let mut img = vec![0x20u8; w * h * 3];
    let white = [0xF0, 0xF0, 0xF0];
    font::draw(&mut img, w, (MARGIN, MARGIN), title, CAPTION_SCALE, white);
    let mut thumbs = thumbs.into_iter();
    for (k, (tile, pic)) in tiles.iter().zip(chosen).enumerate() {
        let (x0, y0) = (
            (k % columns) * cell_w + MARGIN,
            header + (k / columns) * cell_h + MARGIN,
        );
        let thumb = pic.and_then(|_| thumbs.next().flatten());
        match &thumb {
            Some(rgb) => blit(&mut img, w, (x0, y0), rgb, THUMB),
            None => {
                let (headline, why, colour) = tile_words(tile.empty.as_ref());
                fill(&mut img, w, (x0, y0), THUMB, colour);
                font::draw(
                    &mut img,
                    w,
                    (x0 + 8, y0 + THUMB.1 / 2 - line),
                    headline,
                    CAPTION_SCALE,
                    white,
                );
                font::draw(
                    &mut img,
                    w,
                    (x0 + 8, y0 + THUMB.1 / 2 + 2),
                    why,
                    CAPTION_SCALE,
                    white,
                );
            }
        }
        let at = tile.picture_ns.unwrap_or(tile.start_ns);
        // "12-01 18:04:10 UTC" and "12-01 18:04:10 GMT": month-day and time of each.
        let utc = rdc_format::time::utc_plain(at);
        let local = rdc_format::time::uk_local(at);
        let cy = y0 + THUMB.1 + 2;
        font::draw(
            &mut img,
            w,
            (x0, cy),
            utc.get(5..).unwrap_or(&utc),
            CAPTION_SCALE,
            white,
        );
        font::draw(
            &mut img,
            w,
            (x0, cy + line),
            local.get(5..).unwrap_or(&local),
            CAPTION_SCALE,
            [0xB0, 0xC8, 0xF0],
        );
    }
    write_png(&img, (w, h), out)?;
    Ok((w, h))
}

fn blit(img: &mut [u8], w: usize, (x0, y0): (usize, usize), rgb: &[u8], (tw, th): (usize, usize)) {
    for y in 0..th {
        let dst = ((y0 + y) * w + x0) * 3;
        img[dst..dst + tw * 3].copy_from_slice(&rgb[y * tw * 3..(y + 1) * tw * 3]);
    }
}

fn fill(img: &mut [u8], w: usize, (x0, y0): (usize, usize), (tw, th): (usize, usize), c: [u8; 3]) {
    for y in 0..th {
        for x in 0..tw {
            let i = ((y0 + y) * w + x0 + x) * 3;
            img[i..i + 3].copy_from_slice(&c);
        }
    }
}

/// Decodes `pictures[i]` for each `i` in `wanted` (in order) into THUMB-sized RGB, the
/// picture's shape kept (bars where it differs); `None` for a picture that does not decode.
fn thumbnails(pictures: &[Picture], wanted: &[usize]) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
    let mut out: Vec<Option<Vec<u8>>> = vec![None; wanted.len()];
    // One pipeline per run of one codec (a camera may be reconfigured between sessions).
    let mut at = 0;
    while at < wanted.len() {
        let codec = pictures[wanted[at]].codec;
        let end = wanted[at..]
            .iter()
            .position(|&i| pictures[i].codec != codec)
            .map_or(wanted.len(), |p| at + p);
        let run: Vec<&[u8]> = wanted[at..end]
            .iter()
            .map(|&i| pictures[i].data.as_slice())
            .collect();
        for (k, t) in decode_run(codec, &run)?.into_iter().enumerate() {
            out[at + k] = t;
        }
        at = end;
    }
    Ok(out)
}

fn decode_run(codec: Codec, run: &[&[u8]]) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
    let (src, mut chain) = crate::decode::access_units(codec)?;
    let scale = element("videoscale")?;
    scale.set_property("add-borders", true);
    let sink = crate::decode::pictures(
        gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", THUMB.0 as i32)
            .field("height", THUMB.1 as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    );
    chain.extend([
        scale,
        element("videoconvert")?,
        sink.upcast_ref::<gst::Element>().clone(),
    ]);
    let pipeline = crate::decode::play(&chain)?;
    // Each picture is a keyframe: given a second of its own, it comes out at that second.
    let feeder = {
        let src = src.clone();
        let run: Vec<Vec<u8>> = run.iter().map(|d| d.to_vec()).collect();
        std::thread::spawn(move || {
            for (i, d) in run.into_iter().enumerate() {
                let mut b = gst::Buffer::from_mut_slice(d);
                let bm = b.get_mut().expect("a new buffer is writable");
                bm.set_pts(gst::ClockTime::from_seconds(i as u64));
                bm.set_duration(gst::ClockTime::SECOND);
                if src.push_buffer(b).is_err() {
                    break;
                }
            }
            let _ = src.end_of_stream();
        })
    };
    let mut out: Vec<Option<Vec<u8>>> = vec![None; run.len()];
    let row = THUMB.0 * 3;
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
        let Some(buf) = s.buffer() else { continue };
        let Some(i) = buf.pts().map(|p| (p.nseconds() / 1_000_000_000) as usize) else {
            continue;
        };
        let Ok(map) = buf.map_readable() else {
            continue;
        };
        if i < out.len() && map.len() >= row * THUMB.1 {
            out[i] = Some(map[..row * THUMB.1].to_vec());
        }
    }
    let _ = feeder.join();
    let mut failure = None;
    if let Some(bus) = pipeline.bus() {
        while let Some(msg) = bus.pop() {
            if let gst::MessageView::Error(e) = msg.view() {
                failure = Some(e.error().to_string());
            }
        }
    }
    pipeline.set_state(gst::State::Null)?;
    if let Some(f) = failure
        && out.iter().all(Option::is_none)
    {
        bail!("the previews could not be decoded: {f}");
    }
    Ok(out)
}

/// Writes an RGB image as a PNG (GStreamer's pngenc), whole or not at all.
pub(crate) fn write_png(img: &[u8], (w, h): (usize, usize), out: &Path) -> anyhow::Result<()> {
    gst::init().context("GStreamer could not start")?;
    if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    let tmp = out.with_extension("png.part");
    let src = gst_app::AppSrc::builder()
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "RGB")
                .field("width", w as i32)
                .field("height", h as i32)
                .field("framerate", gst::Fraction::new(0, 1))
                .build(),
        )
        .format(gst::Format::Time)
        .build();
    let sink = element("filesink")?;
    sink.set_property("location", tmp.to_string_lossy().as_ref());
    let enc = element("pngenc")?;
    enc.set_property("snapshot", true);
    let chain = [
        src.upcast_ref::<gst::Element>().clone(),
        element("videoconvert")?,
        enc,
        sink,
    ];
    let pipeline = gst::Pipeline::new();
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    let failure = crate::still::push_one_to_eos(&pipeline, &src, img.to_vec(), 60)?;
    if let Some(f) = failure {
        let _ = std::fs::remove_file(&tmp);
        bail!("cannot write the sheet {}: {f}", out.display());
    }
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn pic(at_s: i64) -> Picture {
        Picture {
            at_ns: at_s * S,
            codec: Codec::H264,
            data: Vec::new(),
        }
    }

    #[test]
    fn tiles_take_the_first_picture_of_their_span_and_name_their_gaps() {
        let pics: Vec<Picture> = [1, 11, 12, 21, 51].into_iter().map(pic).collect();
        let gaps = vec![Gap::new(
            rdc_format::export::Range::new(25 * S, 50 * S),
            vec![GapCause::Stopped("the camera closed the connection".into())],
        )];
        let (tiles, chosen) = lay_out((0, 60 * S), 10 * S, &pics, &gaps);
        assert_eq!(tiles.len(), 6);
        assert_eq!(chosen, [Some(0), Some(1), Some(3), None, None, Some(4)]);
        assert_eq!(tiles[1].picture_ns, Some(11 * S));
        assert!(
            tiles[3]
                .gap
                .as_deref()
                .unwrap()
                .starts_with("recording stopped")
        );
        assert_eq!(tile_words(tiles[3].empty.as_ref()).1, "CAMERA STOPPED");
        // An uneven end: the last tile is shorter.
        let (tiles, _) = lay_out((0, 55 * S), 10 * S, &pics, &gaps);
        assert_eq!(tiles.len(), 6);
        // A span with no picture and no gap: the camera's keyframes are further apart.
        let (tiles, _) = lay_out((0, 20 * S), 5 * S, &[pic(1), pic(11)], &[]);
        assert!(tiles[1].gap.as_deref().unwrap().starts_with("no keyframe"));
        // Its tile does not say there is no footage: there is, without a keyframe to show.
        let (head, why, _) = tile_words(tiles[1].empty.as_ref());
        assert_eq!((head, why), ("FOOTAGE RECORDED", "NO KEYFRAME HERE"));
        // A gap's tile does, with its cause.
        let (tiles, _) = lay_out((0, 60 * S), 10 * S, &pics, &gaps);
        let (head, why, _) = tile_words(tiles[3].empty.as_ref());
        assert_eq!((head, why), ("NO FOOTAGE", "CAMERA STOPPED"));
    }

    #[test]
    fn spacing_defaults_widen_long_ranges_and_refuse_huge_sheets() {
        assert_eq!(every(None, 3600 * S).unwrap(), 10 * S);
        assert_eq!(every(None, 86_400 * S).unwrap(), 120 * S);
        assert_eq!(every(Some("1m"), 3600 * S).unwrap(), 60 * S);
        assert!(every(Some("500ms"), 3600 * S).is_err());
        assert!(every(Some("1s"), 86_400 * S).is_err());
        assert!(every(Some("soon"), 3600 * S).is_err());
        assert_eq!(
            work_dir(Path::new("/x/sheet.png")),
            Path::new("/x/sheet.previews")
        );
    }
}
