//! Invocations: correlates the platform events of each `requestId` (start, runtimeDone,
//! report) and the init phase into one [`Invocation`] record, estimates its cost and
//! detects out-of-memory failures.
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

use crate::model::{ms_ceil, InitInfo, Invocation, LogRecord};
use std::collections::VecDeque;
use tandem_wire::telemetry::{
    InitializationType, LogRecord as WireLog, Phase, PhaseDone, PhaseReport, Record, Report, RuntimeDone, Span, Status,
    TraceContext,
};
use tandem_wire::Event;

/// Instruction set of the function (it decides the price per GB-second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    /// The architecture this binary was built for, which is the function's (a layer's
    /// extension binary must match the function's architecture to run at all).
    pub const fn native() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::X86_64
        }
    }

    /// `x86_64`/`amd64`/`x86` or `arm64`/`aarch64`, any case.
    pub fn parse(s: &str) -> Option<Arch> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" | "amd64" | "x86" | "x64" => Some(Arch::X86_64),
            "arm64" | "aarch64" | "arm" => Some(Arch::Arm64),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// Lambda's on-demand prices (USD), used for the estimated cost of an invocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    /// Price of one GB-second of duration.
    pub gb_second_usd: f64,
    /// Price of one request.
    pub request_usd: f64,
}

impl Pricing {
    pub const X86_64_GB_SECOND: f64 = 0.000_016_666_7;
    pub const ARM64_GB_SECOND: f64 = 0.000_013_333_4;
    pub const REQUEST: f64 = 0.000_000_2;

    /// The first-tier list price of `arch` (us-east-1).
    pub const fn for_arch(arch: Arch) -> Pricing {
        Pricing {
            gb_second_usd: match arch {
                Arch::X86_64 => Self::X86_64_GB_SECOND,
                Arch::Arm64 => Self::ARM64_GB_SECOND,
            },
            request_usd: Self::REQUEST,
        }
    }

    /// `memory_mb/1024` GB × `billed_ms/1000` s × price per GB-second + price per request.
    pub fn cost(&self, memory_size_mb: u64, billed_duration_ms: u64) -> f64 {
        let gb = memory_size_mb as f64 / 1024.0;
        let s = billed_duration_ms as f64 / 1000.0;
        gb * s * self.gb_second_usd + self.request_usd
    }
}

impl Default for Pricing {
    fn default() -> Self {
        Pricing::for_arch(Arch::native())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CorrelatorOptions {
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
    pub root: Option<String>,
    pub parent: Option<String>,
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
}

impl Pending {
    fn new(id: &str, seen_ms: u64) -> Pending {
        Pending { id: id.to_owned(), seen_ms, start_ms: None, version: None, trace: None, done: None, oom_log: false }
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
                    self.entry(&id, time_ms, &mut out).oom_log = true;
                }
            }
            Record::Start(s) => {
                let p = self.entry(&s.request_id, time_ms, &mut out);
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
mod tests {
    use super::*;
    use serde_json::json;

    const T0: u64 = 1_700_000_000_000;

    fn ev(offset_ms: u64, kind: &str, record: serde_json::Value) -> Event {
        let time = tandem_wire::time::format_epoch_millis(T0 + offset_ms);
        serde_json::from_value(json!({"time": time, "type": kind, "record": record})).unwrap()
    }

    fn start(off: u64, id: &str) -> Event {
        ev(
            off,
            "platform.start",
            json!({"requestId": id, "version": "$LATEST",
            "tracing": {"spanId": "54565fb41ac79632", "type": "X-Amzn-Trace-Id",
                        "value": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}),
        )
    }

    fn runtime_done(off: u64, id: &str, status: &str, error: Option<&str>) -> Event {
        let mut r = json!({"requestId": id, "status": status,
            "metrics": {"durationMs": 95.5, "producedBytes": 42},
            "spans": [{"name": "responseLatency", "start": "2023-11-14T22:13:20.000Z", "durationMs": 90.0},
                      {"name": "responseDuration", "start": "2023-11-14T22:13:20.090Z", "durationMs": 2.5},
                      {"name": "runtimeOverhead", "start": "2023-11-14T22:13:20.093Z", "durationMs": 1.5}]});
        if let Some(e) = error {
            r["errorType"] = json!(e);
        }
        ev(off, "platform.runtimeDone", r)
    }

    fn report(off: u64, id: &str, status: &str, used: u64, init: Option<f64>) -> Event {
        let mut m =
            json!({"durationMs": 100.25, "billedDurationMs": 101, "memorySizeMB": 128, "maxMemoryUsedMB": used});
        if let Some(i) = init {
            m["initDurationMs"] = json!(i);
        }
        ev(
            off,
            "platform.report",
            json!({"requestId": id, "status": status, "metrics": m,
            "spans": [{"name": "extensionOverhead", "start": "2023-11-14T22:13:20.100Z", "durationMs": 4.75}]}),
        )
    }

    fn init_events(kind: &str) -> Vec<Event> {
        vec![
            ev(
                0,
                "platform.initStart",
                json!({"initializationType": kind, "phase": "init",
                "runtimeVersion": "nodejs:20.v13", "functionName": "f", "functionVersion": "$LATEST", "instanceMaxMemory": 128}),
            ),
            ev(
                150,
                "platform.initRuntimeDone",
                json!({"initializationType": kind, "phase": "init", "status": "success"}),
            ),
            ev(
                151,
                "platform.initReport",
                json!({"initializationType": kind, "phase": "init", "status": "success",
                "metrics": {"durationMs": 150.5}}),
            ),
        ]
    }

    fn feed(c: &mut Correlator, events: &[Event]) -> Vec<Invocation> {
        events.iter().flat_map(|e| c.observe(e)).collect()
    }

    fn x86() -> Correlator {
        Correlator::new(CorrelatorOptions { pricing: Pricing::for_arch(Arch::X86_64), ..CorrelatorOptions::default() })
    }

    #[test]
    fn cold_start_then_warm_with_late_reports() {
        let mut c = x86();
        let mut events = init_events("on-demand");
        events.extend([
            start(200, "a"),
            runtime_done(300, "a", "success", None),
            start(5000, "b"),
            // a's report arrives during b.
            report(5001, "a", "success", 60, Some(150.5)),
        ]);
        let out = feed(&mut c, &events);
        assert_eq!(c.in_flight(), Some("b"), "a's late report does not end b");
        assert_eq!(out.len(), 1);
        let a = &out[0];
        assert_eq!(a.request_id, "a");
        assert!(a.complete && a.cold_start);
        assert_eq!(a.start_ms, T0 + 200);
        assert_eq!(a.duration_ms, 100.25);
        assert_eq!(a.billed_duration_ms, 101);
        assert_eq!(a.init_duration_ms, Some(150.5));
        assert_eq!(a.runtime_duration_ms, Some(95.5));
        assert_eq!(a.produced_bytes, Some(42));
        assert_eq!(a.response_latency_ms, Some(90.0));
        assert_eq!(a.response_duration_ms, Some(2.5));
        assert_eq!(a.runtime_overhead_ms, Some(1.5));
        assert_eq!(a.post_runtime_extension_ms, Some(4.75));
        assert_eq!((a.max_memory_used_mb, a.memory_size_mb), (60, 128));
        assert_eq!(a.status, "success");
        assert!(!a.out_of_memory);
        assert_eq!(a.version.as_deref(), Some("$LATEST"));
        assert_eq!(a.trace_id.as_deref(), Some("1-5759e988-bd862e3fe1be46a994272793"));
        assert_eq!(a.parent_id.as_deref(), Some("53995c3f42cd8ad8"));
        assert_eq!(a.span_id.as_deref(), Some("54565fb41ac79632"));
        assert_eq!(a.sampled, Some(true));
        let init = a.init.as_ref().expect("init attached to the cold start");
        assert_eq!(init.start_ms, Some(T0));
        assert_eq!(init.duration_ms, Some(150.5));
        assert_eq!(init.status.as_deref(), Some("success"));
        assert_eq!(init.initialization_type.as_deref(), Some("on-demand"));
        assert_eq!(init.runtime_version.as_deref(), Some("nodejs:20.v13"));
        let want = 128.0 / 1024.0 * 0.101 * 0.000_016_666_7 + 0.000_000_2;
        assert!((a.estimated_cost_usd - want).abs() < 1e-15, "{}", a.estimated_cost_usd);

        // b: runtimeDone of b arrives after start of c, then both reports.
        let out = feed(
            &mut c,
            &[
                start(9000, "c"),
                runtime_done(9001, "b", "error", Some("Handler.Error")),
                report(9002, "b", "error", 70, None),
                runtime_done(9100, "c", "success", None),
                report(12000, "c", "success", 70, None),
            ],
        );
        assert_eq!(out.iter().map(|i| i.request_id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        assert!(!out[0].cold_start && out[0].init.is_none() && out[0].init_duration_ms.is_none());
        assert_eq!(out[0].status, "error");
        assert_eq!(out[0].error_type.as_deref(), Some("Handler.Error"));
        assert!(out[0].is_error());
        assert_eq!(c.in_flight(), None);
        assert_eq!(c.pending_len(), 0);
        assert!(c.drain().is_empty());
    }

    #[test]
    fn report_without_start_still_counts() {
        let mut c = x86();
        let out = c.observe(&report(1000, "lost-start", "timeout", 10, None));
        assert_eq!(out.len(), 1);
        let i = &out[0];
        assert!(i.complete && !i.cold_start);
        assert_eq!(i.status, "timeout");
        assert!(i.is_timeout() && i.is_error());
        // Start estimated from report time minus duration (100.25 → 101 ms).
        assert_eq!(i.start_ms, T0 + 1000 - 101);
        assert_eq!(i.trace_id, None);
    }

    #[test]
    fn logs_api_report_without_status_takes_runtime_done_status() {
        let mut c = x86();
        c.observe(&start(0, "r"));
        c.observe(&runtime_done(10, "r", "error", Some("Runtime.ExitError")));
        let out = c.observe(&ev(
            20,
            "platform.report",
            json!({"requestId": "r",
            "metrics": {"durationMs": 10.0, "billedDurationMs": 10, "memorySizeMB": 256, "maxMemoryUsedMB": 30}}),
        ));
        assert_eq!(out[0].status, "error");
        assert_eq!(out[0].error_type.as_deref(), Some("Runtime.ExitError"));
        let mut c = x86();
        let out = c.observe(&ev(
            20,
            "platform.report",
            json!({"requestId": "r",
            "metrics": {"durationMs": 10.0, "billedDurationMs": 10, "memorySizeMB": 256, "maxMemoryUsedMB": 30}}),
        ));
        assert_eq!(out[0].status, "success");
    }

    #[test]
    fn out_of_memory_from_every_signal() {
        let lines = [
            "[ERROR] MemoryError\nTraceback (most recent call last):",
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
            "fatal error: runtime: out of memory",
            "Unhandled exception. System.OutOfMemoryException: Insufficient memory",
        ];
        for line in lines {
            let mut c = x86();
            c.observe(&start(0, "r"));
            c.observe(&ev(5, "function", json!(line)));
            let out = c.observe(&report(10, "r", "error", 50, None));
            assert!(out[0].out_of_memory, "{line}");
        }
        // JSON log format.
        let mut c = x86();
        c.observe(&start(0, "r"));
        c.observe(&ev(5, "function", json!({"level": "ERROR", "errorType": "Runtime.OutOfMemory", "message": "x"})));
        assert!(c.observe(&report(10, "r", "error", 50, None))[0].out_of_memory);
        // errorType on the report.
        let mut c = x86();
        let out = c.observe(&ev(
            0,
            "platform.report",
            json!({"requestId": "r", "status": "error",
            "errorType": "Runtime.OutOfMemory",
            "metrics": {"durationMs": 1.0, "billedDurationMs": 1, "memorySizeMB": 128, "maxMemoryUsedMB": 100}}),
        ));
        assert!(out[0].out_of_memory);
        // Memory at the limit.
        let mut c = x86();
        assert!(c.observe(&report(0, "r", "error", 128, None))[0].out_of_memory);
        // A harmless mention of memory is not OOM.
        let mut c = x86();
        c.observe(&start(0, "r"));
        c.observe(&ev(5, "function", json!("memory usage is fine: 50 MB")));
        assert!(!c.observe(&report(10, "r", "success", 50, None))[0].out_of_memory);
        assert!(!is_oom_line("out of memory budget? no: MemoryErr"));
    }

    #[test]
    fn drain_returns_partials_marked_incomplete() {
        let mut c = Correlator::new(CorrelatorOptions {
            memory_size_mb: Some(512),
            pricing: Pricing::for_arch(Arch::Arm64),
            ..CorrelatorOptions::default()
        });
        let mut events = init_events("on-demand");
        events.extend([
            start(200, "crashed"),
            ev(250, "function", json!("JavaScript heap out of memory")),
            runtime_done(300, "crashed", "failure", Some("Runtime.ExitError")),
            start(400, "never-done"),
        ]);
        assert!(feed(&mut c, &events).is_empty());
        let out = c.drain();
        assert_eq!(out.len(), 2);
        let a = &out[0];
        assert_eq!(a.request_id, "crashed");
        assert!(!a.complete);
        assert!(a.cold_start, "the init went to the first started request");
        assert_eq!(a.init_duration_ms, Some(150.5));
        assert_eq!(a.status, "failure");
        assert!(a.out_of_memory && a.is_error());
        assert_eq!(a.duration_ms, 95.5);
        assert_eq!(a.billed_duration_ms, 96);
        assert_eq!(a.memory_size_mb, 512);
        let want = 0.5 * 0.096 * 0.000_013_333_4 + 0.000_000_2;
        assert!((a.estimated_cost_usd - want).abs() < 1e-15);
        let b = &out[1];
        assert_eq!((b.request_id.as_str(), b.status.as_str(), b.complete), ("never-done", "unknown", false));
        assert!(!b.cold_start && !b.is_error());
        assert_eq!(b.start_ms, T0 + 400);
        assert_eq!(c.in_flight(), None);
        assert!(c.drain().is_empty());
    }

    #[test]
    fn table_is_bounded_and_evicts_oldest_as_partial() {
        let mut c = Correlator::new(CorrelatorOptions { max_in_flight: 3, ..CorrelatorOptions::default() });
        let mut evicted = Vec::new();
        for i in 0..10u64 {
            evicted.extend(c.observe(&start(i * 10, &format!("r{i}"))));
            assert!(c.pending_len() <= 3);
        }
        assert_eq!(
            evicted.iter().map(|i| i.request_id.as_str()).collect::<Vec<_>>(),
            ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]
        );
        assert!(evicted.iter().all(|i| !i.complete));
        assert_eq!(c.in_flight(), Some("r9"));
        // A late report for an evicted request is still reported from its own data.
        let out = c.observe(&report(200, "r1", "success", 1, None));
        assert_eq!(out.len(), 1);
        assert!(out[0].complete);
        assert_eq!(c.drain().len(), 3);
    }

    #[test]
    fn partial_without_start_is_dated_from_what_was_seen() {
        let mut c = x86();
        c.observe(&runtime_done(10_000, "orphan", "success", None));
        let out = c.drain();
        assert_eq!(out[0].start_ms, T0 + 10_000 - 96, "runtimeDone time minus the runtime duration");
        assert!(!out[0].complete);
    }

    #[test]
    fn provisioned_concurrency_init_is_not_a_cold_start() {
        let mut c = x86();
        let mut events = init_events("provisioned-concurrency");
        events.extend([start(60_000, "a"), report(60_100, "a", "success", 1, None)]);
        let out = feed(&mut c, &events);
        assert!(!out[0].cold_start);
        assert_eq!(out[0].init_duration_ms, None);
        assert_eq!(
            out[0].init.as_ref().and_then(|i| i.initialization_type.as_deref()),
            Some("provisioned-concurrency")
        );
    }

    #[test]
    fn suppressed_init_attaches_to_the_running_invocation() {
        let mut c = x86();
        let out = feed(
            &mut c,
            &[
                start(0, "first"),
                ev(1, "platform.initStart", json!({"initializationType": "on-demand", "phase": "invoke"})),
                ev(
                    2,
                    "platform.initReport",
                    json!({"initializationType": "on-demand", "phase": "invoke",
                    "status": "error", "errorType": "Runtime.ExitError", "metrics": {"durationMs": 9000.0}}),
                ),
                report(10, "first", "error", 1, Some(9000.0)),
            ],
        );
        let init = out[0].init.as_ref().expect("init attached");
        assert_eq!(init.phase.as_deref(), Some("invoke"));
        assert_eq!(init.status.as_deref(), Some("error"));
        assert_eq!(init.error_type.as_deref(), Some("Runtime.ExitError"));
        assert!(out[0].cold_start);
    }

    #[test]
    fn snapstart_restore_is_a_cold_start_with_restore_duration() {
        let mut c = x86();
        let out = feed(
            &mut c,
            &[
                ev(0, "platform.restoreStart", json!({"functionName": "f", "runtimeVersion": "java21.v4"})),
                ev(5, "platform.restoreReport", json!({"status": "success", "metrics": {"durationMs": 300.0}})),
                start(10, "a"),
                ev(
                    20,
                    "platform.report",
                    json!({"requestId": "a", "status": "success",
                    "metrics": {"durationMs": 5.0, "billedDurationMs": 300, "memorySizeMB": 128, "maxMemoryUsedMB": 90,
                                "restoreDurationMs": 300.0, "billedRestoreDurationMs": 295}}),
                ),
            ],
        );
        let a = &out[0];
        assert!(a.cold_start);
        assert_eq!(a.restore_duration_ms, Some(300.0));
        assert_eq!(a.init_duration_ms, None);
        assert!(a.init.as_ref().is_some_and(|i| i.restore && i.duration_ms == Some(300.0)));
    }

    #[test]
    fn logs_are_stamped_with_their_invocations_trace() {
        let mut c = x86();
        c.observe(&start(0, "a"));
        let mut rec =
            crate::logs::to_log_record(T0, crate::model::Source::Function, &WireLog::Text("hi".into()), c.in_flight());
        c.annotate_log(&mut rec);
        assert_eq!(rec.request_id.as_deref(), Some("a"));
        assert_eq!(rec.trace_id.as_deref(), Some("1-5759e988-bd862e3fe1be46a994272793"));
        let mut other = rec.clone();
        other.trace_id = None;
        other.request_id = Some("unknown".into());
        c.annotate_log(&mut other);
        assert_eq!(other.trace_id, None);
    }

    #[test]
    fn xray_header_parsing() {
        let x = XRay::parse("Root=1-62e900b2-710d76f009d6e7785905449a; Parent=0efbd19962d95b05; Sampled=0;Lineage=a:1");
        assert_eq!(x.root.as_deref(), Some("1-62e900b2-710d76f009d6e7785905449a"));
        assert_eq!(x.parent.as_deref(), Some("0efbd19962d95b05"));
        assert_eq!(x.sampled, Some(false));
        assert_eq!(XRay::parse("garbage"), XRay::default());
        assert_eq!(Arch::parse("AARCH64"), Some(Arch::Arm64));
        assert_eq!(Arch::parse("amd64"), Some(Arch::X86_64));
        assert_eq!(Arch::parse("mips"), None);
    }
}
