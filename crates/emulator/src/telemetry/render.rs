//! telemetry::render: how one event looks to one subscriber, sans-I/O.
//!
//! Owns the differences between what subscribers asked for: Telemetry API schemas
//! (JSON log lines become objects only from 2022-12-13 on, and only when the function
//! logs in JSON) and the Logs API's own event set (`platform.end`, `platform.fault`,
//! no init events, `platform.runtimeDone` only from schema 2021-03-18).

use super::Source;
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use tandem_wire::error::types as et;
use tandem_wire::subscription::{Api, Subscription};
use tandem_wire::telemetry::{types, End, InitStart, Record, Report};
use tandem_wire::Event;

/// Which rendering a subscriber gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    Telemetry { structured: bool },
    Logs { runtime_done: bool },
}

impl Flavor {
    pub fn of(s: &Subscription) -> Self {
        match s.api {
            Api::Telemetry => Flavor::Telemetry { structured: s.structured_logs() },
            Api::Logs => Flavor::Logs { runtime_done: s.logs_runtime_done() },
        }
    }
}

#[derive(Serialize)]
struct Out<'a, R: Serialize> {
    time: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    record: R,
}

fn to_bytes<T: Serialize>(v: &T) -> Option<Bytes> {
    serde_json::to_vec(v).ok().map(Bytes::from)
}

/// Renders a log line. With `json_logs` (the function's `AWS_LAMBDA_LOG_FORMAT=JSON`)
/// and a structured flavor, a line holding a JSON object becomes that object.
pub fn render_line(flavor: Flavor, time: &str, source: Source, text: &str, json_logs: bool) -> Option<Bytes> {
    let kind = source.type_name();
    if json_logs && flavor == (Flavor::Telemetry { structured: true }) && text.trim_start().starts_with('{') {
        if let Ok(raw) = serde_json::from_str::<&RawValue>(text.trim()) {
            return to_bytes(&Out { time, kind, record: raw });
        }
    }
    to_bytes(&Out { time, kind, record: text })
}

/// Renders a platform event; the Logs API may turn one event into none or two.
pub fn render_platform(flavor: Flavor, event: &Event, out: &mut Vec<Bytes>) {
    let push = |out: &mut Vec<Bytes>, b: Option<Bytes>| out.extend(b);
    match flavor {
        Flavor::Telemetry { structured } => match &event.record {
            Record::LogsSubscription(_) | Record::End(_) | Record::Fault(_) => {}
            // `instanceId` and `instanceMaxMemory` came with schema 2022-12-13.
            Record::InitStart(s) if !structured && (s.instance_id.is_some() || s.instance_max_memory.is_some()) => {
                let record = InitStart { instance_id: None, instance_max_memory: None, ..s.clone() };
                push(out, to_bytes(&Event::new(event.time.clone(), Record::InitStart(record))))
            }
            _ => push(out, to_bytes(event)),
        },
        Flavor::Logs { runtime_done } => {
            let time = event.time.as_str();
            match &event.record {
                Record::Start(s) => {
                    #[derive(Serialize)]
                    #[serde(rename_all = "camelCase")]
                    struct LogsStart<'a> {
                        request_id: &'a str,
                        #[serde(skip_serializing_if = "Option::is_none")]
                        version: Option<&'a str>,
                    }
                    let record = LogsStart { request_id: &s.request_id, version: s.version.as_deref() };
                    push(out, to_bytes(&Out { time, kind: types::START, record }));
                }
                Record::RuntimeDone(r) => {
                    if runtime_done {
                        #[derive(Serialize)]
                        #[serde(rename_all = "camelCase")]
                        struct LogsRuntimeDone<'a> {
                            request_id: &'a str,
                            status: &'a str,
                        }
                        let record = LogsRuntimeDone { request_id: &r.request_id, status: r.status.as_str() };
                        push(out, to_bytes(&Out { time, kind: types::RUNTIME_DONE, record }));
                    }
                    if let Some(et) = r
                        .error_type
                        .as_deref()
                        .filter(|e| e.starts_with(et::RUNTIME_PREFIX) || e.starts_with(et::SANDBOX_PREFIX))
                    {
                        let fault = format!("RequestId: {} Error: {et}", r.request_id);
                        push(out, to_bytes(&Out { time, kind: types::FAULT, record: fault }));
                    }
                }
                Record::Report(r) => {
                    push(
                        out,
                        to_bytes(&Out { time, kind: types::END, record: End { request_id: r.request_id.clone() } }),
                    );
                    let report = Report { status: None, error_type: None, spans: None, tracing: None, ..r.clone() };
                    push(out, to_bytes(&Out { time, kind: types::REPORT, record: report }));
                }
                Record::Extension(_) | Record::LogsSubscription(_) | Record::LogsDropped(_) | Record::Fault(_) => {
                    push(out, to_bytes(event))
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tandem_wire::telemetry::{ReportMetrics, RuntimeDone, Start, Status};

    fn parse(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn json_lines_become_objects_only_for_structured_subscribers_of_json_functions() {
        let line = r#"{"level":"INFO","message":"hi","requestId":"r"}"#;
        let s = Flavor::Telemetry { structured: true };
        let old = Flavor::Telemetry { structured: false };
        assert_eq!(parse(&render_line(s, "t", Source::Function, line, true).unwrap())["record"]["message"], "hi");
        assert_eq!(parse(&render_line(old, "t", Source::Function, line, true).unwrap())["record"], line);
        assert_eq!(parse(&render_line(s, "t", Source::Function, line, false).unwrap())["record"], line);
        let v = parse(&render_line(s, "t", Source::Function, "{not json", true).unwrap());
        assert_eq!((v["type"].as_str(), v["record"].as_str()), (Some("function"), Some("{not json")));
        assert_eq!(parse(&render_line(s, "t", Source::Extension, "x", true).unwrap())["type"], "extension");
    }

    #[test]
    fn init_start_carries_the_instance_from_schema_2022_12_13_on() {
        let e = Event::new(
            "t".into(),
            Record::InitStart(InitStart {
                initialization_type: tandem_wire::telemetry::InitializationType::OnDemand,
                phase: tandem_wire::telemetry::Phase::Init,
                function_name: Some("f".into()),
                function_version: None,
                instance_id: Some("i-1".into()),
                instance_max_memory: Some(128),
                runtime_version: None,
                runtime_version_arn: None,
                tracing: None,
            }),
        );
        let mut out = Vec::new();
        render_platform(Flavor::Telemetry { structured: true }, &e, &mut out);
        render_platform(Flavor::Telemetry { structured: false }, &e, &mut out);
        let (new, old) = (parse(&out[0]), parse(&out[1]));
        assert_eq!(
            (new["record"]["instanceId"].as_str(), new["record"]["instanceMaxMemory"].as_u64()),
            (Some("i-1"), Some(128))
        );
        assert!(old["record"].get("instanceId").is_none() && old["record"].get("instanceMaxMemory").is_none(), "{old}");
        assert_eq!(old["record"]["functionName"], "f");
    }

    #[test]
    fn logs_api_gets_its_own_event_set() {
        let report = Event::new(
            "t".into(),
            Record::Report(Report {
                request_id: "r".into(),
                status: Some(Status::Success),
                error_type: None,
                metrics: ReportMetrics {
                    duration_ms: 1.5,
                    billed_duration_ms: 2,
                    memory_size_mb: 128,
                    max_memory_used_mb: 30,
                    init_duration_ms: None,
                    restore_duration_ms: None,
                    billed_restore_duration_ms: None,
                },
                spans: None,
                tracing: None,
            }),
        );
        let mut out = Vec::new();
        render_platform(Flavor::Logs { runtime_done: false }, &report, &mut out);
        let got: Vec<Value> = out.iter().map(parse).collect();
        assert_eq!(got[0], json!({"time":"t","type":"platform.end","record":{"requestId":"r"}}));
        assert_eq!(got[1]["type"], "platform.report");
        assert!(got[1]["record"].get("status").is_none());

        let done = Event::new(
            "t".into(),
            Record::RuntimeDone(RuntimeDone {
                request_id: "r".into(),
                status: Status::Error,
                error_type: Some("Runtime.ExitError".into()),
                metrics: None,
                spans: None,
                tracing: None,
            }),
        );
        let mut out = Vec::new();
        render_platform(Flavor::Logs { runtime_done: false }, &done, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(parse(&out[0])["type"], "platform.fault");
        let mut out = Vec::new();
        render_platform(Flavor::Logs { runtime_done: true }, &done, &mut out);
        assert_eq!(
            parse(&out[0]),
            json!({"time":"t","type":"platform.runtimeDone","record":{"requestId":"r","status":"error"}})
        );

        let start = Event::new(
            "t".into(),
            Record::Start(Start { request_id: "r".into(), version: Some("$LATEST".into()), tracing: None }),
        );
        let mut out = Vec::new();
        render_platform(Flavor::Telemetry { structured: true }, &start, &mut out);
        render_platform(Flavor::Logs { runtime_done: true }, &start, &mut out);
        assert_eq!(
            parse(&out[1]),
            json!({"time":"t","type":"platform.start","record":{"requestId":"r","version":"$LATEST"}})
        );
    }
}
