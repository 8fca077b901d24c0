//! A fetch's progress, counted as bytes are written, and the bar `rdc` draws from it on a
//! terminal.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;

use crate::events::{Event, Events};

/// A fetch's progress: bytes done of the total, and the rate of this run, sent as
/// [`Event::Progress`] (at most four times a second) to whoever follows it.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    /// Bytes on hand per segment (several can be in flight at once).
    segments: std::collections::BTreeMap<u64, u64>,
    /// Bytes already on disk when this run started (resumed), left out of the rate.
    resumed: u64,
    start: Instant,
    last_sent: Option<Instant>,
    events: Events,
}

impl Progress {
    pub fn new(label: &str, total: u64, events: Events) -> Progress {
        Progress {
            label: label.into(),
            total,
            done: 0,
            segments: Default::default(),
            resumed: 0,
            start: Instant::now(),
            last_sent: None,
            events,
        }
    }

    /// Bytes of segment `seq` found on disk from an earlier run.
    pub fn resumed(&mut self, seq: u64, n: u64) {
        self.set(seq, n);
        self.resumed += n;
    }

    /// Corrects a segment's count to what is really on disk (after a dropped link).
    pub fn set(&mut self, seq: u64, n: u64) {
        let old = self.segments.insert(seq, n).unwrap_or(0);
        self.done = self.done + n - old;
    }

    /// Bytes of segment `seq` received now.
    pub fn add(&mut self, seq: u64, n: u64) {
        *self.segments.entry(seq).or_default() += n;
        self.done += n;
        let now = Instant::now();
        if self
            .last_sent
            .is_none_or(|t| now - t >= Duration::from_millis(250))
        {
            self.last_sent = Some(now);
            self.send();
        }
    }

    /// A segment is complete (and verified).
    pub fn segment_done(&mut self, seq: u64) {
        self.events.emit(&Event::SegmentVerified {
            label: self.label.clone(),
            seq,
        });
        self.send();
    }

    /// Every segment is on hand.
    pub fn finish(&self) {
        self.send();
        self.events.emit(&Event::Finished {
            label: self.label.clone(),
        });
    }

    /// The operation's events, to report beside the progress.
    pub fn events(&self) -> &Events {
        &self.events
    }

    fn send(&self) {
        self.events.emit(&Event::Progress {
            label: self.label.clone(),
            done: self.done.min(self.total),
            total: self.total,
            this_run: self.done.saturating_sub(self.resumed),
            elapsed_ms: self.start.elapsed().as_millis() as u64,
        });
    }
}

/// Counts the bytes written through it into a [`Progress`].
#[derive(Debug)]
pub struct Counting<W> {
    pub inner: W,
    pub seq: u64,
    pub progress: Arc<Mutex<Progress>>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counting<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            let seq = self.seq;
            self.progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add(seq, n as u64);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::render;

    #[test]
    fn counts_per_segment_and_corrects() {
        let mut p = Progress::new("front", 300, Events::ignore());
        p.resumed(1, 100);
        p.add(2, 60);
        p.add(3, 50);
        assert_eq!(p.done, 210);
        // Segment 2's link dropped with only 40 bytes on disk: the count follows the disk.
        p.set(2, 40);
        assert_eq!(p.done, 190);
        assert_eq!(p.done - p.resumed, 90);
    }

    #[test]
    fn bar_shows_share_bytes_rate_and_time_left() {
        // 10 of 40 MB, 10 MB of it this run in 8 s: 10 Mbit/s, 30 MB left = 24 s.
        let l = render(
            "front",
            10_000_000,
            40_000_000,
            10_000_000,
            Duration::from_secs(8),
            80,
        );
        assert!(l.starts_with("front ["), "{l}");
        assert!(l.contains(" 25% 10.0/40.0 MB 10.0 Mbit/s 0:24 left"), "{l}");
        assert_eq!(l.chars().count(), 80, "{l}");
        let bar = &l[l.find('[').unwrap() + 1..l.find(']').unwrap()];
        assert_eq!(bar.matches('#').count(), bar.len() / 4, "{bar}");
        // Resumed bytes are not counted in the rate.
        let l = render(
            "front",
            30_000_000,
            40_000_000,
            0,
            Duration::from_secs(1),
            80,
        );
        assert!(l.contains("0.0 Mbit/s --:-- left"), "{l}");
        let l = render(
            "front",
            40_000_000,
            40_000_000,
            40_000_000,
            Duration::from_secs(32),
            80,
        );
        let bar = &l[l.find('[').unwrap() + 1..l.find(']').unwrap()];
        assert!(l.contains("100%") && l.ends_with("done"), "{l}");
        assert!(bar.chars().all(|c| c == '#'), "{bar}");
    }
}
