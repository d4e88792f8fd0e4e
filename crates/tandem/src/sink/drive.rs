//! sink::drive: sending one batch until it is accepted, rejected for good, or the flush
//! gives up, and the per-sink [`Breaker`] that keeps a failing sink off the function's
//! path.
//!
//! Owns the retry rules shared by every sink: exponential backoff with full jitter
//! ([`backoff`]); the attempt limit of a flush ([`Plan`]: one attempt before `next`,
//! `TANDEM_RETRY_MAX_ATTEMPTS` in the background, no limit at SHUTDOWN); and, in a flush
//! with a deadline, a wait that would pass it shortened so that one more attempt fits.
//! An attempt is never cut by the flush's deadline (only by its own timeout, never
//! shorter than the sink's observed answer time unless the user set one): an abandoned
//! request would still be processed by the receiver while its records were sent again.
//!
//! [`Breaker`] is sans-I/O (times passed in): after a failure the sink is *open*: no
//! blocking flush touches it and background attempts wait for its backoff; a success
//! closes it. Its transitions are what the diagnostics tell at the default level.
//!
//! Never decides what leaves a queue (delivery commits) and never logs per record.

use super::{Attempt, Sink};
use crate::config::RetryConfig;
use crate::diag;
use crate::diag::LogLevel;
use crate::queue::Entry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Backoff before retry number `retry` (1 for the first retry): a random duration in
/// `[0, min(max, base * 2^(retry-1))]` ("full jitter"), so that retries of many
/// environments spread out instead of hammering a recovering endpoint together.
pub fn backoff(cfg: &RetryConfig, retry: u32) -> Duration {
    let cap = exponential(cfg, retry);
    let ms = cap.as_millis().min(u128::from(u64::MAX)) as u64;
    Duration::from_millis(fastrand::u64(0..=ms))
}

/// `min(max, base * 2^(retry-1))`.
fn exponential(cfg: &RetryConfig, retry: u32) -> Duration {
    let exp = cfg.base_backoff.saturating_mul(1u32.checked_shl(retry.saturating_sub(1).min(30)).unwrap_or(u32::MAX));
    exp.min(cfg.max_backoff)
}

/// How a flush drives a batch.
#[derive(Debug, Clone)]
pub struct Plan {
    /// When set, no new attempt starts (and a backoff ends) once it is true.
    pub stop: Option<Arc<AtomicBool>>,
    /// No new attempt starts at or after this instant.
    pub deadline: Instant,
    /// Attempts allowed (`None`: until the deadline, at SHUTDOWN).
    pub max_attempts: Option<u32>,
    /// The longest one attempt may take.
    pub attempt_timeout: Duration,
}

/// How [`drive`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driven {
    /// The batch can leave the queue (entries rejected for good are marked so).
    Done,
    /// It stays queued: retries ran out, or the time did.
    Failed(String),
}

/// What [`drive`] saw, for the lane's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// Attempts made.
    pub attempts: u32,
    /// Repeated attempts (attempts after the first).
    pub retried: u64,
    /// Attempts that ended without an answer (timed out): the receiver may have their
    /// records, so sending them again may duplicate them.
    pub unanswered: u32,
    /// The longest time an answered attempt took.
    pub slowest_answer: Duration,
}

/// Shortest wait left for an attempt when a backoff is shortened to fit the deadline.
const MIN_ATTEMPT: Duration = Duration::from_millis(20);

/// How often a backoff looks at [`Plan::stop`].
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Sends `batch` with retries per `plan` until it is accepted, rejected for good, out
/// of attempts, or out of time.
pub async fn drive(sink: &mut Sink, batch: &mut [Entry], plan: &Plan, retry: &RetryConfig, seen: &mut Seen) -> Driven {
    let stopped = || plan.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
    let mut attempts = 0u32;
    loop {
        let now = Instant::now();
        if now >= plan.deadline {
            return Driven::Failed("no time left".into());
        }
        if stopped() {
            return Driven::Failed("stopped".into());
        }
        let started = Instant::now();
        let outcome = match tokio::time::timeout(plan.attempt_timeout, sink.attempt(batch)).await {
            Ok(a) => {
                seen.slowest_answer = seen.slowest_answer.max(started.elapsed());
                a
            }
            Err(_) => {
                seen.unanswered += 1;
                Attempt::retry(format!("no answer within {} ms", plan.attempt_timeout.as_millis()))
            }
        };
        attempts += 1;
        seen.attempts += 1;
        if attempts > 1 {
            seen.retried += 1;
        }
        let (reason, after) = match outcome {
            Attempt::Ok => return Driven::Done,
            Attempt::Permanent(reason) => {
                let kind = sink.kind().as_str();
                diag::once(
                    LogLevel::Warn,
                    &format!("permanent:{kind}"),
                    format_args!("{kind} sink: {reason}; this is not retried: the records are dropped and counted (permanent_error)"),
                );
                for e in batch.iter_mut() {
                    e.rejected = true;
                }
                return Driven::Done;
            }
            Attempt::Retry { reason, after } => (reason, after),
        };
        if plan.max_attempts.is_some_and(|m| attempts >= m) {
            return Driven::Failed(reason);
        }
        let wait = after.map_or_else(|| backoff(retry, attempts), |a| a.min(retry.max_backoff));
        let left = plan.deadline.saturating_duration_since(Instant::now());
        if left <= MIN_ATTEMPT {
            return Driven::Failed(reason);
        }
        // A wait that would pass the deadline is shortened to fit one more attempt.
        let wait = wait.min(left - MIN_ATTEMPT);
        diag::debug(format_args!("{} sink: {reason}; retrying in {} ms", sink.kind().as_str(), wait.as_millis()));
        let until = Instant::now() + wait;
        // In slices, so that a stop ends the wait.
        while Instant::now() < until && !stopped() {
            tokio::time::sleep(until.saturating_duration_since(Instant::now()).min(STOP_CHECK)).await;
        }
    }
}

/// A change of a [`Breaker`]'s state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// No change.
    None,
    /// The sink failed after working (or at its first use).
    Opened,
    /// The sink works again after `failures` failed flushes over `down_ms`.
    Closed {
        /// Failed flushes while open.
        failures: u32,
        /// How long it was open, ms.
        down_ms: u64,
    },
}

/// A sink's circuit breaker. See the module documentation. Times are ms since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breaker {
    /// Failed flushes in a row (0: closed).
    failures: u32,
    opened_ms: u64,
    /// Background attempts wait until then.
    retry_at_ms: u64,
}

impl Breaker {
    /// Whether the sink failed and has not succeeded since.
    pub fn is_open(&self) -> bool {
        self.failures > 0
    }

    /// Failed flushes in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Since when it is open (ms), when it is.
    pub fn open_since_ms(&self) -> Option<u64> {
        self.is_open().then_some(self.opened_ms)
    }

    /// Whether a flush that delays `next` may use the sink: only while closed.
    pub fn may_block(&self) -> bool {
        !self.is_open()
    }

    /// Whether a background flush may try the sink at `now_ms`.
    pub fn due(&self, now_ms: u64) -> bool {
        !self.is_open() || now_ms >= self.retry_at_ms
    }

    /// When a background attempt is due (ms), while open.
    pub fn retry_at_ms(&self) -> Option<u64> {
        self.is_open().then_some(self.retry_at_ms)
    }

    /// A flush of the sink failed at `now_ms`: open (or stay open) with a backoff that
    /// doubles per failure up to `retry.max_backoff`.
    pub fn on_failure(&mut self, now_ms: u64, retry: &RetryConfig) -> Transition {
        let was_open = self.is_open();
        self.failures = self.failures.saturating_add(1);
        if !was_open {
            self.opened_ms = now_ms;
        }
        self.retry_at_ms = now_ms + exponential(retry, self.failures).as_millis() as u64;
        if was_open {
            Transition::None
        } else {
            Transition::Opened
        }
    }

    /// The sink accepted a batch at `now_ms`: closed.
    pub fn on_success(&mut self, now_ms: u64) -> Transition {
        if !self.is_open() {
            return Transition::None;
        }
        let t = Transition::Closed { failures: self.failures, down_ms: now_ms.saturating_sub(self.opened_ms) };
        *self = Breaker::default();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Item;
    use crate::sink::file;

    const T: u64 = 1_700_000_000_000;

    fn retry() -> RetryConfig {
        RetryConfig {
            max_attempts: 3,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1_000),
        }
    }

    #[test]
    fn backoff_is_exponential_capped_and_jittered() {
        let cfg = RetryConfig { max_attempts: 5, ..retry() };
        for n in 1..40 {
            let cap = (100u64 << (n - 1).min(20)).min(1_000);
            let mut seen_low = false;
            for _ in 0..200 {
                let d = backoff(&cfg, n).as_millis() as u64;
                assert!(d <= cap, "retry {n}: {d} > {cap}");
                seen_low |= d < cap / 2 + 1;
            }
            assert!(seen_low, "full jitter reaches the lower half");
        }
    }

    #[test]
    fn a_failed_sink_is_kept_off_the_blocking_path_until_it_succeeds() {
        let r = retry();
        let mut b = Breaker::default();
        assert!(b.may_block() && b.due(T));
        assert_eq!(b.on_failure(T, &r), Transition::Opened);
        assert!(!b.may_block());
        // Background attempts wait for the backoff: 100 ms, then 200, 400, 800, 1000.
        assert!(!b.due(T + 99) && b.due(T + 100));
        assert_eq!(b.on_failure(T + 100, &r), Transition::None, "told once");
        assert!(!b.due(T + 299) && b.due(T + 300));
        let mut now = T + 300;
        for _ in 0..10 {
            b.on_failure(now, &r);
            now += 10_000;
        }
        assert_eq!(b.retry_at_ms(), Some(now - 10_000 + 1_000), "capped at max_backoff");
        // Ten minutes on, still open: no blocking flush until a success.
        assert!(!b.may_block());
        assert_eq!(b.open_since_ms(), Some(T));
        assert_eq!(b.on_success(T + 600_000), Transition::Closed { failures: 12, down_ms: 600_000 });
        assert!(b.may_block() && b.due(T + 600_000));
        assert_eq!(b.on_success(T + 600_001), Transition::None);
    }

    /// A file sink whose path is a directory: every attempt fails.
    fn failing_sink(name: &str) -> (std::path::PathBuf, Sink, Vec<Entry>) {
        let dir =
            std::env::temp_dir().join(format!("tandem-drive-{name}-{}-{}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let sink = Sink::File(file::FileSink::new(dir.clone()));
        let item = Arc::new(Item::from(crate::model::HealthSnapshot::default()));
        (dir, sink, vec![Entry::new(item, 1)])
    }

    #[tokio::test]
    async fn drive_retries_then_gives_up_keeping_the_batch() {
        let (dir, mut sink, mut batch) = failing_sink("retries");
        let cfg = RetryConfig {
            max_attempts: 3,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let plan = |deadline, max_attempts| Plan {
            stop: None,
            deadline,
            max_attempts,
            attempt_timeout: Duration::from_secs(1),
        };
        let mut seen = Seen::default();
        let r = drive(&mut sink, &mut batch, &plan(Instant::now() + Duration::from_secs(5), Some(3)), &cfg, &mut seen)
            .await;
        assert!(matches!(r, Driven::Failed(_)), "{r:?}");
        assert_eq!((seen.attempts, seen.retried), (3, 2));
        assert!(!batch[0].rejected);
        // Out of time: no attempt at all.
        let r = drive(&mut sink, &mut batch, &plan(Instant::now(), None), &cfg, &mut seen).await;
        assert_eq!(r, Driven::Failed("no time left".into()));
        assert_eq!(seen.attempts, 3);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn without_an_attempt_limit_a_wait_past_the_deadline_is_shortened_to_fit_one_more_attempt() {
        let (dir, mut sink, mut batch) = failing_sink("deadline");
        // Every backoff (10 s) is far past the deadline (600 ms).
        let cfg = RetryConfig {
            max_attempts: 1,
            base_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(10),
        };
        let started = Instant::now();
        let plan = Plan {
            stop: None,
            deadline: started + Duration::from_millis(600),
            max_attempts: None,
            attempt_timeout: Duration::from_secs(1),
        };
        let mut seen = Seen::default();
        let r = drive(&mut sink, &mut batch, &plan, &cfg, &mut seen).await;
        assert!(matches!(r, Driven::Failed(_)), "{r:?}");
        assert!(seen.attempts >= 2, "retried within the deadline despite the backoff and the attempt limit: {seen:?}");
        assert!(Instant::now() < started + Duration::from_secs(5), "never waited a whole backoff");
        let _ = std::fs::remove_dir_all(dir);
    }
}
