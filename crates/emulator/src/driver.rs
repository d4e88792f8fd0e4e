//! driver: the one task that owns an environment. It feeds the lifecycle state
//! machine with inputs (API calls from the HTTP edge, process exits, timers) and
//! carries out the actions it returns: replies, process starts
//! and signals, freeze and thaw, timers, records for the telemetry hub.
//!
//! Nothing else touches lifecycle state; other tasks only send messages here.

use crate::clock::Clock;
use crate::config::Config;
use crate::freeze::Freezer;
use crate::lifecycle::{
    Action, ApiCall, Ctx, ExitInfo, Input, InvokeRequest, InvokeResult, Lifecycle, Observation, ProcId, ProcKind,
    Rejection, Reply, Signal, TimerId, Token,
};
use crate::memory::Memory;
use crate::process::{self, Capture, Spec};
use crate::telemetry::{Hub, Msg, Source};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem_wire::error::types as et;
use tandem_wire::Record;
use tokio::sync::{mpsc, oneshot, Notify};

/// Observations kept for the library API.
const OBSERVATIONS_KEPT: usize = 200_000;

/// What an invocation's caller gets back.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeOutcome {
    /// The invocation's result.
    pub result: InvokeResult,
    /// The last 4 KB of the invocation's log, when it was asked for.
    pub log_tail: Option<String>,
}

pub enum DriverMsg {
    Api { call: ApiCall, reply: oneshot::Sender<Reply> },
    Invoke { request_id: String, request: InvokeRequest, reply: oneshot::Sender<Result<InvokeOutcome, Rejection>> },
    Shutdown { done: oneshot::Sender<()> },
    Exited { proc: ProcId, status: Option<std::process::ExitStatus> },
    MemoryExceeded,
}

/// One lifecycle observation with its time.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// When it was observed.
    pub at: Instant,
    /// The same time, milliseconds since the epoch.
    pub epoch_ms: u64,
    /// What was observed.
    pub what: Observation,
}

/// The observation log shared with the library API.
#[derive(Default)]
pub struct Observations {
    /// The most recent observations (bounded: `serve` may run for millions of invokes).
    pub log: Mutex<std::collections::VecDeque<Observed>>,
    pub notify: Notify,
    /// The most recent Runtime and Extensions API calls (bounded like `log`).
    pub api: Mutex<std::collections::VecDeque<ApiMark>>,
}

/// One Runtime or Extensions API call, from its arrival to its answer.
#[derive(Debug, Clone)]
pub struct ApiMark {
    /// `runtime`, or the calling extension's identifier (as sent; empty when none).
    pub caller: String,
    /// What it called: `next`, `response`, `error`, `init/error`, `register`,
    /// `event/next`, `exit/error`, `telemetry` or `logs` (a subscription).
    pub call: &'static str,
    /// The invocation it answers, for a runtime's response or error.
    pub request_id: Option<String>,
    /// When it arrived, in microseconds since the epoch.
    pub start_us: u64,
    /// When it was answered, if it was.
    pub end_us: Option<u64>,
    /// The answer's HTTP status, if answered.
    pub status: Option<u16>,
    seq: u64,
}

/// Who made an API call and what it was (`None` for the edge's internal pre-check).
fn describe_call(call: &ApiCall) -> Option<(String, &'static str, Option<String>)> {
    let ext = |id: &Option<String>| id.clone().unwrap_or_default();
    Some(match call {
        ApiCall::RuntimeNext => ("runtime".into(), "next", None),
        ApiCall::RuntimeResponse { request_id, .. }
        | ApiCall::RuntimeResponseTooLarge { request_id, .. }
        | ApiCall::RuntimeResponseTruncated { request_id, .. } => {
            ("runtime".into(), "response", Some(request_id.clone()))
        }
        ApiCall::ResponseStart { .. } => return None,
        ApiCall::RuntimeError { request_id, .. } => ("runtime".into(), "error", Some(request_id.clone())),
        ApiCall::RuntimeInitError { .. } => ("runtime".into(), "init/error", None),
        ApiCall::ExtRegister { name, .. } => (name.clone().unwrap_or_default(), "register", None),
        ApiCall::ExtNext { id } => (ext(id), "event/next", None),
        ApiCall::ExtInitError { id, .. } => (ext(id), "init/error", None),
        ApiCall::ExtExitError { id, .. } => (ext(id), "exit/error", None),
        ApiCall::Subscribe { api: tandem_wire::Api::Telemetry, id, .. } => (ext(id), "telemetry", None),
        ApiCall::Subscribe { id, .. } => (ext(id), "logs", None),
    })
}

struct Proc {
    pid: i32,
    capture: Capture,
    alive: bool,
}

/// The owner of one environment: its lifecycle, and everything that carries out the
/// lifecycle's actions (processes, freezer, memory, timers, pending replies).
pub struct Driver {
    lc: Lifecycle,
    cfg: Arc<Config>,
    clock: Clock,
    hub: Hub,
    freezer: Freezer,
    memory: Memory,
    tx: mpsc::UnboundedSender<DriverMsg>,
    observations: Arc<Observations>,
    runtime_env: Vec<(String, String)>,
    extension_env: Vec<(String, String)>,
    procs: HashMap<ProcKind, Proc>,
    replies: HashMap<Token, oneshot::Sender<Reply>>,
    /// The API calls not answered yet, by their mark's number.
    api_marks: HashMap<Token, u64>,
    api_seq: u64,
    invokes: HashMap<Token, oneshot::Sender<Result<InvokeOutcome, Rejection>>>,
    timers: HashMap<TimerId, Instant>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    next_token: Token,
    done: bool,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lc: Lifecycle,
        cfg: Arc<Config>,
        clock: Clock,
        hub: Hub,
        freezer: Freezer,
        memory: Memory,
        tx: mpsc::UnboundedSender<DriverMsg>,
        observations: Arc<Observations>,
        runtime_env: Vec<(String, String)>,
        extension_env: Vec<(String, String)>,
    ) -> Self {
        Self {
            lc,
            cfg,
            clock,
            hub,
            freezer,
            memory,
            tx,
            observations,
            runtime_env,
            extension_env,
            procs: HashMap::new(),
            replies: HashMap::new(),
            api_marks: HashMap::new(),
            api_seq: 0,
            invokes: HashMap::new(),
            timers: HashMap::new(),
            shutdown_waiters: Vec::new(),
            next_token: 1,
            done: false,
        }
    }

    /// Runs until the environment is shut down, or until `alive` reports that the
    /// owner is gone (then every process is killed).
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<DriverMsg>, mut alive: oneshot::Receiver<()>) {
        self.input(Input::Start).await;
        while !self.done {
            let next_timer = self.timers.iter().min_by_key(|(_, at)| **at).map(|(id, at)| (*id, *at));
            let sleep = async {
                match next_timer {
                    Some((_, at)) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                msg = rx.recv() => match msg {
                    Some(msg) => self.on_msg(msg).await,
                    None => break,
                },
                _ = sleep => {
                    if let Some((id, _)) = next_timer {
                        self.timers.remove(&id);
                        self.input(Input::Timer(id)).await;
                    }
                }
                _ = &mut alive => break,
            }
        }
    }

    async fn on_msg(&mut self, msg: DriverMsg) {
        match msg {
            DriverMsg::Api { call, reply } => {
                let token = self.token();
                self.replies.insert(token, reply);
                self.mark_api_call(token, &call);
                self.input(Input::Api { token, call }).await;
            }
            DriverMsg::Invoke { request_id, request, reply } => {
                let token = self.token();
                self.invokes.insert(token, reply);
                self.input(Input::Invoke { token, request_id, request }).await;
            }
            DriverMsg::Shutdown { done } => {
                self.shutdown_waiters.push(done);
                self.input(Input::Shutdown).await;
            }
            DriverMsg::Exited { proc, status } => {
                if proc.generation == self.lc.generation() {
                    if let Some(p) = self.procs.get_mut(&proc.kind) {
                        p.alive = false;
                        self.memory.untrack(p.pid);
                    }
                }
                let signal = status.and_then(|s| s.signal());
                let exit = ExitInfo {
                    code: status.and_then(|s| s.code()),
                    signal,
                    oom: signal == Some(libc::SIGKILL) && self.memory.take_oom(),
                };
                self.input(Input::Exited { proc, exit }).await;
            }
            DriverMsg::MemoryExceeded => {
                // Without a cgroup, the sampler saw the limit passed: like the kernel's
                // OOM killer, kill the largest process; its exit carries the OOM and
                // the lifecycle resets the environment.
                if let Some(pid) = self.memory.largest() {
                    process::signal_group(pid, libc::SIGKILL);
                }
            }
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    async fn input(&mut self, input: Input) {
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            let ctx = Ctx { now: Instant::now() };
            let actions = self.lc.handle(ctx, input);
            for action in actions {
                if let Some(more) = self.execute(action).await {
                    queue.push(more);
                }
            }
        }
    }

    fn mark_api_call(&mut self, token: Token, call: &ApiCall) {
        let Some((caller, call, request_id)) = describe_call(call) else {
            return;
        };
        self.api_seq += 1;
        let mark = ApiMark {
            caller,
            call,
            request_id,
            start_us: self.clock.epoch_us(Instant::now()),
            end_us: None,
            status: None,
            seq: self.api_seq,
        };
        self.api_marks.insert(token, self.api_seq);
        if let Ok(mut api) = self.observations.api.lock() {
            api.push_back(mark);
            if api.len() > OBSERVATIONS_KEPT {
                api.pop_front();
            }
        }
    }

    fn mark_api_answer(&mut self, token: Token, status: u16) {
        let Some(seq) = self.api_marks.remove(&token) else {
            return;
        };
        let now = self.clock.epoch_us(Instant::now());
        if let Ok(mut api) = self.observations.api.lock() {
            // Answers come soon (a long-poll `next` within an invocation): search from the end.
            if let Some(m) = api.iter_mut().rev().find(|m| m.seq == seq) {
                m.end_us = Some(now);
                m.status = Some(status);
            }
        }
    }

    fn observe(&self, what: Observation) {
        let now = Instant::now();
        if let Observation::Signalled { process, signal: Signal::Kill } = &what {
            // An extension killed is news (it ignored SHUTDOWN or a reset took it);
            // the runtime is killed on every reset and every shutdown without extensions.
            if process != "runtime" && self.lc.phase() == crate::lifecycle::PhaseState::TearingDown {
                self.hub.send(Msg::Note(format!("tandem-emulator: {process} killed (SIGKILL)")));
            }
        }
        if let Ok(mut log) = self.observations.log.lock() {
            log.push_back(Observed { at: now, epoch_ms: self.clock.epoch_ms(now), what });
            if log.len() > OBSERVATIONS_KEPT {
                log.pop_front();
            }
        }
        self.observations.notify.notify_waiters();
    }

    fn live_pgids(&self) -> Vec<i32> {
        self.procs.values().filter(|p| p.alive).map(|p| p.pid).collect()
    }

    /// Carries out one action; returns an input it caused (a failed spawn).
    async fn execute(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Reply { token, reply } => {
                self.mark_api_answer(token, reply.status);
                if let Some(tx) = self.replies.remove(&token) {
                    let _ = tx.send(reply);
                }
            }
            Action::Spawn { proc } => return self.spawn(proc),
            Action::Signal { proc, signal } => {
                if proc.generation == self.lc.generation() {
                    if let Some(p) = self.procs.get(&proc.kind).filter(|p| p.alive) {
                        let sig = match signal {
                            Signal::Term => libc::SIGTERM,
                            Signal::Kill => libc::SIGKILL,
                        };
                        process::signal_group(p.pid, sig);
                    }
                }
            }
            Action::Freeze => {
                let pg = self.live_pgids();
                self.freezer.freeze(&pg);
                self.memory.pause(true);
                self.hub.send(Msg::Freeze(true));
            }
            Action::Thaw => {
                let pg = self.live_pgids();
                self.freezer.thaw(&pg);
                self.memory.pause(false);
                self.hub.send(Msg::Freeze(false));
            }
            Action::Timer { id, at } => {
                self.timers.insert(id, at);
            }
            Action::Emit(mut event) => {
                if let Record::Report(r) = &mut event.record {
                    // Measured now, once per invocation: the periodic sampler may not
                    // have run during a short one. Lambda never reports more than the
                    // memory size, and exactly the size when the limit killed it.
                    let size = r.metrics.memory_size_mb;
                    r.metrics.max_memory_used_mb = if r.error_type.as_deref() == Some(et::RUNTIME_OUT_OF_MEMORY) {
                        size
                    } else {
                        self.memory.sample_now();
                        self.memory.peak_mb().min(size)
                    };
                }
                if !matches!(event.record, Record::Start(_) | Record::InitStart(_)) {
                    // What the processes wrote before this record goes before it.
                    for p in self.procs.values() {
                        p.capture.sync().await;
                    }
                }
                self.hub.send(Msg::Platform(event));
            }
            Action::Subscribe { extension, subscription } => self.hub.send(Msg::Subscribe { extension, subscription }),
            Action::InvokeResult { token, result } => {
                if let Some(tx) = self.invokes.remove(&token) {
                    if result.want_tail {
                        let (ack, rx) = oneshot::channel();
                        self.hub.send(Msg::Tail { request_id: result.request_id.clone(), ack });
                        tokio::spawn(async move {
                            let tail =
                                tokio::time::timeout(Duration::from_secs(60), rx).await.ok().and_then(Result::ok);
                            let _ = tx.send(Ok(InvokeOutcome { result, log_tail: tail }));
                        });
                    } else {
                        let _ = tx.send(Ok(InvokeOutcome { result, log_tail: None }));
                    }
                }
            }
            Action::Rejected { token, rejection } => {
                if let Some(tx) = self.invokes.remove(&token) {
                    let _ = tx.send(Err(rejection));
                }
            }
            Action::StopTelemetry => self.hub.send(Msg::StopDelivery(None)),
            Action::ConsoleLine(line) => {
                // After what the processes wrote before the crash, like the records.
                for p in self.procs.values() {
                    p.capture.sync().await;
                }
                self.hub.send(Msg::ConsoleLine(line));
            }
            Action::ResetMemoryPeak => {
                self.memory.reset_peak();
                self.procs.clear();
                self.hub.send(Msg::NewGeneration);
            }
            Action::Observe(o) => self.observe(o),
            Action::ShutdownComplete => {
                // Nothing runs any more: deliveries to listeners that are gone stop too,
                // once what was answered before they went is logged (bounded).
                let (ack, acked) = tokio::sync::oneshot::channel();
                self.hub.send(Msg::StopDelivery(Some(ack)));
                let _ = tokio::time::timeout(crate::telemetry::STOP_WAIT * 2, acked).await;
                for p in self.procs.values() {
                    p.capture.sync().await;
                }
                for w in self.shutdown_waiters.drain(..) {
                    let _ = w.send(());
                }
                self.done = true;
            }
        }
        None
    }

    fn spawn(&mut self, proc: ProcId) -> Option<Input> {
        let (spec, source, name) = match proc.kind {
            ProcKind::Runtime => {
                let argv = self.cfg.runtime_argv();
                let (program, args) = argv.split_first()?;
                let spec = Spec {
                    program: program.into(),
                    args: args.to_vec(),
                    env: self.runtime_env.clone(),
                    cwd: Some(self.cfg.task_root()),
                };
                (spec, Source::Function, "runtime".to_owned())
            }
            ProcKind::Extension(i) => {
                let path = self.cfg.extensions.get(i)?.clone();
                let spec = Spec {
                    program: path,
                    args: Vec::new(),
                    env: self.extension_env.clone(),
                    cwd: Some(self.cfg.task_root()),
                };
                (spec, Source::Extension, self.lc.process_name(proc.kind))
            }
        };
        let cgroups: Vec<_> = [self.memory.procs_file(), self.freezer.procs_file()].into_iter().flatten().collect();
        let sandbox = self.cfg.sandbox().and_then(|s| s.entry());
        match process::spawn(&spec, sandbox, source, &self.hub, self.clock, &cgroups) {
            Ok(started) => {
                let pid = started.pid;
                self.memory.track(pid);
                self.procs.insert(proc.kind, Proc { pid, capture: started.capture, alive: true });
                let tx = self.tx.clone();
                let mut child = started.child;
                tokio::spawn(async move {
                    let status = child.wait().await.ok();
                    let _ = tx.send(DriverMsg::Exited { proc, status });
                });
                self.observe(Observation::Spawned { process: name, pid });
                None
            }
            Err(e) => {
                let error = format!("cannot start {}: {e}", spec.program.display());
                // The cause on the console too, not only in the invocation's error payload.
                self.hub.send(Msg::Note(format!("tandem-emulator: {name}: {error}")));
                Some(Input::SpawnFailed { proc, error })
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The owner went away without a shutdown (a test panicked, Ctrl-C): no process
        // of the environment may outlive it.
        let pg = self.live_pgids();
        if !pg.is_empty() {
            self.freezer.thaw(&pg);
            for g in pg {
                process::signal_group(g, libc::SIGKILL);
            }
        }
    }
}
