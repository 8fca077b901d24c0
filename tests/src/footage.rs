//! Footage made faster than real time: a short clip encoded once by GStreamer's x264, then
//! written into a real store with advancing times, footage and previews as the recorder writes
//! them (its own TS muxer, the store's segment and preview writers). For tests and benchmarks
//! that need hours of recording without waiting hours.

use anyhow::{Context as _, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use rdc_recorder::tsmux::{Codec, TsMuxer, ns_to_90k};
use rdc_storage::{Frame, Store};

/// One access unit of the clip.
#[derive(Debug, Clone)]
pub struct Au {
    pub data: Vec<u8>,
    pub pts_ns: u64,
    pub dts_ns: u64,
    pub key: bool,
}

/// A clip: its access units and length.
#[derive(Debug, Clone)]
pub struct Clip {
    pub aus: Vec<Au>,
    pub len_ns: u64,
}

/// Encodes `source` (a GStreamer description ending in raw video with its caps, e.g.
/// `videotestsrc num-buffers=50 ! video/x-raw,width=320,height=180,framerate=5/1`) with x264
/// at `kbps`, a keyframe every `gop` frames, into a clip of `frames` frames at `fps`.
pub fn encode_h264(
    source: &str,
    frames: usize,
    fps: u32,
    kbps: u32,
    gop: u32,
) -> anyhow::Result<Clip> {
    gst::init()?;
    let p = gst::parse::launch(&format!(
        "{source} ! x264enc bitrate={kbps} key-int-max={gop} speed-preset=ultrafast tune=zerolatency \
         ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! appsink name=sink sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let sink = p
        .by_name("sink")
        .and_then(|s| s.downcast::<gstreamer_app::AppSink>().ok())
        .context("no appsink")?;
    p.set_state(gst::State::Playing)?;
    let mut aus = Vec::new();
    while let Ok(s) = sink.pull_sample() {
        let b = s.buffer().context("sample without buffer")?;
        let m = b.map_readable()?;
        aus.push(Au {
            data: m.to_vec(),
            pts_ns: b.pts().map_or(0, |t| t.nseconds()),
            dts_ns: b.dts().or(b.pts()).map_or(0, |t| t.nseconds()),
            key: !b.flags().contains(gst::BufferFlags::DELTA_UNIT),
        });
    }
    p.set_state(gst::State::Null)?;
    if aus.len() < frames || !aus[0].key {
        bail!("the encoder gave {} of {frames} frames", aus.len());
    }
    aus.truncate(frames);
    // Encoders may start their times anywhere (x264enc: 1000 hours in): the clip starts at 0.
    let t0 = aus
        .iter()
        .map(|a| a.dts_ns.min(a.pts_ns))
        .min()
        .unwrap_or(0);
    for a in &mut aus {
        a.pts_ns -= t0;
        a.dts_ns -= t0;
    }
    Ok(Clip {
        aus,
        len_ns: frames as u64 * 1_000_000_000 / u64::from(fps),
    })
}

/// What [`record`] wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recorded {
    pub footage_bytes: u64,
    pub preview_bytes: u64,
    pub frames: u64,
    pub previews: u64,
}

/// Records `clip` over and over into `store` as camera `camera`, from wall time `start_ns` for
/// `len_ns`, skipping `outages` (wall ranges: the camera's session ends before each with
/// `cause` and a new one starts after, as the recorder does), with previews when the store
/// keeps them. Plaintext bytes are counted.
pub fn record(
    store: &Store,
    camera: &str,
    clip: &Clip,
    (start_ns, len_ns): (i64, u64),
    outages: &[(i64, i64)],
    cause: &str,
) -> anyhow::Result<Recorded> {
    let mut w = store.writer(camera)?;
    let mut p = store.preview_writer(camera)?;
    let mut mux = TsMuxer::new(Codec::H264);
    let mut pmux = TsMuxer::new(Codec::H264);
    let (mut ts, mut pts_buf) = (Vec::new(), Vec::new());
    let mut out = Recorded::default();
    let mut in_outage = false;
    let mut lap = 0u64;
    'all: loop {
        for au in &clip.aus {
            let t = lap * clip.len_ns + au.dts_ns;
            if t >= len_ns {
                break 'all;
            }
            let wall = start_ns + t as i64;
            if outages.iter().any(|(a, b)| (*a..*b).contains(&wall)) {
                if !in_outage {
                    w.close(cause)?;
                    if let Some(p) = &mut p {
                        p.close(cause)?;
                    }
                    in_outage = true;
                }
                continue;
            }
            if in_outage {
                // A new session: new muxers, as the recorder makes.
                mux = TsMuxer::new(Codec::H264);
                pmux = TsMuxer::new(Codec::H264);
                in_outage = false;
            }
            let (pts90, dts90) = (
                ns_to_90k(lap * clip.len_ns + au.pts_ns),
                ns_to_90k(lap * clip.len_ns + au.dts_ns),
            );
            ts.clear();
            mux.mux(&au.data, pts90, dts90, au.key, &mut ts);
            let f = Frame {
                data: &ts,
                keyframe: au.key,
                wall_ns: wall,
                mono_ns: t,
            };
            if !w.push(&f)?.dropped {
                out.footage_bytes += ts.len() as u64;
                out.frames += 1;
            }
            if let Some(p) = &mut p
                && p.wants(au.key, wall, t)
            {
                pts_buf.clear();
                pmux.mux(&au.data, pts90, dts90, true, &mut pts_buf);
                p.push(&Frame {
                    data: &pts_buf,
                    ..f
                })?;
                out.preview_bytes += pts_buf.len() as u64;
                out.previews += 1;
            }
        }
        lap += 1;
    }
    w.close("the test's recording ended")?;
    if let Some(p) = &mut p {
        p.close("the test's recording ended")?;
    }
    Ok(out)
}

/// Writes `n` segments of `aus` (one clip, repeated with advancing times) as the recorder's TS
/// muxer writes them, `seg_ns` each from `start_ns`, into `dir`: the pieces of a working copy.
pub fn ts_segments(
    dir: &std::path::Path,
    aus: &[Au],
    n: usize,
    (start_ns, seg_ns): (i64, i64),
) -> anyhow::Result<Vec<rdc_cli::mp4::Piece>> {
    let mut mux = TsMuxer::new(Codec::H264);
    let mut pieces = Vec::with_capacity(n);
    let mut ts = Vec::new();
    for i in 0..n {
        let base = i as u64 * seg_ns as u64;
        let mut out = Vec::with_capacity(6 << 20);
        for au in aus {
            ts.clear();
            mux.mux(
                &au.data,
                ns_to_90k(base + au.pts_ns),
                ns_to_90k(base + au.dts_ns),
                au.key,
                &mut ts,
            );
            out.extend_from_slice(&ts);
        }
        let at = start_ns + i as i64 * seg_ns;
        let p = dir.join(format!("{i:010}-{at}.ts"));
        std::fs::write(&p, &out)?;
        pieces.push(rdc_cli::mp4::Piece {
            ts: p,
            start_ns: at,
            continues: i > 0,
        });
    }
    Ok(pieces)
}
