//! OTLP: log records, invocation metrics and invocation spans as OTLP/HTTP export
//! requests (`opentelemetry-proto` types), encoded as protobuf or OTLP/JSON.
//!
//! Owns the mapping to OpenTelemetry: the resource (FaaS and cloud semantic
//! conventions, [`Resource::from_env`]), log records (severity, body, `faas.invocation_id`,
//! trace context), metrics (DELTA temporality, aggregated per request) and spans (one
//! SERVER span per invocation with `init`/`runtime`/`extension_overhead` children), and
//! the derivation of trace and span ids. Pure: no I/O, no clock, no randomness; every
//! id is derived deterministically from the request id (or taken from X-Ray), so that a
//! log line and the span of its invocation agree without sharing state, and re-sending a
//! spooled batch produces the same ids.
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

use super::push_serde;
use crate::model::{HealthSnapshot, Invocation, Level, LogRecord};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use serde_json::Value;

/// Instrumentation scope name of everything Tandem emits.
pub const SCOPE_NAME: &str = "tandem";

/// How a request body is encoded (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `http/protobuf` (the default).
    #[default]
    HttpProtobuf,
    /// `http/json`.
    HttpJson,
}

impl Protocol {
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }

    pub const fn content_type(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "application/x-protobuf",
            Protocol::HttpJson => "application/json",
        }
    }

    /// Encodes an export request in this protocol.
    pub fn encode<M: prost::Message + serde::Serialize>(self, req: &M) -> Vec<u8> {
        match self {
            Protocol::HttpProtobuf => encode_protobuf(req),
            Protocol::HttpJson => encode_json(req),
        }
    }
}

/// The three OTLP signals and their default paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Logs,
    Metrics,
    Traces,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Logs, Signal::Metrics, Signal::Traces];

    pub const fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
        }
    }

    /// `/v1/logs`, `/v1/metrics`, `/v1/traces`: appended to `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub const fn path(self) -> &'static str {
        match self {
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
            Signal::Traces => "/v1/traces",
        }
    }
}

/// Protobuf body (`application/x-protobuf`).
pub fn encode_protobuf<M: prost::Message>(req: &M) -> Vec<u8> {
    req.encode_to_vec()
}

/// OTLP/JSON body (`application/json`): camelCase fields, trace and span ids as hex
/// strings, 64-bit integers as strings, enums as numbers, as the OTLP specification
/// requires (this is what `opentelemetry-proto`'s `with-serde` produces; tests check it).
pub fn encode_json<M: serde::Serialize>(req: &M) -> Vec<u8> {
    let mut out = Vec::new();
    push_serde(&mut out, req, b"{}");
    out
}

// ---------------------------------------------------------------------------------------
// Resource
// ---------------------------------------------------------------------------------------

/// The resource every request carries: who emitted the telemetry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    attributes: Vec<KeyValue>,
}

impl Resource {
    /// Builds the resource from the environment (`get` reads a variable):
    /// `cloud.provider=aws`, `cloud.platform=aws_lambda`, `cloud.region` (`AWS_REGION`),
    /// `faas.name` (`AWS_LAMBDA_FUNCTION_NAME`), `faas.version`
    /// (`AWS_LAMBDA_FUNCTION_VERSION`), `faas.instance` (`AWS_LAMBDA_LOG_STREAM_NAME`;
    /// Lambda hides it from extensions, see [`Resource::set_instance`]), `faas.max_memory`
    /// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in bytes), then every pair of
    /// `OTEL_RESOURCE_ATTRIBUTES` (overriding the detected values), and `service.name`:
    /// `OTEL_SERVICE_NAME`, else `service.name` of `OTEL_RESOURCE_ATTRIBUTES`, else the
    /// function name, else `unknown_service`. Malformed pairs are skipped (the config
    /// reports them).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Resource {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut r = Resource::default();
        r.set_str("cloud.provider", "aws");
        r.set_str("cloud.platform", "aws_lambda");
        if let Some(region) = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")) {
            r.set_str("cloud.region", &region);
        }
        let function = get("AWS_LAMBDA_FUNCTION_NAME");
        if let Some(f) = &function {
            r.set_str("faas.name", f);
        }
        if let Some(v) = get("AWS_LAMBDA_FUNCTION_VERSION") {
            r.set_str("faas.version", &v);
        }
        if let Some(s) = get("AWS_LAMBDA_LOG_STREAM_NAME") {
            r.set_str("faas.instance", &s);
        }
        if let Some(mb) = get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|m| m.trim().parse::<i64>().ok()) {
            r.set("faas.max_memory", int(mb.saturating_mul(1024 * 1024)));
        }
        let mut service = function.unwrap_or_else(|| "unknown_service".to_owned());
        if let Some(attrs) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for (k, v) in parse_key_values(&attrs).0 {
                if k == "service.name" {
                    service = v;
                } else {
                    r.set_str(&k, &v);
                }
            }
        }
        if let Some(name) = get("OTEL_SERVICE_NAME") {
            service = name;
        }
        r.set_str("service.name", &service);
        r
    }

    /// Sets (or replaces) a string attribute.
    pub fn set_str(&mut self, key: &str, value: &str) {
        self.set(key, string(value));
    }

    /// Sets (or replaces) an attribute.
    pub fn set(&mut self, key: &str, value: AnyValue) {
        match self.attributes.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => kv.value = Some(value),
            None => self.attributes.push(KeyValue { key: key.to_owned(), value: Some(value), key_strindex: 0 }),
        }
    }

    /// Sets `faas.instance` (e.g. from `platform.initStart`'s `instanceId`), unless the
    /// environment already named one.
    pub fn set_instance(&mut self, instance: &str) {
        if self.get_str("faas.instance").is_none() {
            self.set_str("faas.instance", instance);
        }
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|kv| kv.key == key).and_then(|kv| match &kv.value {
            Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }) => Some(s.as_str()),
            _ => None,
        })
    }

    pub fn attributes(&self) -> &[KeyValue] {
        &self.attributes
    }

    /// The name invocation spans carry: `faas.name`, else `service.name`.
    pub fn function_name(&self) -> &str {
        self.get_str("faas.name").or_else(|| self.get_str("service.name")).unwrap_or("unknown_service")
    }

    fn to_proto(&self) -> OtlpResource {
        OtlpResource { attributes: self.attributes.clone(), dropped_attributes_count: 0, entity_refs: Vec::new() }
    }
}

/// Parses the `key=value,key2=value2` lists of `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_EXPORTER_OTLP_HEADERS` (W3C Baggage-like): entries split on `,`, key and value
/// trimmed and percent-decoded. Returns the pairs and one line per malformed entry (the
/// entry's value is never quoted in it: it may be a secret).
pub fn parse_key_values(s: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut pairs = Vec::new();
    let mut problems = Vec::new();
    for (i, entry) in s.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        match entry.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => pairs.push((percent_decode(k.trim()), percent_decode(v.trim()))),
            Some(_) => problems.push(format!("entry {} has an empty key; skipped", i + 1)),
            None => problems.push(format!("entry {} is not key=value; skipped", i + 1)),
        }
    }
    (pairs, problems)
}

/// Decodes `%XX` escapes; invalid escapes are kept verbatim, invalid UTF-8 replaced.
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------

/// The OTel trace id of an X-Ray trace id: `1-5759e988-bd862e3fe1be46a994272793` →
/// the 16 bytes of `5759e988bd862e3fe1be46a994272793`. `None` for anything else.
pub fn xray_to_trace_id(xray: &str) -> Option<[u8; 16]> {
    let mut parts = xray.trim().split('-');
    let (version, epoch, unique) = (parts.next()?, parts.next()?, parts.next()?);
    if version != "1" || epoch.len() != 8 || unique.len() != 24 || parts.next().is_some() {
        return None;
    }
    let mut hex = [0u8; 32];
    hex[..8].copy_from_slice(epoch.as_bytes());
    hex[8..].copy_from_slice(unique.as_bytes());
    let id = decode_hex::<16>(&hex)?;
    (id != [0; 16]).then_some(id)
}

/// The trace id of an invocation: its X-Ray trace when there is one, else derived from
/// the request id (the UUID's own 16 bytes when it is a UUID, else a hash).
pub fn trace_id_for(request_id: &str, xray: Option<&str>) -> [u8; 16] {
    if let Some(id) = xray.and_then(xray_to_trace_id) {
        return id;
    }
    let hex: Vec<u8> = request_id.bytes().filter(|&c| c != b'-').collect();
    if request_id.len() == 36 && hex.len() == 32 {
        if let Some(id) = decode_hex::<16>(&hex) {
            if id != [0; 16] {
                return id;
            }
        }
    }
    let a = fnv1a(request_id.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let b = fnv1a(request_id.as_bytes(), 0x6c62_272e_07bb_0142);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&a.to_be_bytes());
    id[8..].copy_from_slice(&b.to_be_bytes());
    if id == [0; 16] {
        id[15] = 1;
    }
    id
}

/// The span id of an invocation's span (`part` = `"invocation"`) or of one of its child
/// spans (`"init"`, `"runtime"`, `"extension_overhead"`): a hash of both, never zero.
pub fn span_id_for(request_id: &str, part: &str) -> [u8; 8] {
    let mut h = fnv1a(request_id.as_bytes(), 0xcbf2_9ce4_8422_2325);
    h = fnv1a(&[0], h);
    h = fnv1a(part.as_bytes(), h);
    if h == 0 {
        h = 1;
    }
    h.to_be_bytes()
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Final avalanche (from SplitMix64) so that similar ids do not share prefixes.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn decode_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = hex_val(pair[0])? << 4 | hex_val(pair[1])?;
    }
    Some(out)
}

fn span_id_hex(s: &str) -> Option<[u8; 8]> {
    decode_hex::<8>(s.trim().as_bytes()).filter(|id| *id != [0; 8])
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

fn string(s: &str) -> AnyValue {
    AnyValue { value: Some(any_value::Value::StringValue(s.to_owned())) }
}

fn int(i: i64) -> AnyValue {
    AnyValue { value: Some(any_value::Value::IntValue(i)) }
}

fn double(f: f64) -> AnyValue {
    AnyValue { value: Some(any_value::Value::DoubleValue(f)) }
}

fn boolean(b: bool) -> AnyValue {
    AnyValue { value: Some(any_value::Value::BoolValue(b)) }
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(value), key_strindex: 0 }
}

/// A JSON value as an OTLP `AnyValue` (null becomes the empty value).
pub fn any_value(v: &Value) -> AnyValue {
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(any_value::Value::BoolValue(*b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        }),
        Value::String(s) => Some(any_value::Value::StringValue(s.clone())),
        Value::Array(a) => Some(any_value::Value::ArrayValue(ArrayValue { values: a.iter().map(any_value).collect() })),
        Value::Object(m) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: m.iter().map(|(k, v)| kv(k, any_value(v))).collect(),
        })),
    };
    AnyValue { value }
}

/// The resource as its protobuf message.
pub(crate) fn resource_proto(r: &Resource) -> OtlpResource {
    r.to_proto()
}

/// The instrumentation scope every export carries.
pub(crate) fn scope_proto() -> InstrumentationScope {
    scope()
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

fn ms_to_ns(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

fn dur_ns(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * 1_000_000.0).round() as u64
    } else {
        0
    }
}

// ---------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------

/// Attribute naming the log's writer: `function` or `extension`.
pub const LOG_SOURCE_ATTRIBUTE: &str = "aws.lambda.log.source";

/// One OTLP log record: severity number and text, string body, event and observed times,
/// attributes `faas.invocation_id` (request id), [`LOG_SOURCE_ATTRIBUTE`] and the record's
/// own attributes; trace id (X-Ray's, else derived from the request id) and span id (the
/// invocation span's, see [`span_id_for`]) when the request id is known.
pub fn log_record(rec: &LogRecord) -> OtlpLog {
    let mut attributes = Vec::with_capacity(rec.attributes.len() + 2);
    if let Some(id) = &rec.request_id {
        attributes.push(kv("faas.invocation_id", string(id)));
    }
    attributes.push(kv(LOG_SOURCE_ATTRIBUTE, string(rec.source.as_str())));
    for (k, v) in &rec.attributes {
        attributes.push(kv(k, any_value(v)));
    }
    let (trace_id, span_id) = match &rec.request_id {
        Some(id) => (trace_id_for(id, rec.trace_id.as_deref()).to_vec(), span_id_for(id, "invocation").to_vec()),
        None => (Vec::new(), Vec::new()),
    };
    let level: Level = rec.level;
    OtlpLog {
        time_unix_nano: ms_to_ns(rec.time_ms),
        observed_time_unix_nano: ms_to_ns(rec.observed_ms),
        severity_number: level.severity_number(),
        severity_text: level.severity_text().to_owned(),
        body: Some(string(&rec.message)),
        attributes,
        dropped_attributes_count: 0,
        flags: 0,
        trace_id,
        span_id,
        event_name: String::new(),
    }
}

/// An export request holding `records` under `resource`.
pub fn logs_request<'a>(
    resource: &Resource,
    records: impl IntoIterator<Item = &'a LogRecord>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.to_proto()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records.into_iter().map(log_record).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Traces
// ---------------------------------------------------------------------------------------

const SPAN_FLAG_SAMPLED: u32 = 0x01;
const SPAN_FLAG_HAS_IS_REMOTE: u32 = 0x100;
const SPAN_FLAG_IS_REMOTE: u32 = 0x200;

/// The spans of one invocation: a SERVER span named after the function (status ERROR
/// with the error type as message when the invocation failed), and children `init` (or
/// `restore`, cold starts), `runtime` (the function's execution) and
/// `extension_overhead` (post-runtime extension time, when non-zero). Its parent is
/// Lambda's invocation span (`tracing.spanId`) or the X-Ray `Parent`, when traced.
pub fn invocation_spans(inv: &Invocation, function_name: &str) -> Vec<Span> {
    let id = inv.request_id.as_str();
    let trace_id = trace_id_for(id, inv.trace_id.as_deref()).to_vec();
    let root_id = span_id_for(id, "invocation");
    let parent =
        inv.span_id.as_deref().and_then(span_id_hex).or_else(|| inv.parent_id.as_deref().and_then(span_id_hex));
    let sampled = if inv.sampled == Some(false) { 0 } else { SPAN_FLAG_SAMPLED };
    let start = ms_to_ns(inv.start_ms);
    let end = start + dur_ns(inv.duration_ms);
    let error_status = |failed: bool, message: &str| {
        failed.then(|| Status { message: message.to_owned(), code: status::StatusCode::Error as i32 })
    };

    let mut attributes = vec![
        kv("faas.invocation_id", string(id)),
        kv("faas.coldstart", boolean(inv.cold_start)),
        kv("aws.lambda.status", string(&inv.status)),
        kv("aws.lambda.billed_duration_ms", int(i64::try_from(inv.billed_duration_ms).unwrap_or(i64::MAX))),
        kv("aws.lambda.memory_size_mb", int(i64::try_from(inv.memory_size_mb).unwrap_or(i64::MAX))),
        kv("aws.lambda.estimated_cost_usd", double(inv.estimated_cost_usd)),
    ];
    if inv.complete {
        attributes
            .push(kv("aws.lambda.max_memory_used_mb", int(i64::try_from(inv.max_memory_used_mb).unwrap_or(i64::MAX))));
    } else {
        attributes.push(kv("aws.lambda.complete", boolean(false)));
    }
    if inv.out_of_memory {
        attributes.push(kv("aws.lambda.out_of_memory", boolean(true)));
    }
    if let Some(t) = &inv.error_type {
        attributes.push(kv("error.type", string(t)));
    }
    let failure_message = inv.error_type.as_deref().unwrap_or(&inv.status);
    let child = |part: &str, start: u64, end: u64, attributes: Vec<KeyValue>, status: Option<Status>| Span {
        trace_id: trace_id.clone(),
        span_id: span_id_for(id, part).to_vec(),
        trace_state: String::new(),
        parent_span_id: root_id.to_vec(),
        flags: sampled | SPAN_FLAG_HAS_IS_REMOTE,
        name: part.to_owned(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end.max(start),
        attributes,
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status,
    };

    let mut spans = Vec::with_capacity(4);
    spans.push(Span {
        trace_id: trace_id.clone(),
        span_id: root_id.to_vec(),
        trace_state: String::new(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        flags: sampled | SPAN_FLAG_HAS_IS_REMOTE | if parent.is_some() { SPAN_FLAG_IS_REMOTE } else { 0 },
        name: function_name.to_owned(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: error_status(inv.is_error(), failure_message),
    });

    if inv.cold_start {
        if let Some(init) = &inv.init {
            let duration = init.duration_ms.or(inv.init_duration_ms).or(inv.restore_duration_ms);
            if let (Some(s), Some(d)) = (init.start_ms, duration) {
                let s = ms_to_ns(s);
                let mut attrs = Vec::new();
                if let Some(t) = &init.initialization_type {
                    attrs.push(kv("aws.lambda.initialization_type", string(t)));
                }
                if let Some(p) = &init.phase {
                    attrs.push(kv("aws.lambda.init_phase", string(p)));
                }
                let failed = init.status.as_deref().is_some_and(|st| st != "success");
                let msg = init.error_type.as_deref().or(init.status.as_deref()).unwrap_or("");
                let name = if init.restore { "restore" } else { "init" };
                spans.push(child(name, s, s + dur_ns(d), attrs, error_status(failed, msg)));
            }
        }
    }

    let post = inv.post_runtime_extension_ms.unwrap_or(0.0);
    let runtime_ms = inv.runtime_duration_ms.unwrap_or_else(|| (inv.duration_ms - post).max(0.0));
    let runtime_end = start + dur_ns(runtime_ms);
    let mut attrs = Vec::new();
    if let Some(b) = inv.produced_bytes {
        attrs.push(kv("aws.lambda.produced_bytes", int(i64::try_from(b).unwrap_or(i64::MAX))));
    }
    if let Some(l) = inv.response_latency_ms {
        attrs.push(kv("aws.lambda.response_latency_ms", double(l)));
    }
    spans.push(child("runtime", start, runtime_end, attrs, error_status(inv.is_error(), failure_message)));
    if post > 0.0 {
        spans.push(child("extension_overhead", runtime_end, runtime_end + dur_ns(post), Vec::new(), None));
    }
    spans
}

/// An export request with the spans of `invocations`, named after the resource's
/// function.
pub fn traces_request<'a>(
    resource: &Resource,
    invocations: impl IntoIterator<Item = &'a Invocation>,
) -> ExportTraceServiceRequest {
    let name = resource.function_name();
    let spans: Vec<Span> = invocations.into_iter().flat_map(|i| invocation_spans(i, name)).collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.to_proto()),
            scope_spans: vec![ScopeSpans { scope: Some(scope()), spans, schema_url: String::new() }],
            schema_url: String::new(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InitInfo, Source};
    use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
    use prost::Message;
    use serde_json::json;
    use std::collections::HashMap;

    const RID: &str = "8f507cfc-3b2a-4c8a-9e39-7f2b2a1c6d11";
    const XRAY: &str = "1-5759e988-bd862e3fe1be46a994272793";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn lambda_env() -> Resource {
        Resource::from_env(env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_LAMBDA_FUNCTION_NAME", "checkout"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ]))
    }

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn log(level: Level, request_id: Option<&str>, trace: Option<&str>) -> LogRecord {
        LogRecord {
            time_ms: 1_704_067_200_123,
            observed_ms: 1_704_067_200_200,
            source: Source::Function,
            level,
            request_id: request_id.map(str::to_owned),
            message: "payment failed".into(),
            attributes: json!({"orderId": 42, "tags": ["a"], "ctx": {"k": "v"}, "ratio": 0.5, "none": null})
                .as_object()
                .cloned()
                .unwrap(),
            trace_id: trace.map(str::to_owned),
        }
    }

    fn invocation(cold: bool, status: &str) -> Invocation {
        Invocation {
            request_id: RID.into(),
            start_ms: 1_704_067_200_000,
            duration_ms: 100.25,
            billed_duration_ms: 101,
            init_duration_ms: cold.then_some(150.5),
            cold_start: cold,
            runtime_duration_ms: Some(95.5),
            post_runtime_extension_ms: Some(4.75),
            produced_bytes: Some(42),
            max_memory_used_mb: 60,
            memory_size_mb: 128,
            status: status.into(),
            error_type: (status != "success").then(|| "Handler.Error".to_owned()),
            estimated_cost_usd: 0.000_000_41,
            trace_id: Some(XRAY.into()),
            span_id: Some("54565fb41ac79632".into()),
            parent_id: Some("53995c3f42cd8ad8".into()),
            sampled: Some(true),
            init: cold.then(|| InitInfo {
                start_ms: Some(1_704_067_199_800),
                duration_ms: Some(150.5),
                initialization_type: Some("on-demand".into()),
                phase: Some("init".into()),
                status: Some("success".into()),
                ..InitInfo::default()
            }),
            complete: true,
            ..Invocation::default()
        }
    }

    #[test]
    fn resource_follows_faas_and_cloud_semconv() {
        let r = lambda_env();
        assert_eq!(r.get_str("cloud.provider"), Some("aws"));
        assert_eq!(r.get_str("cloud.platform"), Some("aws_lambda"));
        assert_eq!(r.get_str("cloud.region"), Some("eu-west-1"));
        assert_eq!(r.get_str("faas.name"), Some("checkout"));
        assert_eq!(r.get_str("faas.version"), Some("$LATEST"));
        assert_eq!(r.get_str("service.name"), Some("checkout"));
        assert_eq!(attr(r.attributes(), "faas.max_memory"), Some(&any_value::Value::IntValue(134_217_728)));
        assert_eq!(r.get_str("faas.instance"), None);
        let mut r2 = r.clone();
        r2.set_instance("2024/01/01/[$LATEST]abc");
        assert_eq!(r2.get_str("faas.instance"), Some("2024/01/01/[$LATEST]abc"));
        assert_eq!(r.function_name(), "checkout");
    }

    #[test]
    fn resource_env_overrides() {
        let r = Resource::from_env(env(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,team=pay%2Cments, service.name=from-attrs ,broken,cloud.region=moon-1",
            ),
        ]));
        assert_eq!(r.get_str("deployment.environment"), Some("prod"));
        assert_eq!(r.get_str("team"), Some("pay,ments"));
        assert_eq!(r.get_str("service.name"), Some("from-attrs"));
        assert_eq!(r.get_str("cloud.region"), Some("moon-1"));
        let r = Resource::from_env(env(&[
            ("OTEL_SERVICE_NAME", "svc"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored"),
        ]));
        assert_eq!(r.get_str("service.name"), Some("svc"));
        assert_eq!(r.function_name(), "svc");
        let r = Resource::from_env(env(&[]));
        assert_eq!(r.get_str("service.name"), Some("unknown_service"));
    }

    #[test]
    fn key_value_lists_and_percent_decoding() {
        let (pairs, problems) = parse_key_values("a=1, b = x%20y ,=nokey,novalue,c=%zz%4,d=e=f,,");
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "%zz%4".into()),
                ("d".into(), "e=f".into())
            ]
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("empty key"));
        assert_eq!(problems[1], "entry 4 is not key=value; skipped");
        assert_eq!(percent_decode("%E2%9C%93"), "✓");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn trace_ids() {
        let id = xray_to_trace_id(XRAY).unwrap();
        assert_eq!(id, *b"\x57\x59\xe9\x88\xbd\x86\x2e\x3f\xe1\xbe\x46\xa9\x94\x27\x27\x93");
        assert_eq!(xray_to_trace_id("2-5759e988-bd862e3fe1be46a994272793"), None);
        assert_eq!(xray_to_trace_id("1-5759e988-bd862e3fe1be46a99427279"), None);
        assert_eq!(xray_to_trace_id("1-5759e98g-bd862e3fe1be46a994272793"), None);
        assert_eq!(xray_to_trace_id("1-00000000-000000000000000000000000"), None);
        assert_eq!(trace_id_for(RID, Some(XRAY)), id);
        // A UUID request id is its own trace id; anything else hashes, deterministically.
        assert_eq!(trace_id_for(RID, None), *b"\x8f\x50\x7c\xfc\x3b\x2a\x4c\x8a\x9e\x39\x7f\x2b\x2a\x1c\x6d\x11");
        assert_eq!(trace_id_for(RID, Some("garbage")), trace_id_for(RID, None));
        assert_eq!(trace_id_for("r-1", None), trace_id_for("r-1", None));
        assert_ne!(trace_id_for("r-1", None), trace_id_for("r-2", None));
        assert_ne!(trace_id_for("r-1", None), [0; 16]);
        assert_eq!(span_id_for(RID, "invocation"), span_id_for(RID, "invocation"));
        assert_ne!(span_id_for(RID, "invocation"), span_id_for(RID, "runtime"));
        assert_ne!(span_id_for(RID, "invocation"), span_id_for("other", "invocation"));
    }

    #[test]
    fn logs_protobuf_decodes_to_what_was_meant() {
        let records = [log(Level::Error, Some(RID), Some(XRAY)), log(Level::Unknown, None, None)];
        let body = encode_protobuf(&logs_request(&lambda_env(), &records));
        let req = ExportLogsServiceRequest::decode(body.as_slice()).unwrap();
        let rl = &req.resource_logs[0];
        let res = rl.resource.as_ref().unwrap();
        assert_eq!(attr(&res.attributes, "faas.name"), Some(&s("checkout")));
        let sl = &rl.scope_logs[0];
        assert_eq!(sl.scope.as_ref().unwrap().name, "tandem");
        assert_eq!(sl.log_records.len(), 2);
        let r = &sl.log_records[0];
        assert_eq!(r.time_unix_nano, 1_704_067_200_123_000_000);
        assert_eq!(r.observed_time_unix_nano, 1_704_067_200_200_000_000);
        assert_eq!(r.severity_number, SeverityNumber::Error as i32);
        assert_eq!(r.severity_text, "ERROR");
        assert_eq!(r.body.as_ref().unwrap().value, Some(s("payment failed")));
        assert_eq!(attr(&r.attributes, "faas.invocation_id"), Some(&s(RID)));
        assert_eq!(attr(&r.attributes, LOG_SOURCE_ATTRIBUTE), Some(&s("function")));
        assert_eq!(attr(&r.attributes, "orderId"), Some(&any_value::Value::IntValue(42)));
        assert_eq!(attr(&r.attributes, "ratio"), Some(&any_value::Value::DoubleValue(0.5)));
        assert!(matches!(attr(&r.attributes, "tags"), Some(any_value::Value::ArrayValue(a)) if a.values.len() == 1));
        assert!(matches!(attr(&r.attributes, "ctx"), Some(any_value::Value::KvlistValue(l)) if l.values[0].key == "k"));
        assert_eq!(r.trace_id, xray_to_trace_id(XRAY).unwrap().to_vec());
        assert_eq!(r.span_id, span_id_for(RID, "invocation").to_vec());
        let u = &sl.log_records[1];
        assert_eq!((u.severity_number, u.severity_text.as_str()), (0, ""));
        assert!(u.trace_id.is_empty() && u.span_id.is_empty());
        assert!(attr(&u.attributes, "faas.invocation_id").is_none());
    }

    #[test]
    fn logs_and_spans_of_one_invocation_share_ids() {
        let inv = invocation(false, "success");
        let spans = invocation_spans(&inv, "checkout");
        let otlp = log_record(&log(Level::Info, Some(RID), Some(XRAY)));
        assert_eq!(otlp.trace_id, spans[0].trace_id);
        assert_eq!(otlp.span_id, spans[0].span_id);
        // Without X-Ray both sides derive the same ids from the request id.
        let untraced = Invocation { trace_id: None, span_id: None, parent_id: None, ..inv };
        let spans = invocation_spans(&untraced, "checkout");
        let otlp = log_record(&log(Level::Info, Some(RID), None));
        assert_eq!(otlp.trace_id, spans[0].trace_id);
        assert_eq!(otlp.span_id, spans[0].span_id);
        assert!(spans[0].parent_span_id.is_empty());
        assert_eq!(spans[0].flags, SPAN_FLAG_SAMPLED | SPAN_FLAG_HAS_IS_REMOTE);
    }

    #[test]
    fn cold_start_span_tree() {
        let inv = invocation(true, "error");
        let body = encode_protobuf(&traces_request(&lambda_env(), [&inv]));
        let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["checkout", "init", "runtime", "extension_overhead"]);
        let root = &spans[0];
        assert_eq!(root.kind, span::SpanKind::Server as i32);
        assert_eq!(root.trace_id, xray_to_trace_id(XRAY).unwrap().to_vec());
        assert_eq!(root.parent_span_id, vec![0x54, 0x56, 0x5f, 0xb4, 0x1a, 0xc7, 0x96, 0x32]);
        assert_eq!(root.flags, SPAN_FLAG_SAMPLED | SPAN_FLAG_HAS_IS_REMOTE | SPAN_FLAG_IS_REMOTE);
        assert_eq!(root.start_time_unix_nano, 1_704_067_200_000_000_000);
        assert_eq!(root.end_time_unix_nano, 1_704_067_200_100_250_000);
        let st = root.status.as_ref().unwrap();
        assert_eq!((st.code, st.message.as_str()), (status::StatusCode::Error as i32, "Handler.Error"));
        assert_eq!(attr(&root.attributes, "faas.invocation_id"), Some(&s(RID)));
        assert_eq!(attr(&root.attributes, "faas.coldstart"), Some(&any_value::Value::BoolValue(true)));
        assert_eq!(attr(&root.attributes, "error.type"), Some(&s("Handler.Error")));
        for child in &spans[1..] {
            assert_eq!(child.parent_span_id, root.span_id);
            assert_eq!(child.trace_id, root.trace_id);
            assert_eq!(child.kind, span::SpanKind::Internal as i32);
            assert_ne!(child.span_id, root.span_id);
        }
        let init = &spans[1];
        assert_eq!(init.start_time_unix_nano, 1_704_067_199_800_000_000);
        assert_eq!(init.end_time_unix_nano, 1_704_067_199_950_500_000);
        assert!(init.status.is_none());
        let runtime = &spans[2];
        assert_eq!(runtime.end_time_unix_nano - runtime.start_time_unix_nano, 95_500_000);
        assert_eq!(attr(&runtime.attributes, "aws.lambda.produced_bytes"), Some(&any_value::Value::IntValue(42)));
        let ext = &spans[3];
        assert_eq!(ext.start_time_unix_nano, runtime.end_time_unix_nano);
        assert_eq!(ext.end_time_unix_nano - ext.start_time_unix_nano, 4_750_000);
        // A warm success has no init span and no error status.
        let warm = invocation_spans(&invocation(false, "success"), "checkout");
        assert_eq!(
            warm.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["checkout", "runtime", "extension_overhead"]
        );
        assert!(warm[0].status.is_none());
    }

    fn metric<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> Option<&'a Metric> {
        req.resource_metrics[0].scope_metrics[0].metrics.iter().find(|m| m.name == name)
    }

    fn sum_points(m: &Metric) -> Vec<(Vec<KeyValue>, number_data_point::Value)> {
        match &m.data {
            Some(metric::Data::Sum(s)) => {
                assert_eq!(s.aggregation_temporality, AggregationTemporality::Delta as i32);
                assert!(s.is_monotonic);
                s.data_points.iter().map(|p| (p.attributes.clone(), p.value.unwrap())).collect()
            }
            other => panic!("{} is not a sum: {other:?}", m.name),
        }
    }

    fn hist(m: &Metric) -> &HistogramDataPoint {
        match &m.data {
            Some(metric::Data::Histogram(h)) => {
                assert_eq!(h.aggregation_temporality, AggregationTemporality::Delta as i32);
                &h.data_points[0]
            }
            other => panic!("{} is not a histogram: {other:?}", m.name),
        }
    }

    #[test]
    fn metrics_aggregate_a_batch_with_delta_temporality() {
        let mut second = invocation(false, "timeout");
        second.request_id = "r-2".into();
        second.error_type = Some("Sandbox.Timedout".into());
        second.start_ms += 10_000;
        second.duration_ms = 3000.0;
        second.runtime_duration_ms = None;
        let mut third = invocation(false, "error");
        third.request_id = "r-3".into();
        third.complete = false;
        third.out_of_memory = true;
        let invs = [invocation(true, "success"), second, third];
        let body = encode_protobuf(&metrics_request(&lambda_env(), &invs));
        let req = ExportMetricsServiceRequest::decode(body.as_slice()).unwrap();
        let int = |v: i64| number_data_point::Value::AsInt(v);
        assert_eq!(sum_points(metric(&req, "faas.invocations").unwrap())[0].1, int(3));
        assert_eq!(sum_points(metric(&req, "faas.coldstarts").unwrap())[0].1, int(1));
        assert_eq!(sum_points(metric(&req, "faas.timeouts").unwrap())[0].1, int(1));
        assert_eq!(sum_points(metric(&req, "aws.lambda.out_of_memory").unwrap())[0].1, int(1));
        let errors = sum_points(metric(&req, "faas.errors").unwrap());
        assert_eq!(errors.len(), 2);
        assert_eq!(attr(&errors[0].0, "error.type"), Some(&s("Handler.Error")));
        assert_eq!(errors[0].1, int(1));
        assert_eq!(attr(&errors[1].0, "error.type"), Some(&s("Sandbox.Timedout")));
        let cost = sum_points(metric(&req, "aws.lambda.estimated_cost").unwrap());
        match cost[0].1 {
            number_data_point::Value::AsDouble(c) => {
                assert!((c - 3.0 * 0.000_000_41).abs() < 1e-15)
            }
            other => panic!("{other:?}"),
        }

        let m = metric(&req, "faas.invoke_duration").unwrap();
        assert_eq!(m.unit, "s");
        let p = hist(m);
        assert_eq!(p.count, 3);
        assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), 3);
        // 0.0955 s twice (runtime duration) in (0.075, 0.1], 3 s once in (2.5, 5].
        assert_eq!(p.bucket_counts[5], 2);
        assert_eq!(p.bucket_counts[11], 1);
        assert_eq!((p.min, p.max), (Some(0.0955), Some(3.0)));
        assert!((p.sum.unwrap() - 3.191).abs() < 1e-9);
        assert_eq!(p.start_time_unix_nano, 1_704_067_200_000_000_000);
        assert_eq!(p.time_unix_nano, 1_704_067_213_000_000_000);

        let init = hist(metric(&req, "faas.init_duration").unwrap());
        assert_eq!((init.count, init.sum), (1, Some(0.1505)));
        let mem = hist(metric(&req, "faas.mem_usage").unwrap());
        assert_eq!(mem.count, 2, "the partial invocation has no memory report");
        assert_eq!(metric(&req, "faas.mem_usage").unwrap().unit, "By");
        assert_eq!(mem.bucket_counts[0], 2, "60 MiB ≤ 64 MiB");
        assert!((hist(metric(&req, "aws.lambda.billed_duration").unwrap()).sum.unwrap() - 0.303).abs() < 1e-12);

        // No invocations, no metrics; warm-only batches have no init histogram.
        assert!(metrics_request(&lambda_env(), []).resource_metrics.is_empty());
        let warm = metrics_request(&lambda_env(), [&invocation(false, "success")]);
        assert!(metric(&warm, "faas.init_duration").is_none());
        assert_eq!(sum_points(metric(&warm, "faas.errors").unwrap())[0].1, int(0));
    }

    #[test]
    fn otlp_json_is_camel_case_with_hex_ids_and_round_trips() {
        let resource = lambda_env();
        let inv = invocation(true, "error");
        let traces = traces_request(&resource, [&inv]);
        let body = encode_json(&traces);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "5759e988bd862e3fe1be46a994272793");
        assert_eq!(span["parentSpanId"], "54565fb41ac79632");
        assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
        assert_eq!(span["kind"], 2, "enums are numbers");
        assert_eq!(span["startTimeUnixNano"], "1704067200000000000", "64-bit integers are strings");
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"], "aws");
        let back: ExportTraceServiceRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, traces);

        let logs = logs_request(&resource, [&log(Level::Warn, Some(RID), Some(XRAY))]);
        let body = encode_json(&logs);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let rec = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(rec["traceId"], "5759e988bd862e3fe1be46a994272793");
        assert_eq!(rec["severityNumber"], 13);
        assert_eq!(rec["severityText"], "WARN");
        assert_eq!(rec["body"]["stringValue"], "payment failed");
        assert_eq!(rec["timeUnixNano"], "1704067200123000000");
        let back: ExportLogsServiceRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, logs);

        let metrics = metrics_request(&resource, [&inv]);
        let body = Protocol::HttpJson.encode(&metrics);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let first = &v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0];
        assert_eq!(first["name"], "faas.invocations");
        assert_eq!(first["sum"]["aggregationTemporality"], 1);
        assert_eq!(first["sum"]["dataPoints"][0]["asInt"], "1");
        let back: ExportMetricsServiceRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, metrics);
        assert_eq!(Protocol::HttpProtobuf.encode(&metrics), encode_protobuf(&metrics));
    }

    #[test]
    fn protocol_and_signal_names() {
        assert_eq!(Protocol::default(), Protocol::HttpProtobuf);
        assert_eq!(Protocol::HttpProtobuf.content_type(), "application/x-protobuf");
        assert_eq!(Protocol::HttpJson.as_str(), "http/json");
        assert_eq!(Signal::Traces.path(), "/v1/traces");
    }
}
