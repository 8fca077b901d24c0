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
}

impl Link {
    pub const PERFECT: Link = Link {
        rate_bps: 0,
        delay: Duration::ZERO,
        loss: 0.0,
    };
}

/// Counters and the outage switch, shared with the relay's threads.
#[derive(Debug, Default)]
pub struct Stats {
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub dropped: AtomicU64,
    pub down: AtomicBool,
    stop: AtomicBool,
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

    /// Cuts the link (everything dropped both ways) or restores it.
    pub fn set_down(&self, down: bool) {
        self.stats.down.store(down, Ordering::SeqCst);
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
    // The time at which the link is free to start the next datagram (rate limit).
    let mut free_at = Instant::now();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(up);
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
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let lost = link.loss > 0.0 && (rng % 1_000_000) as f64 / 1_000_000.0 < link.loss;
        if stats.down.load(Ordering::SeqCst) || lost {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let now = Instant::now();
        let start = free_at.max(now);
        let tx = Duration::from_nanos(
            (n as u64 * 8)
                .saturating_mul(1_000_000_000)
                .checked_div(link.rate_bps)
                .unwrap_or(0),
        );
        free_at = start + tx;
        // A link with a queue: beyond a second of backlog, datagrams are dropped (tail drop).
        if free_at.saturating_duration_since(now) > Duration::from_secs(1) {
            free_at = start;
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // Counted once the link carries it (not when lost or tail-dropped).
        (if up {
            &stats.bytes_up
        } else {
            &stats.bytes_down
        })
        .fetch_add(n as u64, Ordering::Relaxed);
        queue.push_back((free_at + link.delay, buf[..n].to_vec()));
    }
}
