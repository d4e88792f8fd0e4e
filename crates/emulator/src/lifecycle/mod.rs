//! lifecycle: the execution environment's state machine, sans-I/O.
//!
//! Owns every decision Lambda's platform makes: when processes start, when init is
//! complete or has failed, which extension receives which event, when an invoke ends,
//! when the environment freezes, how it is reset or shut down, and which platform
//! records are emitted. It takes [`Input`]s (API calls, process exits, timers) with the
//! current time and returns [`Action`]s (replies, spawns, signals, timers, records).
//!
//! It must never do I/O, read the clock or spawn tasks: the driver does all of that,
//! which is what makes the whole lifecycle unit-testable without sockets and free of
//! lost wake-ups (one owner, no shared mutable state).

mod registry;
#[cfg(test)]
mod tests;

use crate::clock::{ms_between, Clock};
use bytes::Bytes;
pub use registry::{ExtState, Extension};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tandem_wire::error::types as et;
use tandem_wire::extensions::{InvokeEvent, InvokeTracing, NextEvent, ShutdownEvent};
use tandem_wire::runtime::InvocationContext;
use tandem_wire::subscription::{Api, Subscription};
use tandem_wire::telemetry::{
    self as tm, InitStart, InitializationType, PhaseDone, PhaseMetrics, PhaseReport, Record, Report, ReportMetrics,
    RuntimeDone, RuntimeDoneMetrics, Span, Start, Status, TraceContext,
};
use tandem_wire::{headers, ErrorResponse, Event, ShutdownReason, StatusResponse};

/// Identifies a pending HTTP request (API call or invoke caller) in the driver.
pub type Token = u64;

/// Default limits of the cloud.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_EXTENSIONS: usize = 10;
const SHUTDOWN_BUDGET_EXTERNAL: Duration = Duration::from_millis(2000);
const SHUTDOWN_BUDGET_INTERNAL: Duration = Duration::from_millis(500);
const RUNTIME_TERM_GRACE: Duration = Duration::from_millis(300);
const RUNTIME_TERM_GRACE_INTERNAL: Duration = Duration::from_millis(500);
/// How long to wait for SIGKILLed processes to be reaped before giving up on them.
const KILL_REAP_GRACE: Duration = Duration::from_secs(2);

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
    fn json<T: serde::Serialize>(status: u16, value: &T) -> Self {
        Reply {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: serde_json::to_vec(value).map(Bytes::from).unwrap_or_default(),
        }
    }

    fn error(status: u16, error_type: &str, message: impl Into<String>) -> Self {
        Reply::json(status, &ErrorResponse::new(error_type, message))
    }

    fn accepted() -> Self {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseState {
    /// Not started yet.
    Idle,
    Initializing,
    Ready,
    Invoking,
    TearingDown,
    /// Reset (or init failed): the next invocation re-initialises (phase `invoke`).
    NeedsInit,
    Done,
}

#[derive(Debug)]
struct Queued {
    token: Token,
    request_id: String,
    request: InvokeRequest,
}

#[derive(Debug)]
struct Init {
    start: Instant,
    phase: tm::Phase,
    runtime_spawned: bool,
    runtime_done_emitted: bool,
    registration_closed: bool,
    failure: Option<Failure>,
    /// An invocation waiting for this (suppressed) init.
    attached: Option<Queued>,
}

#[derive(Debug, Clone)]
struct Failure {
    status: Status,
    error_type: String,
    message: String,
}

#[derive(Debug)]
struct Runtime {
    alive: bool,
    parked: Option<Token>,
}

#[derive(Debug)]
struct Launched {
    name: String,
    alive: bool,
    registered: bool,
}

#[derive(Debug)]
struct ResponseInfo {
    first_byte: Instant,
    last_byte: Instant,
    bytes: u64,
}

#[derive(Debug)]
struct Invoke {
    seq: u64,
    caller: Option<Token>,
    want_tail: bool,
    request_id: String,
    /// Start of the billed duration (the init start for a suppressed init).
    start: Instant,
    /// When the event went to the runtime.
    dispatched: Instant,
    tracing: TraceContext,
    responded: bool,
    response: Option<ResponseInfo>,
    status: Status,
    error_type: Option<String>,
    runtime_next: Option<Instant>,
    runtime_done_emitted: bool,
    /// Extensions (by index in `exts`) that got INVOKE and have not called `next` yet.
    pending: Vec<usize>,
    last_ext_next: Option<Instant>,
    init_duration_ms: Option<f64>,
}

/// How an invocation ended, for its report.
struct Ending {
    request_id: String,
    status: Status,
    error_type: Option<String>,
    duration_ms: f64,
    init_duration_ms: Option<f64>,
    spans: Option<Vec<Span>>,
    tracing: TraceContext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Reinit,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    StopRuntime,
    Flush,
    WaitExtensions,
    Killing,
}

#[derive(Debug)]
struct Teardown {
    reason: ShutdownReason,
    then: After,
    deadline: Instant,
    stage: Stage,
}

/// The state machine. See the module documentation.
pub struct Lifecycle {
    cfg: LifecycleConfig,
    clock: Clock,
    generation: u64,
    phase: PhaseState,
    exts: Vec<Extension>,
    launched: Vec<Launched>,
    runtime: Runtime,
    init: Option<Init>,
    queue: VecDeque<Queued>,
    invoke: Option<Invoke>,
    teardown: Option<Teardown>,
    invoke_seq: u64,
    /// The init duration of the cold start, until the first report takes it.
    cold_init_ms: Option<f64>,
    frozen: bool,
    shutdown_requested: bool,
    out: Vec<Action>,
}

impl Lifecycle {
    pub fn new(cfg: LifecycleConfig, clock: Clock) -> Self {
        Self {
            cfg,
            clock,
            generation: 0,
            phase: PhaseState::Idle,
            exts: Vec::new(),
            launched: Vec::new(),
            runtime: Runtime { alive: false, parked: None },
            init: None,
            queue: VecDeque::new(),
            invoke: None,
            teardown: None,
            invoke_seq: 0,
            cold_init_ms: None,
            frozen: false,
            shutdown_requested: false,
            out: Vec::new(),
        }
    }

    pub fn phase(&self) -> PhaseState {
        self.phase
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn extensions(&self) -> &[Extension] {
        &self.exts
    }

    pub fn config(&self) -> &LifecycleConfig {
        &self.cfg
    }

    /// The name of a process, for logs and observations.
    pub fn process_name(&self, kind: ProcKind) -> String {
        match kind {
            ProcKind::Runtime => "runtime".to_owned(),
            ProcKind::Extension(i) => self.cfg.extensions.get(i).cloned().unwrap_or_default(),
        }
    }

    /// Handles one input and returns what to do, in order.
    pub fn handle(&mut self, ctx: Ctx, input: Input) -> Vec<Action> {
        match input {
            Input::Start => {
                if self.phase == PhaseState::Idle {
                    self.begin_init(ctx, tm::Phase::Init, None);
                }
            }
            Input::Invoke { token, request_id, request } => self.on_invoke(ctx, token, request_id, request),
            Input::Shutdown => self.on_shutdown(),
            Input::Api { token, call } => self.on_api(ctx, token, call),
            Input::SpawnFailed { proc, error } => self.on_spawn_failed(ctx, proc, error),
            Input::Exited { proc, exit } => self.on_exited(ctx, proc, exit),
            Input::Timer(id) => self.on_timer(ctx, id),
            Input::TelemetryFlushed { generation } => {
                if generation == self.generation {
                    if let Some(td) = self.teardown.as_mut().filter(|t| t.stage == Stage::Flush) {
                        td.stage = Stage::WaitExtensions;
                        self.send_shutdown_events(ctx);
                    }
                }
            }
        }
        self.advance(ctx);
        std::mem::take(&mut self.out)
    }

    // ----- helpers -------------------------------------------------------------------

    fn reply(&mut self, token: Token, reply: Reply) {
        self.out.push(Action::Reply { token, reply });
    }

    fn fail(&mut self, token: Token, status: u16, error_type: &str, message: impl Into<String>) {
        self.reply(token, Reply::error(status, error_type, message));
    }

    fn emit(&mut self, at: Instant, record: Record) {
        let event = Event::new(self.clock.rfc3339(at), record);
        self.out.push(Action::Emit(event));
    }

    fn observe(&mut self, o: Observation) {
        self.out.push(Action::Observe(o));
    }

    fn timer(&mut self, id: TimerId, at: Instant) {
        self.out.push(Action::Timer { id, at });
    }

    fn thaw(&mut self) {
        if self.frozen {
            self.frozen = false;
            self.out.push(Action::Thaw);
            self.observe(Observation::Thawed);
        }
    }

    /// Answers the parked `next` of `token` with an error: its caller's instance is gone.
    fn refuse_parked(&mut self, token: Token, runtime: bool) {
        let kind = if runtime { et::INVALID_STATE_TRANSITION } else { et::EXTENSION_INVALID_STATE };
        self.fail(
            token,
            403,
            kind,
            "The execution environment was reset; this call belongs to an instance that is gone",
        );
    }

    /// Answers every parked `next` before the state holding it is dropped, so that no
    /// request is left hanging.
    fn release_parked(&mut self) {
        if let Some(t) = self.runtime.parked.take() {
            self.refuse_parked(t, true);
        }
        let tokens: Vec<Token> = self.exts.iter_mut().filter_map(|e| e.parked.take()).collect();
        for t in tokens {
            self.refuse_parked(t, false);
        }
    }

    fn proc(&self, kind: ProcKind) -> ProcId {
        ProcId { generation: self.generation, kind }
    }

    fn any_process_alive(&self) -> bool {
        self.runtime.alive || self.launched.iter().any(|l| l.alive)
    }

    /// Delivers `event` to extension `i` now if it waits in `next`, else at its next `next`.
    fn deliver(&mut self, i: usize, event: NextEvent) {
        let ext = &mut self.exts[i];
        ext.state = ExtState::Busy;
        let name = ext.name.clone();
        match ext.parked.take() {
            Some(token) => {
                let mut reply = Reply::json(200, &event);
                reply.headers.push((headers::EXTENSION_EVENT_IDENTIFIER, uuid::Uuid::new_v4().to_string()));
                self.reply(token, reply);
            }
            None => ext.queued.push_back(event.clone()),
        }
        self.observe(Observation::EventDelivered { extension: name, event });
    }

    // ----- init ----------------------------------------------------------------------

    fn begin_init(&mut self, ctx: Ctx, phase: tm::Phase, attached: Option<Queued>) {
        self.release_parked();
        self.generation += 1;
        self.phase = PhaseState::Initializing;
        self.exts.clear();
        self.launched = self
            .cfg
            .extensions
            .iter()
            .map(|name| Launched { name: name.clone(), alive: true, registered: false })
            .collect();
        self.runtime = Runtime { alive: false, parked: None };
        self.init = Some(Init {
            start: ctx.now,
            phase: phase.clone(),
            runtime_spawned: false,
            runtime_done_emitted: false,
            registration_closed: false,
            failure: None,
            attached,
        });
        self.out.push(Action::ResetMemoryPeak);
        self.emit(
            ctx.now,
            Record::InitStart(InitStart {
                initialization_type: InitializationType::OnDemand,
                phase: phase.clone(),
                function_name: Some(self.cfg.function_name.clone()),
                function_version: Some(self.cfg.function_version.clone()),
                instance_id: None,
                instance_max_memory: Some(self.cfg.memory_mb),
                runtime_version: None,
                runtime_version_arn: None,
                tracing: None,
            }),
        );
        self.observe(Observation::InitStart { phase: phase.clone() });
        // Every extension starts at once; the runtime waits for their registrations.
        for i in 0..self.launched.len() {
            let proc = self.proc(ProcKind::Extension(i));
            self.out.push(Action::Spawn { proc });
        }
        let limit = match phase {
            tm::Phase::Init => self.cfg.init_timeout,
            _ => self.cfg.timeout,
        };
        self.timer(TimerId::Init(self.generation), ctx.now + limit);
    }

    fn init_failed(&mut self, status: Status, error_type: &str, message: String) {
        if let Some(init) = self.init.as_mut() {
            if init.failure.is_none() {
                init.failure = Some(Failure { status, error_type: error_type.to_owned(), message });
            }
        }
    }

    fn advance_init(&mut self, ctx: Ctx) -> bool {
        let Some(init) = self.init.as_mut() else {
            return false;
        };
        if let Some(f) = init.failure.clone() {
            let init = match self.init.take() {
                Some(i) => i,
                None => return false,
            };
            self.finish_failed_init(ctx, init, f);
            return true;
        }
        if !init.runtime_spawned {
            if self.launched.iter().all(|l| l.registered) {
                init.runtime_spawned = true;
                self.runtime.alive = true;
                let proc = self.proc(ProcKind::Runtime);
                self.out.push(Action::Spawn { proc });
                return true;
            }
            return false;
        }
        let all_ready = self.exts.iter().all(|e| e.parked.is_some());
        if self.runtime.parked.is_none() || !all_ready {
            return false;
        }
        let Some(init) = self.init.take() else {
            return false;
        };
        let duration_ms = ms_between(init.start, ctx.now);
        self.end_init(ctx, &init.phase, Status::Success, None, duration_ms);
        self.phase = PhaseState::Ready;
        match init.attached {
            Some(q) => {
                // A suppressed init: its time is part of the invocation it serves.
                self.start_invoke(ctx, q, Some(init.start));
            }
            None => self.cold_init_ms = Some(duration_ms),
        }
        true
    }

    fn emit_init_runtime_done(&mut self, at: Instant, phase: &tm::Phase, status: Status, error_type: Option<String>) {
        let record = PhaseDone {
            initialization_type: Some(InitializationType::OnDemand),
            phase: Some(phase.clone()),
            status,
            error_type,
            spans: None,
            tracing: None,
        };
        self.emit(at, Record::InitRuntimeDone(record));
    }

    /// Ends an init, however it ended: its `platform.initReport` and the observation.
    fn end_init(&mut self, ctx: Ctx, phase: &tm::Phase, status: Status, error_type: Option<String>, duration_ms: f64) {
        let record = PhaseReport {
            initialization_type: Some(InitializationType::OnDemand),
            phase: Some(phase.clone()),
            status: status.clone(),
            error_type: error_type.clone(),
            metrics: Some(PhaseMetrics { duration_ms }),
            spans: None,
            tracing: None,
        };
        self.emit(ctx.now, Record::InitReport(record));
        self.observe(Observation::InitEnd { status, error_type, duration_ms });
    }

    fn finish_failed_init(&mut self, ctx: Ctx, init: Init, f: Failure) {
        let duration_ms = ms_between(init.start, ctx.now);
        if init.runtime_spawned && !init.runtime_done_emitted {
            self.emit_init_runtime_done(ctx.now, &init.phase, f.status.clone(), Some(f.error_type.clone()));
        }
        self.end_init(ctx, &init.phase, f.status.clone(), Some(f.error_type.clone()), duration_ms);
        if let Some(q) = init.attached {
            // The invocation that waited for this init fails with the init's error.
            let tracing = trace_context(&q.request);
            self.emit(
                ctx.now,
                Record::Start(Start {
                    request_id: q.request_id.clone(),
                    version: Some(self.cfg.function_version.clone()),
                    tracing: Some(tracing.clone()),
                }),
            );
            let payload = error_payload(&f.error_type, &format!("RequestId: {} Error: {}", q.request_id, f.message));
            let duration_ms = ms_between(init.start, ctx.now);
            self.out.push(Action::InvokeResult {
                token: q.token,
                result: InvokeResult {
                    request_id: q.request_id.clone(),
                    payload,
                    function_error: Some(et::FUNCTION_ERROR_UNHANDLED.into()),
                    error_type: Some(f.error_type.clone()),
                    status: f.status.clone(),
                    want_tail: q.request.want_tail,
                },
            });
            self.emit(
                ctx.now,
                Record::RuntimeDone(RuntimeDone {
                    request_id: q.request_id.clone(),
                    status: f.status.clone(),
                    error_type: Some(f.error_type.clone()),
                    metrics: Some(RuntimeDoneMetrics { duration_ms, produced_bytes: Some(0) }),
                    spans: None,
                    tracing: Some(tracing.clone()),
                }),
            );
            self.end_invocation(
                ctx,
                Ending {
                    request_id: q.request_id,
                    status: f.status.clone(),
                    error_type: Some(f.error_type.clone()),
                    duration_ms,
                    init_duration_ms: None,
                    spans: None,
                    tracing,
                },
            );
        }
        self.begin_teardown(ctx, ShutdownReason::Failure, After::Reinit);
    }

    // ----- invoke --------------------------------------------------------------------

    fn on_invoke(&mut self, _ctx: Ctx, token: Token, request_id: String, request: InvokeRequest) {
        if self.shutdown_requested || matches!(self.phase, PhaseState::Done) {
            self.out.push(Action::Rejected { token, rejection: Rejection::ShuttingDown });
            return;
        }
        if self.queue.len() >= self.cfg.queue_limit {
            self.out.push(Action::Rejected { token, rejection: Rejection::TooManyRequests });
            return;
        }
        self.queue.push_back(Queued { token, request_id, request });
    }

    fn start_invoke(&mut self, ctx: Ctx, q: Queued, init_start: Option<Instant>) {
        self.thaw();
        self.invoke_seq += 1;
        let seq = self.invoke_seq;
        let deadline = ctx.now + self.cfg.timeout;
        let deadline_ms = self.clock.epoch_ms(deadline);
        let tracing = trace_context(&q.request);
        let arn = self.cfg.function_arn();
        self.emit(
            ctx.now,
            Record::Start(Start {
                request_id: q.request_id.clone(),
                version: Some(self.cfg.function_version.clone()),
                tracing: Some(tracing.clone()),
            }),
        );
        self.observe(Observation::InvokeStart { request_id: q.request_id.clone() });
        let event = NextEvent::Invoke(InvokeEvent {
            deadline_ms,
            request_id: q.request_id.clone(),
            invoked_function_arn: arn.clone(),
            tracing: Some(InvokeTracing { kind: tracing.kind.clone(), value: tracing.value.clone() }),
        });
        let mut pending = Vec::new();
        for i in 0..self.exts.len() {
            if self.exts[i].invoke && self.exts[i].live() {
                pending.push(i);
                self.deliver(i, event.clone());
            }
        }
        let context = InvocationContext {
            request_id: q.request_id.clone(),
            deadline_ms,
            invoked_function_arn: arn,
            trace_id: Some(tracing.value.clone()),
            client_context: q.request.client_context.clone(),
            cognito_identity: q.request.cognito_identity.clone(),
        };
        if let Some(token) = self.runtime.parked.take() {
            let mut headers: Vec<(&'static str, String)> = context.headers();
            headers.push(("Content-Type", "application/json".into()));
            self.reply(token, Reply { status: 200, headers, body: q.request.payload.clone() });
        }
        self.timer(TimerId::Invoke(seq), deadline);
        self.phase = PhaseState::Invoking;
        self.invoke = Some(Invoke {
            seq,
            caller: Some(q.token),
            want_tail: q.request.want_tail,
            request_id: q.request_id,
            start: init_start.unwrap_or(ctx.now),
            dispatched: ctx.now,
            tracing,
            responded: false,
            response: None,
            status: Status::Success,
            error_type: None,
            runtime_next: None,
            runtime_done_emitted: false,
            pending,
            last_ext_next: None,
            init_duration_ms: if init_start.is_none() { self.cold_init_ms.take() } else { None },
        });
    }

    /// Answers the caller (once) with the function's result.
    fn answer_caller(&mut self, payload: Bytes, function_error: bool) {
        let Some(inv) = self.invoke.as_mut() else {
            return;
        };
        let Some(token) = inv.caller.take() else {
            return;
        };
        let result = InvokeResult {
            request_id: inv.request_id.clone(),
            payload,
            function_error: function_error.then(|| et::FUNCTION_ERROR_UNHANDLED.to_owned()),
            error_type: inv.error_type.clone(),
            status: inv.status.clone(),
            want_tail: inv.want_tail,
        };
        self.out.push(Action::InvokeResult { token, result });
    }

    fn emit_runtime_done(&mut self, ctx: Ctx) {
        let Some(inv) = self.invoke.as_mut() else {
            return;
        };
        if inv.runtime_done_emitted {
            return;
        }
        inv.runtime_done_emitted = true;
        let end = inv.runtime_next.unwrap_or(ctx.now);
        let mut spans = Vec::new();
        if let Some(r) = &inv.response {
            spans.push(Span {
                name: "responseLatency".into(),
                start: self.clock.rfc3339(inv.dispatched),
                duration_ms: ms_between(inv.dispatched, r.first_byte),
            });
            spans.push(Span {
                name: "responseDuration".into(),
                start: self.clock.rfc3339(r.first_byte),
                duration_ms: ms_between(r.first_byte, r.last_byte),
            });
            if let Some(next) = inv.runtime_next {
                spans.push(Span {
                    name: "runtimeOverhead".into(),
                    start: self.clock.rfc3339(r.last_byte),
                    duration_ms: ms_between(r.last_byte, next),
                });
            }
        }
        let record = RuntimeDone {
            request_id: inv.request_id.clone(),
            status: inv.status.clone(),
            error_type: inv.error_type.clone(),
            metrics: Some(RuntimeDoneMetrics {
                duration_ms: ms_between(inv.dispatched, end),
                produced_bytes: Some(inv.response.as_ref().map_or(0, |r| r.bytes)),
            }),
            spans: (!spans.is_empty()).then_some(spans),
            tracing: Some(inv.tracing.clone()),
        };
        self.emit(ctx.now, Record::RuntimeDone(record));
    }

    /// Ends an invocation as Lambda does: its `platform.report` (once every extension is
    /// done with it, or at once when it failed) and the observation.
    fn end_invocation(&mut self, ctx: Ctx, e: Ending) {
        self.emit(
            ctx.now,
            Record::Report(Report {
                request_id: e.request_id.clone(),
                status: Some(e.status.clone()),
                error_type: e.error_type.clone(),
                metrics: ReportMetrics {
                    duration_ms: e.duration_ms,
                    billed_duration_ms: billed_ms(e.duration_ms),
                    memory_size_mb: self.cfg.memory_mb,
                    // Measured by the driver as it writes the report (memory is I/O).
                    max_memory_used_mb: 0,
                    init_duration_ms: e.init_duration_ms,
                    restore_duration_ms: None,
                    billed_restore_duration_ms: None,
                },
                spans: e.spans,
                tracing: Some(e.tracing),
            }),
        );
        self.observe(Observation::InvokeEnd {
            request_id: e.request_id,
            status: e.status,
            error_type: e.error_type,
            duration_ms: e.duration_ms,
        });
    }

    fn advance_invoke(&mut self, ctx: Ctx) -> bool {
        let Some(inv) = self.invoke.as_ref() else {
            return false;
        };
        let Some(runtime_next) = inv.runtime_next else {
            return false;
        };
        if !inv.pending.is_empty() {
            return false;
        }
        let Some(inv) = self.invoke.take() else {
            return false;
        };
        let end = inv.last_ext_next.map_or(runtime_next, |e| e.max(runtime_next));
        let duration_ms = ms_between(inv.start, end);
        let spans = self.exts.iter().any(|e| e.invoke).then(|| {
            vec![Span {
                name: "extensionOverhead".into(),
                start: self.clock.rfc3339(runtime_next),
                duration_ms: ms_between(runtime_next, end),
            }]
        });
        self.end_invocation(
            ctx,
            Ending {
                request_id: inv.request_id,
                status: inv.status,
                error_type: inv.error_type,
                duration_ms,
                init_duration_ms: inv.init_duration_ms,
                spans,
                tracing: inv.tracing,
            },
        );
        self.phase = PhaseState::Ready;
        true
    }

    /// Fails the invocation in flight (timeout, crash, out of memory) and resets.
    fn abort_invoke(&mut self, ctx: Ctx, status: Status, error_type: &str, message: String) {
        let Some(inv) = self.invoke.as_mut() else {
            return;
        };
        inv.status = status.clone();
        inv.error_type = Some(error_type.to_owned());
        let request_id = inv.request_id.clone();
        let payload = if status == Status::Timeout {
            let body = serde_json::json!({ "errorMessage": format!("{} {} {}", self.clock.rfc3339(ctx.now), request_id, message) });
            Bytes::from(body.to_string())
        } else {
            error_payload(error_type, &format!("RequestId: {request_id} Error: {message}"))
        };
        self.answer_caller(payload, true);
        self.emit_runtime_done(ctx);
        let Some(inv) = self.invoke.take() else {
            return;
        };
        let duration_ms = ms_between(inv.start, ctx.now);
        self.end_invocation(
            ctx,
            Ending {
                request_id: inv.request_id,
                status: status.clone(),
                error_type: Some(error_type.to_owned()),
                duration_ms,
                init_duration_ms: inv.init_duration_ms,
                spans: None,
                tracing: inv.tracing,
            },
        );
        let reason = if status == Status::Timeout { ShutdownReason::Timeout } else { ShutdownReason::Failure };
        self.begin_teardown(ctx, reason, After::Reinit);
    }

    // ----- shutdown and reset --------------------------------------------------------

    fn on_shutdown(&mut self) {
        if self.shutdown_requested {
            return;
        }
        self.shutdown_requested = true;
        for q in std::mem::take(&mut self.queue) {
            self.out.push(Action::Rejected { token: q.token, rejection: Rejection::ShuttingDown });
        }
    }

    fn begin_teardown(&mut self, ctx: Ctx, reason: ShutdownReason, then: After) {
        self.thaw();
        self.phase = PhaseState::TearingDown;
        let any_external = self.exts.iter().any(|e| e.external) || self.launched.iter().any(|l| l.alive);
        let any_internal = self.exts.iter().any(|e| !e.external);
        let budget = if any_external {
            SHUTDOWN_BUDGET_EXTERNAL
        } else if any_internal {
            SHUTDOWN_BUDGET_INTERNAL
        } else {
            Duration::ZERO
        };
        let deadline = ctx.now + budget;
        self.observe(Observation::ShutdownStart { reason: reason.clone(), deadline_ms: self.clock.epoch_ms(deadline) });
        let g = self.generation;
        let mut stage = Stage::Flush;
        if self.runtime.alive {
            stage = Stage::StopRuntime;
            // Lambda gives the runtime SIGTERM only when an extension is registered
            // and the environment spins down; otherwise it is killed.
            if reason == ShutdownReason::Spindown && budget > Duration::ZERO {
                let grace = if any_external { RUNTIME_TERM_GRACE } else { RUNTIME_TERM_GRACE_INTERNAL };
                self.signal(ProcKind::Runtime, Signal::Term);
                self.timer(TimerId::RuntimeGrace(g), ctx.now + grace.min(budget));
            } else {
                self.signal(ProcKind::Runtime, Signal::Kill);
                self.timer(TimerId::RuntimeGrace(g), ctx.now + KILL_REAP_GRACE);
            }
        }
        if budget > Duration::ZERO {
            // Without a budget everything is killed at once; the reap timer covers it.
            self.timer(TimerId::TeardownDeadline(g), deadline);
        }
        self.teardown = Some(Teardown { reason, then, deadline, stage });
        if stage == Stage::Flush {
            self.out.push(Action::FlushTelemetry { generation: g, deadline });
        }
    }

    fn signal(&mut self, kind: ProcKind, signal: Signal) {
        let proc = self.proc(kind);
        self.out.push(Action::Signal { proc, signal });
        self.observe(Observation::Signalled { process: self.process_name(kind), signal });
    }

    fn send_shutdown_events(&mut self, ctx: Ctx) {
        let Some(td) = self.teardown.as_ref() else {
            return;
        };
        let event = NextEvent::Shutdown(ShutdownEvent {
            shutdown_reason: td.reason.clone(),
            deadline_ms: self.clock.epoch_ms(td.deadline),
        });
        let _ = ctx;
        let mut handled = vec![false; self.launched.len()];
        for i in 0..self.exts.len() {
            let ext = &self.exts[i];
            let Some(li) = ext.launched else { continue };
            handled[li] = true;
            if !self.launched[li].alive {
                continue;
            }
            if ext.shutdown && ext.live() {
                self.deliver(i, event.clone());
            } else {
                self.signal(ProcKind::Extension(li), Signal::Kill);
            }
        }
        // Launched but never registered (an init that failed early): nothing to tell.
        for (li, done) in handled.into_iter().enumerate() {
            if !done && self.launched[li].alive {
                self.signal(ProcKind::Extension(li), Signal::Kill);
            }
        }
    }

    fn advance_teardown(&mut self, ctx: Ctx) -> bool {
        let alive = self.any_process_alive();
        let runtime_alive = self.runtime.alive;
        let Some(td) = self.teardown.as_mut() else {
            return false;
        };
        match td.stage {
            Stage::StopRuntime if !runtime_alive => {
                td.stage = Stage::Flush;
                let (g, deadline) = (self.generation, td.deadline);
                self.out.push(Action::FlushTelemetry { generation: g, deadline });
                true
            }
            Stage::WaitExtensions | Stage::Killing if !alive => {
                let then = td.then;
                self.teardown = None;
                self.release_parked();
                self.exts.clear();
                self.launched.clear();
                self.finish_teardown(ctx, then);
                true
            }
            _ => false,
        }
    }

    fn finish_teardown(&mut self, _ctx: Ctx, then: After) {
        match then {
            After::Reinit if !self.shutdown_requested => self.phase = PhaseState::NeedsInit,
            _ => {
                self.phase = PhaseState::Done;
                self.observe(Observation::ShutdownComplete);
                self.out.push(Action::ShutdownComplete);
            }
        }
    }

    // ----- progress ------------------------------------------------------------------

    fn advance(&mut self, ctx: Ctx) {
        // Each step either moves the phase on or reports that nothing changed; the
        // loop is bounded because every productive step consumes a condition.
        for _ in 0..64 {
            let progressed = match self.phase {
                PhaseState::Initializing => self.advance_init(ctx),
                PhaseState::Invoking => self.advance_invoke(ctx),
                PhaseState::TearingDown => self.advance_teardown(ctx),
                PhaseState::Ready => self.advance_ready(ctx),
                PhaseState::NeedsInit => self.advance_needs_init(ctx),
                PhaseState::Idle => {
                    if self.shutdown_requested {
                        self.phase = PhaseState::Done;
                        self.observe(Observation::ShutdownComplete);
                        self.out.push(Action::ShutdownComplete);
                        true
                    } else {
                        false
                    }
                }
                PhaseState::Done => false,
            };
            if !progressed {
                break;
            }
        }
    }

    fn advance_ready(&mut self, ctx: Ctx) -> bool {
        if self.shutdown_requested {
            self.begin_teardown(ctx, ShutdownReason::Spindown, After::Done);
            return true;
        }
        if let Some(q) = self.queue.pop_front() {
            self.start_invoke(ctx, q, None);
            return true;
        }
        if self.cfg.freeze && !self.frozen {
            self.frozen = true;
            self.out.push(Action::Freeze);
            self.observe(Observation::Frozen);
        }
        false
    }

    fn advance_needs_init(&mut self, ctx: Ctx) -> bool {
        if self.shutdown_requested {
            self.phase = PhaseState::Done;
            self.observe(Observation::ShutdownComplete);
            self.out.push(Action::ShutdownComplete);
            return true;
        }
        match self.queue.pop_front() {
            Some(q) => {
                self.begin_init(ctx, tm::Phase::Invoke, Some(q));
                true
            }
            None => false,
        }
    }

    // ----- processes and timers ------------------------------------------------------

    fn on_spawn_failed(&mut self, ctx: Ctx, proc: ProcId, error: String) {
        let _ = ctx;
        if proc.generation != self.generation {
            return;
        }
        match proc.kind {
            ProcKind::Runtime => {
                self.runtime.alive = false;
                self.init_failed(Status::Error, "Runtime.InvalidEntrypoint", error);
            }
            ProcKind::Extension(i) => {
                if let Some(l) = self.launched.get_mut(i) {
                    l.alive = false;
                }
                self.init_failed(Status::Error, et::EXTENSION_LAUNCH_ERROR, error);
            }
        }
    }

    fn on_exited(&mut self, ctx: Ctx, proc: ProcId, exit: ExitInfo) {
        if proc.generation != self.generation {
            return;
        }
        self.observe(Observation::ProcessExited { process: self.process_name(proc.kind), exit });
        let what = match proc.kind {
            ProcKind::Runtime => {
                self.runtime.alive = false;
                let mut gone: Vec<(Token, bool)> = self.runtime.parked.take().map(|t| (t, true)).into_iter().collect();
                for e in self.exts.iter_mut().filter(|e| !e.external) {
                    // Internal extensions live in the runtime's process.
                    e.state = ExtState::Gone;
                    gone.extend(e.parked.take().map(|t| (t, false)));
                }
                for (t, runtime) in gone {
                    self.refuse_parked(t, runtime);
                }
                et::RUNTIME_EXIT_ERROR
            }
            ProcKind::Extension(i) => {
                if let Some(l) = self.launched.get_mut(i) {
                    l.alive = false;
                }
                let mut gone = Vec::new();
                for e in self.exts.iter_mut().filter(|e| e.launched == Some(i)) {
                    e.state = ExtState::Gone;
                    gone.extend(e.parked.take());
                }
                for t in gone {
                    self.refuse_parked(t, false);
                }
                et::EXTENSION_CRASH
            }
        };
        let error_type = if exit.oom { et::RUNTIME_OUT_OF_MEMORY } else { what };
        let message = if exit.oom {
            format!("Runtime exited with error: {exit} (out of memory: limit {} MB)", self.cfg.memory_mb)
        } else if proc.kind == ProcKind::Runtime {
            format!("Runtime exited with error: {exit}")
        } else {
            format!("Extension {} exited: {exit}", self.process_name(proc.kind))
        };
        match self.phase {
            PhaseState::Initializing => self.init_failed(Status::Error, error_type, message),
            PhaseState::Invoking => self.abort_invoke(ctx, Status::Error, error_type, message),
            PhaseState::Ready => self.begin_teardown(ctx, ShutdownReason::Failure, After::Reinit),
            _ => {}
        }
    }

    fn kill_all(&mut self) {
        if self.runtime.alive {
            self.signal(ProcKind::Runtime, Signal::Kill);
        }
        for i in 0..self.launched.len() {
            if self.launched[i].alive {
                self.signal(ProcKind::Extension(i), Signal::Kill);
            }
        }
    }

    fn on_timer(&mut self, ctx: Ctx, id: TimerId) {
        let g = self.generation;
        match id {
            TimerId::Init(gen) if gen == g && self.phase == PhaseState::Initializing => {
                let secs = match self.init.as_ref().map(|i| &i.phase) {
                    Some(tm::Phase::Init) => self.cfg.init_timeout,
                    _ => self.cfg.timeout,
                };
                self.init_failed(
                    Status::Timeout,
                    et::SANDBOX_TIMEOUT,
                    format!("Init timed out after {:.2} seconds", secs.as_secs_f64()),
                );
            }
            TimerId::Invoke(seq) if self.invoke.as_ref().is_some_and(|i| i.seq == seq) => {
                let secs = self.cfg.timeout.as_secs_f64();
                self.abort_invoke(
                    ctx,
                    Status::Timeout,
                    et::SANDBOX_TIMEOUT,
                    format!("Task timed out after {secs:.2} seconds"),
                );
            }
            TimerId::RuntimeGrace(gen) if gen == g => {
                if let Some(td) = self.teardown.as_mut().filter(|t| t.stage == Stage::StopRuntime) {
                    td.stage = Stage::Flush;
                    let deadline = td.deadline;
                    if self.runtime.alive {
                        self.signal(ProcKind::Runtime, Signal::Kill);
                    }
                    self.out.push(Action::FlushTelemetry { generation: g, deadline });
                }
            }
            TimerId::TeardownDeadline(gen) if gen == g => {
                if let Some(td) = self.teardown.as_mut() {
                    if td.stage != Stage::Killing {
                        let flushing = td.stage == Stage::Flush;
                        td.stage = Stage::Killing;
                        if flushing {
                            // Out of time before SHUTDOWN could even be sent.
                            self.send_shutdown_events(ctx);
                        }
                        self.kill_all();
                        self.timer(TimerId::Reap(g), ctx.now + KILL_REAP_GRACE);
                    }
                }
            }
            TimerId::Reap(gen) if gen == g => {
                if let Some(td) = self.teardown.as_ref().filter(|t| t.stage == Stage::Killing) {
                    // Processes that ignore SIGKILL (stuck in the kernel) are given up on.
                    let then = td.then;
                    self.teardown = None;
                    self.runtime.alive = false;
                    self.launched.iter_mut().for_each(|l| l.alive = false);
                    self.release_parked();
                    self.exts.clear();
                    self.launched.clear();
                    self.finish_teardown(ctx, then);
                }
            }
            _ => {}
        }
    }

    // ----- API calls -----------------------------------------------------------------

    fn on_api(&mut self, ctx: Ctx, token: Token, call: ApiCall) {
        match call {
            ApiCall::RuntimeNext => self.on_runtime_next(ctx, token),
            ApiCall::RuntimeResponse { request_id, body, first_byte, last_byte, streaming: _, error_trailer } => {
                if !self.check_invocation(token, &request_id) {
                    return;
                }
                self.reply(token, Reply::accepted());
                let bytes = body.len() as u64;
                if let Some(inv) = self.invoke.as_mut() {
                    inv.responded = true;
                    inv.response = Some(ResponseInfo { first_byte, last_byte, bytes });
                }
                self.observe(Observation::RuntimeResponded { request_id: request_id.clone() });
                match error_trailer {
                    Some((error_type, error_body)) => {
                        if let Some(inv) = self.invoke.as_mut() {
                            inv.status = status_for(&error_type);
                            inv.error_type = Some(error_type.clone());
                        }
                        let mut payload = body.to_vec();
                        payload.extend_from_slice(&error_body);
                        self.answer_caller(Bytes::from(payload), true);
                    }
                    None => self.answer_caller(body, false),
                }
            }
            ApiCall::RuntimeResponseTooLarge { request_id, size, limit } => {
                if !self.check_invocation(token, &request_id) {
                    return;
                }
                self.fail(
                    token,
                    413,
                    et::REQUEST_ENTITY_TOO_LARGE,
                    format!("Exceeded maximum allowed payload size ({limit} bytes)."),
                );
                let now = ctx.now;
                if let Some(inv) = self.invoke.as_mut() {
                    inv.responded = true;
                    inv.response = Some(ResponseInfo { first_byte: now, last_byte: now, bytes: 0 });
                    inv.status = Status::Error;
                    inv.error_type = Some(et::FUNCTION_RESPONSE_TOO_LARGE.into());
                }
                let payload = error_payload(
                    et::FUNCTION_RESPONSE_TOO_LARGE,
                    &format!(
                        "Response payload size ({size} bytes) exceeded maximum allowed payload size ({limit} bytes)."
                    ),
                );
                self.answer_caller(payload, true);
            }
            ApiCall::RuntimeError { request_id, error_type, body, xray_cause: _, received } => {
                if !self.check_invocation(token, &request_id) {
                    return;
                }
                self.reply(token, Reply::accepted());
                let (error_type, parsed) = runtime_error(error_type, &body);
                let payload =
                    if parsed.is_some() { body } else { error_payload(&error_type, &String::from_utf8_lossy(&body)) };
                if let Some(inv) = self.invoke.as_mut() {
                    inv.responded = true;
                    inv.response = Some(ResponseInfo { first_byte: received, last_byte: received, bytes: 0 });
                    inv.status = status_for(&error_type);
                    inv.error_type = Some(error_type);
                }
                self.observe(Observation::RuntimeResponded { request_id });
                self.answer_caller(payload, true);
            }
            ApiCall::RuntimeInitError { error_type, body } => {
                let before_first_next = self.phase == PhaseState::Initializing
                    && self.init.as_ref().is_some_and(|i| i.runtime_spawned && !i.runtime_done_emitted);
                if !before_first_next {
                    return self.fail(
                        token,
                        403,
                        et::INVALID_STATE_TRANSITION,
                        "init/error is only allowed during init, before the first next",
                    );
                }
                self.reply(token, Reply::accepted());
                let (error_type, parsed) = runtime_error(error_type, &body);
                let message =
                    parsed.and_then(|p| p.error_message).unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                self.init_failed(status_for(&error_type), &error_type, message);
            }
            ApiCall::ExtRegister { name, body, accept_account_id } => {
                self.on_register(ctx, token, name, body, accept_account_id)
            }
            ApiCall::ExtNext { id } => self.on_ext_next(ctx, token, id),
            ApiCall::ExtInitError { id, error_type, body } => self.on_ext_error(ctx, token, id, error_type, body, true),
            ApiCall::ExtExitError { id, error_type, body } => {
                self.on_ext_error(ctx, token, id, error_type, body, false)
            }
            ApiCall::Subscribe { api, id, body } => self.on_subscribe(ctx, token, api, id, body),
        }
    }

    /// Checks that `request_id` may be answered now; replies with the error if not.
    fn check_invocation(&mut self, token: Token, request_id: &str) -> bool {
        match self.invoke.as_ref() {
            Some(inv) if inv.request_id == request_id => {
                if inv.responded {
                    self.fail(
                        token,
                        403,
                        et::INVALID_STATE_TRANSITION,
                        format!("Invocation {request_id} has already been answered"),
                    );
                    false
                } else {
                    true
                }
            }
            Some(_) => {
                self.fail(token, 400, et::INVALID_REQUEST_ID, format!("Invalid request ID: {request_id}"));
                false
            }
            None => {
                self.fail(
                    token,
                    400,
                    et::INVALID_REQUEST_ID,
                    format!("No invocation in progress with request ID {request_id}"),
                );
                false
            }
        }
    }

    fn on_runtime_next(&mut self, ctx: Ctx, token: Token) {
        if self.runtime.parked.is_some() {
            return self.fail(
                token,
                403,
                et::INVALID_STATE_TRANSITION,
                "The runtime is already waiting for the next invocation",
            );
        }
        match self.phase {
            PhaseState::Initializing => {
                let phase = match self.init.as_mut() {
                    Some(init) if !init.runtime_done_emitted => {
                        init.runtime_done_emitted = true;
                        init.registration_closed = true;
                        Some(init.phase.clone())
                    }
                    _ => None,
                };
                if let Some(phase) = phase {
                    self.emit_init_runtime_done(ctx.now, &phase, Status::Success, None);
                    self.observe(Observation::RuntimeReady);
                }
                self.runtime.parked = Some(token);
            }
            PhaseState::Invoking => {
                let responded = self.invoke.as_ref().is_some_and(|i| i.responded);
                if !responded {
                    return self.fail(
                        token,
                        403,
                        et::INVALID_STATE_TRANSITION,
                        "The runtime asked for the next invocation before answering the current one",
                    );
                }
                if let Some(inv) = self.invoke.as_mut() {
                    if inv.runtime_next.is_none() {
                        inv.runtime_next = Some(ctx.now);
                    }
                }
                self.runtime.parked = Some(token);
                self.emit_runtime_done(ctx);
            }
            _ => self.runtime.parked = Some(token),
        }
    }

    fn on_ext_next(&mut self, ctx: Ctx, token: Token, id: Option<String>) {
        let i = match self.lookup(id.as_deref()) {
            Ok(i) => i,
            Err(r) => return self.reply(token, r),
        };
        let ext = &mut self.exts[i];
        if matches!(ext.state, ExtState::InitError | ExtState::ExitError | ExtState::Gone) {
            let why = if ext.state == ExtState::Gone { "is no longer running" } else { "reported an error" };
            let name = ext.name.clone();
            return self.fail(
                token,
                403,
                et::EXTENSION_INVALID_STATE,
                format!("Extension {name} {why}; no further calls are accepted"),
            );
        }
        if ext.parked.is_some() {
            let name = ext.name.clone();
            return self.fail(
                token,
                403,
                et::EXTENSION_INVALID_STATE,
                format!("Extension {name} is already waiting for the next event"),
            );
        }
        let first = ext.state == ExtState::Registered;
        ext.state = ExtState::Waiting;
        ext.parked = Some(token);
        let queued = ext.queued.pop_front();
        if first {
            let info = tm::ExtensionInfo {
                name: ext.name.clone(),
                state: "Ready".into(),
                events: ext.event_names(),
                error_type: None,
            };
            let name = ext.name.clone();
            self.emit(ctx.now, Record::Extension(info));
            self.observe(Observation::ExtensionReady { name });
        }
        if let Some(inv) = self.invoke.as_mut() {
            if let Some(pos) = inv.pending.iter().position(|&p| p == i) {
                inv.pending.swap_remove(pos);
                inv.last_ext_next = Some(ctx.now);
            }
        }
        if let Some(event) = queued {
            if let Some(token) = self.exts[i].parked.take() {
                self.exts[i].state = ExtState::Busy;
                let mut reply = Reply::json(200, &event);
                reply.headers.push((headers::EXTENSION_EVENT_IDENTIFIER, uuid::Uuid::new_v4().to_string()));
                self.reply(token, reply);
            }
        }
    }

    fn on_ext_error(
        &mut self,
        ctx: Ctx,
        token: Token,
        id: Option<String>,
        error_type: Option<String>,
        body: Bytes,
        init: bool,
    ) {
        let i = match self.lookup(id.as_deref()) {
            Ok(i) => i,
            Err(r) => return self.reply(token, r),
        };
        let Some(error_type) = error_type.filter(|t| !t.is_empty()) else {
            return self.fail(
                token,
                403,
                et::EXTENSION_MISSING_HEADER,
                format!("Missing header {}", headers::EXTENSION_FUNCTION_ERROR_TYPE),
            );
        };
        let ext = &self.exts[i];
        let allowed = if init {
            ext.state == ExtState::Registered && self.phase == PhaseState::Initializing
        } else {
            !matches!(ext.state, ExtState::InitError | ExtState::ExitError)
        };
        if !allowed {
            let what = if init { "init/error" } else { "exit/error" };
            let name = ext.name.clone();
            return self.fail(
                token,
                403,
                et::EXTENSION_INVALID_STATE,
                format!("Extension {name} cannot report {what} in its current state"),
            );
        }
        self.reply(token, Reply::accepted());
        let name = self.exts[i].name.clone();
        let detail: Option<tandem_wire::ErrorRequest> = serde_json::from_slice(&body).ok();
        let message = detail.and_then(|d| d.error_message).map_or_else(
            || format!("Extension {name} reported {error_type}"),
            |m| format!("Extension {name} reported {error_type}: {m}"),
        );
        self.exts[i].state = if init { ExtState::InitError } else { ExtState::ExitError };
        if let Some(t) = self.exts[i].parked.take() {
            self.refuse_parked(t, false);
        }
        let fatal = if init { et::EXTENSION_INIT_ERROR } else { et::EXTENSION_EXIT_ERROR };
        match self.phase {
            PhaseState::Initializing => self.init_failed(Status::Error, fatal, message),
            PhaseState::Invoking => self.abort_invoke(ctx, Status::Error, fatal, message),
            PhaseState::Ready => self.begin_teardown(ctx, ShutdownReason::Failure, After::Reinit),
            _ => {}
        }
    }

    fn on_subscribe(&mut self, ctx: Ctx, token: Token, api: Api, id: Option<String>, body: Bytes) {
        let (validation, closed, conflict) = match api {
            Api::Telemetry => (et::TELEMETRY_VALIDATION, et::TELEMETRY_SUBSCRIPTION_CLOSED, et::TELEMETRY_CONFLICT),
            Api::Logs => (et::LOGS_VALIDATION, et::LOGS_SUBSCRIPTION_CLOSED, et::LOGS_CONFLICT),
        };
        let i = match self.lookup(id.as_deref()) {
            Ok(i) => i,
            Err(r) => return self.reply(token, r),
        };
        if self.phase != PhaseState::Initializing {
            return self.fail(token, 403, closed, "Subscriptions are accepted only during the init phase");
        }
        if let Some(other) = self.exts[i].api.filter(|a| *a != api) {
            let name = self.exts[i].name.clone();
            let other = if other == Api::Telemetry { "Telemetry" } else { "Logs" };
            return self.fail(
                token,
                403,
                conflict,
                format!("Extension {name} already subscribed through the {other} API; the Telemetry and Logs APIs are mutually exclusive"),
            );
        }
        let request: tandem_wire::SubscribeRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return self.fail(token, 400, validation, format!("The request body is not a valid subscription: {e}"))
            }
        };
        let subscription = match request.validate(api) {
            Ok(s) => s,
            Err(msg) => return self.fail(token, 400, validation, msg),
        };
        let ext = &mut self.exts[i];
        ext.api = Some(api);
        let name = ext.name.clone();
        let types: Vec<String> = subscription.types.iter().map(|t| t.as_str().to_owned()).collect();
        self.out.push(Action::Subscribe { extension: name.clone(), subscription });
        let info = tm::SubscriptionInfo { name, state: "Subscribed".into(), types };
        let record = match api {
            Api::Telemetry => Record::TelemetrySubscription(info),
            Api::Logs => Record::LogsSubscription(info),
        };
        self.emit(ctx.now, record);
        self.reply(
            token,
            Reply {
                status: 200,
                headers: vec![("Content-Type", "text/plain".into())],
                body: Bytes::from_static(b"OK"),
            },
        );
    }
}

/// The trace header of an invocation: the caller's, or a fresh unsampled one as Lambda
/// generates when tracing is not active.
fn trace_context(request: &InvokeRequest) -> TraceContext {
    let value = request.trace_id.clone().filter(|t| !t.is_empty()).unwrap_or_else(new_trace_header);
    TraceContext { span_id: None, kind: "X-Amzn-Trace-Id".into(), value }
}

fn new_trace_header() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("Root=1-{secs:08x}-{};Parent={};Sampled=0", &id[..24], &id[16..32])
}

/// The error type of a runtime's `…/error` post: its header, else the body's
/// `errorType`, else `Runtime.Unknown`; with the body, when it is the usual JSON.
fn runtime_error(header: Option<String>, body: &[u8]) -> (String, Option<tandem_wire::ErrorRequest>) {
    let parsed: Option<tandem_wire::ErrorRequest> = serde_json::from_slice(body).ok();
    let error_type = header
        .filter(|t| !t.is_empty())
        .or_else(|| parsed.as_ref().and_then(|p| p.error_type.clone()))
        .unwrap_or_else(|| et::RUNTIME_UNKNOWN.to_owned());
    (error_type, parsed)
}

/// Lambda's rule: timeouts are `timeout`, platform faults (`Sandbox.*`) `failure`,
/// everything else `error`.
pub fn status_for(error_type: &str) -> Status {
    if error_type == et::SANDBOX_TIMEOUT {
        Status::Timeout
    } else if error_type.starts_with("Sandbox.") {
        Status::Failure
    } else {
        Status::Error
    }
}

/// Billed duration: the duration rounded up to the next millisecond.
pub fn billed_ms(duration_ms: f64) -> u64 {
    duration_ms.max(0.0).ceil() as u64
}

fn error_payload(error_type: &str, message: &str) -> Bytes {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    Bytes::from(body.to_string())
}
