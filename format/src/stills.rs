//! Stills as exhibits (R14, seed 001 §5.13-5.16): where a frame is in a segment, which part of
//! the segment holds it, how that part is proved against the segment's signed manifest, and the
//! stills register's entries. Pure: the unit plans what it serves with the same functions the
//! officer's `rdc` and a later `rdc verify` use to check it.
//!
//! A segment is one age file: a header (ending with the payload nonce), then STREAM chunks of
//! 64 KiB of plaintext each (65,552 bytes of ciphertext). The unit cannot read its own footage,
//! so the writer records, as it encrypts, where each keyframe starts in the plaintext and how far
//! in time each chunk reaches ([`FrameIndex`]), and hashes each piece of the file
//! ([`Manifest::chunks_sha256`]). A still then costs the header and the chunks from the keyframe
//! before the instant to the frame at it ([`plan`]), each checked against the signed manifest.

use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;
pub use crate::pieces::{CHUNK, CHUNK_CT, FrameIndex, chunk_count, leaf, leaves_digest};

/// The run served for an instant reaches this far past it in decode time, so a frame shown at
/// the instant whose decode comes after a later frame's (B-frames) is in it.
pub const REORDER_MARGIN_NS: i64 = 200_000_000;
/// The format of a still's record.
pub const FORMAT: &str = "rdc-still/1";

/// The length of a segment's header (the age header and the payload nonce), from its manifest.
pub fn header_len(m: &Manifest) -> Option<u64> {
    m.ciphertext_len
        .checked_sub(m.plaintext_len + 16 * chunk_count(m.plaintext_len))
}

/// The part of a segment served for a still: the header and chunks `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub seq: u64,
    pub header_len: u64,
    pub first_chunk: u64,
    pub last_chunk: u64,
    /// Where the keyframe's packets start in the plaintext.
    pub keyframe_offset: u64,
    /// The keyframe's time, ns after the segment's first frame.
    pub keyframe_ns: u64,
    /// The whole segment is served (it has no frame index: closed by a power cut, or older).
    pub whole: bool,
}

impl Run {
    /// The file's byte range holding the chunks (after the header).
    pub fn chunk_bytes(&self, ciphertext_len: u64) -> (u64, u64) {
        let start = self.header_len + self.first_chunk * CHUNK_CT;
        let end = (self.header_len + (self.last_chunk + 1) * CHUNK_CT).min(ciphertext_len);
        (start, end)
    }

    /// Bytes served: the header and the chunks.
    pub fn served_len(&self, ciphertext_len: u64) -> u64 {
        let (s, e) = self.chunk_bytes(ciphertext_len);
        self.header_len + (e - s)
    }

    /// Where the plaintext the chunks hold starts and ends.
    pub fn plaintext_range(&self, plaintext_len: u64) -> (u64, u64) {
        (
            self.first_chunk * CHUNK,
            ((self.last_chunk + 1) * CHUNK).min(plaintext_len),
        )
    }
}

/// Why no run could be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("segment {seq} does not hold the instant (it runs from {from} to {to})")]
    NotInSegment { seq: u64, from: String, to: String },
    #[error("segment {seq} holds no footage ({why})")]
    NoFootage { seq: u64, why: String },
    #[error("segment {seq}'s manifest is inconsistent: {why}")]
    Inconsistent { seq: u64, why: String },
}

/// What to serve for the frame shown at `at_ns` of the segment `m`: from the chunk where the
/// keyframe before it starts to the chunk where a frame decoded [`REORDER_MARGIN_NS`] after it
/// starts (so every frame up to it is whole), or the whole segment when it has no index.
pub fn plan(m: &Manifest, at_ns: i64) -> Result<Run, PlanError> {
    if !(m.start_ns <= at_ns && at_ns < m.end_ns.max(m.start_ns + 1)) {
        return Err(PlanError::NotInSegment {
            seq: m.seq,
            from: crate::time::rfc3339(m.start_ns),
            to: crate::time::rfc3339(m.end_ns),
        });
    }
    if m.frames == 0 || m.ciphertext_len == 0 {
        return Err(PlanError::NoFootage {
            seq: m.seq,
            why: "a gap record".into(),
        });
    }
    let header_len = header_len(m).ok_or_else(|| PlanError::Inconsistent {
        seq: m.seq,
        why: "its lengths do not fit an age file".into(),
    })?;
    let chunks = chunk_count(m.plaintext_len);
    let whole = Run {
        seq: m.seq,
        header_len,
        first_chunk: 0,
        last_chunk: chunks - 1,
        keyframe_offset: 0,
        keyframe_ns: 0,
        whole: true,
    };
    let Some(ix) = &m.index else {
        return Ok(whole);
    };
    if ix.keyframes.is_empty() || ix.chunk_ms.len() as u64 != chunks {
        return Err(PlanError::Inconsistent {
            seq: m.seq,
            why: "its frame index does not fit its chunks".into(),
        });
    }
    let rel = (at_ns - m.start_ns) as u64;
    let kf = ix
        .keyframes
        .iter()
        .rev()
        .find(|k| k[1] <= rel)
        .unwrap_or(&ix.keyframes[0]);
    let first = kf[0] / CHUNK;
    if first >= chunks {
        return Err(PlanError::Inconsistent {
            seq: m.seq,
            why: "a keyframe lies past its end".into(),
        });
    }
    let reach = rel + REORDER_MARGIN_NS as u64;
    let last = (first..chunks)
        .find(|&i| ix.chunk_ms[i as usize].saturating_mul(1_000_000) > reach)
        .unwrap_or(chunks - 1);
    Ok(Run {
        first_chunk: first,
        last_chunk: last,
        keyframe_offset: kf[0],
        keyframe_ns: kf[1],
        whole: false,
        ..whole
    })
}

/// A person, as the unit names them: the name in its user list and their certificate's
/// fingerprint (`sha256:…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub fingerprint: String,
}

/// A police officer's part in a request (001 §5.13): who asks, and the senior officer's signed
/// authorisation, which the scheme's manager sees before approving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Police {
    pub officer: String,
    pub id: String,
    /// "Insp. NAME" or above.
    pub authorised_by: String,
    /// SHA-256 of the authorisation document, which travels with the request.
    pub authorisation_sha256: String,
    /// Its file name, as the requester gave it.
    pub authorisation_file: String,
}

/// What an officer signs to ask for a still.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StillRequest {
    pub unit: String,
    pub camera: String,
    /// The instant, ns since the epoch (UTC), and the same in RFC 3339.
    pub at_ns: i64,
    pub at: String,
    pub case_ref: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub police: Option<Police>,
    /// When the officer signed it (their machine's clock).
    pub requested_ns: i64,
}

/// What a manager signs to approve a still's necessity: the request, by the hash of exactly
/// what the unit registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StillApproval {
    pub unit: String,
    pub still: u64,
    /// SHA-256 of the signed request's canonical JSON.
    pub request_sha256: String,
    pub approved_ns: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// A document signed by a person: its body, their certificate (PEM) and their ECDSA P-256
/// signature (base64) of the body's canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    pub body: T,
    pub certificate: String,
    pub signature: String,
}

impl<T: Serialize> Signed<T> {
    /// The bytes a signature covers: the body's canonical JSON (sorted keys).
    pub fn message(&self) -> Vec<u8> {
        canonical(&self.body)
    }

    /// SHA-256 of the whole signed document's canonical JSON: what an approval names.
    pub fn sha256(&self) -> String {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &canonical(self)).as_ref())
    }
}

/// The canonical JSON of a value: serde_json's sorted keys, as the chain entries use.
pub fn canonical<T: Serialize>(v: &T) -> Vec<u8> {
    let value = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Where the frame is in the footage: what the production entry and the still record name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub camera: String,
    pub run: Run,
    /// SHA-256 of the segment's signed manifest entry (its `hash`).
    pub manifest_hash: String,
    /// The bytes sent: the header and the run's chunks, and their SHA-256.
    pub bytes: u64,
    pub sha256: String,
}

/// One entry of a unit's stills register (001 §5.15): the body of a signed, chained entry in
/// the unit's `stills` log. A still's id is the sequence number of its request's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RegisterEntry {
    /// Asked for, pending a manager's approval.
    Request {
        requester: Person,
        camera: String,
        at_ns: i64,
        case_ref: String,
        reason: String,
        /// The segment and the footage around the instant, as the unit found it.
        segment: u64,
        request: Signed<StillRequest>,
        request_sha256: String,
    },
    /// A manager signed off its necessity.
    Approval {
        still: u64,
        approver: Person,
        approval: Signed<StillApproval>,
    },
    /// The unit served the footage that holds the frame.
    Production {
        still: u64,
        producer: Person,
        approver: String,
        case_ref: String,
        reason: String,
        at_ns: i64,
        served: Served,
    },
    /// The officer's `rdc` decoded the frame and reported what it made.
    Made {
        still: u64,
        producer: Person,
        frame_ns: i64,
        png_sha256: String,
        record_sha256: String,
    },
    /// Released to the police as an exhibit (001 §5.16).
    Release { still: u64, by: Person, to: String },
}

impl RegisterEntry {
    /// The still an entry is about (a request is its own still: its entry's sequence number).
    pub fn still(&self, entry_seq: u64) -> u64 {
        match self {
            RegisterEntry::Request { .. } => entry_seq,
            RegisterEntry::Approval { still, .. }
            | RegisterEntry::Production { still, .. }
            | RegisterEntry::Made { still, .. }
            | RegisterEntry::Release { still, .. } => *still,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RegisterEntry::Request { .. } => "request",
            RegisterEntry::Approval { .. } => "approval",
            RegisterEntry::Production { .. } => "production",
            RegisterEntry::Made { .. } => "made",
            RegisterEntry::Release { .. } => "release",
        }
    }
}

/// A still's state, folded from its register entries in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StillState {
    pub id: u64,
    pub requested_ns: i64,
    pub request: Option<RegisterEntry>,
    /// The time the unit registered the approval, and it.
    pub approved: Option<(i64, RegisterEntry)>,
    pub productions: u64,
    pub made: Option<RegisterEntry>,
    pub releases: Vec<RegisterEntry>,
}

/// A still's request as the unit registered it, borrowed from its [`StillState`].
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub requester: &'a Person,
    pub camera: &'a str,
    pub at_ns: i64,
    pub case_ref: &'a str,
    pub reason: &'a str,
    pub request: &'a Signed<StillRequest>,
    pub request_sha256: &'a str,
}

impl StillState {
    /// Its request, if the register holds one.
    pub fn asked(&self) -> Option<Asked<'_>> {
        match &self.request {
            Some(RegisterEntry::Request {
                requester,
                camera,
                at_ns,
                case_ref,
                reason,
                request,
                request_sha256,
                ..
            }) => Some(Asked {
                requester,
                camera,
                at_ns: *at_ns,
                case_ref,
                reason,
                request,
                request_sha256,
            }),
            _ => None,
        }
    }

    pub fn case_ref(&self) -> Option<&str> {
        match &self.request {
            Some(RegisterEntry::Request { case_ref, .. }) => Some(case_ref),
            _ => None,
        }
    }

    /// "pending", "approved", "served", "made", "released".
    pub fn status(&self) -> &'static str {
        if !self.releases.is_empty() {
            "released"
        } else if self.made.is_some() {
            "made"
        } else if self.productions > 0 {
            "served"
        } else if self.approved.is_some() {
            "approved"
        } else {
            "pending"
        }
    }
}

/// Folds register entries `(entry seq, entry time, body)` into each still's state, by id.
pub fn fold(entries: &[(u64, i64, RegisterEntry)]) -> std::collections::BTreeMap<u64, StillState> {
    let mut out = std::collections::BTreeMap::<u64, StillState>::new();
    for (seq, time_ns, e) in entries {
        let id = e.still(*seq);
        let s = out.entry(id).or_insert_with(|| StillState {
            id,
            ..Default::default()
        });
        match e {
            RegisterEntry::Request { .. } => {
                s.request = Some(e.clone());
                s.requested_ns = *time_ns;
            }
            RegisterEntry::Approval { .. } => s.approved = Some((*time_ns, e.clone())),
            RegisterEntry::Production { .. } => s.productions += 1,
            RegisterEntry::Made { .. } => s.made = Some(e.clone()),
            RegisterEntry::Release { .. } => s.releases.push(e.clone()),
        }
    }
    out
}

/// A still's time of frame `pts` (90 kHz) in a run whose keyframe has `keyframe_pts`: the
/// segment's signed start, the keyframe's offset in it, and the frame's presentation after
/// the keyframe's (the working copy shows it then).
pub fn frame_ns(m: &Manifest, run: &Run, keyframe_pts: u64, pts: u64) -> i64 {
    let ticks = crate::ts::ticks_since(pts, keyframe_pts);
    m.start_ns + run.keyframe_ns as i64 + (ticks as i64 * 100_000 / 9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ClockState, Ended};

    fn manifest(plaintext_len: u64, index: Option<FrameIndex>) -> Manifest {
        let chunks = chunk_count(plaintext_len);
        Manifest {
            unit: "u".into(),
            camera: "front".into(),
            seq: 4,
            file: "4.age".into(),
            start_ns: 1_000_000_000_000,
            end_ns: 1_010_000_000_000,
            start_mono_ns: 0,
            end_mono_ns: 10_000_000_000,
            clock: ClockState::UNKNOWN,
            clock_synced_throughout: false,
            wall_steps: 0,
            frames: 250,
            keyframes: 5,
            plaintext_len,
            ciphertext_len: 200 + plaintext_len + 16 * chunks,
            ciphertext_sha256: String::new(),
            ended: Ended::Cut,
            running_start_ns: None,
            times_from: None,
            chunks_sha256: None,
            index,
        }
    }

    /// 250 frames of 20 kB over 10 s, a keyframe of 100 kB every 2 s.
    fn indexed() -> Manifest {
        let mut ix = FrameIndex::default();
        let mut off = 0;
        for i in 0..250u64 {
            let key = i % 50 == 0;
            ix.note(off, i * 40_000_000, key);
            off += if key { 100_000 } else { 20_000 };
        }
        ix.finish(chunk_count(off));
        manifest(off, Some(ix))
    }

    #[test]
    fn a_mid_gop_instant_is_served_from_its_keyframe_to_just_past_it() {
        let m = indexed();
        let at = m.start_ns + 3_000_000_000; // 1 s into the second GOP
        let r = plan(&m, at).unwrap();
        assert_eq!(r.keyframe_ns, 2_000_000_000);
        // The keyframe (frame 50) starts after a keyframe and 49 frames.
        let kf_off = 100_000 + 49 * 20_000;
        assert_eq!(r.keyframe_offset, kf_off);
        assert_eq!(r.first_chunk, kf_off / CHUNK);
        // Every frame decoded up to 3.2 s is whole in the run.
        let frame_at = |i: u64| {
            let keys = i.div_ceil(50);
            keys * 100_000 + (i - keys) * 20_000
        };
        let (_, pend) = r.plaintext_range(m.plaintext_len);
        assert!(pend >= frame_at(81), "{pend}");
        // And not much more: a chunk past the frame after it at most.
        assert!(pend < frame_at(81) + 2 * CHUNK, "{pend}");
        let served = r.served_len(m.ciphertext_len);
        assert!(served * 100 / m.ciphertext_len < 20, "{served}");
        assert!(!r.whole);
    }

    #[test]
    fn an_instant_outside_or_a_segment_without_index_or_footage() {
        let m = indexed();
        assert!(matches!(
            plan(&m, m.end_ns),
            Err(PlanError::NotInSegment { .. })
        ));
        let old = manifest(5_000_000, None);
        let r = plan(&old, old.start_ns + 1).unwrap();
        assert!(r.whole);
        assert_eq!(r.served_len(old.ciphertext_len), old.ciphertext_len);
        assert_eq!(r.header_len, 200);
        let mut gap = manifest(0, None);
        gap.frames = 0;
        gap.ciphertext_len = 0;
        assert!(matches!(
            plan(&gap, gap.start_ns),
            Err(PlanError::NoFootage { .. })
        ));
        let mut bad = indexed();
        bad.index.as_mut().unwrap().chunk_ms.pop();
        assert!(matches!(
            plan(&bad, bad.start_ns),
            Err(PlanError::Inconsistent { .. })
        ));
    }

    #[test]
    fn the_register_folds_into_each_stills_state() {
        let p = Person {
            name: "a".into(),
            fingerprint: "sha256:1".into(),
        };
        let e = vec![
            (
                0,
                5,
                RegisterEntry::Release {
                    still: 9,
                    by: p.clone(),
                    to: "x".into(),
                },
            ),
            (
                3,
                6,
                RegisterEntry::Made {
                    still: 3,
                    producer: p.clone(),
                    frame_ns: 1,
                    png_sha256: String::new(),
                    record_sha256: String::new(),
                },
            ),
        ];
        let f = fold(&e);
        assert_eq!(f[&9].status(), "released");
        assert_eq!(f[&3].status(), "made");
    }
}
