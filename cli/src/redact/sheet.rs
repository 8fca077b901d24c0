//! `rdc redact --check`: a contact sheet of the footage with the regions drawn over it (the
//! area that will be obscured outlined), so the officer reviews them before rendering.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::regions::{self, Region};
use anyhow::{Context as _, anyhow, bail};
use std::path::Path;

const TILE_W: usize = 480;
const COLUMNS: usize = 3;
const MARGIN: usize = 6;

/// Draws the sheet: the pictures at each region's start, keyframes and end, and evenly between
/// (at most 24); returns how many.
pub(crate) fn draw(
    input: &Path,
    codec: rdc_format::ts::Codec,
    first_ns: i64,
    regions: &[Region],
    keep_only: bool,
    out: &Path,
) -> anyhow::Result<usize> {
    let mut want: Vec<i64> = regions
        .iter()
        .flat_map(|r| {
            let mid = r.from_ns + (r.to_ns - r.from_ns) / 2;
            [r.from_ns, mid, r.to_ns]
                .into_iter()
                .chain(r.keys.iter().map(|k| k.0))
        })
        .collect();
    want.sort();
    want.dedup_by(|a, b| (*a - *b).abs() < 500_000_000);
    want.truncate(24);
    let frames = decode_at(input, codec, first_ns, &want)?;
    if frames.is_empty() {
        bail!("no pictures could be decoded from {}", input.display());
    }
    let (fw, fh) = (frames[0].1, frames[0].2);
    let th = fh * TILE_W / fw.max(1);
    let line = crate::font::line_height(2);
    let cell_h = th + line + MARGIN;
    let rows = frames.len().div_ceil(COLUMNS);
    let (w, h) = (
        COLUMNS * (TILE_W + MARGIN) + MARGIN,
        rows * (cell_h + MARGIN) + MARGIN,
    );
    let mut img = vec![40u8; w * h * 3];
    for (i, (t, pw, ph, rgb)) in frames.iter().enumerate() {
        let (cx, cy) = (
            MARGIN + (i % COLUMNS) * (TILE_W + MARGIN),
            MARGIN + (i / COLUMNS) * (cell_h + MARGIN),
        );
        for y in 0..th {
            for x in 0..TILE_W {
                let (sx, sy) = (x * pw / TILE_W, y * ph / th);
                let s = (sy * pw + sx) * 3;
                let d = ((cy + y) * w + cx + x) * 3;
                img[d..d + 3].copy_from_slice(&rgb[s..s + 3]);
            }
        }
        // What will be obscured (or, with --keep-only, kept) at this time, outlined.
        let marked = regions::blocks(regions, *t, keep_only, (*pw, *ph));
        let bw = pw.div_ceil(regions::GRID);
        for (b, m) in marked.iter().enumerate() {
            if *m == keep_only {
                continue;
            }
            let (bx, by) = (b % bw * regions::GRID, b / bw * regions::GRID);
            let (x0, y0) = (bx * TILE_W / pw, by * th / ph);
            let (x1, y1) = (
                ((bx + regions::GRID) * TILE_W / pw).min(TILE_W),
                ((by + regions::GRID) * th / ph).min(th),
            );
            for y in y0..y1 {
                for x in x0..x1 {
                    let d = ((cy + y) * w + cx + x) * 3;
                    // Tinted, not hidden: the officer sees what is under it.
                    img[d] = img[d] / 2 + 127;
                    img[d + 1] /= 2;
                    img[d + 2] /= 2;
                }
            }
        }
        crate::font::draw(
            &mut img,
            w,
            (cx, cy + th + 2),
            &rdc_format::time::utc_ms(*t),
            2,
            [255, 255, 255],
        );
    }
    crate::preview::write_png(&img, (w, h), out)?;
    Ok(frames.len())
}

/// A decoded picture: its time, width, height and RGB pixels.
type Shot = (i64, usize, usize, Vec<u8>);

/// The decoded pictures (RGB) nearest each wanted time.
fn decode_at(
    input: &Path,
    codec: rdc_format::ts::Codec,
    first_ns: i64,
    want: &[i64],
) -> anyhow::Result<Vec<Shot>> {
    gst::init().context("GStreamer could not start")?;
    let (parse, dec) = match codec {
        rdc_format::ts::Codec::H264 => ("h264parse", "avdec_h264"),
        rdc_format::ts::Codec::H265 => ("h265parse", "avdec_h265"),
    };
    let launch = format!(
        "filesrc location=\"{}\" ! qtdemux ! {parse} ! {dec} ! videorate drop-only=true ! video/x-raw,framerate=4/1 ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
        input.display().to_string().replace('"', "\\\"")
    );
    let pipeline = gst::parse::launch(&launch)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline"))?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| anyhow!("no sink"))?;
    pipeline.set_state(gst::State::Playing)?;
    let mut out: Vec<Shot> = Vec::new();
    let mut next = 0;
    let mut p0 = None;
    while next < want.len() {
        let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) else {
            break;
        };
        let (Some(buf), Some(caps)) = (s.buffer(), s.caps()) else {
            continue;
        };
        let Some(pts) = buf.pts() else { continue };
        let p0 = *p0.get_or_insert(pts.nseconds());
        let t = first_ns + pts.nseconds() as i64 - p0 as i64;
        if t + 125_000_000 < want[next] {
            continue;
        }
        let st = caps.structure(0).ok_or_else(|| anyhow!("no caps"))?;
        let (w, h) = (
            st.get::<i32>("width").unwrap_or(0) as usize,
            st.get::<i32>("height").unwrap_or(0) as usize,
        );
        let map = buf.map_readable().map_err(|e| anyhow!("{e}"))?;
        let stride = (w * 3).div_ceil(4) * 4;
        let mut rgb = Vec::with_capacity(w * h * 3);
        for r in 0..h {
            rgb.extend_from_slice(map.get(r * stride..r * stride + w * 3).unwrap_or(&[]));
        }
        while next < want.len() && want[next] <= t + 125_000_000 {
            next += 1;
        }
        out.push((t, w, h, rgb));
    }
    pipeline.set_state(gst::State::Null)?;
    Ok(out)
}
