//! Invocations: correlates the platform events of each `requestId` (start, runtimeDone,
//! report) and the init phase into one [`Invocation`] record, estimates its cost (with
//! [`cost`]'s prices) and detects out-of-memory failures.
//!
//! Owns the correlation state: a bounded table of requests not yet reported, the init
//! (or SnapStart restore) phase until the cold-start invocation takes it, and the
//! request id in flight (for log lines that carry none). Never does I/O, never reads a
//! clock (every time comes from the events), and never holds more than
//! [`CorrelatorOptions::max_in_flight`] requests: the oldest is evicted and returned as
//! a partial invocation.
//!
//! Ordering: events are fed in arrival order, which is not always the order of the
//! invocations: the Telemetry API emits invoke N's `platform.report` only after every
//! extension called `next`, so it usually arrives during invoke N+1 (after N+1's
//! `platform.start`), and batching can put N's `runtimeDone` after N+1's start. Events
//! are therefore matched by `requestId`, never by position.

pub mod cost;

use crate::model::{ms_ceil, InitInfo, Invocation, LogRecord};
use cost::Pricing;
use std::collections::VecDeque;
use tandem_wire::telemetry::{
    InitializationType, LogRecord as WireLog, Phase, PhaseDone, PhaseReport, Record, Report, RuntimeDone, Span, Status,
    TraceContext,
};
use tandem_wire::Event;

#[derive(Debug, Clone, PartialEq)]
/// How the [`Correlator`] prices and bounds what it holds.
pub struct CorrelatorOptions {
    /// Prices of the cost estimate.
    pub pricing: Pricing,
    /// Requests held while waiting for their report; beyond it the oldest is evicted
    /// and returned as a partial invocation.
    pub max_in_flight: usize,
    /// The function's memory size (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`), for partial
    /// invocations that never got a report. Learned from events when absent.
    pub memory_size_mb: Option<u64>,
}

impl Default for CorrelatorOptions {
    fn default() -> Self {
        CorrelatorOptions { pricing: Pricing::default(), max_in_flight: 64, memory_size_mb: None }
    }
}

/// X-Ray trace header fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XRay {
    /// `Root=`: the trace id.
    pub root: Option<String>,
    /// `Parent=`: the caller's segment id.
    pub parent: Option<String>,
    /// `Sampled=`.
    pub sampled: Option<bool>,
}

impl XRay {
    /// Parses `Root=1-…;Parent=…;Sampled=1` (any order, spaces tolerated).
    pub fn parse(value: &str) -> XRay {
        let mut x = XRay::default();
        for part in value.split(';') {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "Root" if !v.is_empty() => x.root = Some(v.to_owned()),
                "Parent" if !v.is_empty() => x.parent = Some(v.to_owned()),
                "Sampled" => {
                    x.sampled = match v {
                        "1" => Some(true),
                        "0" => Some(false),
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        x
    }
}

/// True when a log line is a runtime's out-of-memory report: Python `MemoryError`,
/// Node `JavaScript heap out of memory`, Java `java.lang.OutOfMemoryError`, .NET
/// `OutOfMemoryException`, Go `fatal error: runtime: out of memory`. One substring
/// search for `emory` on lines that do not match.
pub fn is_oom_line(line: &str) -> bool {
    if !line.contains("emory") {
        return false;
    }
    line.contains("MemoryError")
        || line.contains("JavaScript heap out of memory")
        || line.contains("OutOfMemoryException")
        || line.contains("runtime: out of memory")
}

const OOM_ERROR_TYPE: &str = "Runtime.OutOfMemory";

#[derive(Debug, Clone, Default)]
struct Trace {
    root: Option<String>,
    parent: Option<String>,
    span_id: Option<String>,
    sampled: Option<bool>,
}

impl Trace {
    fn from_context(t: &TraceContext) -> Trace {
        let x = XRay::parse(&t.value);
        Trace {
            root: x.root,
            parent: x.parent,
            span_id: t.span_id.clone().filter(|s| !s.is_empty()),
            sampled: x.sampled,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Done {
    status: String,
    error_type: Option<String>,
    duration_ms: Option<f64>,
    produced_bytes: Option<u64>,
    response_latency_ms: Option<f64>,
    response_duration_ms: Option<f64>,
    runtime_overhead_ms: Option<f64>,
}

#[derive(Debug, Clone)]
struct Pending {
    id: String,
    /// Time of the first event seen for this request.
    seen_ms: u64,
    start_ms: Option<u64>,
    version: Option<String>,
    trace: Option<Trace>,
    done: Option<Done>,
    oom_log: bool,
    /// The events that made this state (time, record): what a new process needs to
    /// rebuild it after a `kill -9` (see [`Correlator::held`]).
    events: Vec<(u64, Record)>,
}

impl Pending {
    fn new(id: &str, seen_ms: u64) -> Pending {
        Pending {
            id: id.to_owned(),
            seen_ms,
            start_ms: None,
            version: None,
            trace: None,
            done: None,
            oom_log: false,
            events: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum InitOwner {
    /// Init seen, no invocation started since.
    Unassigned,
    Request(String),
    /// Given to its cold start (or no init to give).
    Taken,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Correlator {
    opts: CorrelatorOptions,
    pending: VecDeque<Pending>,
    current: Option<String>,
    init: Option<InitInfo>,
    owner: InitOwner,
    memory_size_mb: Option<u64>,
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator::new(CorrelatorOptions::default())
    }
}

impl Correlator {
    /// A correlator holding nothing yet.
    pub fn new(opts: CorrelatorOptions) -> Correlator {
        let opts = CorrelatorOptions { max_in_flight: opts.max_in_flight.max(1), ..opts };
        Correlator {
            memory_size_mb: opts.memory_size_mb,
            opts,
            pending: VecDeque::new(),
            current: None,
            init: None,
            owner: InitOwner::Taken,
        }
    }

    /// The request started last and not yet reported: the owner of log lines that name
    /// no request.
    pub fn in_flight(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// The init (or restore) phase seen so far, until its cold start takes it.
    pub fn init(&self) -> Option<&InitInfo> {
        self.init.as_ref()
    }

    /// Requests waiting for their report.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Stamps `rec` with the X-Ray trace of its request, when that request is known and
    /// traced. Call after [`crate::logs::to_log_record`].
    pub fn annotate_log(&self, rec: &mut LogRecord) {
        if rec.trace_id.is_some() {
            return;
        }
        let Some(id) = rec.request_id.as_deref() else {
            return;
        };
        if let Some(root) = self.find(id).and_then(|p| p.trace.as_ref()).and_then(|t| t.root.as_ref()) {
            rec.trace_id = Some(root.clone());
        }
    }

    /// Feeds one event; returns the invocations it completed (usually none or one; an
    /// eviction can add a partial one). Events whose time does not parse use 0.
    pub fn observe(&mut self, event: &Event) -> Vec<Invocation> {
        self.observe_at(event.epoch_millis().unwrap_or(0), &event.record)
    }

    /// [`Correlator::observe`] with the event's time already parsed (ms since the epoch).
    pub fn observe_at(&mut self, time_ms: u64, record: &Record) -> Vec<Invocation> {
        let mut out = Vec::new();
        match record {
            Record::Function(line) if line_is_oom(line) => {
                if let Some(id) = self.current.clone() {
                    let p = self.entry(&id, time_ms, &mut out);
                    if !p.oom_log {
                        p.events.push((time_ms, record.clone()));
                    }
                    p.oom_log = true;
                }
            }
            Record::Start(s) => {
                let p = self.entry(&s.request_id, time_ms, &mut out);
                p.events.push((time_ms, record.clone()));
                p.start_ms = Some(time_ms);
                p.version.clone_from(&s.version);
                if let Some(t) = &s.tracing {
                    p.trace = Some(Trace::from_context(t));
                }
                self.current = Some(s.request_id.clone());
                if self.owner == InitOwner::Unassigned {
                    self.owner = InitOwner::Request(s.request_id.clone());
                }
            }
            Record::RuntimeDone(r) => {
                let p = self.entry(&r.request_id, time_ms, &mut out);
                p.events.push((time_ms, record.clone()));
                p.done = Some(done_of(r));
                if p.trace.is_none() {
                    p.trace = r.tracing.as_ref().map(Trace::from_context);
                }
            }
            Record::Report(r) => out.push(self.report(time_ms, r)),
            Record::InitStart(s) => {
                self.begin_init(InitInfo {
                    start_ms: Some(time_ms),
                    initialization_type: Some(s.initialization_type.as_str().to_owned()),
                    phase: Some(s.phase.as_str().to_owned()),
                    runtime_version: s.runtime_version.clone(),
                    ..InitInfo::default()
                });
                if self.memory_size_mb.is_none() {
                    self.memory_size_mb = s.instance_max_memory;
                }
                if s.phase == Phase::Invoke {
                    // A suppressed init runs inside the first invoke, after its start.
                    if let Some(id) = self.current.clone() {
                        self.owner = InitOwner::Request(id);
                    }
                }
            }
            Record::RestoreStart(s) => {
                self.begin_init(InitInfo {
                    start_ms: Some(time_ms),
                    initialization_type: Some(InitializationType::SnapStart.as_str().to_owned()),
                    restore: true,
                    runtime_version: s.runtime_version.clone(),
                    ..InitInfo::default()
                });
                if self.memory_size_mb.is_none() {
                    self.memory_size_mb = s.instance_max_memory;
                }
            }
            Record::InitRuntimeDone(d) | Record::RestoreRuntimeDone(d) => self.init_done(d),
            Record::InitReport(r) | Record::RestoreReport(r) => self.init_report(r),
            _ => {}
        }
        out
    }

    /// The events behind the invocations still waiting for their report (time,
    /// record), oldest first: acknowledged to Lambda but in no record yet. The extension
    /// keeps them on disk so that a new process rebuilds them ([`Correlator::restore`]).
    /// Init events are not kept: a new process gets its own init.
    pub fn held(&self) -> impl Iterator<Item = (u64, &Record)> {
        self.pending.iter().flat_map(|p| p.events.iter().map(|(t, r)| (*t, r)))
    }

    /// Rebuilds the invocations a previous process held (see [`Correlator::held`]).
    /// They belong to no current request: new log lines are not attributed to them,
    /// and they end as partial records unless their report comes.
    pub fn restore(&mut self, events: &[(u64, Record)]) -> Vec<Invocation> {
        let current = self.current.take();
        let mut out = Vec::new();
        for (t, r) in events {
            out.extend(self.observe_at(*t, r));
        }
        self.current = current;
        out
    }

    /// Ends correlation (at shutdown): every request still waiting for its report is
    /// returned as a partial invocation (`complete: false`), oldest first.
    pub fn drain(&mut self) -> Vec<Invocation> {
        self.current = None;
        let pending: Vec<Pending> = self.pending.drain(..).collect();
        pending.into_iter().map(|p| self.partial(p)).collect()
    }

    fn find(&self, id: &str) -> Option<&Pending> {
        self.pending.iter().find(|p| p.id == id)
    }

    /// The pending entry of `id`, created (evicting the oldest if full) when absent.
    fn entry(&mut self, id: &str, time_ms: u64, out: &mut Vec<Invocation>) -> &mut Pending {
        let idx = match self.pending.iter().position(|p| p.id == id) {
            Some(i) => i,
            None => {
                while self.pending.len() >= self.opts.max_in_flight {
                    if let Some(old) = self.pending.pop_front() {
                        out.push(self.partial(old));
                    }
                }
                self.pending.push_back(Pending::new(id, time_ms));
                self.pending.len() - 1
            }
        };
        &mut self.pending[idx]
    }

    fn begin_init(&mut self, info: InitInfo) {
        self.init = Some(info);
        self.owner = InitOwner::Unassigned;
    }

    fn init_mut(&mut self) -> &mut InitInfo {
        if self.init.is_none() {
            // Init events without initStart (subscription raced it): still record them.
            self.init = Some(InitInfo::default());
            if self.owner == InitOwner::Taken && self.pending.is_empty() {
                self.owner = InitOwner::Unassigned;
            }
        }
        self.init.get_or_insert_with(InitInfo::default)
    }

    fn init_done(&mut self, d: &PhaseDone) {
        let init = self.init_mut();
        if init.status.is_none() {
            init.status = Some(d.status.as_str().to_owned());
            init.error_type.clone_from(&d.error_type);
        }
        if init.initialization_type.is_none() {
            init.initialization_type = d.initialization_type.as_ref().map(|t| t.as_str().to_owned());
        }
    }

    fn init_report(&mut self, r: &PhaseReport) {
        let init = self.init_mut();
        // The report's status is final: it overrides initRuntimeDone's.
        init.status = Some(r.status.as_str().to_owned());
        init.error_type.clone_from(&r.error_type);
        if let Some(m) = r.metrics {
            init.duration_ms = Some(m.duration_ms);
        }
        if init.initialization_type.is_none() {
            init.initialization_type = r.initialization_type.as_ref().map(|t| t.as_str().to_owned());
        }
    }

    /// The init info if `id` is the cold start (or if `has_init_metric` says so and no
    /// invocation claimed the init yet).
    fn take_init(&mut self, id: &str, has_init_metric: bool) -> Option<InitInfo> {
        let mine = match &self.owner {
            InitOwner::Request(owner) => owner == id,
            InitOwner::Unassigned => has_init_metric,
            InitOwner::Taken => false,
        };
        if mine {
            self.owner = InitOwner::Taken;
            self.init.take()
        } else {
            None
        }
    }

    fn report(&mut self, time_ms: u64, r: &Report) -> Invocation {
        let pending = match self.pending.iter().position(|p| p.id == r.request_id) {
            Some(i) => self.pending.remove(i),
            None => None,
        };
        let p = pending.unwrap_or_else(|| Pending::new(&r.request_id, time_ms));
        if self.current.as_deref() == Some(r.request_id.as_str()) {
            self.current = None;
        }
        let m = &r.metrics;
        if m.memory_size_mb > 0 {
            self.memory_size_mb = Some(m.memory_size_mb);
        }
        let done = p.done.unwrap_or_default();
        let trace = p.trace.or_else(|| r.tracing.as_ref().map(Trace::from_context)).unwrap_or_default();
        let status = match &r.status {
            Some(s) => s.as_str().to_owned(),
            None if !done.status.is_empty() => done.status.clone(),
            None => Status::Success.as_str().to_owned(),
        };
        let error_type = r.error_type.clone().or(done.error_type);
        let init = self.take_init(&p.id, m.init_duration_ms.is_some() || m.restore_duration_ms.is_some());
        let cold_start = m.init_duration_ms.is_some()
            || m.restore_duration_ms.is_some()
            || init.as_ref().is_some_and(|i| {
                i.initialization_type.as_deref() != Some(InitializationType::ProvisionedConcurrency.as_str())
            });
        let init_duration_ms = m
            .init_duration_ms
            .or_else(|| init.as_ref().filter(|i| cold_start && !i.restore).and_then(|i| i.duration_ms));
        let out_of_memory = p.oom_log
            || error_type.as_deref() == Some(OOM_ERROR_TYPE)
            || (m.memory_size_mb > 0 && m.max_memory_used_mb >= m.memory_size_mb);
        let duration_ms = sane(m.duration_ms);
        Invocation {
            start_ms: p.start_ms.unwrap_or_else(|| time_ms.saturating_sub(ms_ceil(duration_ms))),
            request_id: p.id,
            version: p.version,
            duration_ms,
            billed_duration_ms: m.billed_duration_ms,
            init_duration_ms,
            restore_duration_ms: m.restore_duration_ms,
            cold_start,
            response_latency_ms: done.response_latency_ms,
            response_duration_ms: done.response_duration_ms,
            runtime_overhead_ms: done.runtime_overhead_ms,
            produced_bytes: done.produced_bytes,
            runtime_duration_ms: done.duration_ms,
            post_runtime_extension_ms: span_ms(r.spans.as_deref(), "extensionOverhead"),
            max_memory_used_mb: m.max_memory_used_mb,
            memory_size_mb: m.memory_size_mb,
            status,
            error_type,
            out_of_memory,
            estimated_cost_usd: self.opts.pricing.cost(m.memory_size_mb, m.billed_duration_ms),
            trace_id: trace.root,
            span_id: trace.span_id,
            parent_id: trace.parent,
            sampled: trace.sampled,
            init,
            complete: true,
        }
    }

    /// An invocation that never got its report: what is known, marked incomplete. Its
    /// duration is the runtime's (when runtimeDone was seen) and its billed duration
    /// that, rounded up to the millisecond.
    fn partial(&mut self, p: Pending) -> Invocation {
        if self.current.as_deref() == Some(p.id.as_str()) {
            self.current = None;
        }
        let done = p.done.unwrap_or_default();
        let trace = p.trace.unwrap_or_default();
        let init = self.take_init(&p.id, false);
        let cold_start = init.as_ref().is_some_and(|i| {
            i.initialization_type.as_deref() != Some(InitializationType::ProvisionedConcurrency.as_str())
        });
        let duration_ms = done.duration_ms.map_or(0.0, sane);
        let billed = ms_ceil(duration_ms);
        let memory = self.memory_size_mb.unwrap_or(0);
        Invocation {
            // Without platform.start: the first event seen (runtimeDone: its time minus
            // the runtime duration), never 0 (EMF rejects timestamps that old).
            start_ms: p.start_ms.unwrap_or_else(|| p.seen_ms.saturating_sub(ms_ceil(duration_ms))),
            request_id: p.id,
            version: p.version,
            duration_ms,
            billed_duration_ms: billed,
            init_duration_ms: init.as_ref().filter(|i| cold_start && !i.restore).and_then(|i| i.duration_ms),
            restore_duration_ms: None,
            cold_start,
            response_latency_ms: done.response_latency_ms,
            response_duration_ms: done.response_duration_ms,
            runtime_overhead_ms: done.runtime_overhead_ms,
            produced_bytes: done.produced_bytes,
            runtime_duration_ms: done.duration_ms,
            post_runtime_extension_ms: None,
            max_memory_used_mb: 0,
            memory_size_mb: memory,
            status: if done.status.is_empty() { "unknown".to_owned() } else { done.status },
            out_of_memory: p.oom_log || done.error_type.as_deref() == Some(OOM_ERROR_TYPE),
            error_type: done.error_type,
            estimated_cost_usd: self.opts.pricing.cost(memory, billed),
            trace_id: trace.root,
            span_id: trace.span_id,
            parent_id: trace.parent,
            sampled: trace.sampled,
            init,
            complete: false,
        }
    }
}

fn sane(ms: f64) -> f64 {
    if ms.is_finite() && ms >= 0.0 {
        ms
    } else {
        0.0
    }
}

fn span_ms(spans: Option<&[Span]>, name: &str) -> Option<f64> {
    spans?.iter().find(|s| s.name == name).map(|s| sane(s.duration_ms))
}

fn done_of(r: &RuntimeDone) -> Done {
    let spans = r.spans.as_deref();
    Done {
        status: r.status.as_str().to_owned(),
        error_type: r.error_type.clone(),
        duration_ms: r.metrics.map(|m| sane(m.duration_ms)),
        produced_bytes: r.metrics.and_then(|m| m.produced_bytes),
        response_latency_ms: span_ms(spans, "responseLatency"),
        response_duration_ms: span_ms(spans, "responseDuration"),
        runtime_overhead_ms: span_ms(spans, "runtimeOverhead"),
    }
}

fn line_is_oom(line: &WireLog) -> bool {
    match line {
        WireLog::Text(s) => is_oom_line(s),
        WireLog::Json(v) => ["message", "msg", "errorType", "errorMessage"]
            .iter()
            .filter_map(|k| v.get(*k).and_then(|v| v.as_str()))
            .any(|s| is_oom_line(s) || s == OOM_ERROR_TYPE),
    }
}

#[cfg(test)]
mod tests;
