//! Whether the unit's clock is synchronised, from the kernel's NTP state (`ntp_adjtime`), so
//! every segment records it (R3: a court asks whether the clock was right).

use rdc_storage::{ClockState, Clocks, RealClocks};

/// The unit's clocks: the system's wall and monotonic clocks, and the kernel's sync state, so
/// retention knows when wall-clock ages can be trusted.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitClocks;

impl Clocks for UnitClocks {
    fn wall_ns(&self) -> i64 {
        RealClocks.wall_ns()
    }

    fn mono_ns(&self) -> u64 {
        RealClocks.mono_ns()
    }

    fn clock_state(&self) -> ClockState {
        read()
    }
}

/// Reads the kernel's clock state without changing it.
#[allow(unsafe_code)]
pub fn read() -> ClockState {
    // SAFETY: `timex` is plain old data for which all-zero is a valid value; `modes == 0` asks
    // the kernel only to read, and the pointer is valid for the duration of the call.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ntp_adjtime(&mut tx) };
    if rc == -1 {
        return ClockState::UNKNOWN;
    }
    let synchronized = rc != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0;
    ClockState {
        synchronized,
        max_error_us: synchronized.then_some(tx.maxerror as u64),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_without_failing() {
        let s = super::read();
        assert!(s.synchronized || s.max_error_us.is_none());
    }
}
