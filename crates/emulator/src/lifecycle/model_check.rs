//! lifecycle::model_check: the state machine under random interleavings (proptest).
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
//! - every reply carries one of the statuses the Runtime and Extensions APIs use.
//!
//! The processes are simulated (no sockets): a killed process exits at once, a process
//! that got SHUTDOWN exits when the run ends. What this cannot see, the integration
//! tests with real processes cover (framing, timing of real exits).

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tandem_wire::telemetry::Record;

/// One move of the world, chosen by proptest; indices are taken modulo what exists.
#[derive(Debug, Clone)]
enum Step {
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
}

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
    ]
}

/// The statuses the Runtime and Extensions APIs answer with.
const LAMBDA_STATUSES: [u16; 7] = [200, 202, 400, 403, 413, 429, 500];

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

struct World {
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
                Action::InvokeResult { token, .. } | Action::Rejected { token, .. } => {
                    prop_assert!(self.invokes.contains(&token), "an outcome for an unknown invoke {token}");
                    let n = self.checks.outcomes.entry(token).or_insert(0);
                    *n += 1;
                    prop_assert_eq!(*n, 1, "invoke {} got a second outcome", token);
                }
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

    fn play(&mut self, step: Step) -> Result<(), TestCaseError> {
        match step {
            Step::Register { ext, mask } => {
                let ext = ext % self.exts.max(1);
                if self.exts == 0 || !self.alive(ProcKindKey::Extension(ext)) || self.ids.contains_key(&ext) {
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
                let token = self.token();
                let ctx = Ctx { now: self.now };
                let actions = self.lc.handle(
                    ctx,
                    Input::Api {
                        token,
                        call: ApiCall::ExtRegister {
                            name: Some(format!("e{ext}")),
                            body: Bytes::from(body),
                            accept_account_id: false,
                        },
                    },
                );
                let id = actions.iter().find_map(|a| match a {
                    Action::Reply { token: t, reply } if *t == token && reply.status == 200 => {
                        reply.headers.iter().find(|(k, _)| *k == headers::EXTENSION_IDENTIFIER).map(|(_, v)| v.clone())
                    }
                    _ => None,
                });
                if let Some(id) = id {
                    self.ids.insert(ext, id.clone());
                    self.events.insert(id, events);
                }
                self.apply(actions)?;
                self.drain()?;
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
                    ApiCall::RuntimeError {
                        request_id: rid,
                        error_type: Some("Handled".into()),
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

    /// Shuts the environment down as Lambda would at the end of its life: extensions
    /// that got SHUTDOWN exit and timers fire until the
    /// lifecycle says it is complete.
    fn finish(&mut self) -> Result<(), TestCaseError> {
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_keep_lambdas_invariants(
        exts in 0..=MAX_EXTENSIONS,
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let mut world = World::new(exts);
        world.feed(Input::Start)?;
        for step in steps {
            world.play(step)?;
        }
        world.finish()?;
    }
}

/// Found by the property: an extension that reports exit/error after its SHUTDOWN was
/// queued is refused from then on and killed at the deadline; the shutdown completes.
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
