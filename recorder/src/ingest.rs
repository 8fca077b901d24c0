//! One RTSP session with a camera, in GStreamer: `rtspsrc ! depay ! parse ! appsink`.
//!
//! Only the video stream is set up (`select-stream` refuses the others), so audio is never
//! received, let alone linked, buffered or written (R2). Nothing is decoded or encoded: the
//! parser only makes sure each keyframe carries its parameter sets and hands out whole access
//! units. Frames go to the camera's writer through a bounded queue; when the disk cannot keep
//! up, frames are dropped here, counted, and the writer is told (R4: memory stays bounded).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rdc_config::{Secret, Transport};
use rdc_storage::Clocks;

use crate::tsmux::Codec;

/// What the session sends to the writer.
#[derive(Debug)]
pub enum Event {
    /// The camera's video stream is set up.
    Started {
        codec: Codec,
    },
    Frame(AuFrame),
    /// Recording of this camera paused, for this cause: a gap follows.
    Gap {
        cause: String,
    },
    /// The recorder is stopping.
    Stop,
}

/// One access unit as received.
#[derive(Debug)]
pub struct AuFrame {
    pub data: Vec<u8>,
    pub keyframe: bool,
    pub pts_ns: Option<u64>,
    pub dts_ns: Option<u64>,
    /// Monotonic time of arrival.
    pub arrival_mono: u64,
    /// Frames dropped just before this one because the queue was full.
    pub dropped_before: u64,
}

/// How to reach one camera.
#[derive(Debug, Clone)]
pub struct CameraSpec {
    pub id: String,
    pub url: String,
    pub transport: Transport,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// Counters shared with the session's streaming threads.
#[derive(Debug, Default)]
pub struct Counters {
    pub last_frame_mono: AtomicU64,
    pub frames: AtomicU64,
    pub dropped: AtomicU64,
}

/// Decides, frame by frame, what reaches the writer when the queue to the disk is full (R4:
/// memory stays bounded, and what is lost is counted and recorded, never silently skipped).
///
/// A frame that finds the queue full is dropped, and so is every frame after it up to the next
/// keyframe: they could not be decoded without the dropped one. The keyframe that gets through
/// carries the count, so the writer closes the segment with that cause.
#[derive(Debug, Default)]
pub struct DropGate {
    pending: u64,
    need_keyframe: bool,
    /// Frames dropped in all.
    pub dropped: u64,
}

impl DropGate {
    /// Whether to offer this frame to the queue; if so, with how many frames were dropped just
    /// before it.
    pub fn admit(&mut self, keyframe: bool) -> Option<u64> {
        if self.need_keyframe && !keyframe {
            self.pending += 1;
            self.dropped += 1;
            return None;
        }
        Some(self.pending)
    }

    /// The queue took the frame.
    pub fn sent(&mut self) {
        self.pending = 0;
        self.need_keyframe = false;
    }

    /// The queue was full: the frame is dropped. Returns the total dropped.
    pub fn full(&mut self) -> u64 {
        self.pending += 1;
        self.dropped += 1;
        self.need_keyframe = true;
        self.dropped
    }
}

/// A running session.
#[derive(Debug)]
pub struct Session {
    pipeline: gst::Pipeline,
    pub counters: Arc<Counters>,
    refused: Arc<Mutex<Option<String>>>,
}

fn make(name: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|_| format!("the GStreamer element {name} is missing: install the GStreamer plugins (scripts/install-deps.sh)"))
}

impl Session {
    /// Starts a session. Frames flow to `tx` from GStreamer's threads.
    pub fn start(
        spec: &CameraSpec,
        tx: SyncSender<Event>,
        clocks: Arc<dyn Clocks>,
    ) -> Result<Session, String> {
        let pipeline = gst::Pipeline::with_name(&format!("camera-{}", spec.id));
        let src = make("rtspsrc")?;
        src.set_property("location", &spec.url);
        src.set_property("latency", 200u32);
        // Give up on a camera that does not answer, so the supervisor can retry.
        src.set_property("tcp-timeout", 5_000_000u64);
        src.set_property("timeout", 5_000_000u64);
        src.set_property_from_str(
            "protocols",
            match spec.transport {
                Transport::Tcp => "tcp",
                Transport::Udp => "udp",
                Transport::Auto => "udp+tcp",
            },
        );
        if let Some(u) = &spec.username {
            src.set_property("user-id", u);
        }
        if let Some(p) = &spec.password {
            src.set_property("user-pw", p.expose());
        }
        // Set up video only: audio is never even requested from the camera.
        let id = spec.id.clone();
        src.connect("select-stream", false, move |args| {
            let caps = args.get(2).and_then(|v| v.get::<gst::Caps>().ok());
            let media = caps.as_ref().and_then(|c| c.structure(0)).and_then(|s| s.get::<String>("media").ok()).unwrap_or_default();
            let take = media == "video";
            if !take {
                tracing::info!(camera = %id, media, "not setting up a non-video stream (audio is never recorded)");
            }
            Some(take.to_value())
        });
        pipeline.add(&src).map_err(|e| e.to_string())?;

        let counters = Arc::new(Counters::default());
        counters
            .last_frame_mono
            .store(clocks.mono_ns(), Ordering::SeqCst);
        let refused = Arc::new(Mutex::new(None));
        let linked = Arc::new(AtomicBool::new(false));
        let pipeline_weak = pipeline.downgrade();
        let (c2, r2, id) = (counters.clone(), refused.clone(), spec.id.clone());
        src.connect_pad_added(move |_src, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else { return };
            let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
            let s = caps.as_ref().and_then(|c| c.structure(0).map(|s| s.to_owned()));
            let media = s.as_ref().and_then(|s| s.get::<String>("media").ok()).unwrap_or_default();
            let enc = s.as_ref().and_then(|s| s.get::<String>("encoding-name").ok()).unwrap_or_default().to_ascii_uppercase();
            if media != "video" {
                return;
            }
            if linked.swap(true, Ordering::SeqCst) {
                tracing::info!(camera = %id, "the camera offers a second video stream; recording the first only");
                return;
            }
            let codec = match enc.as_str() {
                "H264" => Codec::H264,
                "H265" | "HEVC" => Codec::H265,
                other => {
                    let m = format!("the camera sends {other} video; only H.264 and H.265 are recorded: set the camera's stream to H.264 or H.265");
                    tracing::error!(camera = %id, "{m}");
                    *r2.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
                    return;
                }
            };
            match link_video(&pipeline, pad, codec, tx.clone(), c2.clone(), clocks.clone(), &id) {
                Ok(()) => {
                    let _ = tx.send(Event::Started { codec });
                }
                Err(m) => *r2.lock().unwrap_or_else(|p| p.into_inner()) = Some(m),
            }
        });
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| format!("cannot start the pipeline for {}", spec.url))?;
        Ok(Session {
            pipeline,
            counters,
            refused,
        })
    }

    /// Waits up to `timeout` for the session to end; returns why it ended, if it did.
    pub fn poll(&self, timeout: Duration) -> Option<String> {
        if let Some(m) = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Some(m);
        }
        let bus = self.pipeline.bus()?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )?;
        match msg.view() {
            gst::MessageView::Eos(_) => Some("the camera ended the stream".into()),
            gst::MessageView::Error(e) => {
                let detail = e.debug().map(|d| d.to_string()).unwrap_or_default();
                let mut cause = e.error().to_string();
                if detail.contains("401")
                    || cause.contains("Unauthorized")
                    || detail.contains("Unauthorized")
                {
                    cause = "the camera refused the credentials (401 Unauthorized): check username and password_file".into();
                } else if detail.contains("receive_response") {
                    cause = format!(
                        "the camera's answer is not valid RTSP ({cause}): check the camera's address, port and path"
                    );
                } else if detail.contains("Connection refused")
                    || cause.contains("Could not open resource")
                {
                    cause = format!(
                        "cannot connect to the camera ({cause}): is it powered and on the network, and is the port right?"
                    );
                }
                tracing::debug!(error = %e.error(), %detail, "session error");
                Some(cause)
            }
            _ => None,
        }
    }

    /// Stops the session and frees its resources.
    pub fn stop(self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn link_video(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    codec: Codec,
    tx: SyncSender<Event>,
    counters: Arc<Counters>,
    clocks: Arc<dyn Clocks>,
    id: &str,
) -> Result<(), String> {
    let (depay, parse, caps) = match codec {
        Codec::H264 => (
            "rtph264depay",
            "h264parse",
            "video/x-h264,stream-format=byte-stream,alignment=au",
        ),
        Codec::H265 => (
            "rtph265depay",
            "h265parse",
            "video/x-h265,stream-format=byte-stream,alignment=au",
        ),
    };
    let depay = make(depay)?;
    let parse = make(parse)?;
    // Parameter sets before every keyframe: each segment decodes on its own.
    parse.set_property("config-interval", -1i32);
    let filter = make("capsfilter")?;
    filter.set_property("caps", gst::Caps::from_str_fallible(caps)?);
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .max_buffers(4)
        .drop(false)
        .build();
    let id = id.to_owned();
    let mut gate = DropGate::default();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buf) = sample.buffer() else { return Ok(gst::FlowSuccess::Ok) };
                let keyframe = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
                let now = clocks.mono_ns();
                counters.last_frame_mono.store(now, Ordering::SeqCst);
                counters.frames.fetch_add(1, Ordering::Relaxed);
                let Some(dropped_before) = gate.admit(keyframe) else {
                    counters.dropped.store(gate.dropped, Ordering::Relaxed);
                    return Ok(gst::FlowSuccess::Ok);
                };
                let map = buf.map_readable().map_err(|_| gst::FlowError::Error)?;
                let frame = AuFrame {
                    data: map.as_slice().to_vec(),
                    keyframe,
                    pts_ns: buf.pts().map(|t| t.nseconds()),
                    dts_ns: buf.dts().map(|t| t.nseconds()),
                    arrival_mono: now,
                    dropped_before,
                };
                match tx.try_send(Event::Frame(frame)) {
                    Ok(()) => gate.sent(),
                    Err(TrySendError::Full(_)) => {
                        let n = gate.full();
                        counters.dropped.store(n, Ordering::Relaxed);
                        if n.is_power_of_two() {
                            tracing::warn!(camera = %id, dropped = n, "the disk cannot keep up: dropping frames until the next keyframe");
                        }
                    }
                    Err(TrySendError::Disconnected(_)) => return Err(gst::FlowError::Flushing),
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let sink: gst::Element = sink.upcast();
    let chain = [&depay, &parse, &filter, &sink];
    pipeline.add_many(chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(chain).map_err(|e| e.to_string())?;
    for e in chain {
        e.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    let sinkpad = depay
        .static_pad("sink")
        .ok_or("depayloader has no sink pad")?;
    pad.link(&sinkpad)
        .map_err(|e| format!("cannot link the camera's video: {e:?}"))?;
    Ok(())
}

trait CapsExt {
    fn from_str_fallible(s: &str) -> Result<gst::Caps, String>;
}

impl CapsExt for gst::Caps {
    fn from_str_fallible(s: &str) -> Result<gst::Caps, String> {
        s.parse().map_err(|_| format!("bad caps {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::DropGate;

    #[test]
    fn a_full_queue_drops_to_the_next_keyframe_and_says_how_many() {
        let mut g = DropGate::default();
        // K accepted, D accepted.
        assert_eq!(g.admit(true), Some(0));
        g.sent();
        assert_eq!(g.admit(false), Some(0));
        g.sent();
        // The queue is full for this D: dropped; the D frames after it cannot decode: dropped.
        assert_eq!(g.admit(false), Some(0));
        assert_eq!(g.full(), 1);
        assert_eq!(g.admit(false), None);
        assert_eq!(g.admit(false), None);
        // The next keyframe goes through, carrying the count.
        assert_eq!(g.admit(true), Some(3));
        g.sent();
        assert_eq!(g.admit(false), Some(0));
        assert_eq!(g.dropped, 3);
    }

    #[test]
    fn a_keyframe_that_finds_the_queue_full_is_dropped_too() {
        let mut g = DropGate::default();
        assert_eq!(g.admit(true), Some(0));
        g.full();
        assert_eq!(g.admit(false), None);
        assert_eq!(g.admit(true), Some(2));
    }
}
