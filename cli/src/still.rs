//! `rdc commission` and `rdc selftest`: the field engineer's remote tools. A commissioning
//! still arrives as the camera's newest keyframe and is decoded here (GStreamer), so the unit
//! runs no decoder.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use rdc_uplink::protocol::CheckLine;

use crate::CheckFailed;
use crate::select::Target;
use crate::units::connect;
use anyhow::{Context as _, bail};
use rdc_config::Id;
use std::path::Path;

/// Decodes one keyframe (Annex B, with parameter sets) of `codec` (`h264`, `h265`) into a PNG.
pub fn keyframe_to_png(codec: &str, data: Vec<u8>, out: &Path) -> anyhow::Result<()> {
    gst::init().context("GStreamer could not start")?;
    let (caps, parse, dec) = match codec {
        "h264" => ("video/x-h264", "h264parse", "avdec_h264"),
        "h265" => ("video/x-h265", "h265parse", "avdec_h265"),
        other => bail!("the unit sent a still in {other:?}, which rdc does not decode"),
    };
    let caps = gst::Caps::builder(caps)
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .build();
    let src = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .build();
    let mk = |name: &str| {
        gst::ElementFactory::make(name)
            .build()
            .with_context(|| format!("GStreamer's {name} is missing: install gstreamer1.0-libav and gstreamer1.0-plugins-good/bad"))
    };
    let (parse, dec, conv, enc) = (mk(parse)?, mk(dec)?, mk("videoconvert")?, mk("pngenc")?);
    let sink = gst::ElementFactory::make("filesink")
        .property("location", out.to_string_lossy().as_ref())
        .build()?;
    let pipeline = gst::Pipeline::new();
    pipeline.add_many([src.upcast_ref(), &parse, &dec, &conv, &enc, &sink])?;
    gst::Element::link_many([src.upcast_ref(), &parse, &dec, &conv, &enc, &sink])?;
    let failure = push_one_to_eos(&pipeline, &src, data, 20)?;
    if let Some(f) = failure {
        bail!("the still could not be decoded: {f}");
    }
    if std::fs::metadata(out).map_or(0, |m| m.len()) == 0 {
        bail!("the still could not be decoded: no picture came out");
    }
    Ok(())
}

/// Plays `pipeline`, pushes `data` as one buffer into its `src` and waits up to `secs` for
/// the end of stream; stops the pipeline. Its error, if it failed.
pub(crate) fn push_one_to_eos(
    pipeline: &gst::Pipeline,
    src: &gst_app::AppSrc,
    data: Vec<u8>,
    secs: u64,
) -> anyhow::Result<Option<String>> {
    pipeline.set_state(gst::State::Playing)?;
    let mut b = gst::Buffer::from_mut_slice(data);
    b.get_mut()
        .expect("a new buffer is writable")
        .set_pts(gst::ClockTime::ZERO);
    let pushed = src.push_buffer(b);
    let _ = src.end_of_stream();
    let failure = pushed
        .err()
        .map(|e| format!("{e:?}"))
        .or_else(|| run_to_eos(pipeline, secs));
    pipeline.set_state(gst::State::Null)?;
    Ok(failure)
}

/// Waits up to `secs` for a playing pipeline's end of stream; its error, if it fails.
fn run_to_eos(pipeline: &gst::Pipeline, secs: u64) -> Option<String> {
    let Some(bus) = pipeline.bus() else {
        return Some("pipeline without a bus".into());
    };
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(secs)) {
        match msg.view() {
            gst::MessageView::Eos(..) => return None,
            gst::MessageView::Error(e) => return Some(e.error().to_string()),
            _ => {}
        }
    }
    Some(format!("no end of stream within {secs} s"))
}

/// `rdc commission`: a still of each camera named (or `--done`: the unit in service).
pub(crate) async fn commission(
    target: &Target,
    cameras: &[Id],
    done: Option<&str>,
    out: &Path,
) -> anyhow::Result<()> {
    let c = connect(target).await?;
    if let Some(reason) = done {
        let since = c.commission_done(reason).await?;
        outln!(
            "unit {} is in service since {}: engineers see no footage from now on",
            target.unit,
            rdc_format::time::rfc3339(since)
        );
        return Ok(());
    }
    let st = c.status().await?;
    let has: Vec<String> = st
        .live
        .map(|l| l.cameras.into_iter().map(|c| c.camera).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(unknown) = cameras
        .iter()
        .find(|c| !has.iter().any(|h| h == c.as_str()))
    {
        bail!(
            "unit {} has no camera {unknown}; its cameras: {}",
            target.unit,
            if has.is_empty() {
                "none".to_owned()
            } else {
                has.join(", ")
            }
        );
    }
    let cameras: Vec<Id> = if cameras.is_empty() {
        has.iter().filter_map(|c| Id::parse(c).ok()).collect()
    } else {
        cameras.to_vec()
    };
    if cameras.is_empty() {
        bail!("the unit reports no cameras");
    }
    // Made only once the stills are coming: a refused commission leaves no folder behind.
    let first = c.still(&cameras[0]).await?;
    std::fs::create_dir_all(out)?;
    let mut first = Some(first);
    for cam in &cameras {
        let (info, bytes) = match first.take() {
            Some(f) => f,
            None => c.still(cam).await?,
        };
        // The camera is an `Id`: a plain file name.
        let p = out.join(format!("{cam}.png"));
        let codec = info.codec.clone();
        let q = p.clone();
        tokio::task::spawn_blocking(move || keyframe_to_png(&codec, bytes, &q)).await??;
        outln!(
            "{cam}: {} (taken {}): check the view shows only what it should (not into homes)",
            p.display(),
            rdc_format::time::rfc3339(info.wall_ns)
        );
    }
    c.close();
    Ok(())
}

/// `rdc selftest`: the unit's own selftest, over the link.
pub(crate) async fn selftest(target: &Target, json: bool) -> anyhow::Result<()> {
    let c = connect(target).await?;
    let lines = c.selftest().await?;
    c.close();
    let failed = lines.iter().filter(|l| !l.pass).count();
    outln!("{}", CheckLine::render(&lines, json).trim_end());
    if failed > 0 {
        return Err(CheckFailed(format!(
            "{failed} of {} checks of unit {} failed",
            lines.len(),
            target.unit
        ))
        .into());
    }
    Ok(())
}
