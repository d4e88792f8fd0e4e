//! telemetry::records: the record schemas of every event type, and the open string
//! enums they use (status, phase, initialization type, subscription category).

use crate::strings::open_enum;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

open_enum! {
    /// Outcome of a phase: `success`, `error`, `failure`, `timeout`.
    Status { Success = "success", Error = "error", Failure = "failure", Timeout = "timeout" }
}

open_enum! {
    /// How the environment was initialised.
    InitializationType {
        OnDemand = "on-demand",
        ProvisionedConcurrency = "provisioned-concurrency",
        SnapStart = "snap-start",
    }
}

open_enum! {
    /// `init`, or `invoke` for an init retried during the first invoke (suppressed init).
    Phase { Init = "init", Invoke = "invoke" }
}

open_enum! {
    /// A subscription category.
    TelemetryType { Platform = "platform", Function = "function", Extension = "extension" }
}

/// A span inside a platform record: `{name, start, durationMs}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// `responseLatency`, `responseDuration`, `runtimeOverhead`, `extensionOverhead`, ….
    pub name: String,
    /// RFC 3339 with milliseconds.
    pub start: String,
    /// Duration in milliseconds.
    pub duration_ms: f64,
}

/// Trace context of a platform record: `{spanId?, type, value}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceContext {
    /// The span id, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// `X-Amzn-Trace-Id`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The trace header.
    pub value: String,
}

/// `platform.initStart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitStart {
    /// How the environment was initialised.
    pub initialization_type: InitializationType,
    /// `init`, or `invoke` for a suppressed init retried at the first invoke.
    pub phase: Phase,
    /// The function's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    /// The function's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_version: Option<String>,
    /// The execution environment's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The environment's memory in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_max_memory: Option<u64>,
    /// The managed runtime's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    /// The managed runtime's version ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version_arn: Option<String>,
    /// The trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

/// `platform.initRuntimeDone` and `platform.restoreRuntimeDone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseDone {
    /// How the environment was initialised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization_type: Option<InitializationType>,
    /// `init`, or `invoke` for a suppressed init retried at the first invoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// How it ended.
    pub status: Status,
    /// The error type, when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Timed parts of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<Vec<Span>>,
    /// The trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

/// `metrics` of an init or restore report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseMetrics {
    /// Duration in milliseconds.
    pub duration_ms: f64,
}

/// `platform.initReport` and `platform.restoreReport`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseReport {
    /// How the environment was initialised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization_type: Option<InitializationType>,
    /// `init`, or `invoke` for a suppressed init retried at the first invoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// How it ended.
    pub status: Status,
    /// The error type, when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Its measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<PhaseMetrics>,
    /// Timed parts of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<Vec<Span>>,
    /// The trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

/// `platform.restoreStart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStart {
    /// The function's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    /// The function's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_version: Option<String>,
    /// The execution environment's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The environment's memory in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_max_memory: Option<u64>,
    /// The managed runtime's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    /// The managed runtime's version ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version_arn: Option<String>,
}

/// `platform.start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Start {
    /// The invocation's request id.
    pub request_id: String,
    /// The function version that runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

/// `metrics` of `platform.runtimeDone`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDoneMetrics {
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Bytes of the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced_bytes: Option<u64>,
}

/// `platform.runtimeDone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDone {
    /// The invocation's request id.
    pub request_id: String,
    /// How it ended.
    pub status: Status,
    /// The error type, when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Its measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<RuntimeDoneMetrics>,
    /// Timed parts of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<Vec<Span>>,
    /// The trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

/// `metrics` of `platform.report`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportMetrics {
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// The duration billed, rounded up.
    pub billed_duration_ms: u64,
    /// The function's memory in MB.
    #[serde(rename = "memorySizeMB")]
    pub memory_size_mb: u64,
    /// The most memory the environment used, in MB.
    #[serde(rename = "maxMemoryUsedMB")]
    pub max_memory_used_mb: u64,
    /// The init's duration, on the first invocation after a cold start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_duration_ms: Option<f64>,
    /// The restore's duration (SnapStart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_duration_ms: Option<f64>,
    /// The restore's billed duration (SnapStart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_restore_duration_ms: Option<u64>,
}

/// `platform.report`. `status` is absent in the Logs API's version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The invocation's request id.
    pub request_id: String,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The error type, when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Its measurements.
    pub metrics: ReportMetrics,
    /// Timed parts of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<Vec<Span>>,
    /// The trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

/// `platform.extension`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionInfo {
    /// The extension's name.
    pub name: String,
    /// Its state (`Ready`, `Subscribed`, …).
    pub state: String,
    /// The events it registered for.
    #[serde(default)]
    pub events: Vec<String>,
    /// The error type, when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
}

/// `platform.telemetrySubscription` and `platform.logsSubscription`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionInfo {
    /// The extension's name.
    pub name: String,
    /// Its state (`Ready`, `Subscribed`, …).
    pub state: String,
    /// The categories it subscribed to.
    #[serde(default)]
    pub types: Vec<String>,
}

/// `platform.logsDropped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsDropped {
    /// Bytes dropped.
    pub dropped_bytes: u64,
    /// Records dropped.
    pub dropped_records: u64,
    /// Why they were dropped.
    pub reason: String,
}

/// `platform.end` (Logs API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct End {
    /// The invocation's request id.
    pub request_id: String,
}

/// A `function` or `extension` record: a text line, or (JSON log format with
/// schema 2022-12-13 or later) an object such as `{timestamp, level, requestId, message}`.
#[derive(Debug, Clone, PartialEq)]
pub enum LogRecord {
    /// A text line.
    Text(String),
    /// A JSON log object.
    Json(Value),
}

impl LogRecord {
    /// The text of a text record, or the `message` of a JSON one when it is a string.
    pub fn message(&self) -> Option<&str> {
        match self {
            LogRecord::Text(s) => Some(s),
            LogRecord::Json(v) => v.get("message").and_then(Value::as_str),
        }
    }
}

impl Serialize for LogRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LogRecord::Text(t) => s.serialize_str(t),
            LogRecord::Json(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for LogRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A string is by far the common case: take it without building a Value.
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LogRecord;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a log line (string) or a JSON log object")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LogRecord, E> {
                Ok(LogRecord::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<LogRecord, E> {
                Ok(LogRecord::Text(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LogRecord, A::Error> {
                let v = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(LogRecord::Json(v))
            }
        }
        d.deserialize_any(V)
    }
}
