//! The uplink's congestion controller: a window of a little more than the path's
//! bandwidth-delay product, with the bandwidth measured over whole intervals of at least
//! [`MIN_INTERVAL`] (never from one ACK to the next), and random loss not read as congestion.
//!
//! Why not quinn's BBR (issue 11, BENCHMARKS.md): quinn paces every controller at
//! 1.25 × window / smoothed RTT, and its BBR sets the window to twice its bandwidth estimate
//! times the minimum RTT, with the estimate the largest of per-ACK delivery-rate samples. On a
//! unit whose CPU is shared with the recording, ACKs are processed in bunches, those samples
//! overstate the bottleneck, the window outgrows a small 4G queue, and up to half of what is
//! sent was dropped there and sent again (1.8 × the footage on the air). Cubic keeps the bytes
//! down but reads 4G's random loss as congestion (22 % of the link). Here the window is
//! [`GAIN`] × bandwidth × minimum RTT, so at most a fifth of an RTT waits in the queue;
//! one interval in [`PROBE_EVERY`] uses [`PROBE_GAIN`] to find bandwidth that has appeared.
//! Startup grows the window at [`STARTUP_GAIN`] per interval, and holds it at [`PROBE_GAIN`]
//! from the first interval without growth until the exit is confirmed.
//!
//! [`RateWindow`] is the sans-IO core (tested on synthetic ACK streams); [`RateWindowConfig`]
//! plugs it into quinn.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory};

/// A delivery-rate sample spans at least this long (and at least the minimum RTT): an ACK
/// bunch late by a few milliseconds then moves the estimate by a few percent, not double.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The window in the steady state, as a multiple of the bandwidth-delay product.
pub const GAIN: f64 = 1.2;
/// The window while probing for more bandwidth.
pub const PROBE_GAIN: f64 = 1.35;
/// The window while starting up: the delivery rate can double each interval.
pub const STARTUP_GAIN: f64 = 2.0;
/// One interval in this many probes.
pub const PROBE_EVERY: u64 = 8;
/// The bandwidth estimate is the largest sample of the last this many intervals.
pub const SAMPLES: usize = 10;
/// The window before anything is measured, and its floor in packets.
const INITIAL_PACKETS: u64 = 10;
const MIN_PACKETS: u64 = 4;

/// The controller's state, fed ACKs and losses, without I/O.
#[derive(Debug, Clone)]
pub struct RateWindow {
    mtu: u64,
    min_rtt: Option<Duration>,
    interval: Option<(Instant, u64, bool)>,
    samples: VecDeque<u64>,
    /// Bytes per second.
    bandwidth: u64,
    startup: bool,
    startup_best: u64,
    flat_intervals: u32,
    intervals: u64,
    window: u64,
}

impl RateWindow {
    pub fn new(mtu: u16) -> Self {
        let mtu = u64::from(mtu);
        RateWindow {
            mtu,
            min_rtt: None,
            interval: None,
            samples: VecDeque::new(),
            bandwidth: 0,
            startup: true,
            startup_best: 0,
            flat_intervals: 0,
            intervals: 0,
            window: INITIAL_PACKETS * mtu,
        }
    }

    /// `bytes` were acknowledged at `now`; `min_rtt` is the path's minimum RTT so far.
    pub fn on_ack(&mut self, now: Instant, bytes: u64, app_limited: bool, min_rtt: Duration) {
        if !min_rtt.is_zero() {
            self.min_rtt = Some(self.min_rtt.map_or(min_rtt, |m| m.min(min_rtt)));
        }
        let (start, acked, limited) = self.interval.get_or_insert((now, 0, false));
        *acked += bytes;
        *limited |= app_limited;
        let span = now.saturating_duration_since(*start);
        let long_enough = MIN_INTERVAL.max(self.min_rtt.unwrap_or(Duration::ZERO));
        if span < long_enough {
            return;
        }
        let rate = (u128::from(*acked) * 1_000_000_000 / span.as_nanos().max(1)) as u64;
        let limited = *limited;
        self.interval = Some((now, 0, false));
        // An interval the application left idle says nothing about the path, unless it still
        // delivered more than the estimate.
        if !limited || rate > self.bandwidth {
            self.samples.push_back(rate);
            if self.samples.len() > SAMPLES {
                self.samples.pop_front();
            }
            self.bandwidth = self.samples.iter().copied().max().unwrap_or(0);
        }
        self.intervals += 1;
        if self.startup {
            if self.bandwidth as f64 >= self.startup_best as f64 * 1.25 {
                self.startup_best = self.bandwidth;
                self.flat_intervals = 0;
            } else {
                self.flat_intervals += 1;
                if self.flat_intervals >= 3 {
                    self.startup = false;
                }
            }
        }
        self.update_window();
    }

    /// Packets were lost. Random loss on a radio link is not congestion: only persistent
    /// congestion (everything sent over a period lost, e.g. an outage) starts over.
    pub fn on_loss(&mut self, persistent: bool) {
        if persistent {
            let mtu = self.mtu as u16;
            let min_rtt = self.min_rtt;
            *self = RateWindow::new(mtu);
            self.min_rtt = min_rtt;
        }
    }

    pub fn set_mtu(&mut self, mtu: u16) {
        self.mtu = u64::from(mtu);
        self.update_window();
    }

    fn update_window(&mut self) {
        let Some(rtt) = self.min_rtt else { return };
        // Once an interval of startup shows no growth, the window stops doubling while the
        // next ones confirm it: the queue is not overfilled for the intervals the exit takes.
        let gain = if self.startup && self.flat_intervals == 0 {
            STARTUP_GAIN
        } else if self.startup || self.intervals.is_multiple_of(PROBE_EVERY) {
            PROBE_GAIN
        } else {
            GAIN
        };
        let bdp = self.bandwidth as f64 * rtt.as_secs_f64();
        let floor = MIN_PACKETS * self.mtu;
        self.window = ((gain * bdp) as u64).max(floor);
        if self.startup {
            self.window = self.window.max(INITIAL_PACKETS * self.mtu);
        }
    }

    /// Bytes that may be in flight.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// The bandwidth estimate, bytes per second.
    pub fn bandwidth(&self) -> u64 {
        self.bandwidth
    }

    pub fn in_startup(&self) -> bool {
        self.startup
    }
}

impl Controller for RateWindow {
    fn on_ack(
        &mut self,
        now: Instant,
        _sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &quinn_proto::RttEstimator,
    ) {
        RateWindow::on_ack(self, now, bytes, app_limited, rtt.min());
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

    const MTU: u16 = 1200;

    /// A path of `rate` bytes/s and `rtt` fed by a sender that keeps `window` in flight: ACKs
    /// come back at the delivery rate, every `bunch` of them processed together (a busy CPU).
    fn run(c: &mut RateWindow, t: &mut Instant, rate: u64, rtt: Duration, secs: f64, bunch: u32) {
        let end = *t + Duration::from_secs_f64(secs);
        let per_packet = Duration::from_nanos(u64::from(MTU) * 1_000_000_000 / rate);
        let mut pending = 0u64;
        let mut n = 0u32;
        while *t < end {
            // What the window lets through, at most the path's rate.
            let through = if (c.window() as f64) < rate as f64 * rtt.as_secs_f64() {
                per_packet.mul_f64(rate as f64 * rtt.as_secs_f64() / c.window() as f64)
            } else {
                per_packet
            };
            *t += through;
            pending += u64::from(MTU);
            n += 1;
            if n.is_multiple_of(bunch) {
                c.on_ack(*t, pending, false, rtt);
                pending = 0;
            }
        }
    }

    #[test]
    fn the_window_settles_near_the_bandwidth_delay_product() {
        let rtt = Duration::from_millis(60);
        let rate = 1_250_000; // 10 Mbit/s
        let bdp = rate as f64 * rtt.as_secs_f64();
        let mut c = RateWindow::new(MTU);
        let mut t = Instant::now();
        run(&mut c, &mut t, rate, rtt, 10.0, 2);
        assert!(!c.in_startup(), "startup ends once the rate stops growing");
        let w = c.window() as f64 / bdp;
        assert!((1.1..=1.6).contains(&w), "window {w:.2} x BDP");
        let bw = c.bandwidth() as f64 / rate as f64;
        assert!((0.95..=1.05).contains(&bw), "bandwidth {bw:.2} x the link");
    }

    #[test]
    fn acks_processed_in_bunches_do_not_inflate_the_estimate() {
        // 20 ACKs at once (24 kB, ~20 ms of the link) from a unit busy recording.
        let rtt = Duration::from_millis(60);
        let rate = 1_250_000;
        let mut c = RateWindow::new(MTU);
        let mut t = Instant::now();
        run(&mut c, &mut t, rate, rtt, 10.0, 20);
        let bw = c.bandwidth() as f64 / rate as f64;
        assert!(bw <= 1.25, "bandwidth {bw:.2} x the link");
        let w = c.window() as f64 / (rate as f64 * rtt.as_secs_f64());
        assert!(w <= 1.6 * 1.25, "window {w:.2} x BDP");
    }

    #[test]
    fn more_bandwidth_is_found_and_less_is_followed() {
        let rtt = Duration::from_millis(60);
        let mut c = RateWindow::new(MTU);
        let mut t = Instant::now();
        run(&mut c, &mut t, 250_000, rtt, 5.0, 2); // 2 Mbit/s
        let low = c.bandwidth();
        run(&mut c, &mut t, 1_250_000, rtt, 20.0, 2); // then 10 Mbit/s
        assert!(
            c.bandwidth() as f64 > 0.9 * 1_250_000.0,
            "from {low} to {}",
            c.bandwidth()
        );
        run(&mut c, &mut t, 250_000, rtt, 10.0, 2); // back to 2
        assert!(
            (c.bandwidth() as f64) < 1.2 * 250_000.0,
            "{}",
            c.bandwidth()
        );
    }

    #[test]
    fn random_loss_is_not_congestion_but_an_outage_starts_over() {
        let rtt = Duration::from_millis(60);
        let mut c = RateWindow::new(MTU);
        let mut t = Instant::now();
        run(&mut c, &mut t, 1_250_000, rtt, 5.0, 2);
        let w = c.window();
        c.on_loss(false);
        assert_eq!(c.window(), w);
        c.on_loss(true);
        assert!(c.in_startup());
        assert_eq!(c.window(), INITIAL_PACKETS * u64::from(MTU));
    }
}
