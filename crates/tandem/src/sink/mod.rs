//! sink: where records go. A sink is a folder, `sink/<name>/`, in the same shape: its
//! settings and their loading (`config.rs`, pure), its encoder (`encode.rs` and the
//! like, pure; NDJSON is shared, in [`crate::encode::ndjson`]), and in `mod.rs` the
//! request building and one [`Deliver::attempt`]: send a batch once and classify the
//! outcome as ok, retry or permanent ([`Attempt`]). [`drive`] adds the retries, for
//! every sink alike: exponential backoff with full jitter, within the time the flush
//! has. [`transport`] is the one HTTP client.
//!
//! - [`stdout`]: CloudWatch EMF documents (invocations and health), the default;
//! - [`file`]: NDJSON appended to a file;
//! - [`http`]: NDJSON POSTed to a URL, optionally gzipped, with custom headers;
//! - [`otlp`]: OTLP/HTTP logs, metrics and traces.
//!
//! Adding a sink: its folder, implementing [`Deliver`], its line in the `sinks!`
//! list below, and its name in [`SinkKind`] (with its settings in [`Config`]).
//!
//! Classification: 2xx is ok; 408, 429, 5xx and transport errors are retried; any other
//! status is permanent (counted, told once per sink and status, never retried). When
//! retries run out or the time is up, the batch stays queued for the next flush.
//!
//! What a sink must never do: decide what is removed from its queue (the delivery
//! module commits what an attempt accepted), log per record, or outlive its deadline
//! (every attempt runs under a timeout and is cancelled at it).

pub mod file;
pub mod http;
pub mod otlp;
pub mod stdout;
pub mod transport;

use crate::config::{Config, RetryConfig, SinkKind};
use crate::diag;
use crate::diag::LogLevel;
use crate::model::Item;
use crate::queue::Entry;
use ::http::StatusCode;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The outcome of one attempt at a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Accepted (entries a sink rejected in part are marked `rejected`).
    Ok,
    /// Failed for now; `after` is the server's `Retry-After`, when it gave one.
    Retry {
        /// Why, for the diagnostics.
        reason: String,
        /// The server's `Retry-After`.
        after: Option<Duration>,
    },
    /// Rejected for good: retrying cannot help.
    Permanent(String),
}

impl Attempt {
    /// A retry without a server-given wait.
    pub fn retry(reason: impl Into<String>) -> Attempt {
        Attempt::Retry { reason: reason.into(), after: None }
    }
}

/// How an HTTP status is handled.
pub fn classify(status: StatusCode) -> Class {
    match status.as_u16() {
        200..=299 => Class::Ok,
        408 | 429 | 500..=599 => Class::Retry,
        _ => Class::Permanent,
    }
}

/// The three ways an answer is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Accepted.
    Ok,
    /// Worth another attempt.
    Retry,
    /// Retrying cannot help.
    Permanent,
}

/// An answer as an [`Attempt`]; `what` names the request in messages.
pub fn judge(what: &str, answer: &transport::Answer) -> Attempt {
    match classify(answer.status) {
        Class::Ok => Attempt::Ok,
        Class::Retry => {
            Attempt::Retry { reason: format!("{what} answered {}", answer.status), after: answer.retry_after }
        }
        Class::Permanent => {
            let body = String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)]).trim().to_owned();
            let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
            Attempt::Permanent(if body.is_empty() {
                format!("{what} answered {}", answer.status)
            } else {
                format!("{what} answered {}: {body}", answer.status)
            })
        }
    }
}

/// Backoff before retry number `retry` (1 for the first retry): a random duration in
/// `[0, min(max, base * 2^(retry-1))]` ("full jitter"), so that retries of many
/// environments spread out instead of hammering a recovering endpoint together.
pub fn backoff(cfg: &RetryConfig, retry: u32) -> Duration {
    let exp = cfg.base_backoff.saturating_mul(1u32.checked_shl(retry.saturating_sub(1).min(30)).unwrap_or(u32::MAX));
    let cap = exp.min(cfg.max_backoff);
    let ms = cap.as_millis().min(u128::from(u64::MAX)) as u64;
    Duration::from_millis(fastrand::u64(0..=ms))
}

/// What every sink implements. [`Sink`] dispatches to it with a `match`: no `dyn`, no
/// boxed future per attempt.
pub trait Deliver: Sized {
    /// Builds the sink from the configuration. `instance` is the execution environment's
    /// id once `platform.initStart` told it (the OTLP resource's `faas.instance`).
    fn build(config: &Config, instance: &Arc<OnceLock<String>>) -> Result<Self, String>;

    /// Whether this sink takes `item` at all.
    fn accepts(_item: &Item) -> bool {
        true
    }

    /// The longest one attempt may take.
    fn attempt_timeout(&self) -> Duration;

    /// Sends `batch` once; marks what it accepted in part (OTLP's per-signal progress)
    /// or rejected for good in the entries.
    fn attempt(&mut self, batch: &mut [Entry]) -> impl Future<Output = Attempt> + Send;
}

/// The sink list: one line per sink (its [`SinkKind`] variant and its type). Generates
/// [`Sink`] and its dispatch.
macro_rules! sinks {
    ($($kind:ident => $ty:ty),+ $(,)?) => {
        /// A sink. See the module documentation.
        pub enum Sink {
            $(
                #[doc = concat!("The `", stringify!($kind), "` sink.")]
                $kind($ty),
            )+
        }

        impl Sink {
            /// Builds the sink of `kind` from the configuration (see [`Deliver::build`]).
            pub fn new(kind: SinkKind, config: &Config, instance: Arc<OnceLock<String>>) -> Result<Sink, String> {
                Ok(match kind {
                    $(SinkKind::$kind => Sink::$kind(<$ty as Deliver>::build(config, &instance)?),)+
                })
            }

            /// Which sink this is.
            pub fn kind(&self) -> SinkKind {
                match self {
                    $(Sink::$kind(_) => SinkKind::$kind,)+
                }
            }

            /// Whether a sink of `kind` takes `item` at all (stdout writes metrics only:
            /// the function's log lines are in CloudWatch already).
            pub fn accepts(kind: SinkKind, item: &Item) -> bool {
                match kind {
                    $(SinkKind::$kind => <$ty as Deliver>::accepts(item),)+
                }
            }

            /// The longest one attempt may take.
            fn attempt_timeout(&self) -> Duration {
                match self {
                    $(Sink::$kind(s) => s.attempt_timeout(),)+
                }
            }

            /// Sends `batch` once.
            pub async fn attempt(&mut self, batch: &mut [Entry]) -> Attempt {
                match self {
                    $(Sink::$kind(s) => Deliver::attempt(s, batch).await,)+
                }
            }
        }
    };
}

sinks! {
    Stdout => stdout::StdoutSink,
    File => file::FileSink,
    Http => http::HttpSink,
    Otlp => otlp::OtlpSink,
}

/// How [`drive`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driven {
    /// The batch can leave the queue (entries rejected for good are marked so).
    Done,
    /// It stays queued: retries ran out, or the time did.
    Failed(String),
}

/// Sends `batch` with retries until it is accepted, rejected for good, out of
/// attempts, or out of time (`deadline`). Adds the retries made to `retried`.
pub async fn drive(
    sink: &mut Sink,
    batch: &mut [Entry],
    deadline: Instant,
    retry: &RetryConfig,
    retried: &mut u64,
) -> Driven {
    let mut attempts = 0u32;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Driven::Failed("no time left".into());
        }
        let until = deadline.min(now + sink.attempt_timeout());
        let outcome = match tokio::time::timeout_at(until.into(), sink.attempt(batch)).await {
            Ok(a) => a,
            Err(_) => Attempt::retry(format!("no answer within {} ms", until.duration_since(now).as_millis())),
        };
        attempts += 1;
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
        if attempts >= retry.max_attempts {
            return Driven::Failed(reason);
        }
        let wait = after.map_or_else(|| backoff(retry, attempts), |a| a.min(retry.max_backoff));
        if Instant::now() + wait >= deadline {
            return Driven::Failed(reason);
        }
        *retried += 1;
        diag::debug(format_args!("{} sink: {reason}; retrying in {} ms", sink.kind().as_str(), wait.as_millis()));
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_like_the_otlp_spec() {
        for s in [200, 202, 204] {
            assert_eq!(classify(StatusCode::from_u16(s).unwrap()), Class::Ok, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(StatusCode::from_u16(s).unwrap()), Class::Retry, "{s}");
        }
        for s in [301, 400, 401, 403, 404, 413, 415] {
            assert_eq!(classify(StatusCode::from_u16(s).unwrap()), Class::Permanent, "{s}");
        }
    }

    #[test]
    fn answers_become_attempts_with_a_short_reason() {
        let a = transport::Answer {
            status: StatusCode::BAD_REQUEST,
            retry_after: None,
            body: bytes::Bytes::from("bad\nfield\n".repeat(100)),
        };
        match judge("POST /in", &a) {
            Attempt::Permanent(m) => {
                assert!(m.starts_with("POST /in answered 400 Bad Request: bad field"), "{m}");
                assert!(m.len() < 260 && !m.contains('\n'));
            }
            other => panic!("{other:?}"),
        }
        let a = transport::Answer {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(2)),
            body: bytes::Bytes::new(),
        };
        assert_eq!(
            judge("x", &a),
            Attempt::Retry { reason: "x answered 429 Too Many Requests".into(), after: Some(Duration::from_secs(2)) }
        );
    }

    #[test]
    fn backoff_is_exponential_capped_and_jittered() {
        let cfg = RetryConfig {
            max_attempts: 5,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1_000),
        };
        for retry in 1..40 {
            let cap = (100u64 << (retry - 1).min(20)).min(1_000);
            let mut seen_low = false;
            for _ in 0..200 {
                let d = backoff(&cfg, retry).as_millis() as u64;
                assert!(d <= cap, "retry {retry}: {d} > {cap}");
                seen_low |= d < cap / 2 + 1;
            }
            assert!(seen_low, "full jitter reaches the lower half");
        }
    }

    #[tokio::test]
    async fn drive_retries_then_gives_up_keeping_the_batch() {
        let dir = std::env::temp_dir().join(format!("tandem-drive-{}-{}", std::process::id(), fastrand::u64(..)));
        // A file sink whose path is a directory fails every attempt.
        std::fs::create_dir_all(&dir).unwrap();
        let mut sink = Sink::File(file::FileSink::new(dir.clone()));
        let item = Arc::new(Item::from(crate::model::HealthSnapshot::default()));
        let mut batch = vec![Entry::new(item, 1)];
        let cfg = RetryConfig {
            max_attempts: 3,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let mut retried = 0;
        let r = drive(&mut sink, &mut batch, Instant::now() + Duration::from_secs(5), &cfg, &mut retried).await;
        assert!(matches!(r, Driven::Failed(_)), "{r:?}");
        assert_eq!(retried, 2);
        assert!(!batch[0].rejected);
        // Out of time: no attempt at all.
        let r = drive(&mut sink, &mut batch, Instant::now(), &cfg, &mut retried).await;
        assert_eq!(r, Driven::Failed("no time left".into()));
        let _ = std::fs::remove_dir_all(dir);
    }
}
