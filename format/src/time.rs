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

/// Whether UK summer time (BST, UTC+1) is in force at `ns`: from 01:00 UTC on the last Sunday
/// of March to 01:00 UTC on the last Sunday of October (the Summer Time Order 2002).
pub fn uk_summer_time(ns: i64) -> bool {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)) else {
        return false;
    };
    let last_sunday_1am = |month: time::Month| -> Option<time::OffsetDateTime> {
        let last = time::Date::from_calendar_date(t.year(), month, 31).ok()?;
        let back = i64::from(last.weekday().number_days_from_sunday());
        let day = last - time::Duration::days(back);
        Some(day.with_hms(1, 0, 0).ok()?.assume_utc())
    };
    match (
        last_sunday_1am(time::Month::March),
        last_sunday_1am(time::Month::October),
    ) {
        (Some(start), Some(end)) => t >= start && t < end,
        _ => false,
    }
}

/// A time as people in the UK read it: `2026-07-01 19:04:05 BST`, `2026-12-01 18:04:05 GMT`.
pub fn uk_local(ns: i64) -> String {
    let (offset, zone) = if uk_summer_time(ns) {
        (3_600 * 1_000_000_000, "BST")
    } else {
        (0, "GMT")
    };
    format!("{} {zone}", plain(ns + offset))
}

/// `2026-12-01 18:04:05 UTC`.
pub fn utc_plain(ns: i64) -> String {
    format!("{} UTC", plain(ns))
}

/// `2026-12-01 18:04:05.123 UTC`: to the millisecond, for a still's caption.
pub fn utc_ms(ns: i64) -> String {
    format!("{} UTC", plain_ms(ns))
}

/// `2026-07-01 19:04:05.123 BST`: UK local time to the millisecond.
pub fn uk_local_ms(ns: i64) -> String {
    let (offset, zone) = if uk_summer_time(ns) {
        (3_600 * 1_000_000_000, "BST")
    } else {
        (0, "GMT")
    };
    format!("{} {zone}", plain_ms(ns + offset))
}

fn plain_ms(ns: i64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| format!("{ns} ns since 1970"))
}

fn plain(ns: i64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| format!("{ns} ns since 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn uk_clock_changes() {
        // 2026: BST from 29 March 01:00 UTC to 25 October 01:00 UTC.
        for (utc, uk) in [
            ("2026-03-29T00:59:59Z", "2026-03-29 00:59:59 GMT"),
            ("2026-03-29T01:00:00Z", "2026-03-29 02:00:00 BST"),
            ("2026-10-25T00:59:59Z", "2026-10-25 01:59:59 BST"),
            ("2026-10-25T01:00:00Z", "2026-10-25 01:00:00 GMT"),
            ("2026-12-01T18:04:05Z", "2026-12-01 18:04:05 GMT"),
            ("2027-07-01T18:04:05Z", "2027-07-01 19:04:05 BST"),
        ] {
            assert_eq!(uk_local(at(utc)), uk, "{utc}");
        }
        assert_eq!(
            uk_local_ms(at("2027-07-01T18:04:05.0429Z")),
            "2027-07-01 19:04:05.042 BST"
        );
        assert_eq!(
            utc_ms(at("2026-12-01T18:04:05.999Z")),
            "2026-12-01 18:04:05.999 UTC"
        );
        assert_eq!(
            utc_plain(at("2027-07-01T18:04:05Z")),
            "2027-07-01 18:04:05 UTC"
        );
    }
}
