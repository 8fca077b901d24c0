//! Times as the unit records them (ns since the epoch, UTC) and as people read them.

/// Nanoseconds in a day.
pub const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Formats nanoseconds since the epoch as RFC 3339 UTC with milliseconds, e.g.
/// `2026-11-23T18:04:05.123Z`.
pub fn rfc3339(ns: i64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| format!("{ns} ns since 1970"))
}

/// Parses an RFC 3339 time (`2026-11-23T18:00:00Z`, `2026-11-23T18:00:00.5+01:00`) into
/// nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos()).ok()
}
