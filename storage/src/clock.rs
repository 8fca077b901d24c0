//! Time, injected: the wall clock (UTC, may step) and the monotonic clock (never goes back).
//!
//! As Moonfire NVR's `Clocks`: the daemon uses [`RealClocks`]; tests use [`SimulatedClocks`] so
//! 35 days of retention run in milliseconds, without sleeping.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::manifest::ClockState;

pub use rdc_format::time::DAY_NS;

pub trait Clocks: Send + Sync + std::fmt::Debug + 'static {
    /// Wall-clock time, nanoseconds since the Unix epoch (UTC).
    fn wall_ns(&self) -> i64;
    /// Monotonic time, nanoseconds since an arbitrary start.
    fn mono_ns(&self) -> u64;
    /// Whether the wall clock is synchronised now. Retention trusts wall-clock ages only when
    /// it is; the default (unknown) makes it measure ages by the store's running clock.
    fn clock_state(&self) -> ClockState {
        ClockState::UNKNOWN
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RealClocks;

impl Clocks for RealClocks {
    fn wall_ns(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
        }
    }

    fn mono_ns(&self) -> u64 {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
    }
}

/// Clocks that move only when told to.
#[derive(Debug)]
pub struct SimulatedClocks {
    wall: AtomicI64,
    mono: AtomicU64,
    synchronized: AtomicBool,
}

impl SimulatedClocks {
    /// Clocks at `wall_ns`, reported synchronised.
    pub fn new(wall_ns: i64) -> Self {
        SimulatedClocks {
            wall: AtomicI64::new(wall_ns),
            mono: AtomicU64::new(1_000_000_000),
            synchronized: AtomicBool::new(true),
        }
    }

    /// Says whether the wall clock is synchronised (as the kernel's NTP state would).
    pub fn set_synchronized(&self, yes: bool) {
        self.synchronized.store(yes, Ordering::SeqCst);
    }

    /// A restart: the monotonic clock starts again from a small value (a new boot), the wall
    /// clock moves on by `down` (the time the unit was off).
    pub fn reboot(&self, down: Duration) {
        self.wall
            .fetch_add(down.as_nanos() as i64, Ordering::SeqCst);
        self.mono.store(1_000_000_000, Ordering::SeqCst);
    }

    /// Moves both clocks forward.
    pub fn advance(&self, d: Duration) {
        let ns = d.as_nanos() as u64;
        self.wall.fetch_add(ns as i64, Ordering::SeqCst);
        self.mono.fetch_add(ns, Ordering::SeqCst);
    }

    /// Steps the wall clock only, as NTP does when it corrects a wrong clock.
    pub fn step_wall(&self, delta_ns: i64) {
        self.wall.fetch_add(delta_ns, Ordering::SeqCst);
    }
}

impl Clocks for SimulatedClocks {
    fn wall_ns(&self) -> i64 {
        self.wall.load(Ordering::SeqCst)
    }

    fn mono_ns(&self) -> u64 {
        self.mono.load(Ordering::SeqCst)
    }

    fn clock_state(&self) -> ClockState {
        ClockState {
            synchronized: self.synchronized.load(Ordering::SeqCst),
            max_error_us: None,
        }
    }
}

pub use rdc_format::time::{parse_rfc3339, rfc3339};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(1_795_457_045_123_000_000),
            "2026-11-23T18:04:05.123Z"
        );
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1_000_000), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            parse_rfc3339("2026-11-23T18:04:05.123Z"),
            Some(1_795_457_045_123_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T19:04:05+01:00"),
            Some(1_795_457_045_000_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn simulated_step_moves_wall_only() {
        let c = SimulatedClocks::new(1_000);
        let m = c.mono_ns();
        c.step_wall(-500);
        assert_eq!(c.wall_ns(), 500);
        assert_eq!(c.mono_ns(), m);
    }
}
