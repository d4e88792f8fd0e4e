//! sink::otlp::encode: what every OTLP request shares: the protocol (protobuf or
//! OTLP/JSON) and its encoding, the three signals and their paths, the instrumentation
//! scope, and the builders of attribute values and times the signal modules use.
//!
//! The OTLP encoders (`resource`, `ids`, `logs`, `metrics`, `traces`, beside this
//! module) own the mapping to OpenTelemetry: the resource
//! (FaaS and cloud semantic conventions), log records (severity, body,
//! `faas.invocation_id`, trace context), metrics (DELTA temporality, aggregated per
//! request) and spans (one SERVER span per invocation with `init`/`runtime`/
//! `extension_overhead` children), and the derivation of trace and span ids. All are
//! pure: no I/O, no clock, no randomness; every id is derived deterministically from the
//! request id (or taken from X-Ray), so that a log line and the span of its invocation
//! agree without sharing state, and re-sending a spooled batch produces the same ids.

use crate::encode::push_serde;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
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
    /// `grpc`: protobuf in unary `Export` calls (see `sink::otlp::grpc`).
    Grpc,
}

impl Protocol {
    /// The `OTEL_EXPORTER_OTLP_PROTOCOL` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
            Protocol::Grpc => "grpc",
        }
    }

    /// The `Content-Type` of a body.
    pub const fn content_type(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "application/x-protobuf",
            Protocol::HttpJson => "application/json",
            Protocol::Grpc => crate::encode::grpc::CONTENT_TYPE,
        }
    }

    /// Encodes an export request in this protocol.
    pub fn encode<M: prost::Message + serde::Serialize>(self, req: &M) -> Vec<u8> {
        match self {
            Protocol::HttpProtobuf | Protocol::Grpc => encode_protobuf(req),
            Protocol::HttpJson => encode_json(req),
        }
    }
}

/// The three OTLP signals and their default paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Log records (`/v1/logs`).
    Logs,
    /// Invocation metrics and the extension's health (`/v1/metrics`).
    Metrics,
    /// Invocation spans (`/v1/traces`).
    Traces,
}

impl Signal {
    /// The three signals, in the order a batch sends them.
    pub const ALL: [Signal; 3] = [Signal::Logs, Signal::Metrics, Signal::Traces];

    /// `logs`, `metrics` or `traces`.
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

/// Appends `resources` to an encoded export request as more entries of its field 1
/// (`resource_spans`, `resource_metrics`, `resource_logs`): protobuf concatenation
/// merges repeated fields, so the received data needs no copy and no re-encoding of
/// what is already there.
pub fn append_resources<'a, R: prost::Message + 'a>(body: &mut Vec<u8>, resources: impl IntoIterator<Item = &'a R>) {
    for r in resources {
        prost::encoding::message::encode(1, r, body);
    }
}

pub(crate) fn string(s: &str) -> AnyValue {
    AnyValue { value: Some(any_value::Value::StringValue(s.to_owned())) }
}

pub(crate) fn int(i: i64) -> AnyValue {
    AnyValue { value: Some(any_value::Value::IntValue(i)) }
}

pub(crate) fn double(f: f64) -> AnyValue {
    AnyValue { value: Some(any_value::Value::DoubleValue(f)) }
}

pub(crate) fn boolean(b: bool) -> AnyValue {
    AnyValue { value: Some(any_value::Value::BoolValue(b)) }
}

pub(crate) fn kv(key: &str, value: AnyValue) -> KeyValue {
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

/// The instrumentation scope every export carries.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

pub(crate) fn ms_to_ns(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

pub(crate) fn dur_ns(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * 1_000_000.0).round() as u64
    } else {
        0
    }
}
