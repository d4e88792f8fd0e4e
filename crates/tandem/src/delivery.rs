//! delivery: the sinks' lanes (a queue and a sink each) and the flushes that drain them.
//!
//! Owns routing (each record to the queues of the sinks that take it), the flush of
//! all lanes at once within a deadline, and the per-sink serialisation of flushes: a
//! lane's sink is locked for the whole flush, so no record is ever in two requests in
//! flight. A flush sends front batches until the queue is empty or the sink fails or
//! the time is up; it commits exactly what the sink accepted. A lane's flush runs in
//! its own task: when the caller's deadline comes while a request is in flight, the
//! caller returns (`next` is not delayed) and the request finishes in the background,
//! never abandoned and sent again (see [`crate::sink::drive`]).
//!
//! Each lane has a circuit breaker ([`Breaker`]): after a failure no blocking flush
//! uses the sink (it costs the function nothing), background flushes try it once its
//! backoff passed, and a success closes it. Its first failure and its recovery are one
//! `warn` line each (failures told at most once a minute per sink); the health
//! snapshot carries each sink's state. A lane whose flush failed keeps its records and,
//! outside SHUTDOWN, writes its memory to the spool, so that a frozen or killed
//! environment loses nothing.
//!
//! Background flushes send a partial batch only when its oldest record waited
//! `TANDEM_BATCH_MAX_AGE_MS`; blocking and shutdown flushes send everything. Never
//! decides *when* to flush (the flush policy does) and never logs per record.

use crate::clock::now_ms;
use crate::config::{BatchConfig, Config, RetryConfig, SinkKind};
use crate::diag;
use crate::flush::Pending;
use crate::health::{Health, LaneView, SinkState};
use crate::model::Item;
use crate::queue::{Incoming, Queue, SpoolSettings};
use crate::sink::drive::Transition;
use crate::sink::{drive, Breaker, Driven, Plan, Seen, Sink};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::OwnedMutexGuard;

/// What kind of flush runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushKind {
    /// Off the invocation's path (timer, INVOKE): partial batches wait for their age.
    Background,
    /// Before `next`, within the flush budget.
    Blocking,
    /// At SHUTDOWN: everything, until the deadline.
    Shutdown,
}

/// How a lane's flush ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneOutcome {
    /// Nothing left (or only a young partial batch, in the background).
    Drained,
    /// Records remain: the sink failed or the time ran out.
    Failed(String),
    /// Another flush held the sink until the deadline, or a request was still in
    /// flight at the deadline (it finishes in the background).
    Busy,
    /// The sink's breaker is open: not tried by this flush.
    Open,
}

/// The longest an attempt may last when the sink keeps not answering (the timeout
/// doubles after each unanswered attempt, up to this).
const MAX_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Failure lines of one sink are told at most this often.
const WARN_EVERY_MS: u64 = 60_000;

/// A lane's delivery state.
#[derive(Debug, Default)]
struct LaneState {
    breaker: Breaker,
    /// The least time an attempt is given: the slowest answer seen, or twice a timeout
    /// that went unanswered.
    timeout_floor: Duration,
    /// When a failure line was last told (ms).
    warned_ms: Option<u64>,
    /// Whether the current outage was told (its recovery is told then).
    told: bool,
}

/// One sink's lane.
pub struct Lane {
    /// Which sink.
    pub kind: SinkKind,
    queue: Mutex<Queue>,
    sink: Arc<tokio::sync::Mutex<Sink>>,
    state: Mutex<LaneState>,
}

impl Lane {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while the queue was locked leaves it consistent (every change is a
        // single step): keep using it.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn attempt_timeout(&self, sink: &Sink) -> Duration {
        let base = sink.attempt_timeout();
        if sink.timeout_is_a_cap() {
            return base;
        }
        base.max(self.state().timeout_floor).min(MAX_ATTEMPT_TIMEOUT)
    }

    /// Records a flush's result in the breaker and tells its transitions.
    fn judged(&self, ok: bool, why: &str, retry: &RetryConfig) {
        let now = now_ms();
        let mut st = self.state();
        let name = self.kind.as_str();
        if ok {
            if let Transition::Closed { failures, down_ms } = st.breaker.on_success(now) {
                if std::mem::take(&mut st.told) {
                    diag::warn(format_args!(
                        "{name} sink: recovered after {failures} failed flushes over {} s; delivering what was kept",
                        down_ms / 1000
                    ));
                }
            }
            return;
        }
        if st.breaker.on_failure(now, retry) == Transition::Opened
            && st.warned_ms.is_none_or(|t| now.saturating_sub(t) >= WARN_EVERY_MS)
        {
            st.warned_ms = Some(now);
            st.told = true;
            diag::warn(format_args!(
                "{name} sink: failing ({why}); records are kept (spooled) and retried in the background, \
                 not before the next invoke, until it recovers"
            ));
        }
    }
}

/// What a lane's flush task needs besides its lane.
#[derive(Clone)]
struct Ctx {
    batch: BatchConfig,
    retry: RetryConfig,
    health: Arc<Mutex<Health>>,
    stop: Arc<AtomicBool>,
}

/// The lanes and the counters of their flushes. See the module documentation.
pub struct Delivery {
    lanes: Vec<Arc<Lane>>,
    ctx: Ctx,
    parse_errors: AtomicU64,
    next_seq: AtomicU64,
    /// The lanes have a spool (`TANDEM_SPOOL_MAX_BYTES` > 0): records are encoded for
    /// their write-ahead copies.
    spooled: bool,
}

impl Delivery {
    /// Builds a lane per configured sink. A sink that cannot be built is left out with
    /// a problem line; with none left, stdout is used.
    pub fn new(config: &Config, instance: Arc<OnceLock<String>>) -> (Delivery, Vec<String>) {
        let mut problems = Vec::new();
        let mut sinks = Vec::new();
        for &kind in &config.sinks {
            match Sink::new(kind, config, instance.clone()) {
                Ok(s) => sinks.push(s),
                Err(e) => problems.push(format!("TANDEM_SINKS: {e}; the {} sink is dropped", kind.as_str())),
            }
        }
        if sinks.is_empty() {
            problems.push("TANDEM_SINKS: no usable sink left; using stdout".into());
            sinks.push(Sink::Stdout(crate::sink::stdout::StdoutSink::new(config.emf.clone())));
        }
        let n = sinks.len() as u64;
        let spool_share = config.spool.max_bytes / n;
        // Segments small enough that reading one back barely passes the memory bound,
        // and that a full spool drops a small part of itself at a time.
        let segment_bytes = (config.buffer.max_bytes / 4).clamp(16 * 1024, 1024 * 1024).min((spool_share / 4).max(1));
        let lanes = sinks
            .into_iter()
            .map(|sink| {
                let kind = sink.kind();
                let spool = (spool_share > 0).then(|| SpoolSettings {
                    dir: config.spool.dir.join(kind.as_str()),
                    max_bytes: spool_share,
                    segment_bytes,
                });
                Arc::new(Lane {
                    kind,
                    queue: Mutex::new(Queue::new(kind.as_str(), config.buffer, spool)),
                    sink: Arc::new(tokio::sync::Mutex::new(sink)),
                    state: Mutex::default(),
                })
            })
            .collect();
        let delivery = Delivery {
            lanes,
            ctx: Ctx {
                batch: config.batch,
                retry: config.retry,
                health: Arc::new(Mutex::new(Health::new(now_ms()))),
                stop: Arc::default(),
            },
            parse_errors: AtomicU64::new(0),
            next_seq: AtomicU64::new(1),
            spooled: spool_share > 0,
        };
        (delivery, problems)
    }

    /// The sinks with a lane, in configuration order.
    pub fn sinks(&self) -> Vec<SinkKind> {
        self.lanes.iter().map(|l| l.kind).collect()
    }

    /// The health counters.
    pub fn health(&self) -> MutexGuard<'_, Health> {
        self.ctx.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Telemetry events the intake could not parse so far (for the health snapshot).
    pub fn set_parse_errors(&self, n: u64) {
        self.parse_errors.store(n, Ordering::Relaxed);
    }

    /// Queues records on every lane whose sink takes them, numbered in arrival order
    /// (the number is the records' identity in requests: see the `http` sink's
    /// `Idempotency-Key`). Returns once each is held (in memory with its write-ahead
    /// copy written, or in a spool) or counted as dropped: the caller may acknowledge
    /// them then. Each record is encoded once for every lane's write-ahead.
    pub fn push(&self, items: Vec<Item>, now_ms: u64) {
        if items.is_empty() {
            return;
        }
        let first = self.next_seq.fetch_add(items.len() as u64, Ordering::Relaxed);
        let items: Vec<Arc<Item>> = items.into_iter().map(Arc::new).collect();
        let mut text = Vec::with_capacity(items.len() * 256);
        let mut ends = Vec::with_capacity(items.len());
        let origin = crate::spool::origin();
        for (i, item) in items.iter().enumerate() {
            // An error is not reachable for the model's types; the line is then empty
            // and the record held in memory only. Without a spool nothing is encoded.
            if self.spooled {
                let _ = crate::spool::encode_line(&mut text, origin, first + i as u64, item);
            }
            ends.push(text.len());
        }
        for lane in &self.lanes {
            let mut start = 0;
            let batch: Vec<Incoming<'_>> = items
                .iter()
                .zip(&ends)
                .enumerate()
                .filter_map(|(i, (item, &end))| {
                    let line = &text[start..end];
                    start = end;
                    Sink::accepts(lane.kind, item).then_some(Incoming { item, seq: first + i as u64, line })
                })
                .collect();
            if !batch.is_empty() {
                lane.queue().push_batch(&batch, now_ms);
            }
        }
    }

    /// What waits, for the flush policy: the fullest lane's count and size (records
    /// are shared across lanes, so a sum would count them several times), the oldest
    /// record of any lane.
    pub fn pending(&self) -> Pending {
        let mut p = Pending::default();
        for lane in &self.lanes {
            let l = lane.queue().pending();
            p.records = p.records.max(l.records);
            p.bytes = p.bytes.max(l.bytes);
            p.oldest_ms = match (p.oldest_ms, l.oldest_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        p
    }

    /// Whether a lane's breaker is open with its background retry due at `now_ms` and
    /// records waiting (the lifecycle then starts a background flush).
    pub fn retry_due(&self, now_ms: u64) -> bool {
        self.lanes.iter().any(|l| {
            let st = l.state();
            st.breaker.is_open() && st.breaker.due(now_ms) && {
                drop(st);
                l.queue().pending().records > 0
            }
        })
    }

    fn lane_views(&self) -> Vec<LaneView> {
        self.lanes
            .iter()
            .map(|lane| {
                let b = lane.state().breaker;
                let mut q = lane.queue();
                LaneView {
                    sink: lane.kind,
                    stats: q.stats(),
                    pending: q.pending(),
                    spool_bytes: q.spool_bytes(),
                    state: SinkState { failing_since_ms: b.open_since_ms(), failures: b.failures() },
                }
            })
            .collect()
    }

    /// Queues a health snapshot when one is due (see [`Health`]).
    pub fn emit_health_if_due(&self, now_ms: u64) {
        if !self.health().take_due() {
            return;
        }
        let views = self.lane_views();
        let snapshot = self.health().snapshot(now_ms, &views, self.parse_errors.load(Ordering::Relaxed));
        self.push(vec![Item::from(snapshot)], now_ms);
    }

    /// Ends background flushes at their next batch (SHUTDOWN takes over); a request in
    /// flight finishes.
    pub fn stop_background(&self) {
        self.ctx.stop.store(true, Ordering::SeqCst);
    }

    /// Flushes every lane at once until `deadline`; returns each lane's outcome.
    pub async fn flush(&self, kind: FlushKind, deadline: Instant) -> Vec<(SinkKind, LaneOutcome)> {
        let started = Instant::now();
        self.emit_health_if_due(now_ms());
        let work = !self.pending().is_empty();
        let outcomes = join_all(self.lanes.iter().map(|lane| self.flush_lane(lane, kind, deadline)).collect()).await;
        if work {
            // Flushes that found nothing to send are not flushes: they would flatten
            // the latency figures.
            self.health().flushed(started.elapsed().as_secs_f64() * 1000.0);
        }
        self.lanes.iter().map(|l| l.kind).zip(outcomes).collect()
    }

    async fn flush_lane(&self, lane: &Arc<Lane>, kind: FlushKind, deadline: Instant) -> LaneOutcome {
        let now = now_ms();
        {
            let b = lane.state().breaker;
            let skip = match kind {
                FlushKind::Blocking => !b.may_block(),
                FlushKind::Background => !b.due(now),
                FlushKind::Shutdown => false,
            };
            if skip {
                return LaneOutcome::Open;
            }
        }
        let Ok(guard) = tokio::time::timeout_at(deadline.into(), lane.sink.clone().lock_owned()).await else {
            if kind == FlushKind::Blocking {
                // A request of another flush outlasted this flush's budget: the sink
                // is too slow to be waited on before `next`.
                lane.judged(false, "a request outlasted the flush budget", &self.ctx.retry);
            }
            return LaneOutcome::Busy;
        };
        let task = tokio::spawn(run_lane(lane.clone(), guard, kind, deadline, self.ctx.clone()));
        match tokio::time::timeout_at(deadline.into(), task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => LaneOutcome::Failed(format!("the flush task failed: {e}")),
            Err(_) => {
                if kind == FlushKind::Blocking {
                    lane.judged(false, "no answer within the flush budget", &self.ctx.retry);
                }
                LaneOutcome::Busy
            }
        }
    }

    /// Writes every lane's memory to its spool (a reset: the next process delivers
    /// it). Returns the lanes that could not.
    pub fn persist_all(&self) -> Vec<SinkKind> {
        let mut failed = Vec::new();
        for lane in &self.lanes {
            let mut q = lane.queue();
            q.persist();
            if !q.all_on_disk() {
                failed.push(lane.kind);
            }
        }
        failed
    }

    /// Empties the lanes in `kinds` (or all) for a last resort: their records, and an
    /// estimate of spooled records that could not be read before `deadline`.
    pub fn drain(&self, kinds: &[SinkKind], deadline: Instant) -> Vec<(SinkKind, Vec<Arc<Item>>, u64)> {
        self.lanes
            .iter()
            .filter(|l| kinds.contains(&l.kind))
            .map(|lane| {
                let (items, left) = lane.queue().drain_all(deadline);
                (lane.kind, items, left)
            })
            .collect()
    }

    /// Records waiting per lane (memory and spool).
    pub fn pending_by_sink(&self) -> Vec<(SinkKind, usize)> {
        self.lanes.iter().map(|l| (l.kind, l.queue().pending().records)).collect()
    }
}

/// One lane's flush, in its own task, holding the lane's sink: sends front batches
/// until the queue is drained, the sink fails, or `deadline`.
async fn run_lane(
    lane: Arc<Lane>,
    mut sink: OwnedMutexGuard<Sink>,
    kind: FlushKind,
    deadline: Instant,
    ctx: Ctx,
) -> LaneOutcome {
    let now = now_ms();
    let max_age = ctx.batch.max_age.as_millis() as u64;
    let plan = Plan {
        stop: (kind == FlushKind::Background).then(|| ctx.stop.clone()),
        deadline,
        max_attempts: match kind {
            // One attempt before `next`: a failing sink then waits for the background.
            FlushKind::Blocking => Some(1),
            FlushKind::Background => Some(ctx.retry.max_attempts),
            // Until the deadline minus the last resort's reserve (the caller's).
            FlushKind::Shutdown => None,
        },
        attempt_timeout: lane.attempt_timeout(&sink),
    };
    // A retry of a failing sink sends what waits whatever its age.
    let retrying = lane.state().breaker.is_open();
    let mut seen = Seen::default();
    let mut duplicates = 0u64;
    let mut sent = false;
    let outcome = loop {
        if kind == FlushKind::Background && ctx.stop.load(Ordering::SeqCst) {
            break LaneOutcome::Failed("stopped for SHUTDOWN".into());
        }
        let mut batch = lane.queue().batch(ctx.batch.max_records, ctx.batch.max_bytes);
        if batch.entries.is_empty() {
            break LaneOutcome::Drained;
        }
        if kind == FlushKind::Background && !batch.full && !retrying {
            let oldest = batch.entries.iter().map(|e| e.at_ms).filter(|t| *t > 0).min();
            if oldest.is_some_and(|t| now.saturating_sub(t) < max_age) {
                break LaneOutcome::Drained;
            }
        }
        let unanswered = seen.unanswered;
        let driven = drive(&mut sink, &mut batch.entries, &plan, &ctx.retry, &mut seen).await;
        // Records of a request that got no answer may be at the receiver already:
        // each later request carrying them may be a duplicate.
        duplicates += u64::from(seen.unanswered - unanswered) * batch.entries.len() as u64;
        match driven {
            Driven::Done => {
                sent = true;
                lane.queue().commit(&batch.entries);
            }
            Driven::Failed(reason) => {
                lane.queue().keep_progress(&batch.entries);
                break LaneOutcome::Failed(reason);
            }
        }
    };
    {
        let mut st = lane.state();
        st.timeout_floor = st.timeout_floor.max(seen.slowest_answer);
        if seen.unanswered > 0 {
            st.timeout_floor = st.timeout_floor.max(plan.attempt_timeout.saturating_mul(2));
        }
    }
    {
        let mut h = ctx.health.lock().unwrap_or_else(|p| p.into_inner());
        h.retried(seen.retried);
        h.duplicates_sent(duplicates);
    }
    match &outcome {
        LaneOutcome::Failed(reason) if seen.attempts > 0 => lane.judged(false, reason, &ctx.retry),
        _ if sent => lane.judged(true, "", &ctx.retry),
        _ => {}
    }
    if let LaneOutcome::Failed(reason) = &outcome {
        diag::debug(format_args!("{} sink: flush stopped: {reason}; the records stay queued", lane.kind.as_str()));
        if kind != FlushKind::Shutdown && lane.queue().persist() {
            diag::debug(format_args!("{} sink: undelivered records written to the spool", lane.kind.as_str()));
        }
    }
    outcome
}

/// Polls `futures` together until all are done (the few lanes need no task each, and
/// dropping the flush cancels every lane at once).
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(dir: &std::path::Path, env: &[(&str, String)]) -> Config {
        let mut vars: Vec<(String, String)> = vec![
            ("TANDEM_SPOOL_DIR".into(), dir.join("spool").display().to_string()),
            ("TANDEM_FILE_PATH".into(), dir.join("out.ndjson").display().to_string()),
        ];
        vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let (c, problems) = Config::load_with(
            |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        );
        assert!(problems.is_empty(), "{problems:?}");
        c
    }

    fn log(n: usize) -> Item {
        crate::spool::tests::log(n)
    }

    fn tempdir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("tandem-delivery-{}-{}", std::process::id(), fastrand::u64(..)))
    }

    #[tokio::test]
    async fn routes_by_sink_and_drains_the_file_sink() {
        let dir = tempdir();
        let c = config(&dir, &[("TANDEM_SINKS", "stdout,file".into())]);
        let (d, problems) = Delivery::new(&c, Arc::default());
        assert!(problems.is_empty());
        d.push((0..5).map(log).collect(), now_ms());
        let by_sink = d.pending_by_sink();
        assert_eq!(by_sink, vec![(SinkKind::Stdout, 0), (SinkKind::File, 5)], "stdout takes no log records");
        let out = d.flush(FlushKind::Blocking, Instant::now() + Duration::from_secs(5)).await;
        assert!(out.iter().all(|(_, o)| *o == LaneOutcome::Drained), "{out:?}");
        let text = std::fs::read_to_string(dir.join("out.ndjson")).unwrap();
        assert_eq!(text.lines().count(), 5);
        assert_eq!(d.pending().records, 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn background_flushes_hold_young_partial_batches() {
        let dir = tempdir();
        let c = config(&dir, &[("TANDEM_SINKS", "file".into()), ("TANDEM_BATCH_MAX_AGE_MS", "60000".into())]);
        let (d, _) = Delivery::new(&c, Arc::default());
        d.push(vec![log(0)], now_ms());
        d.flush(FlushKind::Background, Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(d.pending().records, 1, "younger than max age: held");
        d.flush(FlushKind::Blocking, Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(d.pending().records, 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_failing_sink_keeps_its_records_on_disk() {
        let dir = tempdir();
        let c = config(
            &dir,
            &[
                ("TANDEM_SINKS", "http".into()),
                ("TANDEM_HTTP_URL", "http://127.0.0.1:1/in".into()),
                ("TANDEM_RETRY_MAX_ATTEMPTS", "2".into()),
                ("TANDEM_RETRY_BASE_MS", "1".into()),
            ],
        );
        let (d, _) = Delivery::new(&c, Arc::default());
        d.push((0..3).map(log).collect(), now_ms());
        // Before `next`: one attempt, then the sink is left to the background.
        let out = d.flush(FlushKind::Blocking, Instant::now() + Duration::from_secs(5)).await;
        assert!(matches!(out[0].1, LaneOutcome::Failed(_)), "{out:?}");
        assert_eq!(d.pending().records, 3);
        let spooled = std::fs::read_dir(dir.join("spool/http")).unwrap().count();
        assert_eq!(spooled, 1, "memory persisted after the failure");
        assert_eq!(d.health().snapshot(0, &d.lane_views(), 0).retried, 0, "one attempt before next");
        let out = d.flush(FlushKind::Blocking, Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(out[0].1, LaneOutcome::Open, "a failed sink is not waited on again");
        let views = d.lane_views();
        assert!(views[0].state.failing_since_ms.is_some());
        // In the background, once its backoff passed: retried per TANDEM_RETRY_MAX_ATTEMPTS.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let out = d.flush(FlushKind::Shutdown, Instant::now() + Duration::from_millis(300)).await;
        assert!(matches!(out[0].1, LaneOutcome::Failed(_)), "{out:?}");
        assert!(d.health().snapshot(0, &d.lane_views(), 0).retried >= 1);
        assert_eq!(d.pending().records, 3);
        let _ = std::fs::remove_dir_all(dir);
    }
}
