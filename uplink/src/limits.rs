//! How much one person can make the unit write (sans-IO).
//!
//! Every request a person makes is audited, and each audit entry is signed and fdatasync'ed:
//! a script holding one scheme certificate could otherwise grow the log by megabytes a minute
//! and, through the log, the disk. So each identity has a token bucket of requests: a burst of
//! [`BURST`] (a long fetch or export starts at once), then [`PER_SECOND`] a second, about what a
//! fast 4G link can carry in segments. A request past that is refused, and its refusals are
//! aggregated as strangers' are: the first in an hour for that identity is audited at once,
//! then one summary a minute counts the rest ("N further requests refused"). So, however hard
//! one identity pushes, it makes the unit write at most `PER_SECOND` granted entries a second
//! plus one a minute. The same summary counts requests refused because the unit's log space is
//! full ([`Limits::log_full`]).

use std::collections::{BTreeMap, HashMap};

use rdc_format::time::rfc3339;
use rdc_format::{Actor, AuditRecord};

/// Requests one identity may make at once.
pub const BURST: f64 = 600.0;
/// Requests one identity may make a second, sustained.
pub const PER_SECOND: f64 = 5.0;
/// How often the summary of further refusals is written.
pub const WINDOW_NS: i64 = 60 * 1_000_000_000;
/// How long an identity's first refusal covers its later ones.
pub const REMEMBER_NS: i64 = 3600 * 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ns: i64,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Admit {
    Yes,
    /// Refused: retry after this many seconds; audit this record now, if any (the identity's
    /// first refusal in an hour).
    Throttled {
        retry_after_secs: u64,
        audit: Option<Box<AuditRecord>>,
    },
}

/// Per-identity request buckets and the current minute's refusals.
#[derive(Debug, Default)]
pub struct Limits {
    buckets: HashMap<String, Bucket>,
    /// Identity -> when its first refusal was audited.
    audited: HashMap<String, i64>,
    /// Refusals counted since `window_start_ns`: (identity, reason) -> count.
    counted: BTreeMap<(String, String), u64>,
    window_start_ns: Option<i64>,
    window_end_ns: i64,
}

impl Limits {
    /// Takes a request from `who` (name and fingerprint, as audited) in `role`.
    pub fn admit(&mut self, now_ns: i64, who: &str, role: Actor) -> Admit {
        let b = self.buckets.entry(who.to_owned()).or_insert(Bucket {
            tokens: BURST,
            at_ns: now_ns,
        });
        let elapsed = now_ns.saturating_sub(b.at_ns).max(0) as f64 / 1e9;
        b.tokens = (b.tokens + elapsed * PER_SECOND).min(BURST);
        b.at_ns = now_ns;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Admit::Yes;
        }
        let retry_after_secs = ((1.0 - b.tokens) / PER_SECOND).ceil().max(1.0) as u64;
        let reason = format!(
            "more than {} requests a minute from one identity",
            (PER_SECOND * 60.0) as u64
        );
        Admit::Throttled {
            retry_after_secs,
            audit: self.refused(now_ns, who, role, &reason).map(Box::new),
        }
    }

    /// Counts a request refused for `reason` without a request of its own being audited:
    /// returns the record to audit now when it is `who`'s first refusal in an hour.
    pub fn refused(
        &mut self,
        now_ns: i64,
        who: &str,
        role: Actor,
        reason: &str,
    ) -> Option<AuditRecord> {
        match self.audited.get(who) {
            Some(t) if now_ns - t < REMEMBER_NS => {
                self.window_start_ns.get_or_insert(now_ns);
                self.window_end_ns = now_ns;
                *self
                    .counted
                    .entry((who.to_owned(), reason.to_owned()))
                    .or_default() += 1;
                None
            }
            _ => {
                self.audited.insert(who.to_owned(), now_ns);
                Some(AuditRecord {
                    who: who.to_owned(),
                    role,
                    action: "request".into(),
                    outcome: rdc_format::Outcome::refused(reason),
                    attempts: Some(1),
                    detail: Some(
                        "further refusals of this identity within the hour are counted in a summary each minute".into(),
                    ),
                    ..Default::default()
                })
            }
        }
    }

    /// A request refused because the unit's log space is full: counted like a throttled one.
    pub fn log_full(&mut self, now_ns: i64, who: &str, role: Actor) -> Option<AuditRecord> {
        self.refused(now_ns, who, role, LOG_FULL_REASON)
    }

    /// The summary of refusals counted, once its minute is up (at once with `flush_all`).
    pub fn due(&mut self, now_ns: i64, flush_all: bool) -> Option<AuditRecord> {
        self.audited
            .retain(|_, t| now_ns.saturating_sub(*t) < REMEMBER_NS);
        let start = self.window_start_ns?;
        if !flush_all && now_ns - start < WINDOW_NS {
            return None;
        }
        let total: u64 = self.counted.values().sum();
        let detail = self
            .counted
            .iter()
            .map(|((who, why), n)| format!("{n} from {who} ({why})"))
            .collect::<Vec<_>>()
            .join("; ");
        let rec = AuditRecord {
            who: "unit".into(),
            role: rdc_format::Actor::System,
            action: "requests_refused".into(),
            outcome: rdc_format::Outcome::Refused(format!(
                "{total} further requests between {} and {}",
                rfc3339(start),
                rfc3339(self.window_end_ns)
            )),
            attempts: Some(total),
            detail: Some(detail),
            ..Default::default()
        };
        self.counted.clear();
        self.window_start_ns = None;
        Some(rec)
    }
}

/// Why a request is refused when the log space is full.
pub const LOG_FULL_REASON: &str = "the unit's log space is full";

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn a_burst_then_the_sustained_rate_then_refusals_aggregated() {
        let mut l = Limits::default();
        let who = "j.smith (sha256:aa)";
        let t0 = 1_800_000_000 * S;
        for i in 0..BURST as i64 {
            assert_eq!(
                l.admit(t0, who, Actor::Person(rdc_format::Role::Officer)),
                Admit::Yes,
                "request {i}"
            );
        }
        // The next is refused and audited at once; more are only counted.
        match l.admit(t0, who, Actor::Person(rdc_format::Role::Officer)) {
            Admit::Throttled {
                retry_after_secs,
                audit: Some(rec),
            } => {
                assert_eq!(retry_after_secs, 1);
                assert!(
                    rec.outcome
                        .to_string()
                        .starts_with("refused: more than 300 requests a minute")
                );
                assert_eq!(rec.who, who);
            }
            other => panic!("{other:?}"),
        }
        for _ in 0..999 {
            assert!(matches!(
                l.admit(t0, who, Actor::Person(rdc_format::Role::Officer)),
                Admit::Throttled { audit: None, .. }
            ));
        }
        // Another person is not held back by the first.
        assert_eq!(
            l.admit(
                t0,
                "a.jones (sha256:bb)",
                Actor::Person(rdc_format::Role::Officer)
            ),
            Admit::Yes
        );
        // A minute on: 300 more were allowed over the minute, and one summary counts the 999.
        assert_eq!(l.due(t0 + 30 * S, false), None);
        let sum = l.due(t0 + 60 * S, false).unwrap();
        assert_eq!(sum.attempts, Some(999));
        assert!(sum.detail.unwrap().contains("999 from j.smith"));
        let mut granted = 0;
        for k in 0..600 {
            if l.admit(
                t0 + 60 * S + k * S / 10,
                who,
                Actor::Person(rdc_format::Role::Officer),
            ) == Admit::Yes
            {
                granted += 1;
            }
        }
        // 60 s of refill (300) plus 60 s more during the loop at 10 a second.
        assert!((299..=601).contains(&granted), "{granted}");
        // However hard one identity pushes for an hour, the unit writes at most the granted
        // entries plus one a minute.
        let mut l = Limits::default();
        let mut written = 0;
        for k in 0..3600 * 50 {
            let now = t0 + k * S / 50;
            match l.admit(now, who, Actor::Person(rdc_format::Role::Officer)) {
                Admit::Yes => written += 1,
                Admit::Throttled { audit, .. } => written += u64::from(audit.is_some()),
            }
            written += u64::from(l.due(now, false).is_some());
        }
        assert!(
            written <= BURST as u64 + 3600 * PER_SECOND as u64 + 61,
            "{written} entries in an hour"
        );
    }
}
