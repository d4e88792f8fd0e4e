//! The pipeline's records: what intake produces, the buffer holds, the spool writes to
//! disk (one JSON line per [`Item`]) and the encoders turn into request bodies.
//!
//! Owns the shape of [`LogRecord`], [`Invocation`], [`HealthSnapshot`] and [`Received`]
//! and their serde form (camelCase, `{"type":"log"|"invocation"|"health"|"otlp", ...}`),
//! which is also the spool's on-disk format: change it only compatibly (add optional
//! fields).
//!
//! Never does I/O and never parses telemetry: `logs` and `invocation` build these
//! records, `encode` renders them.

use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Severity of a log record, normalised across runtimes and logging libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// TRACE.
    Trace,
    /// DEBUG.
    Debug,
    /// INFO.
    Info,
    /// WARN.
    Warn,
    /// ERROR.
    Error,
    /// FATAL.
    Fatal,
    /// No level could be read from the record.
    Unknown,
}

impl Level {
    /// Canonical upper-case name (`"UNKNOWN"` for [`Level::Unknown`]).
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
            Level::Unknown => "UNKNOWN",
        }
    }

    /// OTLP `SeverityNumber` (the first of each range: TRACE=1, DEBUG=5, INFO=9, WARN=13,
    /// ERROR=17, FATAL=21; UNSPECIFIED=0 for [`Level::Unknown`]).
    pub const fn severity_number(self) -> i32 {
        match self {
            Level::Trace => 1,
            Level::Debug => 5,
            Level::Info => 9,
            Level::Warn => 13,
            Level::Error => 17,
            Level::Fatal => 21,
            Level::Unknown => 0,
        }
    }

    /// OTLP `severity_text`: the canonical name, empty when unknown.
    pub const fn severity_text(self) -> &'static str {
        match self {
            Level::Unknown => "",
            other => other.as_str(),
        }
    }

    /// Reads a level name in any case, with the aliases runtimes and logging libraries
    /// use: `WARNING`, `CRITICAL`/`CRIT`/`PANIC`/`EMERG`/`ALERT` (fatal), `ERR`/`FAIL`,
    /// `NOTICE`/`INFORMATION` (info), .NET's `dbug`/`trce`/`crit`. Allocation-free.
    pub fn parse(s: &str) -> Option<Level> {
        const TABLE: &[(&str, Level)] = &[
            ("INFO", Level::Info),
            ("ERROR", Level::Error),
            ("WARN", Level::Warn),
            ("DEBUG", Level::Debug),
            ("WARNING", Level::Warn),
            ("TRACE", Level::Trace),
            ("FATAL", Level::Fatal),
            ("CRITICAL", Level::Fatal),
            ("ERR", Level::Error),
            ("FAIL", Level::Error),
            ("CRIT", Level::Fatal),
            ("PANIC", Level::Fatal),
            ("EMERG", Level::Fatal),
            ("EMERGENCY", Level::Fatal),
            ("ALERT", Level::Fatal),
            ("NOTICE", Level::Info),
            ("INFORMATION", Level::Info),
            ("DBUG", Level::Debug),
            ("TRCE", Level::Trace),
            ("VERBOSE", Level::Trace),
        ];
        if s.is_empty() || s.len() > 11 {
            return None;
        }
        TABLE.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)).map(|&(_, l)| l)
    }

    /// Maps the numeric levels of pino/bunyan (10 trace … 60 fatal).
    pub fn from_number(n: i64) -> Option<Level> {
        Some(match n {
            10 => Level::Trace,
            20 => Level::Debug,
            30 => Level::Info,
            40 => Level::Warn,
            50 => Level::Error,
            60 => Level::Fatal,
            _ => return None,
        })
    }
}

/// Who wrote a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The function (its runtime's stdout/stderr): telemetry type `function`.
    Function,
    /// An extension: telemetry type `extension`.
    Extension,
}

impl Source {
    /// `function` or `extension`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Function => "function",
            Source::Extension => "extension",
        }
    }
}

/// One log line, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    /// When the line was written (the line's own timestamp when it has one, else the
    /// telemetry event's time), ms since the epoch.
    pub time_ms: u64,
    /// When Lambda's telemetry recorded it (the event's `time`), ms since the epoch.
    pub observed_ms: u64,
    /// Who wrote it.
    pub source: Source,
    /// Its severity.
    pub level: Level,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The invocation it belongs to, when known.
    pub request_id: Option<String>,
    /// The line (for JSON lines, their message field).
    pub message: String,
    /// The fields of a JSON log line other than the ones mapped above.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
    /// X-Ray trace id (`1-5759e988-bd862e3fe1be46a994272793`) of the invocation the line
    /// belongs to, stamped by the correlator (`invocation::Correlator::annotate_log`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Init (or SnapStart restore) phase of the execution environment, attached to the
/// invocation that follows it (the cold start).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitInfo {
    /// `platform.initStart` (or `restoreStart`) time, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// `platform.initReport` `metrics.durationMs` (or the report's `initDurationMs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// `on-demand`, `provisioned-concurrency`, `snap-start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization_type: Option<String>,
    /// `init`, or `invoke` for a suppressed init retried during the first invoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `success`, `error`, `failure`, `timeout` (from initReport, else initRuntimeDone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The init's error type, when it failed.
    pub error_type: Option<String>,
    /// True for a SnapStart restore (`platform.restore*`) rather than an init.
    #[serde(default, skip_serializing_if = "is_false")]
    pub restore: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The runtime's version (`runtimeVersion`).
    pub runtime_version: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One invocation (one `requestId`), assembled from `platform.start`, `runtimeDone` and
/// `report` by the correlator (`invocation::Correlator`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    /// Lambda's `requestId`.
    pub request_id: String,
    /// `platform.start` `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `platform.start` time (estimated from the report when start was never seen).
    pub start_ms: u64,
    /// `platform.report` `durationMs` (for a partial invocation: the runtime duration).
    pub duration_ms: f64,
    /// `platform.report` `billedDurationMs`.
    pub billed_duration_ms: u64,
    /// Cold starts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_duration_ms: Option<f64>,
    /// SnapStart restores only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_duration_ms: Option<f64>,
    /// Whether this invocation paid for an init (or restore).
    pub cold_start: bool,
    /// runtimeDone span `responseLatency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_latency_ms: Option<f64>,
    /// runtimeDone span `responseDuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_duration_ms: Option<f64>,
    /// runtimeDone span `runtimeOverhead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_overhead_ms: Option<f64>,
    /// runtimeDone `metrics.producedBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced_bytes: Option<u64>,
    /// runtimeDone `metrics.durationMs`: the function's own execution time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_duration_ms: Option<f64>,
    /// report span `extensionOverhead`: time extensions kept the invoke open after the
    /// runtime finished (billed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_runtime_extension_ms: Option<f64>,
    #[serde(rename = "maxMemoryUsedMB")]
    /// `platform.report` `maxMemoryUsedMB`.
    pub max_memory_used_mb: u64,
    #[serde(rename = "memorySizeMB")]
    /// `platform.report` `memorySizeMB` (else the configured size).
    pub memory_size_mb: u64,
    /// `success`, `error`, `timeout`, `failure`, or `unknown` (partial, never reported).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The error type (runtimeDone or report `errorType`), when not a success.
    pub error_type: Option<String>,
    /// Whether it ran out of memory (report status, error type or an OOM log line).
    pub out_of_memory: bool,
    #[serde(rename = "estimatedCostUSD")]
    /// Estimated cost, USD (see `invocation::cost`).
    pub estimated_cost_usd: f64,
    /// X-Ray `Root=` value, e.g. `1-5759e988-bd862e3fe1be46a994272793`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The span id Lambda gave this invocation (`tracing.spanId`), 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// X-Ray `Parent=` value: the caller's segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// X-Ray `Sampled=` flag, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled: Option<bool>,
    /// The init phase, on the cold-start invocation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitInfo>,
    /// False when the invocation never got its `platform.report` (shutdown, crash, or
    /// evicted from the correlator's bounded table): its numbers are partial.
    pub complete: bool,
}

impl Invocation {
    /// `error`, `failure`, `timeout` or any unknown non-success status. A partial
    /// invocation's `unknown` status is not counted as an error.
    pub fn is_error(&self) -> bool {
        !matches!(self.status.as_str(), "success" | "unknown")
    }

    /// Whether the invocation timed out.
    pub fn is_timeout(&self) -> bool {
        self.status == "timeout"
    }

    /// The end of the invocation: start plus duration, ms since the epoch.
    pub fn end_ms(&self) -> u64 {
        self.start_ms.saturating_add(ms_ceil(self.duration_ms))
    }
}

pub(crate) fn ms_ceil(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        ms.ceil() as u64
    } else {
        0
    }
}

/// The extension's own counters, emitted periodically as an [`Item::Health`]. Filled by
/// the buffer, sinks and lifecycle; all counters are totals since start.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSnapshot {
    /// When the snapshot was taken, ms since the epoch.
    pub time_ms: u64,
    /// Records accepted from the Telemetry API (logs and invocations).
    pub records_in: u64,
    /// When the extension process started, ms since the epoch (the start of the
    /// counters: OTLP sends them as cumulative sums from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// Records a sink acknowledged (summed over the sinks).
    pub delivered: u64,
    /// Records acknowledged, by sink.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delivered_by_sink: BTreeMap<String, u64>,
    /// Send attempts repeated after a retryable failure.
    pub retried: u64,
    /// Records sent again after a request carrying them got no answer: the receiver
    /// may hold them twice (at-least-once; the `http` sink's `Idempotency-Key` lets it
    /// drop them).
    #[serde(default)]
    pub duplicates_sent: u64,
    /// Each sink's state, by sink.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sinks: BTreeMap<String, SinkHealth>,
    /// Records written to the disk spool only (beyond the memory bound).
    pub spooled: u64,
    /// Records held in memory without their write-ahead copy (the spool had no room or
    /// failed): a `kill -9` would lose them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_written_ahead: u64,
    /// Records dropped, by reason (`rule`, `buffer_full`, `spool_full`, `permanent_error`,
    /// `retries_exhausted`, `lambda_logs_dropped`, ...). Sorted for stable output.
    #[serde(default)]
    pub dropped: BTreeMap<String, u64>,
    /// Records waiting in memory and on disk now.
    pub buffered_records: u64,
    /// Their approximate size, bytes.
    pub buffered_bytes: u64,
    /// Bytes in the spools now.
    pub spool_bytes: u64,
    /// Flushes run.
    pub flushes: u64,
    /// Latency of the last flush, ms.
    pub flush_latency_ms_last: f64,
    /// Latency of the slowest flush, ms.
    pub flush_latency_ms_max: f64,
    /// Telemetry batches that failed to parse (whole or in part).
    pub parse_errors: u64,
}

/// One sink's state in a [`HealthSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkHealth {
    /// `ok`, or `failing` from its first failure until its next success.
    pub state: String,
    /// Since when it fails, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<u64>,
    /// Failed flushes in a row.
    pub failures: u64,
    /// Records waiting for it.
    pub pending: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl HealthSnapshot {
    /// Every record dropped, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().copied().fold(0, u64::saturating_add)
    }
}

/// What flows through the buffer and sinks. The rare large variants are boxed so that a
/// buffer of (mostly) log items stays small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Item {
    /// A log line.
    Log(LogRecord),
    /// An invocation.
    Invocation(Box<Invocation>),
    /// A health snapshot of the extension.
    Health(Box<HealthSnapshot>),
    /// OTLP data the function exported to the receiver.
    Otlp(Box<Received>),
}

/// One OTLP export request the receiver took in (one signal; the other two lists are
/// empty): the function's resources and scopes exactly as sent, plus only the
/// attributes the receiver adds (see `receiver::annotate`). Spooled in OTLP/JSON form
/// (`opentelemetry-proto`'s serde: hex ids, 64-bit integers as strings).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    /// When the receiver took it, ms since the epoch.
    pub time_ms: u64,
    /// The invocation running when it arrived, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Spans (`/v1/traces`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_spans: Vec<ResourceSpans>,
    /// Metrics (`/v1/metrics`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_metrics: Vec<ResourceMetrics>,
    /// Log records (`/v1/logs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_logs: Vec<ResourceLogs>,
}

impl Received {
    /// See [`Item::approx_size`]: the protobuf size, tripled for the JSON form (hex
    /// ids, quoted integers, field names, empty fields written out). Linear, no
    /// allocation.
    pub fn approx_size(&self) -> usize {
        let pb: usize = self.resource_spans.iter().map(Message::encoded_len).sum::<usize>()
            + self.resource_metrics.iter().map(Message::encoded_len).sum::<usize>()
            + self.resource_logs.iter().map(Message::encoded_len).sum::<usize>();
        160 + pb * 3 + self.request_id.as_ref().map_or(0, |r| r.len() + 16)
    }

    /// Whether it holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.resource_spans.is_empty() && self.resource_metrics.is_empty() && self.resource_logs.is_empty()
    }
}

impl From<LogRecord> for Item {
    fn from(l: LogRecord) -> Item {
        Item::Log(l)
    }
}

impl From<Invocation> for Item {
    fn from(i: Invocation) -> Item {
        Item::Invocation(Box::new(i))
    }
}

impl From<Received> for Item {
    fn from(r: Received) -> Item {
        Item::Otlp(Box::new(r))
    }
}

impl From<HealthSnapshot> for Item {
    fn from(h: HealthSnapshot) -> Item {
        Item::Health(Box::new(h))
    }
}

impl Item {
    /// A cheap estimate of the item's encoded size in bytes (for byte-based batching and
    /// memory bounds). Linear in the record's fields, no allocation; within a small
    /// factor of the NDJSON size.
    pub fn approx_size(&self) -> usize {
        match self {
            Item::Log(l) => l.approx_size(),
            Item::Invocation(i) => i.approx_size(),
            Item::Health(h) => {
                340 + h.dropped.keys().chain(h.delivered_by_sink.keys()).map(|k| k.len() + 24).sum::<usize>()
            }
            Item::Otlp(r) => r.approx_size(),
        }
    }

    /// The time the item is about, ms since the epoch.
    pub fn time_ms(&self) -> u64 {
        match self {
            Item::Log(l) => l.time_ms,
            Item::Invocation(i) => i.start_ms,
            Item::Health(h) => h.time_ms,
            Item::Otlp(r) => r.time_ms,
        }
    }
}

impl LogRecord {
    /// See [`Item::approx_size`].
    pub fn approx_size(&self) -> usize {
        96 + self.message.len()
            + self.request_id.as_ref().map_or(0, |r| r.len() + 16)
            + self.trace_id.as_ref().map_or(0, |t| t.len() + 14)
            + map_size(&self.attributes)
    }
}

impl Invocation {
    /// See [`Item::approx_size`].
    pub fn approx_size(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 16);
        560 + self.request_id.len()
            + self.status.len()
            + opt(&self.version)
            + opt(&self.error_type)
            + opt(&self.trace_id)
            + opt(&self.span_id)
            + opt(&self.parent_id)
            + self
                .init
                .as_ref()
                .map_or(0, |i| 160 + opt(&i.initialization_type) + opt(&i.error_type) + opt(&i.runtime_version))
    }
}

fn map_size(m: &Map<String, Value>) -> usize {
    m.iter().map(|(k, v)| k.len() + 4 + value_size(v)).sum()
}

fn value_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        Value::Object(m) => 2 + map_size(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log() -> LogRecord {
        LogRecord {
            time_ms: 1_700_000_000_123,
            observed_ms: 1_700_000_000_125,
            source: Source::Function,
            level: Level::Warn,
            request_id: Some("r-1".into()),
            message: "disk almost full".into(),
            attributes: json!({"disk": "/tmp", "pct": 93}).as_object().cloned().unwrap_or_default(),
            trace_id: None,
        }
    }

    #[test]
    fn levels_map_to_otlp_severity_and_parse_aliases() {
        assert_eq!(Level::Info.severity_number(), 9);
        assert_eq!(Level::Fatal.severity_number(), 21);
        assert_eq!(Level::Unknown.severity_number(), 0);
        assert_eq!(Level::Unknown.severity_text(), "");
        assert_eq!(Level::Warn.severity_text(), "WARN");
        assert_eq!(Level::parse("warning"), Some(Level::Warn));
        assert_eq!(Level::parse("Critical"), Some(Level::Fatal));
        assert_eq!(Level::parse("dbug"), Some(Level::Debug));
        assert_eq!(Level::parse("information"), Some(Level::Info));
        assert_eq!(Level::parse("loud"), None);
        assert_eq!(Level::parse(""), None);
        assert_eq!(Level::from_number(50), Some(Level::Error));
        assert_eq!(Level::from_number(35), None);
    }

    #[test]
    fn items_round_trip_through_their_spool_form() {
        let items = vec![
            Item::Log(log()),
            Item::from(Invocation {
                request_id: "r-1".into(),
                start_ms: 5,
                duration_ms: 12.5,
                billed_duration_ms: 13,
                max_memory_used_mb: 60,
                memory_size_mb: 128,
                status: "success".into(),
                estimated_cost_usd: 0.000_000_227,
                init: Some(InitInfo {
                    start_ms: Some(1),
                    duration_ms: Some(120.0),
                    status: Some("success".into()),
                    ..InitInfo::default()
                }),
                complete: true,
                ..Invocation::default()
            }),
            Item::from(HealthSnapshot {
                time_ms: 9,
                records_in: 10,
                dropped: [("rule".to_string(), 2u64)].into_iter().collect(),
                ..HealthSnapshot::default()
            }),
        ];
        for item in items {
            let line = serde_json::to_string(&item).unwrap();
            assert!(!line.contains('\n'));
            let back: Item = serde_json::from_str(&line).unwrap();
            assert_eq!(back, item, "{line}");
        }
    }

    #[test]
    fn received_otlp_round_trips_through_its_spool_form() {
        use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};
        let r = Received {
            time_ms: 7,
            request_id: Some("r-1".into()),
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        start_time_unix_nano: u64::MAX - 1,
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
            ..Received::default()
        };
        let line = serde_json::to_string(&Item::from(r.clone())).unwrap();
        assert!(line.starts_with("{\"type\":\"otlp\""), "{line}");
        assert!(line.contains("\"traceId\":\"01010101010101010101010101010101\""), "{line}");
        assert!(!line.contains("resourceLogs"), "{line}");
        assert_eq!(serde_json::from_str::<Item>(&line).unwrap(), Item::from(r.clone()));
        let size = Item::from(r).approx_size();
        assert!(size >= line.len() / 2 && size <= line.len() * 4, "{size} vs {}", line.len());
    }

    #[test]
    fn received_metrics_and_logs_round_trip_through_the_spool_form() {
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
        use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ScopeLogs};
        use opentelemetry_proto::tonic::metrics::v1::{
            metric, number_data_point, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ScopeMetrics,
        };
        let v = |v| Some(AnyValue { value: Some(v) });
        let attrs = vec![
            KeyValue { key: "i".into(), value: v(any_value::Value::IntValue(-7)), key_strindex: 0 },
            KeyValue { key: "d".into(), value: v(any_value::Value::DoubleValue(0.5)), key_strindex: 0 },
            KeyValue { key: "b".into(), value: v(any_value::Value::BytesValue(vec![0, 255])), key_strindex: 0 },
        ];
        let point = NumberDataPoint {
            attributes: attrs.clone(),
            time_unix_nano: 1_700_000_000_000_000_001,
            value: Some(number_data_point::Value::AsInt(i64::MIN)),
            ..NumberDataPoint::default()
        };
        let hist = HistogramDataPoint {
            count: 3,
            sum: Some(1.5),
            bucket_counts: vec![1, 2],
            explicit_bounds: vec![1.0],
            ..HistogramDataPoint::default()
        };
        let r = Received {
            time_ms: 1,
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: "g".into(),
                            data: Some(metric::Data::Gauge(Gauge { data_points: vec![point] })),
                            ..Metric::default()
                        },
                        Metric {
                            name: "h".into(),
                            data: Some(metric::Data::Histogram(Histogram {
                                data_points: vec![hist],
                                aggregation_temporality: 1,
                            })),
                            ..Metric::default()
                        },
                    ],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![OtlpLog {
                        body: v(any_value::Value::KvlistValue(KeyValueList { values: attrs.clone() })),
                        attributes: attrs,
                        severity_number: 9,
                        trace_id: vec![3; 16],
                        span_id: vec![4; 8],
                        ..OtlpLog::default()
                    }],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
            ..Received::default()
        };
        let line = serde_json::to_string(&Item::from(r.clone())).unwrap();
        assert_eq!(serde_json::from_str::<Item>(&line).unwrap(), Item::from(r), "{line}");
    }

    #[test]
    fn spool_form_is_tagged_and_camel_case() {
        let v = serde_json::to_value(Item::Log(log())).unwrap();
        assert_eq!(v["type"], "log");
        assert_eq!(v["timeMs"], 1_700_000_000_123u64);
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["source"], "function");
        assert_eq!(v["requestId"], "r-1");
        assert!(v.get("traceId").is_none());
        let inv = serde_json::to_value(Item::from(Invocation::default())).unwrap();
        assert_eq!(inv["type"], "invocation");
        assert!(inv.get("maxMemoryUsedMB").is_some());
        assert!(inv.get("estimatedCostUSD").is_some());
    }

    #[test]
    fn approx_size_tracks_the_encoded_size() {
        let mut l = log();
        let small = Item::Log(l.clone()).approx_size();
        l.message = "x".repeat(10_000);
        let big = Item::Log(l.clone()).approx_size();
        assert!(big >= small + 9_900, "{small} {big}");
        let actual = serde_json::to_string(&Item::Log(l.clone())).unwrap().len();
        let est = Item::Log(l).approx_size();
        assert!(est >= actual / 2 && est <= actual * 2, "{est} vs {actual}");
        let inv = Invocation::default();
        let actual = serde_json::to_string(&Item::from(inv.clone())).unwrap().len();
        assert!(Item::from(inv).approx_size() >= actual);
    }

    #[test]
    fn error_classification() {
        let mut i = Invocation { status: "success".into(), ..Invocation::default() };
        assert!(!i.is_error());
        i.status = "timeout".into();
        assert!(i.is_error() && i.is_timeout());
        i.status = "failure".into();
        assert!(i.is_error() && !i.is_timeout());
        i.status = "unknown".into();
        assert!(!i.is_error());
        i.start_ms = 1000;
        i.duration_ms = 10.2;
        assert_eq!(i.end_ms(), 1011);
    }
}
