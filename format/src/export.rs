//! An evidence export (`rdc export`, `rdc verify`): the bundle's signed manifest, the gaps in
//! a range of footage and their causes, the digest that ties the unit's audit receipt to the
//! exported segments. Pure functions: the exporter and the verifier compute the same things
//! from the same signed manifests, so the verifier recomputes rather than trusts.

use serde::{Deserialize, Serialize};

use crate::chain::Entry;
use crate::manifest::{Ended, Manifest};
use crate::time::rfc3339;

/// The `format` of a bundle's manifest.
pub const FORMAT: &str = "rdc-export/1";
/// Shorter breaks than this between segments are not gaps (a camera reconnecting within a
/// frame or two); the frames lost inside a segment are not gaps either.
pub const GAP_TOLERANCE_NS: i64 = 500_000_000;

/// A time range, ns since the epoch, with the same in RFC 3339 for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub from_ns: i64,
    pub to_ns: i64,
    pub from: String,
    pub to: String,
}

impl Range {
    pub fn new(from_ns: i64, to_ns: i64) -> Range {
        Range {
            from_ns,
            to_ns,
            from: rfc3339(from_ns),
            to: rfc3339(to_ns),
        }
    }
}

/// A stretch of the requested range with no footage, and why: `cause` in words (what a bundle
/// signs and `rdc verify` recomputes), `causes` typed, for whoever must tell them apart (a
/// preview's tiles). Gaps read back from a bundle have the words only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gap {
    #[serde(flatten)]
    pub range: Range,
    pub cause: String,
    #[serde(skip)]
    pub causes: Vec<GapCause>,
}

impl Gap {
    pub fn new(range: Range, causes: Vec<GapCause>) -> Gap {
        let cause = causes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Gap {
            range,
            cause,
            causes,
        }
    }
}

/// Two gaps are the same when they say the same: the words are what is signed.
impl PartialEq for Gap {
    fn eq(&self, other: &Gap) -> bool {
        self.range == other.range && self.cause == other.cause
    }
}

impl Eq for Gap {}

/// Why there is no footage, as the unit's signed manifests say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GapCause {
    /// The segment before ended because recording stopped, for the reason the recorder signed.
    Stopped(String),
    /// The segment before was closed at its last sync: the power went, or the recorder was
    /// killed.
    PowerLoss,
    /// The segment before was recorded as lost, for the reason signed.
    Lost(String),
    /// Nothing after the newest finished segment yet.
    NotYet { newest: u64 },
    /// A segment in the range that could not be kept.
    SegmentLost { seq: u64, cause: String },
    /// A segment in the range no longer on the unit (retention or destruction).
    Deleted { seq: u64 },
    /// Before the camera's first footage on the unit.
    BeforeFirst,
    /// Between two segments with nothing to say why.
    NotRecorded,
}

impl GapCause {
    /// The cause in a few words, for a preview tile.
    pub fn short(&self) -> &'static str {
        match self {
            GapCause::Stopped(why) => match crate::manifest::StopKind::of(why) {
                crate::manifest::StopKind::RecorderStopped => "RECORDER STOPPED",
                crate::manifest::StopKind::Disk => "DISK TROUBLE",
                crate::manifest::StopKind::Camera => "CAMERA STOPPED",
            },
            GapCause::PowerLoss => "POWER CUT",
            GapCause::Deleted { .. } => "DELETED",
            GapCause::Lost(_) | GapCause::SegmentLost { .. } => "LOST",
            GapCause::NotYet { .. } => "NOT YET",
            GapCause::BeforeFirst => "BEFORE RECORDING",
            GapCause::NotRecorded => "NOT RECORDED",
        }
    }
}

impl std::fmt::Display for GapCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GapCause::Stopped(cause) => write!(f, "recording stopped: {cause}"),
            GapCause::PowerLoss => f.write_str(
                "the unit lost power or the recorder was stopped abruptly (segment closed at its last sync)",
            ),
            GapCause::Lost(cause) => write!(f, "footage lost: {cause}"),
            GapCause::NotYet { newest } => write!(
                f,
                "not yet recorded, or still being recorded: segment {newest} is the newest finished one"
            ),
            GapCause::SegmentLost { seq, cause } => {
                write!(f, "segment {seq} could not be kept: {cause}")
            }
            GapCause::Deleted { seq } => write!(
                f,
                "segment {seq} is no longer on the unit: deleted under retention or destroyed (the unit's destruction log says when and why)"
            ),
            GapCause::BeforeFirst => f.write_str(
                "no earlier footage of this camera on the unit (before its first recording, or deleted under retention)",
            ),
            GapCause::NotRecorded => f.write_str("no footage recorded"),
        }
    }
}

/// Who runs the unit, where and why, as the unit said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitFacts {
    pub id: String,
    /// The unit's Ed25519 key (hex) that signed the manifests and the receipt, as the unit gave
    /// it over its authenticated link.
    pub public_key: String,
    #[serde(default)]
    pub retired_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

/// One segment in the bundle: its master files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleSegment {
    pub seq: u64,
    /// The segment as the unit encrypted and signed it (`master/….age`).
    pub master: String,
    /// Its decryption (`master/….ts`).
    pub decrypted: String,
}

/// The working copy: one MP4 of the range, remuxed without re-encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkingCopy {
    pub file: String,
    pub codec: crate::ts::Codec,
    /// Wall-clock time of its first and last frame.
    #[serde(flatten)]
    pub range: Range,
    pub frames: u64,
    /// Why it starts before the requested time, when it does (the keyframe before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The clock's state over the exported footage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockSummary {
    /// True when the unit's clock was synchronised throughout every exported segment.
    pub synchronized_throughout: bool,
    /// Segments recorded while the clock was not synchronised at some point.
    pub unsynchronized_segments: Vec<u64>,
    /// Times the wall clock stepped by more than a second inside the exported segments.
    pub wall_steps: u32,
}

impl ClockSummary {
    /// The clock's state over these segments' signed manifests.
    pub fn of<'a>(ms: impl Iterator<Item = &'a Manifest>) -> ClockSummary {
        let mut c = ClockSummary {
            synchronized_throughout: true,
            unsynchronized_segments: Vec::new(),
            wall_steps: 0,
        };
        for m in ms {
            if !m.clock_synced_throughout {
                c.synchronized_throughout = false;
                c.unsynchronized_segments.push(m.seq);
            }
            c.wall_steps += m.wall_steps;
        }
        c
    }
}

/// The person who exported, as their certificate says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exporter {
    pub name: String,
    /// `sha256:…` of the certificate (how units name the person).
    pub fingerprint: String,
    /// PEM.
    pub certificate: String,
}

/// A file of the bundle with its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What `manifest.json` says, signed by the exporter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    /// When the bundle was signed, by the exporter's clock (the receipt has the unit's).
    pub exported_at_ns: i64,
    pub exported_at: String,
    pub unit: UnitFacts,
    pub camera: String,
    pub case_ref: String,
    pub reason: String,
    pub requested: Range,
    /// From the first master segment's first frame to the last one's end.
    pub footage: Range,
    pub gaps: Vec<Gap>,
    pub clock: ClockSummary,
    pub working_copy: Option<WorkingCopy>,
    pub segments: Vec<BundleSegment>,
    /// The camera's signed manifest log entries, an unbroken run from the one before the first
    /// exported segment (when the unit still has it) to the one after the last: every segment,
    /// exported or not (lost, deleted), so each gap is backed by what the unit signed.
    pub manifests: Vec<Entry>,
    /// The unit's signed audit entry recording this export.
    pub receipt: Entry,
    pub exporter: Exporter,
    /// Every file of the bundle but `manifest.json` and `SHA256SUMS`.
    pub files: Vec<FileHash>,
}

/// `manifest.json`: the bundle, as JSON, and the exporter's signature over its canonical form
/// ([`canonical`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signed {
    pub bundle: serde_json::Value,
    pub signature: Signature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// `ecdsa-p256-sha256` (ASN.1 DER signature), the scheme's certificates' key type.
    pub algorithm: String,
    /// Base64.
    pub value: String,
}

/// The bytes an exporter signs: the bundle as JSON with keys in order, no spaces (serde_json's
/// maps are ordered, so a parsed and re-serialised bundle gives the same bytes).
pub fn canonical(bundle: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(bundle).expect("a Value always serialises")
}

/// The digest of the exported segments that the audit receipt carries: SHA-256 of one line
/// `<seq> <ciphertext sha256>\n` per segment, in order.
pub fn segments_digest<'a>(segments: impl IntoIterator<Item = (u64, &'a str)>) -> String {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    for (seq, sha) in segments {
        h.update(format!("{seq} {sha}\n").as_bytes());
    }
    hex::encode(h.finish())
}

/// The `detail` of the audit entry recording an export.
pub fn receipt_detail(first_seq: u64, last_seq: u64, count: u64, digest: &str) -> String {
    format!("export of {count} segments, {first_seq} to {last_seq}, segments digest {digest}")
}

/// The gaps in `requested`, from the camera's manifests `run` (in seq order, an unbroken run
/// around the footage) and which of them are in the bundle (`present`).
pub fn gaps<S: Spanned>(
    requested: (i64, i64),
    run: &[S],
    present: &dyn Fn(u64) -> bool,
) -> Vec<Gap> {
    let (from, to) = requested;
    let mut out = Vec::new();
    let mut cursor = from;
    let mut prev: Option<&S> = None;
    let mut absent: Vec<&S> = Vec::new();
    for m in run {
        let (start_ns, end_ns) = m.span();
        if !present(m.seq()) {
            if end_ns > cursor && start_ns < to {
                absent.push(m);
            } else if end_ns <= cursor {
                prev = Some(m);
            }
            continue;
        }
        if start_ns > cursor + GAP_TOLERANCE_NS && cursor < to {
            out.push(Gap::new(
                Range::new(cursor, start_ns.min(to)),
                causes(prev, &absent, false),
            ));
        }
        absent.clear();
        cursor = cursor.max(end_ns);
        prev = Some(m);
    }
    if cursor + GAP_TOLERANCE_NS < to {
        out.push(Gap::new(
            Range::new(cursor, to),
            causes(prev, &absent, true),
        ));
    }
    out
}

/// What [`gaps`] needs of a segment: a signed manifest, or a segment as the unit lists it
/// (which knows nothing of segments already deleted: the gaps then name what ended before).
pub trait Spanned {
    fn seq(&self) -> u64;
    fn span(&self) -> (i64, i64);
    fn ended(&self) -> &Ended;
}

impl Spanned for Manifest {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn span(&self) -> (i64, i64) {
        (self.start_ns, self.end_ns)
    }
    fn ended(&self) -> &Ended {
        &self.ended
    }
}

impl Spanned for crate::SegmentEntry {
    fn seq(&self) -> u64 {
        self.segment.seq
    }
    fn span(&self) -> (i64, i64) {
        (self.segment.start_ns, self.segment.end_ns)
    }
    fn ended(&self) -> &Ended {
        &self.ended
    }
}

fn causes<S: Spanned>(prev: Option<&S>, absent: &[&S], at_end: bool) -> Vec<GapCause> {
    let mut causes: Vec<GapCause> = Vec::new();
    let push = |causes: &mut Vec<GapCause>, c: GapCause| {
        if !causes.contains(&c) {
            causes.push(c);
        }
    };
    if let Some(p) = prev {
        match p.ended() {
            Ended::Stopped { cause } => push(&mut causes, GapCause::Stopped(cause.clone())),
            Ended::PowerLoss => push(&mut causes, GapCause::PowerLoss),
            Ended::Lost { cause } => push(&mut causes, GapCause::Lost(cause.clone())),
            Ended::Cut if absent.is_empty() && at_end => {
                push(&mut causes, GapCause::NotYet { newest: p.seq() })
            }
            Ended::Cut => {}
        }
    }
    for m in absent {
        match m.ended() {
            Ended::Lost { cause } => push(
                &mut causes,
                GapCause::SegmentLost {
                    seq: m.seq(),
                    cause: cause.clone(),
                },
            ),
            _ => push(&mut causes, GapCause::Deleted { seq: m.seq() }),
        }
    }
    if causes.is_empty() {
        push(
            &mut causes,
            if prev.is_none() {
                GapCause::BeforeFirst
            } else {
                GapCause::NotRecorded
            },
        );
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ClockState;

    const S: i64 = 1_000_000_000;

    fn m(seq: u64, start: i64, end: i64, ended: Ended) -> Manifest {
        Manifest {
            unit: "u".into(),
            camera: "c".into(),
            seq,
            file: format!("{seq}.age"),
            start_ns: start * S,
            end_ns: end * S,
            start_mono_ns: 0,
            end_mono_ns: 0,
            clock: ClockState::UNKNOWN,
            clock_synced_throughout: true,
            wall_steps: 0,
            frames: 1,
            keyframes: 1,
            plaintext_len: 1,
            ciphertext_len: 1,
            ciphertext_sha256: String::new(),
            ended,
            running_start_ns: None,
            times_from: None,
            chunks_sha256: None,
            index: None,
        }
    }

    fn stopped(c: &str) -> Ended {
        Ended::Stopped { cause: c.into() }
    }

    #[test]
    fn continuous_footage_has_no_gaps() {
        let run = [
            m(0, 0, 10, Ended::Cut),
            m(1, 10, 20, Ended::Cut),
            m(2, 20, 30, Ended::Cut),
        ];
        assert!(gaps((5 * S, 25 * S), &run, &|_| true).is_empty());
    }

    #[test]
    fn an_outage_a_power_cut_and_a_deleted_segment_are_each_named() {
        let run = [
            m(0, 0, 10, Ended::Cut),
            m(1, 10, 14, stopped("the camera stopped sending (stall)")),
            m(2, 30, 40, Ended::PowerLoss),
            m(3, 50, 60, Ended::Cut),
            m(4, 60, 70, Ended::Cut),
            m(5, 70, 80, Ended::Cut),
        ];
        let g = gaps((5 * S, 75 * S), &run, &|s| s != 4);
        let spans: Vec<(i64, i64)> = g
            .iter()
            .map(|g| (g.range.from_ns / S, g.range.to_ns / S))
            .collect();
        assert_eq!(spans, [(14, 30), (40, 50), (60, 70)]);
        assert!(g[0].cause.contains("stall"), "{}", g[0].cause);
        assert!(g[1].cause.contains("lost power"), "{}", g[1].cause);
        assert!(
            g[2].cause.contains("segment 4 is no longer"),
            "{}",
            g[2].cause
        );
    }

    #[test]
    fn edges_of_the_range() {
        // Before the first recording, and after the newest finished segment.
        let run = [m(0, 20, 30, Ended::Cut)];
        let g = gaps((0, 50 * S), &run, &|_| true);
        assert_eq!(g.len(), 2);
        assert!(g[0].cause.contains("no earlier footage"), "{}", g[0].cause);
        assert!(g[1].cause.contains("newest finished"), "{}", g[1].cause);
        // A lost segment (power cut before its first sync) inside the range.
        let run = [
            m(0, 0, 10, Ended::Cut),
            m(
                1,
                10,
                12,
                Ended::Lost {
                    cause: "power cut".into(),
                },
            ),
            m(2, 15, 30, Ended::Cut),
        ];
        let g = gaps((0, 30 * S), &run, &|s| s != 1);
        assert_eq!(g.len(), 1);
        assert_eq!((g[0].range.from_ns / S, g[0].range.to_ns / S), (10, 15));
        assert!(
            g[0].cause
                .contains("segment 1 could not be kept: power cut"),
            "{}",
            g[0].cause
        );
    }

    #[test]
    fn digest_depends_on_order_and_content() {
        let a = segments_digest([(1, "aa"), (2, "bb")]);
        assert_ne!(a, segments_digest([(2, "bb"), (1, "aa")]));
        assert_ne!(a, segments_digest([(1, "aa"), (2, "bc")]));
        assert_eq!(a.len(), 64);
    }
}
