//! Why the unit refused a request: what happened and what to do, as named facts.

use rdc_config::Role;
use serde::{Deserialize, Serialize};

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
