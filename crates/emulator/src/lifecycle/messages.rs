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
/// A signal the lifecycle sends a process.
pub enum Signal {
    /// SIGTERM: the runtime's notice at spin-down.
    Term,
    /// SIGKILL.
    Kill,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitInfo {
    /// Its exit status, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
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
    /// The event, as the runtime receives it.
    pub payload: Bytes,
    /// Decoded client context JSON (the Invoke API sends it base64-encoded).
    pub client_context: Option<String>,
    /// Cognito identity JSON (mobile SDK callers).
    pub cognito_identity: Option<String>,
    /// `X-Amzn-Trace-Id` of the caller; one is generated when absent.
    pub trace_id: Option<String>,
    /// `X-Amz-Log-Type: Tail`: answer only after the report, with the log tail.
    pub want_tail: bool,
}

/// What the caller of an invocation gets.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeResult {
    /// The invocation's request id.
    pub request_id: String,
    /// The function's response, or the error body when it failed.
    pub payload: Bytes,
    /// `Some("Unhandled")` when the function failed (the Invoke API's `X-Amz-Function-Error`).
    pub function_error: Option<String>,
    /// The error type when the invocation failed.
    pub error_type: Option<String>,
    /// How the invocation ended.
    pub status: Status,
    /// The caller asked for the log tail.
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
        /// `(error type, decoded error body)` from the streaming trailers.
        error_trailer: Option<(String, Bytes)>,
    },
    RuntimeResponseTooLarge {
        request_id: String,
        size: usize,
        limit: usize,
    },
    /// A response is about to be read: may `request_id` be answered? (Asked before the
    /// body is read, so that a body for an unknown id is never buffered.)
    ResponseStart {
        request_id: String,
    },
    /// The response body ended before its announced end.
    RuntimeResponseTruncated {
        request_id: String,
        received: usize,
        error: String,
    },
    RuntimeError {
        request_id: String,
        error_type: Option<String>,
        body: Bytes,
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
        /// `runtime` or the extension's file name.
        process: String,
        /// Its process id (and process group).
        pid: i32,
    },
    /// An init began.
    InitStart {
        /// `init`, or `invoke` for a suppressed init.
        phase: tm::Phase,
    },
    /// An extension registered.
    ExtensionRegistered {
        /// The name it registered under.
        name: String,
        /// The identifier it was given.
        id: String,
        /// Launched from the extensions (else registered from the runtime's process).
        external: bool,
        /// The events it registered for.
        events: Vec<String>,
    },
    /// An extension called `next` for the first time.
    ExtensionReady {
        /// Its name.
        name: String,
    },
    /// The runtime called `next` for the first time.
    RuntimeReady,
    /// An init ended, however it ended.
    InitEnd {
        /// How it ended.
        status: Status,
        /// Why it failed, when it did.
        error_type: Option<String>,
        /// How long it took.
        duration_ms: f64,
    },
    /// An invocation began.
    InvokeStart {
        /// Its request id.
        request_id: String,
    },
    /// An event was given to an extension (now, or at its next `next`).
    EventDelivered {
        /// The extension's name.
        extension: String,
        /// The event.
        event: NextEvent,
    },
    /// The runtime answered an invocation (response or error).
    RuntimeResponded {
        /// The invocation's request id.
        request_id: String,
    },
    /// An invocation ended (its report).
    InvokeEnd {
        /// Its request id.
        request_id: String,
        /// How it ended.
        status: Status,
        /// Why it failed, when it did.
        error_type: Option<String>,
        /// Its duration, as reported.
        duration_ms: f64,
    },
    /// The processes were frozen.
    Frozen,
    /// The processes were thawed.
    Thawed,
    /// A shutdown or reset began.
    ShutdownStart {
        /// Why.
        reason: ShutdownReason,
        /// When what is left is killed, milliseconds since the epoch.
        deadline_ms: u64,
    },
    /// A process was sent a signal.
    Signalled {
        /// `runtime` or the extension's file name.
        process: String,
        /// Which signal.
        signal: Signal,
    },
    /// A process ended.
    ProcessExited {
        /// `runtime` or the extension's file name.
        process: String,
        /// How it ended.
        exit: ExitInfo,
    },
    /// The environment shut down; nothing runs any more.
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
    /// The shutdown deadline passed: deliver no more telemetry (Lambda stops there).
    StopTelemetry,
    /// A line Lambda writes to the function's log that no record carries (the message
    /// of a runtime crash).
    ConsoleLine(String),
    /// Reset the memory peak (a new environment instance begins).
    ResetMemoryPeak,
    Observe(Observation),
    ShutdownComplete,
}
