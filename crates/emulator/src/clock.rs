//! clock: one time base for the whole environment. Owns the mapping from the monotonic
//! clock (what durations are measured with) to wall time (what records carry), so that
//! platform records and log lines stamped by different tasks order consistently.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    epoch_us: u64,
}

impl Clock {
    pub fn new() -> Self {
        let instant = Instant::now();
        let epoch_us = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        Self { instant, epoch_us }
    }

    /// Wall time of `at` in microseconds since the epoch.
    pub fn epoch_us(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(d) => self.epoch_us + d.as_micros() as u64,
            None => self.epoch_us.saturating_sub(self.instant.duration_since(at).as_micros() as u64),
        }
    }

    /// Wall time of `at` in milliseconds since the epoch.
    pub fn epoch_ms(&self, at: Instant) -> u64 {
        self.epoch_us(at) / 1000
    }

    /// `at` as Lambda spells times: `2022-10-12T00:03:50.000Z`.
    pub fn rfc3339(&self, at: Instant) -> String {
        tandem_wire::time::format_epoch_millis(self.epoch_ms(at))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Milliseconds between two instants as Lambda reports durations (float, µs precision).
pub fn ms_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn maps_instants_monotonically() {
        let c = Clock::new();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(1500);
        assert_eq!(c.epoch_ms(t1) - c.epoch_ms(t0), 1500);
        assert!(c.rfc3339(t0).ends_with('Z'));
        assert_eq!(ms_between(t0, t0 + Duration::from_micros(1234)), 1.234);
        assert_eq!(ms_between(t1, t0), 0.0);
    }
}
