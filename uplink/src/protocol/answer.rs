//! What the unit answers, typed by request.

use rdc_format::chain::Entry;
use rdc_format::stills::Run;
use rdc_format::{Hold, SegmentEntry};
use serde::{Deserialize, Serialize};

use super::Refusal;

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
