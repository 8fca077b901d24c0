//! One RTSP session with a camera, with [retina] (Moonfire NVR's RTSP client): RTSP, RTP and
//! depacketisation of H.264/H.265 on one task, no jitterbuffer, no thread hand-offs per packet.
//!
//! Only the video stream is set up, so audio is never received, let alone buffered or written
//! (R2). Nothing is decoded or encoded: retina hands out whole access units in Annex B with the
//! parameter sets before every keyframe, stamped with the camera's own RTP time (so frame
//! spacing is the camera's, not the network's), and passes on the camera's RTCP sender
//! reports, which map RTP time to the camera's wall clock ([`CameraClock`]). Frames go to the
//! camera's writer through a bounded queue; when the disk cannot keep up, frames are dropped
//! here, counted, and the writer is told (R4: memory stays bounded).
//!
//! Sessions run on one small tokio runtime of their own (`runtime`), so the camera threads
//! keep their blocking supervisor loop. ARCHITECTURE.md says why retina replaced rtspsrc.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use rdc_config::{Secret, Transport};
use rdc_storage::Clocks;
use retina::client::{
    Credentials, PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, TeardownPolicy,
    UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat};

use crate::lowat::{self, Mark};
use crate::tsmux::Codec;

/// What the session sends to the writer.
#[derive(Debug)]
pub enum Event {
    /// The camera's video stream is set up.
    Started {
        codec: Codec,
        /// The frame interval the stream declares (its SPS timing information), if it does.
        frame_ns: Option<u64>,
        /// Width and height in pixels, from the stream's parameters.
        size: Option<(u32, u32)>,
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
    /// The camera's wall-clock time of this frame (capture time), from its RTCP sender
    /// reports; `None` until the camera has sent one (or if it never does).
    pub camera_wall_ns: Option<i64>,
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

/// The runtime every camera session runs on: one thread (`rtsp`) moves all cameras' packets,
/// a current-thread scheduler driven there for ever.
fn runtime() -> &'static tokio::runtime::Handle {
    static RT: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the RTSP runtime starts");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("rtsp".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("the RTSP thread starts");
        handle
    })
}

/// How long the camera has to answer each RTSP request (DESCRIBE, SETUP, PLAY).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Presentation times start here (ns) so that the decode clock, which runs a few frames
/// behind, never goes below zero.
const PTS_BASE_NS: i64 = 10_000_000_000;

/// A running session.
#[derive(Debug)]
pub struct Session {
    task: tokio::task::JoinHandle<()>,
    ended: Receiver<String>,
    pub counters: Arc<Counters>,
}

impl Session {
    /// Starts a session. Frames flow to `tx` from the RTSP runtime.
    pub fn start(
        spec: &CameraSpec,
        tx: SyncSender<Event>,
        clocks: Arc<dyn Clocks>,
    ) -> Result<Session, String> {
        let url = url::Url::parse(&spec.url).map_err(|e| {
            format!("the camera's url is not a valid URL ({e}): write rtsp://HOST[:PORT]/PATH")
        })?;
        let counters = Arc::new(Counters::default());
        counters
            .last_frame_mono
            .store(clocks.mono_ns(), Ordering::SeqCst);
        let (done, ended) = std::sync::mpsc::sync_channel(1);
        let (spec, c) = (spec.clone(), counters.clone());
        let task = runtime().spawn(async move {
            let cause = match run(url, &spec, tx, c, clocks).await {
                Ok(()) => "the camera ended the stream".to_owned(),
                Err(cause) => cause,
            };
            let _ = done.try_send(cause);
        });
        Ok(Session {
            task,
            ended,
            counters,
        })
    }

    /// Waits up to `timeout` for the session to end; returns why it ended, if it did.
    pub fn poll(&self, timeout: Duration) -> Option<String> {
        self.ended.recv_timeout(timeout).ok()
    }

    /// Stops the session and frees its resources (retina tears the RTSP session down).
    pub fn stop(self) {
        self.task.abort();
    }
}

/// One session: DESCRIBE, SETUP of the video stream only, PLAY, then frames until the camera
/// stops or fails. Returns why it ended.
async fn run(
    url: url::Url,
    spec: &CameraSpec,
    tx: SyncSender<Event>,
    counters: Arc<Counters>,
    clocks: Arc<dyn Clocks>,
) -> Result<(), String> {
    let opts = session_options(spec);
    // Over TCP, a low-water mark on the connection: the thread wakes per burst, not per packet.
    let peers = match spec.transport {
        Transport::Tcp | Transport::Auto => camera_addrs(&url).await,
        Transport::Udp => Vec::new(),
    };
    let describe = answer("DESCRIBE", retina::client::Session::describe(url, opts));
    let (described, socket) = lowat::opened_by(&peers, describe).await;
    let mut mark = Mark::new(socket);
    let mut session = described?;
    let (stream, encoding, clock_rate) = video_stream(&session, spec)?;
    let codec = codec_of(&encoding)?;
    let rate = NonZeroU32::new(clock_rate).ok_or("the camera's video has a clock rate of 0")?;
    answer("SETUP", session.setup(stream, setup_options(spec))).await?;
    let playing = answer("PLAY", session.play(PlayOptions::default())).await?;
    let mut frames = playing.demuxed().map_err(|e| explain(&e))?;
    // The writer must know the codec before the first frame: wait for room in the queue.
    let (frame_ns, size) = match frames.streams()[stream].parameters() {
        Some(retina::codec::ParametersRef::Video(v)) => (
            v.frame_rate()
                .filter(|&(n, d)| n > 0 && d > 0)
                .map(|(n, d)| u64::from(n) * 1_000_000_000 / u64::from(d)),
            Some(v.pixel_dimensions()),
        ),
        _ => (None, None),
    };
    let started = Event::Started {
        codec,
        frame_ns,
        size,
    };
    send_when_room(&tx, started).await?;
    let mut gate = DropGate::default();
    let mut camera_clock = CameraClock::default();
    let quiet = tokio::time::sleep(lowat::QUIET);
    tokio::pin!(quiet);
    loop {
        let item = tokio::select! {
            biased;
            item = frames.next() => item,
            () = &mut quiet, if mark.is_set() => {
                mark.quiet();
                continue;
            }
        };
        let Some(item) = item else { break };
        match item.map_err(|e| explain(&e))? {
            CodecItem::VideoFrame(f) => {
                let now = clocks.mono_ns();
                counters.last_frame_mono.store(now, Ordering::SeqCst);
                counters.frames.fetch_add(1, Ordering::Relaxed);
                let ts = f.timestamp();
                let mut data = f.into_data();
                if mark.has_socket() {
                    mark.frame(now, data.len());
                    quiet
                        .as_mut()
                        .reset(tokio::time::Instant::now() + lowat::QUIET);
                }
                let Some(keyframe) = to_annex_b(codec, &mut data) else {
                    return Err(
                        "the camera sent a malformed access unit (its NAL lengths do not add up)"
                            .into(),
                    );
                };
                let Some(dropped_before) = gate.admit(keyframe) else {
                    counters.dropped.store(gate.dropped, Ordering::Relaxed);
                    continue;
                };
                if keyframe {
                    let params = frames.streams()[stream].parameters();
                    data = with_parameter_sets(params, data);
                }
                let frame = AuFrame {
                    keyframe,
                    pts_ns: Some((PTS_BASE_NS + ticks_to_ns(ts.elapsed(), rate)).max(0) as u64),
                    dts_ns: None,
                    camera_wall_ns: camera_clock.wall_ns(ts.timestamp(), rate),
                    arrival_mono: now,
                    dropped_before,
                    data,
                };
                match tx.try_send(Event::Frame(frame)) {
                    Ok(()) => gate.sent(),
                    Err(TrySendError::Full(_)) => {
                        let n = gate.full();
                        counters.dropped.store(n, Ordering::Relaxed);
                        if n.is_power_of_two() {
                            tracing::warn!(camera = %spec.id, dropped = n, "the disk cannot keep up: dropping frames until the next keyframe");
                        }
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        return Err("the recorder is stopping".into());
                    }
                }
            }
            CodecItem::Rtcp(rtcp) => {
                let (Some(rtp), Some(Ok(Some(sr)))) = (
                    rtcp.rtp_timestamp(),
                    rtcp.pkts().next().map(|p| p.as_sender_report()),
                ) else {
                    continue;
                };
                camera_clock.sender_report(rtp.timestamp(), sr.ntp_timestamp().0);
            }
            _ => {}
        }
    }
    Ok(())
}

fn session_options(spec: &CameraSpec) -> SessionOptions {
    let creds = spec.username.as_ref().map(|u| Credentials {
        username: u.clone(),
        password: spec
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default(),
    });
    SessionOptions::default()
        .creds(creds)
        .user_agent("rdc-recorder".into())
        .teardown(TeardownPolicy::Auto)
}

/// The camera's first video stream: (its index, encoding, clock rate). Audio is never set up.
fn video_stream(
    session: &retina::client::Session<retina::client::Described>,
    spec: &CameraSpec,
) -> Result<(usize, String, u32), String> {
    let mut video = None;
    for (i, s) in session.streams().iter().enumerate() {
        if s.media() != "video" {
            tracing::info!(camera = %spec.id, media = s.media(), "not setting up a non-video stream (audio is never recorded)");
        } else if video.is_some() {
            tracing::info!(camera = %spec.id, "the camera offers a second video stream; recording the first only");
        } else {
            video = Some((i, s.encoding_name().to_ascii_uppercase(), s.clock_rate_hz()));
        }
    }
    video.ok_or_else(|| {
        "the camera offers no video stream: check the camera's path and its stream settings"
            .to_owned()
    })
}

fn setup_options(spec: &CameraSpec) -> SetupOptions {
    let transport = match spec.transport {
        Transport::Udp => retina::client::Transport::Udp(UdpTransportOptions::default()),
        // Interleaved in the RTSP connection: through any NAT and firewall, and nothing lost.
        Transport::Tcp | Transport::Auto => {
            retina::client::Transport::Tcp(TcpTransportOptions::default())
        }
    };
    // Length-prefixed NALs, turned into Annex B here in place while looking at their types
    // (`to_annex_b`), and the parameter sets put in here (`with_parameter_sets`).
    let format = FrameFormat {
        h26x_framing: retina::codec::h26x::Framing::FourByteLength,
        parameter_set_insertion: retina::codec::ParameterSetInsertion::Never,
        ..FrameFormat::SIMPLE
    };
    SetupOptions::default()
        .transport(transport)
        .frame_format(format)
}

/// Sends `e` once the queue has room (the writer must know the codec before the first frame).
async fn send_when_room(tx: &SyncSender<Event>, mut e: Event) -> Result<(), String> {
    loop {
        match tx.try_send(e) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(back)) => {
                e = back;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(TrySendError::Disconnected(_)) => return Err("the recorder is stopping".into()),
        }
    }
}

/// The addresses the camera's URL names (retina connects to one of them).
async fn camera_addrs(url: &url::Url) -> Vec<std::net::SocketAddr> {
    let Some(host) = url.host_str() else {
        return Vec::new();
    };
    let port = url.port().unwrap_or(554);
    match tokio::net::lookup_host((host.trim_matches(['[', ']']), port)).await {
        Ok(addrs) => addrs.collect(),
        Err(_) => Vec::new(),
    }
}

/// Awaits one RTSP request, with the camera given [`ANSWER_TIMEOUT`] to answer.
async fn answer<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, retina::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(ANSWER_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| explain(&e)),
        Err(_) => Err(format!(
            "the camera did not answer {what} within {} s: is it powered and on the network, and is the address right?",
            ANSWER_TIMEOUT.as_secs()
        )),
    }
}

/// The codec of an RTP encoding name, or why it is not recorded.
fn codec_of(encoding: &str) -> Result<Codec, String> {
    match encoding {
        "H264" => Ok(Codec::H264),
        "H265" | "HEVC" => Ok(Codec::H265),
        other => Err(format!(
            "the camera sends {other} video; only H.264 and H.265 are recorded: set the camera's stream to H.264 or H.265"
        )),
    }
}

/// A retina error as a cause a field engineer can act on.
fn explain(e: &retina::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or("").trim().to_owned();
    tracing::debug!(error = %full, "session error");
    match e.status_code() {
        Some(401) => {
            return "the camera refused the credentials (401 Unauthorized): check username and password_file".into();
        }
        Some(404) => {
            return format!(
                "the camera has no stream at this path ({first}): check the path in the camera's url"
            );
        }
        _ => {}
    }
    // Matched on the first line: the lines after it describe the connection, whatever failed.
    if first.contains("Unauthorized") {
        "the camera refused the credentials (401 Unauthorized): check username and password_file"
            .into()
    } else if first.contains("RTSP framing error") || first.contains("Invalid RTSP") {
        format!(
            "the camera's answer is not valid RTSP ({first}): check the camera's address, port and path"
        )
    } else if first.starts_with("Unable to connect") || first.contains("Connection refused") {
        format!(
            "cannot connect to the camera ({first}): is it powered and on the network, and is the port right?"
        )
    } else if first.starts_with("Error reading from RTSP peer")
        || first.starts_with("Error writing to RTSP peer")
        || first.contains("EOF")
    {
        format!("the camera dropped the connection ({first})")
    } else {
        format!("the camera's stream failed: {first}")
    }
}

/// Turns an access unit of 4-byte length-prefixed NAL units into Annex B in place (each length
/// becomes a start code: same size, no copy, and only the NAL headers are read), and says
/// whether it can start a segment: an IDR picture for H.264; any intra random access point for
/// H.265 (IDR, CRA or BLA: cameras with open GOPs send CRA, which retina does not count as a
/// random access point). `None` if the lengths do not add up to the access unit.
fn to_annex_b(codec: Codec, au: &mut [u8]) -> Option<bool> {
    let mut keyframe = false;
    let mut i = 0;
    while i < au.len() {
        let len = u32::from_be_bytes(au.get(i..i + 4)?.try_into().ok()?) as usize;
        let header = *au.get(i + 4)?;
        if i + 4 + len > au.len() {
            return None;
        }
        keyframe |= match codec {
            Codec::H264 => header & 0x1F == 5,
            Codec::H265 => (16..=23).contains(&((header >> 1) & 0x3F)),
        };
        au[i..i + 4].copy_from_slice(&[0, 0, 0, 1]);
        i += 4 + len;
    }
    Some(keyframe)
}

/// The NAL unit types in an Annex B access unit.
pub fn nal_types(au: &[u8], codec: Codec) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 3 < au.len() {
            if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
                let h = au[i + 3];
                i += 3;
                return Some(match codec {
                    Codec::H264 => h & 0x1F,
                    Codec::H265 => (h >> 1) & 0x3F,
                });
            }
            i += 1;
        }
        None
    })
}

/// A keyframe with the stream's parameter sets (VPS, SPS, PPS) before it, so that every
/// segment decodes on its own. Retina strips parameter sets found in the stream and keeps the
/// latest; they are put back here, before every keyframe whatever its kind.
fn with_parameter_sets(params: Option<retina::codec::ParametersRef<'_>>, au: Vec<u8>) -> Vec<u8> {
    use retina::codec::{ParametersRef, VideoParametersCodec};
    const START: [u8; 4] = [0, 0, 0, 1];
    let Some(ParametersRef::Video(v)) = params else {
        return au;
    };
    let sets: Vec<&[u8]> = match v.codec_params() {
        VideoParametersCodec::H264 { sps, pps } => vec![sps, pps],
        VideoParametersCodec::H265 { vps, sps, pps } => vec![vps, sps, pps],
        _ => return au,
    };
    // After an access unit delimiter, which must come first (H.264 type 9, H.265 type 35).
    let aud = match v.codec_params() {
        VideoParametersCodec::H264 { .. } => au.len() > 4 && au[..4] == START && au[4] & 0x1F == 9,
        _ => au.len() > 4 && au[..4] == START && (au[4] >> 1) & 0x3F == 35,
    };
    let at = if aud {
        au[4..]
            .windows(4)
            .position(|w| w == START)
            .map_or(au.len(), |p| p + 4)
    } else {
        0
    };
    let mut out = Vec::with_capacity(au.len() + sets.iter().map(|s| s.len() + 4).sum::<usize>());
    out.extend_from_slice(&au[..at]);
    for s in sets {
        out.extend_from_slice(&START);
        out.extend_from_slice(s);
    }
    out.extend_from_slice(&au[at..]);
    out
}

/// RTP ticks at `rate` as ns.
fn ticks_to_ns(ticks: i64, rate: NonZeroU32) -> i64 {
    (i128::from(ticks) * 1_000_000_000 / i128::from(rate.get())) as i64
}

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// The camera's wall clock, from its RTCP sender reports: each report pairs an RTP time with
/// the camera's NTP time, so a frame's RTP time maps to when the camera captured it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CameraClock {
    /// The latest report: (extended RTP time, Unix ns).
    report: Option<(i64, i64)>,
}

impl CameraClock {
    /// Takes a sender report: the RTP time (extended, as retina gives it) and the NTP time
    /// (32.32 fixed point, seconds since 1900). Reports before 1970 (a camera that never set
    /// its clock) are ignored.
    pub fn sender_report(&mut self, rtp: i64, ntp: u64) {
        let secs = ntp >> 32;
        if secs < NTP_UNIX_OFFSET_SECS {
            return;
        }
        let frac_ns = ((ntp & 0xFFFF_FFFF) * 1_000_000_000) >> 32;
        let unix_ns = (secs - NTP_UNIX_OFFSET_SECS) as i64 * 1_000_000_000 + frac_ns as i64;
        self.report = Some((rtp, unix_ns));
    }

    /// The camera's wall time for a frame at this (extended) RTP time.
    pub fn wall_ns(&self, rtp: i64, rate: NonZeroU32) -> Option<i64> {
        self.report
            .map(|(r, unix)| unix + ticks_to_ns(rtp - r, rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_reports_map_rtp_time_to_the_cameras_clock() {
        let rate = NonZeroU32::new(90_000).unwrap();
        let mut c = CameraClock::default();
        assert_eq!(c.wall_ns(0, rate), None, "no report yet");
        // 2026-12-01T00:00:00.5Z in NTP: seconds since 1900, half a second of fraction.
        let unix = 1_796_083_200i64;
        let ntp = ((unix as u64 + NTP_UNIX_OFFSET_SECS) << 32) | (1 << 31);
        c.sender_report(900_000, ntp);
        let at_report = unix * 1_000_000_000 + 500_000_000;
        assert_eq!(c.wall_ns(900_000, rate), Some(at_report));
        // 40 ms of 90 kHz ticks later, and before.
        assert_eq!(c.wall_ns(903_600, rate), Some(at_report + 40_000_000));
        assert_eq!(c.wall_ns(896_400, rate), Some(at_report - 40_000_000));
        // A camera whose clock was never set (NTP time in 1900) is not believed.
        let mut never_set = CameraClock::default();
        never_set.sender_report(0, 5 << 32);
        assert_eq!(never_set.wall_ns(0, rate), None);
    }

    #[test]
    fn keyframes_are_idr_for_h264_and_any_irap_for_h265() {
        // Length-prefixed NAL units, as retina hands them out.
        let au = |types: &[u8], codec: Codec| -> Vec<u8> {
            types
                .iter()
                .flat_map(|t| {
                    let nal = match codec {
                        Codec::H264 => vec![0x60 | t, 0xAA],
                        Codec::H265 => vec![t << 1, 1, 0xAA],
                    };
                    let mut v = (nal.len() as u32).to_be_bytes().to_vec();
                    v.extend(nal);
                    v
                })
                .collect()
        };
        let key = |types: &[u8], codec| to_annex_b(codec, &mut au(types, codec)).unwrap();
        assert!(key(&[9, 7, 8, 5], Codec::H264));
        assert!(!key(&[1], Codec::H264));
        for irap in [19, 20, 21, 16] {
            assert!(key(&[irap], Codec::H265), "{irap}");
        }
        assert!(!key(&[1], Codec::H265));
        assert!(!key(&[32, 33, 34], Codec::H265));
        // In place: start codes where the lengths were, the NAL units untouched.
        let mut v = au(&[32, 33, 34, 21], Codec::H265);
        to_annex_b(Codec::H265, &mut v).unwrap();
        assert_eq!(
            nal_types(&v, Codec::H265).collect::<Vec<_>>(),
            [32, 33, 34, 21]
        );
        assert_eq!(&v[..6], &[0, 0, 0, 1, 64, 1]);
        // Lengths running past the end are refused, not trusted.
        let mut bad = au(&[1], Codec::H264);
        bad[3] = 200;
        assert_eq!(to_annex_b(Codec::H264, &mut bad), None);
        assert_eq!(to_annex_b(Codec::H264, &mut [0, 0]), None);
    }

    #[test]
    fn only_h264_and_h265_are_recorded() {
        assert_eq!(codec_of("H264"), Ok(Codec::H264));
        assert_eq!(codec_of("H265"), Ok(Codec::H265));
        assert!(
            codec_of("JPEG")
                .unwrap_err()
                .contains("only H.264 and H.265 are recorded")
        );
    }

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
