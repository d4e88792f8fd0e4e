//! aws::retry: which answers are worth another attempt and how long to wait before it.
//! Sans-I/O: the random draw and the time left are passed in.
//!
//! Retried: no answer at all (the calls made are reads, safe to repeat), 5xx, 429 and
//! AWS's throttling and transient error types; never another 4xx (not found, access
//! denied, validation: the same request fails the same way). Waits are exponential with
//! full jitter, and never start an attempt that the time left could not fit.

use std::time::Duration;

/// What an attempt's outcome calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Done (success, or an error that another attempt would repeat).
    Final,
    /// Worth another attempt.
    Retry,
}

/// Error types AWS uses for throttling and transient failures.
const RETRYABLE_TYPES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalServiceError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
];

/// Classifies an answer by its status and error type.
pub fn classify(status: u16, error_type: &str) -> Class {
    if status == 200 {
        return Class::Final;
    }
    if status >= 500 || status == 429 || RETRYABLE_TYPES.contains(&error_type) {
        Class::Retry
    } else {
        Class::Final
    }
}

/// Attempts and waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The longest first wait (doubled at each retry).
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// The SDKs' standard mode: 3 attempts, waits up to 50 ms · 2ⁿ, at most 20 s; the
    /// request's timeout bounds them anyway.
    fn default() -> RetryPolicy {
        RetryPolicy { base: Duration::from_millis(50), max: Duration::from_secs(20), max_attempts: 3 }
    }
}

impl RetryPolicy {
    /// The wait before another attempt, after `attempts` were made, or `None` to stop:
    /// no attempts left, or the wait plus `min_attempt` would not fit in `left`.
    /// `unit` is a random draw in `[0, 1)`.
    pub fn next_wait(&self, attempts: u32, unit: f64, left: Duration, min_attempt: Duration) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let exp = self.base.saturating_mul(1u32.checked_shl(attempts.saturating_sub(1).min(30)).unwrap_or(u32::MAX));
        let wait = exp.min(self.max).mul_f64(unit.clamp(0.0, 1.0));
        (wait + min_attempt <= left).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_and_server_errors_are_retried_client_errors_are_not() {
        assert_eq!(classify(400, "ThrottlingException"), Class::Retry);
        assert_eq!(classify(429, ""), Class::Retry);
        assert_eq!(classify(503, "ServiceUnavailable"), Class::Retry);
        assert_eq!(classify(500, "Anything"), Class::Retry);
        assert_eq!(classify(400, "ResourceNotFoundException"), Class::Final);
        assert_eq!(classify(400, "AccessDeniedException"), Class::Final);
        assert_eq!(classify(200, ""), Class::Final);
    }

    #[test]
    fn waits_grow_with_jitter_and_stop_at_the_limits() {
        let p = RetryPolicy { base: Duration::from_millis(100), max: Duration::from_millis(300), max_attempts: 4 };
        let left = Duration::from_secs(10);
        let min = Duration::from_millis(10);
        assert_eq!(p.next_wait(1, 0.999_999, left, min).unwrap().as_millis(), 99);
        assert_eq!(p.next_wait(2, 0.5, left, min), Some(Duration::from_millis(100)));
        assert_eq!(p.next_wait(3, 1.0, left, min), Some(Duration::from_millis(300)));
        assert_eq!(p.next_wait(1, 0.0, left, min), Some(Duration::ZERO));
        assert_eq!(p.next_wait(4, 0.5, left, min), None, "out of attempts");
        assert_eq!(p.next_wait(3, 1.0, Duration::from_millis(305), min), None, "out of time");
    }
}
