//! From the bytes a unit served for a still to the picture: decrypt only the served chunks (in
//! memory), read the access units from the keyframe on, decode up to the frame shown at the
//! instant, convert it to RGB by a stated rule, and lay it out with its caption.

use std::io::{Read, Seek, SeekFrom};

use gstreamer as gst;
use gstreamer::prelude::*;
use rdc_format::stills::{self, Run};
use rdc_format::ts::{self, Codec};

use anyhow::{Context as _, anyhow, bail};
use rdc_format::Manifest;

use crate::decode::element;
use std::path::Path;

/// The served bytes as the age file they were cut from: the header and the run's chunks at
/// their places; nothing else is ever read (the decryptor is only asked for the run).
struct Sparse<'a> {
    total: u64,
    header: &'a [u8],
    run_at: u64,
    run: &'a [u8],
    pos: u64,
}

impl Read for Sparse<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.total || buf.is_empty() {
            return Ok(0);
        }
        let h = self.header.len() as u64;
        let (src, at, end): (&[u8], u64, u64) = if self.pos < h {
            (self.header, 0, h)
        } else if self.pos >= self.run_at && self.pos < self.run_at + self.run.len() as u64 {
            (self.run, self.run_at, self.run_at + self.run.len() as u64)
        } else {
            return Err(std::io::Error::other(format!(
                "byte {} of the segment was not served",
                self.pos
            )));
        };
        let n = ((end - self.pos) as usize).min(buf.len());
        let from = (self.pos - at) as usize;
        buf[..n].copy_from_slice(&src[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Sparse<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let p = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
            SeekFrom::End(d) => self.total as i128 + d as i128,
        };
        if p < 0 {
            return Err(std::io::Error::other("seek before the start"));
        }
        self.pos = p as u64;
        Ok(self.pos)
    }
}

/// The plaintext of the served run from the keyframe on, decrypted in memory.
pub(crate) fn decrypt_run(
    served: &[u8],
    m: &Manifest,
    run: &Run,
    identities: &[crate::keys::AgeIdentity],
) -> anyhow::Result<Vec<u8>> {
    let h = run.header_len as usize;
    if served.len() < h {
        bail!("the served bytes are shorter than the segment's header");
    }
    let (cs, _) = run.chunk_bytes(m.ciphertext_len);
    let reader = Sparse {
        total: m.ciphertext_len,
        header: &served[..h],
        run_at: cs,
        run: &served[h..],
        pos: 0,
    };
    let d = age::Decryptor::new(reader).context("the served segment header is not age")?;
    let mut r = d
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .context(
            "your age identity cannot decrypt this segment (it was encrypted to other recipients)",
        )?;
    let (_, end) = run.plaintext_range(m.plaintext_len);
    let start = run.keyframe_offset;
    r.seek(SeekFrom::Start(start))
        .context("seeking to the keyframe in the served chunks")?;
    let mut out = vec![0u8; (end - start) as usize];
    r.read_exact(&mut out)
        .context("the served chunks do not decrypt (altered, or not this segment's)")?;
    Ok(out)
}

/// The frame shown at an instant, found in a run's access units.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) codec: Codec,
    /// The access units to decode, in decode order, the frame's last.
    pub(crate) units: Vec<ts::AccessUnit>,
    /// The frame's index in `units`.
    pub(crate) index: usize,
    pub(crate) frame_ns: i64,
}

/// Reads the access units of the run's plaintext and picks the frame shown at `at_ns`: the
/// latest whose presentation time is not after it. Errors if the run does not hold it whole.
pub(crate) fn find_frame(
    plain: &[u8],
    m: &Manifest,
    run: &Run,
    at_ns: i64,
) -> anyhow::Result<Found> {
    let whole_packets = plain.len() - plain.len() % 188;
    let video = ts::read_video(&plain[..whole_packets])
        .map_err(|e| anyhow!("the served footage is not a readable MPEG-TS: {e}"))?;
    let mut units = video.units;
    let reaches_end = run.last_chunk + 1 == stills::chunk_count(m.plaintext_len);
    // The last unit may be cut by the chunk boundary; it only shows where the next frame
    // starts. At the segment's end every unit is whole.
    let cut = if reaches_end { None } else { units.pop() };
    let Some(kf) = units.first().filter(|u| u.keyframe) else {
        bail!("the served footage does not start at a keyframe");
    };
    let kf_pts = kf.pts;
    let kf_dts = kf.dts;
    let time = |pts: u64| stills::frame_ns(m, run, kf_pts, pts);
    let mut best: Option<(usize, i64)> = None;
    for (i, u) in units.iter().enumerate() {
        // Pictures shown before the keyframe (an open GOP's leading pictures) need the GOP
        // before it: never chosen.
        if ts::ticks_since(u.pts, kf_pts) > ts::TS_WRAP / 2 {
            continue;
        }
        let t = time(u.pts);
        if t <= at_ns && best.is_none_or(|(_, b)| t > b) {
            best = Some((i, t));
        }
    }
    let Some((index, frame_ns)) = best else {
        bail!("the served footage holds no frame shown at or before the instant");
    };
    // Every frame decoded before the instant is in the run: the first left out decodes after.
    if let Some(next) = &cut {
        let next_ns = m.start_ns
            + run.keyframe_ns as i64
            + (ts::ticks_since(next.dts, kf_dts) as i64 * 100_000 / 9);
        if next_ns <= at_ns {
            bail!(
                "the unit served too little: the footage stops before {}",
                rdc_format::time::rfc3339(at_ns)
            );
        }
    }
    units.truncate(index + 1);
    Ok(Found {
        codec: video.codec,
        units,
        index,
        frame_ns,
    })
}

/// A decoded picture: 8-bit 4:2:0 planes as the decoder made them, without padding.
#[derive(Debug, Clone)]
pub(crate) struct Picture {
    pub(crate) width: usize,
    pub(crate) height: usize,
    /// Y, then U, then V (each chroma plane ⌈w/2⌉ × ⌈h/2⌉).
    pub(crate) i420: Vec<u8>,
    /// `bt601` or `bt709`.
    pub(crate) matrix: String,
    pub(crate) full_range: bool,
}

/// Decodes `f.units` and returns the picture of the frame at `f.index` (its presentation
/// time), nothing scaled or converted but its planes copied out.
pub(crate) fn decode(f: &Found) -> anyhow::Result<Picture> {
    let (src, mut chain) = crate::decode::access_units(f.codec)?;
    let sink = crate::decode::pictures(
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .build(),
    );
    chain.push(sink.upcast_ref::<gst::Element>().clone());
    let pipeline = crate::decode::play(&chain)?;
    // Times after the keyframe, a second in, so B-frames' decode times stay positive.
    let kf = &f.units[0];
    let (kf_pts, kf_dts) = (kf.pts, kf.dts);
    let ns = |ticks: u64| gst::ClockTime::from_nseconds(1_000_000_000 + ticks * 100_000 / 9);
    let want = ns(ts::ticks_since(f.units[f.index].pts, kf_pts));
    let feeder = {
        let src = src.clone();
        let units: Vec<(Vec<u8>, u64, u64)> = f
            .units
            .iter()
            .map(|u| {
                (
                    u.data.clone(),
                    ts::ticks_since(u.pts, kf_pts),
                    ts::ticks_since(u.dts, kf_dts),
                )
            })
            .collect();
        std::thread::spawn(move || {
            for (data, pts, dts) in units {
                let mut b = gst::Buffer::from_mut_slice(data);
                let bm = b.get_mut().expect("a new buffer is writable");
                bm.set_pts(ns(pts));
                // The decode clock may run ahead of the keyframe's by less than a frame.
                bm.set_dts(ns(dts.min(pts)));
                if src.push_buffer(b).is_err() {
                    break;
                }
            }
            let _ = src.end_of_stream();
        })
    };
    let mut picture = None;
    let mut failure = None;
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
        let Some(buf) = s.buffer() else { continue };
        if buf.pts() != Some(want) {
            continue;
        }
        let Some(st) = s.caps().and_then(|c| c.structure(0).map(|s| s.to_owned())) else {
            continue;
        };
        let (w, h) = (
            st.get::<i32>("width").unwrap_or(0) as usize,
            st.get::<i32>("height").unwrap_or(0) as usize,
        );
        let colorimetry = st.get::<String>("colorimetry").unwrap_or_default();
        let map = buf.map_readable().map_err(|e| anyhow!("{e}"))?;
        match planes(&map, w, h) {
            Some(i420) => {
                let (matrix, full_range) = colour_rule(&colorimetry, h);
                picture = Some(Picture {
                    width: w,
                    height: h,
                    i420,
                    matrix,
                    full_range,
                });
            }
            None => failure = Some(format!("a {w}×{h} picture of {} bytes", map.len())),
        }
    }
    let _ = feeder.join();
    if let Some(bus) = pipeline.bus() {
        while let Some(msg) = bus.pop() {
            if let gst::MessageView::Error(e) = msg.view() {
                failure.get_or_insert(e.error().to_string());
            }
        }
    }
    pipeline.set_state(gst::State::Null)?;
    picture.ok_or_else(|| {
        anyhow!(
            "the frame could not be decoded{}",
            failure.map(|f| format!(": {f}")).unwrap_or_default()
        )
    })
}

/// Copies the planes of a GStreamer I420 buffer (rows padded to 4 bytes) without the padding.
fn planes(buf: &[u8], w: usize, h: usize) -> Option<Vec<u8>> {
    let round4 = |x: usize| x.div_ceil(4) * 4;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (ys, cs) = (round4(w), round4(cw));
    let (u_at, v_at) = (ys * h.div_ceil(2) * 2, ys * h.div_ceil(2) * 2 + cs * ch);
    if w == 0 || h == 0 || buf.len() < v_at + cs * ch {
        return None;
    }
    let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
    for r in 0..h {
        out.extend_from_slice(&buf[r * ys..r * ys + w]);
    }
    for at in [u_at, v_at] {
        for r in 0..ch {
            out.extend_from_slice(&buf[at + r * cs..at + r * cs + cw]);
        }
    }
    Some(out)
}

/// The conversion rule the stream's colorimetry asks for: BT.709 or BT.601, limited range
/// unless it says full; GStreamer's own default (by picture height) when it says nothing.
fn colour_rule(colorimetry: &str, height: usize) -> (String, bool) {
    let c = colorimetry.to_ascii_lowercase();
    let matrix = if c.contains("709") || (c.is_empty() && height >= 720) {
        "bt709"
    } else if c.contains("601") || c.contains("170m") || c.contains("470") || c.is_empty() {
        "bt601"
    } else if height >= 720 {
        "bt709"
    } else {
        "bt601"
    };
    let full = c.starts_with("1:") || c.contains("jpeg") || c.contains("srgb");
    (matrix.to_owned(), full)
}

/// The stated rule from 4:2:0 to RGB: each chroma sample for its 2×2 block of luma, the
/// matrix's equations in double precision, rounded half up and clamped to 0-255. Anyone can
/// apply it to the decoder's planes (`ffmpeg -pix_fmt yuv420p`) and get the same pixels.
pub(crate) fn to_rgb(p: &Picture) -> Vec<u8> {
    let (kr, kb) = if p.matrix == "bt709" {
        (0.2126, 0.0722)
    } else {
        (0.299, 0.114)
    };
    let (w, h) = (p.width, p.height);
    let cw = w.div_ceil(2);
    let (ys, us, vs) = (
        &p.i420[..w * h],
        &p.i420[w * h..w * h + cw * h.div_ceil(2)],
        &p.i420[w * h + cw * h.div_ceil(2)..],
    );
    let mut out = vec![0u8; w * h * 3];
    let q = |v: f64| (v * 255.0 + 0.5).floor().clamp(0.0, 255.0) as u8;
    for y in 0..h {
        for x in 0..w {
            let c = (y / 2) * cw + x / 2;
            let (yy, cb, cr) = if p.full_range {
                (
                    f64::from(ys[y * w + x]) / 255.0,
                    (f64::from(us[c]) - 128.0) / 255.0,
                    (f64::from(vs[c]) - 128.0) / 255.0,
                )
            } else {
                (
                    (f64::from(ys[y * w + x]) - 16.0) / 219.0,
                    (f64::from(us[c]) - 128.0) / 224.0,
                    (f64::from(vs[c]) - 128.0) / 224.0,
                )
            };
            let r = yy + 2.0 * (1.0 - kr) * cr;
            let b = yy + 2.0 * (1.0 - kb) * cb;
            let g = (yy - kr * r - kb * b) / (1.0 - kr - kb);
            let i = (y * w + x) * 3;
            out[i] = q(r);
            out[i + 1] = q(g);
            out[i + 2] = q(b);
        }
    }
    out
}

const MARGIN: usize = 8;

/// The font's scale for a caption: as large as lets the longest line fit the picture's width,
/// from 1 to 4.
fn caption_scale(w: usize, lines: &[String]) -> usize {
    let longest = lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(1)
        .max(1);
    (w.saturating_sub(2 * MARGIN) / (longest * crate::font::advance(1))).clamp(1, 4)
}

/// The picture with its caption strip beneath (never over it): each line of `lines`, white on
/// black. The picture's pixels are the frame's, untouched.
pub(crate) fn with_caption(rgb: &[u8], w: usize, h: usize, lines: &[String]) -> (Vec<u8>, usize) {
    let scale = caption_scale(w, lines);
    let line = crate::font::line_height(scale);
    let strip = MARGIN * 2 + line * lines.len();
    let mut img = vec![0u8; w * (h + strip) * 3];
    img[..rgb.len()].copy_from_slice(rgb);
    for (i, text) in lines.iter().enumerate() {
        crate::font::draw(
            &mut img,
            w,
            (MARGIN, h + MARGIN + i * line),
            text,
            scale,
            [255, 255, 255],
        );
    }
    (img, h + strip)
}

/// Reads a PNG's pixels as RGB (GStreamer's pngdec).
pub(crate) fn png_pixels(path: &Path) -> anyhow::Result<(usize, usize, Vec<u8>)> {
    gst::init().context("GStreamer could not start")?;
    let src = element("filesrc")?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let sink = crate::decode::pictures(
        gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .build(),
    );
    let chain = [
        src,
        element("pngdec")?,
        element("videoconvert")?,
        sink.upcast_ref::<gst::Element>().clone(),
    ];
    let pipeline = crate::decode::play(&chain)?;
    let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(30));
    pipeline.set_state(gst::State::Null)?;
    let s = sample.ok_or_else(|| anyhow!("{} is not a readable PNG", path.display()))?;
    let st = s
        .caps()
        .and_then(|c| c.structure(0).map(|s| s.to_owned()))
        .ok_or_else(|| anyhow!("{}: no picture", path.display()))?;
    let (w, h) = (
        st.get::<i32>("width").unwrap_or(0) as usize,
        st.get::<i32>("height").unwrap_or(0) as usize,
    );
    let buf = s.buffer().ok_or_else(|| anyhow!("no picture"))?;
    let map = buf.map_readable().map_err(|e| anyhow!("{e}"))?;
    let stride = (w * 3).div_ceil(4) * 4;
    let mut out = Vec::with_capacity(w * h * 3);
    for r in 0..h {
        out.extend_from_slice(map.get(r * stride..r * stride + w * 3).unwrap_or(&[]));
    }
    Ok((w, h, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_colour_rule_is_the_matrix_equations() {
        // Limited-range BT.601 black, white, and a saturated red.
        let p = |y: u8, u: u8, v: u8| Picture {
            width: 2,
            height: 2,
            i420: vec![y, y, y, y, u, v],
            matrix: "bt601".into(),
            full_range: false,
        };
        assert_eq!(&to_rgb(&p(16, 128, 128))[..3], &[0, 0, 0]);
        assert_eq!(&to_rgb(&p(235, 128, 128))[..3], &[255, 255, 255]);
        let red = to_rgb(&p(81, 90, 240));
        assert!(
            red[0] >= 250 && red[1] <= 5 && red[2] <= 5,
            "{:?}",
            &red[..3]
        );
    }

    #[test]
    fn planes_drop_the_row_padding() {
        // 6×2: Y rows padded to 8, chroma rows of 3 padded to 4.
        let mut buf = Vec::new();
        for r in 0..2u8 {
            buf.extend([r, r, r, r, r, r, 99, 99]);
        }
        buf.extend([7, 7, 7, 99]);
        buf.extend([8, 8, 8, 99]);
        let out = planes(&buf, 6, 2).unwrap();
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 7, 7, 7, 8, 8, 8]);
    }
}
