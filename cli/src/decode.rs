//! The GStreamer pieces rdc decodes with: an appsrc taking H.264/H.265 access units, an
//! appsink of raw pictures, and a pipeline of them playing. Shared by the previews' tiles, a
//! still's frame and a PNG read back.

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rdc_format::ts::Codec;

/// A GStreamer element, or what to install when it is missing.
pub(crate) fn element(name: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(name).build().with_context(|| {
        format!("GStreamer's {name} is missing: install gstreamer1.0-libav and gstreamer1.0-plugins-base/good/bad")
    })
}

/// A source of `codec`'s access units (Annex B, timed), and the elements that make raw
/// pictures of them (parser, decoder, converter), to link after it.
pub(crate) fn access_units(codec: Codec) -> anyhow::Result<(gst_app::AppSrc, Vec<gst::Element>)> {
    gst::init().context("GStreamer could not start")?;
    let (caps, parse, dec) = match codec {
        Codec::H264 => ("video/x-h264", "h264parse", "avdec_h264"),
        Codec::H265 => ("video/x-h265", "h265parse", "avdec_h265"),
    };
    let src = gst_app::AppSrc::builder()
        .caps(
            &gst::Caps::builder(caps)
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        )
        .format(gst::Format::Time)
        .build();
    let head = vec![
        src.upcast_ref::<gst::Element>().clone(),
        element(parse)?,
        element(dec)?,
        element("videoconvert")?,
    ];
    Ok((src, head))
}

/// A sink of raw pictures as `caps` says, as fast as they come.
pub(crate) fn pictures(caps: gst::Caps) -> gst_app::AppSink {
    gst_app::AppSink::builder().caps(&caps).sync(false).build()
}

/// The elements linked in a pipeline, playing.
pub(crate) fn play(chain: &[gst::Element]) -> anyhow::Result<gst::Pipeline> {
    let pipeline = gst::Pipeline::new();
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain)?;
    pipeline.set_state(gst::State::Playing)?;
    Ok(pipeline)
}
