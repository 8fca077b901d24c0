//! The `rdc/1` protocol, without I/O: one request per QUIC bidirectional stream, a
//! length-prefixed JSON header each way, then (for a fetch) raw ciphertext bytes.
//!
//! ```text
//! client -> unit   u32 BE length | Request (JSON)            then the client finishes its side
//! unit -> client   u32 BE length | Response (JSON)           then, for Fetch, the bytes
//! ```
//!
//! Everything here is checked before the unit acts: the size of a header, that it parses, that
//! a footage request says why (purpose, case reference, reason), and that the caller's role
//! allows it. A bad request gets an error on its own stream; the connection carries on.

use rdc_config::{Id, Role};
pub use rdc_format::Track;
use rdc_format::chain::Entry;
use rdc_format::stills::{Run, Signed, StillApproval, StillRequest};
use rdc_format::{Hold, SegmentEntry};
use serde::{Deserialize, Serialize};

/// The ALPN protocol name.
pub const ALPN: &[u8] = b"rdc/1";
/// The QUIC close code for a connection whose certificate the unit does not list.
pub const CLOSE_UNKNOWN_USER: u32 = 0x101;
/// The largest header either side accepts.
pub const MAX_HEADER: usize = 64 * 1024;
/// The most buckets one activity answer holds (a week of minutes).
pub const MAX_ACTIVITY_BUCKETS: i64 = 7 * 24 * 60;
/// Longest case reference and reason accepted.
pub const MAX_CASE_REF: usize = 100;
pub const MAX_REASON: usize = 1000;

/// Why footage is accessed (R9, R14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    View,
    Export,
    Still,
}

/// What every footage request must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Justification {
    pub purpose: Purpose,
    pub case_ref: String,
    pub reason: String,
}

/// A camera's track, as the client's list, manifests and fetch take it: a bare `&Id` means
/// its footage.
#[derive(Debug, Clone, Copy)]
pub struct TrackRef<'a> {
    pub camera: &'a Id,
    pub track: Track,
}

impl<'a> TrackRef<'a> {
    pub fn previews(camera: &'a Id) -> Self {
        TrackRef {
            camera,
            track: Track::Preview,
        }
    }
}

impl<'a> From<&'a Id> for TrackRef<'a> {
    fn from(camera: &'a Id) -> Self {
        TrackRef {
            camera,
            track: Track::Footage,
        }
    }
}

/// A request, one per stream. Every camera id is an [`Id`], checked as the request is parsed:
/// `../audit` or `a/b` never reaches the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Cameras, storage, clock, retention the disk really holds.
    Status,
    /// Segments of a camera overlapping a time range.
    List {
        camera: Id,
        from_ns: i64,
        to_ns: i64,
        why: Justification,
        /// The camera's footage (the default) or its preview track.
        #[serde(default, skip_serializing_if = "Track::is_footage")]
        track: Track,
    },
    /// A segment's ciphertext from `offset` (resumable).
    Fetch {
        camera: Id,
        seq: u64,
        offset: u64,
        why: Justification,
        /// The camera's footage (the default) or its preview track.
        #[serde(default, skip_serializing_if = "Track::is_footage")]
        track: Track,
    },
    /// The first segment of a camera's track that overlaps a time range, whole: a
    /// [`Request::Fetch`] of it, asked for before its number is known. `rdc fetch` sends it with
    /// the [`Request::List`] of the same range, so the first footage arrives a round trip
    /// sooner. Audited as a fetch of that segment; refused if the range holds none.
    FetchFirst {
        camera: Id,
        from_ns: i64,
        to_ns: i64,
        why: Justification,
        /// The camera's footage (the default) or its preview track.
        #[serde(default, skip_serializing_if = "Track::is_footage")]
        track: Track,
    },
    /// Signed manifests of a camera, `from_seq <= seq < to_seq`.
    Manifests {
        camera: Id,
        from_seq: u64,
        to_seq: u64,
        why: Justification,
        /// The camera's footage (the default) or its preview track.
        #[serde(default, skip_serializing_if = "Track::is_footage")]
        track: Track,
    },
    HoldCreate {
        cameras: Vec<Id>,
        from_ns: i64,
        to_ns: i64,
        case_ref: String,
        reason: String,
        review_ns: i64,
    },
    HoldList,
    HoldRelease {
        id: u64,
        reason: String,
    },
    /// Audit log entries from `from_seq`, with the unit's signing key.
    Audit {
        from_seq: u64,
    },
    /// A live still from a camera, to set its view while the unit is being commissioned
    /// (engineers and managers; refused once the unit is in service). The keyframe's bytes
    /// (Annex B, with its parameter sets) follow the answer; `rdc` decodes it.
    Still {
        camera: Id,
    },
    /// Marks the unit in service: from then on engineers see no footage at all.
    CommissionDone {
        reason: String,
    },
    /// The unit's selftest, as `rdc-recorder selftest` runs it on the unit.
    SelfTest,
    /// How many bytes a camera recorded in each `bucket_ns` of `[from_ns, to_ns)`: for a
    /// passthrough recorder, a motion proxy that shows an officer where to look first. It tells
    /// when things happened, so it is asked for and audited like footage.
    Activity {
        camera: Id,
        from_ns: i64,
        to_ns: i64,
        bucket_ns: i64,
        why: Justification,
    },
    /// Records an export of footage already fetched (`rdc export`) in the audit log and answers
    /// with the signed entry, which the bundle carries as its receipt. `digest` is
    /// [`rdc_format::export::segments_digest`] of the exported segments, so the receipt names
    /// exactly the footage in the bundle.
    ExportReceipt {
        camera: Id,
        from_ns: i64,
        to_ns: i64,
        first_seq: u64,
        last_seq: u64,
        count: u64,
        digest: String,
        why: Justification,
    },
    /// Asks for a still of an instant (officers and managers, 001 §5.13): the request signed
    /// with the officer's key. The unit registers it as pending a manager's approval.
    StillRequest {
        request: Signed<StillRequest>,
    },
    /// The stills register, signed and chained (officers, managers, auditors; 001 §5.15).
    Stills,
    /// A manager's signed approval of a pending still (never the requester's own).
    StillApprove {
        approval: Signed<StillApproval>,
    },
    /// The footage that holds an approved still's frame (its requester or a manager): the
    /// segment's header and the chunks from the keyframe before the instant to the frame,
    /// which follow the answer.
    StillMake {
        still: u64,
    },
    /// What the officer's `rdc` made of a still it was served: registered beside it.
    StillMade {
        still: u64,
        frame_ns: i64,
        png_sha256: String,
        record_sha256: String,
    },
    /// Records a made still's release to the police as an exhibit (001 §5.16).
    StillRelease {
        still: u64,
        to: String,
    },
    /// Opens a subject access request (managers, 002 §43): holds the camera's footage of the
    /// range and records the request and its deadline, a calendar month from `received`
    /// (`YYYY-MM-DD`).
    SarOpen {
        reference: String,
        camera: Id,
        from_ns: i64,
        to_ns: i64,
        received: String,
    },
    /// Extends an open request's deadline by one or two months, within its first month.
    SarExtend {
        reference: String,
        months: u8,
        reason: String,
    },
    /// Closes a request: footage disclosed (the disclosure's signed manifest by SHA-256) or
    /// refused (why); its hold is released.
    SarClose {
        reference: String,
        outcome: rdc_format::sar::Outcome,
    },
    /// The register of subject access requests (officers, managers, auditors).
    Sars,
    /// Records a redacted disclosure made from an exhibit of this unit's footage (`rdc
    /// redact`) and answers with the signed audit entry, which the disclosure carries.
    DisclosureReceipt {
        camera: Id,
        /// SHA-256 of the source bundle's signed manifest, of the disclosure's video, of its
        /// regions file.
        source_sha256: String,
        disclosure_sha256: String,
        regions_sha256: String,
        /// The subject access request it answers, if any.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        request_ref: String,
        why: Justification,
    },
}

impl Request {
    /// The name used in the audit log.
    pub fn action(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::List {
                track: Track::Preview,
                ..
            } => "list_previews",
            Request::Fetch {
                track: Track::Preview,
                ..
            } => "fetch_preview",
            Request::FetchFirst {
                track: Track::Preview,
                ..
            } => "fetch_preview",
            Request::Manifests {
                track: Track::Preview,
                ..
            } => "preview_manifests",
            Request::List { .. } => "list",
            Request::Fetch { .. } | Request::FetchFirst { .. } => "fetch",
            Request::Manifests { .. } => "manifests",
            Request::HoldCreate { .. } => "hold_create",
            Request::HoldList => "hold_list",
            Request::HoldRelease { .. } => "hold_release",
            Request::Audit { .. } => "audit",
            Request::ExportReceipt { .. } => "export",
            Request::Still { .. } => "commission_still",
            Request::CommissionDone { .. } => "commission_done",
            Request::SelfTest => "selftest",
            Request::Activity { .. } => "activity",
            Request::StillRequest { .. } => "still_request",
            Request::Stills => "stills_register",
            Request::StillApprove { .. } => "still_approve",
            Request::StillMake { .. } => "still_make",
            Request::StillMade { .. } => "still_made",
            Request::StillRelease { .. } => "still_release",
            Request::SarOpen { .. } => "sar_open",
            Request::SarExtend { .. } => "sar_extend",
            Request::SarClose { .. } => "sar_close",
            Request::Sars => "sar_register",
            Request::DisclosureReceipt { .. } => "disclosure",
        }
    }

    /// The justification, for requests that touch footage or its description.
    pub fn justification(&self) -> Option<&Justification> {
        match self {
            Request::List { why, .. }
            | Request::Fetch { why, .. }
            | Request::FetchFirst { why, .. }
            | Request::Manifests { why, .. }
            | Request::ExportReceipt { why, .. }
            | Request::DisclosureReceipt { why, .. }
            | Request::Activity { why, .. } => Some(why),
            _ => None,
        }
    }
}

/// Why the unit refused a request. Each says what happened and what to do; every variant
/// carries its facts as named fields, so every one serialises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "refused", rename_all = "snake_case")]
pub enum Refusal {
    #[error(
        "the request is malformed ({detail}): check the command, or update rdc if the unit is newer"
    )]
    Malformed { detail: String },
    #[error("the request header is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error(
        "the unit waited {secs} s for the request and gave up: the link is too slow or dropped; try again"
    )]
    Timeout { secs: u64 },
    #[error(
        "a footage request needs a purpose (view, export or still), a case reference and a reason: {missing}"
    )]
    Unjustified { missing: String },
    #[error("your role ({role}) may not {action}: ask a {needed}")]
    Forbidden {
        role: Role,
        action: String,
        needed: String,
    },
    #[error("your certificate is not in this unit's user list; ask the scheme manager to add it")]
    UnknownUser,
    #[error("this unit has no camera {camera:?}; its cameras are: {}", if known.is_empty() { "none yet".to_owned() } else { known.join(", ") })]
    NoSuchCamera { camera: String, known: Vec<String> },
    #[error(
        "segment {camera}/{seq} is not on the unit: it was never recorded, or retention has deleted it since it was listed (the destruction log says when); list again"
    )]
    NoSuchSegment { camera: String, seq: u64 },
    #[error(
        "camera {camera} has no footage from {from_ns} to {to_ns} (ns since 1970): list the camera to see what it holds"
    )]
    NoFootage {
        camera: String,
        from_ns: i64,
        to_ns: i64,
    },
    #[error(
        "offset {offset} is past the end of segment {camera}/{seq} ({len} bytes): delete the local .part file and fetch again"
    )]
    OffsetPastEnd {
        camera: String,
        seq: u64,
        offset: u64,
        len: u64,
    },
    #[error(
        "the unit has been in service since {since}: nobody sees a live still any more (a camera's view is set during commissioning, and not watched after)"
    )]
    InService { since: String },
    #[error("there is no still from camera {camera} yet: it is not streaming; run `rdc selftest`")]
    NoStill { camera: String },
    #[error("there is no active hold {id}: `rdc holds list` shows the active holds")]
    NoSuchHold { id: u64 },
    #[error("the hold was refused: {detail}")]
    HoldRefused { detail: String },
    #[error(
        "the unit could not answer ({detail}); try again, and if it persists ask an engineer to check the unit"
    )]
    Failed { detail: String },
    #[error(
        "too many requests: the unit serves each person at most {per_minute} requests a minute; wait {retry_after_secs} s and go on (rdc does so by itself)"
    )]
    Throttled {
        per_minute: u64,
        retry_after_secs: u64,
    },
    #[error("there is no still {still} in this unit's register: `rdc stills` lists them")]
    NoSuchStill { still: u64 },
    #[error("{}{why}", still.map(|s| format!("still {s}: ")).unwrap_or_else(|| "the still's request: ".into()))]
    StillRefused { still: Option<u64>, why: String },
    #[error("subject access request {reference}: {why}")]
    SarRefused { reference: String, why: String },
    #[error("the signed document is refused: {detail}")]
    BadSignature { detail: String },
    #[error(
        "camera {camera} has no footage at {at}: {}; ask for an instant inside the footage",
        nearest_words(before.as_deref(), after.as_deref())
    )]
    NoFootageAt {
        camera: String,
        at: String,
        /// The end of the footage before the instant, if any within a day.
        before: Option<String>,
        /// The start of the footage after it, if any within a day.
        after: Option<String>,
    },
    #[error(
        "the unit's log space is full ({used_bytes} of the {allowance_bytes} bytes set aside): it refuses requests rather than delete footage to log them; the logs are never cut, so an engineer must give the unit a larger disk (take an `rdc audit` copy first)"
    )]
    LogSpaceFull {
        used_bytes: u64,
        allowance_bytes: u64,
    },
}

fn nearest_words(before: Option<&str>, after: Option<&str>) -> String {
    match (before, after) {
        (Some(b), Some(a)) => format!("the nearest footage ends at {b} and resumes at {a}"),
        (Some(b), None) => format!("the nearest footage ends at {b}, with none after it"),
        (None, Some(a)) => format!("the nearest footage starts at {a}"),
        (None, None) => "there is no footage within a day of it".into(),
    }
}

/// The unit's status answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusAnswer {
    pub unit: String,
    /// The unit's Ed25519 key (hex) that signs manifests and logs.
    pub unit_public_key: String,
    /// Keys the unit retired deliberately (hex); entries they signed still verify.
    #[serde(default)]
    pub retired_keys: Vec<String>,
    pub time_ns: i64,
    pub store: rdc_format::Status,
    /// What the daemon knows now: cameras recording, the clock.
    pub live: Option<LiveState>,
    /// Who runs the unit, where and why, from its configuration (absent from older units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<UnitInfo>,
    /// The role this unit gives the caller (absent from older units): what a front end offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub your_role: Option<rdc_config::Role>,
}

/// Who runs the unit, where and why (R17): what an export names beside the footage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitInfo {
    pub operator: String,
    pub contact: String,
    pub purpose: String,
    pub site: String,
}

/// The daemon's live state (R16).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveState {
    pub clock: rdc_format::ClockState,
    pub cameras: Vec<LiveCamera>,
    /// The WireGuard tunnel to the scheme's hub, when the unit is reached through one (absent
    /// from older units and units on a private APN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelState>,
}

/// The unit's side of its tunnel to the hub (R18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelState {
    pub interface: String,
    /// The interface exists and is up.
    pub up: bool,
    pub mtu: Option<u32>,
    /// Seconds since the hub last completed a handshake with the unit; None when it never did
    /// or the unit cannot read it (then `note` says why).
    pub handshake_age_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveCamera {
    pub camera: String,
    pub recording: bool,
    pub sessions: u64,
    pub last_gap_cause: Option<String>,
    /// Frames the recorder dropped since it started because its disk could not keep up.
    #[serde(default)]
    pub dropped_frames: u64,
    /// The longest a frame waited between arriving and being written, over the last 10 to
    /// 20 s (ms); `None` when no frame was written in that time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_lag_ms: Option<u64>,
}

/// The audit answer: entries, with the key that signs them (auditors may not ask for the status).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditAnswer {
    pub unit: String,
    pub unit_public_key: String,
    #[serde(default)]
    pub retired_keys: Vec<String>,
    pub entries: Vec<Entry>,
}

/// A successful answer, typed by request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answer", content = "body", rename_all = "snake_case")]
pub enum Answer {
    Status(Box<StatusAnswer>),
    /// For `list`.
    Segments(Vec<SegmentEntry>),
    /// For `fetch`: the segment whose bytes follow.
    Segment(SegmentEntry),
    /// For `manifests`: signed manifest log entries.
    Manifests(Vec<Entry>),
    Hold(Hold),
    Holds(Vec<Hold>),
    Audit(AuditAnswer),
    /// For `export_receipt`: the unit's signed audit entry recording the export.
    Receipt(Entry),
    /// For `still`: the keyframe whose bytes follow.
    Still(StillInfo),
    /// For `commission_done`: in service since (ns).
    InService {
        since_ns: i64,
    },
    /// For `selftest`: one line per check.
    SelfTest(Vec<CheckLine>),
    /// For `still_request`, `still_approve`, `still_made`, `still_release`: the register entry
    /// the unit appended, signed.
    StillRegistered(Entry),
    /// For `stills` and `sars`: the register, with the key that signs it.
    Register(AuditAnswer),
    /// For `sar_open`, `sar_extend`, `sar_close`: the register entry the unit appended.
    SarRegistered(Entry),
    /// For `still_make`: what proves the bytes that follow (the header, then the run's chunks).
    StillFootage(Box<StillFootage>),
    /// For `activity`: bytes recorded in each bucket from `from_ns`.
    Activity {
        camera: String,
        from_ns: i64,
        bucket_ns: i64,
        bytes: Vec<u64>,
    },
}

/// What comes with a still's footage: everything `rdc` needs to check the bytes against the
/// segment's signed manifest and to place the frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StillFootage {
    pub unit: String,
    pub unit_public_key: String,
    #[serde(default)]
    pub retired_keys: Vec<String>,
    /// The segment's signed manifest entry.
    pub manifest: Entry,
    /// The still's request, approval and this production, as registered.
    pub request: Entry,
    pub approval: Entry,
    pub production: Entry,
    pub run: Run,
    /// SHA-256 (hex) of each piece of the segment: the header, then each chunk; the served
    /// ones are recomputed from the bytes, the rest complete the signed digest.
    pub leaves: Vec<String>,
}

/// The `detail` of the audit entry that records a redacted disclosure: what `rdc verify` of
/// the disclosure expects the receipt to say.
pub fn disclosure_detail(source: &str, disclosure: &str, regions: &str, request: &str) -> String {
    format!(
        "redacted disclosure {disclosure} of exhibit {source}, regions {regions}{}",
        if request.is_empty() {
            String::new()
        } else {
            format!(", for subject access request {request}")
        }
    )
}

/// The `detail` of the audit entry that records the unit going into service.
pub fn in_service_detail(since_ns: i64) -> String {
    format!("in service since {}", rdc_format::time::rfc3339(since_ns))
}

/// A still: which camera, its codec (`h264` or `h265`), when the keyframe was captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StillInfo {
    pub camera: String,
    pub codec: String,
    pub wall_ns: i64,
}

/// One line of a selftest: a check, whether it passed, what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckLine {
    pub check: String,
    pub pass: bool,
    pub detail: String,
}

impl CheckLine {
    pub fn new(check: impl Into<String>, pass: bool, detail: impl Into<String>) -> CheckLine {
        CheckLine {
            check: check.into(),
            pass,
            detail: detail.into(),
        }
    }

    /// A selftest as people read it (`PASS  check  detail` a line, then a summary) or, with
    /// `json`, for tools; the same on the unit and from `rdc selftest`.
    pub fn render(lines: &[CheckLine], json: bool) -> String {
        let failed = lines.iter().filter(|l| !l.pass).count();
        if json {
            return format!(
                "{}\n",
                serde_json::json!({ "pass": failed == 0, "checks": lines })
            );
        }
        let w = lines.iter().map(|l| l.check.len()).max().unwrap_or(0);
        let mut out = String::new();
        for l in lines {
            let mark = if l.pass { "PASS" } else { "FAIL" };
            out.push_str(&format!("{mark}  {:<w$}  {}\n", l.check, l.detail));
        }
        out.push_str(&if failed == 0 {
            format!("selftest: all {} checks passed\n", lines.len())
        } else {
            format!("selftest: {failed} of {} checks FAILED\n", lines.len())
        });
        out
    }
}

/// The unit's answer header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Success. For a fetch, `len` bytes follow the header.
    Ok {
        answer: Answer,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        len: Option<u64>,
    },
    Refused {
        refusal: Refusal,
    },
}

/// Encodes a header: u32 big-endian length, then JSON. Every protocol type serialises (the
/// property tests check each one), so this cannot fail for them.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let json = serde_json::to_vec(msg).unwrap_or_else(|e| {
        // Unreachable for rdc/1's types; a refusal that names the fault beats a panic.
        serde_json::to_vec(&Response::Refused {
            refusal: Refusal::Failed {
                detail: format!("the unit could not encode its answer: {e}"),
            },
        })
        .unwrap_or_default()
    });
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// The header length announced by the first four bytes, refused if over the limit.
pub fn header_len(prefix: [u8; 4]) -> Result<usize, Refusal> {
    let n = u32::from_be_bytes(prefix) as usize;
    if n > MAX_HEADER {
        return Err(Refusal::TooLarge {
            size: n,
            limit: MAX_HEADER,
        });
    }
    Ok(n)
}

/// The most an answer's header may announce: a week of one-minute segments listed is about
/// 3 MB, a day's manifests about 1.5 MB. The client reads answers only from a unit it has
/// authenticated, so the bound is against a broken unit, not an attacker's request.
pub const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// Parses and checks a request header (without the length prefix).
pub fn decode_request(json: &[u8]) -> Result<Request, Refusal> {
    let req = parse_request(json)?;
    check_request(&req)?;
    Ok(req)
}

/// Parses a request header, without judging it.
pub fn parse_request(json: &[u8]) -> Result<Request, Refusal> {
    serde_json::from_slice(json).map_err(|e| Refusal::Malformed {
        detail: e.to_string(),
    })
}

/// Checks that a request says why, where it must.
pub fn check_request(req: &Request) -> Result<(), Refusal> {
    if let Some(why) = req.justification() {
        check_justification(why)?;
    }
    match req {
        Request::HoldCreate {
            case_ref, reason, ..
        } if case_ref.trim().is_empty() || reason.trim().is_empty() => {
            return Err(Refusal::Unjustified {
                missing: "a hold needs a case reference and a reason".into(),
            });
        }
        Request::HoldRelease { reason, .. } if reason.trim().is_empty() => {
            return Err(Refusal::Unjustified {
                missing: "a release needs a reason".into(),
            });
        }
        Request::Activity {
            from_ns,
            to_ns,
            bucket_ns,
            ..
        } if *bucket_ns < 1_000_000_000
            || from_ns >= to_ns
            || (to_ns.saturating_sub(*from_ns)) / bucket_ns > MAX_ACTIVITY_BUCKETS =>
        {
            return Err(Refusal::Malformed {
                detail: format!(
                    "activity: from before to, buckets of at least a second, at most {MAX_ACTIVITY_BUCKETS} of them"
                ),
            });
        }
        Request::StillRequest { request } => check_still_request(&request.body)?,
        Request::StillRelease { to, .. } if to.trim().is_empty() || to.len() > 300 => {
            return Err(Refusal::Unjustified {
                missing: "a release names who receives the still (\"DC NAME, force, exhibit ref\"), at most 300 characters".into(),
            });
        }
        Request::StillMade {
            png_sha256,
            record_sha256,
            ..
        } if !is_sha256(png_sha256) || !is_sha256(record_sha256) => {
            return Err(Refusal::Malformed {
                detail: "still_made carries the PNG's and the record's SHA-256".into(),
            });
        }
        Request::SarOpen {
            reference,
            received,
            from_ns,
            to_ns,
            ..
        } if reference.trim().is_empty()
            || reference.len() > MAX_CASE_REF
            || rdc_format::sar::parse_date(received).is_none()
            || from_ns >= to_ns =>
        {
            return Err(Refusal::Unjustified {
                missing: format!(
                    "a subject access request needs the requester's reference (at most {MAX_CASE_REF} characters), the date it was received (YYYY-MM-DD) and a time range"
                ),
            });
        }
        Request::SarExtend { months, reason, .. }
            if !(1..=rdc_format::sar::MAX_EXTENSION_MONTHS).contains(months)
                || reason.trim().is_empty()
                || reason.len() > MAX_REASON =>
        {
            return Err(Refusal::Unjustified {
                missing: "an extension is of one or two months, with a reason".into(),
            });
        }
        Request::SarClose { outcome, .. }
            if match outcome {
                rdc_format::sar::Outcome::Disclosed { disclosure_sha256 } => {
                    !is_sha256(disclosure_sha256)
                }
                rdc_format::sar::Outcome::Refused { reason } => {
                    reason.trim().is_empty() || reason.len() > MAX_REASON
                }
            } =>
        {
            return Err(Refusal::Unjustified {
                missing: "closing a request says what was disclosed (the disclosure) or why it was refused".into(),
            });
        }
        Request::StillApprove { approval } if approval.body.note.len() > MAX_REASON => {
            return Err(Refusal::Malformed {
                detail: format!("an approval's note is at most {MAX_REASON} characters"),
            });
        }
        Request::CommissionDone { reason } if reason.trim().is_empty() => {
            return Err(Refusal::Unjustified {
                missing: "marking the unit in service needs a reason (e.g. the installation's job number)".into(),
            });
        }
        Request::List {
            track: Track::Preview,
            why,
            ..
        }
        | Request::Fetch {
            track: Track::Preview,
            why,
            ..
        }
        | Request::FetchFirst {
            track: Track::Preview,
            why,
            ..
        }
        | Request::Manifests {
            track: Track::Preview,
            why,
            ..
        } if why.purpose != Purpose::View => {
            return Err(Refusal::Unjustified {
                missing: "previews are asked for with the purpose view".into(),
            });
        }
        Request::ExportReceipt { why, .. } if why.purpose != Purpose::Export => {
            return Err(Refusal::Unjustified {
                missing: "an export receipt needs the purpose export".into(),
            });
        }
        Request::ExportReceipt {
            first_seq,
            last_seq,
            count,
            digest,
            ..
        } if first_seq > last_seq
            || *count == 0
            || *count > last_seq - first_seq + 1
            || digest.len() != 64
            || !digest.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            return Err(Refusal::Malformed {
                detail: "an export receipt names its segments: first <= last, a count within them, a SHA-256 digest".into(),
            });
        }
        _ => {}
    }
    Ok(())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A still's request says what, why and for which case; a police request names the officer,
/// the senior officer and the authorisation.
fn check_still_request(r: &StillRequest) -> Result<(), Refusal> {
    check_justification(&Justification {
        purpose: Purpose::Still,
        case_ref: r.case_ref.clone(),
        reason: r.reason.clone(),
    })?;
    if let Some(p) = &r.police {
        let mut missing = Vec::new();
        for (v, what) in [
            (&p.officer, "the police officer's name"),
            (&p.id, "their identification"),
            (
                &p.authorised_by,
                "the authorising senior officer (Inspector or above)",
            ),
        ] {
            if v.trim().is_empty() || v.len() > 200 {
                missing.push(what);
            }
        }
        if !is_sha256(&p.authorisation_sha256) {
            missing.push("the signed authorisation's SHA-256");
        }
        if !missing.is_empty() {
            return Err(Refusal::Unjustified {
                missing: format!("a police officer's request needs {}", missing.join(", ")),
            });
        }
    }
    Ok(())
}

fn check_justification(why: &Justification) -> Result<(), Refusal> {
    let mut missing = Vec::new();
    if why.case_ref.trim().is_empty() {
        missing.push("a case reference");
    }
    if why.reason.trim().is_empty() {
        missing.push("a reason");
    }
    if !missing.is_empty() {
        return Err(Refusal::Unjustified {
            missing: format!("missing {}", missing.join(" and ")),
        });
    }
    if why.case_ref.len() > MAX_CASE_REF || why.reason.len() > MAX_REASON {
        return Err(Refusal::Unjustified {
            missing: format!(
                "case reference at most {MAX_CASE_REF} characters, reason at most {MAX_REASON}"
            ),
        });
    }
    Ok(())
}

/// Whether `role` may make `req` (R9): officers view and export; managers also hold and audit;
/// engineers check the unit but see no footage; auditors read the audit log only.
pub fn authorize(role: Role, req: &Request) -> Result<(), Refusal> {
    let (allowed, needed) = match req {
        Request::Status => (role != Role::Auditor, "officer, manager or engineer"),
        Request::List { .. }
        | Request::Fetch { .. }
        | Request::FetchFirst { .. }
        | Request::Manifests { .. }
        | Request::ExportReceipt { .. }
        | Request::DisclosureReceipt { .. }
        | Request::Activity { .. } => (role.may_see_footage(), "case support officer or manager"),
        Request::HoldCreate { .. } | Request::HoldList | Request::HoldRelease { .. } => {
            (role.may_manage_holds(), "manager")
        }
        Request::Audit { .. } => (role.may_read_audit(), "manager or auditor"),
        Request::StillRequest { .. }
        | Request::StillMake { .. }
        | Request::StillMade { .. }
        | Request::StillRelease { .. } => {
            (role.may_see_footage(), "case support officer or manager")
        }
        Request::StillApprove { .. } => (role == Role::Manager, "Safer Neighbourhoods manager"),
        Request::Stills | Request::Sars => (role != Role::Engineer, "officer, manager or auditor"),
        Request::SarOpen { .. } | Request::SarExtend { .. } | Request::SarClose { .. } => {
            (role == Role::Manager, "manager")
        }
        Request::Still { .. } | Request::CommissionDone { .. } | Request::SelfTest => (
            matches!(role, Role::Engineer | Role::Manager),
            "field engineer or manager",
        ),
    };
    if allowed {
        Ok(())
    } else {
        Err(Refusal::Forbidden {
            role,
            action: req.action().replace('_', " "),
            needed: needed.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(case: &str, reason: &str) -> Justification {
        Justification {
            purpose: Purpose::View,
            case_ref: case.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn round_trip() {
        let r = Request::Fetch {
            camera: Id::parse("front").unwrap(),
            seq: 7,
            offset: 1 << 20,
            why: why("ASB/2026/114", "doorstep incident"),
            track: Track::Footage,
        };
        let bytes = encode(&r);
        let n = header_len(bytes[..4].try_into().unwrap()).unwrap();
        assert_eq!(n, bytes.len() - 4);
        assert_eq!(decode_request(&bytes[4..]).unwrap(), r);
        // The footage track is not named on the wire (units before previews read it still).
        assert!(!String::from_utf8_lossy(&bytes).contains("track"));
    }

    #[test]
    fn previews_are_asked_for_to_view_and_audited_as_previews() {
        let mut r = Request::List {
            camera: Id::parse("front").unwrap(),
            from_ns: 0,
            to_ns: 1,
            why: why("ASB/1", "Tuesday evening"),
            track: Track::Preview,
        };
        assert_eq!(decode_request(&encode(&r)[4..]).unwrap(), r);
        assert_eq!(r.action(), "list_previews");
        if let Request::List { why, .. } = &mut r {
            why.purpose = Purpose::Export;
        }
        match decode_request(&encode(&r)[4..]) {
            Err(Refusal::Unjustified { missing }) => assert!(missing.contains("view"), "{missing}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_request(br#"{"op":"fetch","camera":"front","seq":1,"offset":0,"track":"sideways","why":{"purpose":"view","case_ref":"a","reason":"b"}}"#),
            Err(Refusal::Malformed { .. })
        ));
    }

    #[test]
    fn malformed_and_oversized_are_refused() {
        assert!(matches!(
            decode_request(b"{\"op\":\"fetch\""),
            Err(Refusal::Malformed { .. })
        ));
        assert!(matches!(
            decode_request(b"\xff\x00garbage"),
            Err(Refusal::Malformed { .. })
        ));
        assert!(matches!(
            decode_request(br#"{"op":"audit","from_seq":0,"extra":1}"#),
            Err(Refusal::Malformed { .. })
        ));
        assert!(matches!(
            decode_request(br#"{"op":"format_disk"}"#),
            Err(Refusal::Malformed { .. })
        ));
        assert_eq!(
            header_len((MAX_HEADER as u32 + 1).to_be_bytes()),
            Err(Refusal::TooLarge {
                size: MAX_HEADER + 1,
                limit: MAX_HEADER
            })
        );
    }

    #[test]
    fn ids_that_could_reach_a_path_are_refused_as_they_are_parsed() {
        for cam in [
            "../audit",
            "../holds",
            "..",
            ".",
            "a/b",
            "/etc",
            "FRONT",
            "",
            "front\u{0}",
        ] {
            let json = format!(
                r#"{{"op":"manifests","camera":{},"from_seq":0,"to_seq":9,"why":{{"purpose":"view","case_ref":"C","reason":"r"}}}}"#,
                serde_json::to_string(cam).unwrap()
            );
            match decode_request(json.as_bytes()) {
                Err(Refusal::Malformed { detail }) => {
                    assert!(detail.contains("not a valid id"), "{cam:?}: {detail}")
                }
                other => panic!("{cam:?} accepted: {other:?}"),
            }
        }
        let hold = r#"{"op":"hold_create","cameras":["front","../destruction"],"from_ns":0,"to_ns":1,"case_ref":"C","reason":"r","review_ns":5}"#;
        assert!(matches!(
            decode_request(hold.as_bytes()),
            Err(Refusal::Malformed { .. })
        ));
    }

    #[test]
    fn every_refusal_serialises_and_reads_back() {
        let all = [
            Refusal::Malformed { detail: "x".into() },
            Refusal::TooLarge { size: 1, limit: 2 },
            Refusal::Timeout { secs: 30 },
            Refusal::Unjustified {
                missing: "m".into(),
            },
            Refusal::Forbidden {
                role: Role::Engineer,
                action: "fetch".into(),
                needed: "manager".into(),
            },
            Refusal::UnknownUser,
            Refusal::NoSuchCamera {
                camera: "rear".into(),
                known: vec!["front".into()],
            },
            Refusal::NoSuchSegment {
                camera: "front".into(),
                seq: 3,
            },
            Refusal::OffsetPastEnd {
                camera: "front".into(),
                seq: 3,
                offset: 9,
                len: 5,
            },
            Refusal::NoFootage {
                camera: "front".into(),
                from_ns: 1,
                to_ns: 2,
            },
            Refusal::NoSuchHold { id: 4 },
            Refusal::HoldRefused { detail: "d".into() },
            Refusal::Failed { detail: "f".into() },
            Refusal::NoSuchStill { still: 3 },
            Refusal::StillRefused {
                still: Some(3),
                why: "w".into(),
            },
            Refusal::StillRefused {
                still: None,
                why: "w".into(),
            },
            Refusal::BadSignature { detail: "d".into() },
            Refusal::NoFootageAt {
                camera: "front".into(),
                at: "t".into(),
                before: Some("b".into()),
                after: None,
            },
        ];
        for r in all {
            let bytes = encode(&Response::Refused { refusal: r.clone() });
            let back: Response = serde_json::from_slice(&bytes[4..]).unwrap();
            match back {
                Response::Refused { refusal } => assert_eq!(refusal, r),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn stills_are_asked_for_by_officers_approved_by_managers_and_never_by_engineers() {
        let make = Request::StillMake { still: 1 };
        let release = Request::StillRelease {
            still: 1,
            to: "DC A".into(),
        };
        for role in [Role::Officer, Role::Manager] {
            assert!(authorize(role, &make).is_ok());
            assert!(authorize(role, &release).is_ok());
            assert!(authorize(role, &Request::Stills).is_ok());
        }
        assert!(authorize(Role::Auditor, &Request::Stills).is_ok());
        for role in [Role::Engineer, Role::Auditor] {
            assert!(authorize(role, &make).is_err());
            assert!(authorize(role, &release).is_err());
        }
        assert!(authorize(Role::Engineer, &Request::Stills).is_err());
        let blank = Request::StillRelease {
            still: 1,
            to: " ".into(),
        };
        assert!(matches!(
            check_request(&blank),
            Err(Refusal::Unjustified { .. })
        ));
        // A gap's refusal names the footage around it.
        let r = Refusal::NoFootageAt {
            camera: "front".into(),
            at: "T".into(),
            before: Some("B".into()),
            after: Some("A".into()),
        };
        assert!(
            r.to_string()
                .contains("the nearest footage ends at B and resumes at A"),
            "{r}"
        );
    }

    #[test]
    fn footage_requests_must_say_why() {
        let r = Request::List {
            camera: Id::parse("front").unwrap(),
            from_ns: 0,
            to_ns: 1,
            why: why("", "  "),
            track: Track::Footage,
        };
        match decode_request(&encode(&r)[4..]) {
            Err(Refusal::Unjustified { missing }) => {
                assert_eq!(missing, "missing a case reference and a reason")
            }
            other => panic!("{other:?}"),
        }
        let msg = Refusal::Unjustified {
            missing: "missing a reason".into(),
        }
        .to_string();
        assert!(
            msg.contains("purpose") && msg.contains("case reference"),
            "{msg}"
        );
        // Without the `why` object at all: malformed, and says so.
        assert!(matches!(
            decode_request(br#"{"op":"fetch","camera":"front","seq":1,"offset":0}"#),
            Err(Refusal::Malformed { .. })
        ));
    }

    #[test]
    fn roles() {
        let fetch = Request::Fetch {
            camera: Id::parse("c").unwrap(),
            seq: 0,
            offset: 0,
            why: why("C1", "r"),
            track: Track::Preview,
        };
        let hold = Request::HoldList;
        let audit = Request::Audit { from_seq: 0 };
        for (role, f, h, a, s) in [
            (Role::Officer, true, false, false, true),
            (Role::Manager, true, true, true, true),
            (Role::Engineer, false, false, false, true),
            (Role::Auditor, false, false, true, false),
        ] {
            assert_eq!(authorize(role, &fetch).is_ok(), f, "{role} fetch");
            assert_eq!(authorize(role, &hold).is_ok(), h, "{role} holds");
            assert_eq!(authorize(role, &audit).is_ok(), a, "{role} audit");
            assert_eq!(
                authorize(role, &Request::Status).is_ok(),
                s,
                "{role} status"
            );
        }
        let msg = authorize(Role::Engineer, &fetch).unwrap_err().to_string();
        assert_eq!(
            msg,
            "your role (engineer) may not fetch preview: ask a case support officer or manager"
        );
    }

    /// Property tests of the parsers the unit runs on bytes from the network.
    mod props {
        use super::*;
        use proptest::prelude::*;

        fn id() -> impl Strategy<Value = Id> {
            proptest::collection::vec(
                prop_oneof![b'a'..=b'z', b'0'..=b'9', Just(b'-'), Just(b'_')],
                1..=32,
            )
            .prop_filter_map("a valid id", |v| {
                Id::parse(std::str::from_utf8(&v).expect("ascii")).ok()
            })
        }

        fn why() -> impl Strategy<Value = Justification> {
            (
                prop_oneof![
                    Just(Purpose::View),
                    Just(Purpose::Export),
                    Just(Purpose::Still)
                ],
                any::<String>(),
                any::<String>(),
            )
                .prop_map(|(purpose, case_ref, reason)| Justification {
                    purpose,
                    case_ref,
                    reason,
                })
        }

        fn track() -> impl Strategy<Value = Track> {
            prop_oneof![Just(Track::Footage), Just(Track::Preview)]
        }

        fn request() -> impl Strategy<Value = Request> {
            prop_oneof![
                Just(Request::Status),
                Just(Request::HoldList),
                (id(), any::<i64>(), any::<i64>(), why(), track()).prop_map(
                    |(camera, from_ns, to_ns, why, track)| {
                        Request::List {
                            camera,
                            from_ns,
                            to_ns,
                            why,
                            track,
                        }
                    }
                ),
                (id(), any::<u64>(), any::<u64>(), why(), track()).prop_map(
                    |(camera, seq, offset, why, track)| {
                        Request::Fetch {
                            camera,
                            seq,
                            offset,
                            why,
                            track,
                        }
                    }
                ),
                (id(), any::<u64>(), any::<u64>(), why(), track()).prop_map(
                    |(camera, from_seq, to_seq, why, track)| Request::Manifests {
                        camera,
                        from_seq,
                        to_seq,
                        why,
                        track,
                    }
                ),
                (
                    proptest::collection::vec(id(), 0..4),
                    any::<i64>(),
                    any::<i64>(),
                    any::<String>(),
                    any::<String>(),
                    any::<i64>()
                )
                    .prop_map(
                        |(cameras, from_ns, to_ns, case_ref, reason, review_ns)| {
                            Request::HoldCreate {
                                cameras,
                                from_ns,
                                to_ns,
                                case_ref,
                                reason,
                                review_ns,
                            }
                        }
                    ),
                (any::<u64>(), any::<String>())
                    .prop_map(|(id, reason)| Request::HoldRelease { id, reason }),
                any::<u64>().prop_map(|from_seq| Request::Audit { from_seq }),
                id().prop_map(|camera| Request::Still { camera }),
                any::<String>().prop_map(|reason| Request::CommissionDone { reason }),
                Just(Request::SelfTest),
                (id(), any::<(i64, i64, i64)>(), why()).prop_map(
                    |(camera, (from_ns, to_ns, bucket_ns), why)| Request::Activity {
                        camera,
                        from_ns,
                        to_ns,
                        bucket_ns,
                        why,
                    }
                ),
                (
                    id(),
                    any::<(i64, i64, u64, u64, u64)>(),
                    "[0-9a-f]{64}",
                    why()
                )
                    .prop_map(
                        |(camera, (from_ns, to_ns, first_seq, last_seq, count), digest, why)| {
                            Request::ExportReceipt {
                                camera,
                                from_ns,
                                to_ns,
                                first_seq,
                                last_seq,
                                count,
                                digest,
                                why,
                            }
                        }
                    ),
            ]
        }

        proptest! {
            #[test]
            fn any_bytes_are_refused_or_parsed_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                if let Ok(req) = decode_request(&bytes) {
                    // Whatever parses is fully checked: ids valid, justification present.
                    if let Some(w) = req.justification() {
                        prop_assert!(!w.case_ref.trim().is_empty() && !w.reason.trim().is_empty());
                    }
                }
            }

            #[test]
            fn any_camera_string_is_an_id_or_refused(camera in any::<String>(), seq in any::<u64>()) {
                let json = serde_json::json!({
                    "op": "fetch", "camera": camera, "seq": seq, "offset": 0,
                    "why": {"purpose": "view", "case_ref": "C/1", "reason": "r"},
                });
                match decode_request(json.to_string().as_bytes()) {
                    Ok(Request::Fetch { camera: c, .. }) => {
                        prop_assert_eq!(c.as_str(), camera.as_str());
                        prop_assert!(!camera.contains('/') && !camera.contains('.') && !camera.is_empty());
                    }
                    Ok(other) => prop_assert!(false, "{other:?}"),
                    Err(Refusal::Malformed { .. }) => prop_assert!(Id::parse(&camera).is_err()),
                    Err(other) => prop_assert!(false, "{other:?}"),
                }
            }

            #[test]
            fn every_request_round_trips(req in request()) {
                let bytes = encode(&req);
                prop_assert_eq!(header_len(bytes[..4].try_into().unwrap()).ok(), Some(bytes.len() - 4));
                prop_assert_eq!(parse_request(&bytes[4..]).unwrap(), req);
            }

            #[test]
            fn a_header_length_is_bounded(prefix in any::<[u8; 4]>()) {
                if let Ok(n) = header_len(prefix) {
                    prop_assert!(n <= MAX_HEADER);
                }
            }

            #[test]
            fn any_answer_bytes_parse_or_fail_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                let _ = serde_json::from_slice::<Response>(&bytes);
            }
        }
    }
}
