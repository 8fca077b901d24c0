//! `rdc-fake-camera`: an emulated IP camera on gst-rtsp-server, for tests and the demo.
//!
//! A test pattern with a running clock, H.264 or H.265, optionally B-frames, an audio track
//! and basic-auth credentials, served over RTSP (TCP and UDP). It prints `READY <url>` once it
//! is listening and runs until killed.

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Codec {
    H264,
    H265,
}

#[derive(Parser, Debug)]
#[command(version, about = "An emulated RTSP camera")]
struct Args {
    #[arg(long, default_value_t = 8554)]
    port: u16,
    #[arg(long, default_value = "/cam")]
    path: String,
    #[arg(long, value_enum, default_value = "h264")]
    codec: Codec,
    #[arg(long, default_value_t = 640)]
    width: u32,
    #[arg(long, default_value_t = 360)]
    height: u32,
    #[arg(long, default_value_t = 25)]
    fps: u32,
    /// Keyframe interval, in frames.
    #[arg(long, default_value_t = 25)]
    gop: u32,
    #[arg(long, default_value_t = 1000)]
    kbps: u32,
    /// B-frames between references (H.264 only).
    #[arg(long, default_value_t = 0)]
    bframes: u32,
    /// Add an audio track (the recorder must never record it).
    #[arg(long)]
    audio: bool,
    /// Require these basic-auth credentials ("user:password").
    #[arg(long)]
    credentials: Option<String>,
    /// Ask for the credentials with digest authentication instead of basic.
    #[arg(long)]
    digest: bool,
    /// Send MJPEG instead (a codec the recorder refuses).
    #[arg(long)]
    mjpeg: bool,
    /// Corrupt the encoded video: each byte changed with this probability (a camera sending
    /// garbage).
    #[arg(long)]
    corrupt: Option<f64>,
    /// Restart the video's timestamps every this many seconds (an encoder whose RTP clock
    /// jumps back).
    #[arg(long)]
    jump_back_every: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    gst::init()?;
    let raw = format!(
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,width={},height={},framerate={}/1 ! clockoverlay time-format=\"%Y-%m-%d %H:%M:%S\" ! videoconvert",
        a.width, a.height, a.fps
    );
    let corrupt = a
        .corrupt
        .map(|p| format!(" ! breakmydata probability={p} skip=2000"))
        .unwrap_or_default();
    let video = if a.mjpeg {
        format!("{raw} ! video/x-raw,format=I420 ! jpegenc ! rtpjpegpay name=pay0 pt=26")
    } else {
        match a.codec {
            Codec::H264 => format!(
                "{raw} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={} bitrate={} bframes={} ! video/x-h264,profile={}{corrupt} ! rtph264pay name=pay0 pt=96 config-interval=-1",
                a.gop,
                a.kbps,
                a.bframes,
                if a.bframes > 0 { "main" } else { "baseline" }
            ),
            Codec::H265 => format!(
                "{raw} ! x265enc tune=zerolatency speed-preset=ultrafast key-int-max={} bitrate={}{corrupt} ! rtph265pay name=pay0 pt=96 config-interval=-1",
                a.gop, a.kbps
            ),
        }
    };
    let audio = if a.audio {
        " audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! alawenc ! rtppcmapay name=pay1 pt=8"
    } else {
        ""
    };
    let launch = format!("( {video}{audio} )");

    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&a.port.to_string());
    let mounts = server.mount_points().context("no mount points")?;
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&launch);
    factory.set_shared(true);
    factory.set_protocols(
        gstreamer_rtsp_server::gst_rtsp::RTSPLowerTrans::TCP
            | gstreamer_rtsp_server::gst_rtsp::RTSPLowerTrans::UDP,
    );
    if let Some(c) = &a.credentials {
        let (user, pass) = c
            .split_once(':')
            .context("--credentials wants user:password")?;
        let auth = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
            .build();
        if a.digest {
            auth.add_digest(user, pass, &token);
            auth.set_supported_methods(gstreamer_rtsp_server::gst_rtsp::RTSPAuthMethod::Digest);
        } else {
            let basic = rtsp::RTSPAuth::make_basic(user, pass);
            auth.add_basic(basic.as_str(), &token);
        }
        server.set_auth(Some(&auth));
        let role = gst::Structure::builder("user")
            .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
            .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
            .build();
        factory.add_role_from_structure(&role);
    }
    if let Some(every) = a.jump_back_every.filter(|s| *s > 0) {
        let every = gst::ClockTime::from_seconds(every);
        factory.connect_media_configure(move |_, media| {
            let Some(pay) = media
                .element()
                .downcast::<gst::Bin>()
                .ok()
                .and_then(|b| b.by_name_recurse_up("pay0").or_else(|| b.by_name("pay0")))
            else {
                return;
            };
            let Some(pad) = pay.static_pad("sink") else {
                return;
            };
            // Back by whole periods since the first frame, so no time falls before the
            // stream's start (the payloader would clip it).
            let first = std::sync::Mutex::new(None::<gst::ClockTime>);
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(b)) = info.data.as_mut() {
                    let b = b.make_mut();
                    if let Some(pts) = b.pts() {
                        let p0 = *first
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(pts);
                        let since = pts.saturating_sub(p0).nseconds();
                        let back = gst::ClockTime::from_nseconds(
                            since / every.nseconds() * every.nseconds(),
                        );
                        b.set_pts(pts - back);
                        if let Some(dts) = b.dts() {
                            b.set_dts(dts.saturating_sub(back));
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            });
        });
    }
    mounts.add_factory(&a.path, factory);
    let main_loop = gst::glib::MainLoop::new(None, false);
    let _id = server
        .attach(None)
        .context("cannot listen: is the port in use?")?;
    println!("READY rtsp://127.0.0.1:{}{}", a.port, a.path);
    main_loop.run();
    Ok(())
}
