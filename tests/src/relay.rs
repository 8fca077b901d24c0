//! A UDP relay on loopback that behaves like a poor 4G link: a rate limit, a one-way delay,
//! random loss, and a switch that drops everything (an outage). It counts the bytes it carries,
//! so a test can compare what crossed the "air" with the footage delivered.
//!
//! The kernel here has no netem, so the link is emulated in userspace: one thread per direction.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the link behaves.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Bits per second in each direction (0: unlimited).
    pub rate_bps: u64,
    /// One-way delay.
    pub delay: Duration,
    /// Probability of losing each datagram.
    pub loss: f64,
    /// The most backlog the link's queue holds, as time to send it; a packet beyond it is
    /// dropped (tail drop). 4G base stations queue from tens of milliseconds to a second.
    pub queue: Duration,
}

impl Link {
    pub const PERFECT: Link = Link {
        rate_bps: 0,
        delay: Duration::ZERO,
        loss: 0.0,
        queue: Duration::from_secs(1),
    };
}

/// Counters and the outage switch, shared with the relay's threads.
#[derive(Debug, Default)]
pub struct Stats {
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    /// Bytes the two ends sent into the link, including what it then lost or dropped.
    pub bytes_offered: AtomicU64,
    pub dropped: AtomicU64,
    /// The largest IP packet offered (packet-level links only).
    pub max_packet: AtomicU64,
    /// IPv4 fragments offered (packet-level links only).
    pub fragments: AtomicU64,
    pub down: AtomicBool,
    stop: AtomicBool,
    /// When set, every packet offered is recorded in `trace` (for benchmarks that look for
    /// stalls).
    pub tracing: AtomicBool,
    pub trace: Mutex<Vec<Offered>>,
}

/// Why the link did not deliver a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dropped {
    /// Random loss, or an outage.
    Lost,
    /// The queue was full (tail drop).
    QueueFull,
}

/// A packet offered to the link, as traced.
#[derive(Debug, Clone, Copy)]
pub struct Offered {
    pub at: Instant,
    pub up: bool,
    pub bytes: u32,
    /// When it arrives at the far end; `None` if it was lost or dropped.
    pub arrives: Option<Instant>,
    /// It was dropped because the queue was full (not lost at random or to an outage).
    pub queue_full: bool,
}

impl Stats {
    /// Cuts the link (everything dropped both ways) or restores it.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

/// A running relay. Clients talk to [`Relay::addr`]; it forwards to the server.
#[derive(Debug)]
pub struct Relay {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
}

impl Relay {
    pub fn start(server: SocketAddr, link: Link) -> std::io::Result<Relay> {
        let front = UdpSocket::bind("127.0.0.1:0")?;
        let back = UdpSocket::bind("127.0.0.1:0")?;
        back.connect(server)?;
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(50)))?;
        }
        let addr = front.local_addr()?;
        let stats = Arc::new(Stats::default());
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let (front2, back2) = (front.try_clone()?, back.try_clone()?);
        {
            let (stats, client) = (stats.clone(), client.clone());
            std::thread::spawn(move || {
                pump(
                    &front,
                    link,
                    &stats,
                    true,
                    |buf| {
                        let _ = back.send(buf);
                    },
                    |from| *client.lock().unwrap() = Some(from),
                )
            });
        }
        {
            let stats = stats.clone();
            std::thread::spawn(move || {
                pump(
                    &back2,
                    link,
                    &stats,
                    false,
                    |buf| {
                        if let Some(c) = *client.lock().unwrap() {
                            let _ = front2.send_to(buf, c);
                        }
                    },
                    |_| {},
                )
            });
        }
        Ok(Relay { addr, stats })
    }

    pub fn bytes(&self) -> u64 {
        self.stats.bytes_up.load(Ordering::SeqCst) + self.stats.bytes_down.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stats.stop.store(true, Ordering::SeqCst);
    }
}

/// Receives from `sock`, applies the link, and hands datagrams to `send` when they are due.
fn pump(
    sock: &UdpSocket,
    link: Link,
    stats: &Stats,
    up: bool,
    send: impl Fn(&[u8]),
    mut saw: impl FnMut(SocketAddr),
) {
    let mut buf = vec![0u8; 65_536];
    let mut queue: std::collections::VecDeque<(Instant, Vec<u8>)> = Default::default();
    let mut shaper = Shaper::new(link, up);
    while !stats.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        while queue.front().is_some_and(|(t, _)| *t <= now) {
            let (_, d) = queue.pop_front().expect("checked");
            send(&d);
        }
        let wait = queue.front().map_or(Duration::from_millis(20), |(t, _)| {
            t.saturating_duration_since(now)
                .max(Duration::from_micros(200))
        });
        let _ = sock.set_read_timeout(Some(wait.min(Duration::from_millis(20))));
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        saw(from);
        if let Some(due) = shaper.admit(n, Instant::now(), stats) {
            queue.push_back((due, buf[..n].to_vec()));
        }
    }
}

/// The link's behaviour for one direction, without I/O: decides for each packet whether it is
/// lost, and when it arrives at the far end. Shared by the UDP relay and the packet-level
/// link in [`crate::tunlink`], so QUIC and TCP meet the same link.
#[derive(Debug)]
pub struct Shaper {
    link: Link,
    up: bool,
    /// The time at which the link is free to start the next packet (rate limit).
    free_at: Instant,
    rng: u64,
}

impl Shaper {
    pub fn new(link: Link, up: bool) -> Shaper {
        Shaper {
            link,
            up,
            free_at: Instant::now(),
            rng: 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(up),
        }
    }

    /// A packet of `n` bytes offered to the link at `now`: `None` if it is lost (random loss,
    /// an outage, or a full queue), else the time it arrives. Arrival times never go backwards.
    pub fn admit(&mut self, n: usize, now: Instant, stats: &Stats) -> Option<Instant> {
        let fate = self.decide(n, now, stats);
        let arrives = fate.ok();
        if stats.tracing.load(Ordering::Relaxed) {
            stats
                .trace
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Offered {
                    at: now,
                    up: self.up,
                    bytes: n as u32,
                    arrives,
                    queue_full: fate == Err(Dropped::QueueFull),
                });
        }
        arrives
    }

    /// When the packet arrives, or why it does not.
    fn decide(&mut self, n: usize, now: Instant, stats: &Stats) -> Result<Instant, Dropped> {
        stats.bytes_offered.fetch_add(n as u64, Ordering::Relaxed);
        let rng = &mut self.rng;
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let lost = self.link.loss > 0.0 && (*rng % 1_000_000) as f64 / 1_000_000.0 < self.link.loss;
        if stats.down.load(Ordering::SeqCst) || lost {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(Dropped::Lost);
        }
        let start = self.free_at.max(now);
        let tx = Duration::from_nanos(
            (n as u64 * 8)
                .saturating_mul(1_000_000_000)
                .checked_div(self.link.rate_bps)
                .unwrap_or(0),
        );
        // A link with a queue: beyond its backlog, packets are dropped (tail drop).
        if (start + tx).saturating_duration_since(now) > self.link.queue {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(Dropped::QueueFull);
        }
        self.free_at = start + tx;
        // Counted once the link carries it (not when lost or tail-dropped).
        (if self.up {
            &stats.bytes_up
        } else {
            &stats.bytes_down
        })
        .fetch_add(n as u64, Ordering::Relaxed);
        Ok(self.free_at + self.link.delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaper_paces_delays_and_drops() {
        let stats = Stats::default();
        let link = Link {
            rate_bps: 8_000_000,
            delay: Duration::from_millis(30),
            loss: 0.0,
            queue: Duration::from_secs(1),
        };
        let mut s = Shaper::new(link, true);
        let t0 = Instant::now();
        // 1000 bytes at 8 Mbit/s take 1 ms on the air, then 30 ms of delay.
        assert_eq!(
            s.admit(1000, t0, &stats),
            Some(t0 + Duration::from_millis(31))
        );
        assert_eq!(
            s.admit(1000, t0, &stats),
            Some(t0 + Duration::from_millis(32))
        );
        // A second of backlog fills the queue; the next packet is dropped.
        for _ in 0..998 {
            assert!(s.admit(1000, t0, &stats).is_some());
        }
        assert_eq!(s.admit(1000, t0, &stats), None);
        assert_eq!(stats.dropped.load(Ordering::SeqCst), 1);
        assert_eq!(stats.bytes_up.load(Ordering::SeqCst), 1_000_000);
        // A 50 ms queue holds 50 ms of backlog.
        let mut short = Shaper::new(
            Link {
                queue: Duration::from_millis(50),
                ..link
            },
            true,
        );
        // (Offered after the shaper was made: its link is free from then.)
        let t1 = Instant::now() + Duration::from_millis(1);
        let admitted = (0..100)
            .filter(|_| short.admit(1000, t1, &stats).is_some())
            .count();
        assert_eq!(admitted, 50);
        // An outage drops everything; loss drops about its share.
        stats.down.store(true, Ordering::SeqCst);
        assert_eq!(s.admit(10, t0 + Duration::from_secs(5), &stats), None);
        stats.down.store(false, Ordering::SeqCst);
        let mut lossy = Shaper::new(
            Link {
                loss: 0.01,
                ..Link::PERFECT
            },
            false,
        );
        let lost = (0..100_000)
            .filter(|_| lossy.admit(1200, t0, &stats).is_none())
            .count();
        assert!((800..1200).contains(&lost), "{lost} of 100000 lost at 1 %");
    }
}
