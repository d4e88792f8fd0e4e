//! Telemetry API and Logs API events: `{"time","type","record"}` and every record
//! schema of platform, function and extension events.
//!
//! Forward-compatible by construction: unknown fields are ignored, string values
//! outside the known set parse as `Other(..)`, and an unknown `type` parses into
//! [`Record::Unknown`] holding its raw JSON. [`parse_batch`] parses a delivered JSON
//! array event by event, so one bad event never costs the rest of its batch.

use crate::strings::open_enum;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
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

/// `type` strings of every event. Spelled here once.
pub mod types {
    pub const INIT_START: &str = "platform.initStart";
    pub const INIT_RUNTIME_DONE: &str = "platform.initRuntimeDone";
    pub const INIT_REPORT: &str = "platform.initReport";
    pub const RESTORE_START: &str = "platform.restoreStart";
    pub const RESTORE_RUNTIME_DONE: &str = "platform.restoreRuntimeDone";
    pub const RESTORE_REPORT: &str = "platform.restoreReport";
    pub const START: &str = "platform.start";
    pub const RUNTIME_DONE: &str = "platform.runtimeDone";
    pub const REPORT: &str = "platform.report";
    pub const EXTENSION: &str = "platform.extension";
    pub const TELEMETRY_SUBSCRIPTION: &str = "platform.telemetrySubscription";
    pub const LOGS_DROPPED: &str = "platform.logsDropped";
    // Logs API only.
    pub const END: &str = "platform.end";
    pub const FAULT: &str = "platform.fault";
    pub const LOGS_SUBSCRIPTION: &str = "platform.logsSubscription";
    // Log lines.
    pub const FUNCTION: &str = "function";
    pub const EXTENSION_LOG: &str = "extension";
}

/// A span inside a platform record: `{name, start, durationMs}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    pub name: String,
    /// RFC 3339 with milliseconds.
    pub start: String,
    pub duration_ms: f64,
}

/// Trace context of a platform record: `{spanId?, type, value}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitStart {
    pub initialization_type: InitializationType,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_max_memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

/// `platform.initRuntimeDone` and `platform.restoreRuntimeDone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseDone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization_type: Option<InitializationType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<Vec<Span>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseMetrics {
    pub duration_ms: f64,
}

/// `platform.initReport` and `platform.restoreReport`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization_type: Option<InitializationType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<PhaseMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<Vec<Span>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

/// `platform.restoreStart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_max_memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version_arn: Option<String>,
}

/// `platform.start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Start {
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDoneMetrics {
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced_bytes: Option<u64>,
}

/// `platform.runtimeDone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDone {
    pub request_id: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<RuntimeDoneMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<Vec<Span>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportMetrics {
    pub duration_ms: f64,
    pub billed_duration_ms: u64,
    #[serde(rename = "memorySizeMB")]
    pub memory_size_mb: u64,
    #[serde(rename = "maxMemoryUsedMB")]
    pub max_memory_used_mb: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_duration_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_duration_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_restore_duration_ms: Option<u64>,
}

/// `platform.report`. `status` is absent in the Logs API's version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    pub metrics: ReportMetrics,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<Vec<Span>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TraceContext>,
}

/// `platform.extension`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionInfo {
    pub name: String,
    pub state: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
}

/// `platform.telemetrySubscription` and `platform.logsSubscription`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionInfo {
    pub name: String,
    pub state: String,
    #[serde(default)]
    pub types: Vec<String>,
}

/// `platform.logsDropped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsDropped {
    pub dropped_bytes: u64,
    pub dropped_records: u64,
    pub reason: String,
}

/// `platform.end` (Logs API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct End {
    pub request_id: String,
}

/// A `function` or `extension` record: a text line, or (JSON log format with
/// schema 2022-12-13 or later) an object such as `{timestamp, level, requestId, message}`.
#[derive(Debug, Clone, PartialEq)]
pub enum LogRecord {
    Text(String),
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

/// One record, by event type.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    InitStart(InitStart),
    InitRuntimeDone(PhaseDone),
    InitReport(PhaseReport),
    RestoreStart(RestoreStart),
    RestoreRuntimeDone(PhaseDone),
    RestoreReport(PhaseReport),
    Start(Start),
    RuntimeDone(RuntimeDone),
    Report(Report),
    Extension(ExtensionInfo),
    TelemetrySubscription(SubscriptionInfo),
    LogsSubscription(SubscriptionInfo),
    LogsDropped(LogsDropped),
    End(End),
    Fault(String),
    /// A line the function (runtime) wrote.
    Function(LogRecord),
    /// A line an extension wrote.
    ExtensionLog(LogRecord),
    /// A type this version does not know; `record` is kept verbatim.
    Unknown {
        kind: String,
        record: Value,
    },
}

impl Record {
    /// The `type` field of the event carrying this record.
    pub fn type_name(&self) -> &str {
        match self {
            Record::InitStart(_) => types::INIT_START,
            Record::InitRuntimeDone(_) => types::INIT_RUNTIME_DONE,
            Record::InitReport(_) => types::INIT_REPORT,
            Record::RestoreStart(_) => types::RESTORE_START,
            Record::RestoreRuntimeDone(_) => types::RESTORE_RUNTIME_DONE,
            Record::RestoreReport(_) => types::RESTORE_REPORT,
            Record::Start(_) => types::START,
            Record::RuntimeDone(_) => types::RUNTIME_DONE,
            Record::Report(_) => types::REPORT,
            Record::Extension(_) => types::EXTENSION,
            Record::TelemetrySubscription(_) => types::TELEMETRY_SUBSCRIPTION,
            Record::LogsSubscription(_) => types::LOGS_SUBSCRIPTION,
            Record::LogsDropped(_) => types::LOGS_DROPPED,
            Record::End(_) => types::END,
            Record::Fault(_) => types::FAULT,
            Record::Function(_) => types::FUNCTION,
            Record::ExtensionLog(_) => types::EXTENSION_LOG,
            Record::Unknown { kind, .. } => kind,
        }
    }

    /// The subscription category (`platform`, `function`, `extension`) of this record.
    pub fn category(&self) -> TelemetryType {
        match self {
            Record::Function(_) => TelemetryType::Function,
            Record::ExtensionLog(_) => TelemetryType::Extension,
            Record::Unknown { kind, .. } if kind == types::FUNCTION => TelemetryType::Function,
            Record::Unknown { kind, .. } if kind == types::EXTENSION_LOG => TelemetryType::Extension,
            _ => TelemetryType::Platform,
        }
    }

    /// The request id a platform record is about, if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Record::Start(r) => Some(&r.request_id),
            Record::RuntimeDone(r) => Some(&r.request_id),
            Record::Report(r) => Some(&r.request_id),
            Record::End(r) => Some(&r.request_id),
            Record::Function(LogRecord::Json(v)) | Record::ExtensionLog(LogRecord::Json(v)) => {
                v.get("requestId").and_then(Value::as_str)
            }
            _ => None,
        }
    }

    fn serialize_body<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Record::InitStart(r) => r.serialize(s),
            Record::InitRuntimeDone(r) | Record::RestoreRuntimeDone(r) => r.serialize(s),
            Record::InitReport(r) | Record::RestoreReport(r) => r.serialize(s),
            Record::RestoreStart(r) => r.serialize(s),
            Record::Start(r) => r.serialize(s),
            Record::RuntimeDone(r) => r.serialize(s),
            Record::Report(r) => r.serialize(s),
            Record::Extension(r) => r.serialize(s),
            Record::TelemetrySubscription(r) | Record::LogsSubscription(r) => r.serialize(s),
            Record::LogsDropped(r) => r.serialize(s),
            Record::End(r) => r.serialize(s),
            Record::Fault(r) => r.serialize(s),
            Record::Function(r) | Record::ExtensionLog(r) => r.serialize(s),
            Record::Unknown { record, .. } => record.serialize(s),
        }
    }

    /// Parses `record` (JSON text) for an event of type `kind`. Unknown kinds never fail.
    pub fn parse(kind: &str, record: &str) -> Result<Record, serde_json::Error> {
        let mut d = serde_json::Deserializer::from_str(record);
        let r = Record::deserialize_kind(kind, &mut d)?;
        d.end()?;
        Ok(r)
    }

    /// Builds the record of an event of type `kind` from a JSON value.
    pub fn from_value(kind: &str, record: Value) -> Result<Record, serde_json::Error> {
        Record::deserialize_kind(kind, record)
    }

    /// Deserializes the record of an event of type `kind` from any deserializer.
    pub fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Record, D::Error> {
        Ok(match kind {
            types::FUNCTION => Record::Function(Deserialize::deserialize(d)?),
            types::EXTENSION_LOG => Record::ExtensionLog(Deserialize::deserialize(d)?),
            types::START => Record::Start(Deserialize::deserialize(d)?),
            types::RUNTIME_DONE => Record::RuntimeDone(Deserialize::deserialize(d)?),
            types::REPORT => Record::Report(Deserialize::deserialize(d)?),
            types::INIT_START => Record::InitStart(Deserialize::deserialize(d)?),
            types::INIT_RUNTIME_DONE => Record::InitRuntimeDone(Deserialize::deserialize(d)?),
            types::INIT_REPORT => Record::InitReport(Deserialize::deserialize(d)?),
            types::RESTORE_START => Record::RestoreStart(Deserialize::deserialize(d)?),
            types::RESTORE_RUNTIME_DONE => Record::RestoreRuntimeDone(Deserialize::deserialize(d)?),
            types::RESTORE_REPORT => Record::RestoreReport(Deserialize::deserialize(d)?),
            types::EXTENSION => Record::Extension(Deserialize::deserialize(d)?),
            types::TELEMETRY_SUBSCRIPTION => Record::TelemetrySubscription(Deserialize::deserialize(d)?),
            types::LOGS_SUBSCRIPTION => Record::LogsSubscription(Deserialize::deserialize(d)?),
            types::LOGS_DROPPED => Record::LogsDropped(Deserialize::deserialize(d)?),
            types::END => Record::End(Deserialize::deserialize(d)?),
            types::FAULT => Record::Fault(Deserialize::deserialize(d)?),
            other => Record::Unknown { kind: other.to_owned(), record: Deserialize::deserialize(d)? },
        })
    }
}

/// One event of a Telemetry or Logs API delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// RFC 3339 with milliseconds, as sent.
    pub time: String,
    pub record: Record,
}

impl Event {
    pub fn new(time: String, record: Record) -> Self {
        Self { time, record }
    }

    /// `time` in milliseconds since the epoch, when it parses.
    pub fn epoch_millis(&self) -> Option<u64> {
        crate::time::parse_rfc3339_millis(&self.time)
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Body<'a>(&'a Record);
        impl Serialize for Body<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize_body(s)
            }
        }
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("time", &self.time)?;
        m.serialize_entry("type", self.record.type_name())?;
        m.serialize_entry("record", &Body(&self.record))?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

/// Parses an event in one pass when `type` precedes `record` (Lambda's order), and
/// through a `Value` otherwise.
struct EventVisitor;

enum Field {
    Time,
    Type,
    Record,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "time" => Field::Time,
                    "type" => Field::Type,
                    "record" => Field::Record,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

struct RecordSeed<'k>(&'k str);

impl<'de> de::DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Record;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Record, D::Error> {
        Record::deserialize_kind(self.0, d)
    }
}

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object {time, type, record}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut time: Option<String> = None;
        let mut kind: Option<Cow<'de, str>> = None;
        let mut record: Option<Record> = None;
        let mut early: Option<Value> = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Time => time = Some(map.next_value()?),
                Field::Type => kind = Some(map.next_value::<CowStr<'de>>()?.0),
                Field::Record => match &kind {
                    Some(k) => record = Some(map.next_value_seed(RecordSeed(k))?),
                    None => early = Some(map.next_value()?),
                },
                Field::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        let record = match (record, early) {
            (Some(r), _) => r,
            (None, v) => Record::from_value(&kind, v.unwrap_or(Value::Null)).map_err(de::Error::custom)?,
        };
        Ok(Event { time: time.unwrap_or_default(), record })
    }
}

/// A string borrowed from the input when possible.
struct CowStr<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Why one event of a batch could not be parsed. Its siblings are unaffected.
#[derive(Debug)]
pub struct EventError {
    /// Position in the batch.
    pub index: usize,
    /// The `type` of the event, when it could be read.
    pub kind: Option<String>,
    pub error: serde_json::Error,
    /// The event's raw JSON (for logging or dead-lettering).
    pub raw: String,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Some(k) => write!(f, "event {} ({k}) is malformed: {}", self.index, self.error),
            None => write!(f, "event {} is malformed: {}", self.index, self.error),
        }
    }
}

impl std::error::Error for EventError {}

/// A parsed delivery: the events that parsed, in order, and the ones that did not.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    pub errors: Vec<EventError>,
}

/// Parses a delivery body (a JSON array of events), event by event.
///
/// Fails as a whole only when the body is not a JSON array at all. A batch whose every
/// event parses (the common case) is read in one pass; otherwise it is split into its
/// elements and each is parsed alone, so one bad event costs only itself.
pub fn parse_events(body: &[u8]) -> Result<Batch, serde_json::Error> {
    if let Ok(events) = serde_json::from_slice::<Vec<Event>>(body) {
        return Ok(Batch { events, errors: Vec::new() });
    }
    let items: Vec<&RawValue> = serde_json::from_slice(body)?;
    let mut batch = Batch { events: Vec::with_capacity(items.len()), errors: Vec::new() };
    for (index, raw) in items.into_iter().enumerate() {
        match parse_event(index, raw.get()) {
            Ok(e) => batch.events.push(e),
            Err(e) => batch.errors.push(e),
        }
    }
    Ok(batch)
}

/// Like [`parse_events`], keeping each element's outcome in its position.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Result<Event, EventError>>, serde_json::Error> {
    if let Ok(events) = serde_json::from_slice::<Vec<Event>>(body) {
        return Ok(events.into_iter().map(Ok).collect());
    }
    let items: Vec<&RawValue> = serde_json::from_slice(body)?;
    Ok(items.into_iter().enumerate().map(|(index, raw)| parse_event(index, raw.get())).collect())
}

/// Parses newline-delimited events (the TCP destination's framing), line by line.
pub fn parse_ndjson(body: &[u8]) -> Vec<Result<Event, EventError>> {
    body.split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .enumerate()
        .map(|(index, line)| match std::str::from_utf8(line) {
            Ok(s) => parse_event(index, s),
            Err(_) => parse_event(index, &String::from_utf8_lossy(line)),
        })
        .collect()
}

fn parse_event(index: usize, raw: &str) -> Result<Event, EventError> {
    serde_json::from_str::<Event>(raw).map_err(|error| EventError {
        index,
        kind: serde_json::from_str::<KindOnly>(raw).ok().map(|k| k.kind),
        error,
        raw: raw.to_owned(),
    })
}

#[derive(Deserialize)]
struct KindOnly {
    #[serde(rename = "type")]
    kind: String,
}

open_enum! {
    /// A subscription category.
    TelemetryType { Platform = "platform", Function = "function", Extension = "extension" }
}
