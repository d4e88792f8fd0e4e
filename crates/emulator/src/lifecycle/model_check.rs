//! lifecycle::model_check: the state machine under random interleavings (proptest), and
//! the model the `emulator_api` fuzz target drives (through `crate::fuzzing`).
//!
//! A small simulated driver plays the processes: a runtime and up to ten external
//! extensions that register, call `next`, respond, fail, crash and exit in any order,
//! while invocations arrive, timers fire and the environment shuts down. After every input the invariants Lambda's platform keeps are
//! checked on the actions the lifecycle returned:
//! - no panic;
//! - at most one invocation in flight;
//! - no `next` (runtime's or an extension's) is answered while the environment is frozen;
//! - SHUTDOWN goes at most once to an extension, and only to one that subscribed to it;
//! - every invocation gets exactly one final outcome (a result or a rejection), and
//!   every one is answered once the environment has shut down;
//! - records come in Lambda's order: `platform.start` before `platform.runtimeDone`
//!   before `platform.report` for a request id, each at most once, and
//!   `platform.initStart` before `platform.initRuntimeDone` and `platform.initReport`;
//! - every reply carries one of the statuses the Runtime and Extensions APIs use, and an
//!   error reply one of their error types;
//! - every invocation completes or times out while the processes keep calling `next`
//!   and the timers fire (before any shutdown: [`World::settle`]).
//!
//! Besides well-behaved calls, the steps make malformed ones (register bodies and names,
//! subscribe bodies, unknown or missing identifiers, request ids that are not current,
//! truncated and oversized responses, streamed error trailers, spawn failures).
//!
//! The processes are simulated (no sockets): a killed process exits at once, a process
//! that got SHUTDOWN exits when the run ends. What this cannot see, the integration
//! tests with real processes cover (framing, timing of real exits).

// The steps are public only for the fuzz target (`crate::fuzzing`, doc(hidden)); their
// fields say what they are.
#![allow(missing_docs)]

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tandem_wire::extensions::RegisterRequest;
use tandem_wire::subscription::Api;
use tandem_wire::telemetry::Record;
use tandem_wire::ErrorResponse;

/// The `Lambda-Extension-Identifier` a malformed call carries.
#[derive(Debug, Clone)]
pub enum IdChoice {
    /// Extension `k`'s own identifier (modulo the extensions; none when unregistered).
    Of(usize),
    Missing,
    /// Any text; prefixed so that it never equals a real identifier by chance.
    Junk(String),
}

/// The `Lambda-Extension-Name` a raw register carries.
#[derive(Debug, Clone)]
pub enum NameChoice {
    /// The extension's own file name.
    Own,
    Missing,
    /// Any text, prefixed so that it never names a launched extension (an internal one).
    Junk(String),
}

/// How a raw runtime response ends.
#[derive(Debug, Clone)]
pub enum ResponseKind {
    /// Only the pre-body check of the request id.
    Start,
    Body(Vec<u8>),
    /// A streamed response whose trailers carry an error.
    Trailer {
        error_type: String,
        body: Vec<u8>,
    },
    TooLarge {
        size: usize,
    },
    Truncated {
        received: usize,
    },
}

/// One move of the world, chosen by proptest or the fuzzer; indices are taken modulo
/// what exists.
#[derive(Debug, Clone)]
pub enum Step {
    /// Extension `ext` registers; `mask` bit 0 = INVOKE, bit 1 = SHUTDOWN.
    Register {
        ext: usize,
        mask: u8,
    },
    ExtNext {
        ext: usize,
    },
    ExtInitError {
        ext: usize,
    },
    ExtExitError {
        ext: usize,
    },
    RuntimeNext,
    Respond,
    RuntimeError,
    RuntimeInitError,
    Invoke,
    /// A process dies: 0 is the runtime, k > 0 extension k - 1.
    Crash {
        who: usize,
        oom: bool,
    },
    FireTimer,
    Tick {
        ms: u16,
    },
    Shutdown,
    /// Every process does what a well-behaved one does next: unregistered extensions
    /// register (events from `mask`), idle ones call `next`, an idle runtime calls `next`.
    Progress {
        mask: u8,
    },
    /// Extension `ext` registers with any name choice, body and accept header.
    RegisterRaw {
        ext: usize,
        name: NameChoice,
        body: Vec<u8>,
        accept_account_id: bool,
    },
    /// `next` with a missing or unknown identifier (an `Of` plays [`Step::ExtNext`]).
    ExtNextAs {
        id: IdChoice,
    },
    /// init/error or exit/error with any identifier, error type and body.
    ExtErrorRaw {
        id: IdChoice,
        init: bool,
        error_type: Option<String>,
        body: Vec<u8>,
    },
    /// A Telemetry or Logs API subscription with any body.
    Subscribe {
        id: IdChoice,
        logs: bool,
        body: Vec<u8>,
    },
    /// A response from the runtime; `current` uses the request id it is working on.
    RespondRaw {
        current: bool,
        request_id: String,
        kind: ResponseKind,
    },
    /// invocation/error from the runtime with any header and body.
    RuntimeErrorRaw {
        current: bool,
        request_id: String,
        error_type: Option<String>,
        body: Vec<u8>,
    },
    /// init/error from the runtime with any header and body.
    RuntimeInitErrorRaw {
        error_type: Option<String>,
        body: Vec<u8>,
    },
    /// The driver could not start a process it was told to (0 = runtime, k > 0 = e(k-1)).
    SpawnFailed {
        who: usize,
    },
}

#[cfg(test)]
fn id_choice() -> impl Strategy<Value = IdChoice> {
    prop_oneof![
        3 => (0..10usize).prop_map(IdChoice::Of),
        1 => Just(IdChoice::Missing),
        1 => "[a-z0-9-]{0,12}".prop_map(IdChoice::Junk),
    ]
}

#[cfg(test)]
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24),
        Just(br#"{"events":["INVOKE","SHUTDOWN"]}"#.to_vec()),
        Just(br#"{"events":["INVOKE","BOGUS"]}"#.to_vec()),
        Just(br#"{"configurationKeys":["k"]}"#.to_vec()),
        Just(br#"{"schemaVersion":"2022-12-13","types":["platform","function"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080"}}"#.to_vec()),
        Just(br#"{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":1},"destination":{"protocol":"TCP","port":9}}"#.to_vec()),
        Just(br#"{"errorMessage":"m","errorType":"Custom.Error"}"#.to_vec()),
    ]
}

#[cfg(test)]
fn raw_step() -> impl Strategy<Value = Step> {
    let name = prop_oneof![
        4 => Just(NameChoice::Own),
        1 => Just(NameChoice::Missing),
        1 => "[a-z]{0,6}".prop_map(NameChoice::Junk),
    ];
    let kind = prop_oneof![
        Just(ResponseKind::Start),
        bytes().prop_map(ResponseKind::Body),
        ("[A-Za-z.]{0,12}", bytes()).prop_map(|(error_type, body)| ResponseKind::Trailer { error_type, body }),
        (1..10_000_000usize).prop_map(|size| ResponseKind::TooLarge { size }),
        (0..100usize).prop_map(|received| ResponseKind::Truncated { received }),
    ];
    let error_type = proptest::option::of("[A-Za-z.]{0,12}");
    prop_oneof![
        (0..10usize, name, bytes(), any::<bool>()).prop_map(|(ext, name, body, accept_account_id)| Step::RegisterRaw {
            ext,
            name,
            body,
            accept_account_id
        }),
        id_choice().prop_map(|id| Step::ExtNextAs { id }),
        (id_choice(), any::<bool>(), error_type.clone(), bytes())
            .prop_map(|(id, init, error_type, body)| Step::ExtErrorRaw { id, init, error_type, body }),
        (id_choice(), any::<bool>(), bytes()).prop_map(|(id, logs, body)| Step::Subscribe { id, logs, body }),
        (any::<bool>(), "[a-z0-9]{0,8}", kind).prop_map(|(current, request_id, kind)| Step::RespondRaw {
            current,
            request_id,
            kind
        }),
        (any::<bool>(), "[a-z0-9]{0,8}", error_type.clone(), bytes()).prop_map(
            |(current, request_id, error_type, body)| Step::RuntimeErrorRaw { current, request_id, error_type, body }
        ),
        (error_type, bytes()).prop_map(|(error_type, body)| Step::RuntimeInitErrorRaw { error_type, body }),
        (0..11usize).prop_map(|who| Step::SpawnFailed { who }),
    ]
}

#[cfg(test)]
fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..10usize, 0..4u8).prop_map(|(ext, mask)| Step::Register { ext, mask }),
        6 => (0..10usize).prop_map(|ext| Step::ExtNext { ext }),
        1 => (0..10usize).prop_map(|ext| Step::ExtInitError { ext }),
        1 => (0..10usize).prop_map(|ext| Step::ExtExitError { ext }),
        5 => Just(Step::RuntimeNext),
        8 => Just(Step::Respond),
        1 => Just(Step::RuntimeError),
        1 => Just(Step::RuntimeInitError),
        2 => Just(Step::Invoke),
        1 => (0..11usize, any::<bool>()).prop_map(|(who, oom)| Step::Crash { who, oom }),
        2 => Just(Step::FireTimer),
        2 => (1..4000u16).prop_map(|ms| Step::Tick { ms }),
        1 => Just(Step::Shutdown),
        8 => (0..4u8).prop_map(|mask| Step::Progress { mask }),
        3 => raw_step(),
    ]
}

/// The statuses the Runtime and Extensions APIs answer with.
const LAMBDA_STATUSES: [u16; 7] = [200, 202, 400, 403, 413, 429, 500];

/// The error types the Runtime, Extensions, Telemetry and Logs APIs answer with.
const API_ERROR_TYPES: [&str; 24] = [
    et::EXTENSION_INVALID_NAME,
    et::INVALID_REQUEST_FORMAT,
    et::EXTENSION_INVALID_EVENT_TYPE,
    et::EXTENSION_REGISTRATION_CLOSED,
    et::EXTENSION_INVALID_STATE,
    et::EXTENSION_TOO_MANY,
    et::EXTENSION_MISSING_ID,
    et::EXTENSION_INVALID_ID,
    et::EXTENSION_UNKNOWN_ID,
    et::EXTENSION_MISSING_HEADER,
    et::INTERNAL_SERVER_ERROR,
    et::INVALID_REQUEST_ID,
    et::INVALID_STATE_TRANSITION,
    et::REQUEST_ENTITY_TOO_LARGE,
    et::INVALID_RESPONSE_MODE,
    et::TELEMETRY_VALIDATION,
    et::LOGS_VALIDATION,
    et::TELEMETRY_SUBSCRIPTION_CLOSED,
    et::LOGS_SUBSCRIPTION_CLOSED,
    et::TELEMETRY_CONFLICT,
    et::LOGS_CONFLICT,
    et::FUNCTION_RESPONSE_TOO_LARGE,
    et::RUNTIME_TRUNCATED_RESPONSE,
    et::SERVICE_EXCEPTION,
];

/// A junk identifier or name: never a real one (those are UUIDs and `e<digit>`).
fn junk(text: &str) -> String {
    format!("x-{text}")
}

#[derive(Default)]
struct Checks {
    frozen: bool,
    in_flight: Option<String>,
    /// Per request id: 1 = started, 2 = runtimeDone, 3 = report.
    records: HashMap<String, u8>,
    init_open: bool,
    shutdowns: HashMap<String, u32>,
    outcomes: HashMap<Token, u32>,
    shutdown_complete: bool,
}

/// The simulated processes around one lifecycle, with the checks.
pub struct World {
    lc: Lifecycle,
    now: Instant,
    next_token: Token,
    exts: usize,
    /// Current process per kind: generation and whether it is alive.
    procs: BTreeMap<ProcKindKey, (ProcId, bool)>,
    /// Identifier of each registered extension (by launch index) in this generation.
    ids: HashMap<usize, String>,
    /// Events each extension identifier registered for.
    events: HashMap<String, Vec<String>>,
    /// Parked `next` calls: token → Some(extension index) or None for the runtime.
    parked: HashMap<Token, Option<usize>>,
    timers: Vec<(TimerId, Instant)>,
    /// The request id the runtime is working on (from its `next` reply).
    current: Option<String>,
    invokes: BTreeSet<Token>,
    got_shutdown: BTreeSet<usize>,
    pending: Vec<Input>,
    checks: Checks,
    /// Error types the runtime reported (headers, bodies, trailers): an invocation's
    /// outcome may carry these besides Lambda's own.
    function_errors: BTreeSet<String>,
}

/// `ProcKind` in a key that sorts (runtime first), so iteration is deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ProcKindKey {
    Runtime,
    Extension(usize),
}

impl From<ProcKind> for ProcKindKey {
    fn from(k: ProcKind) -> Self {
        match k {
            ProcKind::Runtime => ProcKindKey::Runtime,
            ProcKind::Extension(i) => ProcKindKey::Extension(i),
        }
    }
}

impl World {
    /// A world with `exts` extensions (at most [`MAX_EXTENSIONS`]) whose first init has begun.
    pub fn start(exts: usize) -> Result<Self, TestCaseError> {
        let mut world = World::new(exts.min(MAX_EXTENSIONS));
        world.feed(Input::Start)?;
        Ok(world)
    }

    fn new(exts: usize) -> Self {
        let cfg = LifecycleConfig {
            function_name: "fn".into(),
            function_version: "$LATEST".into(),
            handler: "h.handler".into(),
            account_id: "012345678912".into(),
            region: "us-east-1".into(),
            memory_mb: 128,
            timeout: Duration::from_secs(3),
            init_timeout: INIT_TIMEOUT,
            freeze: true,
            extensions: (0..exts).map(|i| format!("e{i}")).collect(),
            queue_limit: 2,
        };
        World {
            lc: Lifecycle::new(cfg, Clock::new(), 7),
            now: Instant::now(),
            next_token: 1,
            exts,
            procs: BTreeMap::new(),
            ids: HashMap::new(),
            events: HashMap::new(),
            parked: HashMap::new(),
            timers: Vec::new(),
            current: None,
            invokes: BTreeSet::new(),
            got_shutdown: BTreeSet::new(),
            pending: Vec::new(),
            checks: Checks::default(),
            function_errors: BTreeSet::new(),
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    fn alive(&self, kind: ProcKindKey) -> bool {
        self.procs.get(&kind).is_some_and(|(_, alive)| *alive)
    }

    /// Feeds one input and every input it causes (exits of killed processes).
    fn feed(&mut self, input: Input) -> Result<(), TestCaseError> {
        self.pending.push(input);
        self.drain()
    }

    fn api(&mut self, call: ApiCall) -> Result<Token, TestCaseError> {
        let token = self.token();
        self.feed(Input::Api { token, call })?;
        Ok(token)
    }

    /// Plays the actions as the driver would, checking the invariants in order.
    fn apply(&mut self, actions: Vec<Action>) -> Result<(), TestCaseError> {
        for action in actions {
            match action {
                Action::Freeze => self.checks.frozen = true,
                Action::Thaw => self.checks.frozen = false,
                Action::Spawn { proc } => {
                    if let ProcKind::Extension(i) = proc.kind {
                        self.ids.remove(&i);
                        self.got_shutdown.remove(&i);
                    }
                    self.procs.insert(proc.kind.into(), (proc, true));
                }
                Action::Signal { proc, signal } => {
                    let key: ProcKindKey = proc.kind.into();
                    let current = self.procs.get(&key).copied();
                    if let Some((p, true)) = current {
                        if p == proc {
                            let code = match signal {
                                Signal::Kill => 9,
                                Signal::Term => 15,
                            };
                            self.kill(key, ExitInfo { code: None, signal: Some(code), oom: false });
                        }
                    }
                }
                Action::Timer { id, at } => self.timers.push((id, at)),
                Action::Reply { token, reply } => self.on_reply(token, reply)?,
                Action::InvokeResult { token, result } => {
                    if let Some(t) = &result.error_type {
                        let lambdas = [et::RUNTIME_PREFIX, et::SANDBOX_PREFIX, et::EXTENSION_PREFIX, "Function."]
                            .iter()
                            .any(|p| t.starts_with(p));
                        prop_assert!(
                            lambdas || self.function_errors.contains(t),
                            "invoke {} failed with {:?}, neither Lambda's nor the function's",
                            token,
                            t
                        );
                    }
                    self.count_outcome(token)?;
                }
                Action::Rejected { token, .. } => self.count_outcome(token)?,
                Action::Emit(event) => self.on_record(&event.record)?,
                Action::Observe(Observation::InvokeStart { request_id }) => {
                    prop_assert!(
                        self.checks.in_flight.is_none(),
                        "{} started while {:?} is in flight",
                        request_id,
                        self.checks.in_flight
                    );
                    self.checks.in_flight = Some(request_id);
                }
                Action::Observe(Observation::InvokeEnd { request_id, .. }) => {
                    // An invocation whose (suppressed) init failed ends without starting.
                    if let Some(current) = self.checks.in_flight.take() {
                        prop_assert_eq!(current, request_id, "another invocation ended");
                    }
                }
                Action::ShutdownComplete => self.checks.shutdown_complete = true,
                Action::Subscribe { .. }
                | Action::ResetMemoryPeak
                | Action::StopTelemetry
                | Action::ConsoleLine(_)
                | Action::Observe(_) => {}
            }
        }
        Ok(())
    }

    fn count_outcome(&mut self, token: Token) -> Result<(), TestCaseError> {
        prop_assert!(self.invokes.contains(&token), "an outcome for an unknown invoke {token}");
        let n = self.checks.outcomes.entry(token).or_insert(0);
        *n += 1;
        prop_assert_eq!(*n, 1, "invoke {} got a second outcome", token);
        Ok(())
    }

    fn kill(&mut self, key: ProcKindKey, exit: ExitInfo) {
        if let Some((proc, alive)) = self.procs.get_mut(&key) {
            if *alive {
                *alive = false;
                let proc = *proc;
                // Its parked calls die with it (the driver answers them to nobody).
                let gone: Vec<Token> = self
                    .parked
                    .iter()
                    .filter(|(_, who)| match (key, who) {
                        (ProcKindKey::Runtime, None) => true,
                        (ProcKindKey::Extension(i), Some(j)) => i == *j,
                        _ => false,
                    })
                    .map(|(t, _)| *t)
                    .collect();
                for t in gone {
                    self.parked.remove(&t);
                }
                if key == ProcKindKey::Runtime {
                    self.current = None;
                }
                self.pending.push(Input::Exited { proc, exit });
            }
        }
    }

    fn on_reply(&mut self, token: Token, reply: Reply) -> Result<(), TestCaseError> {
        prop_assert!(LAMBDA_STATUSES.contains(&reply.status), "status {} is not Lambda's", reply.status);
        if reply.status >= 400 {
            let error: ErrorResponse = serde_json::from_slice(&reply.body)
                .map_err(|e| TestCaseError::fail(format!("a {} answer is not an error body: {e}", reply.status)))?;
            prop_assert!(
                API_ERROR_TYPES.contains(&error.error_type.as_str()),
                "error type {:?} is not one of the APIs'",
                error.error_type
            );
        }
        let Some(who) = self.parked.remove(&token) else { return Ok(()) };
        if reply.status != 200 {
            return Ok(());
        }
        prop_assert!(!self.checks.frozen, "a next was answered while frozen (token {})", token);
        match who {
            None => {
                let rid = reply.headers.iter().find(|(k, _)| *k == headers::RUNTIME_REQUEST_ID).map(|(_, v)| v.clone());
                self.current = rid;
            }
            Some(ext) => {
                let event: NextEvent = serde_json::from_slice(&reply.body)
                    .map_err(|e| TestCaseError::fail(format!("next event does not parse: {e}")))?;
                if let NextEvent::Shutdown(_) = event {
                    let id = self.ids.get(&ext).cloned().unwrap_or_default();
                    let subscribed = self.events.get(&id).is_some_and(|e| e.iter().any(|e| e == "SHUTDOWN"));
                    prop_assert!(subscribed, "SHUTDOWN to e{} which did not subscribe to it", ext);
                    let n = self.checks.shutdowns.entry(id).or_insert(0);
                    *n += 1;
                    prop_assert_eq!(*n, 1, "SHUTDOWN twice to e{}", ext);
                    self.got_shutdown.insert(ext);
                }
            }
        }
        Ok(())
    }

    fn on_record(&mut self, record: &Record) -> Result<(), TestCaseError> {
        match record {
            Record::InitStart(_) => {
                prop_assert!(!self.checks.init_open, "initStart twice without an initReport");
                self.checks.init_open = true;
            }
            Record::InitRuntimeDone(_) => prop_assert!(self.checks.init_open, "initRuntimeDone without initStart"),
            Record::InitReport(_) => {
                prop_assert!(self.checks.init_open, "initReport without initStart");
                self.checks.init_open = false;
            }
            Record::Start(s) => {
                let prev = self.checks.records.insert(s.request_id.clone(), 1);
                prop_assert!(prev.is_none(), "platform.start twice for {}", s.request_id);
            }
            Record::RuntimeDone(r) => {
                let state = self.checks.records.get(&r.request_id).copied();
                prop_assert_eq!(state, Some(1), "runtimeDone of {} out of order", r.request_id.clone());
                self.checks.records.insert(r.request_id.clone(), 2);
            }
            Record::Report(r) => {
                let state = self.checks.records.get(&r.request_id).copied();
                prop_assert!(matches!(state, Some(1 | 2)), "report of {} out of order ({:?})", r.request_id, state);
                self.checks.records.insert(r.request_id.clone(), 3);
            }
            _ => {}
        }
        Ok(())
    }

    /// Plays one step (a step that makes no sense now, such as a call from a dead
    /// process, does nothing) and checks the invariants on what it caused.
    pub fn play(&mut self, step: Step) -> Result<(), TestCaseError> {
        match step {
            Step::Register { ext, mask } => {
                let ext = ext % self.exts.max(1);
                if self.exts == 0 || self.ids.contains_key(&ext) {
                    return Ok(());
                }
                let mut events = Vec::new();
                if mask & 1 != 0 {
                    events.push("INVOKE".to_string());
                }
                if mask & 2 != 0 {
                    events.push("SHUTDOWN".to_string());
                }
                let body = serde_json::json!({ "events": events }).to_string();
                self.register(ext, Some(format!("e{ext}")), body.into_bytes(), false)?;
            }
            Step::RegisterRaw { ext, name, body, accept_account_id } => {
                let ext = ext % self.exts.max(1);
                let name = match name {
                    NameChoice::Own => Some(format!("e{ext}")),
                    NameChoice::Missing => None,
                    NameChoice::Junk(n) => Some(junk(&n)),
                };
                if self.exts > 0 {
                    self.register(ext, name, body, accept_account_id)?;
                }
            }
            Step::ExtNext { ext } => {
                let ext = ext % self.exts.max(1);
                let Some(id) = self.ids.get(&ext).cloned() else { return Ok(()) };
                let waiting = self.parked.values().any(|w| *w == Some(ext));
                if !self.alive(ProcKindKey::Extension(ext)) || waiting || self.got_shutdown.contains(&ext) {
                    return Ok(());
                }
                let token = self.token();
                self.parked.insert(token, Some(ext));
                self.feed(Input::Api { token, call: ApiCall::ExtNext { id: Some(id) } })?;
            }
            Step::ExtInitError { ext } | Step::ExtExitError { ext } => {
                let ext = ext % self.exts.max(1);
                let Some(id) = self.ids.get(&ext).cloned() else { return Ok(()) };
                if !self.alive(ProcKindKey::Extension(ext)) {
                    return Ok(());
                }
                let (error_type, body) = (Some("Extension.Failed".to_string()), Bytes::new());
                let call = if matches!(step, Step::ExtInitError { .. }) {
                    ApiCall::ExtInitError { id: Some(id), error_type, body }
                } else {
                    ApiCall::ExtExitError { id: Some(id), error_type, body }
                };
                self.api(call)?;
            }
            Step::RuntimeNext => {
                let waiting = self.parked.values().any(|w| w.is_none());
                if !self.alive(ProcKindKey::Runtime) || waiting {
                    return Ok(());
                }
                let token = self.token();
                self.parked.insert(token, None);
                self.current = None;
                self.feed(Input::Api { token, call: ApiCall::RuntimeNext })?;
            }
            Step::Respond | Step::RuntimeError => {
                let Some(rid) = self.current.clone() else { return Ok(()) };
                if !self.alive(ProcKindKey::Runtime) {
                    return Ok(());
                }
                let call = if matches!(step, Step::Respond) {
                    ApiCall::RuntimeResponse {
                        request_id: rid,
                        body: Bytes::from_static(b"{}"),
                        first_byte: self.now,
                        last_byte: self.now,
                        error_trailer: None,
                    }
                } else {
                    self.function_errors.insert(et::FUNCTION_ERROR_HANDLED.into());
                    ApiCall::RuntimeError {
                        request_id: rid,
                        error_type: Some(et::FUNCTION_ERROR_HANDLED.into()),
                        body: Bytes::from_static(br#"{"errorMessage":"x","errorType":"Handled"}"#),
                        received: self.now,
                    }
                };
                self.api(call)?;
            }
            Step::RuntimeInitError => {
                if self.alive(ProcKindKey::Runtime) {
                    self.api(ApiCall::RuntimeInitError {
                        error_type: Some("Runtime.ImportModuleError".into()),
                        body: Bytes::new(),
                    })?;
                }
            }
            Step::Invoke => {
                let token = self.token();
                self.invokes.insert(token);
                let request_id = format!("r{token}");
                self.feed(Input::Invoke { token, request_id, request: InvokeRequest::default() })?;
            }
            Step::Crash { who, oom } => {
                let key = if who == 0 || self.exts == 0 {
                    ProcKindKey::Runtime
                } else {
                    ProcKindKey::Extension((who - 1) % self.exts)
                };
                self.kill(key, ExitInfo { code: Some(1), signal: None, oom });
                self.drain()?;
            }
            Step::FireTimer => {
                if let Some(i) = (0..self.timers.len()).min_by_key(|&i| self.timers[i].1) {
                    let (id, at) = self.timers.swap_remove(i);
                    self.now = self.now.max(at);
                    self.feed(Input::Timer(id))?;
                }
            }
            Step::Tick { ms } => self.now += Duration::from_millis(u64::from(ms)),
            Step::Shutdown => self.feed(Input::Shutdown)?,
            Step::ExtNextAs { id } => {
                let id = match id {
                    IdChoice::Of(ext) => return self.play(Step::ExtNext { ext }),
                    IdChoice::Missing => None,
                    IdChoice::Junk(j) => Some(junk(&j)),
                };
                self.api(ApiCall::ExtNext { id })?;
            }
            Step::ExtErrorRaw { id, init, error_type, body } => {
                let (id, ext) = self.identify(id);
                if ext.is_some_and(|e| !self.alive(ProcKindKey::Extension(e))) {
                    return Ok(());
                }
                let body = Bytes::from(body);
                self.api(if init {
                    ApiCall::ExtInitError { id, error_type, body }
                } else {
                    ApiCall::ExtExitError { id, error_type, body }
                })?;
            }
            Step::Subscribe { id, logs, body } => {
                let (id, _) = self.identify(id);
                let api = if logs { Api::Logs } else { Api::Telemetry };
                self.api(ApiCall::Subscribe { api, id, body: Bytes::from(body) })?;
            }
            Step::RespondRaw { current, request_id, kind } => {
                let Some(request_id) = self.runtime_request_id(current, request_id) else { return Ok(()) };
                let now = self.now;
                let call = match kind {
                    ResponseKind::Start => ApiCall::ResponseStart { request_id },
                    ResponseKind::Body(body) => ApiCall::RuntimeResponse {
                        request_id,
                        body: Bytes::from(body),
                        first_byte: now,
                        last_byte: now,
                        error_trailer: None,
                    },
                    ResponseKind::Trailer { error_type, body } => {
                        self.function_errors.insert(error_type.clone());
                        ApiCall::RuntimeResponse {
                            request_id,
                            body: Bytes::new(),
                            first_byte: now,
                            last_byte: now,
                            error_trailer: Some((error_type, Bytes::from(body))),
                        }
                    }
                    ResponseKind::TooLarge { size } => {
                        ApiCall::RuntimeResponseTooLarge { request_id, size, limit: size.saturating_sub(1) }
                    }
                    ResponseKind::Truncated { received } => {
                        ApiCall::RuntimeResponseTruncated { request_id, received, error: "connection closed".into() }
                    }
                };
                self.api(call)?;
            }
            Step::RuntimeErrorRaw { current, request_id, error_type, body } => {
                let Some(request_id) = self.runtime_request_id(current, request_id) else { return Ok(()) };
                self.note_function_error(error_type.as_deref(), &body);
                let received = self.now;
                self.api(ApiCall::RuntimeError { request_id, error_type, body: Bytes::from(body), received })?;
            }
            Step::RuntimeInitErrorRaw { error_type, body } => {
                if self.alive(ProcKindKey::Runtime) {
                    self.note_function_error(error_type.as_deref(), &body);
                    self.api(ApiCall::RuntimeInitError { error_type, body: Bytes::from(body) })?;
                }
            }
            Step::SpawnFailed { who } => {
                let key = if who == 0 || self.exts == 0 {
                    ProcKindKey::Runtime
                } else {
                    ProcKindKey::Extension((who - 1) % self.exts)
                };
                // Only a process that has not made a call yet can have failed to start.
                let silent = match key {
                    ProcKindKey::Runtime => self.current.is_none() && !self.parked.values().any(|w| w.is_none()),
                    ProcKindKey::Extension(e) => !self.ids.contains_key(&e),
                };
                if let (true, Some((proc, true))) = (silent, self.procs.get(&key).copied()) {
                    self.procs.insert(key, (proc, false));
                    self.feed(Input::SpawnFailed { proc, error: "no such file".into() })?;
                }
            }
            Step::Progress { mask } => {
                for ext in 0..self.exts {
                    self.play(Step::Register { ext, mask: mask.rotate_left(ext as u32) })?;
                }
                for ext in 0..self.exts {
                    self.play(Step::ExtNext { ext })?;
                }
                self.play(Step::RuntimeNext)?;
            }
        }
        Ok(())
    }

    /// Registers extension `ext` (when its process is alive), remembering the identifier
    /// and events of a registration under its own name.
    fn register(
        &mut self,
        ext: usize,
        name: Option<String>,
        body: Vec<u8>,
        accept_account_id: bool,
    ) -> Result<(), TestCaseError> {
        if !self.alive(ProcKindKey::Extension(ext)) {
            return Ok(());
        }
        let own = name.as_deref().is_some_and(|n| n.trim() == format!("e{ext}"));
        let events: Vec<String> = serde_json::from_slice::<RegisterRequest>(&body)
            .map(|r| r.events.iter().map(|e| e.to_string()).collect())
            .unwrap_or_default();
        let token = self.token();
        let ctx = Ctx { now: self.now };
        let call = ApiCall::ExtRegister { name, body: Bytes::from(body), accept_account_id };
        let actions = self.lc.handle(ctx, Input::Api { token, call });
        let id = actions.iter().find_map(|a| match a {
            Action::Reply { token: t, reply } if *t == token && reply.status == 200 => {
                reply.headers.iter().find(|(k, _)| *k == headers::EXTENSION_IDENTIFIER).map(|(_, v)| v.clone())
            }
            _ => None,
        });
        if let (Some(id), true) = (id, own) {
            self.ids.insert(ext, id.clone());
            self.events.insert(id, events);
        }
        self.apply(actions)?;
        self.drain()
    }

    /// The identifier a malformed extension call carries, and whose it is.
    fn identify(&self, id: IdChoice) -> (Option<String>, Option<usize>) {
        match id {
            IdChoice::Of(ext) => {
                let ext = ext % self.exts.max(1);
                match self.ids.get(&ext) {
                    Some(id) => (Some(id.clone()), Some(ext)),
                    None => (None, None),
                }
            }
            IdChoice::Missing => (None, None),
            IdChoice::Junk(j) => (Some(junk(&j)), None),
        }
    }

    /// The request id a live runtime puts in its call: the current one, or any other.
    fn runtime_request_id(&self, current: bool, other: String) -> Option<String> {
        if !self.alive(ProcKindKey::Runtime) {
            return None;
        }
        if current {
            self.current.clone()
        } else {
            Some(junk(&other))
        }
    }

    /// Remembers the error types a runtime's error call names (header or body).
    fn note_function_error(&mut self, header: Option<&str>, body: &[u8]) {
        if let Some(t) = header {
            self.function_errors.insert(t.to_owned());
        }
        if let Ok(detail) = serde_json::from_slice::<tandem_wire::ErrorRequest>(body) {
            if let Some(t) = detail.error_type {
                self.function_errors.insert(t);
            }
        }
    }

    /// Feeds the inputs the world caused (exits of killed processes) until none is left.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        let mut rounds = 0;
        while let Some(input) = self.pending.pop() {
            rounds += 1;
            prop_assert!(rounds < 10_000, "inputs keep causing inputs");
            let ctx = Ctx { now: self.now };
            let actions = self.lc.handle(ctx, input);
            self.apply(actions)?;
        }
        Ok(())
    }

    /// Lets the processes behave (register with the events of `mask`, call `next`,
    /// respond) while the timers fire, until every invocation has its outcome: none may
    /// hang, whatever happened before.
    pub fn settle(&mut self, mask: u8) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            if self.invokes.iter().all(|t| self.checks.outcomes.contains_key(t)) {
                return Ok(());
            }
            self.play(Step::Progress { mask })?;
            self.play(Step::Respond)?;
            self.play(Step::FireTimer)?;
        }
        let open: Vec<&Token> = self.invokes.iter().filter(|t| !self.checks.outcomes.contains_key(t)).collect();
        prop_assert!(open.is_empty(), "invokes {:?} never completed nor timed out", open);
        Ok(())
    }

    /// Shuts the environment down as Lambda would at the end of its life: extensions
    /// that got SHUTDOWN exit and timers fire until the
    /// lifecycle says it is complete.
    pub fn finish(&mut self) -> Result<(), TestCaseError> {
        self.feed(Input::Shutdown)?;
        let mut nudged = BTreeSet::new();
        for _ in 0..10_000 {
            if self.checks.shutdown_complete {
                break;
            }
            let done: Vec<usize> = self.got_shutdown.iter().copied().collect();
            for ext in done {
                self.kill(ProcKindKey::Extension(ext), ExitInfo { code: Some(0), signal: None, oom: false });
            }
            self.drain()?;
            // Parked next calls of live extensions are answered by the lifecycle; a
            // subscribed extension that is not waiting calls next now, once (one that
            // reported exit/error is refused: it waits for its SIGKILL at the deadline).
            let idle: Vec<usize> = (0..self.exts)
                .filter(|e| {
                    self.ids.contains_key(e)
                        && self.alive(ProcKindKey::Extension(*e))
                        && !self.got_shutdown.contains(e)
                        && !self.parked.values().any(|w| *w == Some(*e))
                        && !nudged.contains(e)
                })
                .collect();
            if let Some(&ext) = idle.first() {
                nudged.insert(ext);
                self.play(Step::ExtNext { ext })?;
                continue;
            }
            if self.timers.is_empty() {
                break;
            }
            self.play(Step::FireTimer)?;
        }
        prop_assert!(self.checks.shutdown_complete, "shutdown never completed");
        for token in &self.invokes {
            prop_assert_eq!(self.checks.outcomes.get(token).copied(), Some(1), "invoke {} has no outcome", token);
        }
        Ok(())
    }
}

#[cfg(test)]
proptest! {
    #![proptest_config(ProptestConfig { cases: 512, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_keep_lambdas_invariants(
        exts in 0..=MAX_EXTENSIONS,
        steps in proptest::collection::vec(step(), 1..120),
        mask in 0..4u8,
    ) {
        let mut world = World::start(exts)?;
        for step in steps {
            world.play(step)?;
        }
        world.settle(mask)?;
        world.finish()?;
    }
}

/// Found by the property: an extension that reports exit/error after its SHUTDOWN was
/// queued is refused from then on and killed at the deadline; the shutdown completes.
#[cfg(test)]
#[test]
fn exit_error_after_shutdown_was_queued_still_completes() {
    let steps = [
        Step::Progress { mask: 0 },
        Step::Invoke,
        Step::Crash { who: 0, oom: false },
        Step::Invoke,
        Step::Progress { mask: 3 },
        Step::Crash { who: 2, oom: false },
        Step::ExtExitError { ext: 0 },
    ];
    let mut world = World::new(5);
    assert!(world.feed(Input::Start).is_ok());
    for step in steps {
        assert!(world.play(step.clone()).is_ok(), "{step:?}");
    }
    let done = world.finish();
    assert!(done.is_ok(), "{done:?}");
}
