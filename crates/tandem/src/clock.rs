//! clock: the extension's one reading of wall time (I/O edge).
//!
//! Owns `now` in epoch milliseconds and its mapping to monotonic instants. The pure
//! core never reads a clock: `app` and `delivery` read it here and pass times in.

use std::time::{Duration, Instant, SystemTime};

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The monotonic instant of an epoch-milliseconds time.
pub fn instant_of(epoch_ms: u64) -> Instant {
    let now = now_ms();
    let at = Instant::now();
    if epoch_ms >= now {
        at + Duration::from_millis(epoch_ms - now)
    } else {
        at.checked_sub(Duration::from_millis(now - epoch_ms)).unwrap_or(at)
    }
}
