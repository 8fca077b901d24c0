//! Refused connections, aggregated before they reach the audit log (sans-IO).
//!
//! Every refused connection must be accounted for (R10), but each audit entry is signed and
//! fdatasync'ed: one per attempt would let a stranger grow the log and the disk at will. So a
//! source is audited at once the first time it is refused in an hour; every further attempt,
//! from any source, is counted into one summary entry a minute ("N further attempts from K
//! sources between t1 and t2", the busiest sources named with their counts). Sources are IPv4
//! addresses or IPv6 /64 prefixes (one subscriber's allocation); at most [`MAX_SOURCES`] are
//! remembered, and new sources past that are only counted. So, however hard the unit is knocked
//! on, the log grows by at most `MAX_SOURCES` entries an hour plus one a minute.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use rdc_format::time::rfc3339;
use rdc_format::{AuditRecord, Outcome};

/// How often the summary of further attempts is written.
pub const WINDOW_NS: i64 = 60 * 1_000_000_000;
/// How long a source is remembered after its last attempt (its attempts are summarised).
pub const REMEMBER_NS: i64 = 3600 * 1_000_000_000;
/// Sources remembered one by one.
pub const MAX_SOURCES: usize = 256;
/// Sources, reasons and certificates named in one summary (the rest are counted).
const MAX_NAMED: usize = 16;

/// A certificate a refused peer presented.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Presented {
    /// `sha256:…` of the DER certificate.
    pub fingerprint: String,
    /// The subject (its common name when it has one).
    pub subject: String,
}

impl std::fmt::Display for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (subject {})", self.fingerprint, self.subject)
    }
}

/// One refused connection.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub addr: IpAddr,
    /// Why it was refused.
    pub reason: String,
    pub presented: Option<Presented>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Source {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl Source {
    fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Source::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&a.octets()[..8]);
                    Source::V6Prefix(p)
                }
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Source::V4(o) => write!(f, "{}", std::net::Ipv4Addr::from(o)),
            Source::V6Prefix(p) => {
                let mut full = [0u8; 16];
                full[..8].copy_from_slice(&p);
                write!(f, "{}/64", std::net::Ipv6Addr::from(full))
            }
        }
    }
}

/// Names at most [`MAX_NAMED`] things, counting the rest.
fn add_named<T: Ord + Clone>(set: &mut BTreeMap<T, u64>, more: &mut u64, item: &T) {
    if let Some(n) = set.get_mut(item) {
        *n += 1;
    } else if set.len() < MAX_NAMED {
        set.insert(item.clone(), 1);
    } else {
        *more += 1;
    }
}

/// The further attempts of one minute.
#[derive(Debug, Default)]
struct Summary {
    count: u64,
    first_ns: i64,
    last_ns: i64,
    sources: BTreeMap<Source, u64>,
    unnamed_sources: BTreeSet<Source>,
    reasons: BTreeMap<String, u64>,
    other_reasons: u64,
    certs: BTreeMap<Presented, u64>,
    other_certs: u64,
}

impl Summary {
    fn add(&mut self, now_ns: i64, source: Source, a: &Attempt) {
        if self.count == 0 {
            self.first_ns = now_ns;
        }
        self.count += 1;
        self.last_ns = now_ns;
        if self.sources.contains_key(&source) || self.sources.len() < MAX_NAMED {
            *self.sources.entry(source).or_default() += 1;
        } else if self.unnamed_sources.len() < 65_536 {
            self.unnamed_sources.insert(source);
        }
        add_named(&mut self.reasons, &mut self.other_reasons, &a.reason);
        if let Some(p) = &a.presented {
            add_named(&mut self.certs, &mut self.other_certs, p);
        }
    }

    fn record(&self) -> AuditRecord {
        let sources = self.sources.len() + self.unnamed_sources.len();
        let mut named: Vec<String> = self
            .sources
            .iter()
            .map(|(s, n)| format!("{s} x{n}"))
            .collect();
        if !self.unnamed_sources.is_empty() {
            named.push(format!("{} other sources", self.unnamed_sources.len()));
        }
        let mut detail = format!(
            "{} further refused attempt(s) from {sources} source(s) between {} and {}: {}",
            self.count,
            rfc3339(self.first_ns),
            rfc3339(self.last_ns),
            named.join(", ")
        );
        if !self.certs.is_empty() {
            let certs: Vec<String> = self.certs.keys().map(|p| p.to_string()).collect();
            detail.push_str(&format!("; certificates presented: {}", certs.join(", ")));
            if self.other_certs > 0 {
                detail.push_str(&format!(" and {} more", self.other_certs));
            }
        }
        AuditRecord {
            who: format!("strangers ({sources} source(s))"),
            role: rdc_format::Actor::Nobody,
            action: "connect".into(),
            outcome: Outcome::refused(reasons(&self.reasons, self.other_reasons)),
            attempts: Some(self.count),
            detail: Some(detail),
            ..Default::default()
        }
    }
}

fn reasons(r: &BTreeMap<String, u64>, other: u64) -> String {
    let mut v: Vec<String> = r
        .iter()
        .map(|(r, n)| {
            if *n > 1 {
                format!("{r} (x{n})")
            } else {
                r.clone()
            }
        })
        .collect();
    if other > 0 {
        v.push(format!("other reasons (x{other})"));
    }
    v.join("; ")
}

/// Sources seen lately and the current minute's summary.
#[derive(Debug, Default)]
pub struct Strangers {
    /// Source -> its last attempt.
    seen: HashMap<Source, i64>,
    summary: Summary,
    window_start_ns: Option<i64>,
}

impl Strangers {
    /// Counts a refused connection; returns the audit record to write now when its source has
    /// not been refused in the last hour.
    pub fn attempt(&mut self, now_ns: i64, a: &Attempt) -> Option<AuditRecord> {
        let source = Source::of(a.addr);
        if let Some(last) = self.seen.get_mut(&source)
            && now_ns - *last < REMEMBER_NS
        {
            *last = now_ns;
        } else {
            self.seen.remove(&source);
            if self.seen.len() >= MAX_SOURCES {
                self.seen.retain(|_, last| now_ns - *last < REMEMBER_NS);
            }
            if self.seen.len() < MAX_SOURCES {
                self.seen.insert(source, now_ns);
                let mut detail = format!("refused connection from {source}");
                if let Some(p) = &a.presented {
                    detail.push_str(&format!("; certificate presented: {p}"));
                }
                return Some(AuditRecord {
                    who: format!("stranger at {source}"),
                    role: rdc_format::Actor::Nobody,
                    action: "connect".into(),
                    outcome: Outcome::refused(&a.reason),
                    attempts: Some(1),
                    detail: Some(detail),
                    ..Default::default()
                });
            }
        }
        self.window_start_ns.get_or_insert(now_ns);
        self.summary.add(now_ns, source, a);
        None
    }

    /// The summary of further attempts, once its minute is up (at once with `flush_all`, at
    /// shutdown). Sources quiet for an hour are forgotten.
    pub fn due(&mut self, now_ns: i64, flush_all: bool) -> Option<AuditRecord> {
        self.seen
            .retain(|_, last| now_ns.saturating_sub(*last) < REMEMBER_NS);
        let start = self.window_start_ns?;
        if !flush_all && now_ns - start < WINDOW_NS {
            return None;
        }
        let rec = self.summary.record();
        self.summary = Summary::default();
        self.window_start_ns = None;
        Some(rec)
    }

    /// Sources remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(ip: &str, reason: &str, fp: Option<&str>) -> Attempt {
        Attempt {
            addr: ip.parse().unwrap(),
            reason: reason.into(),
            presented: fp.map(|f| Presented {
                fingerprint: f.into(),
                subject: "CN=x".into(),
            }),
        }
    }

    #[test]
    fn first_at_once_then_a_summary_a_minute() {
        let mut s = Strangers::default();
        let t0 = 1_000 * WINDOW_NS;
        let first = s
            .attempt(
                t0,
                &attempt("203.0.113.7", "TLS handshake failed", Some("sha256:aa")),
            )
            .expect("the first attempt is audited at once");
        assert_eq!(first.attempts, Some(1));
        assert!(first.detail.unwrap().contains("sha256:aa (subject CN=x)"));
        for i in 1..500 {
            let r = s.attempt(
                t0 + i * 1_000_000,
                &attempt("203.0.113.7", "TLS handshake failed", None),
            );
            assert!(r.is_none());
        }
        assert!(
            s.due(t0 + WINDOW_NS - 1, false).is_none(),
            "not before the minute is up"
        );
        let later = s
            .due(t0 + WINDOW_NS + 1_000_000, false)
            .expect("the summary");
        assert_eq!(later.attempts, Some(499));
        assert!(
            later
                .outcome
                .to_string()
                .contains("TLS handshake failed (x499)"),
            "{later:?}"
        );
        assert!(later.detail.unwrap().contains("203.0.113.7 x499"));
        // Knocking again after a quiet spell is summarised, not audited at once ...
        assert!(s.due(t0 + 2 * WINDOW_NS, false).is_none());
        assert!(
            s.attempt(t0 + 10 * WINDOW_NS, &attempt("203.0.113.7", "x", None))
                .is_none()
        );
        // ... until the source has been quiet for an hour.
        assert!(s.due(t0 + 11 * WINDOW_NS, false).is_some());
        assert!(
            s.attempt(
                t0 + 10 * WINDOW_NS + REMEMBER_NS,
                &attempt("203.0.113.7", "x", None)
            )
            .is_some()
        );
    }

    #[test]
    fn many_sources_are_counted_past_the_limit() {
        let mut s = Strangers::default();
        let mut immediate = 0;
        for i in 0..10_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            immediate += usize::from(s.attempt(i64::from(i), &attempt(&ip, "r", None)).is_some());
        }
        assert_eq!(immediate, MAX_SOURCES);
        assert_eq!(s.remembered(), MAX_SOURCES);
        let summary = s.due(WINDOW_NS * 2, true).unwrap();
        assert_eq!(summary.attempts, Some(10_000 - MAX_SOURCES as u64));
        let d = summary.detail.unwrap();
        assert!(
            d.contains(&format!("from {} source(s)", 10_000 - MAX_SOURCES)),
            "{d}"
        );
        assert!(d.len() < 2_000, "a summary stays small: {} bytes", d.len());
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let mut s = Strangers::default();
        assert!(
            s.attempt(0, &attempt("2001:db8:1:2::1", "r", None))
                .is_some()
        );
        assert!(
            s.attempt(1, &attempt("2001:db8:1:2::ffff", "r", None))
                .is_none()
        );
        assert!(
            s.attempt(2, &attempt("2001:db8:1:3::1", "r", None))
                .is_some()
        );
    }
}
