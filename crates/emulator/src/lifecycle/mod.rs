//! lifecycle: the execution environment's state machine, sans-I/O.
//!
//! Owns every decision Lambda's platform makes: when processes start, when init is
//! complete or has failed, which extension receives which event, when an invoke ends,
//! when the environment freezes, how it is reset or shut down, and which platform
//! records are emitted. It takes [`Input`]s (API calls, process exits, timers) with the
//! current time and returns [`Action`]s (replies, spawns, signals, timers, records).
//!
//! It must never do I/O, read the clock, draw random numbers or spawn tasks: the driver
//! does all of that (the time comes in [`Ctx`], request ids with each invocation, and
//! the seed every other identifier is derived from at [`Lifecycle::new`]), which is what
//! makes the whole lifecycle deterministic, unit-testable without sockets and free of
//! lost wake-ups (one owner, no shared mutable state).
//!
//! This file owns the state and the loop that moves it on; each concern has its room:
//! [`messages`] (inputs, actions, observations), `init`, `invoke`, `teardown`,
//! `processes` (exits and timers), `runtime_api` and `registry` (the Runtime and
//! Extensions APIs' rules and error matrices), `subscribe` (Telemetry and Logs APIs),
//! `ids` (identifiers).

mod ids;
mod init;
mod invoke;
mod messages;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod model_check;
mod processes;
mod registry;
mod runtime_api;
mod subscribe;
mod teardown;
#[cfg(test)]
mod tests;

use crate::clock::Clock;
use bytes::Bytes;
use ids::Ids;
pub use messages::{
    Action, ApiCall, Ctx, ExitInfo, Input, InvokeRequest, InvokeResult, LifecycleConfig, Observation, ProcId, ProcKind,
    Rejection, Reply, Signal, TimerId, Token,
};
pub use registry::{ExtState, Extension};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tandem_wire::error::types as et;
use tandem_wire::extensions::NextEvent;
use tandem_wire::telemetry::{self as tm, Record, Span, Status, TraceContext};
use tandem_wire::{headers, Event, ShutdownReason};

/// Default limits of the cloud.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_EXTENSIONS: usize = 10;
const SHUTDOWN_BUDGET_EXTERNAL: Duration = Duration::from_millis(2000);
const SHUTDOWN_BUDGET_INTERNAL: Duration = Duration::from_millis(500);
const RUNTIME_TERM_GRACE: Duration = Duration::from_millis(300);
const RUNTIME_TERM_GRACE_INTERNAL: Duration = Duration::from_millis(500);
/// How long to wait for SIGKILLed processes to be reaped before giving up on them.
const KILL_REAP_GRACE: Duration = Duration::from_secs(2);
/// The runtime version `platform.initStart` and `INIT_START` name: the emulator's own
/// `provided.al2023` (what `AWS_EXECUTION_ENV` says), not one of Lambda's releases.
const RUNTIME_VERSION: &str = "provided:al2023.v1";
/// The id part of [`RUNTIME_VERSION`]'s ARN (Lambda's are 64 hex digits).
const RUNTIME_VERSION_ID: &str = "7a6e9e6d2b1f4c3e8a5d0b9c1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f";

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
    /// The caller's trace header, or one minted when the invocation arrived.
    tracing: TraceContext,
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
    /// The runtime's own error document (`init/error` body), passed through unchanged
    /// to the invocation that waited for this init, as Lambda does.
    body: Option<Bytes>,
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
    /// The runtime has its SIGTERM grace (or is being killed); SHUTDOWN follows.
    StopRuntime,
    /// SHUTDOWN was sent; telemetry keeps flowing by each subscription's buffering.
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
    ids: Ids,
    /// `instanceId` of `platform.initStart`: this execution environment.
    instance_id: String,
    out: Vec<Action>,
}

impl Lifecycle {
    /// A lifecycle that has not started. `id_seed` (random bits the driver draws) is
    /// what every identifier it mints is derived from.
    pub fn new(cfg: LifecycleConfig, clock: Clock, id_seed: u64) -> Self {
        let mut ids = Ids::new(id_seed);
        let instance_id = ids.uuid();
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
            ids,
            instance_id,
            out: Vec::new(),
        }
    }

    pub fn phase(&self) -> PhaseState {
        self.phase
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    #[cfg(test)]
    pub fn extensions(&self) -> &[Extension] {
        &self.exts
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
                reply.headers.push((headers::EXTENSION_EVENT_IDENTIFIER, self.ids.uuid()));
                self.reply(token, reply);
            }
            None => ext.queued.push_back(event.clone()),
        }
        self.observe(Observation::EventDelivered { extension: name, event });
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
}

/// Lambda's rule: timeouts are `timeout`, platform faults (`Sandbox.*`) `failure`,
/// everything else `error`.
pub fn status_for(error_type: &str) -> Status {
    if error_type == et::SANDBOX_TIMEOUT {
        Status::Timeout
    } else if error_type.starts_with(et::SANDBOX_PREFIX) {
        Status::Failure
    } else {
        Status::Error
    }
}

/// Billed duration: the (invoke, plus a cold start's init) duration rounded up to the
/// next millisecond.
pub fn billed_ms(duration_ms: f64) -> u64 {
    duration_ms.max(0.0).ceil() as u64
}

/// The trace context of an invocation arriving at `now`: its caller's trace header, or
/// a fresh unsampled one.
fn trace_context(clock: &Clock, ids: &mut Ids, now: Instant, request: &InvokeRequest) -> TraceContext {
    let value = match request.trace_id.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => t.to_owned(),
        None => ids.trace_header(clock.epoch_ms(now) / 1000),
    };
    TraceContext { span_id: None, kind: headers::INVOKE_TRACE_ID.into(), value }
}

fn error_payload(error_type: &str, message: &str) -> Bytes {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    Bytes::from(body.to_string())
}
