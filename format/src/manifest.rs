//! Segment manifests: what the unit attests about each finished segment.
//!
//! A manifest is the body of an entry in its camera's manifest log (a [`crate::chain`] entry), so
//! it is signed by the unit and chained to the camera's previous manifest: a deleted, inserted
//! or altered segment shows. Exported with the entry around it, it proves a segment file to
//! anyone holding the unit's public key.

use serde::{Deserialize, Serialize};

/// Whether the unit's clock was synchronised (from the kernel's NTP state, `adjtimex`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockState {
    pub synchronized: bool,
    /// The kernel's estimate of its error, when synchronised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_us: Option<u64>,
}

impl ClockState {
    pub const UNKNOWN: ClockState = ClockState {
        synchronized: false,
        max_error_us: None,
    };
}

/// Which clock a segment's frame times come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// The camera's clock: each frame's RTP time mapped through the camera's RTCP sender
    /// reports, so a frame's time is when the camera captured it. Used only while the camera's
    /// clock agrees with the unit's within a second.
    CameraRtcp,
    /// The unit's clock: the camera's RTP times (their spacing exact) anchored on the unit's
    /// clock when the first frame arrived, so times include the network's delay.
    UnitArrival,
    /// Some frames of each (the camera's first sender report, or its clock drifting off).
    Mixed,
}

impl TimeSource {
    /// The source of a segment whose frames so far came from `self`, after a frame from `next`.
    pub fn and(self, next: TimeSource) -> TimeSource {
        if self == next {
            self
        } else {
            TimeSource::Mixed
        }
    }
}

/// How a segment ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ended {
    /// Cut at a keyframe; the next segment follows without a gap.
    Cut,
    /// Recording of this camera stopped; a gap follows, for this cause.
    Stopped { cause: String },
    /// The unit lost power (or the daemon was killed) while writing; the segment was closed at
    /// its last durable sync when the store was next opened.
    PowerLoss,
    /// Nothing of this segment could be kept: the power failed before its first sync, so no
    /// readable file could be made. No file exists; its discarded bytes are in the destruction
    /// log. A gap of at least this segment's span follows the previous segment.
    Lost { cause: String },
}

/// The signed facts about one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub unit: String,
    pub camera: String,
    /// Per camera, from 0, increasing. Equal to the manifest log entry's sequence number unless
    /// the log was cut: a number is never reused, whatever was removed (it is kept past every
    /// number seen in the logs, the index and the files on disk).
    pub seq: u64,
    /// The segment's file name in `segments/<camera>/`.
    pub file: String,
    /// Wall-clock time of the first frame, ns since the epoch (UTC).
    pub start_ns: i64,
    /// Wall-clock time where the segment ends: the next segment's first frame for a cut, else
    /// the last frame written.
    pub end_ns: i64,
    pub start_mono_ns: u64,
    pub end_mono_ns: u64,
    /// Clock state when the segment started.
    pub clock: ClockState,
    /// False if the clock was unsynchronised at any point in the segment.
    pub clock_synced_throughout: bool,
    /// Times the wall clock stepped (by more than 1 s against the monotonic clock) in the segment.
    pub wall_steps: u32,
    pub frames: u64,
    pub keyframes: u64,
    pub plaintext_len: u64,
    pub ciphertext_len: u64,
    /// SHA-256 of the whole segment file (the age file), hex.
    pub ciphertext_sha256: String,
    pub ended: Ended,
    /// The store's running clock at the first frame: ns of the store's own life (restarts
    /// included, power-off time not), which retention measures ages with when the wall clock
    /// cannot be trusted. Absent in segments written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_start_ns: Option<u64>,
    /// Which clock the segment's times come from. Absent in segments written before it
    /// existed (their times are the unit's, at arrival).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times_from: Option<TimeSource>,
    /// SHA-256 over the SHA-256 of each piece of the file (the header, then each STREAM
    /// chunk's ciphertext; [`crate::pieces::leaves_digest`]): so a part of the segment can be
    /// served and checked without the rest (a still). Absent in older segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks_sha256: Option<String>,
    /// Where the keyframes are in the plaintext and how far each chunk reaches in time,
    /// recorded as the segment was encrypted. Absent in older segments, previews, and segments
    /// closed by a power cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<crate::pieces::FrameIndex>,
}

impl Manifest {
    /// The manifest of a segment of which nothing could be kept (a power cut before its first
    /// sync), or of a span that was not recorded at all (a failing disk): no file, no frames;
    /// the gap and its cause in the camera's signed record.
    pub fn lost(
        unit: &str,
        camera: &str,
        seq: u64,
        file: String,
        (start_ns, end_ns): (i64, i64),
        cause: &str,
    ) -> Manifest {
        Manifest {
            unit: unit.to_owned(),
            camera: camera.to_owned(),
            seq,
            file,
            start_ns,
            end_ns,
            start_mono_ns: 0,
            end_mono_ns: 0,
            clock: ClockState::UNKNOWN,
            clock_synced_throughout: false,
            wall_steps: 0,
            frames: 0,
            keyframes: 0,
            plaintext_len: 0,
            ciphertext_len: 0,
            ciphertext_sha256: String::new(),
            ended: Ended::Lost {
                cause: cause.to_owned(),
            },
            running_start_ns: None,
            times_from: None,
            chunks_sha256: None,
            index: None,
        }
    }

    pub fn duration_ns(&self) -> i64 {
        self.end_ns - self.start_ns
    }
}

/// How the cause of a gap record begins: a signed `lost` manifest of a stretch in which nothing
/// was written (a full or failing disk), not of a segment whose bytes were discarded.
pub const NOT_RECORDED: &str = "not recorded";

/// What the recorder writes as the cause of a segment it closes when it stops.
pub const RECORDER_STOPPED: &str = "the recorder stopped";

/// Which kind of stop a recorder's signed cause names: the recorder itself, its disk, or the
/// camera (everything else: a camera that stopped sending, refused or fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    RecorderStopped,
    Disk,
    Camera,
}

impl StopKind {
    /// The kind of a signed cause, as the recorder words them ([`RECORDER_STOPPED`]; a disk's
    /// trouble names the disk or the storage).
    pub fn of(cause: &str) -> StopKind {
        if cause.starts_with(RECORDER_STOPPED) {
            StopKind::RecorderStopped
        } else if cause.contains("disk") || cause.starts_with("storage error") {
            StopKind::Disk
        } else {
            StopKind::Camera
        }
    }
}
