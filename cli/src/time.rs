//! Times on the command line: local times in the scheme's zone, RFC 3339 with an offset, `now`,
//! `now-10m`; and times written back to people in that zone.
//!
//! Officers in the UK think in local time: `2026-06-01T18:00` means 18:00 BST, which is 17:00
//! UTC. A time without an offset is taken in the scheme's zone (`timezone` in the units file,
//! Europe/London by default; the rules come from the time-zone database bundled with `jiff`,
//! so the officer's machine needs none). A time that does not exist there (the hour skipped
//! when the clocks go forward) or that happened twice (the hour repeated when they go back) is
//! refused, naming what to write instead.

use std::sync::OnceLock;

use jiff::tz::{AmbiguousOffset, TimeZone};

use anyhow::{anyhow, bail};

/// The scheme's zone when the units file names none.
pub(crate) const DEFAULT_ZONE: &str = "Europe/London";

static ZONE: OnceLock<TimeZone> = OnceLock::new();

/// Sets the zone for this run (from the units file); a name the database does not know is an
/// error naming it.
pub(crate) fn set_zone(name: &str) -> anyhow::Result<()> {
    let tz = TimeZone::get(name).map_err(|e| {
        anyhow!(
            "timezone {name:?} in the units file is not a time zone ({e}): use e.g. Europe/London"
        )
    })?;
    let _ = ZONE.set(tz);
    Ok(())
}

/// The scheme's zone.
pub(crate) fn zone() -> &'static TimeZone {
    ZONE.get_or_init(|| TimeZone::get(DEFAULT_ZONE).unwrap_or(TimeZone::UTC))
}

/// Now, ns since the epoch (UTC).
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Parses a time as people write it on the command line (see the module's documentation).
pub(crate) fn parse_time(s: &str) -> anyhow::Result<i64> {
    parse_time_in(s, zone(), now_ns())
}

/// [`parse_time`] in zone `tz` at `now` (ns since the epoch).
pub(crate) fn parse_time_in(s: &str, tz: &TimeZone, now: i64) -> anyhow::Result<i64> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    let sign = match (s.strip_prefix("now+"), s.strip_prefix("now-")) {
        (Some(rest), _) => Some((1, rest)),
        (_, Some(rest)) => Some((-1, rest)),
        _ => None,
    };
    if let Some((sign, rest)) = sign {
        return relative(s, rest)?
            .checked_mul(sign)
            .and_then(|d| now.checked_add(d))
            .ok_or_else(|| too_far(s));
    }
    if let Some(t) = rdc_format::time::parse_rfc3339(s) {
        return Ok(t);
    }
    let local = parse_local(s).ok_or_else(|| {
        anyhow!(
            "{s:?} is not a time: write a local time like 2026-06-01T18:00 ({}), one with an offset like 2026-06-01T17:00:00Z, or now-10m",
            tz.iana_name().unwrap_or("the scheme's zone")
        )
    })?;
    let zone_name = tz.iana_name().unwrap_or("the scheme's zone");
    let at = tz.to_ambiguous_timestamp(local);
    match at.offset() {
        AmbiguousOffset::Unambiguous { offset } => ns_of(offset.to_timestamp(local)),
        AmbiguousOffset::Gap { before, after } => bail!(
            "{s} does not exist in {zone_name}: the clocks went forward that night, from {} to {}; write a time outside that hour, or give an offset",
            clock(local, before, after, true),
            clock(local, before, after, false),
        ),
        AmbiguousOffset::Fold { before, after } => bail!(
            "{s} happened twice in {zone_name}: the clocks went back that night; write {} for the first ({}), or {} for the second ({})",
            with_offset(local, before),
            abbreviation(tz, local, before),
            with_offset(local, after),
            abbreviation(tz, local, after),
        ),
    }
}

fn relative(s: &str, rest: &str) -> anyhow::Result<i64> {
    let (num, unit) = rest.split_at(
        rest.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len()),
    );
    if num.is_empty() {
        bail!("{s:?}: write e.g. now-10m");
    }
    let n: i64 = num.parse().map_err(|_| too_far(s))?;
    let secs = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{s:?}: the unit must be s, m, h or d"),
    };
    n.checked_mul(secs)
        .and_then(|x| x.checked_mul(1_000_000_000))
        .ok_or_else(|| too_far(s))
}

/// A relative time beyond what a time can be (about 292 years either side of 1970).
fn too_far(s: &str) -> anyhow::Error {
    anyhow!("{s:?} is too far from now: give a time within a few hundred years, e.g. now-30d")
}

/// `2026-06-01T18:00`, `2026-06-01 18:00:30`, `2026-06-01` (midnight): a civil time, no zone.
fn parse_local(s: &str) -> Option<jiff::civil::DateTime> {
    if let Ok(d) = s.parse::<jiff::civil::Date>()
        && s.len() == 10
    {
        return Some(d.to_datetime(jiff::civil::Time::midnight()));
    }
    s.parse::<jiff::civil::DateTime>().ok()
}

fn ns_of(t: Result<jiff::Timestamp, jiff::Error>) -> anyhow::Result<i64> {
    let t = t.map_err(|e| anyhow!("{e}"))?;
    i64::try_from(t.as_nanosecond()).map_err(|_| anyhow!("the time is out of range"))
}

fn with_offset(local: jiff::civil::DateTime, offset: jiff::tz::Offset) -> String {
    let s = offset.seconds();
    let sign = if s < 0 { '-' } else { '+' };
    let a = s.unsigned_abs();
    format!(
        "{}{sign}{:02}:{:02}",
        local.strftime("%Y-%m-%dT%H:%M:%S"),
        a / 3600,
        a % 3600 / 60
    )
}

fn abbreviation(tz: &TimeZone, local: jiff::civil::DateTime, offset: jiff::tz::Offset) -> String {
    offset
        .to_timestamp(local)
        .ok()
        .map(|t| tz.to_offset_info(t).abbreviation().to_owned())
        .unwrap_or_else(|| offset.to_string())
}

/// The wall-clock times either side of a gap: the time the clocks left and the time they
/// showed after.
fn clock(
    local: jiff::civil::DateTime,
    before: jiff::tz::Offset,
    after: jiff::tz::Offset,
    left: bool,
) -> String {
    let jump = i64::from(after.seconds() - before.seconds());
    let start_of_hour = local
        .date()
        .to_datetime(jiff::civil::time(local.hour(), 0, 0, 0));
    let t = if left {
        start_of_hour
    } else {
        start_of_hour
            .checked_add(jiff::SignedDuration::from_secs(jump))
            .unwrap_or(start_of_hour)
    };
    t.strftime("%H:%M").to_string()
}

/// An instant for people: `2026-06-01 18:00:00 BST` in the scheme's zone.
pub(crate) fn local(ns: i64) -> String {
    local_in(ns, zone())
}

pub(crate) fn local_in(ns: i64, tz: &TimeZone) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(ns)) {
        Ok(t) => t
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => rdc_format::time::rfc3339(ns),
    }
}

/// Parses `--from` and `--to` and refuses a range that ends before it starts, before anything
/// is sent; says on stderr the range the request will use, in local time and UTC.
pub(crate) fn parse_range(from: &str, to: &str) -> anyhow::Result<(i64, i64)> {
    let (f, t) = (parse_time(from)?, parse_time(to)?);
    check_range(f, t)?;
    eprintln!("{}", describe_range(f, t));
    Ok((f, t))
}

/// A range that ends before (or as) it starts, refused in words.
pub(crate) fn check_range(from: i64, to: i64) -> anyhow::Result<()> {
    if from >= to {
        bail!(
            "--from {} is not before --to {}: nothing to ask for (swap them?)",
            local(from),
            local(to)
        );
    }
    Ok(())
}

/// `from 2026-06-01 18:00:00 BST to 2026-06-01 19:00:00 BST (17:00:00Z to 18:00:00Z UTC)`.
pub(crate) fn describe_range(from: i64, to: i64) -> String {
    format!(
        "from {} to {} ({} to {})",
        local(from),
        local(to),
        rdc_format::time::rfc3339(from),
        rdc_format::time::rfc3339(to)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> TimeZone {
        TimeZone::get("Europe/London").unwrap()
    }

    fn utc(s: &str) -> i64 {
        rdc_format::time::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn local_times_are_the_schemes_in_winter_and_summer() {
        let tz = london();
        // Winter: GMT, the same as UTC.
        assert_eq!(
            parse_time_in("2026-01-15T18:00", &tz, 0).unwrap(),
            utc("2026-01-15T18:00:00Z")
        );
        // Summer: BST, an hour ahead.
        assert_eq!(
            parse_time_in("2026-06-01T18:00:00", &tz, 0).unwrap(),
            utc("2026-06-01T17:00:00Z")
        );
        assert_eq!(
            parse_time_in("2026-06-01 18:00", &tz, 0).unwrap(),
            utc("2026-06-01T17:00:00Z")
        );
        assert_eq!(
            parse_time_in("2026-06-01", &tz, 0).unwrap(),
            utc("2026-05-31T23:00:00Z")
        );
        // An offset, or Z, is taken as written.
        assert_eq!(
            parse_time_in("2026-06-01T18:00:00Z", &tz, 0).unwrap(),
            utc("2026-06-01T18:00:00Z")
        );
        assert_eq!(
            local_in(utc("2026-06-01T17:00:00Z"), &tz),
            "2026-06-01 18:00:00 BST"
        );
        assert_eq!(
            local_in(utc("2026-01-15T18:00:00Z"), &tz),
            "2026-01-15 18:00:00 GMT"
        );
    }

    #[test]
    fn the_skipped_and_the_repeated_hour_are_refused_in_words() {
        let tz = london();
        // 29 March 2026: 01:00 GMT became 02:00 BST.
        let e = parse_time_in("2026-03-29T01:30", &tz, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not exist in Europe/London") && e.contains("from 01:00 to 02:00"),
            "{e}"
        );
        // 25 October 2026: 02:00 BST became 01:00 GMT; 01:30 happened twice.
        let e = parse_time_in("2026-10-25T01:30", &tz, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("happened twice"), "{e}");
        assert!(
            e.contains("2026-10-25T01:30:00+01:00 for the first (BST)")
                && e.contains("2026-10-25T01:30:00+00:00 for the second (GMT)"),
            "{e}"
        );
        // Either meaning, written with its offset, is taken.
        assert_eq!(
            parse_time_in("2026-10-25T01:30:00+01:00", &tz, 0).unwrap(),
            utc("2026-10-25T00:30:00Z")
        );
    }

    #[test]
    fn relative_times_and_nonsense() {
        let tz = london();
        let now = utc("2026-06-01T12:00:00Z");
        assert_eq!(parse_time_in("now", &tz, now).unwrap(), now);
        assert_eq!(
            parse_time_in("now-10m", &tz, now).unwrap(),
            now - 600_000_000_000
        );
        assert_eq!(
            parse_time_in("now+1d", &tz, now).unwrap(),
            now + 86_400_000_000_000
        );
        let e = parse_time_in("yesterday", &tz, now)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is not a time") && e.contains("Europe/London"),
            "{e}"
        );
        assert!(parse_time_in("now-10y", &tz, now).is_err());
        // Beyond what a time can hold: refused, saying so, never an overflow.
        for far in [
            "now-99999999999d",
            "now+99999999999d",
            "now-999999999999999999999s",
        ] {
            let e = parse_time_in(far, &tz, now).unwrap_err().to_string();
            assert!(e.contains("too far from now"), "{far}: {e}");
        }
        assert!(
            parse_time_in("now-", &tz, now)
                .unwrap_err()
                .to_string()
                .contains("now-10m")
        );
    }

    proptest::proptest! {
        /// Any relative time, however large, at any now: a time exactly that far off, or an
        /// error; never a panic (debug builds check every overflow).
        #[test]
        fn relative_times_are_exact_or_refused(
            n in proptest::prelude::any::<u64>(),
            unit in proptest::sample::select(vec!["s", "m", "h", "d"]),
            plus in proptest::prelude::any::<bool>(),
            now in proptest::prelude::any::<i64>(),
        ) {
            let tz = london();
            let s = format!("now{}{n}{unit}", if plus { "+" } else { "-" });
            let secs: i128 = match unit { "s" => 1, "m" => 60, "h" => 3600, _ => 86_400 };
            let want = i128::from(now)
                + if plus { 1 } else { -1 } * i128::from(n) * secs * 1_000_000_000;
            match parse_time_in(&s, &tz, now) {
                Ok(t) => proptest::prop_assert_eq!(i128::from(t), want),
                Err(e) => {
                    proptest::prop_assert!(
                        i64::try_from(want).is_err()
                            || i64::try_from(i128::from(n) * secs * 1_000_000_000).is_err(),
                        "{s} at {now} refused although it fits: {e}"
                    );
                    proptest::prop_assert!(e.to_string().contains("too far"), "{e}");
                }
            }
        }
    }

    #[test]
    fn a_reversed_range_is_refused() {
        assert!(check_range(2, 1).is_err());
        assert!(check_range(1, 1).is_err());
        assert!(check_range(1, 2).is_ok());
    }
}
