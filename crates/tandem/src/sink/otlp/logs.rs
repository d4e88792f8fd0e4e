//! sink::otlp::logs: log records as OTLP logs: [`logs_request`] builds the
//! `opentelemetry-proto` request (the JSON protocol uses it), and [`encode_logs`] writes
//! the same request straight to protobuf. Pure: records in, bytes out.
//!
//! The direct writer exists because it is the hot path of the otlp sink: building the
//! `opentelemetry-proto` structs first copies every message and attribute into new heap
//! objects only to encode and drop them, which cost more than the encoding itself. Its
//! output is byte-for-byte what prost writes for the same request (the tests decode and
//! compare), and field numbers come from `opentelemetry/proto/logs/v1/logs.proto` and
//! `common/v1/common.proto`.

use super::encode::{any_value, kv, ms_to_ns, scope, string};
use super::ids::{span_id_for, trace_id_for};
use super::resource::Resource;
use crate::model::{Level, LogRecord};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
use prost::Message;
use serde_json::Value;

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

// ----- The direct protobuf writer ---------------------------------------------------------

// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

fn key(field: u32, wire: u8) -> u64 {
    (u64::from(field) << 3) | u64::from(wire)
}

fn varint_len(v: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn len_field_len(field: u32, len: usize) -> usize {
    varint_len(key(field, LEN)) + varint_len(len as u64) + len
}

fn put_len_key(out: &mut Vec<u8>, field: u32, len: usize) {
    put_varint(out, key(field, LEN));
    put_varint(out, len as u64);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_len_key(out, field, b.len());
    out.extend_from_slice(b);
}

// ----- AnyValue and KeyValue (common.proto) ---------------------------------------------

/// The encoded length of an `AnyValue` holding `v` (null is the empty value).
fn any_len(v: &Value) -> usize {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 2,
        Value::Number(n) => match n.as_i64() {
            Some(i) => 1 + varint_len(i as u64),
            None => 1 + 8,
        },
        Value::String(s) => len_field_len(1, s.len()),
        Value::Array(a) => len_field_len(5, a.iter().map(|x| len_field_len(1, any_len(x))).sum()),
        Value::Object(m) => len_field_len(6, m.iter().map(|(k, x)| len_field_len(1, kv_len(k, x))).sum()),
    }
}

fn put_any(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => {}
        Value::Bool(b) => {
            put_varint(out, key(2, VARINT));
            out.push(u8::from(*b));
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => {
                put_varint(out, key(3, VARINT));
                put_varint(out, i as u64);
            }
            None => {
                put_varint(out, key(4, FIXED64));
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        },
        Value::String(s) => put_bytes(out, 1, s.as_bytes()),
        Value::Array(a) => {
            put_len_key(out, 5, a.iter().map(|x| len_field_len(1, any_len(x))).sum());
            for x in a {
                put_len_key(out, 1, any_len(x));
                put_any(out, x);
            }
        }
        Value::Object(m) => {
            put_len_key(out, 6, m.iter().map(|(k, x)| len_field_len(1, kv_len(k, x))).sum());
            for (k, x) in m {
                put_len_key(out, 1, kv_len(k, x));
                put_kv(out, k, x);
            }
        }
    }
}

fn kv_len(k: &str, v: &Value) -> usize {
    let key_part = if k.is_empty() { 0 } else { len_field_len(1, k.len()) };
    key_part + len_field_len(2, any_len(v))
}

fn put_kv(out: &mut Vec<u8>, k: &str, v: &Value) {
    if !k.is_empty() {
        put_bytes(out, 1, k.as_bytes());
    }
    put_len_key(out, 2, any_len(v));
    put_any(out, v);
}

/// A string attribute: `KeyValue { key, value: AnyValue { string_value } }`.
fn str_kv_len(k: &str, v: &str) -> usize {
    len_field_len(1, k.len()) + len_field_len(2, len_field_len(1, v.len()))
}

fn put_str_kv(out: &mut Vec<u8>, k: &str, v: &str) {
    put_bytes(out, 1, k.as_bytes());
    put_len_key(out, 2, len_field_len(1, v.len()));
    put_bytes(out, 1, v.as_bytes());
}

// ----- LogRecord (logs.proto) -------------------------------------------------------------

struct Ids {
    trace: [u8; 16],
    span: [u8; 8],
}

fn ids(rec: &LogRecord) -> Option<Ids> {
    rec.request_id
        .as_deref()
        .map(|id| Ids { trace: trace_id_for(id, rec.trace_id.as_deref()), span: span_id_for(id, "invocation") })
}

fn record_len(rec: &LogRecord, ids: &Option<Ids>) -> usize {
    let mut n = 0;
    let ns = |ms: u64| ms.saturating_mul(1_000_000);
    if ns(rec.time_ms) != 0 {
        n += 1 + 8;
    }
    let sev = rec.level.severity_number();
    if sev != 0 {
        n += 1 + varint_len(sev as u64);
    }
    let text = rec.level.severity_text();
    if !text.is_empty() {
        n += len_field_len(3, text.len());
    }
    n += len_field_len(5, len_field_len(1, rec.message.len()));
    if let Some(id) = &rec.request_id {
        n += len_field_len(6, str_kv_len("faas.invocation_id", id));
    }
    n += len_field_len(6, str_kv_len(LOG_SOURCE_ATTRIBUTE, rec.source.as_str()));
    for (k, v) in &rec.attributes {
        n += len_field_len(6, kv_len(k, v));
    }
    if ids.is_some() {
        n += len_field_len(9, 16) + len_field_len(10, 8);
    }
    if ns(rec.observed_ms) != 0 {
        n += 1 + 8;
    }
    n
}

fn put_record(out: &mut Vec<u8>, rec: &LogRecord, ids: &Option<Ids>) {
    let ns = |ms: u64| ms.saturating_mul(1_000_000);
    if ns(rec.time_ms) != 0 {
        put_varint(out, key(1, FIXED64));
        out.extend_from_slice(&ns(rec.time_ms).to_le_bytes());
    }
    let sev = rec.level.severity_number();
    if sev != 0 {
        put_varint(out, key(2, VARINT));
        put_varint(out, sev as u64);
    }
    let text = rec.level.severity_text();
    if !text.is_empty() {
        put_bytes(out, 3, text.as_bytes());
    }
    put_len_key(out, 5, len_field_len(1, rec.message.len()));
    put_bytes(out, 1, rec.message.as_bytes());
    if let Some(id) = &rec.request_id {
        put_len_key(out, 6, str_kv_len("faas.invocation_id", id));
        put_str_kv(out, "faas.invocation_id", id);
    }
    put_len_key(out, 6, str_kv_len(LOG_SOURCE_ATTRIBUTE, rec.source.as_str()));
    put_str_kv(out, LOG_SOURCE_ATTRIBUTE, rec.source.as_str());
    for (k, v) in &rec.attributes {
        put_len_key(out, 6, kv_len(k, v));
        put_kv(out, k, v);
    }
    if let Some(ids) = ids {
        put_bytes(out, 9, &ids.trace);
        put_bytes(out, 10, &ids.span);
    }
    if ns(rec.observed_ms) != 0 {
        put_varint(out, key(11, FIXED64));
        out.extend_from_slice(&ns(rec.observed_ms).to_le_bytes());
    }
}

/// `ExportLogsServiceRequest` with `records` under `resource`, as protobuf: the same
/// request as [`logs_request`], without building it first.
pub fn encode_logs<'a>(resource: &Resource, records: impl IntoIterator<Item = &'a LogRecord>) -> Vec<u8> {
    let records: Vec<(&LogRecord, Option<Ids>, usize)> = records
        .into_iter()
        .map(|r| {
            let ids = ids(r);
            let len = record_len(r, &ids);
            (r, ids, len)
        })
        .collect();
    // Resource and scope are small and once per request: prost encodes them.
    let resource = resource.to_proto().encode_to_vec();
    let scope = scope().encode_to_vec();
    let scope_logs_len =
        len_field_len(1, scope.len()) + records.iter().map(|(_, _, l)| len_field_len(2, *l)).sum::<usize>();
    let resource_logs_len = len_field_len(1, resource.len()) + len_field_len(2, scope_logs_len);
    let mut out = Vec::with_capacity(len_field_len(1, resource_logs_len));
    put_len_key(&mut out, 1, resource_logs_len);
    put_bytes(&mut out, 1, &resource);
    put_len_key(&mut out, 2, scope_logs_len);
    put_bytes(&mut out, 1, &scope);
    for (r, ids, len) in &records {
        put_len_key(&mut out, 2, *len);
        put_record(&mut out, r, ids);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Level, Source};
    use crate::sink::otlp::encode::encode_protobuf;
    use serde_json::json;

    fn record(i: u64, attributes: serde_json::Map<String, Value>) -> LogRecord {
        LogRecord {
            time_ms: 1_700_000_000_000 + i,
            observed_ms: if i % 3 == 0 { 0 } else { 1_700_000_000_500 + i },
            source: if i % 2 == 0 { Source::Function } else { Source::Extension },
            level: [Level::Info, Level::Unknown, Level::Error, Level::Warn][i as usize % 4],
            request_id: (i % 5 != 0).then(|| format!("8f5e3b2a-1c4d-4e6f-9a0b-{i:012x}")),
            message: if i == 7 { String::new() } else { format!("line {i} ✓ with unicode and \"quotes\"") },
            attributes,
            trace_id: (i % 2 == 1).then(|| "1-5759e988-bd862e3fe1be46a994272793".into()),
        }
    }

    #[test]
    fn writes_exactly_what_prost_writes() {
        let mut records = Vec::new();
        for i in 0..40u64 {
            let attrs = match i % 4 {
                0 => serde_json::Map::new(),
                1 => json!({"n": i, "neg": -5, "big": u64::MAX, "f": 1.5, "b": true, "null": null, "s": "x"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                2 => json!({"nested": {"a": [1, "two", {"three": 3.0}, [], {}], "": "empty key"}, "arr": []})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                _ => json!({"msg": "x".repeat(300)}).as_object().cloned().unwrap_or_default(),
            };
            records.push(record(i, attrs));
        }
        let resource = Resource::from_env(|k| match k {
            "AWS_LAMBDA_FUNCTION_NAME" => Some("f".into()),
            "AWS_REGION" => Some("eu-west-1".into()),
            "OTEL_RESOURCE_ATTRIBUTES" => Some("team=core,env=prod".into()),
            _ => None,
        });
        let ours = encode_logs(&resource, &records);
        let theirs = encode_protobuf(&logs_request(&resource, &records));
        assert_eq!(ours, theirs, "byte-for-byte equal to prost's encoding");
        assert_eq!(encode_logs(&resource, &[]), encode_protobuf(&logs_request(&resource, &[])));
    }

    #[test]
    fn varint_lengths() {
        for (v, n) in [(0u64, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3), (u64::MAX, 10)] {
            assert_eq!(varint_len(v), n, "{v}");
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), n);
        }
    }
}
