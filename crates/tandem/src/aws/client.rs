//! aws::client: JSON 1.1 calls to AWS over keep-alive connections of the one HTTP
//! transport ([`crate::sink::transport`]), with the request's timeout bounding every
//! attempt and wait, and [`super::retry`]'s policy between attempts.
//!
//! Owns the connections: per service, up to `max_connections` open at once (idle ones
//! are kept for the next call; one cancelled half-way is dropped with its attempt).
//! Reads the clock (signing time, deadlines) and draws the jitter; never logs a body.

use super::json::{self, AwsError};
use super::retry::{classify, Class, RetryPolicy};
use super::{sign, AwsEnv, Service};
use crate::sink::transport::{Answer, Client};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

/// Answers are read up to this size: a secret is at most 64 KiB, base64 or escaped.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Shortest time left worth starting another attempt in.
const MIN_ATTEMPT: Duration = Duration::from_millis(50);

/// Why a call has no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// AWS answered with an error (the last one, after retries).
    Aws(AwsError),
    /// No answer: connection refused or reset, or the timeout passed.
    Unreachable(String),
    /// The call cannot be made (no credentials, a bad endpoint, signing failed).
    Setup(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Aws(e) => e.fmt(f),
            CallError::Unreachable(e) => write!(f, "AWS unreachable: {e}"),
            CallError::Setup(e) => write!(f, "cannot call AWS: {e}"),
        }
    }
}

/// What a call did, for whoever counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Attempts made.
    pub attempts: u32,
}

struct Pool {
    idle: Mutex<Vec<Client>>,
    open: Semaphore,
}

/// The AWS client. Cheap to build: nothing connects before the first call.
pub struct AwsClient {
    env: AwsEnv,
    policy: RetryPolicy,
    secrets_manager: Pool,
    ssm: Pool,
}

impl AwsClient {
    /// A client for `env`, with at most `max_connections` per service.
    pub fn new(env: AwsEnv, max_connections: usize, policy: RetryPolicy) -> AwsClient {
        let pool = || Pool { idle: Mutex::new(Vec::new()), open: Semaphore::new(max_connections.max(1)) };
        AwsClient { env, policy, secrets_manager: pool(), ssm: pool() }
    }

    /// The environment it was built from.
    pub fn env(&self) -> &AwsEnv {
        &self.env
    }

    /// Calls `operation` of `service` with the JSON `body`; answers the 200 body, or
    /// the last error once retries or `timeout` ran out.
    pub async fn call(
        &self,
        service: Service,
        operation: &str,
        body: Bytes,
        timeout: Duration,
    ) -> (Result<Bytes, CallError>, CallStats) {
        let deadline = Instant::now() + timeout;
        let mut stats = CallStats::default();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            stats.attempts += 1;
            let outcome = match tokio::time::timeout(left, self.attempt(service, operation, body.clone())).await {
                Ok(o) => o,
                Err(_) => Err(CallError::Unreachable(format!("no answer within {} ms", timeout.as_millis()))),
            };
            let retry = match &outcome {
                Ok(_) | Err(CallError::Setup(_)) => false,
                Err(CallError::Aws(e)) => classify(e.status, &e.error_type) == Class::Retry,
                Err(CallError::Unreachable(_)) => true,
            };
            if !retry {
                return (outcome, stats);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.policy.next_wait(stats.attempts, fastrand::f64(), left, MIN_ATTEMPT) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return (outcome, stats),
            }
        }
    }

    async fn attempt(&self, service: Service, operation: &str, body: Bytes) -> Result<Bytes, CallError> {
        let endpoint = self.env.endpoint(service).map_err(|e| CallError::Setup(e.to_owned()))?;
        let credentials = self
            .env
            .credentials
            .as_ref()
            .ok_or_else(|| CallError::Setup("no AWS credentials in the environment".into()))?;
        let mut req = Request::post(endpoint.path.as_str())
            .header(http::header::HOST, endpoint.authority.as_str())
            .header(http::header::CONTENT_TYPE, json::CONTENT_TYPE)
            .header("x-amz-target", format!("{}.{operation}", service.target_prefix()))
            .header(http::header::USER_AGENT, concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body.clone()))
            .map_err(|e| CallError::Setup(format!("cannot build the request: {e}")))?;
        sign::sign_request(&mut req, &body, credentials, &self.env.region, service.signing_name(), SystemTime::now())
            .map_err(CallError::Setup)?;
        let pool = match service {
            Service::SecretsManager => &self.secrets_manager,
            Service::Ssm => &self.ssm,
        };
        let _permit = pool.open.acquire().await.map_err(|e| CallError::Setup(e.to_string()))?;
        let idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = idle.unwrap_or_else(|| Client::new(endpoint).with_answer_limit(MAX_ANSWER_BYTES));
        let answer: Answer = conn.send(req).await.map_err(CallError::Unreachable)?;
        pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        if answer.status.as_u16() == 200 && !answer.body.is_empty() {
            return Ok(answer.body);
        }
        Err(CallError::Aws(json::error_of(answer.status.as_u16(), &answer.body)))
    }
}
