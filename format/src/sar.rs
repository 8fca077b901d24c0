//! Subject access requests (seed 002 §43, R15): the deadline of a calendar month from receipt,
//! moved to the next working day in England and Wales, extendable by up to two months, and the
//! entries of the unit's signed register of requests. Pure.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, Month, Weekday};

/// England and Wales bank holidays, as `(year, month, day)`: from
/// <https://www.gov.uk/bank-holidays> (the published years), and for the years not yet
/// published, by the rules the government follows (New Year's Day, Good Friday, Easter Monday,
/// the first and last Mondays of May, the last Monday of August, Christmas and Boxing Day, each
/// moved to the next weekday not already a holiday when it falls on a weekend). Extend it each
/// year; past [`LAST_YEAR`] deadlines count weekends only and say so.
pub const BANK_HOLIDAYS: &[(i32, u8, u8)] = &[
    (2024, 1, 1),
    (2024, 3, 29),
    (2024, 4, 1),
    (2024, 5, 6),
    (2024, 5, 27),
    (2024, 8, 26),
    (2024, 12, 25),
    (2024, 12, 26),
    (2025, 1, 1),
    (2025, 4, 18),
    (2025, 4, 21),
    (2025, 5, 5),
    (2025, 5, 26),
    (2025, 8, 25),
    (2025, 12, 25),
    (2025, 12, 26),
    (2026, 1, 1),
    (2026, 4, 3),
    (2026, 4, 6),
    (2026, 5, 4),
    (2026, 5, 25),
    (2026, 8, 31),
    (2026, 12, 25),
    (2026, 12, 28),
    (2027, 1, 1),
    (2027, 3, 26),
    (2027, 3, 29),
    (2027, 5, 3),
    (2027, 5, 31),
    (2027, 8, 30),
    (2027, 12, 27),
    (2027, 12, 28),
    (2028, 1, 3),
    (2028, 4, 14),
    (2028, 4, 17),
    (2028, 5, 1),
    (2028, 5, 29),
    (2028, 8, 28),
    (2028, 12, 25),
    (2028, 12, 26),
];
/// The table's source, for what people read.
pub const BANK_HOLIDAYS_SOURCE: &str =
    "gov.uk/bank-holidays (England and Wales) to 2027; 2028 by the same rules";
/// The last year the table covers.
pub const LAST_YEAR: i32 = 2028;
/// The most a deadline may be extended by, in months (UK GDPR Art. 12(3)).
pub const MAX_EXTENSION_MONTHS: u8 = 2;

/// Whether `d` is an England and Wales bank holiday (per the table).
pub fn bank_holiday(d: Date) -> bool {
    BANK_HOLIDAYS
        .iter()
        .any(|&(y, m, day)| d.year() == y && u8::from(d.month()) == m && d.day() == day)
}

/// A working day: not a Saturday, Sunday or bank holiday.
pub fn working_day(d: Date) -> bool {
    !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) && !bank_holiday(d)
}

/// The same day `months` calendar months after `d`, or that month's last day when it has no
/// such day (31 January + 1 month: 28 or 29 February).
pub fn add_months(d: Date, months: u8) -> Date {
    let m0 = u8::from(d.month()) as i32 - 1 + i32::from(months);
    let year = d.year() + m0 / 12;
    let month = Month::try_from((m0 % 12 + 1) as u8).unwrap_or(Month::January);
    let last = time::util::days_in_month(month, year);
    Date::from_calendar_date(year, month, d.day().min(last)).unwrap_or(d)
}

/// The deadline of a request received on `received`, with `extension` months added (0-2):
/// a calendar month (plus the extension) from receipt, moved to the next working day.
pub fn due(received: Date, extension: u8) -> Date {
    let mut d = add_months(received, 1 + extension.min(MAX_EXTENSION_MONTHS));
    while !working_day(d) {
        d += Duration::days(1);
    }
    d
}

/// Whether a deadline lies past the bank holiday table (weekends alone were counted).
pub fn past_the_table(d: Date) -> bool {
    d.year() > LAST_YEAR
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    const F: &[time::format_description::FormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.trim(), F).ok()
}

/// `YYYY-MM-DD`.
pub fn date_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The UK calendar date (local time) at `ns`.
pub fn uk_date(ns: i64) -> Date {
    let offset = if crate::time::uk_summer_time(ns) {
        3_600_000_000_000
    } else {
        0
    };
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns + offset))
        .map(|t| t.date())
        .unwrap_or(Date::MIN)
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Footage disclosed: the disclosure's signed manifest, by its SHA-256.
    Disclosed { disclosure_sha256: String },
    /// Refused, and why (an exemption, no footage of the requester ...).
    Refused { reason: String },
}

/// One entry of the unit's register of subject access requests (`logs/sars.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SarEntry {
    Opened {
        /// The requester's reference (the scheme's, not the person's name).
        reference: String,
        camera: String,
        from_ns: i64,
        to_ns: i64,
        /// The day it was received, and the deadline, `YYYY-MM-DD` (UK dates).
        received: String,
        due: String,
        /// The hold that keeps the footage past retention meanwhile.
        hold: u64,
        who: String,
    },
    Extended {
        reference: String,
        months: u8,
        reason: String,
        due: String,
        who: String,
    },
    Closed {
        reference: String,
        #[serde(flatten)]
        outcome: Outcome,
        who: String,
    },
}

impl SarEntry {
    pub fn reference(&self) -> &str {
        match self {
            SarEntry::Opened { reference, .. }
            | SarEntry::Extended { reference, .. }
            | SarEntry::Closed { reference, .. } => reference,
        }
    }
}

/// A request's state, folded from its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sar {
    pub reference: String,
    pub camera: String,
    pub from_ns: i64,
    pub to_ns: i64,
    pub received: String,
    pub due: String,
    pub hold: u64,
    pub extended_months: u8,
    pub closed: Option<Outcome>,
}

/// Every request in the register, by reference, in the order they were opened.
pub fn fold(entries: &[SarEntry]) -> Vec<Sar> {
    let mut out: Vec<Sar> = Vec::new();
    for e in entries {
        match e {
            SarEntry::Opened {
                reference,
                camera,
                from_ns,
                to_ns,
                received,
                due,
                hold,
                ..
            } => out.push(Sar {
                reference: reference.clone(),
                camera: camera.clone(),
                from_ns: *from_ns,
                to_ns: *to_ns,
                received: received.clone(),
                due: due.clone(),
                hold: *hold,
                extended_months: 0,
                closed: None,
            }),
            SarEntry::Extended {
                reference,
                months,
                due,
                ..
            } => {
                if let Some(s) = out.iter_mut().rev().find(|s| &s.reference == reference) {
                    s.extended_months = *months;
                    s.due = due.clone();
                }
            }
            SarEntry::Closed {
                reference, outcome, ..
            } => {
                if let Some(s) = out.iter_mut().rev().find(|s| &s.reference == reference) {
                    s.closed = Some(outcome.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        parse_date(s).unwrap()
    }

    #[test]
    fn a_calendar_month_to_the_next_working_day() {
        for (received, ext, want, why) in [
            (
                "2028-01-31",
                0,
                "2028-02-29",
                "31 January in a leap year: Tuesday 29 February",
            ),
            (
                "2027-01-31",
                0,
                "2027-03-01",
                "31 January: Sunday 28 February 2027, so Monday 1 March",
            ),
            (
                "2026-01-31",
                0,
                "2026-03-02",
                "31 January: Saturday 28 February 2026, so Monday 2 March",
            ),
            (
                "2026-11-30",
                0,
                "2026-12-30",
                "30 November: Wednesday 30 December",
            ),
            (
                "2026-11-25",
                0,
                "2026-12-29",
                "Christmas Day, a weekend, Boxing Day's substitute",
            ),
            (
                "2026-12-31",
                0,
                "2027-02-01",
                "the end of December: Sunday 31 January 2027",
            ),
            ("2026-12-15", 0, "2027-01-15", "December into January"),
            (
                "2026-09-10",
                0,
                "2026-10-12",
                "due on Saturday 10 October: Monday 12",
            ),
            ("2026-03-06", 0, "2026-04-07", "due on Easter Monday 2026"),
            (
                "2026-07-31",
                0,
                "2026-09-01",
                "due on the summer bank holiday, 31 August 2026",
            ),
            ("2026-08-15", 0, "2026-09-15", "an ordinary Tuesday"),
            (
                "2026-08-15",
                2,
                "2026-11-16",
                "extended by two months: Sunday 15 November",
            ),
            (
                "2026-11-30",
                1,
                "2027-02-01",
                "extended by one month: Saturday 30 January 2027",
            ),
        ] {
            assert_eq!(
                date_text(due(d(received), ext)),
                want,
                "{received} +{ext}: {why}"
            );
        }
        assert!(working_day(d("2026-12-30")));
        assert!(
            !working_day(d("2026-12-28")),
            "the substitute for Boxing Day 2026"
        );
        assert!(!working_day(d("2026-10-03")), "a Saturday");
        assert!(past_the_table(d("2029-01-10")));
    }

    #[test]
    fn the_register_folds_into_each_request() {
        let e = vec![
            SarEntry::Opened {
                reference: "SAR-1".into(),
                camera: "front".into(),
                from_ns: 1,
                to_ns: 2,
                received: "2026-11-30".into(),
                due: "2026-12-30".into(),
                hold: 4,
                who: "m".into(),
            },
            SarEntry::Extended {
                reference: "SAR-1".into(),
                months: 2,
                reason: "complex".into(),
                due: "2027-03-01".into(),
                who: "m".into(),
            },
        ];
        let f = fold(&e);
        assert_eq!(f[0].due, "2027-03-01");
        assert_eq!(f[0].extended_months, 2);
        assert!(f[0].closed.is_none());
    }
}
