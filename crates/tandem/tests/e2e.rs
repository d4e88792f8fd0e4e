//! End to end: tandem-emulator runs the real `echo-fn` function with the real `tandem`
//! binary as its external extension; records go to real sinks (a file, HTTP servers on
//! 127.0.0.1). Nothing is mocked. Needs `cargo build --workspace --bins` first (for
//! echo-fn).

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tandem_emulator::{Environment, Observation};
use tandem_wire::Status;

fn s(v: &str) -> String {
    v.to_owned()
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn otlp_log_bodies(reqs: &[ExportLogsServiceRequest]) -> Vec<String> {
    reqs.iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .filter_map(|l| match l.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn decode<M: Message + Default>(receiver: &Receiver, path: &str) -> Vec<M> {
    receiver
        .accepted()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| {
            assert_eq!(r.content_type, "application/x-protobuf");
            M::decode(&r.body[..]).unwrap_or_else(|e| panic!("{path}: not OTLP protobuf: {e}"))
        })
        .collect()
}

/// The platform records of `kind` the extension accepted.
fn platform(env: &Environment, kind: &str) -> Vec<Value> {
    env.delivered_events("tandem").into_iter().filter(|e| e["type"] == kind).map(|e| e["record"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_line_arrives_exactly_once_at_file_http_and_otlp() {
    let dir = tempdir("once");
    let http = Receiver::start().await;
    let otlp = Receiver::start().await;
    let env = start(
        &dir,
        &[
            ("TANDEM_SINKS", s("stdout,file,http,otlp")),
            ("TANDEM_HTTP_URL", http.url("/ingest")),
            ("TANDEM_HTTP_GZIP", s("true")),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url("")),
        ],
        |_| {},
    )
    .await;
    let mut want = Vec::new();
    let mut ids = Vec::new();
    for i in 0..6 {
        let out = lines(&format!("inv{i}"), 4);
        let err = lines(&format!("inv{i}-stderr"), 2);
        want.extend(out.iter().cloned());
        want.extend(err.iter().cloned());
        let r = invoke(&env, json!({"log": out, "stderr": err})).await;
        assert_eq!(r.result.status, Status::Success);
        ids.push(r.result.request_id);
    }
    env.shutdown().await;

    exactly_once("file", &ndjson_messages(&read(&dir.join("records.ndjson"))), &want);
    exactly_once("http", &ndjson_messages(&http.ndjson()), &want);
    let logs: Vec<ExportLogsServiceRequest> = decode(&otlp, "/v1/logs");
    exactly_once("otlp", &otlp_log_bodies(&logs), &want);

    // Each log record carries its invocation, and the resource names the function.
    let rec = logs.iter().flat_map(|r| &r.resource_logs).next().expect("a logs request");
    let attrs = &rec.resource.as_ref().expect("a resource").attributes;
    assert!(attrs.iter().any(|kv| kv.key == "faas.name"
        && matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()), Some(any_value::Value::StringValue(s)) if s == "echo")));

    // One SERVER span per invocation, and the invocation metrics.
    let traces: Vec<ExportTraceServiceRequest> = decode(&otlp, "/v1/traces");
    let servers: Vec<String> = traces
        .iter()
        .flat_map(|t| &t.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .filter(|s| s.kind == SpanKind::Server as i32)
        .filter_map(|s| {
            s.attributes.iter().find(|kv| kv.key == "faas.invocation_id").and_then(|kv| {
                match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(v) => Some(v.clone()),
                    _ => None,
                }
            })
        })
        .collect();
    exactly_once("otlp spans", &servers, &ids);
    let metrics: Vec<ExportMetricsServiceRequest> = decode(&otlp, "/v1/metrics");
    let names: Vec<&str> = metrics
        .iter()
        .flat_map(|m| &m.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.as_str())
        .collect();
    for want in ["faas.invocations", "faas.invoke_duration", "tandem.records_in", "tandem.delivered"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // The stdout sink printed one EMF document per invocation.
    let emf_of = |l: &String, id: &String| l.contains("\"_aws\"") && l.contains(&format!("\"requestId\":\"{id}\""));
    let console = console_after_shutdown(&env, |c| ids.iter().all(|id| c.iter().any(|l| emf_of(l, id)))).await;
    for id in &ids {
        assert_eq!(console.iter().filter(|l| emf_of(l, id)).count(), 1, "EMF document of {id}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_protocol_is_understood_by_the_reference_types() {
    let dir = tempdir("otlp-json");
    let otlp = Receiver::start().await;
    let env = start(
        &dir,
        &[
            ("TANDEM_SINKS", s("otlp")),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url("/base")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", s("http/json")),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", s("gzip")),
        ],
        |_| {},
    )
    .await;
    let want = lines("json", 3);
    invoke(&env, json!({"log": want})).await;
    env.shutdown().await;
    let logs: Vec<ExportLogsServiceRequest> = otlp
        .accepted()
        .iter()
        .filter(|r| r.path == "/base/v1/logs")
        .map(|r| {
            assert_eq!(r.content_type, "application/json");
            serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not OTLP/JSON: {e}"))
        })
        .collect();
    exactly_once("otlp/json", &otlp_log_bodies(&logs), &want);
    let traces = otlp.accepted().iter().filter(|r| r.path == "/base/v1/traces").count();
    assert!(traces >= 1, "spans sent");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_metrics_equal_what_the_emulator_reported() {
    let dir = tempdir("metrics");
    let env = start(&dir, &[("TANDEM_SINKS", s("file"))], |_| {}).await;
    for payload in [json!({"sleep_ms": 30}), json!({"alloc_mb": 24, "response_bytes": 5000}), json!({"error": "boom"})]
    {
        invoke(&env, payload).await;
    }
    env.shutdown().await;
    let text = read(&dir.join("records.ndjson"));
    let invocations: HashMap<String, Value> = ndjson_of(&text, "invocation")
        .into_iter()
        .map(|v| (v["requestId"].as_str().unwrap_or_default().to_owned(), v))
        .collect();
    let reports = platform(&env, "platform.report");
    assert_eq!(reports.len(), 3, "{reports:#?}");
    assert_eq!(ndjson_of(&text, "invocation").len(), 3, "one record per invocation");
    for (n, r) in reports.iter().enumerate() {
        let id = r["requestId"].as_str().expect("a request id");
        let inv = invocations.get(id).unwrap_or_else(|| panic!("no invocation record for {id}"));
        let m = &r["metrics"];
        assert_eq!(inv["durationMs"], m["durationMs"], "{id}");
        assert_eq!(inv["billedDurationMs"], m["billedDurationMs"], "{id}");
        assert_eq!(inv["memorySizeMB"], m["memorySizeMB"], "{id}");
        assert_eq!(inv["maxMemoryUsedMB"], m["maxMemoryUsedMB"], "{id}");
        assert_eq!(inv["status"], r["status"], "{id}");
        assert_eq!(inv["complete"], true);
        let overhead = r["spans"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "extensionOverhead"));
        if let Some(o) = overhead {
            assert_eq!(inv["postRuntimeExtensionMs"], o["durationMs"], "{id}");
        }
        if n == 0 {
            assert_eq!(inv["coldStart"], true);
            assert_eq!(inv["initDurationMs"], m["initDurationMs"]);
        } else {
            assert_eq!(inv["coldStart"], false);
        }
    }
    for d in platform(&env, "platform.runtimeDone") {
        let id = d["requestId"].as_str().expect("a request id");
        let inv = &invocations[id];
        assert_eq!(inv["runtimeDurationMs"], d["metrics"]["durationMs"], "{id}");
        if let Some(b) = d["metrics"].get("producedBytes") {
            assert_eq!(&inv["producedBytes"], b, "{id}");
        }
        let span = |name: &str| {
            d["spans"].as_array().and_then(|s| s.iter().find(|s| s["name"] == name)).map(|s| s["durationMs"].clone())
        };
        if let Some(l) = span("responseLatency") {
            assert_eq!(inv["responseLatencyMs"], l, "{id}");
        }
        if d["status"] != "success" {
            assert_eq!(inv["errorType"], d["errorType"], "{id}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_sink_down_for_50_invocations_loses_nothing() {
    let dir = tempdir("down50");
    let http = Receiver::start().await;
    http.set_mode(Mode::Unavailable);
    let env = start(
        &dir,
        &[
            ("TANDEM_SINKS", s("http")),
            ("TANDEM_HTTP_URL", http.url("/ingest")),
            ("TANDEM_FLUSH", s("end")),
            ("TANDEM_RETRY_BASE_MS", s("5")),
            ("TANDEM_RETRY_MAX_MS", s("20")),
        ],
        |_| {},
    )
    .await;
    let mut want = Vec::new();
    for i in 0..50 {
        let l = lines(&format!("down{i}"), 2);
        want.extend(l.iter().cloned());
        invoke(&env, json!({"log": l})).await;
    }
    assert!(http.hits() >= 50, "tandem kept trying ({} requests)", http.hits());
    assert!(http.accepted().is_empty());
    http.set_mode(Mode::Ok);
    for i in 50..55 {
        let l = lines(&format!("up{i}"), 2);
        want.extend(l.iter().cloned());
        invoke(&env, json!({"log": l})).await;
    }
    env.shutdown().await;
    let got = ndjson_messages(&http.ndjson());
    exactly_once("http after recovery", &got, &want);
    let health = ndjson_of(&http.ndjson(), "health");
    assert!(health.iter().any(|h| h["retried"].as_u64().unwrap_or(0) > 0), "retries counted in health");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_sink_adds_no_more_than_the_flush_budget() {
    const BUDGET_MS: f64 = 100.0;
    // Telemetry batching (25 ms) and process scheduling on a loaded machine.
    const TOLERANCE_MS: f64 = 120.0;
    let dir = tempdir("hang");
    let http = Receiver::start().await;
    http.set_mode(Mode::Hang);
    let env = start(
        &dir,
        &[
            ("TANDEM_SINKS", s("http")),
            ("TANDEM_HTTP_URL", http.url("/ingest")),
            ("TANDEM_FLUSH", s("end")),
            ("TANDEM_FLUSH_BUDGET_MS", s("100")),
        ],
        |_| {},
    )
    .await;
    for i in 0..6 {
        invoke(&env, json!({"log": lines(&format!("hang{i}"), 3)})).await;
    }
    env.shutdown().await;
    assert!(http.hits() >= 1, "the sink was tried");
    let overheads: Vec<f64> = platform(&env, "platform.report")
        .iter()
        .filter_map(|r| {
            r["spans"]
                .as_array()?
                .iter()
                .find(|s| s["name"] == "extensionOverhead")
                .and_then(|s| s["durationMs"].as_f64())
        })
        .collect();
    assert_eq!(overheads.len(), 6, "{overheads:?}");
    for o in &overheads {
        assert!(*o <= BUDGET_MS + TOLERANCE_MS, "extension overhead {o} ms > budget {BUDGET_MS} ms: {overheads:?}");
    }
    assert!(overheads.iter().any(|o| *o >= BUDGET_MS / 2.0), "the blocking flush did run: {overheads:?}");
    // What the sink never took is written to stdout at SHUTDOWN (spindown).
    let console =
        console_after_shutdown(&env, |c| c.iter().any(|l| l.contains("\"tandem_undelivered_summary\""))).await;
    assert!(console.iter().any(|l| l.contains("\"tandem_undelivered\"")), "last-resort lines");
    assert!(
        console.iter().any(|l| l.contains("\"tandem_undelivered_summary\"")),
        "summary line: {:#?}",
        &console[console.len().saturating_sub(12)..]
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_rejection_is_counted_and_told_once_not_retried() {
    let dir = tempdir("rejected");
    let http = Receiver::start().await;
    http.set_mode(Mode::BadRequest);
    let env = start(
        &dir,
        &[("TANDEM_SINKS", s("http")), ("TANDEM_HTTP_URL", http.url("/ingest")), ("TANDEM_FLUSH", s("end"))],
        |_| {},
    )
    .await;
    let mut sent = Vec::new();
    for i in 0..4 {
        let l = lines(&format!("rejected{i}"), 2);
        sent.extend(l.iter().cloned());
        invoke(&env, json!({"log": l})).await;
    }
    env.shutdown().await;
    // Each line was in exactly one request: never sent again after the 400.
    let bodies: String = http.answered().iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    exactly_once("rejected requests", &ndjson_messages(&bodies), &sent);
    assert!(http.accepted().is_empty());
    let console = console_after_shutdown(&env, |_| true).await;
    let told =
        console.iter().filter(|l| l.starts_with("[tandem] http sink: ") && l.contains("400 Bad Request")).count();
    assert_eq!(told, 1, "told once: {console:#?}");
    // Counted in the health records (which the sink rejected too).
    let health = ndjson_of(&bodies, "health");
    assert!(
        health.iter().any(|h| h["dropped"]["permanent_error"].as_u64().unwrap_or(0) > 0),
        "permanent_error counted: {health:#?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Invokes `payload` (which must fail the invocation) after logging `last`, and checks
/// that those last lines reach both sinks, with the invocation's record.
async fn last_lines_arrive(
    name: &str,
    extra: Value,
    tune: impl FnOnce(&mut tandem_emulator::Config),
) -> (String, Value) {
    let dir = tempdir(name);
    let http = Receiver::start().await;
    let env = start(&dir, &[("TANDEM_SINKS", s("file,http")), ("TANDEM_HTTP_URL", http.url("/ingest"))], tune).await;
    invoke(&env, json!({"log": ["warm-up"]})).await;
    let last = lines(name, 3);
    let mut payload = extra;
    payload["log"] = json!(last);
    let out = invoke(&env, payload).await;
    assert_ne!(out.result.status, Status::Success, "{name}: the invocation must fail");
    let id = out.result.request_id.clone();
    // The reset's SHUTDOWN drains before the environment restarts.
    let arrived = eventually(Duration::from_secs(15), || {
        let got = ndjson_messages(&http.ndjson());
        last.iter().all(|l| got.contains(l))
    })
    .await;
    assert!(arrived, "{name}: last lines at the http sink: {:#?}", env.console_lines());
    env.shutdown().await;
    exactly_once(name, &ndjson_messages(&http.ndjson()), &last);
    exactly_once(name, &ndjson_messages(&read(&dir.join("records.ndjson"))), &last);
    let inv = ndjson_of(&http.ndjson(), "invocation")
        .into_iter()
        .find(|v| v["requestId"] == id.as_str())
        .unwrap_or_else(|| panic!("{name}: no invocation record for {id}"));
    assert_ne!(inv["status"], "success", "{name}: {inv}");
    let _ = std::fs::remove_dir_all(dir);
    (id, inv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_lines_of_a_timed_out_function_are_delivered() {
    let (_, inv) =
        last_lines_arrive("timeout", json!({"sleep_ms": 5000}), |c| c.timeout = Duration::from_secs(1)).await;
    assert_eq!(inv["status"], "timeout", "{inv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_lines_of_a_function_killed_for_memory_are_delivered() {
    last_lines_arrive("oom", json!({"alloc_mb": 300, "sleep_ms": 500}), |c| c.memory_mb = 128).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_lines_of_a_crashed_function_are_delivered() {
    last_lines_arrive("crash", json!({"exit": 3}), |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_backlog_drains_before_the_deadline() {
    let dir = tempdir("backlog");
    let http = Receiver::start().await;
    let env = start(
        &dir,
        &[
            ("TANDEM_SINKS", s("http")),
            ("TANDEM_HTTP_URL", http.url("/ingest")),
            // Flushed at the first INVOKE only: everything else waits for SHUTDOWN.
            ("TANDEM_FLUSH", s("periodic,3600000")),
            ("TANDEM_BATCH_MAX_RECORDS", s("500")),
        ],
        |_| {},
    )
    .await;
    const INVOKES: usize = 5;
    for _ in 0..INVOKES {
        invoke(&env, json!({"log_bytes": 100_000})).await;
    }
    let before = ndjson_messages(&http.ndjson()).len();
    env.shutdown().await;
    let got = ndjson_messages(&http.ndjson());
    let lines = got.iter().filter(|m| m.starts_with("line ")).count();
    assert_eq!(lines, INVOKES * 1000, "every line of the backlog ({before} before SHUTDOWN)");
    assert!(before < got.len() / 2, "the backlog waited for SHUTDOWN ({before} of {})", got.len());
    let obs = env.observations();
    let deadline = obs
        .iter()
        .find_map(|o| match &o.what {
            Observation::ShutdownStart { deadline_ms, .. } => Some(*deadline_ms),
            _ => None,
        })
        .expect("a SHUTDOWN");
    let exited = obs
        .iter()
        .find(|o| matches!(&o.what, Observation::ProcessExited { process, .. } if process == "tandem"))
        .expect("tandem exited");
    assert!(exited.epoch_ms <= deadline, "tandem exited at {} after the deadline {deadline}", exited.epoch_ms);
    match &exited.what {
        Observation::ProcessExited { exit, .. } => assert_eq!(exit.code, Some(0), "{exit:?}"),
        _ => unreachable!(),
    }
    assert!(
        !obs.iter().any(|o| matches!(&o.what, Observation::Signalled { process, .. } if process == "tandem")),
        "tandem was never signalled"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_survives_a_kill_9_between_invocations() {
    let dir = tempdir("kill9");
    let http = Receiver::start().await;
    http.set_mode(Mode::Unavailable);
    let env = start(
        &dir,
        &[
            ("TANDEM_SINKS", s("http")),
            ("TANDEM_HTTP_URL", http.url("/ingest")),
            ("TANDEM_FLUSH", s("end")),
            ("TANDEM_BUFFER_MAX_RECORDS", s("1")),
            ("TANDEM_RETRY_BASE_MS", s("5")),
        ],
        |_| {},
    )
    .await;
    let mut want = Vec::new();
    for i in 0..3 {
        let l = lines(&format!("before{i}"), 3);
        want.extend(l.iter().cloned());
        invoke(&env, json!({"log": l})).await;
    }
    // Between invocations: the environment is frozen.
    let frozen = eventually(Duration::from_secs(5), || {
        env.observations().last().is_some_and(|o| matches!(o.what, Observation::Frozen))
    })
    .await;
    assert!(frozen, "the environment froze after the invocation");
    let pids = tandem_pids(&env);
    assert_eq!(pids.len(), 1);
    let spooled = std::fs::read_dir(dir.join("spool/http")).map(|d| d.count()).unwrap_or(0);
    assert!(spooled > 0, "records are on disk before the kill");
    let status = std::process::Command::new("kill").args(["-9", &pids[0].to_string()]).status().expect("run kill");
    assert!(status.success());
    http.set_mode(Mode::Ok);
    // The emulator finds tandem dead at the next thaw (that invocation fails with
    // Extension.Crash), resets, and starts a new tandem at the following one.
    let mut after = Vec::new();
    for i in 0..3 {
        let l = lines(&format!("after{i}"), 3);
        let out = invoke(&env, json!({"log": l.clone()})).await;
        if out.result.status == Status::Success {
            after.extend(l);
        }
    }
    env.shutdown().await;
    want.extend(after);
    assert_eq!(
        tandem_pids(&env).len(),
        2,
        "a new tandem process started: {:#?}",
        env.observations().iter().map(|o| format!("{:?}", o.what)).collect::<Vec<_>>()
    );
    exactly_once("after kill -9", &ndjson_messages(&http.ndjson()), &want);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_falls_back_to_stdout_and_says_why() {
    let dir = tempdir("badconfig");
    let env = start(&dir, &[("TANDEM_SINKS", s("kafka")), ("TANDEM_FLUSH", s("sometimes"))], |_| {}).await;
    let r = invoke(&env, json!({"log": ["hello"]})).await;
    assert_eq!(r.result.status, Status::Success, "the function is not affected");
    env.shutdown().await;
    let id = &r.result.request_id;
    let console =
        console_after_shutdown(&env, |c| c.iter().any(|l| l.starts_with("{\"_aws\"") && l.contains(id.as_str()))).await;
    let told = |needle: &str| console.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(
        told("[tandem] TANDEM_SINKS: unknown sink \"kafka\" (stdout, file, http, otlp); dropped"),
        1,
        "{console:#?}"
    );
    assert_eq!(told("[tandem] TANDEM_SINKS: no usable sink left; using stdout"), 1, "{console:#?}");
    assert_eq!(told("[tandem] TANDEM_FLUSH: \"sometimes\" is not a flush strategy"), 1, "{console:#?}");
    // The stdout sink runs instead: the invocation's EMF document.
    assert!(
        console.iter().any(|l| l.starts_with("{\"_aws\"") && l.contains(&format!("\"requestId\":\"{id}\""))),
        "{console:#?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_apply_in_order_and_a_bad_pattern_is_reported_once_at_start() {
    let dir = tempdir("rules");
    let rules = r#"[
        {"kind":"exclude","name":"no-health","pattern":"^GET /health"},
        {"kind":"mask","name":"cards","pattern":"[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{4}","replacement":"****"},
        {"kind":"mask","name":"broken","pattern":"(unclosed"}
    ]"#;
    let env =
        start(&dir, &[("TANDEM_SINKS", s("file")), ("TANDEM_FLUSH", s("end")), ("TANDEM_RULES", s(rules))], |_| {})
            .await;
    // Reported at start: before any invocation, in one line.
    let told = env.console_lines().iter().filter(|l| l.contains("rule \"broken\"")).count();
    assert_eq!(told, 1, "{:#?}", env.console_lines());
    invoke(&env, json!({"log": ["GET /health 200", "paid with 1234-5678-9012-3456", "plain line"]})).await;
    env.shutdown().await;
    let written = std::fs::read_to_string(dir.join("records.ndjson")).unwrap_or_default();
    let messages = ndjson_messages(&written);
    assert!(!messages.iter().any(|m| m.contains("/health")), "excluded: {messages:?}");
    assert!(messages.iter().any(|m| m == "paid with ****"), "masked: {messages:?}");
    assert!(messages.iter().any(|m| m == "plain line"), "{messages:?}");
    let told = env.console_lines().iter().filter(|l| l.contains("rule \"broken\"")).count();
    assert_eq!(told, 1, "reported once, not per line");
    let _ = std::fs::remove_dir_all(dir);
}

fn check_config(env: &[(&str, &str)]) -> (i32, String) {
    let out = std::process::Command::new(tandem_bin())
        .arg("check-config")
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run tandem check-config");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn check_config_validates_offline() {
    let (code, out) = check_config(&[
        ("TANDEM_SINKS", "file,otlp"),
        ("TANDEM_FILE_PATH", "/tmp/x.ndjson"),
        ("TANDEM_OTLP_ENDPOINT", "http://collector:4318"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sinks: file, otlp"), "{out}");
    assert!(out.contains("configuration OK"), "{out}");

    let (code, out) = check_config(&[
        ("TANDEM_SINKS", "http,stdout"),
        ("TANDEM_FLUSH", "never"),
        ("TANDEM_RULES", r#"[{"kind":"exclude","name":"bad","pattern":"("}]"#),
    ]);
    assert_eq!(code, 1, "{out}");
    let problems: Vec<&str> = out.lines().filter(|l| l.starts_with("problem: ")).collect();
    assert_eq!(problems.len(), 3, "{out}");
    assert!(problems.contains(&"problem: TANDEM_SINKS: the http sink needs TANDEM_HTTP_URL; dropped"), "{out}");
    assert!(
        problems.iter().any(|p| p.starts_with("problem: TANDEM_FLUSH: \"never\" is not a flush strategy")),
        "{out}"
    );
    assert!(problems.iter().any(|p| p.starts_with("problem: TANDEM_RULES: rule \"bad\": invalid pattern")), "{out}");
    assert!(out.contains("sinks: stdout"), "falls back: {out}");

    let dir = tempdir("check");
    let file = dir.join("tandem.toml");
    std::fs::write(&file, "sinks = [\"file\"]\nmystery = 1\n").expect("write the file");
    let path = file.display().to_string();
    let (code, out) = check_config(&[("TANDEM_CONFIG", path.as_str())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("problem: TANDEM_CONFIG: unknown setting \"mystery\" in {path}; ignored")), "{out}");
    assert!(out.contains("sinks: file"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn version_help_and_bad_arguments() {
    let run = |args: &[&str]| std::process::Command::new(tandem_bin()).args(args).output().expect("run tandem");
    let v = run(&["--version"]);
    assert!(v.status.success());
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), format!("tandem {}", env!("CARGO_PKG_VERSION")));
    let h = run(&["--help"]);
    assert!(h.status.success());
    assert!(String::from_utf8_lossy(&h.stdout).contains("TANDEM_FLUSH_BUDGET_MS"));
    let bad = run(&["--frobnicate"]);
    assert_eq!(bad.status.code(), Some(2));
}
