//! One camera, kept recording: a supervisor that (re)connects with backoff and notices stalls,
//! and a writer that muxes access units into MPEG-TS and pushes them into the store.
//!
//! A camera that drops, reboots, stalls or sends garbage ends its session; the writer closes
//! the open segment with the cause (the gap is in the manifest), and the supervisor reconnects:
//! 0.5 s, then 1 s, then every 2 s, so recording resumes within a few seconds of the camera
//! coming back. Cameras are independent: each has its own threads, queue and segment writer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdc_format::manifest::RECORDER_STOPPED;
use rdc_storage::{Clocks, Frame, Store, TimeSource};

use crate::clockstate;
use crate::ingest::{AuFrame, CameraSpec, Event, Session};
use crate::timing::{Stamper, TimeMap, choose_wall};
use crate::tsmux::{Codec, TsMuxer, ns_to_90k};

/// How often a camera's supervisor looks at its session (ended? silent?).
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

/// Tunables; the defaults suit a unit.
#[derive(Debug, Clone)]
pub struct Options {
    /// No frame for this long ends the session ("stalled").
    pub stall_timeout: Duration,
    /// A camera that never sends a frame after connecting is given this long.
    pub connect_timeout: Duration,
    pub backoff_max: Duration,
    /// Frames queued between the RTSP session and the disk; beyond this, frames are dropped.
    pub queue_frames: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stall_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            backoff_max: Duration::from_secs(2),
            queue_frames: 128,
        }
    }
}

/// What the daemon reports about a camera.
#[derive(Debug, Default)]
pub struct CameraState {
    pub recording: AtomicBool,
    pub sessions: AtomicU64,
    /// Frames handed to the writer, counted as they arrive (the selftest's frame rate).
    pub frames: AtomicU64,
    /// The uplink asks for the open preview segment to be cut at the next preview, so the
    /// newest previews can be served.
    pub cut_previews: AtomicBool,
    /// The camera keeps previews (a preview writer is open for it).
    pub previews: AtomicBool,
    pub dropped: AtomicU64,
    /// Frames dropped at the queue that the writer was told of (they cut a segment).
    pub dropped_written: AtomicU64,
    /// The longest wait between a frame's arrival and its write, in 10 s windows.
    pub lag: Mutex<LagWindow>,
    pub segments: AtomicU64,
    pub last_cause: Mutex<Option<String>>,
    /// Bytes and keyframes received (for the selftest's bitrate and keyframe spacing).
    pub bytes: AtomicU64,
    pub keyframes: AtomicU64,
    /// The stream as the camera set it up: codec and size.
    pub stream: Mutex<Option<StreamShape>>,
    /// The newest keyframe (Annex B with its parameter sets) and its wall-clock time: the
    /// commissioning still.
    pub last_keyframe: Mutex<Option<(Codec, Vec<u8>, i64)>>,
}

/// The longest a frame waited for the disk: this 10 s window's and the one before.
#[derive(Debug, Default)]
pub struct LagWindow {
    start_mono: u64,
    current_ns: u64,
    previous_ns: u64,
}

const LAG_WINDOW_NS: u64 = 10_000_000_000;

impl LagWindow {
    fn roll(&mut self, now: u64) {
        let age = now.saturating_sub(self.start_mono);
        if age >= LAG_WINDOW_NS {
            self.previous_ns = if age < 2 * LAG_WINDOW_NS {
                self.current_ns
            } else {
                0
            };
            self.current_ns = 0;
            self.start_mono = now;
        }
    }

    /// A frame that arrived at `arrival` was written at `now` (monotonic ns).
    pub fn note(&mut self, now: u64, arrival: u64) {
        self.roll(now);
        self.current_ns = self.current_ns.max(now.saturating_sub(arrival));
    }

    /// The longest wait over the last 10 to 20 s, if any frame was written then.
    pub fn recent_ns(&mut self, now: u64) -> Option<u64> {
        self.roll(now);
        let m = self.current_ns.max(self.previous_ns);
        (m > 0).then_some(m)
    }
}

/// A camera's stream as it set it up: codec, and width and height when known.
pub type StreamShape = (Codec, Option<(u32, u32)>);

/// A running camera.
#[derive(Debug)]
pub struct Camera {
    pub id: String,
    pub state: Arc<CameraState>,
    supervisor: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Camera {
    pub fn spawn(
        spec: CameraSpec,
        store: Store,
        clocks: Arc<dyn Clocks>,
        shutdown: Arc<AtomicBool>,
        opts: Options,
    ) -> std::io::Result<Camera> {
        let (tx, rx) = sync_channel(opts.queue_frames);
        let state = Arc::new(CameraState::default());
        let id = spec.id.clone();
        let writer = {
            let (state, clocks, id) = (state.clone(), clocks.clone(), id.clone());
            std::thread::Builder::new()
                .name(format!("write-{id}"))
                .spawn(move || write_loop(&id, store, rx, clocks, state))?
        };
        let supervisor = {
            let state = state.clone();
            std::thread::Builder::new()
                .name(format!("cam-{}", spec.id))
                .spawn(move || run_sessions(spec, tx, clocks, shutdown, opts, state))?
        };
        Ok(Camera {
            id,
            state,
            supervisor,
            writer,
        })
    }

    /// Waits for the camera's threads after shutdown was signalled.
    pub fn join(self) {
        let _ = self.supervisor.join();
        let _ = self.writer.join();
    }
}

/// One camera's sessions, one after another until shutdown: connect, hand frames to the writer
/// thread, and after a session ends (error, stall, EOS) back off and reconnect.
fn run_sessions(
    spec: CameraSpec,
    tx: SyncSender<Event>,
    clocks: Arc<dyn Clocks>,
    shutdown: Arc<AtomicBool>,
    opts: Options,
    state: Arc<CameraState>,
) {
    let mut backoff = Backoff::new(opts.backoff_max);
    while !shutdown.load(Ordering::SeqCst) {
        state.sessions.fetch_add(1, Ordering::Relaxed);
        let started = clocks.mono_ns();
        let cause = match Session::start(&spec, tx.clone(), clocks.clone()) {
            Err(m) => m,
            Ok(session) => {
                let cause = loop {
                    if shutdown.load(Ordering::SeqCst) {
                        break None;
                    }
                    if let Some(c) = session.poll(SUPERVISE_EVERY) {
                        break Some(c);
                    }
                    let frames = session.counters.frames.load(Ordering::Relaxed);
                    let idle =
                        Duration::from_nanos(clocks.mono_ns().saturating_sub(
                            session.counters.last_frame_mono.load(Ordering::SeqCst),
                        ));
                    if let Some(c) = silence(&opts, frames, idle) {
                        break Some(c);
                    }
                };
                state.dropped.fetch_add(
                    session.counters.dropped.load(Ordering::Relaxed),
                    Ordering::Relaxed,
                );
                session.stop();
                match cause {
                    Some(c) => c,
                    None => break,
                }
            }
        };
        let ended = clocks.mono_ns();
        let wait =
            backoff.session_ended(ended, Duration::from_nanos(ended.saturating_sub(started)));
        tracing::warn!(camera = %spec.id, %cause, retry_in_ms = wait.as_millis() as u64, "camera session ended; reconnecting");
        *state.last_cause.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause.clone());
        if tx.send(Event::Gap { cause }).is_err() {
            break;
        }
        // Wait out the backoff on the unit's clock, looking for shutdown at least as often as
        // a session is supervised.
        while let Some(left) = backoff.poll_timeout(clocks.mono_ns()) {
            if shutdown.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(left.min(SUPERVISE_EVERY));
        }
    }
    let _ = tx.send(Event::Stop);
}

/// Why a session that is still open should end, if it should: a camera that sent nothing
/// within `connect_timeout` of connecting, or nothing for `stall_timeout` after it had sent
/// video (a frozen camera whose connection stays open).
fn silence(opts: &Options, frames: u64, idle: Duration) -> Option<String> {
    if frames == 0 && idle > opts.connect_timeout {
        Some(format!(
            "no video from the camera within {} s of connecting",
            opts.connect_timeout.as_secs()
        ))
    } else if frames > 0 && idle > opts.stall_timeout {
        Some(format!(
            "the camera stalled: no video for {} s",
            opts.stall_timeout.as_secs()
        ))
    } else {
        None
    }
}

/// The wait before reconnecting: 0.5 s, then doubling up to `max`; back to 0.5 s after a
/// session that lasted more than 10 s (the camera was back, then went again). Decided on the
/// clock it is given (monotonic ns), so it is tested on simulated time.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    max: Duration,
    /// When to reconnect.
    until: Option<u64>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const RESET_AFTER: Duration = Duration::from_secs(10);

    fn new(max: Duration) -> Self {
        Backoff {
            next: Self::FIRST,
            max,
            until: None,
        }
    }

    /// A session that ran for `ran` ended at `now`: the wait before the next.
    fn session_ended(&mut self, now: u64, ran: Duration) -> Duration {
        if ran > Self::RESET_AFTER {
            self.next = Self::FIRST;
        }
        let wait = self.next.min(self.max);
        self.next = (self.next * 2).min(self.max);
        self.until = Some(now.saturating_add(wait.as_nanos() as u64));
        wait
    }

    /// At `now`, how long is left to wait; `None` when it is time to connect.
    fn poll_timeout(&self, now: u64) -> Option<Duration> {
        self.until
            .filter(|&u| u > now)
            .map(|u| Duration::from_nanos(u - now))
    }
}

fn write_loop(
    id: &str,
    store: Store,
    rx: Receiver<Event>,
    clocks: Arc<dyn Clocks>,
    state: Arc<CameraState>,
) {
    let mut writer = match store.writer(id) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(camera = id, error = %e, "cannot write this camera");
            return;
        }
    };
    let mut previews = match store.preview_writer(id) {
        Ok(p) => p.map(|w| Previews {
            writer: w,
            mux: None,
            ts: Vec::new(),
        }),
        Err(e) => {
            tracing::error!(camera = id, error = %e, "cannot keep this camera's previews; recording without them");
            None
        }
    };
    state.previews.store(previews.is_some(), Ordering::SeqCst);
    let mut mux: Option<TsMuxer> = None;
    let mut times = TimeMap::default();
    let mut stamper = Stamper::default();
    let mut ts = Vec::with_capacity(1 << 20);
    let mut last_clock_check = 0u64;
    let close_previews = |p: &mut Option<Previews>, cause: &str| {
        if let Some(p) = p
            && let Err(e) = p.writer.close(cause)
        {
            tracing::error!(track = %p.writer.track(), error = %e, "cannot close the preview segment; it is recovered at the next start");
        }
    };
    let close = |w: &mut rdc_storage::SegmentWriter, cause: &str, state: &CameraState| match w
        .close(cause)
    {
        Ok(Some(m)) => {
            state.segments.fetch_add(1, Ordering::Relaxed);
            tracing::info!(camera = %m.camera, seq = m.seq, cause, "segment closed; recording paused");
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(camera = %w.camera(), error = %e, "cannot close the segment; it is recovered at the next start")
        }
    };
    loop {
        let ev = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => {
                sync_quiet(&mut writer, previews.as_mut());
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => Event::Stop,
        };
        let now = clocks.mono_ns();
        if now.saturating_sub(last_clock_check) > 10_000_000_000 {
            let clock = clockstate::read();
            writer.set_clock(clock);
            if let Some(p) = &mut previews {
                p.writer.set_clock(clock);
            }
            last_clock_check = now;
        }
        match ev {
            Event::Started {
                codec,
                frame_ns,
                size,
            } => {
                *state.stream.lock().unwrap_or_else(|p| p.into_inner()) = Some((codec, size));
                tracing::info!(
                    camera = id,
                    ?codec,
                    frame_ms = frame_ns.map(|n| n as f64 / 1e6),
                    "camera connected; recording"
                );
                mux = Some(TsMuxer::new(codec));
                if let Some(p) = &mut previews {
                    p.mux = Some(TsMuxer::new(codec));
                }
                times = TimeMap::default();
                stamper = Stamper::with_frame_duration(frame_ns);
            }
            Event::Frame(f) => {
                let Some(m) = mux.as_mut() else { continue };
                if f.dropped_before > 0 {
                    state
                        .dropped_written
                        .fetch_add(f.dropped_before, Ordering::Relaxed);
                }
                if f.dropped_before > 0 && writer.is_recording() {
                    let cause = format!(
                        "{} frames dropped: the disk could not keep up",
                        f.dropped_before
                    );
                    close(&mut writer, &cause, &state);
                    close_previews(&mut previews, &cause);
                }
                push_frame(
                    &mut writer,
                    previews.as_mut(),
                    m,
                    &mut times,
                    &mut stamper,
                    &mut ts,
                    &f,
                    &*clocks,
                    &state,
                );
                state
                    .lag
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .note(clocks.mono_ns(), f.arrival_mono);
                state
                    .recording
                    .store(writer.is_recording(), Ordering::Relaxed);
            }
            Event::Gap { cause } => {
                close(&mut writer, &cause, &state);
                close_previews(&mut previews, &cause);
                mux = None;
                state.recording.store(false, Ordering::Relaxed);
            }
            Event::Stop => {
                close(&mut writer, RECORDER_STOPPED, &state);
                close_previews(&mut previews, RECORDER_STOPPED);
                state.recording.store(false, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// A quiet second: make what was received durable. A sync that fails leaves the frames since
/// the last good one unsynced: the segment is closed at that sync (its manifest signs what is
/// kept) and the loss is said.
fn sync_quiet(writer: &mut rdc_storage::SegmentWriter, previews: Option<&mut Previews>) {
    if let Err(e) = writer.sync() {
        tracing::error!(camera = %writer.camera(), error = %e, "cannot sync the footage: the frames since the last sync (up to a second) are lost; closing the segment at its last sync");
        if let Err(e) = writer.close(&format!("storage error: {e}")) {
            tracing::error!(camera = %writer.camera(), error = %e, "cannot close the segment; it is recovered at the next start");
        }
    }
    if let Some(p) = previews
        && let Err(e) = p.writer.sync()
    {
        tracing::error!(track = %p.writer.track(), error = %e, "cannot sync the previews: the newest preview is lost; closing the preview segment at its last sync");
        if let Err(e) = p.writer.close(&format!("storage error: {e}")) {
            tracing::error!(track = %p.writer.track(), error = %e, "cannot close the preview segment; it is recovered at the next start");
        }
    }
}

/// A camera's preview track and the muxer of its own TS (so its continuity counters run on).
struct Previews {
    writer: rdc_storage::PreviewWriter,
    mux: Option<TsMuxer>,
    ts: Vec<u8>,
}

#[allow(clippy::too_many_arguments)]
fn push_frame(
    writer: &mut rdc_storage::SegmentWriter,
    previews: Option<&mut Previews>,
    mux: &mut TsMuxer,
    times: &mut TimeMap,
    stamper: &mut Stamper,
    ts: &mut Vec<u8>,
    f: &AuFrame,
    clocks: &dyn Clocks,
    state: &CameraState,
) {
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(camera = %writer.camera(), bytes = f.data.len(), keyframe = f.keyframe, pts = ?f.pts_ns, dts = ?f.dts_ns, nals = ?crate::ingest::nal_types(&f.data, mux.codec()).collect::<Vec<_>>(), "access unit");
    }
    let (pts, dts) = stamper.stamp(f.pts_ns, f.dts_ns, f.keyframe);
    // Frame times follow decode times (they increase, so segments cut and meet cleanly), offset
    // by the decode clock's lag at the session's first frame, so that without B-frames a
    // frame's time is its presentation: the first frame's arrival on the unit's clock, its
    // capture on the camera's.
    let lag0 = *times.lag0.get_or_insert(pts - dts);
    let mono = times.mono_for(Some(dts), f.arrival_mono);
    let unit_wall = mono as i64 + (clocks.wall_ns() - clocks.mono_ns() as i64);
    let camera_wall = f
        .camera_wall_ns
        .map(|w| w - (pts - dts) as i64 + lag0 as i64);
    let (chosen, source) = choose_wall(camera_wall, unit_wall);
    let wall = times.wall_for(chosen, mono, clocks.wall_ns() - clocks.mono_ns() as i64);
    // The stream's own times follow the frame times too (from the session's first frame's
    // decode time), so a segment's TS spans what its manifest signs, whatever the camera's
    // timestamps did.
    let (m0, d0) = *times.stream0.get_or_insert((mono, dts));
    let (pts, dts) = {
        let d = d0 + (mono - m0);
        (d + (pts - dts), d)
    };
    if source != times.source {
        match (source, camera_wall) {
            (TimeSource::CameraRtcp, _) => {
                tracing::info!(camera = %writer.camera(), offset_ms = (unit_wall - chosen) / 1_000_000, "frame times now from the camera's clock (RTCP sender reports)")
            }
            (_, Some(c)) => {
                tracing::warn!(camera = %writer.camera(), camera_ahead_ms = (c - unit_wall) / 1_000_000, "the camera's clock disagrees with the unit's by more than a second: frame times are the unit's; set the camera's NTP server to the unit's")
            }
            _ => {}
        }
        times.source = source;
    }
    writer.set_times(source);
    state.frames.fetch_add(1, Ordering::Relaxed);
    state
        .bytes
        .fetch_add(f.data.len() as u64, Ordering::Relaxed);
    if f.keyframe {
        state.keyframes.fetch_add(1, Ordering::Relaxed);
        *state
            .last_keyframe
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((mux.codec(), f.data.clone(), wall));
    }
    let (pts90, dts90) = (ns_to_90k(pts), ns_to_90k(dts));
    ts.clear();
    mux.mux(&f.data, pts90, dts90, f.keyframe, ts);
    match writer.push(&Frame {
        data: ts,
        keyframe: f.keyframe,
        wall_ns: wall,
        mono_ns: mono,
    }) {
        Ok(p) => {
            if let Some(m) = p.closed {
                state.segments.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(camera = %m.camera, seq = m.seq, bytes = m.ciphertext_len, "segment cut");
            }
            if let Some(cause) = p.failed {
                *state.last_cause.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause);
            }
        }
        Err(e) => {
            tracing::error!(camera = %writer.camera(), error = %e, "cannot write footage");
            let _ = writer.close(&format!("storage error: {e}"));
        }
    }
    if let Some(p) = previews
        && p.writer.wants(f.keyframe, wall, mono)
        && let Some(pm) = p.mux.as_mut()
    {
        if state.cut_previews.swap(false, Ordering::SeqCst) {
            p.writer.cut_at_next();
        }
        p.writer.set_times(source);
        p.ts.clear();
        pm.mux(&f.data, pts90, dts90, true, &mut p.ts);
        if let Err(e) = p.writer.push(&Frame {
            data: &p.ts,
            keyframe: true,
            wall_ns: wall,
            mono_ns: mono,
        }) {
            tracing::error!(track = %p.writer.track(), error = %e, "cannot write the preview");
            let _ = p.writer.close(&format!("storage error: {e}"));
        }
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_after_a_long_session() {
        let mut b = Backoff::new(Duration::from_secs(2));
        let short = Duration::from_secs(1);
        let waits: Vec<u128> = (0..5)
            .map(|_| b.session_ended(0, short).as_millis())
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 2000, 2000]);
        assert_eq!(b.session_ended(0, Duration::from_secs(11)).as_millis(), 500);
        assert_eq!(b.session_ended(0, short).as_millis(), 1000);
    }

    #[test]
    fn backoff_says_how_long_is_left_on_simulated_time() {
        const MS: u64 = 1_000_000;
        let mut b = Backoff::new(Duration::from_secs(2));
        assert_eq!(b.poll_timeout(0), None, "the first connection is at once");
        // A session of 1 s ended at t = 10 s: reconnect at 10.5 s.
        b.session_ended(10_000 * MS, Duration::from_secs(1));
        assert_eq!(
            b.poll_timeout(10_000 * MS),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            b.poll_timeout(10_400 * MS),
            Some(Duration::from_millis(100))
        );
        assert_eq!(b.poll_timeout(10_500 * MS), None);
        // The next is twice as long, from when it ended.
        b.session_ended(12_000 * MS, Duration::from_millis(200));
        assert_eq!(b.poll_timeout(12_999 * MS), Some(Duration::from_millis(1)));
        assert_eq!(b.poll_timeout(13_000 * MS), None);
    }

    #[test]
    fn a_silent_camera_is_judged_by_whether_it_ever_sent_video() {
        let o = Options::default();
        let s = |secs: f64| Duration::from_secs_f64(secs);
        assert_eq!(silence(&o, 0, s(9.9)), None, "10 s to send a first frame");
        assert!(
            silence(&o, 0, s(10.1))
                .unwrap()
                .contains("within 10 s of connecting")
        );
        assert_eq!(silence(&o, 500, s(4.9)), None);
        assert!(
            silence(&o, 500, s(5.1))
                .unwrap()
                .contains("stalled: no video for 5 s")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_frames_close_the_segment_with_the_cause() {
        use rdc_storage::{Budget, Ended, Manifest, SimulatedClocks, StoreConfig, UnitKey};
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            budget: Budget::MaxBytes(1 << 30),
            index_cache_bytes: 1 << 20,
            ..StoreConfig::new(dir.path().join("store"), "t", vec![[9u8; 32]])
        };
        let clocks: Arc<dyn Clocks> = Arc::new(SimulatedClocks::new(1_800_000_000_000_000_000));
        let (store, _) = Store::open(cfg, Arc::new(UnitKey::ephemeral()), clocks.clone()).unwrap();
        let (tx, rx) = sync_channel(64);
        let state = Arc::new(CameraState::default());
        let writer = {
            let (store, state) = (store.clone(), state.clone());
            std::thread::spawn(move || write_loop("front", store, rx, clocks, state))
        };
        let frame = |i: u64, keyframe: bool, dropped_before: u64| {
            Event::Frame(AuFrame {
                data: vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, i as u8],
                keyframe,
                pts_ns: Some(i * 40_000_000),
                dts_ns: None,
                camera_wall_ns: None,
                arrival_mono: 1_000_000_000 + i * 40_000_000,
                dropped_before,
            })
        };
        tx.send(Event::Started {
            codec: crate::tsmux::Codec::H264,
            frame_ns: None,
            size: None,
        })
        .unwrap();
        for i in 0..10 {
            tx.send(frame(i, i == 0, 0)).unwrap();
        }
        // Frames 10..=14 were dropped at the queue; the keyframe after them says so.
        tx.send(frame(15, true, 5)).unwrap();
        tx.send(frame(16, false, 0)).unwrap();
        tx.send(Event::Stop).unwrap();
        writer.join().unwrap();
        let ms: Vec<Manifest> = store
            .manifests("front", 0, u64::MAX)
            .unwrap()
            .into_iter()
            .map(|e| serde_json::from_value(e.body).unwrap())
            .collect();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].frames, 10);
        assert_eq!(
            ms[0].ended,
            Ended::Stopped {
                cause: "5 frames dropped: the disk could not keep up".into()
            }
        );
        assert_eq!(ms[1].frames, 2);
        assert_eq!(
            ms[1].ended,
            Ended::Stopped {
                cause: "the recorder stopped".into()
            }
        );
        assert_eq!(state.segments.load(Ordering::Relaxed), 2);
    }
}
