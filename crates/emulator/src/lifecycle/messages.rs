//! lifecycle::messages: what goes in and out of the state machine. Owns the
//! vocabulary between the lifecycle and its driver: [`Input`]s (API calls, invocations,
//! process exits, timers), [`Action`]s (replies, spawns, signals, timers, records),
//! the [`Observation`]s a library user reads, and the small types they carry.

use bytes::Bytes;
use std::time::{Duration, Instant};
use tandem_wire::extensions::NextEvent;
use tandem_wire::subscription::{Api, Subscription};
use tandem_wire::telemetry::{self as tm, Status};
use tandem_wire::{ErrorResponse, Event, ShutdownReason, StatusResponse};

/// Identifies a pending HTTP request (API call or invoke caller) in the driver.
pub type Token = u64;

/// What the state machine needs to know about the function.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub function_name: String,
    pub function_version: String,
    pub handler: String,
    pub account_id: String,
    pub region: String,
    pub memory_mb: u64,
    pub timeout: Duration,
    pub init_timeout: Duration,
    pub freeze: bool,
    /// File names of the extension executables launched at each init, in launch order.
    pub extensions: Vec<String>,
    /// Invocations that may wait while one runs.
    pub queue_limit: usize,
}

impl LifecycleConfig {
    pub fn function_arn(&self) -> String {
        tandem_wire::runtime::function_arn(&self.region, &self.account_id, &self.function_name)
    }
}

/// Per-input facts the driver measured.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub now: Instant,
}

/// A process of the environment. `generation` counts inits, so that an exit of a
/// process from before a reset is recognised as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcId {
    pub generation: u64,
    pub kind: ProcKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcKind {
    Runtime,
    /// Index into [`LifecycleConfig::extensions`].
    Extension(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The memory limit killed it.
    pub oom: bool,
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit status {c}"),
            (None, Some(9)) => f.write_str("signal: killed"),
            (None, Some(s)) => write!(f, "signal: {s}"),
            (None, None) => f.write_str("unknown exit"),
        }
    }
}

/// One synchronous invocation as the caller made it.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub payload: Bytes,
    /// Decoded client context JSON (the Invoke API sends it base64-encoded).
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    /// `X-Amzn-Trace-Id` of the caller; one is generated when absent.
    pub trace_id: Option<String>,
    /// `X-Amz-Log-Type: Tail`: answer only after the report, with the log tail.
    pub want_tail: bool,
}

/// What the caller of an invocation gets.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeResult {
    pub request_id: String,
    pub payload: Bytes,
    /// `Some("Unhandled")` when the function failed (the Invoke API's `X-Amz-Function-Error`).
    pub function_error: Option<String>,
    /// The error type when the invocation failed.
    pub error_type: Option<String>,
    pub status: Status,
    pub want_tail: bool,
}

/// Why an invocation was refused before it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The queue is full (`429 TooManyRequestsException`).
    TooManyRequests,
    /// The environment is shutting down or gone.
    ShuttingDown,
}

/// An API call, as parsed by the HTTP edge (which does no validation beyond framing).
#[derive(Debug, Clone)]
pub enum ApiCall {
    RuntimeNext,
    RuntimeResponse {
        request_id: String,
        body: Bytes,
        first_byte: Instant,
        last_byte: Instant,
        streaming: bool,
        /// `(error type, decoded error body)` from the streaming trailers.
        error_trailer: Option<(String, Bytes)>,
    },
    RuntimeResponseTooLarge {
        request_id: String,
        size: usize,
        limit: usize,
    },
    RuntimeError {
        request_id: String,
        error_type: Option<String>,
        body: Bytes,
        xray_cause: Option<String>,
        received: Instant,
    },
    RuntimeInitError {
        error_type: Option<String>,
        body: Bytes,
    },
    ExtRegister {
        name: Option<String>,
        body: Bytes,
        accept_account_id: bool,
    },
    ExtNext {
        id: Option<String>,
    },
    ExtInitError {
        id: Option<String>,
        error_type: Option<String>,
        body: Bytes,
    },
    ExtExitError {
        id: Option<String>,
        error_type: Option<String>,
        body: Bytes,
    },
    Subscribe {
        api: Api,
        id: Option<String>,
        body: Bytes,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerId {
    Init(u64),
    Invoke(u64),
    RuntimeGrace(u64),
    TeardownDeadline(u64),
    Reap(u64),
}

#[derive(Debug)]
pub enum Input {
    /// Begin the first init.
    Start,
    Invoke {
        token: Token,
        request_id: String,
        request: InvokeRequest,
    },
    /// Spin the environment down (reason `spindown`).
    Shutdown,
    Api {
        token: Token,
        call: ApiCall,
    },
    SpawnFailed {
        proc: ProcId,
        error: String,
    },
    Exited {
        proc: ProcId,
        exit: ExitInfo,
    },
    Timer(TimerId),
    /// Pending telemetry of `generation` was delivered (or its deadline passed).
    TelemetryFlushed {
        generation: u64,
    },
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Reply {
    pub(super) fn json<T: serde::Serialize>(status: u16, value: &T) -> Self {
        Reply {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: serde_json::to_vec(value).map(Bytes::from).unwrap_or_default(),
        }
    }

    pub(super) fn error(status: u16, error_type: &str, message: impl Into<String>) -> Self {
        Reply::json(status, &ErrorResponse::new(error_type, message))
    }

    pub(super) fn accepted() -> Self {
        Reply::json(202, &StatusResponse::ok())
    }
}

/// What a lifecycle observer sees (the library API's event log).
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A process started (reported by the driver).
    Spawned {
        process: String,
        pid: i32,
    },
    InitStart {
        phase: tm::Phase,
    },
    ExtensionRegistered {
        name: String,
        id: String,
        external: bool,
        events: Vec<String>,
    },
    ExtensionReady {
        name: String,
    },
    RuntimeReady,
    InitEnd {
        status: Status,
        error_type: Option<String>,
        duration_ms: f64,
    },
    InvokeStart {
        request_id: String,
    },
    EventDelivered {
        extension: String,
        event: NextEvent,
    },
    RuntimeResponded {
        request_id: String,
    },
    InvokeEnd {
        request_id: String,
        status: Status,
        error_type: Option<String>,
        duration_ms: f64,
    },
    Frozen,
    Thawed,
    ShutdownStart {
        reason: ShutdownReason,
        deadline_ms: u64,
    },
    Signalled {
        process: String,
        signal: Signal,
    },
    ProcessExited {
        process: String,
        exit: ExitInfo,
    },
    ShutdownComplete,
}

#[derive(Debug)]
pub enum Action {
    Reply {
        token: Token,
        reply: Reply,
    },
    Spawn {
        proc: ProcId,
    },
    Signal {
        proc: ProcId,
        signal: Signal,
    },
    Freeze,
    Thaw,
    Timer {
        id: TimerId,
        at: Instant,
    },
    /// A platform record for the telemetry stream (in order).
    Emit(Event),
    /// Start delivering telemetry to an extension.
    Subscribe {
        extension: String,
        subscription: Subscription,
    },
    InvokeResult {
        token: Token,
        result: InvokeResult,
    },
    Rejected {
        token: Token,
        rejection: Rejection,
    },
    /// Deliver what is pending to subscribers, then answer with `TelemetryFlushed`.
    FlushTelemetry {
        generation: u64,
        deadline: Instant,
    },
    /// Reset the memory peak (a new environment instance begins).
    ResetMemoryPeak,
    Observe(Observation),
    ShutdownComplete,
}
