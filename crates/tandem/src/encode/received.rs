//! encode::received: the NDJSON lines of OTLP data the receiver took in, for the `file`
//! and `http` sinks: one line per span, metric or log record, in OTLP/JSON form
//! (`opentelemetry-proto`'s serde: lowerCamelCase, hex ids, 64-bit integers as
//! strings), with its resource and scope beside it so that each line stands alone:
//!
//! ```text
//! {"type":"span","source":"otlp","time":"…","resource":{…},"scope":{…},"span":{…}}
//! {"type":"metric","source":"otlp","time":"…","resource":{…},"scope":{…},"metric":{…}}
//! {"type":"log","source":"otlp","time":"…","resource":{…},"scope":{…},"logRecord":{…}}
//! ```
//!
//! `time` is when the receiver took it; `requestId` follows when it arrived during an
//! invocation. Pure: no I/O.

use super::push_serde;
use crate::model::Received;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'static str,
    time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a InstrumentationScope>,
    #[serde(skip_serializing_if = "str::is_empty")]
    schema_url: &'a str,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct Span<'a> {
    span: &'a opentelemetry_proto::tonic::trace::v1::Span,
}

#[derive(Serialize)]
struct Metric<'a> {
    metric: &'a opentelemetry_proto::tonic::metrics::v1::Metric,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Log<'a> {
    log_record: &'a opentelemetry_proto::tonic::logs::v1::LogRecord,
}

/// Appends one line (ending in `\n`) per span, metric and log record of `r`.
pub fn encode_received(r: &Received, out: &mut Vec<u8>) {
    let time = tandem_wire::time::format_epoch_millis(r.time_ms);
    let request_id = r.request_id.as_deref();
    for rs in &r.resource_spans {
        for ss in &rs.scope_spans {
            let h = head("span", &rs.resource, &ss.scope, &ss.schema_url);
            for span in &ss.spans {
                push_line(out, h, &time, request_id, Span { span });
            }
        }
    }
    for rm in &r.resource_metrics {
        for sm in &rm.scope_metrics {
            let h = head("metric", &rm.resource, &sm.scope, &sm.schema_url);
            for metric in &sm.metrics {
                push_line(out, h, &time, request_id, Metric { metric });
            }
        }
    }
    for rl in &r.resource_logs {
        for sl in &rl.scope_logs {
            let h = head("log", &rl.resource, &sl.scope, &sl.schema_url);
            for log_record in &sl.log_records {
                push_line(out, h, &time, request_id, Log { log_record });
            }
        }
    }
}

fn head<'a>(
    kind: &'static str,
    resource: &'a Option<Resource>,
    scope: &'a Option<InstrumentationScope>,
    schema_url: &'a str,
) -> Head<'a> {
    (kind, resource.as_ref(), scope.as_ref(), schema_url)
}

type Head<'a> = (&'static str, Option<&'a Resource>, Option<&'a InstrumentationScope>, &'a str);

fn push_line<T: Serialize>(out: &mut Vec<u8>, head: Head<'_>, time: &str, request_id: Option<&str>, body: T) {
    let (kind, resource, scope, schema_url) = head;
    let line = Line { kind, source: "otlp", time, request_id, resource, scope, schema_url, body };
    push_serde(out, &line, b"{}");
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as PbSpan};
    use serde_json::Value;

    fn resource() -> Option<Resource> {
        Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue { value: Some(any_value::Value::StringValue("fn".into())) }),
                key_strindex: 0,
            }],
            ..Resource::default()
        })
    }

    #[test]
    fn one_line_per_span_and_log_record_in_otlp_json() {
        let span = |n: u8| PbSpan {
            trace_id: vec![n; 16],
            span_id: vec![n; 8],
            name: format!("s{n}"),
            start_time_unix_nano: 1_700_000_000_000_000_123,
            ..PbSpan::default()
        };
        let r = Received {
            time_ms: 1_704_067_200_000,
            request_id: Some("r-1".into()),
            resource_spans: vec![ResourceSpans {
                resource: resource(),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope { name: "lib".into(), ..InstrumentationScope::default() }),
                    spans: vec![span(1), span(2)],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
            resource_logs: vec![ResourceLogs {
                resource: resource(),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord { severity_text: "INFO".into(), ..LogRecord::default() }],
                    ..ScopeLogs::default()
                }],
                schema_url: String::new(),
            }],
            ..Received::default()
        };
        let mut out = Vec::new();
        encode_received(&r, &mut out);
        let lines: Vec<Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["type"], "span");
        assert_eq!(lines[0]["source"], "otlp");
        assert_eq!(lines[0]["time"], "2024-01-01T00:00:00.000Z");
        assert_eq!(lines[0]["requestId"], "r-1");
        assert_eq!(lines[0]["scope"]["name"], "lib");
        assert_eq!(lines[0]["resource"]["attributes"][0]["key"], "service.name");
        assert_eq!(lines[0]["span"]["traceId"], "01010101010101010101010101010101");
        assert_eq!(lines[0]["span"]["spanId"], "0101010101010101");
        assert_eq!(lines[0]["span"]["startTimeUnixNano"], "1700000000000000123", "int64 as a string");
        assert_eq!(lines[1]["span"]["name"], "s2");
        assert_eq!(lines[2]["type"], "log");
        assert_eq!(lines[2]["logRecord"]["severityText"], "INFO");
    }
}
