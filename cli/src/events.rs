//! What a long operation (fetch, export, preview) reports while it runs. The operations print
//! nothing: they send [`Event`]s to an [`Events`] sink, and each front end renders them, the
//! terminal `rdc` as a progress bar on standard error ([`Events::terminal`]), the console as
//! a job's state that the browser follows.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One thing a running operation has to say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Bytes on hand of `total` (at most four times a second, and at every segment's end).
    /// `this_run` leaves out what an earlier run had fetched, so the rate is the link's.
    Progress {
        label: String,
        done: u64,
        total: u64,
        this_run: u64,
        elapsed_ms: u64,
    },
    /// A segment arrived whole and matches the unit's signed manifest.
    SegmentVerified { label: String, seq: u64 },
    /// The link dropped during segment `seq`; the fetch resumes from `at` after `retry_in_s`.
    LinkDropped {
        seq: u64,
        at: u64,
        of: u64,
        error: String,
        attempt: u32,
        attempts: u32,
        retry_in_s: u64,
    },
    /// Every segment of `label` is on hand and checked.
    Finished { label: String },
    /// The operation moved on to a step that takes a while (building the working copy ...).
    Step { what: String },
}

impl Event {
    /// A dropped link, as people read it: where, why, and when it is tried again.
    pub fn dropped_note(&self) -> Option<String> {
        let Event::LinkDropped {
            seq,
            at,
            of,
            error,
            attempt,
            attempts,
            retry_in_s,
        } = self
        else {
            return None;
        };
        Some(format!(
            "The link dropped during segment {seq} at {:.1} of {:.1} MB ({error}): resuming from there in {retry_in_s} s (attempt {attempt} of {attempts}).",
            *at as f64 / 1e6,
            *of as f64 / 1e6
        ))
    }

    /// The share done, 0 to 100, of a [`Event::Progress`].
    pub fn percent(done: u64, total: u64) -> f64 {
        (done as f64 * 100.0 / total.max(1) as f64).clamp(0.0, 100.0)
    }
}

/// Where an operation's events go.
#[derive(Clone)]
pub struct Events(Arc<dyn Fn(&Event) + Send + Sync>);

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    pub fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Events {
        Events(Arc::new(f))
    }

    /// Events nobody follows.
    pub fn ignore() -> Events {
        Events::new(|_| {})
    }

    /// The terminal's rendering: a redrawn bar on a terminal, a line per segment otherwise.
    pub fn terminal() -> Events {
        use std::io::IsTerminal as _;
        let tty = std::io::stderr().is_terminal();
        Events::new(move |e| render_on_terminal(e, tty))
    }

    pub fn emit(&self, e: &Event) {
        (self.0)(e)
    }
}

fn render_on_terminal(e: &Event, tty: bool) {
    match e {
        Event::Progress {
            label,
            done,
            total,
            this_run,
            elapsed_ms,
        } => {
            if tty {
                let line = render(
                    label,
                    *done,
                    *total,
                    *this_run,
                    Duration::from_millis(*elapsed_ms),
                    80,
                );
                eprint!("\r{line}");
            }
        }
        Event::SegmentVerified { .. } if tty => {}
        Event::SegmentVerified { label, seq } => {
            eprintln!("{label}: segment {seq} verified")
        }
        Event::LinkDropped { .. } => eprintln!("\n{}", e.dropped_note().unwrap_or_default()),
        Event::Finished { .. } if tty => eprintln!(),
        Event::Finished { .. } => {}
        Event::Step { what } => eprintln!("{what} ..."),
    }
}

/// One line of at most `width` characters: label, bar, percent, bytes, this run's rate and the
/// time left at that rate.
pub fn render(
    label: &str,
    done: u64,
    total: u64,
    this_run: u64,
    elapsed: Duration,
    width: usize,
) -> String {
    // A file fetched again (a preview asked for once more) can count past what was announced:
    // the total is then what was really moved, never "1.2 of 0.9 MB (134 %)".
    let total = total.max(done);
    let frac = (done as f64 / total.max(1) as f64).clamp(0.0, 1.0);
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        this_run as f64 / secs
    } else {
        0.0
    };
    let left = if done >= total {
        "done".to_string()
    } else if rate > 0.0 {
        let s = ((total - done) as f64 / rate).round() as u64;
        format!("{}:{:02} left", s / 60, s % 60)
    } else {
        "--:-- left".to_string()
    };
    let tail = format!(
        " {:>3.0}% {:.1}/{:.1} MB {:.1} Mbit/s {left}",
        frac * 100.0,
        done as f64 / 1e6,
        total as f64 / 1e6,
        rate * 8.0 / 1e6
    );
    let label: String = label.chars().take(16).collect();
    let bar_width = width
        .saturating_sub(label.chars().count() + tail.len() + 3)
        .max(10);
    let filled = (frac * bar_width as f64).floor() as usize;
    let mut bar = "#".repeat(filled);
    if filled < bar_width {
        bar.push('>');
        bar.push_str(&".".repeat(bar_width - filled - 1));
    }
    format!("{label} [{bar}]{tail}")
}
