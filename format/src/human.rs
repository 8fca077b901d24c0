//! Sizes, spans and a store's status in words, for people (tools get the JSON). Pure: the
//! caller says how to write a time (UTC on the unit, the scheme's zone on an officer's machine).

use crate::Status;

/// `1.2 GB`, `340 MB`, `12 kB`, `512 B` (decimal units, as disks and sticks are sold).
pub fn bytes(n: u64) -> String {
    const UNITS: [(&str, f64); 4] = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (unit, size) in UNITS {
        let v = n as f64 / size;
        if v >= 1.0 {
            return if v >= 100.0 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{n} B")
}

/// A span in the largest units that say it: `2 d 4 h`, `3 h 12 min`, `12 min`, `45 s`.
pub fn span(ns: i64) -> String {
    let s = ns.unsigned_abs() / 1_000_000_000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    let sign = if ns < 0 { "-" } else { "" };
    match (d, h, m) {
        (0, 0, 0) => format!("{sign}{s} s"),
        (0, 0, m) => format!("{sign}{m} min"),
        (0, h, 0) => format!("{sign}{h} h"),
        (0, h, m) => format!("{sign}{h} h {m} min"),
        (d, 0, _) => format!("{sign}{d} d"),
        (d, h, _) => format!("{sign}{d} d {h} h"),
    }
}

/// The lines of a store's status for a person: disk, retention, footage, holds, each camera.
/// `time` writes an instant (ns since the epoch).
pub fn status_lines(s: &Status, time: &dyn Fn(i64) -> String) -> Vec<String> {
    let mut out = Vec::new();
    let share = if s.budget_bytes > 0 {
        format!(
            " ({:.0} %)",
            s.total_bytes as f64 * 100.0 / s.budget_bytes as f64
        )
    } else {
        String::new()
    };
    out.push(format!(
        "disk        {} of {} used{share}, {} segments",
        bytes(s.total_bytes),
        bytes(s.budget_bytes),
        s.segments
    ));
    out.push(match s.capacity_days {
        Some(c) if c < f64::from(s.retention_days) => format!(
            "retention   {} days configured; the disk holds only {c:.1} days at the current rate: footage older than that is overwritten",
            s.retention_days
        ),
        Some(c) => format!(
            "retention   {} days configured; the disk holds {c:.1} days at the current rate",
            s.retention_days
        ),
        None => format!(
            "retention   {} days configured (not enough footage yet to say what the disk holds)",
            s.retention_days
        ),
    });
    out.push(match (s.oldest_ns, s.newest_ns) {
        (Some(a), Some(b)) => format!("footage     {} to {}", time(a), time(b)),
        _ => "footage     none yet".into(),
    });
    out.push(if s.holds == 0 {
        "holds       none".into()
    } else {
        format!("holds       {} ({} held)", s.holds, bytes(s.held_bytes))
    });
    for c in &s.cameras {
        let held = match (c.oldest_start_ns, c.newest_end_ns) {
            (Some(a), Some(b)) => format!(", {} held", span(b - a)),
            _ => String::new(),
        };
        out.push(format!(
            "camera {:<12} newest footage {}{held}, {} in {} segments",
            c.camera,
            c.newest_end_ns.map_or("none".into(), time),
            bytes(c.bytes),
            c.segments
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_spans_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(12_345), "12.3 kB");
        assert_eq!(bytes(76_438_093_824), "76.4 GB");
        assert_eq!(bytes(340_000_000), "340 MB");
        assert_eq!(bytes(1_500_000_000_000), "1.5 TB");
        const S: i64 = 1_000_000_000;
        assert_eq!(span(45 * S), "45 s");
        assert_eq!(span(12 * 60 * S), "12 min");
        assert_eq!(span(3 * 3600 * S + 12 * 60 * S), "3 h 12 min");
        assert_eq!(span(2 * 86_400 * S + 4 * 3600 * S + 59 * S), "2 d 4 h");
        assert_eq!(span(35 * 86_400 * S), "35 d");
    }

    #[test]
    fn a_status_says_what_the_disk_holds_in_words() {
        let s = Status {
            segments: 10,
            total_bytes: 2_000_000_000,
            budget_bytes: 76_438_093_824,
            retention_days: 31,
            oldest_ns: Some(0),
            newest_ns: Some(86_400_000_000_000),
            capacity_days: Some(20.5),
            holds: 0,
            held_bytes: 0,
            cameras: vec![crate::CameraStatus {
                camera: "front".into(),
                segments: 10,
                bytes: 2_000_000_000,
                oldest_start_ns: Some(0),
                newest_end_ns: Some(86_400_000_000_000),
                previews: None,
            }],
            preview_interval_ns: None,
        };
        let lines = status_lines(&s, &|t| format!("t{}", t / 1_000_000_000));
        assert_eq!(
            lines[0],
            "disk        2.0 GB of 76.4 GB used (3 %), 10 segments"
        );
        assert!(lines[1].contains("holds only 20.5 days"), "{}", lines[1]);
        assert_eq!(lines[2], "footage     t0 to t86400");
        assert_eq!(lines[3], "holds       none");
        assert_eq!(
            lines[4],
            "camera front        newest footage t86400, 1 d held, 2.0 GB in 10 segments"
        );
    }
}
