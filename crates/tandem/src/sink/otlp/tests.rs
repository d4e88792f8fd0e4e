//! Tests of the OTLP sink and its encoders (shared fixtures: a Lambda resource, an
//! invocation with X-Ray context, log records).

use super::encode::*;
use super::ids::*;
use super::logs::*;
use super::metrics::*;
use super::resource::*;
use super::traces::*;
use super::*;
use crate::model::InitInfo;
use crate::model::{HealthSnapshot, Invocation, Level, LogRecord, Source};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, HistogramDataPoint, Metric,
};
use opentelemetry_proto::tonic::trace::v1::{span, status};
use prost::Message;
use serde_json::{json, Value};
use std::collections::HashMap;

#[test]
fn records_produce_their_signals() {
    let log = Item::Log(LogRecord {
        time_ms: 1,
        observed_ms: 1,
        source: Source::Function,
        level: Level::Info,
        request_id: None,
        message: "m".into(),
        attributes: serde_json::Map::new(),
        trace_id: None,
    });
    let inv = Item::from(Invocation::default());
    let health = Item::from(HealthSnapshot::default());
    assert!(produces(&log, Signal::Logs) && !produces(&log, Signal::Metrics) && !produces(&log, Signal::Traces));
    assert!(!produces(&inv, Signal::Logs) && produces(&inv, Signal::Metrics) && produces(&inv, Signal::Traces));
    assert!(produces(&health, Signal::Metrics) && !produces(&health, Signal::Traces));
}

#[tokio::test]
async fn an_unreachable_collector_is_a_retry_and_keeps_progress_clear() {
    let cfg = crate::config::Config::load_with(
        |k| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://127.0.0.1:1".to_owned()),
        |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    )
    .0;
    let mut sink = OtlpSink::new(&cfg.otlp, cfg.resource.clone(), Arc::default()).unwrap();
    assert_eq!(sink.clients.len(), 1, "one origin, one connection");
    let mut batch = vec![Entry::new(Arc::new(Item::from(Invocation::default())), 1)];
    assert!(matches!(sink.attempt(&mut batch).await, Attempt::Retry { .. }));
    assert_eq!(batch[0].progress, 0);
}

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
    let r =
        Resource::from_env(env(&[("OTEL_SERVICE_NAME", "svc"), ("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored")]));
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
    // The cold start's root covers its init, which began before the invocation.
    assert_eq!(root.start_time_unix_nano, 1_704_067_199_800_000_000);
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
        assert!(
            root.start_time_unix_nano <= child.start_time_unix_nano
                && child.end_time_unix_nano <= root.end_time_unix_nano,
            "{} lies inside its parent",
            child.name
        );
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
    assert_eq!(warm.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["checkout", "runtime", "extension_overhead"]);
    assert!(warm[0].status.is_none());
    assert_eq!(warm[0].start_time_unix_nano, 1_704_067_200_000_000_000, "a warm root starts with the invocation");
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
    assert_eq!(
        span["startTimeUnixNano"], "1704067199800000000",
        "64-bit integers are strings (the cold root starts with init)"
    );
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

#[test]
fn an_endpoint_with_an_invalid_port_is_a_problem_never_port_80() {
    for bad in ["http://collector:99999", "http://collector:abc"] {
        let (cfg, problems) = crate::config::Config::load_with(
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", bad), ("TANDEM_SINKS", "otlp")]),
            |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        );
        assert!(
            problems.iter().any(|p| p.key == "OTEL_EXPORTER_OTLP_ENDPOINT" && p.message.contains("invalid port")),
            "{bad}: {problems:?}"
        );
        assert_eq!(
            cfg.otlp.logs.endpoint,
            format!("{}/v1/logs", config::DEFAULT_OTLP_ENDPOINT),
            "{bad}: the default is used"
        );
    }
    let (_, problems) = crate::config::Config::load_with(
        env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:65536/v1/traces")]),
        |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    );
    assert!(problems.iter().any(|p| p.key == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "{problems:?}");
}

fn points(req: &ExportMetricsServiceRequest) -> Vec<(String, i32, u64, u64)> {
    let mut out = Vec::new();
    for m in &req.resource_metrics[0].scope_metrics[0].metrics {
        match &m.data {
            Some(metric::Data::Sum(s)) => out.extend(
                s.data_points
                    .iter()
                    .map(|p| (m.name.clone(), s.aggregation_temporality, p.start_time_unix_nano, p.time_unix_nano)),
            ),
            Some(metric::Data::Histogram(h)) => out.extend(
                h.data_points
                    .iter()
                    .map(|p| (m.name.clone(), h.aggregation_temporality, p.start_time_unix_nano, p.time_unix_nano)),
            ),
            _ => {}
        }
    }
    out
}

#[test]
fn delta_windows_are_contiguous_and_never_overlap() {
    // The second invocation starts in the millisecond the first one ends in.
    let first = invocation(true, "success");
    let mut second = invocation(false, "success");
    second.request_id = "r-2".into();
    second.start_ms = first.start_ms + 100;
    let state = MetricsState::new(Temporality::Delta);
    let (a, state) = state.export(&lambda_env(), [&first], &[]).unwrap();
    let (b, _) = state.export(&lambda_env(), [&second], &[]).unwrap();
    let (a, b) = (points(&a), points(&b));
    assert!(!a.is_empty() && !b.is_empty());
    let a_end = a[0].3;
    assert!(a.iter().all(|p| p.1 == AggregationTemporality::Delta as i32 && p.2 < p.3 && p.3 == a_end));
    for p in &b {
        assert_eq!(p.2, a_end, "{} starts where the previous window ended", p.0);
        assert!(p.3 > p.2, "{}", p.0);
    }
}

#[test]
fn an_export_is_never_empty_and_health_alone_is_sent() {
    let state = MetricsState::new(Temporality::Delta);
    assert!(state.export(&lambda_env(), [], &[]).is_none());
    let h1 = HealthSnapshot { time_ms: 1_000, started_ms: Some(500), records_in: 10, ..HealthSnapshot::default() };
    let (req, state) = state.export(&lambda_env(), [], &[&h1]).unwrap();
    assert!(!req.encode_to_vec().is_empty());
    let records_in = metric(&req, "tandem.records_in").expect("health metrics are exported");
    let value = |m: &Metric| match &m.data {
        Some(metric::Data::Sum(s)) => (s.aggregation_temporality, s.data_points[0].value.unwrap()),
        other => panic!("{other:?}"),
    };
    assert_eq!(value(records_in).1, number_data_point::Value::AsInt(10));
    // Under `delta`, the next snapshot's counters are changes since the accepted one.
    let h2 = HealthSnapshot { time_ms: 2_000, started_ms: Some(500), records_in: 25, ..HealthSnapshot::default() };
    let (req, _) = state.export(&lambda_env(), [], &[&h2]).unwrap();
    let m = metric(&req, "tandem.records_in").unwrap();
    assert_eq!(value(m), (AggregationTemporality::Delta as i32, number_data_point::Value::AsInt(15)));
}

#[test]
fn cumulative_preference_sends_totals_since_the_first_window() {
    let first = invocation(true, "success");
    let mut second = invocation(false, "success");
    second.start_ms += 5_000;
    let state = MetricsState::new(Temporality::Cumulative);
    let (a, state) = state.export(&lambda_env(), [&first], &[]).unwrap();
    let (b, _) = state.export(&lambda_env(), [&second], &[]).unwrap();
    let total = |req: &ExportMetricsServiceRequest| match &metric(req, "faas.invocations").unwrap().data {
        Some(metric::Data::Sum(s)) => (s.aggregation_temporality, s.data_points[0].value.unwrap()),
        other => panic!("{other:?}"),
    };
    assert_eq!(total(&b), (AggregationTemporality::Cumulative as i32, number_data_point::Value::AsInt(2)));
    assert_eq!(points(&a)[0].2, points(&b)[0].2, "cumulative points keep their start");
    match &metric(&b, "faas.invoke_duration").unwrap().data {
        Some(metric::Data::Histogram(h)) => {
            assert_eq!(h.aggregation_temporality, AggregationTemporality::Cumulative as i32);
            assert_eq!(h.data_points[0].count, 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_environment_identity_completes_the_resource() {
    let ext = "6ef2c2d4-9a3c-4b1f-8d6e-2f4b9f3f0a11";
    let mut r = lambda_env();
    r.identify(&Identity { instance_id: None, extension_id: Some(ext), account_id: Some("012345678912") });
    assert_eq!(r.get_str("faas.instance"), Some(ext), "the extension id stands in for the hidden log stream");
    assert_eq!(r.get_str("cloud.account.id"), Some("012345678912"));
    assert_eq!(r.get_str("cloud.resource_id"), Some("arn:aws:lambda:eu-west-1:012345678912:function:checkout"));
    // initStart's instanceId wins over the extension id; a published version is in the ARN.
    let mut r = Resource::from_env(env(&[
        ("AWS_REGION", "cn-north-1"),
        ("AWS_LAMBDA_FUNCTION_NAME", "checkout"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "7"),
    ]));
    r.identify(&Identity { instance_id: Some("i-1"), extension_id: Some(ext), account_id: Some("1") });
    assert_eq!(r.get_str("faas.instance"), Some("i-1"));
    assert_eq!(r.get_str("cloud.resource_id"), Some("arn:aws-cn:lambda:cn-north-1:1:function:checkout:7"));
    // What OTEL_RESOURCE_ATTRIBUTES names is kept; without an account there is no ARN.
    let mut r = Resource::from_env(env(&[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_LAMBDA_FUNCTION_NAME", "checkout"),
        ("OTEL_RESOURCE_ATTRIBUTES", "cloud.account.id=999,faas.instance=mine"),
    ]));
    r.identify(&Identity { instance_id: Some("i-1"), extension_id: None, account_id: Some("1") });
    assert_eq!((r.get_str("cloud.account.id"), r.get_str("faas.instance")), (Some("999"), Some("mine")));
    let mut r = lambda_env();
    r.identify(&Identity { instance_id: None, extension_id: Some(ext), account_id: None });
    assert_eq!((r.get_str("cloud.account.id"), r.get_str("cloud.resource_id")), (None, None));
}

/// What the receiver took in: spans and log records under the function's resource.
fn received() -> crate::model::Received {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let resource = Some(OtlpResource {
        attributes: vec![encode::kv("service.name", encode::string("their-fn"))],
        ..OtlpResource::default()
    });
    crate::model::Received {
        time_ms: 5,
        request_id: Some(RID.into()),
        resource_spans: vec![ResourceSpans {
            resource: resource.clone(),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "theirs".into(),
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        }],
        resource_logs: vec![ResourceLogs {
            resource,
            scope_logs: vec![ScopeLogs {
                log_records: vec![OtlpLog { severity_text: "WARN".into(), ..OtlpLog::default() }],
                ..ScopeLogs::default()
            }],
            schema_url: String::new(),
        }],
        ..crate::model::Received::default()
    }
}

#[test]
fn received_data_shares_the_requests_of_its_signal_unchanged() {
    let theirs = Item::from(received());
    assert!(
        produces(&theirs, Signal::Logs) && produces(&theirs, Signal::Traces) && !produces(&theirs, Signal::Metrics)
    );
    for protocol in ["http/protobuf", "http/json"] {
        let cfg = crate::config::Config::load_with(
            |k| (k == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| protocol.to_owned()),
            |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        )
        .0;
        let sink = OtlpSink::new(&cfg.otlp, cfg.resource.clone(), Arc::default()).unwrap();
        let batch: Vec<Entry> = [Item::Log(log(Level::Info, Some(RID), None)), theirs.clone()]
            .into_iter()
            .map(|i| Entry::new(Arc::new(i), 1))
            .collect();
        let decode_logs = |b: &[u8]| match protocol {
            "http/json" => serde_json::from_slice::<ExportLogsServiceRequest>(b).unwrap(),
            _ => ExportLogsServiceRequest::decode(b).unwrap(),
        };
        let (body, _) = sink.body(Signal::Logs, &batch, &[0, 1]).unwrap();
        let req = decode_logs(&body);
        assert_eq!(req.resource_logs.len(), 2, "{protocol}: tandem's resource, then theirs");
        assert_eq!(req.resource_logs[0].scope_logs[0].scope.as_ref().map(|s| s.name.as_str()), Some(SCOPE_NAME));
        assert_eq!(req.resource_logs[1], received().resource_logs[0], "{protocol}: theirs unchanged");
        // Received data alone still makes a request, and nothing of tandem's is invented.
        let (body, _) = sink.body(Signal::Traces, &batch, &[1]).unwrap();
        let req = match protocol {
            "http/json" => serde_json::from_slice::<ExportTraceServiceRequest>(&body).unwrap(),
            _ => ExportTraceServiceRequest::decode(&body[..]).unwrap(),
        };
        assert_eq!(req.resource_spans, received().resource_spans, "{protocol}");
        assert!(sink.body(Signal::Metrics, &batch, &[1]).is_none(), "no metrics: no request");
    }
}
