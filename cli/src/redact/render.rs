//! Rendering a disclosure: the bundle's working copy decoded, the regions obscured in each
//! picture, re-encoded with x264 into an MP4 that keeps the working copy's time subtitles.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::regions::{self, Mode, Plane, Region};
use anyhow::{Context as _, anyhow, bail};
use std::path::Path;

/// The encoder's settings, as the disclosure records them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub(crate) struct Encoder {
    pub(crate) name: String,
    pub(crate) preset: String,
    /// x264's constant quantizer (`pass=qual`): lower is closer to the source.
    pub(crate) quantizer: u32,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            name: "x264".into(),
            preset: "superfast".into(),
            quantizer: 22,
        }
    }
}

/// What a render did.
#[derive(Debug, Default, Clone)]
pub(crate) struct Rendered {
    pub(crate) frames: u64,
    pub(crate) obscured_frames: u64,
    pub(crate) width: usize,
    pub(crate) height: usize,
}

/// Decodes `input` (an MP4 whose first frame is shown at `first_ns`), obscures the regions in
/// force at each frame's time and encodes it into `output`, the subtitle track carried over.
pub(crate) fn render(
    input: &Path,
    codec: rdc_format::ts::Codec,
    first_ns: i64,
    regions: &[Region],
    (mode, keep_only): (Mode, bool),
    enc: &Encoder,
    output: &Path,
) -> anyhow::Result<Rendered> {
    gst::init().context("GStreamer could not start")?;
    let (parse, dec) = match codec {
        rdc_format::ts::Codec::H264 => ("h264parse", "avdec_h264"),
        rdc_format::ts::Codec::H265 => ("h265parse", "avdec_h265"),
    };
    let q = |p: &Path| p.display().to_string().replace('"', "\\\"");
    let launch = format!(
        "filesrc location=\"{inp}\" ! qtdemux name=d \
         d.video_0 ! queue max-size-buffers=64 max-size-bytes=0 max-size-time=0 ! {parse} ! {dec} ! videoconvert ! video/x-raw,format=I420 \
         ! identity name=redact ! x264enc speed-preset={preset} pass=qual quantizer={qp} key-int-max=50 ! video/x-h264,profile=high ! h264parse ! queue ! mux.video_0 \
         d.subtitle_0 ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 ! mux.subtitle_0 \
         mp4mux name=mux faststart=true ! filesink location=\"{out}\"",
        inp = q(input),
        out = q(output),
        preset = enc.preset,
        qp = enc.quantizer,
    );
    let pipeline = gst::parse::launch(&launch)
        .context(
            "GStreamer could not build the render (gstreamer1.0-plugins-good/ugly/libav needed)",
        )?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline"))?;
    let stats = std::sync::Arc::new(std::sync::Mutex::new(Rendered::default()));
    let first_pts = std::sync::Arc::new(std::sync::Mutex::new(None::<u64>));
    let identity = pipeline
        .by_name("redact")
        .ok_or_else(|| anyhow!("no redact element"))?;
    let pad = identity
        .static_pad("src")
        .ok_or_else(|| anyhow!("no src pad"))?;
    {
        let (regions, stats) = (regions.to_vec(), stats.clone());
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(caps) = pad.current_caps() else {
                return gst::PadProbeReturn::Ok;
            };
            let Ok(vinfo) = gst_video::VideoInfo::from_caps(&caps) else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(pts) = buffer.pts() else {
                return gst::PadProbeReturn::Ok;
            };
            let p0 = *first_pts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(pts.nseconds());
            let t = first_ns + pts.nseconds() as i64 - p0 as i64;
            let (w, h) = (vinfo.width() as usize, vinfo.height() as usize);
            let marked = regions::blocks(&regions, t, keep_only, (w, h));
            let any = marked.iter().any(|m| *m);
            {
                let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                s.frames += 1;
                s.obscured_frames += u64::from(any);
                s.width = w;
                s.height = h;
            }
            if !any {
                return gst::PadProbeReturn::Ok;
            }
            let buf = buffer.make_mut();
            let Ok(mut frame) = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &vinfo)
            else {
                return gst::PadProbeReturn::Ok;
            };
            let strides: Vec<usize> = frame.plane_stride().iter().map(|s| *s as usize).collect();
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let bw = w.div_ceil(regions::GRID);
            for (i, (pw, ph)) in [(w, h), (cw, ch), (cw, ch)].into_iter().enumerate() {
                if let Ok(data) = frame.plane_data_mut(i as u32) {
                    regions::obscure_plane(
                        Plane {
                            data,
                            stride: strides[i],
                            w: pw,
                            h: ph,
                        },
                        i > 0,
                        bw,
                        &marked,
                        mode,
                    );
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or_else(|| anyhow!("no bus"))?;
    let mut failure = None;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => {
                failure = Some(format!(
                    "{} ({})",
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                ));
                break;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null)?;
    if let Some(f) = failure {
        bail!("the disclosure could not be rendered: {f}");
    }
    let s = stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if s.frames == 0 {
        bail!("the working copy held no pictures to render");
    }
    Ok(s)
}
