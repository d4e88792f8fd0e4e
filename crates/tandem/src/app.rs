//! app: the extension, as a [`tandem_sdk::Handler`]: the lifecycle glue between the
//! SDK's events, the intake ([`Pipeline`]), the flush policy ([`FlushPolicy`]) and the
//! lanes ([`Delivery`]).
//!
//! Owns the answers to "when": a telemetry batch is acknowledged once every record in
//! it is held (memory or spool); at INVOKE the policy decides (records it finds too old
//! for the next thaw are flushed there, within the budget, while the function runs); a
//! blocking flush at the end waits for the invocation's `platform.runtimeDone` and then
//! spends at most the flush budget counted from that moment, so a slow or dead sink
//! never delays `next` past it;
//! background flushes run in the flusher task on the policy's timer and never delay
//! `next`; the intake (parsing lines, the rules, queueing) runs on its own thread
//! (`app/intake.rs`), never on the runtime thread that answers Lambda; at SHUTDOWN
//! everything is drained before the deadline, and what still cannot be delivered is
//! written to the spool (a reset: the next process delivers it) or to stdout as a last
//! resort (a spindown: the environment is going away).
//!
//! Never parses, encodes or sends anything itself, and never logs per record.

use crate::clock::{instant_of, now_ms};
use crate::config::{Config, Problem, SinkKind};
use crate::delivery::{Delivery, FlushKind, LaneOutcome};
use crate::diag;
use crate::encode::ndjson;
use crate::flush::{Decision, FlushPolicy, Mode, INVOKE_DEADLINE_MARGIN};
use crate::model::Item;
use crate::pipeline::{Pipeline, UNDELIVERED_KEY};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tandem_sdk::{Context, Drain, Error, Event, Extension, Handler, InvokeEvent, ShutdownEvent, ShutdownReason};
use tandem_sdk::{TelemetryConfig, TelemetryType};
use tokio::sync::{mpsc, oneshot};

/// Telemetry batching asked of Lambda: the shortest wait it allows (25 ms), so that an
/// invocation's `platform.runtimeDone` arrives within ~25 ms of the runtime finishing
/// (the blocking flush waits for it), and small batches (acknowledged quickly).
const TELEMETRY_TIMEOUT_MS: u32 = 25;
const TELEMETRY_MAX_ITEMS: u32 = 1_000;
const TELEMETRY_MAX_BYTES: u32 = 256 * 1024;

/// Kept free at SHUTDOWN for the last resort after the final flush.
const LAST_RESORT_RESERVE: Duration = Duration::from_millis(150);

/// How many recent `platform.runtimeDone` times are remembered.
const RUNTIME_DONE_KEPT: usize = 16;

mod intake;

/// Runs the extension until SHUTDOWN has been handled.
pub async fn run(config: Config, problems: Vec<Problem>) -> Result<(), Error> {
    let app = App::new(config, problems);
    let telemetry = app.telemetry_config();
    // The OTLP receiver listens before tandem registers, so the function's INIT can export.
    let _receiver = app.start_receiver();
    Extension::new().telemetry(telemetry).run(app).await
}

/// The extension. See the module documentation.
pub struct App {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    /// Problems found at start, told at `init` (once the diagnostic prefix is known).
    startup_problems: Mutex<Vec<String>>,
    /// Locked only by jobs on the intake thread.
    pipeline: Mutex<Pipeline>,
    /// The correlator's acknowledged events on disk (locked after `pipeline`).
    journal: Mutex<crate::journal::Journal>,
    intake: intake::Intake,
    /// Recent runtimeDone times (request id, ms since the epoch), newest last: read on
    /// the runtime thread without waiting for the intake.
    runtime_done: Mutex<VecDeque<(String, u64)>>,
    delivery: Delivery,
    policy: Mutex<FlushPolicy>,
    instance: Arc<OnceLock<String>>,
    flusher: Mutex<Option<mpsc::UnboundedSender<Cmd>>>,
    /// The security guard (inert when off).
    guard: crate::guard::Agent,
    /// The OTLP receiver's view of the lifecycle (the invocation, SHUTDOWN).
    receiver: Arc<crate::receiver::State>,
}

/// The receiver's way into the lanes.
struct ToLanes(std::sync::Weak<Shared>);

impl crate::receiver::Lanes for ToLanes {
    fn pending_bytes(&self) -> u64 {
        self.0.upgrade().map_or(0, |s| s.delivery.pending().bytes as u64)
    }

    fn push(&self, item: Item) {
        if let Some(s) = self.0.upgrade() {
            s.delivery.push(vec![item], now_ms());
        }
    }

    fn dropped(&self, reason: &'static str, n: u64) {
        if let Some(s) = self.0.upgrade() {
            s.delivery.health().dropped(reason, n);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single consistent step: a panic elsewhere does
    // not make the state unusable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl App {
    /// Builds the extension from a loaded configuration and its problems. Cheap: no
    /// I/O, no regex, no TLS, no spool scan.
    pub fn new(config: Config, problems: Vec<Problem>) -> App {
        diag::set_level(config.log_level);
        let instance: Arc<OnceLock<String>> = Arc::default();
        let (delivery, sink_problems) = Delivery::new(&config, instance.clone());
        let mut startup: Vec<String> = problems.iter().map(ToString::to_string).collect();
        startup.extend(sink_problems);
        let pipeline = Pipeline::new(config.correlator_options(), config.rules.clone())
            .with_max_line_bytes(config.rules_max_line_bytes);
        let policy = config.flush_policy();
        App {
            shared: Arc::new(Shared {
                startup_problems: Mutex::new(startup),
                pipeline: Mutex::new(pipeline),
                journal: Mutex::new(crate::journal::Journal::new(
                    (config.spool.max_bytes > 0).then_some(config.spool.dir.as_path()),
                )),
                intake: intake::Intake::default(),
                runtime_done: Mutex::new(VecDeque::new()),
                delivery,
                policy: Mutex::new(policy),
                instance,
                flusher: Mutex::new(None),
                guard: crate::guard::Agent::new(&config.guard),
                receiver: Arc::default(),
                config,
            }),
        }
    }

    /// Starts the OTLP receiver (when on): what it takes in is pushed into the lanes,
    /// up to the memory buffer and a spool share of the fullest lane.
    pub fn start_receiver(&self) -> Option<Arc<crate::receiver::Receiver>> {
        let s = &self.shared;
        let sinks = s.delivery.sinks();
        let capacity = s.config.buffer.max_bytes + s.config.spool.max_bytes / sinks.len().max(1) as u64;
        let lanes = Arc::new(ToLanes(Arc::downgrade(&self.shared)));
        crate::receiver::start(&s.config.receiver, &sinks, capacity, s.receiver.clone(), lanes)
    }

    /// The subscription: the configured types, with the shortest batching wait.
    pub fn telemetry_config(&self) -> TelemetryConfig {
        let types = if self.shared.config.log_types.is_empty() {
            vec![TelemetryType::Platform, TelemetryType::Function]
        } else {
            self.shared.config.log_types.clone()
        };
        TelemetryConfig {
            types,
            max_items: Some(TELEMETRY_MAX_ITEMS),
            max_bytes: Some(TELEMETRY_MAX_BYTES),
            timeout_ms: Some(TELEMETRY_TIMEOUT_MS),
            ..TelemetryConfig::default()
        }
    }
}

impl Shared {
    fn arm(&self, timer: Option<Duration>) {
        self.command(Cmd::Arm(timer));
    }

    fn command(&self, cmd: Cmd) {
        if let Some(tx) = lock(&self.flusher).as_ref() {
            let _ = tx.send(cmd);
        }
    }

    fn decide(&self, f: impl FnOnce(&mut FlushPolicy, u64, crate::flush::Pending) -> Decision) -> (Decision, Mode) {
        let pending = self.delivery.pending();
        let mut p = lock(&self.policy);
        let d = f(&mut p, now_ms(), pending);
        (d, p.mode())
    }

    /// Ingests one telemetry batch and pushes its items to the queues. Runs on the
    /// intake thread.
    fn ingest(&self, events: Vec<Event>, now: u64, malformed: u64) {
        let mut items = Vec::with_capacity(events.len());
        self.restore_held(&mut items);
        let intake = lock(&self.pipeline).ingest(events, tandem_sdk::log_prefix(), now, &mut items);
        for p in &intake.problems {
            diag::warn(p);
        }
        if let Some(id) = intake.instance_id {
            let _ = self.instance.set(id);
        }
        if !intake.runtime_done.is_empty() {
            let mut done = lock(&self.runtime_done);
            for d in intake.runtime_done {
                if done.len() == RUNTIME_DONE_KEPT {
                    done.pop_front();
                }
                done.push_back(d);
            }
        }
        {
            let mut h = self.delivery.health();
            h.records_in(intake.records_in);
            h.dropped(crate::health::reason::RULE, intake.dropped_by_rule);
            h.dropped(crate::health::reason::LAMBDA_LOGS_DROPPED, intake.lambda_dropped);
        }
        self.delivery.set_parse_errors(malformed);
        self.delivery.push(items, now);
        self.save_held();
    }

    /// Before the first batch: rebuilds the invocations a killed process held (see
    /// [`crate::journal`]); they end as partial records unless completed.
    fn restore_held(&self, items: &mut Vec<Item>) {
        let held = lock(&self.journal).load();
        if held.is_empty() {
            return;
        }
        items.extend(lock(&self.pipeline).restore(&held));
        diag::info(format_args!(
            "rebuilt {} events of invocations a previous process held without their report",
            held.len()
        ));
    }

    /// Keeps the correlator's acknowledged events on disk (after the batch's records
    /// were written ahead: a kill in between re-sends, never loses).
    fn save_held(&self) {
        let pipeline = lock(&self.pipeline);
        lock(&self.journal).save(pipeline.held());
    }

    async fn background_flush(self: Arc<Self>, budget: Duration) {
        let outcomes = self.delivery.flush(FlushKind::Background, Instant::now() + budget).await;
        lock(&self.policy).on_flushed(now_ms());
        log_outcomes("background flush", &outcomes);
    }

    /// The end-of-invocation flush: waits for `request_id`'s runtimeDone (until the
    /// invocation's deadline), asks the policy (unless `decided`), and flushes within
    /// the budget counted from the runtime's end.
    async fn end_of_invocation(&self, request_id: &str, deadline_ms: u64, decided: Option<Decision>, ctx: &Context) {
        let until = instant_of(deadline_ms).checked_sub(INVOKE_DEADLINE_MARGIN).unwrap_or_else(Instant::now);
        if !ctx.wait_runtime_done(request_id, until).await {
            // Timed out or failed: the reset's SHUTDOWN drains what is held.
            return;
        }
        let arrived = Instant::now();
        let done_ms = lock(&self.runtime_done).iter().rev().find(|(id, _)| id == request_id).map(|(_, t)| *t);
        let lag_ms = done_ms.map_or(0, |t| now_ms().saturating_sub(t));
        let d = match decided {
            Some(d) => d,
            None => {
                let (d, _) = self.decide(|p, now, pending| p.on_runtime_done(now, pending));
                self.arm(d.next_timer);
                d
            }
        };
        if !(d.flush && d.blocking) {
            return;
        }
        let budget = d.budget.saturating_sub(Duration::from_millis(lag_ms));
        if budget.is_zero() {
            return;
        }
        let outcomes = self.delivery.flush(FlushKind::Blocking, arrived + budget).await;
        lock(&self.policy).on_flushed(now_ms());
        log_outcomes("flush", &outcomes);
    }
}

fn log_outcomes(what: &str, outcomes: &[(SinkKind, LaneOutcome)]) {
    if !diag::enabled(crate::diag::LogLevel::Debug) {
        return;
    }
    for (kind, o) in outcomes {
        match o {
            LaneOutcome::Drained => {}
            LaneOutcome::Failed(why) => diag::debug(format_args!("{what}: {}: {why}", kind.as_str())),
            LaneOutcome::Busy => diag::debug(format_args!("{what}: {}: busy until the deadline", kind.as_str())),
            LaneOutcome::Open => {
                diag::debug(format_args!("{what}: {}: failing; left to the background", kind.as_str()))
            }
        }
    }
}

impl Handler for App {
    async fn init(&self, _ctx: &Context) -> Result<(), Error> {
        let mut problems = std::mem::take(&mut *lock(&self.shared.startup_problems));
        if !self.shared.config.rules.is_empty() {
            // A bad pattern is reported now, with the other configuration problems.
            let shared = self.shared.clone();
            match self.shared.intake.run(move || lock(&shared.pipeline).compile_rules()).await {
                Ok(p) => problems.extend(p),
                Err(_) => problems
                    .push("TANDEM_RULES: compiling the rules failed; they are compiled again at the first line".into()),
            }
        }
        for p in &problems {
            // Shown unless diagnostics are off: each says what is used instead.
            diag::error(p);
        }
        let sinks: Vec<&str> = self.shared.delivery.sinks().iter().map(|k| k.as_str()).collect();
        diag::debug(format_args!("sinks: {}; flush: {}", sinks.join(", "), self.shared.config.flush));
        *lock(&self.shared.flusher) = Some(flusher::spawn(self.shared.clone()));
        // Findings go to the queues like the telemetry's records.
        let shared = Arc::downgrade(&self.shared);
        self.shared.guard.start(Arc::new(move |items| {
            if let Some(s) = shared.upgrade() {
                s.delivery.push(items, now_ms());
            }
        }));
        Ok(())
    }

    async fn telemetry(&self, events: Vec<Event>, ctx: &Context) -> Result<(), Error> {
        let shared = self.shared.clone();
        let malformed = ctx.stats().malformed;
        let now = now_ms();
        // Answered (by returning) only once the job has pushed the items: acknowledged
        // means held.
        self.shared
            .intake
            .run(move || shared.ingest(events, now, malformed))
            .await
            .map_err(|_| Error::transient("the intake failed on this batch"))
    }

    async fn invoke(&self, event: InvokeEvent, ctx: &Context) -> Result<(), Error> {
        let s = &self.shared;
        s.guard.invoke(&event.request_id);
        s.receiver.invoke(&event.request_id, event.tracing.as_ref().map(|t| t.value.as_str()));
        s.delivery.health().mark_due();
        let deadline_ms = event.deadline_ms;
        let (d, mode) = s.decide(|p, now, pending| p.on_invoke(now, Some(deadline_ms), pending));
        s.arm(d.next_timer);
        if d.flush && d.blocking {
            // Records the next thaw would deliver too late: out now, while the function
            // runs, before `next` (within the budget; a failing sink is skipped).
            let outcomes = s.delivery.flush(FlushKind::Blocking, Instant::now() + d.budget).await;
            lock(&s.policy).on_flushed(now_ms());
            log_outcomes("flush at invoke", &outcomes);
        }
        if d.flush && !d.blocking {
            s.command(Cmd::Kick(d.budget));
        } else if s.delivery.retry_due(now_ms()) {
            // A failing sink is retried while the function runs, never before `next`.
            s.command(Cmd::Kick(crate::flush::BACKGROUND_BUDGET));
        }
        if !s.config.log_types.contains(&TelemetryType::Platform) {
            // No runtimeDone will come: a blocking flush could only wait for the
            // deadline. The policy's background flushes and SHUTDOWN deliver.
            return Ok(());
        }
        match mode {
            Mode::End => s.end_of_invocation(&event.request_id, deadline_ms, None, ctx).await,
            Mode::Background => {
                // `next` follows at once: this is the policy's last word before it.
                let (d, _) = s.decide(|p, now, pending| p.on_runtime_done(now, pending));
                s.arm(d.next_timer);
                if d.flush && d.blocking {
                    s.end_of_invocation(&event.request_id, deadline_ms, Some(d), ctx).await;
                }
            }
        }
        Ok(())
    }

    async fn shutdown(&self, event: ShutdownEvent, drain: Drain, _ctx: &Context) -> Result<(), Error> {
        let s = &self.shared;
        s.guard.stop();
        // Received data from now on is refused (retryably); what was held drains below.
        s.receiver.close();
        // Stop the flusher (cancelling a background flush: its records stay queued).
        s.delivery.stop_background();
        let stop = lock(&s.flusher).take();
        if let Some(tx) = stop {
            let (ack, done) = oneshot::channel();
            if tx.send(Cmd::Stop(ack)).is_ok() {
                let _ = tokio::time::timeout_at(drain.deadline.into(), done).await;
            }
        }
        // After every batch already handed to the intake (bounded by the deadline).
        let shared = s.clone();
        let finish = s.intake.run(move || {
            let partial = lock(&shared.pipeline).finish();
            shared.save_held();
            partial
        });
        let until = drain.deadline.checked_sub(LAST_RESORT_RESERVE).unwrap_or(drain.deadline);
        if let Ok(Ok(partial)) = tokio::time::timeout_at(until.into(), finish).await {
            s.delivery.push(partial, now_ms());
        }
        s.delivery.health().mark_due();
        let d = lock(&s.policy).on_shutdown(now_ms(), event.deadline_ms);
        let reserve = LAST_RESORT_RESERVE.min(drain.time_left() / 4);
        let flush_deadline =
            (Instant::now() + d.budget).min(drain.deadline.checked_sub(reserve).unwrap_or(drain.deadline));
        let outcomes = s.delivery.flush(FlushKind::Shutdown, flush_deadline).await;
        log_outcomes("shutdown flush", &outcomes);
        let left: Vec<SinkKind> = s
            .delivery
            .pending_by_sink()
            .into_iter()
            .filter(|(k, n)| *n > 0 && *k != SinkKind::Stdout)
            .map(|(k, _)| k)
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if is_reset(&drain.reason) {
            // The environment restarts: /tmp survives, the next process delivers it.
            let failed = s.delivery.persist_all();
            let kept: Vec<&str> = left.iter().filter(|k| !failed.contains(k)).map(|k| k.as_str()).collect();
            if !kept.is_empty() {
                diag::info(format_args!(
                    "shutdown ({}): undelivered records kept in the spool for the next start ({})",
                    drain.reason,
                    kept.join(", ")
                ));
            }
            if !failed.is_empty() {
                last_resort(&s.delivery, &failed, &drain.reason, drain.deadline);
            }
        } else {
            last_resort(&s.delivery, &left, &drain.reason, drain.deadline);
        }
        Ok(())
    }
}

/// A reset (the function timed out or failed) rather than the end of the environment.
fn is_reset(reason: &ShutdownReason) -> bool {
    match reason {
        ShutdownReason::Timeout | ShutdownReason::Failure => true,
        ShutdownReason::Spindown => false,
        // The Runtime Interface Emulator's spellings.
        ShutdownReason::Other(r) => matches!(r.to_ascii_lowercase().as_str(), "timeout" | "failure" | "releasefail"),
    }
}

/// Writes what `kinds` still hold to stdout, so that it lands in CloudWatch: one line
/// per record (`{"tandem_undelivered":{"sinks":[..],"record":{..}}}`, the record in its
/// NDJSON form), then one summary line. Stops at `deadline`.
fn last_resort(delivery: &Delivery, kinds: &[SinkKind], reason: &ShutdownReason, deadline: Instant) {
    let drained = delivery.drain(kinds, deadline);
    let mut order: Vec<(Arc<Item>, Vec<&'static str>)> = Vec::new();
    let mut index: HashMap<*const Item, usize> = HashMap::new();
    let mut by_sink: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut unread = 0;
    for (kind, items, left) in drained {
        unread += left;
        *by_sink.entry(kind.as_str()).or_insert(0) += items.len() as u64;
        for item in items {
            match index.get(&Arc::as_ptr(&item)) {
                Some(&i) => order[i].1.push(kind.as_str()),
                None => {
                    index.insert(Arc::as_ptr(&item), order.len());
                    order.push((item, vec![kind.as_str()]));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut written = 0u64;
    let mut stdout = std::io::stdout().lock();
    for (n, (item, sinks)) in order.iter().enumerate() {
        if n % 256 == 0 && Instant::now() >= deadline {
            break;
        }
        line.clear();
        ndjson::encode_item(item, &mut line);
        while line.last() == Some(&b'\n') {
            line.pop();
        }
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(UNDELIVERED_KEY.as_bytes());
        out.extend_from_slice(b"\":{\"sinks\":");
        out.extend_from_slice(serde_json::to_string(sinks).unwrap_or_else(|_| "[]".into()).as_bytes());
        out.extend_from_slice(b",\"record\":");
        out.extend_from_slice(&line);
        out.extend_from_slice(b"}}\n");
        written += 1;
        if out.len() >= 64 * 1024 {
            let _ = stdout.write_all(&out);
            out.clear();
        }
    }
    let total = order.len() as u64;
    let summary = serde_json::json!({
        format!("{UNDELIVERED_KEY}_summary"): {
            "reason": reason.as_str(),
            "records": total,
            "written": written,
            "unreadFromSpool": unread,
            "bySink": by_sink,
        }
    });
    out.extend_from_slice(summary.to_string().as_bytes());
    out.push(b'\n');
    let _ = stdout.write_all(&out);
    let _ = stdout.flush();
    drop(stdout);
    diag::warn(format_args!(
        "shutdown ({reason}): {total} records could not be delivered; {written} written to stdout as {UNDELIVERED_KEY} lines{}",
        if unread > 0 { format!(", about {unread} spooled ones lost") } else { String::new() }
    ));
}

/// Commands to the flusher task.
enum Cmd {
    /// (Re)arm the policy's timer, or cancel it.
    Arm(Option<Duration>),
    /// Start a background flush with this budget (coalesced with a running one).
    Kick(Duration),
    /// Cancel any background flush and end.
    Stop(oneshot::Sender<()>),
}

mod flusher {
    //! The background flusher: one task that owns the policy's timer and runs at most
    //! one background flush at a time (requests arriving meanwhile are coalesced into
    //! one more). While the environment is frozen its timer cannot fire; the policy
    //! catches up at the next INVOKE.

    use super::*;

    type Running = Pin<Box<dyn Future<Output = ()> + Send>>;

    enum Wake {
        Cmd(Option<Cmd>),
        Timer,
        Done,
    }

    pub(super) fn spawn(shared: Arc<Shared>) -> mpsc::UnboundedSender<Cmd> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut timer: Option<Instant> = None;
            let mut running: Option<Running> = None;
            let mut again: Option<Duration> = None;
            loop {
                let wake = tokio::select! {
                    cmd = rx.recv() => Wake::Cmd(cmd),
                    () = async {
                        match timer {
                            Some(t) => tokio::time::sleep_until(t.into()).await,
                            None => std::future::pending().await,
                        }
                    } => Wake::Timer,
                    () = async {
                        match running.as_mut() {
                            Some(f) => f.await,
                            None => std::future::pending().await,
                        }
                    } => Wake::Done,
                };
                let mut kick = None;
                match wake {
                    Wake::Cmd(None) => return,
                    Wake::Cmd(Some(Cmd::Stop(ack))) => {
                        drop(running.take());
                        let _ = ack.send(());
                        return;
                    }
                    Wake::Cmd(Some(Cmd::Arm(d))) => timer = d.map(|d| Instant::now() + d),
                    Wake::Cmd(Some(Cmd::Kick(budget))) => kick = Some(budget),
                    Wake::Timer => {
                        let (d, _) = shared.decide(|p, now, pending| p.on_timer(now, pending));
                        timer = d.next_timer.map(|t| Instant::now() + t);
                        if d.flush {
                            kick = Some(d.budget);
                        }
                    }
                    Wake::Done => {
                        running = None;
                        kick = again.take();
                    }
                }
                if let Some(budget) = kick {
                    if running.is_some() {
                        again = Some(again.map_or(budget, |b| b.max(budget)));
                    } else {
                        running = Some(Box::pin(shared.clone().background_flush(budget)));
                    }
                }
            }
        });
        tx
    }
}
