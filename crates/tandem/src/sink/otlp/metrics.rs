//! sink::otlp::metrics: invocation metrics and the extension's health as OTLP metrics
//! (instrumentation scope `tandem`). Pure.
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
//! for `faas.errors`), spanning `[earliest start, latest end]` of those invocations.
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

/// An export request with the metrics of `invocations` (see the module documentation
/// for the shapes). With no invocations it holds no metrics at all.
pub fn metrics_request<'a>(
    resource: &Resource,
    invocations: impl IntoIterator<Item = &'a Invocation>,
) -> ExportMetricsServiceRequest {
    let mut start_ms = u64::MAX;
    let mut end_ms = 0u64;
    let mut n = 0u64;
    let (mut cold, mut timeouts, mut oom) = (0u64, 0u64, 0u64);
    let mut cost = 0.0f64;
    let mut errors: Vec<(String, u64)> = Vec::new();
    let mut invoke = Hist::new(DURATION_BOUNDS_S);
    let mut lambda_duration = Hist::new(DURATION_BOUNDS_S);
    let mut init = Hist::new(DURATION_BOUNDS_S);
    let mut billed = Hist::new(DURATION_BOUNDS_S);
    let mut post = Hist::new(DURATION_BOUNDS_S);
    let mut mem = Hist::new(MEMORY_BOUNDS_BY);
    for inv in invocations {
        n += 1;
        start_ms = start_ms.min(inv.start_ms);
        end_ms = end_ms.max(inv.end_ms());
        invoke.record(inv.runtime_duration_ms.unwrap_or(inv.duration_ms) / 1000.0);
        lambda_duration.record(inv.duration_ms / 1000.0);
        billed.record(inv.billed_duration_ms as f64 / 1000.0);
        if let Some(p) = inv.post_runtime_extension_ms {
            post.record(p / 1000.0);
        }
        if inv.cold_start {
            cold += 1;
            if let Some(d) = inv.init_duration_ms {
                init.record(d / 1000.0);
            }
        }
        if inv.complete {
            mem.record(inv.max_memory_used_mb as f64 * 1_048_576.0);
        }
        if inv.is_error() {
            let ty = inv.error_type.as_deref().unwrap_or("_OTHER");
            match errors.iter_mut().find(|(t, _)| t == ty) {
                Some((_, c)) => *c += 1,
                None => errors.push((ty.to_owned(), 1)),
            }
        }
        timeouts += u64::from(inv.is_timeout());
        oom += u64::from(inv.out_of_memory);
        if inv.estimated_cost_usd.is_finite() {
            cost += inv.estimated_cost_usd;
        }
    }
    if n == 0 {
        return ExportMetricsServiceRequest { resource_metrics: Vec::new() };
    }
    let (start, end) = (ms_to_ns(start_ms), ms_to_ns(end_ms.max(start_ms)));
    let plain = |v| vec![(Vec::new(), v)];
    let mut metrics =
        vec![sum_metric("faas.invocations", "Number of invocations", "{invocation}", plain(count(n)), start, end)];
    metrics.extend(invoke.metric(
        "faas.invoke_duration",
        "Duration of the function's logic execution",
        "s",
        start,
        end,
    ));
    metrics.extend(init.metric(
        "faas.init_duration",
        "Duration of the function's initialization (cold starts)",
        "s",
        start,
        end,
    ));
    metrics.push(sum_metric(
        "faas.coldstarts",
        "Number of invocation cold starts",
        "{coldstart}",
        plain(count(cold)),
        start,
        end,
    ));
    errors.sort();
    let error_points = if errors.is_empty() {
        plain(count(0))
    } else {
        errors.into_iter().map(|(ty, c)| (vec![kv("error.type", string(&ty))], count(c))).collect()
    };
    metrics.push(sum_metric(
        "faas.errors",
        "Number of invocation errors (timeouts included)",
        "{error}",
        error_points,
        start,
        end,
    ));
    metrics.push(sum_metric(
        "faas.timeouts",
        "Number of invocation timeouts",
        "{timeout}",
        plain(count(timeouts)),
        start,
        end,
    ));
    metrics.extend(mem.metric("faas.mem_usage", "Maximum memory used per invocation", "By", start, end));
    metrics.extend(billed.metric("aws.lambda.billed_duration", "Billed duration per invocation", "s", start, end));
    metrics.extend(lambda_duration.metric(
        "aws.lambda.duration",
        "Duration per invocation as Lambda reports it",
        "s",
        start,
        end,
    ));
    metrics.extend(post.metric(
        "aws.lambda.post_runtime_extension_duration",
        "Time extensions kept the invocation open after the runtime finished",
        "s",
        start,
        end,
    ));
    metrics.push(sum_metric(
        "aws.lambda.out_of_memory",
        "Invocations that ran out of memory",
        "{invocation}",
        plain(count(oom)),
        start,
        end,
    ));
    metrics.push(sum_metric(
        "aws.lambda.estimated_cost",
        "Estimated cost of the invocations (duration and requests, USD)",
        "{USD}",
        plain(number_data_point::Value::AsDouble(cost)),
        start,
        end,
    ));
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.to_proto()),
            scope_metrics: vec![ScopeMetrics { scope: Some(scope()), metrics, schema_url: String::new() }],
            schema_url: String::new(),
        }],
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
    let start = ms_to_ns(h.started_ms.unwrap_or(h.time_ms));
    let end = ms_to_ns(h.time_ms).max(start);
    let cumulative = |name: &str, description: &str, unit: &str, points: Vec<(Vec<KeyValue>, u64)>| {
        let mut m =
            sum_metric(name, description, unit, points.into_iter().map(|(a, v)| (a, count(v))).collect(), start, end);
        if let Some(metric::Data::Sum(s)) = &mut m.data {
            s.aggregation_temporality = AggregationTemporality::Cumulative as i32;
        }
        m
    };
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
    let by = |key: &str, m: &std::collections::BTreeMap<String, u64>| -> Vec<(Vec<KeyValue>, u64)> {
        m.iter().map(|(k, v)| (vec![kv(key, string(k))], *v)).collect()
    };
    let mut metrics = vec![
        cumulative(
            "tandem.records_in",
            "Records accepted from the Telemetry API",
            "{record}",
            vec![(Vec::new(), h.records_in)],
        ),
        cumulative(
            "tandem.retried",
            "Send attempts repeated after a retryable failure",
            "{request}",
            vec![(Vec::new(), h.retried)],
        ),
        cumulative("tandem.spooled", "Records written to the disk spool", "{record}", vec![(Vec::new(), h.spooled)]),
        cumulative(
            "tandem.parse_errors",
            "Telemetry events that could not be parsed",
            "{event}",
            vec![(Vec::new(), h.parse_errors)],
        ),
        cumulative("tandem.flushes", "Flushes run", "{flush}", vec![(Vec::new(), h.flushes)]),
    ];
    if !h.delivered_by_sink.is_empty() {
        metrics.push(cumulative(
            "tandem.delivered",
            "Records a sink acknowledged",
            "{record}",
            by("tandem.sink", &h.delivered_by_sink),
        ));
    }
    if !h.dropped.is_empty() {
        metrics.push(cumulative(
            "tandem.dropped",
            "Records dropped, by reason",
            "{record}",
            by("tandem.reason", &h.dropped),
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
