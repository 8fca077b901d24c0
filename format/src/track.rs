//! A camera's tracks in the store: its footage, and its preview track (one keyframe every few
//! seconds, for finding an incident over a weak link).
//!
//! Each track is a camera of the store's own: its segments, signed and chained manifest log,
//! index entries, retention and destruction records. The preview track's store name is the
//! camera's id with [`PREVIEW_SUFFIX`]: a dot is never in a camera id, so no camera can take
//! that name, and the name is still a plain folder name (no `/`, never `.` or `..`).

use serde::{Deserialize, Serialize};

/// Appended to a camera id to name its preview track in the store.
pub const PREVIEW_SUFFIX: &str = ".preview";

/// Which track of a camera a request means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    /// Everything the camera sent.
    #[default]
    Footage,
    /// One keyframe every few seconds.
    Preview,
}

impl Track {
    /// The name the store keeps this track of `camera` under.
    pub fn store_name(self, camera: &str) -> String {
        match self {
            Track::Footage => camera.to_owned(),
            Track::Preview => format!("{camera}{PREVIEW_SUFFIX}"),
        }
    }

    pub fn is_footage(&self) -> bool {
        *self == Track::Footage
    }
}

/// The camera and track a store name is of; `None` for a name that is neither a camera id nor
/// a camera's preview track.
pub fn parse_store_name(name: &str) -> Option<(&str, Track)> {
    let (camera, track) = match name.strip_suffix(PREVIEW_SUFFIX) {
        Some(c) => (c, Track::Preview),
        None => (name, Track::Footage),
    };
    is_camera_id(camera).then_some((camera, track))
}

/// The camera whose track `name` is (itself for footage).
pub fn camera_of(name: &str) -> &str {
    parse_store_name(name).map_or(name, |(c, _)| c)
}

/// `[a-z0-9_-]`, 1 to 32 characters, not starting with `-`: the rule of `rdc_config::Id`,
/// repeated here because this crate stands alone (a test holds the two to the same answers).
pub fn is_camera_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_round_trip_and_nothing_else_parses() {
        for t in [Track::Footage, Track::Preview] {
            let n = t.store_name("front_1");
            assert_eq!(parse_store_name(&n), Some(("front_1", t)));
            assert_eq!(camera_of(&n), "front_1");
        }
        for bad in [
            "",
            ".",
            "..",
            ".preview",
            "../a",
            "a/b",
            "a.preview.preview",
            "A",
            "-a",
            "a.b",
            "a.previewx",
        ] {
            assert_eq!(parse_store_name(bad), None, "{bad:?}");
        }
    }
}
