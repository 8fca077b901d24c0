//! Retention decisions, without I/O: which segments go, and why.
//!
//! Storage limitation first: a segment whose first frame is older than `retention_days` goes,
//! however much room the disk has. Then the byte budget: the oldest go first until the store
//! fits. Held segments survive both. The store feeds this oldest-first and carries out the plan.
//!
//! A wrong clock must never make young footage look old, so a segment's age ([`age`]) comes
//! from the wall clock only when the clock was synchronised both when the segment was recorded
//! and now. Otherwise it comes from the store's *running clock*: monotonic time accumulated
//! over the store's life, persisted across restarts, which never counts time the unit was off.
//! That age can only be too small (footage kept a little longer after a power-off), never too
//! large; and an unsynchronised unit that really runs for 36 days still sees 36 days pass.

use serde::{Deserialize, Serialize};

use crate::clock::DAY_NS;

/// A hold on footage (R6), defined in `rdc-format`.
pub use rdc_format::Hold;
/// A segment as retention sees it: the index's entry (its span, bytes, clock state and
/// running-clock stamp are what the plan reads).
pub use rdc_format::SegmentEntry as Candidate;

/// The time now, as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub wall_ns: i64,
    /// The wall clock is synchronised now.
    pub wall_synced: bool,
    /// The store's running clock now.
    pub running_ns: u64,
}

/// Which clock an age was measured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeBasis {
    /// Synchronised now and when recorded: the wall clock.
    WallClock,
    /// The store's running clock (the wall clock was not synchronised then or now).
    RunningClock,
    /// Neither can be trusted (a segment from before the running clock, on an unsynchronised
    /// unit): its age is unknown and it never expires by age.
    Unknown,
}

impl AgeBasis {
    /// How the age was measured, for the destruction log.
    pub fn describe(self, age_ns: i64, now: &Now) -> String {
        let days = age_ns as f64 / DAY_NS as f64;
        match self {
            AgeBasis::WallClock => {
                format!("age {days:.2} days by the wall clock, synchronised when recorded and now")
            }
            AgeBasis::RunningClock => format!(
                "age {days:.2} days by the store's running clock (its own time, restarts included, power-off time not counted), because the wall clock was not synchronised {}",
                if now.wall_synced {
                    "when the segment was recorded"
                } else {
                    "now"
                }
            ),
            AgeBasis::Unknown => "age unknown".into(),
        }
    }
}

/// A segment's age and the clock it was measured with.
pub fn age(c: &Candidate, now: &Now) -> (i64, AgeBasis) {
    if now.wall_synced && c.clock_synced {
        return (
            now.wall_ns.saturating_sub(c.segment.start_ns),
            AgeBasis::WallClock,
        );
    }
    match c.running_start_ns {
        Some(r) => (
            i64::try_from(now.running_ns.saturating_sub(r)).unwrap_or(i64::MAX),
            AgeBasis::RunningClock,
        ),
        None => (0, AgeBasis::Unknown),
    }
}

/// Why a segment is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// Older than the retention period.
    Expired,
    /// The store is over its byte budget and this is the oldest footage not held.
    OverBudget,
}

/// Whether any hold keeps the segment.
pub fn held(holds: &[Hold], c: &Candidate, now_ns: i64) -> bool {
    holds.iter().any(|h| {
        h.covers(
            &c.segment.camera,
            c.segment.start_ns,
            c.segment.end_ns,
            now_ns,
        )
    })
}

/// Plans deletions. `oldest_first` must yield segments by ascending start time; it is read only
/// as far as needed. `total_bytes` is what the store holds now.
pub fn plan(
    oldest_first: impl IntoIterator<Item = Candidate>,
    holds: &[Hold],
    now: &Now,
    retention_days: u32,
    total_bytes: u64,
    budget_bytes: u64,
) -> Vec<(Candidate, Why)> {
    let limit = i64::from(retention_days) * DAY_NS;
    let mut total = total_bytes;
    let mut out = Vec::new();
    for c in oldest_first {
        let expired = age(&c, now).0 > limit;
        if !expired && total <= budget_bytes {
            break;
        }
        if held(holds, &c, now.wall_ns) {
            continue;
        }
        let why = if expired {
            Why::Expired
        } else {
            Why::OverBudget
        };
        total = total.saturating_sub(c.segment.bytes);
        out.push((c, why));
    }
    out
}

/// Days of footage the store can really keep: the budget left after held footage, divided by
/// the bytes a day of recording takes at the recent rate. `None` until there is a rate.
pub fn capacity_days(budget_bytes: u64, held_bytes: u64, bytes_per_day: f64) -> Option<f64> {
    (bytes_per_day > 0.0).then(|| budget_bytes.saturating_sub(held_bytes) as f64 / bytes_per_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(camera: &str, seq: u64, day: i64, bytes: u64) -> Candidate {
        Candidate {
            segment: rdc_format::SegmentFile {
                camera: camera.into(),
                seq,
                file: format!("{seq:010}-{}.age", day * DAY_NS),
                start_ns: day * DAY_NS,
                end_ns: day * DAY_NS + 60_000_000_000,
                bytes,
                ciphertext_sha256: String::new(),
            },
            ended: crate::manifest::Ended::Cut,
            clock_synced: true,
            frames: 1,
            running_start_ns: Some((day * DAY_NS) as u64),
        }
    }

    fn at(day: i64) -> Now {
        Now {
            wall_ns: day * DAY_NS,
            wall_synced: true,
            running_ns: (day * DAY_NS) as u64,
        }
    }

    #[test]
    fn the_boundary_both_ways() {
        // 28 days: a segment just younger is kept, one just older goes.
        let now = at(100);
        let mut young = seg("a", 1, 0, 10);
        young.segment.start_ns = now.wall_ns - 28 * DAY_NS + 1_000_000_000;
        let mut old = seg("a", 0, 0, 10);
        old.segment.start_ns = now.wall_ns - 28 * DAY_NS - 1_000_000_000;
        let p = plan(
            vec![old.clone(), young.clone()],
            &[],
            &now,
            28,
            20,
            u64::MAX,
        );
        assert_eq!(p, vec![(old, Why::Expired)]);
    }

    #[test]
    fn a_wrong_clock_never_makes_young_footage_old() {
        // Recorded synchronised at day 10 (running clock 10 days); the wall clock then jumps
        // 29 days ahead, unsynchronised, minutes later.
        let c = Candidate {
            running_start_ns: Some((10 * DAY_NS) as u64),
            ..seg("a", 0, 10, 10)
        };
        let now = Now {
            wall_ns: 39 * DAY_NS,
            wall_synced: false,
            running_ns: (10 * DAY_NS + 600_000_000_000) as u64,
        };
        assert_eq!(age(&c, &now), (600_000_000_000, AgeBasis::RunningClock));
        assert!(plan(vec![c], &[], &now, 28, 10, u64::MAX).is_empty());
    }

    #[test]
    fn an_unsynchronised_unit_still_deletes_by_age() {
        // Never synchronised; its wall clock is years off but its running clock has counted
        // 36 days since the segment.
        let mut c = Candidate {
            clock_synced: false,
            running_start_ns: Some(0),
            ..seg("a", 0, 0, 10)
        };
        c.segment.start_ns = 0;
        let now = Now {
            wall_ns: -5 * DAY_NS,
            wall_synced: false,
            running_ns: (36 * DAY_NS) as u64,
        };
        let p = plan(vec![c], &[], &now, 28, 10, u64::MAX);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].1, Why::Expired);
    }

    #[test]
    fn expired_go_even_with_room() {
        let segs = vec![seg("a", 0, 0, 10), seg("a", 1, 5, 10), seg("a", 2, 40, 10)];
        let p = plan(segs, &[], &at(40), 31, 30, u64::MAX);
        assert_eq!(
            p.iter()
                .map(|(c, w)| (c.segment.seq, *w))
                .collect::<Vec<_>>(),
            vec![(0, Why::Expired), (1, Why::Expired)]
        );
    }

    #[test]
    fn over_budget_oldest_first_and_stops_when_under() {
        let segs: Vec<_> = (0..10)
            .map(|i| seg("a", i, 30 + i as i64 / 5, 100))
            .collect();
        let p = plan(segs, &[], &at(32), 31, 1000, 750);
        assert_eq!(
            p.iter().map(|(c, _)| c.segment.seq).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(p.iter().all(|(_, w)| *w == Why::OverBudget));
    }

    #[test]
    fn held_survive_both_and_lapse_at_review() {
        let hold = Hold {
            id: 1,
            request: crate::HoldRequest {
                cameras: vec!["a".into()],
                from_ns: 0,
                to_ns: DAY_NS,
                case_ref: "C1".into(),
                reason: "r".into(),
                who: "m".into(),
                review_ns: 100 * DAY_NS,
            },
            created_ns: 0,
        };
        let segs = vec![seg("a", 0, 0, 10), seg("b", 0, 0, 10), seg("a", 1, 50, 10)];
        let p = plan(
            segs.clone(),
            std::slice::from_ref(&hold),
            &at(50),
            31,
            30,
            10,
        );
        // a/0 held; b/0 expired; a/1 over budget (30 - 10 = 20 > 10).
        assert_eq!(
            p.iter()
                .map(|(c, _)| (c.segment.camera.as_str(), c.segment.seq))
                .collect::<Vec<_>>(),
            vec![("b", 0), ("a", 1)]
        );
        let later = plan(segs, &[hold], &at(101), 31, 30, u64::MAX);
        assert!(
            later
                .iter()
                .any(|(c, _)| c.segment.camera == "a" && c.segment.seq == 0),
            "a lapsed hold no longer protects"
        );
    }

    #[test]
    fn capacity() {
        assert_eq!(capacity_days(100, 20, 10.0), Some(8.0));
        assert_eq!(capacity_days(100, 0, 0.0), None);
    }
}
