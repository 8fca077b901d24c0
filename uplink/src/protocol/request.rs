//! What a person asks of the unit, and the checks every request passes before it is acted on:
//! that it says why, where it must.

use rdc_config::Id;
use rdc_format::Track;
use rdc_format::stills::{Signed, StillApproval, StillRequest};
use serde::{Deserialize, Serialize};

use super::{MAX_ACTIVITY_BUCKETS, MAX_CASE_REF, MAX_REASON, Refusal};

/// Why footage is accessed (R9, R14): what the audit entry records.
pub use rdc_format::Purpose;

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
        /// The camera's footage (the default) or its preview track.
        #[serde(default, skip_serializing_if = "Track::is_footage")]
        track: Track,
        from_ns: i64,
        to_ns: i64,
        why: Justification,
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

/// What a request touches: [`Request::scope`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The camera its audit entry names.
    pub camera: Option<&'a Id>,
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub seq: Option<u64>,
    pub case_ref: Option<&'a str>,
    pub reason: Option<&'a str>,
    /// Cameras the unit must have had, or the request is refused before it is served.
    pub known: Vec<&'a Id>,
    /// What a receipt records: the audit entry's `detail`.
    pub detail: Option<String>,
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

    /// What the request touches, as its audit entry records it before the unit acts, and the
    /// cameras that must be ones the unit has had. Requests whose scope is known only once
    /// they are looked up (stills, subject access requests) record it as they are served.
    pub fn scope(&self) -> Scope<'_> {
        let mut s = Scope::default();
        match self {
            Request::List {
                camera,
                from_ns,
                to_ns,
                ..
            }
            | Request::FetchFirst {
                camera,
                from_ns,
                to_ns,
                ..
            }
            | Request::Activity {
                camera,
                from_ns,
                to_ns,
                ..
            } => {
                (s.camera, s.from_ns, s.to_ns) = (Some(camera), Some(*from_ns), Some(*to_ns));
                s.known.push(camera);
            }
            Request::ExportReceipt {
                camera,
                from_ns,
                to_ns,
                first_seq,
                last_seq,
                count,
                digest,
                ..
            } => {
                (s.camera, s.from_ns, s.to_ns) = (Some(camera), Some(*from_ns), Some(*to_ns));
                s.known.push(camera);
                s.detail = Some(rdc_format::export::receipt_detail(
                    *first_seq, *last_seq, *count, digest,
                ));
            }
            Request::Manifests { camera, .. } => {
                s.camera = Some(camera);
                s.known.push(camera);
            }
            Request::DisclosureReceipt {
                camera,
                source_sha256,
                disclosure_sha256,
                regions_sha256,
                request_ref,
                ..
            } => {
                s.camera = Some(camera);
                s.known.push(camera);
                s.detail = Some(super::disclosure_detail(
                    source_sha256,
                    disclosure_sha256,
                    regions_sha256,
                    request_ref,
                ));
            }
            Request::Fetch { camera, seq, .. } => {
                (s.camera, s.seq) = (Some(camera), Some(*seq));
                s.known.push(camera);
            }
            Request::HoldCreate {
                cameras,
                case_ref,
                reason,
                ..
            } => {
                (s.case_ref, s.reason) = (Some(case_ref.as_str()), Some(reason.as_str()));
                s.known.extend(cameras);
            }
            Request::HoldRelease { reason, .. } | Request::CommissionDone { reason } => {
                s.reason = Some(reason.as_str());
            }
            // Asked of a camera being commissioned: named as unknown only if it has no still.
            Request::Still { camera } => s.camera = Some(camera),
            _ => {}
        }
        s
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
