//! sink: where records go. A sink is a folder, `sink/<name>/`, in the same shape: its
//! settings and their loading (`config.rs`, pure), its encoder (`encode.rs` and the
//! like, pure; NDJSON is shared, in [`crate::encode::ndjson`]), and in `mod.rs` the
//! request building and one [`Deliver::attempt`]: send a batch once and classify the
//! outcome as ok, retry or permanent ([`Attempt`]). [`drive`] adds the retries, for
//! every sink alike: exponential backoff with full jitter, within the time the flush
//! has, and the circuit breaker ([`Breaker`]). [`transport`] is the one HTTP client.
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

pub mod drive;
pub mod file;
pub mod http;
pub mod otlp;
pub mod stdout;
pub mod transport;

pub use drive::{drive, Breaker, Driven, Plan, Seen};

use crate::config::{Config, SinkKind};
use crate::model::Item;
use crate::queue::Entry;
use ::http::StatusCode;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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

    /// The longest one attempt may take by default (see [`Deliver::timeout_is_a_cap`]).
    fn attempt_timeout(&self) -> Duration;

    /// Whether the user set [`Deliver::attempt_timeout`] (`TANDEM_*_TIMEOUT_MS`): then it
    /// caps every attempt; otherwise an attempt may last as long as the sink's slowest
    /// observed answer (cutting it short would send its records twice).
    fn timeout_is_a_cap(&self) -> bool {
        false
    }

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

            /// The longest one attempt may take by default.
            pub fn attempt_timeout(&self) -> Duration {
                match self {
                    $(Sink::$kind(s) => s.attempt_timeout(),)+
                }
            }

            /// Whether the user set the attempt timeout (see [`Deliver::timeout_is_a_cap`]).
            pub fn timeout_is_a_cap(&self) -> bool {
                match self {
                    $(Sink::$kind(s) => s.timeout_is_a_cap(),)+
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
}
