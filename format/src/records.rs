//! The records a unit keeps and answers with: audit and destruction entries, holds, listed
//! segments, its status.

use serde::{Deserialize, Serialize};

use crate::manifest::{Ended, Manifest};

/// A role in the scheme (R9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Case support officer: views and exports footage.
    Officer,
    /// An officer who also manages holds and reads the audit log.
    Manager,
    /// Field engineer: installs and checks units, never sees footage.
    Engineer,
    /// Reads the audit log only.
    Auditor,
}

impl Role {
    pub fn may_see_footage(self) -> bool {
        matches!(self, Role::Officer | Role::Manager)
    }
    pub fn may_manage_holds(self) -> bool {
        self == Role::Manager
    }
    pub fn may_read_audit(self) -> bool {
        matches!(self, Role::Manager | Role::Auditor)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Officer => "officer",
            Role::Manager => "manager",
            Role::Engineer => "engineer",
            Role::Auditor => "auditor",
        })
    }
}

/// Who acted, as an audit entry names them: a person by their role in the scheme, the unit
/// itself, or someone it does not know (a refused connection, a stick whose signer is not one
/// of its users).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Actor {
    Person(Role),
    /// The unit (retention, start-up, its keys, its limits).
    System,
    /// Nobody the unit knows.
    #[default]
    Nobody,
}

impl Actor {
    fn text(self) -> &'static str {
        match self {
            Actor::Person(Role::Officer) => "officer",
            Actor::Person(Role::Manager) => "manager",
            Actor::Person(Role::Engineer) => "engineer",
            Actor::Person(Role::Auditor) => "auditor",
            Actor::System => "system",
            Actor::Nobody => "-",
        }
    }
}

impl From<Role> for Actor {
    fn from(r: Role) -> Actor {
        Actor::Person(r)
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text())
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Actor, D::Error> {
        let t = String::deserialize(d)?;
        Ok(match t.as_str() {
            "officer" => Actor::Person(Role::Officer),
            "manager" => Actor::Person(Role::Manager),
            "engineer" => Actor::Person(Role::Engineer),
            "auditor" => Actor::Person(Role::Auditor),
            "system" => Actor::System,
            "-" | "" => Actor::Nobody,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "{other:?} is not a role an audit entry names"
                )));
            }
        })
    }
}

/// Why footage was accessed: a footage request's stated purpose, or the subject access request
/// a disclosure answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    View,
    Export,
    Still,
    /// A subject access request (seed 002 §43), recorded as such in the audit log.
    #[serde(rename = "subject access request")]
    SubjectAccess,
}

/// What came of an audited action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Outcome {
    /// A person's request was served.
    #[default]
    Granted,
    /// The unit did what it records (started, rotated a key, released a hold at review).
    Done,
    /// A long action began (a stick's export); its end is a later entry.
    Started,
    /// A long action stopped before its end (a stick pulled out).
    Interrupted,
    /// Refused, and why.
    Refused(String),
}

impl Outcome {
    pub fn refused(why: impl std::fmt::Display) -> Outcome {
        Outcome::Refused(why.to_string())
    }

    pub fn is_granted(&self) -> bool {
        *self == Outcome::Granted
    }

    /// Why it was refused, if it was.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            Outcome::Refused(why) => Some(why),
            _ => None,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Granted => f.write_str("granted"),
            Outcome::Done => f.write_str("done"),
            Outcome::Started => f.write_str("started"),
            Outcome::Interrupted => f.write_str("interrupted"),
            Outcome::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
        let t = String::deserialize(d)?;
        Ok(match t.as_str() {
            "granted" => Outcome::Granted,
            "done" => Outcome::Done,
            "started" => Outcome::Started,
            "interrupted" => Outcome::Interrupted,
            _ => match t.strip_prefix("refused: ").or(t.strip_prefix("refused")) {
                Some(why) => Outcome::Refused(why.to_owned()),
                None => {
                    return Err(serde::de::Error::custom(format!(
                        "{t:?} is not an audit outcome"
                    )));
                }
            },
        })
    }
}

/// Who asked for an access and why: every audit entry (R10).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub who: String,
    pub role: Actor,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// For refused connections, aggregated: how many attempts this entry stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A segment's file, whose footage and when, its length and hash: what a listing and a
/// destruction record both say of a segment (flattened into each: their JSON has these fields
/// beside their own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentFile {
    pub camera: String,
    pub seq: u64,
    pub file: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub bytes: u64,
    pub ciphertext_sha256: String,
}

/// One destroyed segment (R7): what, when (the entry's time), how, on whose authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destruction {
    #[serde(flatten)]
    pub segment: SegmentFile,
    pub why: String,
    pub how: String,
    pub authority: String,
    /// For deletions by age: how the age was measured, and the clock state relied on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
}

/// A finished segment, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    #[serde(flatten)]
    pub segment: SegmentFile,
    pub ended: Ended,
    pub clock_synced: bool,
    pub frames: u64,
    /// The store's running clock at the first frame (see [`Manifest::running_start_ns`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_start_ns: Option<u64>,
}

impl From<&Manifest> for SegmentEntry {
    fn from(m: &Manifest) -> Self {
        SegmentEntry {
            segment: SegmentFile {
                camera: m.camera.clone(),
                seq: m.seq,
                file: m.file.clone(),
                start_ns: m.start_ns,
                end_ns: m.end_ns,
                bytes: m.ciphertext_len,
                ciphertext_sha256: m.ciphertext_sha256.clone(),
            },
            ended: m.ended.clone(),
            clock_synced: m.clock_synced_throughout,
            frames: m.frames,
            running_start_ns: m.running_start_ns,
        }
    }
}

/// What a manager asks to hold: which footage, for which case and why, by whom, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    /// Cameras held; empty means every camera.
    pub cameras: Vec<String>,
    pub from_ns: i64,
    pub to_ns: i64,
    pub case_ref: String,
    pub reason: String,
    /// Who asked for it.
    pub who: String,
    /// When the hold must be reviewed; it lapses then unless renewed.
    pub review_ns: i64,
}

/// A hold on footage (R6): kept past retention for an investigation or court. In the hold log
/// its request's fields stand beside `id` and `created_ns` (flattened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: u64,
    #[serde(flatten)]
    pub request: HoldRequest,
    pub created_ns: i64,
}

impl Hold {
    /// Whether this hold keeps that segment at `now_ns`.
    pub fn covers(&self, camera: &str, start_ns: i64, end_ns: i64, now_ns: i64) -> bool {
        let r = &self.request;
        r.review_ns > now_ns
            // A camera's hold keeps its preview track too.
            && (r.cameras.is_empty()
                || r.cameras.iter().any(|c| c == crate::track::camera_of(camera)))
            && start_ns < r.to_ns
            && end_ns > r.from_ns
    }
}

/// The state of the store, for `status` and the engineer's check (R5, R16).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub segments: u64,
    pub total_bytes: u64,
    pub budget_bytes: u64,
    pub retention_days: u32,
    pub oldest_ns: Option<i64>,
    pub newest_ns: Option<i64>,
    /// Days the budget holds at the recent recording rate, held footage aside.
    pub capacity_days: Option<f64>,
    pub holds: usize,
    pub held_bytes: u64,
    pub cameras: Vec<CameraStatus>,
    /// How often the unit keeps a preview of each camera (`[storage] preview_interval`); None
    /// when it keeps none (or is older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_interval_ns: Option<u64>,
}

impl Status {
    /// Days of retention the unit really keeps: the configured days, or fewer if the disk
    /// cannot hold them.
    pub fn effective_retention_days(&self) -> f64 {
        self.capacity_days
            .map_or(f64::from(self.retention_days), |c| {
                c.min(f64::from(self.retention_days))
            })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CameraStatus {
    pub camera: String,
    pub segments: u64,
    pub bytes: u64,
    /// The first frame of its oldest footage still on the unit (absent from older units).
    #[serde(default)]
    pub oldest_start_ns: Option<i64>,
    pub newest_end_ns: Option<i64>,
    /// Its preview track: segments, bytes and the newest preview's time (absent from older
    /// units and cameras without previews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previews: Option<PreviewStatus>,
}

/// A camera's preview track in the status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewStatus {
    pub segments: u64,
    pub bytes: u64,
    pub oldest_start_ns: Option<i64>,
    pub newest_end_ns: Option<i64>,
}
