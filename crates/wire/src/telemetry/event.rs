//! telemetry::event: the event envelope `{time, type, record}`, the [`Record`] enum by
//! event type, and their serde (one pass when `type` precedes `record`).

use super::records::*;
use super::types;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// One record, by event type.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// `platform.initStart`.
    InitStart(InitStart),
    /// `platform.initRuntimeDone`.
    InitRuntimeDone(PhaseDone),
    /// `platform.initReport`.
    InitReport(PhaseReport),
    /// `platform.restoreStart`.
    RestoreStart(RestoreStart),
    /// `platform.restoreRuntimeDone`.
    RestoreRuntimeDone(PhaseDone),
    /// `platform.restoreReport`.
    RestoreReport(PhaseReport),
    /// `platform.start`.
    Start(Start),
    /// `platform.runtimeDone`.
    RuntimeDone(RuntimeDone),
    /// `platform.report`.
    Report(Report),
    /// `platform.extension`.
    Extension(ExtensionInfo),
    /// `platform.telemetrySubscription`.
    TelemetrySubscription(SubscriptionInfo),
    /// `platform.logsSubscription` (Logs API).
    LogsSubscription(SubscriptionInfo),
    /// `platform.logsDropped`.
    LogsDropped(LogsDropped),
    /// `platform.end` (Logs API).
    End(End),
    /// `platform.fault` (Logs API): `RequestId: … Error: …`.
    Fault(String),
    /// A line the function (runtime) wrote.
    Function(LogRecord),
    /// A line an extension wrote.
    ExtensionLog(LogRecord),
    /// A type this version does not know; `record` is kept verbatim.
    Unknown {
        /// Its `type`.
        kind: String,
        /// Its `record`, verbatim.
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
    /// The record, by its `type`.
    pub record: Record,
}

impl Event {
    /// An event at `time` (RFC 3339) carrying `record`.
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
