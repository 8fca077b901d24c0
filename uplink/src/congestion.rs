//! The uplink's congestion controller: a window that keeps a small, fixed standing queue at
//! the bottleneck, measured as delay. Random loss is not read as congestion.
//!
//! Why not quinn's BBR (issue 11, BENCHMARKS.md): quinn paces every controller at
//! 1.25 × window / smoothed RTT, and its BBR sets the window to twice its bandwidth estimate
//! times the minimum RTT, with the estimate the largest of per-ACK delivery-rate samples. On a
//! unit whose CPU is shared with the recording, ACKs are processed in bunches, those samples
//! overstate the bottleneck, the window outgrows a small 4G queue, and up to half of what is
//! sent was dropped there and sent again (1.8 × the footage on the air). Cubic keeps the bytes
//! down but reads 4G's random loss as congestion (22 % of the link).
//!
//! Why not a window of `1.2 × bandwidth × minimum RTT` with a probe at 1.35 one interval in
//! eight (this module's first design): the pipe holds more than the minimum RTT says (that is
//! a small packet's; a full one adds its serialisation time, and the receiver's ACK of every
//! second packet one more), so at 2 Mbit/s and 60 ms the window settled where the link idled
//! 14 % of the time (82 % goodput); and where lost ACKs make the next acknowledge more, the
//! largest rate sample ran 8 % over the link, so each probe overfilled a 50 ms queue (drops
//! exactly every eight intervals).
//!
//! The window here is
//! `bandwidth × base RTT + bandwidth × target queue + ACK aggregation − trim`:
//! - bandwidth: the largest delivery rate, each over two intervals of at least
//!   [`MIN_INTERVAL`] and the base RTT, of the last [`SAMPLES`] intervals;
//! - base RTT: the least time any packet took from sent to acknowledged;
//! - target queue ([`target_queue`]): the queueing delay to keep at the bottleneck so that it
//!   never idles between ACKs, an eighth of the base RTT within 5-12 ms, at least two
//!   packets' serialisation;
//! - ACK aggregation (as BBR measures it): how far ACKs ran ahead of the bandwidth estimate,
//!   the most of recent intervals, at most 25 ms of the link: bytes the window holds that are
//!   no longer on the path;
//! - trim: the queue is measured, as the least RTT of each interval less the base RTT (the
//!   queue at its emptiest). While it outlasts the target with the link full, the trim grows
//!   by half the excess each interval; a shorter queue gives it back. It takes at most the two
//!   allowances, never the bandwidth-delay product, so a delay that is not a queue (ACKs
//!   handled late by a busy unit) cannot shrink the window to nothing;
//! - a path that becomes longer (a handover) looks like a queue that never drains: one over
//!   twice the target through [`STARVED`] intervals in a row moves the base RTT up.
//!
//! More bandwidth appearing drains the queue and raises the delivery rate past the estimate
//! (the window holds a target's worth more than the pipe), and the estimate follows; less
//! lengthens the queue, the trim takes it back and the estimate ages out. No probing above
//! the estimate, so no periodic overfilling. Startup is slow start (the window grows by what
//! each ACK acknowledges, doubling each round trip) left on delay: after [`QUEUED_ACKS`] ACKs
//! in a row took longer than the base RTT and the target, the link is full, its rate is what
//! those ACKs delivered, and the window becomes that rate's pipe and target. Leaving within a
//! few ACKs keeps the overshoot to a few packets, where doubling until the rate stops growing
//! overfills a 50 ms queue (a backstop still ends startup after three intervals without 25 %
//! growth).
//!
//! [`RateWindow`] is the sans-IO core (tested against a simulated 4G bottleneck);
//! [`RateWindowConfig`] plugs it into quinn.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory};

/// An interval (a delivery-rate sample) spans at least this long, and at least the base RTT.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The window while starting up grows by this times what each ACK acknowledges, less one:
/// it doubles each round trip.
pub const STARTUP_GAIN: f64 = 2.0;
/// Startup ends after this many ACKs in a row that show a queue longer than the target.
pub const QUEUED_ACKS: u32 = 8;
/// After this many intervals in a row with a queue over twice the target, the base RTT is
/// taken to have grown (more than [`SAMPLES`]: a stale estimate ages out first).
pub const STARVED: u32 = 15;
/// The bandwidth estimate is the largest delivery rate of the last this many intervals.
pub const SAMPLES: usize = 10;
/// The window before anything is measured, and its floor in packets.
const INITIAL_PACKETS: u64 = 10;
const MIN_PACKETS: u64 = 4;

/// The queueing delay the window keeps at the bottleneck: an eighth of the base RTT (for the
/// ACK timing of a busy unit), within 5-12 ms (a 4G queue can be as short as 50 ms, and bursts
/// ride on the target), and at least two packets at the link's rate (one ACK's worth), so that
/// the link never idles between ACKs.
pub fn target_queue(base_rtt: Duration, rate: u64, mtu: u64) -> Duration {
    let packets = Duration::from_nanos((2 * mtu * 1_000_000_000).checked_div(rate).unwrap_or(0));
    (base_rtt / 8)
        .clamp(Duration::from_millis(5), Duration::from_millis(12))
        .max(packets.min(Duration::from_millis(40)))
}

#[derive(Debug, Clone, Copy)]
struct Interval {
    start: Instant,
    acked: u64,
    limited: bool,
    /// The least sent-to-acked time of a packet acknowledged in the interval.
    rtt_lo: Duration,
}

/// The controller's state, fed ACKs and losses, without I/O.
#[derive(Debug, Clone)]
pub struct RateWindow {
    mtu: u64,
    base_rtt: Option<Duration>,
    interval: Option<Interval>,
    /// The previous interval: (span, bytes acked).
    previous: Option<(Duration, u64)>,
    /// Delivery rates (bytes per second) over two intervals, of the last [`SAMPLES`] intervals.
    samples: VecDeque<u64>,
    /// The bandwidth estimate: the largest of `samples`.
    bandwidth: u64,
    /// The queueing delay seen at the least loaded moment of the last interval.
    queue: Duration,
    /// The current ACK aggregation epoch: (start, bytes acked since).
    epoch: Option<(Instant, u64)>,
    /// How far ACKs ran ahead of the bandwidth estimate, the most of each of the last
    /// [`SAMPLES`] intervals (bytes).
    extra: VecDeque<u64>,
    extra_acked: u64,
    /// Bytes taken off the allowances while the queue outlasts the target.
    trim: u64,
    /// Intervals in a row with a queue over the target, and their least RTT (see
    /// [`RateWindow::rebase`]).
    starved: Option<(u32, Duration)>,
    startup: bool,
    /// ACKs in a row, in startup, that took longer than the base RTT and the target queue.
    queued_acks: u32,
    /// When the run of such ACKs began, and the bytes acknowledged since.
    queued: Option<(Instant, u64)>,
    startup_best: u64,
    flat_intervals: u32,
    window: u64,
}

impl RateWindow {
    pub fn new(mtu: u16) -> Self {
        let mtu = u64::from(mtu);
        RateWindow {
            mtu,
            base_rtt: None,
            interval: None,
            previous: None,
            samples: Default::default(),
            bandwidth: 0,
            queue: Duration::ZERO,
            epoch: None,
            extra: VecDeque::from([0]),
            extra_acked: 0,
            trim: 0,
            starved: None,
            startup: true,
            queued_acks: 0,
            queued: None,
            startup_best: 0,
            flat_intervals: 0,
            window: INITIAL_PACKETS * mtu,
        }
    }

    /// `bytes` sent at `sent` were acknowledged at `now`.
    pub fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, app_limited: bool) {
        let rtt = now.saturating_duration_since(sent);
        self.aggregation(now, bytes);
        let base = *self.base_rtt.get_or_insert(rtt);
        let base = base.min(rtt);
        self.base_rtt = Some(base);
        if self.startup {
            self.slow_start(now, rtt, base, bytes, app_limited);
        }
        let iv = self.interval.get_or_insert(Interval {
            start: now,
            acked: 0,
            limited: false,
            rtt_lo: rtt,
        });
        iv.acked += bytes;
        iv.limited |= app_limited;
        iv.rtt_lo = iv.rtt_lo.min(rtt);
        let span = now.saturating_duration_since(iv.start);
        if span < MIN_INTERVAL.max(base) {
            return;
        }
        let iv = *iv;
        self.interval = Some(Interval {
            start: now,
            acked: 0,
            limited: false,
            rtt_lo: Duration::MAX,
        });
        let this = rate_of(iv.acked, span);
        let (span2, acked2) = self.previous.unwrap_or((Duration::ZERO, 0));
        self.previous = Some((span, iv.acked));
        let rate = rate_of(iv.acked + acked2, span + span2);
        // An interval the application left idle says nothing about the path, unless it still
        // delivered more than the estimate.
        if !iv.limited || rate > self.bandwidth {
            self.samples.push_back(rate);
            if self.samples.len() > SAMPLES {
                self.samples.pop_front();
            }
            self.bandwidth = self.samples.iter().copied().max().unwrap_or(0);
        }
        self.extra.push_front(0);
        self.extra.truncate(SAMPLES);
        self.queue = iv.rtt_lo.saturating_sub(base);
        let target = target_queue(base, self.bandwidth, self.mtu);
        // The window is the bandwidth-delay product plus the allowances: the target queue and
        // the ACK aggregation. A queue that outlasts the target through an interval trims the
        // allowances (by half the excess each interval), a shorter one gives them back; the trim
        // never takes the window under the bandwidth-delay product, so a delay that is not a
        // queue (ACKs handled late) cannot shrink the window to nothing.
        let bw = self.bandwidth as f64;
        let allowance = (bw * target.as_secs_f64()) as u64 + self.extra_acked;
        // A queue is trimmed only while the link delivers about the estimate (it is full): when
        // trimming lowers the rate, the delay was not a queue, and the trim is given back.
        let full = this as f64 >= 0.9 * bw;
        if !self.startup && !iv.limited {
            self.rebase(target, iv.rtt_lo);
            if !full {
                self.trim /= 2;
            } else if self.queue > target {
                self.trim += (bw * (self.queue - target).as_secs_f64() / 2.0) as u64;
            } else {
                let back = bw * (target - self.queue).as_secs_f64() / 2.0;
                self.trim = self.trim.saturating_sub(back as u64);
            }
        }
        self.trim = self.trim.min(allowance);
        let steady = (bw * base.as_secs_f64()) as u64 + allowance - self.trim;
        if self.startup {
            // The backstop: the delivery rate stopped growing for three intervals.
            if this as f64 >= self.startup_best as f64 * 1.25 {
                self.startup_best = this;
                self.flat_intervals = 0;
            } else if !iv.limited {
                self.flat_intervals += 1;
                if self.flat_intervals >= 3 {
                    self.startup = false;
                    self.window = self.window.min(steady.max(MIN_PACKETS * self.mtu));
                }
            }
        } else {
            self.window = steady;
        }
        tracing::trace!(
            window = self.window,
            bandwidth = self.bandwidth,
            rate = this,
            queue_us = self.queue.as_micros() as u64,
            aggregation = self.extra_acked,
            trim = self.trim,
            startup = self.startup,
            limited = iv.limited,
            "congestion interval"
        );
        self.window = self.window.max(MIN_PACKETS * self.mtu);
    }

    /// The base RTT is the least any packet took, so a path that becomes longer (a handover, a
    /// route change) looks like a queue that never drains: the trim takes the allowances, the
    /// window `bandwidth × old base RTT` delivers less than the estimate, which then ages down,
    /// and so on. A queue of our own cannot outlast the trim, and a stale estimate (the link
    /// slowed) ages out in [`SAMPLES`] intervals; a delay over twice the target through
    /// [`STARVED`] intervals in a row is neither, and the base RTT becomes the least RTT of
    /// those intervals less the target. (A path longer by less than that is left to the trim:
    /// the window may then run a little short of the pipe.)
    fn rebase(&mut self, target: Duration, rtt_lo: Duration) {
        // Our own queue stays about the target; twice that for so long is not ours.
        if self.queue <= 2 * target {
            self.starved = None;
            return;
        }
        let (n, lo) = self.starved.get_or_insert((0, rtt_lo));
        *n += 1;
        *lo = (*lo).min(rtt_lo);
        if *n >= STARVED {
            let lo = *lo;
            tracing::debug!(
                from_us = self.base_rtt.map_or(0, |b| b.as_micros() as u64),
                to_us = lo.as_micros() as u64,
                "congestion: the path's base RTT grew"
            );
            // Less the target: whatever of the run's delay was our own queue stays measured as
            // one.
            let lo = lo.saturating_sub(target);
            self.base_rtt = Some(self.base_rtt.map_or(lo, |b| b.max(lo)));
            self.starved = None;
            self.trim = 0;
        }
    }

    /// Startup: the window grows by what each ACK acknowledges (doubling each round trip), until
    /// [`QUEUED_ACKS`] ACKs in a row took longer than the base RTT plus the target queue: the
    /// pipe is full and a queue is growing. What those ACKs delivered over their span is the
    /// link's rate: it seeds the bandwidth estimate, and the window becomes that rate's pipe and
    /// target queue. Exiting on delay, within a few ACKs, keeps
    /// the overshoot to a few packets, where doubling until the rate stops growing overfills a
    /// 50 ms queue.
    fn slow_start(
        &mut self,
        now: Instant,
        rtt: Duration,
        base: Duration,
        bytes: u64,
        app_limited: bool,
    ) {
        let target = target_queue(base, self.bandwidth, self.mtu);
        if rtt > base + target {
            let (since, acked) = self.queued.get_or_insert((now, 0));
            self.queued_acks += 1;
            // The bytes acknowledged after the first of the run, over the time since.
            if *since < now {
                *acked += bytes;
            }
        } else {
            self.queued_acks = 0;
            self.queued = None;
        }
        if let Some((since, acked)) = self.queued
            && self.queued_acks >= QUEUED_ACKS
            && now >= since + Duration::from_millis(10)
        {
            // With a queue throughout, the link was busy: what it delivered meanwhile is its
            // rate.
            let rate = rate_of(acked, now - since);
            tracing::debug!(
                window = self.window,
                rate,
                over_us = (now - since).as_micros() as u64,
                base_us = base.as_micros() as u64,
                target_us = target.as_micros() as u64,
                "congestion startup ends: a queue formed"
            );
            self.startup = false;
            // What ACKs ran ahead of a bandwidth estimate that lagged the growth is no measure
            // of aggregation.
            self.extra = VecDeque::from([0]);
            self.extra_acked = 0;
            self.samples.push_back(rate);
            self.bandwidth = self.bandwidth.max(rate);
            self.window = self
                .window
                .min((rate as f64 * (base + target).as_secs_f64()) as u64)
                .max(MIN_PACKETS * self.mtu);
        } else if !app_limited {
            self.window += (bytes as f64 * (STARTUP_GAIN - 1.0)) as u64;
        }
    }

    /// ACK aggregation, as BBR measures it: how many more bytes were acknowledged since the
    /// epoch began than the bandwidth estimate accounts for. ACKs that come in bunches (the
    /// receiver's every second packet, a unit busy recording, a 4G scheduler) hold that much
    /// in flight that is no longer on the path; the window allows for it.
    fn aggregation(&mut self, now: Instant, bytes: u64) {
        let (start, acked) = self.epoch.get_or_insert((now, 0));
        let expected =
            (self.bandwidth as f64 * now.saturating_duration_since(*start).as_secs_f64()) as u64;
        if *acked <= expected {
            *start = now;
            *acked = 0;
        }
        *acked += bytes;
        let expected =
            (self.bandwidth as f64 * now.saturating_duration_since(*start).as_secs_f64()) as u64;
        // At most what 25 ms of the link carries (the receiver's longest ACK delay): more is a
        // stall or an outage, not a bunch.
        let extra = acked
            .saturating_sub(expected)
            .min(self.bandwidth / 40)
            .min(self.window);
        if let Some(e) = self.extra.front_mut() {
            *e = (*e).max(extra);
        }
        self.extra_acked = self.extra.iter().copied().max().unwrap_or(0);
    }

    /// Packets were lost. Random loss on a radio link is not congestion: only persistent
    /// congestion (everything sent over a period lost, e.g. an outage) starts over.
    pub fn on_loss(&mut self, persistent: bool) {
        if persistent {
            let mtu = self.mtu as u16;
            let base = self.base_rtt;
            *self = RateWindow::new(mtu);
            self.base_rtt = base;
        }
    }

    pub fn set_mtu(&mut self, mtu: u16) {
        self.mtu = u64::from(mtu);
        self.window = self.window.max(MIN_PACKETS * self.mtu);
    }

    /// Bytes that may be in flight.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// The bandwidth estimate, bytes per second.
    pub fn bandwidth(&self) -> u64 {
        self.bandwidth
    }

    /// The least RTT of any packet so far.
    pub fn base_rtt(&self) -> Option<Duration> {
        self.base_rtt
    }

    pub fn in_startup(&self) -> bool {
        self.startup
    }
}

fn rate_of(bytes: u64, span: Duration) -> u64 {
    (u128::from(bytes) * 1_000_000_000 / span.as_nanos().max(1)) as u64
}

impl Controller for RateWindow {
    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        _rtt: &quinn_proto::RttEstimator,
    ) {
        RateWindow::on_ack(self, now, sent, bytes, app_limited);
    }

    fn on_congestion_event(
        &mut self,
        _now: Instant,
        _sent: Instant,
        is_persistent_congestion: bool,
        _lost_bytes: u64,
    ) {
        self.on_loss(is_persistent_congestion);
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.set_mtu(new_mtu);
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn initial_window(&self) -> u64 {
        INITIAL_PACKETS * self.mtu
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Builds a [`RateWindow`] for each connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateWindowConfig;

impl ControllerFactory for RateWindowConfig {
    fn build(self: Arc<Self>, _now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(RateWindow::new(current_mtu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: u16 = 1452;

    /// A 4G bottleneck: one way's rate and tail-drop queue, the round trip's propagation delay,
    /// random loss each way, and how a busy unit handles ACKs.
    #[derive(Debug, Clone, Copy)]
    struct Path {
        /// Bytes per second.
        rate: u64,
        rtt: Duration,
        queue: Duration,
        loss: f64,
        /// The sender gets to ACKs this long after they arrive on average (a CPU busy
        /// recording; a random wait); zero: at once.
        ack_bunch: Duration,
    }

    impl Path {
        fn new(mbit: f64, rtt_ms: u64, queue_ms: u64, loss: f64) -> Path {
            Path {
                rate: (mbit * 1e6 / 8.0) as u64,
                rtt: Duration::from_millis(rtt_ms),
                queue: Duration::from_millis(queue_ms),
                loss,
                ack_bunch: Duration::ZERO,
            }
        }

        fn bdp(&self) -> f64 {
            self.rate as f64 * self.rtt.as_secs_f64()
        }
    }

    impl Outcome {
        /// The share of what was sent that the full queue dropped.
        fn dropped(&self) -> f64 {
            self.queue_drops as f64 / self.sent.max(1) as f64
        }
    }

    #[derive(Debug, Default)]
    struct Outcome {
        /// Share of the link's time spent delivering, after the warm-up.
        utilisation: f64,
        /// Packets the full queue dropped after the warm-up.
        queue_drops: u64,
        /// Packets sent after the warm-up.
        sent: u64,
        /// The longest backlog after the warm-up.
        max_queue: Duration,
    }

    /// A bulk sender under `c`, paced as quinn paces (1.25 × window / smoothed RTT, bursts of
    /// up to ten packets), through `path` for `secs`, in steps of 100 µs. The receiver ACKs every
    /// second packet (or after 25 ms), each ACK covering everything received (as QUIC's ranges
    /// do, so a lost ACK's news comes with the next); a packet three behind the largest acked is
    /// declared lost. Counts what the bottleneck did after `warmup` seconds.
    /// A controller and the simulated clock it has reached, so that a test can change the path
    /// under a running controller.
    struct Sim {
        c: RateWindow,
        clock: Instant,
    }

    impl Sim {
        fn new() -> Sim {
            Sim {
                c: RateWindow::new(MTU),
                clock: Instant::now(),
            }
        }

        fn run(&mut self, path: Path, secs: f64, warmup: f64, seed: u64) -> Outcome {
            simulate(&mut self.c, &mut self.clock, path, secs, warmup, seed)
        }
    }

    fn simulate(
        c: &mut RateWindow,
        clock: &mut Instant,
        path: Path,
        secs: f64,
        warmup: f64,
        seed: u64,
    ) -> Outcome {
        let t0 = *clock;
        let dt = Duration::from_micros(100);
        let (secs, warmup) = (
            Duration::from_secs_f64(secs),
            Duration::from_secs_f64(warmup),
        );
        let mtu = u64::from(MTU);
        let tx = Duration::from_nanos(mtu * 1_000_000_000 / path.rate);
        let mut rng = seed | 1;
        let mut lose = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % 1_000_000) as f64 / 1e6 < path.loss
        };
        // Sender.
        let mut in_flight: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut next_pn = 0u64;
        let mut srtt = path.rtt;
        let (mut tokens, mut last_refill) = (10 * mtu, t0);
        // Bottleneck and receiver.
        let mut free_at = t0;
        let mut to_receiver: VecDeque<(Instant, u64)> = VecDeque::new();
        let mut received: Vec<u64> = Vec::new();
        let mut unacked_since: Option<Instant> = None;
        let mut unacked = 0;
        let mut acks: VecDeque<(Instant, usize)> = VecDeque::new();
        let mut processed = 0usize;
        let mut out = Outcome::default();
        let mut busy = Duration::ZERO;
        let mut t = t0;
        let mut jitter = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        while t < t0 + secs {
            t += dt;
            let warm = t >= t0 + warmup;
            // The receiver.
            while to_receiver.front().is_some_and(|(at, _)| *at <= t) {
                let (_, pn) = to_receiver.pop_front().expect("checked");
                received.push(pn);
                unacked += 1;
                unacked_since.get_or_insert(t);
                if warm {
                    busy += tx;
                }
            }
            if unacked >= 2 || unacked_since.is_some_and(|s| t >= s + Duration::from_millis(25)) {
                if !lose() {
                    acks.push_back((t + path.rtt / 2, received.len()));
                }
                unacked = 0;
                unacked_since = None;
            }
            // The sender, handling ACKs when its CPU gets to them.
            let handles = path.ack_bunch.is_zero() || {
                jitter ^= jitter << 13;
                jitter ^= jitter >> 7;
                jitter ^= jitter << 17;
                (jitter % 1_000_000) as f64 / 1e6 < dt.as_secs_f64() / path.ack_bunch.as_secs_f64()
            };
            while handles && acks.front().is_some_and(|(at, _)| *at <= t) {
                let (_, upto) = acks.pop_front().expect("checked");
                let mut largest = None;
                for &pn in &received[processed.min(upto)..upto] {
                    if let Some(i) = in_flight.iter().position(|(p, _)| *p == pn) {
                        let (_, sent) = in_flight.remove(i).expect("found");
                        let rtt = t.saturating_duration_since(sent);
                        srtt = (srtt * 7 + rtt) / 8;
                        c.on_ack(t, sent, mtu, false);
                    }
                    largest = largest.max(Some(pn));
                }
                processed = processed.max(upto);
                if let Some(l) = largest {
                    let before = in_flight.len();
                    in_flight.retain(|(p, _)| p + 3 > l);
                    if in_flight.len() < before {
                        c.on_loss(false);
                    }
                }
            }
            // What no ACK answers in two RTTs is lost too (QUIC's probe timeout finds it).
            let before = in_flight.len();
            in_flight.retain(|(_, sent)| {
                t.saturating_duration_since(*sent) < srtt * 2 + Duration::from_millis(50)
            });
            if in_flight.len() < before {
                c.on_loss(false);
            }
            // Pacing, then the window.
            let refill =
                c.window() as f64 * 1.25 * (t - last_refill).as_secs_f64() / srtt.as_secs_f64();
            let cap = (c.window() as f64 * 0.002 / srtt.as_secs_f64()) as u64;
            tokens = (tokens + refill as u64).min(cap.clamp(10 * mtu, 256 * mtu));
            last_refill = t;
            while tokens >= mtu && (in_flight.len() as u64 + 1) * mtu <= c.window() {
                tokens -= mtu;
                let pn = next_pn;
                next_pn += 1;
                in_flight.push_back((pn, t));
                if warm {
                    out.sent += 1;
                }
                if lose() {
                    continue;
                }
                let start = free_at.max(t);
                let backlog = (start + tx).saturating_duration_since(t);
                if backlog > path.queue {
                    if warm {
                        out.queue_drops += 1;
                    }
                    continue;
                }
                if warm {
                    out.max_queue = out.max_queue.max(backlog);
                }
                free_at = start + tx;
                to_receiver.push_back((free_at + path.rtt / 2, pn));
            }
        }
        out.utilisation = busy.as_secs_f64() / (secs - warmup).as_secs_f64();
        *clock = t;
        out
    }

    #[test]
    fn a_slow_link_is_filled_with_a_short_queue() {
        // 2 Mbit/s, 60 ms: the first design left this link 14 % idle.
        let path = Path::new(2.0, 60, 200, 0.0);
        let mut s = Sim::new();
        let o = s.run(path, 20.0, 3.0, 7);
        assert!(!s.c.in_startup());
        assert!(o.utilisation >= 0.97, "{o:?}");
        assert!(o.max_queue <= Duration::from_millis(40), "{o:?}");
        assert_eq!(o.queue_drops, 0, "{o:?}");
        let w = s.c.window() as f64 / path.bdp();
        assert!((1.0..=1.6).contains(&w), "window {w:.2} x BDP");
    }

    #[test]
    fn random_loss_does_not_shrink_the_window_and_a_small_queue_is_not_overfilled() {
        // 2 Mbit/s, 150 ms, 2 % loss each way, a 50 ms queue: the hardest setting of issue 11.
        let path = Path::new(2.0, 150, 50, 0.02);
        let mut s = Sim::new();
        let o = s.run(path, 30.0, 4.0, 11);
        assert!(o.dropped() <= 0.001, "{o:?}");
        // 2 % of what is sent is lost before the queue: the link carries the rest.
        assert!(o.utilisation >= 0.93, "{o:?}");
        // 10 Mbit/s, 60 ms, 1 % loss, 50 ms queue.
        let path = Path::new(10.0, 60, 50, 0.01);
        let mut s = Sim::new();
        let o = s.run(path, 20.0, 3.0, 13);
        assert_eq!(o.queue_drops, 0, "{o:?}");
        assert!(o.utilisation >= 0.95, "{o:?}");
    }

    #[test]
    fn acks_handled_in_bunches_do_not_overfill_the_queue() {
        // A unit busy recording gets to ACKs 10 ms late on average (12 kB of the link).
        let path = Path {
            ack_bunch: Duration::from_millis(10),
            ..Path::new(10.0, 60, 50, 0.01)
        };
        let mut s = Sim::new();
        let o = s.run(path, 20.0, 3.0, 17);
        assert!(o.dropped() <= 0.002, "{o:?}");
        assert!(o.utilisation >= 0.9, "{o:?}");
        let w = s.c.window() as f64 / path.bdp();
        assert!(w <= 1.8, "window {w:.2} x BDP");
    }

    #[test]
    fn more_bandwidth_is_found_and_less_is_followed() {
        let mut s = Sim::new();
        s.run(Path::new(2.0, 60, 200, 0.0), 5.0, 0.0, 19);
        let o = s.run(Path::new(10.0, 60, 200, 0.0), 10.0, 5.0, 23);
        assert!(o.utilisation >= 0.95, "after 2 then 10 Mbit/s: {o:?}");
        // Back to 2 Mbit/s with a 50 ms queue: the window comes down within two seconds.
        let o = s.run(Path::new(2.0, 60, 50, 0.0), 10.0, 2.0, 29);
        assert_eq!(o.queue_drops, 0, "after 10 then 2 Mbit/s: {o:?}");
        assert!(o.utilisation >= 0.95, "{o:?}");
    }

    #[test]
    fn a_path_that_becomes_longer_is_followed() {
        // A handover doubles the RTT: without a new base RTT the window would stay a 60 ms
        // pipe's and the estimate would age down with it.
        let mut s = Sim::new();
        s.run(Path::new(10.0, 60, 200, 0.0), 5.0, 0.0, 37);
        let o = s.run(Path::new(10.0, 120, 200, 0.0), 15.0, 5.0, 41);
        assert!(o.utilisation >= 0.95, "{o:?}");
        assert!(
            s.c.base_rtt()
                .is_some_and(|b| b >= Duration::from_millis(105))
        );
        // And back: the shorter path is the base at once, and the queue stays short.
        let o = s.run(Path::new(10.0, 60, 50, 0.0), 10.0, 2.0, 43);
        assert_eq!(o.queue_drops, 0, "{o:?}");
        assert!(o.utilisation >= 0.95, "{o:?}");
    }

    #[test]
    fn an_outage_starts_over_and_random_loss_does_not() {
        let mut s = Sim::new();
        s.run(Path::new(10.0, 60, 200, 0.0), 5.0, 0.0, 31);
        let w = s.c.window();
        s.c.on_loss(false);
        assert_eq!(s.c.window(), w);
        s.c.on_loss(true);
        assert!(s.c.in_startup());
        assert_eq!(s.c.window(), INITIAL_PACKETS * u64::from(MTU));
        assert!(s.c.base_rtt().is_some(), "the path's base RTT is kept");
    }

    #[test]
    fn the_target_queue_is_an_eighth_of_the_rtt_within_bounds() {
        let ms = Duration::from_millis;
        let mtu = u64::from(MTU);
        assert_eq!(
            target_queue(ms(60), 1_250_000, mtu),
            ms(7) + Duration::from_micros(500)
        );
        assert_eq!(target_queue(ms(20), 1_250_000, mtu), ms(5));
        assert_eq!(target_queue(ms(300), 1_250_000, mtu), ms(12));
        // At 2 Mbit/s two packets take 11.6 ms.
        let slow = target_queue(ms(60), 250_000, mtu);
        assert!(slow > ms(11) && slow < ms(12), "{slow:?}");
    }
}
