//! sink::otlp::metrics: invocation metrics and the extension's health as OTLP metrics
//! (instrumentation scope `tandem`). Pure. (Over 600 lines: the instruments, their
//! aggregation and both temporalities are one concern sharing private builders.)
//!
//! Metric shapes (per [OTel FaaS metric semconv]; Lambda-specific ones as `aws.lambda.*`):
//!
//! | name | instrument | unit | value |
//! |---|---|---|---|
//! | `faas.invocations` | Sum (delta, monotonic, int) | `{invocation}` | invocations |
//! | `faas.invoke_duration` | Histogram (delta) | `s` | runtimeDone `durationMs` (the function's own logic), else report `durationMs` |
//! | `faas.init_duration` | Histogram (delta) | `s` | cold starts' init duration |
//! | `faas.coldstarts` | Sum (delta, monotonic, int) | `{coldstart}` | cold starts |
//! | `faas.errors` | Sum (delta, monotonic, int), by `error.type` | `{error}` | non-success invocations (timeouts included, like Lambda's `Errors`) |
//! | `faas.timeouts` | Sum (delta, monotonic, int) | `{timeout}` | timeouts |
//! | `faas.mem_usage` | Histogram (delta) | `By` | max memory used (reported invocations) |
//! | `aws.lambda.billed_duration` | Histogram (delta) | `s` | billed duration |
//! | `aws.lambda.duration` | Histogram (delta) | `s` | report `durationMs` (Lambda's `Duration`) |
//! | `aws.lambda.post_runtime_extension_duration` | Histogram (delta) | `s` | report span `extensionOverhead` |
//! | `aws.lambda.out_of_memory` | Sum (delta, monotonic, int) | `{invocation}` | out-of-memory invocations |
//! | `aws.lambda.estimated_cost` | Sum (delta, monotonic, double) | `{USD}` | estimated cost |
//!
//! A request aggregates its invocations into one data point per metric (per `error.type`
//! for `faas.errors`). DELTA windows are contiguous and never overlap: the first starts
//! at its earliest invocation, each next one where the previous accepted one ended, and
//! each ends at its latest invocation end ([`MetricsState`]). With
//! `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative` the points are totals
//! since the first window's start ([`Temporality`]).
//!
//! [OTel FaaS metric semconv]: https://opentelemetry.io/docs/specs/semconv/faas/faas-metrics/

use super::encode::{kv, ms_to_ns, scope, string};
use super::resource::Resource;
use crate::model::{HealthSnapshot, Invocation};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};

/// Explicit bounds of duration histograms, seconds: OTel's HTTP-duration advice extended
/// to Lambda's 900 s limit.
pub const DURATION_BOUNDS_S: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0, 300.0, 900.0];

/// Explicit bounds of memory histograms, bytes: 64 MiB … 10 GiB (Lambda's range).
pub const MEMORY_BOUNDS_BY: &[f64] = &[
    67_108_864.0,
    134_217_728.0,
    268_435_456.0,
    536_870_912.0,
    1_073_741_824.0,
    2_147_483_648.0,
    3_221_225_472.0,
    4_294_967_296.0,
    6_442_450_944.0,
    8_589_934_592.0,
    10_737_418_240.0,
];

#[derive(Debug, Clone)]
struct Hist {
    bounds: &'static [f64],
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Hist {
    fn new(bounds: &'static [f64]) -> Hist {
        Hist {
            bounds,
            counts: vec![0; bounds.len() + 1],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    fn record(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        // Bucket i holds (bounds[i-1], bounds[i]]; the last one (bounds[n-1], +inf).
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i] += 1;
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    fn metric(self, name: &str, description: &str, unit: &str, start: u64, end: u64) -> Option<Metric> {
        if self.count == 0 {
            return None;
        }
        Some(Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: unit.to_owned(),
            metadata: Vec::new(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: Vec::new(),
                    start_time_unix_nano: start,
                    time_unix_nano: end,
                    count: self.count,
                    sum: Some(self.sum),
                    bucket_counts: self.counts,
                    explicit_bounds: self.bounds.to_vec(),
                    exemplars: Vec::new(),
                    flags: 0,
                    min: Some(self.min),
                    max: Some(self.max),
                }],
                aggregation_temporality: AggregationTemporality::Delta as i32,
            })),
        })
    }
}

fn sum_metric(
    name: &str,
    description: &str,
    unit: &str,
    points: Vec<(Vec<KeyValue>, number_data_point::Value)>,
    start: u64,
    end: u64,
) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        metadata: Vec::new(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points
                .into_iter()
                .map(|(attributes, value)| NumberDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: end,
                    exemplars: Vec::new(),
                    flags: 0,
                    value: Some(value),
                })
                .collect(),
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })),
    }
}

fn count(n: u64) -> number_data_point::Value {
    number_data_point::Value::AsInt(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, as the OpenTelemetry exporter
/// specification defines it for the instruments tandem has: invocation metrics are
/// synchronous counters and histograms (DELTA under `delta` and `lowmemory`), the
/// health counters are asynchronous counters (DELTA under `delta` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Temporality {
    /// Everything DELTA (tandem's default: Lambda environments come and go, and a
    /// point per export is what CloudWatch-like backends sum).
    #[default]
    Delta,
    /// Everything CUMULATIVE since the extension started.
    Cumulative,
    /// Counters and histograms DELTA, asynchronous counters CUMULATIVE.
    LowMemory,
}

impl Temporality {
    /// The variable's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Temporality::Delta => "delta",
            Temporality::Cumulative => "cumulative",
            Temporality::LowMemory => "lowmemory",
        }
    }

    /// Parses the variable's value, case-insensitively.
    pub fn parse(s: &str) -> Option<Temporality> {
        [Temporality::Delta, Temporality::Cumulative, Temporality::LowMemory]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }

    fn invocations(self) -> AggregationTemporality {
        match self {
            Temporality::Cumulative => AggregationTemporality::Cumulative,
            Temporality::Delta | Temporality::LowMemory => AggregationTemporality::Delta,
        }
    }

    fn health(self) -> AggregationTemporality {
        match self {
            Temporality::Delta => AggregationTemporality::Delta,
            Temporality::Cumulative | Temporality::LowMemory => AggregationTemporality::Cumulative,
        }
    }
}

/// Invocation metrics aggregated over a set of invocations: one request's, or every
/// accepted one since the start (CUMULATIVE).
#[derive(Debug, Clone)]
pub struct Aggregate {
    n: u64,
    start_ms: u64,
    end_ms: u64,
    cold: u64,
    timeouts: u64,
    oom: u64,
    cost: f64,
    errors: Vec<(String, u64)>,
    invoke: Hist,
    lambda_duration: Hist,
    init: Hist,
    billed: Hist,
    post: Hist,
    mem: Hist,
}

impl Default for Aggregate {
    fn default() -> Self {
        Aggregate {
            n: 0,
            start_ms: u64::MAX,
            end_ms: 0,
            cold: 0,
            timeouts: 0,
            oom: 0,
            cost: 0.0,
            errors: Vec::new(),
            invoke: Hist::new(DURATION_BOUNDS_S),
            lambda_duration: Hist::new(DURATION_BOUNDS_S),
            init: Hist::new(DURATION_BOUNDS_S),
            billed: Hist::new(DURATION_BOUNDS_S),
            post: Hist::new(DURATION_BOUNDS_S),
            mem: Hist::new(MEMORY_BOUNDS_BY),
        }
    }
}

impl Aggregate {
    /// Adds one invocation.
    pub fn add(&mut self, inv: &Invocation) {
        self.n += 1;
        self.start_ms = self.start_ms.min(inv.start_ms);
        self.end_ms = self.end_ms.max(inv.end_ms());
        self.invoke.record(inv.runtime_duration_ms.unwrap_or(inv.duration_ms) / 1000.0);
        self.lambda_duration.record(inv.duration_ms / 1000.0);
        self.billed.record(inv.billed_duration_ms as f64 / 1000.0);
        if let Some(p) = inv.post_runtime_extension_ms {
            self.post.record(p / 1000.0);
        }
        if inv.cold_start {
            self.cold += 1;
            if let Some(d) = inv.init_duration_ms {
                self.init.record(d / 1000.0);
            }
        }
        if inv.complete {
            self.mem.record(inv.max_memory_used_mb as f64 * 1_048_576.0);
        }
        if inv.is_error() {
            let ty = inv.error_type.as_deref().unwrap_or("_OTHER");
            match self.errors.iter_mut().find(|(t, _)| t == ty) {
                Some((_, c)) => *c += 1,
                None => self.errors.push((ty.to_owned(), 1)),
            }
        }
        self.timeouts += u64::from(inv.is_timeout());
        self.oom += u64::from(inv.out_of_memory);
        if inv.estimated_cost_usd.is_finite() {
            self.cost += inv.estimated_cost_usd;
        }
    }

    /// Whether no invocation was added.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The metrics, each with one point over `[start, end]` (ns); none when empty.
    fn metrics(&self, start: u64, end: u64, temporality: AggregationTemporality) -> Vec<Metric> {
        if self.n == 0 {
            return Vec::new();
        }
        let plain = |v| vec![(Vec::new(), v)];
        let sum = |name: &str, description: &str, unit: &str, points| {
            let mut m = sum_metric(name, description, unit, points, start, end);
            set_temporality(&mut m, temporality);
            m
        };
        let hist = |h: &Hist, name: &str, description: &str, unit: &str| {
            let mut m = h.clone().metric(name, description, unit, start, end)?;
            set_temporality(&mut m, temporality);
            Some(m)
        };
        let mut metrics = vec![sum("faas.invocations", "Number of invocations", "{invocation}", plain(count(self.n)))];
        metrics.extend(hist(&self.invoke, "faas.invoke_duration", "Duration of the function's logic execution", "s"));
        metrics.extend(hist(
            &self.init,
            "faas.init_duration",
            "Duration of the function's initialization (cold starts)",
            "s",
        ));
        metrics.push(sum(
            "faas.coldstarts",
            "Number of invocation cold starts",
            "{coldstart}",
            plain(count(self.cold)),
        ));
        let mut errors = self.errors.clone();
        errors.sort();
        let error_points = if errors.is_empty() {
            plain(count(0))
        } else {
            errors.into_iter().map(|(ty, c)| (vec![kv("error.type", string(&ty))], count(c))).collect()
        };
        metrics.push(sum("faas.errors", "Number of invocation errors (timeouts included)", "{error}", error_points));
        metrics.push(sum("faas.timeouts", "Number of invocation timeouts", "{timeout}", plain(count(self.timeouts))));
        metrics.extend(hist(&self.mem, "faas.mem_usage", "Maximum memory used per invocation", "By"));
        metrics.extend(hist(&self.billed, "aws.lambda.billed_duration", "Billed duration per invocation", "s"));
        metrics.extend(hist(
            &self.lambda_duration,
            "aws.lambda.duration",
            "Duration per invocation as Lambda reports it",
            "s",
        ));
        metrics.extend(hist(
            &self.post,
            "aws.lambda.post_runtime_extension_duration",
            "Time extensions kept the invocation open after the runtime finished",
            "s",
        ));
        metrics.push(sum(
            "aws.lambda.out_of_memory",
            "Invocations that ran out of memory",
            "{invocation}",
            plain(count(self.oom)),
        ));
        metrics.push(sum(
            "aws.lambda.estimated_cost",
            "Estimated cost of the invocations (duration and requests, USD)",
            "{USD}",
            plain(number_data_point::Value::AsDouble(self.cost)),
        ));
        metrics
    }
}

fn set_temporality(m: &mut Metric, t: AggregationTemporality) {
    match &mut m.data {
        Some(metric::Data::Sum(s)) => s.aggregation_temporality = t as i32,
        Some(metric::Data::Histogram(h)) => h.aggregation_temporality = t as i32,
        _ => {}
    }
}

fn request(resource: &Resource, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.to_proto()),
            scope_metrics: vec![ScopeMetrics { scope: Some(scope()), metrics, schema_url: String::new() }],
            schema_url: String::new(),
        }],
    }
}

/// An export request with the metrics of `invocations` as one DELTA window spanning
/// `[earliest start, latest end]` (see the module documentation for the shapes). With
/// no invocations it holds no metrics at all. The sink uses [`MetricsState`], which also
/// keeps consecutive windows contiguous.
pub fn metrics_request<'a>(
    resource: &Resource,
    invocations: impl IntoIterator<Item = &'a Invocation>,
) -> ExportMetricsServiceRequest {
    let mut agg = Aggregate::default();
    invocations.into_iter().for_each(|i| agg.add(i));
    if agg.is_empty() {
        return ExportMetricsServiceRequest { resource_metrics: Vec::new() };
    }
    let (start, end) = (ms_to_ns(agg.start_ms), ms_to_ns(agg.end_ms.max(agg.start_ms)));
    request(resource, agg.metrics(start, end, AggregationTemporality::Delta))
}

/// What the metrics of one exporter remember between exports, so that DELTA points are
/// contiguous and never overlap (each window starts where the previous accepted one
/// ended), CUMULATIVE points keep their start and totals, and health counters can be
/// sent as changes. Pure: [`MetricsState::export`] returns the request and the state to
/// keep once that request is accepted.
#[derive(Debug, Clone, Default)]
pub struct MetricsState {
    temporality: Temporality,
    /// End (ns) of the last accepted window of invocation metrics.
    cursor: Option<u64>,
    /// Start (ns) of the CUMULATIVE points.
    origin: Option<u64>,
    /// CUMULATIVE: every accepted invocation.
    totals: Aggregate,
    /// The last accepted health snapshot (DELTA health counters).
    last_health: Option<HealthSnapshot>,
}

impl MetricsState {
    /// A state for the given preference, before any export.
    pub fn new(temporality: Temporality) -> MetricsState {
        MetricsState { temporality, ..MetricsState::default() }
    }

    /// The request for a batch's `invocations` and `health` snapshots (in order), and
    /// the state after it is accepted; `None` when there is nothing to send (an empty
    /// export is never sent).
    pub fn export<'a>(
        &self,
        resource: &Resource,
        invocations: impl IntoIterator<Item = &'a Invocation>,
        health: &[&HealthSnapshot],
    ) -> Option<(ExportMetricsServiceRequest, MetricsState)> {
        let mut next = self.clone();
        let mut batch = Aggregate::default();
        invocations.into_iter().for_each(|i| batch.add(i));
        let mut metrics = Vec::new();
        if !batch.is_empty() {
            let batch_start = ms_to_ns(batch.start_ms);
            let batch_end = ms_to_ns(batch.end_ms.max(batch.start_ms));
            // A window starts where the previous one ended; it ends at the latest
            // invocation end, and always after its start.
            let start = self.cursor.unwrap_or(batch_start);
            let end = batch_end.max(start + 1);
            next.cursor = Some(end);
            match self.temporality {
                Temporality::Cumulative => {
                    let origin = *next.origin.get_or_insert(start);
                    merge(&mut next.totals, &batch);
                    metrics.extend(next.totals.metrics(origin, end, self.temporality.invocations()));
                }
                Temporality::Delta | Temporality::LowMemory => {
                    metrics.extend(batch.metrics(start, end, self.temporality.invocations()));
                }
            }
        }
        for h in health {
            let previous = match self.temporality.health() {
                AggregationTemporality::Delta => next.last_health.as_ref(),
                _ => None,
            };
            metrics.extend(health_metrics_since(h, previous));
            next.last_health = Some((*h).clone());
        }
        if metrics.is_empty() {
            return None;
        }
        Some((request(resource, metrics), next))
    }
}

/// Adds `b`'s invocations to `a`.
fn merge(a: &mut Aggregate, b: &Aggregate) {
    a.n += b.n;
    a.start_ms = a.start_ms.min(b.start_ms);
    a.end_ms = a.end_ms.max(b.end_ms);
    a.cold += b.cold;
    a.timeouts += b.timeouts;
    a.oom += b.oom;
    a.cost += b.cost;
    for (ty, c) in &b.errors {
        match a.errors.iter_mut().find(|(t, _)| t == ty) {
            Some((_, n)) => *n += c,
            None => a.errors.push((ty.clone(), *c)),
        }
    }
    for (x, y) in [
        (&mut a.invoke, &b.invoke),
        (&mut a.lambda_duration, &b.lambda_duration),
        (&mut a.init, &b.init),
        (&mut a.billed, &b.billed),
        (&mut a.post, &b.post),
        (&mut a.mem, &b.mem),
    ] {
        x.merge(y);
    }
}

/// The extension's own health as metrics (instrumentation scope `tandem`): counters as
/// CUMULATIVE monotonic sums since the process started (`started_ms`, which is why they
/// are not deltas: a snapshot carries totals), current values as gauges.
///
/// | name | instrument | unit | attributes |
/// |---|---|---|---|
/// | `tandem.records_in` | Sum | `{record}` | |
/// | `tandem.delivered` | Sum | `{record}` | `tandem.sink` |
/// | `tandem.retried` | Sum | `{request}` | |
/// | `tandem.spooled` | Sum | `{record}` | |
/// | `tandem.dropped` | Sum | `{record}` | `tandem.reason` |
/// | `tandem.parse_errors` | Sum | `{event}` | |
/// | `tandem.flushes` | Sum | `{flush}` | |
/// | `tandem.buffered_records` | Gauge | `{record}` | |
/// | `tandem.buffered_bytes`, `tandem.spool_bytes` | Gauge | `By` | |
/// | `tandem.flush_latency`, `tandem.flush_latency_max` | Gauge | `s` | |
pub fn health_metrics(h: &HealthSnapshot) -> Vec<Metric> {
    health_metrics_since(h, None)
}

/// [`health_metrics`], with the counters as DELTA sums since `previous` (an earlier
/// snapshot of the same process) when given.
pub fn health_metrics_since(h: &HealthSnapshot, previous: Option<&HealthSnapshot>) -> Vec<Metric> {
    let origin = ms_to_ns(h.started_ms.unwrap_or(h.time_ms));
    let start = previous.map_or(origin, |p| ms_to_ns(p.time_ms).max(origin));
    let end = ms_to_ns(h.time_ms).max(start);
    let temporality =
        if previous.is_some() { AggregationTemporality::Delta } else { AggregationTemporality::Cumulative };
    let cumulative = |name: &str, description: &str, unit: &str, points: Vec<(Vec<KeyValue>, u64)>| {
        let mut m =
            sum_metric(name, description, unit, points.into_iter().map(|(a, v)| (a, count(v))).collect(), start, end);
        set_temporality(&mut m, temporality);
        m
    };
    let less = |now: u64, f: fn(&HealthSnapshot) -> u64| now.saturating_sub(previous.map_or(0, f));
    let gauge = |name: &str, description: &str, unit: &str, value: number_data_point::Value| Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        metadata: Vec::new(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                attributes: Vec::new(),
                start_time_unix_nano: 0,
                time_unix_nano: end,
                exemplars: Vec::new(),
                flags: 0,
                value: Some(value),
            }],
        })),
    };
    type Counts = std::collections::BTreeMap<String, u64>;
    let by = |key: &str, m: &Counts, before: Option<&Counts>| -> Vec<(Vec<KeyValue>, u64)> {
        let was = |k: &String| before.and_then(|b| b.get(k)).copied().unwrap_or(0);
        m.iter().map(|(k, v)| (vec![kv(key, string(k))], v.saturating_sub(was(k)))).collect()
    };
    let mut metrics = vec![
        cumulative(
            "tandem.records_in",
            "Records accepted from the Telemetry API",
            "{record}",
            vec![(Vec::new(), less(h.records_in, |s| s.records_in))],
        ),
        cumulative(
            "tandem.retried",
            "Send attempts repeated after a retryable failure",
            "{request}",
            vec![(Vec::new(), less(h.retried, |s| s.retried))],
        ),
        cumulative(
            "tandem.spooled",
            "Records written to the disk spool",
            "{record}",
            vec![(Vec::new(), less(h.spooled, |s| s.spooled))],
        ),
        cumulative(
            "tandem.parse_errors",
            "Telemetry events that could not be parsed",
            "{event}",
            vec![(Vec::new(), less(h.parse_errors, |s| s.parse_errors))],
        ),
        cumulative("tandem.flushes", "Flushes run", "{flush}", vec![(Vec::new(), less(h.flushes, |s| s.flushes))]),
    ];
    if !h.delivered_by_sink.is_empty() {
        metrics.push(cumulative(
            "tandem.delivered",
            "Records a sink acknowledged",
            "{record}",
            by("tandem.sink", &h.delivered_by_sink, previous.map(|p| &p.delivered_by_sink)),
        ));
    }
    if !h.dropped.is_empty() {
        metrics.push(cumulative(
            "tandem.dropped",
            "Records dropped, by reason",
            "{record}",
            by("tandem.reason", &h.dropped, previous.map(|p| &p.dropped)),
        ));
    }
    metrics.push(gauge(
        "tandem.buffered_records",
        "Records waiting in memory and on disk",
        "{record}",
        count(h.buffered_records),
    ));
    metrics.push(gauge("tandem.buffered_bytes", "Bytes waiting in memory and on disk", "By", count(h.buffered_bytes)));
    metrics.push(gauge("tandem.spool_bytes", "Bytes in the disk spool", "By", count(h.spool_bytes)));
    metrics.push(gauge(
        "tandem.flush_latency",
        "Duration of the last flush",
        "s",
        number_data_point::Value::AsDouble(h.flush_latency_ms_last / 1000.0),
    ));
    metrics.push(gauge(
        "tandem.flush_latency_max",
        "Duration of the slowest flush",
        "s",
        number_data_point::Value::AsDouble(h.flush_latency_ms_max / 1000.0),
    ));
    metrics
}
