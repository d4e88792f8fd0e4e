//! Telemetry API and Logs API: what real subscribers (the lambda-extension crate's
//! processors, probe-ext over HTTP and TCP) receive, with Lambda's record schemas,
//! ordering rules, failure statuses and the freeze.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tandem_emulator::{Environment, Observation, Outcome};
use tandem_wire::Status;

/// A port for the lambda-extension crate's listener (it takes a fixed port): bound to
/// find a free one, then released.
fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port().to_string()
}

/// Asserts that `subscriber` accepted what it was sent: no delivery answered with an
/// error status (a parser rejecting a batch answers 4xx). Connection failures are
/// not counted: lines written after the subscriber exited at SHUTDOWN cannot arrive.
#[track_caller]
fn all_accepted(env: &Environment, subscriber: &str) {
    let d: Vec<_> = env.deliveries().into_iter().filter(|d| d.subscriber == subscriber).collect();
    assert!(d.iter().any(|d| d.delivered()), "deliveries to {subscriber}: {d:#?}");
    let bad: Vec<_> = d.iter().filter(|d| matches!(d.outcome, Outcome::Rejected(_))).collect();
    assert!(bad.is_empty(), "{subscriber} rejected deliveries: {bad:#?}");
}

fn is_lambda_time(t: &Value) -> bool {
    let t = t.as_str().unwrap_or_default();
    t.len() == 24
        && t.ends_with('Z')
        && t.as_bytes()[10] == b'T'
        && t.as_bytes()[19] == b'.'
        && t.chars().filter(|c| c.is_ascii_digit()).count() == 17
}

fn by_request<'a>(events: &'a [Value], kind: &str, rid: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind && e["record"]["requestId"] == rid).collect()
}

fn one<'a>(events: &'a [Value], kind: &str, rid: &str) -> &'a Value {
    match by_request(events, kind, rid)[..] {
        [e] => e,
        ref other => panic!("one {kind} for {rid}, got {other:?}"),
    }
}

fn index_of(events: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    events.iter().position(pred).expect("event present")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lext_telemetry_receives_platform_and_function_events() {
    let dir = TempDir::new();
    let port = free_port();
    let tel = Ext::lext(
        &dir,
        "lext-telemetry",
        // Lingering after SHUTDOWN, as AWS's samples do: the last invocation's records
        // may arrive after it (they are delivered by the subscription's buffering).
        &[
            ("LEXT_PORT", &port),
            ("LEXT_EXIT_ON_SHUTDOWN", "1"),
            ("LEXT_SHUTDOWN_LINGER_MS", "600"),
            ("LEXT_TIMEOUT_MS", "25"),
            ("LEXT_TYPES", "platform,function"),
        ],
    );
    let mut cfg = echo_config();
    cfg.extensions = vec![tel.path()];
    let env = start(cfg).await;
    let first = invoke_ok(&env, r#"{"log":["hello telemetry 1"]}"#).await;
    let second = invoke_ok(&env, r#"{"log":["hello telemetry 2"]}"#).await;
    shutdown(&env).await;
    all_accepted(&env, "lext-telemetry");
    let events: Vec<Value> = tel.lines().into_iter().filter(|l| l.get("type").is_some()).collect();
    for rid in [&first.request_id, &second.request_id] {
        for kind in ["platform.start", "platform.runtimeDone", "platform.report"] {
            one(&events, kind, rid);
        }
    }
    let functions: Vec<&Value> = events.iter().filter(|e| e["type"] == "function").map(|e| &e["record"]).collect();
    assert_eq!(functions, vec!["hello telemetry 1", "hello telemetry 2"]);
    assert!(events.iter().any(|e| e["type"] == "platform.initStart"), "{events:?}");
    assert!(events.iter().all(|e| is_lambda_time(&e["time"])), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lext_logs_receives_logs_api_events() {
    let dir = TempDir::new();
    let port = free_port();
    let logs = Ext::lext(
        &dir,
        "lext-logs",
        &[
            ("LEXT_PORT", &port),
            ("LEXT_EXIT_ON_SHUTDOWN", "1"),
            ("LEXT_SHUTDOWN_LINGER_MS", "600"),
            ("LEXT_TIMEOUT_MS", "25"),
        ],
    );
    let mut cfg = echo_config();
    cfg.extensions = vec![logs.path()];
    let env = start(cfg).await;
    let out = invoke_ok(&env, r#"{"log":["hello logs api"]}"#).await;
    shutdown(&env).await;
    all_accepted(&env, "lext-logs");
    let events: Vec<Value> = logs.lines().into_iter().filter(|l| l.get("type").is_some()).collect();
    let rid = out.request_id.as_str();
    one(&events, "platform.start", rid);
    one(&events, "platform.end", rid);
    let report = one(&events, "platform.report", rid);
    assert!(report["record"]["metrics"]["durationMs"].as_f64().is_some(), "{report}");
    assert_eq!(report["record"]["metrics"]["memorySizeMB"], 128);
    // lext-logs subscribes with schema 2021-03-18: runtimeDone is part of it.
    let done = one(&events, "platform.runtimeDone", rid);
    assert_eq!(done["record"]["status"], "success");
    assert!(events.iter().any(|e| e["type"] == "function" && e["record"] == "hello logs api"), "{events:?}");
    let sub = events.iter().find(|e| e["type"] == "platform.logsSubscription").expect("logsSubscription");
    assert_eq!(sub["record"]["name"], "lext-logs");
    assert_eq!(sub["record"]["state"], "Subscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_are_objects_for_schema_2022_12_13_and_strings_before() {
    let dir = TempDir::new();
    let new = Ext::probe(&dir, "probe-new", &[("PROBE_SCHEMA", "2022-12-13"), ("PROBE_TYPES", "function")]);
    let old = Ext::probe(&dir, "probe-old", &[("PROBE_SCHEMA", "2022-07-01"), ("PROBE_TYPES", "function")]);
    let mut cfg = echo_config();
    cfg.env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
    cfg.extensions = vec![new.path(), old.path()];
    let env = start(cfg).await;
    let structured =
        json!({"timestamp":"2024-05-01T10:00:00.000Z","level":"INFO","message":"structured","requestId":"r-1"});
    let payload = json!({"json_log":[structured], "log":["plain text"]}).to_string();
    invoke_ok(&env, &payload).await;
    shutdown(&env).await;
    let records = |p: &Ext| -> Vec<Value> {
        p.probe_output().of_type("function").into_iter().map(|e| e["record"].clone()).collect()
    };
    // echo-fn prints its "log" lines before its "json_log" objects.
    assert_eq!(records(&new), vec![json!("plain text"), structured.clone()]);
    assert_eq!(records(&old), vec![json!("plain text"), json!(structured.to_string())]);
    // Without AWS_LAMBDA_LOG_FORMAT=JSON, the same line stays text even for 2022-12-13.
    let dir2 = TempDir::new();
    let plain = Ext::probe(&dir2, "probe-new", &[("PROBE_SCHEMA", "2022-12-13"), ("PROBE_TYPES", "function")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![plain.path()];
    let env = start(cfg).await;
    invoke_ok(&env, &payload).await;
    shutdown(&env).await;
    assert_eq!(records(&plain), vec![json!("plain text"), json!(structured.to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_subscriber_receives_newline_delimited_events() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_PROTOCOL", "TCP"), ("PROBE_TIMEOUT_MS", "25")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let a = invoke_ok(&env, r#"{"log":["over tcp 1"]}"#).await;
    let b = invoke_ok(&env, r#"{"log":["over tcp 2"]}"#).await;
    shutdown(&env).await;
    let p = probe.probe_output();
    assert!(p.bad().is_empty(), "every line was complete JSON: {:?}", p.bad());
    let events = p.events();
    for rid in [&a.request_id, &b.request_id] {
        for kind in ["platform.start", "platform.runtimeDone", "platform.report"] {
            one(&events, kind, rid);
        }
    }
    let lines: Vec<&Value> = events.iter().filter(|e| e["type"] == "function").map(|e| &e["record"]).collect();
    assert_eq!(lines, vec!["over tcp 1", "over tcp 2"]);
    let d: Vec<_> = env.deliveries().into_iter().filter(|d| d.subscriber == "probe-ext").collect();
    assert!(d.iter().all(|d| d.protocol == tandem_wire::subscription::Protocol::Tcp && d.delivered()), "{d:#?}");
    assert_eq!(env.delivered_events("probe-ext"), events, "what was sent is what arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_records_have_lambda_schemas() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "platform,function,extension")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let first = invoke_ok(&env, r#"{"log":["first line"]}"#).await;
    let second = invoke_ok(&env, r#"{"log":["second line"]}"#).await;
    shutdown(&env).await;
    all_accepted(&env, "probe-ext");
    let events = probe.probe_output().events();
    assert!(events.iter().all(|e| is_lambda_time(&e["time"])), "{events:#?}");
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["type"] == kind).collect() };

    let init_start = of("platform.initStart");
    assert_eq!(init_start.len(), 1);
    let r = &init_start[0]["record"];
    assert_eq!(r["functionName"], "function");
    assert_eq!(r["functionVersion"], "$LATEST");
    assert_eq!(r["initializationType"], "on-demand");
    assert_eq!(r["phase"], "init");

    let rd = of("platform.initRuntimeDone");
    assert_eq!(rd.len(), 1);
    let r = &rd[0]["record"];
    assert_eq!(
        (&r["initializationType"], &r["phase"], &r["status"]),
        (&json!("on-demand"), &json!("init"), &json!("success"))
    );

    let ir = of("platform.initReport");
    assert_eq!(ir.len(), 1);
    let r = &ir[0]["record"];
    assert_eq!(
        (&r["initializationType"], &r["phase"], &r["status"]),
        (&json!("on-demand"), &json!("init"), &json!("success"))
    );
    let init_ms = r["metrics"]["durationMs"].as_f64().expect("initReport durationMs");
    assert!(init_ms > 0.0, "{r}");

    let ext = of("platform.extension");
    assert_eq!(ext.len(), 1, "{ext:?}");
    assert_eq!(ext[0]["record"], json!({"name":"probe-ext","state":"Ready","events":["INVOKE","SHUTDOWN"]}));
    let sub = of("platform.telemetrySubscription");
    assert_eq!(sub.len(), 1, "{sub:?}");
    assert_eq!(
        sub[0]["record"],
        json!({"name":"probe-ext","state":"Subscribed","types":["platform","function","extension"]})
    );

    for (i, out) in [&first, &second].into_iter().enumerate() {
        let rid = out.request_id.as_str();
        let start = one(&events, "platform.start", rid);
        assert_eq!(start["record"]["version"], "$LATEST");
        assert_eq!(start["record"]["tracing"]["type"], "X-Amzn-Trace-Id");
        let trace = start["record"]["tracing"]["value"].as_str().expect("trace value");
        assert!(trace.starts_with("Root=1-"), "{start}");

        let done = one(&events, "platform.runtimeDone", rid);
        let r = &done["record"];
        assert_eq!(r["status"], "success");
        assert!(r.get("errorType").is_none(), "{done}");
        assert!(r["metrics"]["durationMs"].as_f64().is_some_and(|d| d >= 0.0), "{done}");
        assert_eq!(r["metrics"]["producedBytes"].as_u64(), Some(out.payload.len() as u64), "{done}");
        let names: Vec<&str> =
            r["spans"].as_array().expect("spans").iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(names, ["responseLatency", "responseDuration", "runtimeOverhead"], "{done}");
        for s in r["spans"].as_array().into_iter().flatten() {
            assert!(is_lambda_time(&s["start"]) && s["durationMs"].as_f64().is_some_and(|d| d >= 0.0), "{s}");
        }
        assert_eq!(r["tracing"]["value"], trace);

        let report = one(&events, "platform.report", rid);
        let r = &report["record"];
        assert_eq!(r["status"], "success");
        let m = &r["metrics"];
        let duration = m["durationMs"].as_f64().expect("durationMs");
        // A cold start bills its init too: the rounded-up sum.
        let billed = duration + m["initDurationMs"].as_f64().unwrap_or(0.0);
        assert_eq!(m["billedDurationMs"].as_u64(), Some(billed.ceil() as u64), "{report}");
        assert_eq!(m["memorySizeMB"], 128);
        assert!(m["maxMemoryUsedMB"].as_u64().is_some_and(|v| v > 0 && v <= 128), "{report}");
        assert_eq!(m.get("initDurationMs").is_some(), i == 0, "initDurationMs on the cold start only: {report}");
        if i == 0 {
            assert_eq!(m["initDurationMs"].as_f64(), Some(init_ms), "{report}");
        }
        let spans = r["spans"].as_array().expect("report spans");
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0]["name"], "extensionOverhead");
        assert!(spans[0]["durationMs"].as_f64().is_some_and(|d| d >= 0.0 && d <= duration), "{report}");
        assert_eq!(r["tracing"]["value"], trace);

        let at = |kind: &str| index_of(&events, |e| e["type"] == kind && e["record"]["requestId"] == rid);
        let line = index_of(&events, |e| e["type"] == "function" && e["record"] == ["first line", "second line"][i]);
        assert!(at("platform.start") < line && line < at("platform.runtimeDone"), "{events:#?}");
        assert!(at("platform.runtimeDone") < at("platform.report"));
        let ext_line =
            index_of(&events, |e| e["type"] == "extension" && e["record"] == format!("probe-ext got INVOKE {rid}"));
        assert!(at("platform.start") < ext_line && ext_line < at("platform.report"), "{events:#?}");
    }

    // What the subscriber received is exactly what the environment emitted (the
    // Telemetry API leaves out only the Logs API's own records).
    let emitted: Vec<Value> = env
        .platform_events()
        .iter()
        .map(|e| serde_json::to_value(e).expect("serialisable"))
        .filter(|e| {
            !matches!(e["type"].as_str(), Some("platform.logsSubscription" | "platform.end" | "platform.fault"))
        })
        .collect();
    let received: Vec<Value> =
        events.iter().filter(|e| e["type"].as_str().is_some_and(|t| t.starts_with("platform."))).cloned().collect();
    assert_eq!(received, emitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_is_delivered_only_after_the_extensions_own_next() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_NEXT_DELAY_MS", "300"), ("PROBE_TIMEOUT_MS", "25")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let mut rids = Vec::new();
    for _ in 0..3 {
        rids.push(invoke_ok(&env, "{}").await.request_id);
    }
    shutdown(&env).await;
    let p = probe.probe_output();
    let timed = p.timed_events();
    for rid in &rids {
        // The INVOKE line, then the probe's next call 300 ms later.
        let invoke_pos = p
            .lines
            .iter()
            .position(|l| l["lifecycle"] == "INVOKE" && l["event"]["requestId"] == rid.as_str())
            .expect("INVOKE line");
        let next_sent = p.lines[invoke_pos..]
            .iter()
            .find_map(|l| l.get("next").and(l["sent_ms"].as_u64()))
            .expect("the next call after INVOKE");
        let invoked_at = p.lines[invoke_pos]["received_ms"].as_u64().expect("received_ms");
        assert!(next_sent >= invoked_at + 300, "the probe delayed its next");
        let (report_at, report) = timed
            .iter()
            .find(|(_, e)| e["type"] == "platform.report" && e["record"]["requestId"] == rid.as_str())
            .expect("report delivered");
        assert!(
            *report_at >= next_sent,
            "report of {rid} arrived at {report_at}, before the probe's next at {next_sent}"
        );
        // The invoke lasted until the probe's next, 300 ms after its INVOKE; what
        // followed the runtime's own next is the extension's overhead.
        let overhead = report["record"]["spans"][0]["durationMs"].as_f64().expect("extensionOverhead");
        let duration = report["record"]["metrics"]["durationMs"].as_f64().expect("durationMs");
        assert!(duration >= 295.0, "the invoke ends with the extension's next: {report}");
        let (_, done) = timed
            .iter()
            .find(|(_, e)| e["type"] == "platform.runtimeDone" && e["record"]["requestId"] == rid.as_str())
            .expect("runtimeDone delivered");
        let runtime = done["record"]["metrics"]["durationMs"].as_f64().expect("runtimeDone durationMs");
        assert!(overhead > 0.0, "{report}");
        assert!(
            (duration - (runtime + overhead)).abs() < 2.0,
            "duration = runtime time + extension overhead: {report} {done}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_flushing_before_next_receives_runtime_done_during_the_invoke() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_WAIT_RUNTIME_DONE", "1"), ("PROBE_TIMEOUT_MS", "25")]);
    let mut cfg = echo_config();
    cfg.timeout = Duration::from_secs(10);
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let mut rids = Vec::new();
    for i in 0..3 {
        let out = invoke_ok(&env, &format!(r#"{{"log":["invoke {i}"]}}"#)).await;
        rids.push(out.request_id);
    }
    shutdown(&env).await;
    let ends: Vec<(String, Status)> = env
        .observations()
        .into_iter()
        .filter_map(|o| match o.what {
            Observation::InvokeEnd { request_id, status, .. } => Some((request_id, status)),
            _ => None,
        })
        .collect();
    assert_eq!(ends, rids.iter().map(|r| (r.clone(), Status::Success)).collect::<Vec<_>>());
    let out = probe.probe_output();
    let waits: Vec<&Value> = out.lines.iter().filter(|l| l.get("runtime_done_wait").is_some()).collect();
    assert_eq!(waits.len(), 3, "{waits:?}");
    for (w, rid) in waits.iter().zip(&rids) {
        assert_eq!(w["runtime_done_wait"], rid.as_str());
        assert_eq!(w["found"], true, "runtimeDone reached the extension while it held the invoke: {w}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_api_event_set_with_runtime_done_only_from_schema_2021_03_18() {
    let dir = TempDir::new();
    let old = Ext::probe(&dir, "logs-2020", &[("PROBE_API", "logs"), ("PROBE_SCHEMA", "2020-08-15")]);
    let new = Ext::probe(&dir, "logs-2021", &[("PROBE_API", "logs"), ("PROBE_SCHEMA", "2021-03-18")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![old.path(), new.path()];
    let env = start(cfg).await;
    let a = invoke_ok(&env, r#"{"log":["logs api line"]}"#).await;
    let b = invoke_ok(&env, "{}").await;
    shutdown(&env).await;
    for (probe, name, with_runtime_done) in [(&old, "logs-2020", false), (&new, "logs-2021", true)] {
        all_accepted(&env, name);
        let events = probe.probe_output().events();
        for e in &events {
            assert!(is_lambda_time(&e["time"]), "{e}");
            let t = e["type"].as_str().unwrap_or_default();
            assert!(
                [
                    "platform.start",
                    "platform.end",
                    "platform.report",
                    "platform.extension",
                    "platform.logsSubscription",
                    "platform.runtimeDone",
                    "function"
                ]
                .contains(&t),
                "{name}: {t} is not a Logs API event"
            );
        }
        for (i, rid) in [&a.request_id, &b.request_id].into_iter().enumerate() {
            assert_eq!(one(&events, "platform.start", rid)["record"], json!({"requestId": rid, "version": "$LATEST"}));
            assert_eq!(one(&events, "platform.end", rid)["record"], json!({"requestId": rid}));
            let report = one(&events, "platform.report", rid);
            let keys: Vec<&String> = report["record"].as_object().expect("object").keys().collect();
            assert_eq!(keys, ["metrics", "requestId"], "{report}");
            let m = &report["record"]["metrics"];
            assert!(m["durationMs"].as_f64().is_some() && m["billedDurationMs"].as_u64().is_some(), "{report}");
            assert_eq!(m["memorySizeMB"], 128);
            assert!(m["maxMemoryUsedMB"].as_u64().is_some_and(|v| v > 0));
            assert_eq!(m.get("initDurationMs").is_some(), i == 0, "{report}");
            let done = by_request(&events, "platform.runtimeDone", rid);
            if with_runtime_done {
                assert_eq!(done.len(), 1, "{name}");
                assert_eq!(done[0]["record"], json!({"requestId": rid, "status": "success"}));
            } else {
                assert!(done.is_empty(), "{name} has no runtimeDone: {done:?}");
            }
        }
        let subs: Vec<&Value> = events.iter().filter(|e| e["type"] == "platform.logsSubscription").collect();
        assert!(
            subs.iter()
                .any(|s| s["record"] == json!({"name": name, "state": "Subscribed", "types": ["platform","function"]})),
            "{name}: {subs:?}"
        );
        let exts: Vec<&Value> = events.iter().filter(|e| e["type"] == "platform.extension").collect();
        assert!(
            exts.iter()
                .any(|e| e["record"] == json!({"name": name, "state": "Ready", "events": ["INVOKE","SHUTDOWN"]})),
            "{name}: {exts:?}"
        );
        let lines: Vec<&Value> = events.iter().filter(|e| e["type"] == "function").map(|e| &e["record"]).collect();
        assert_eq!(lines, vec!["logs api line"], "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_out_of_memory_and_crash_are_visible_in_runtime_done_and_report() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "platform")]);
    let mut cfg = echo_config();
    // Long enough that a loaded machine still meets the memory limit before the timeout
    // (allocating 200 MB under a 128 MB limit took over 1 s there).
    cfg.timeout = Duration::from_secs(3);
    cfg.memory_mb = 128;
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let cases = [
        (r#"{"sleep_ms":6000}"#, "timeout", "Sandbox.Timedout"),
        (r#"{"alloc_mb":200,"sleep_ms":500}"#, "error", "Runtime.OutOfMemory"),
        (r#"{"exit":2}"#, "error", "Runtime.ExitError"),
    ];
    let mut rids = Vec::new();
    for (event, status, error_type) in cases {
        let out = invoke(&env, event).await.result;
        assert_eq!(out.error_type.as_deref(), Some(error_type), "{event}: {}", String::from_utf8_lossy(&out.payload));
        assert_eq!(out.status.to_string(), status, "{event}");
        rids.push(out.request_id);
    }
    invoke_ok(&env, "{}").await;
    shutdown(&env).await;
    let events = probe.probe_output().events();
    for ((event, status, error_type), rid) in cases.iter().zip(&rids) {
        for kind in ["platform.runtimeDone", "platform.report"] {
            let e = one(&events, kind, rid);
            assert_eq!(e["record"]["status"], *status, "{event}: {e}");
            assert_eq!(e["record"]["errorType"], *error_type, "{event}: {e}");
        }
    }
    let report = one(&events, "platform.report", &rids[1]);
    assert!(
        report["record"]["metrics"]["maxMemoryUsedMB"].as_u64().is_some_and(|m| m >= 120),
        "the out-of-memory invoke used its whole memory: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_measured_and_the_method_is_reported() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "platform")]);
    let mut cfg = echo_config();
    cfg.memory_mb = 256;
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let method = env.memory_method();
    assert!(!method.to_string().is_empty());
    if method == tandem_emulator::MemoryMethod::Cgroup {
        assert!(
            std::path::Path::new("/sys/fs/cgroup/memory/tandem-emulator").is_dir(),
            "a cgroup method has its cgroup"
        );
    }
    eprintln!("memory measured by {method}");
    let small = invoke_ok(&env, "{}").await;
    // Held for 200 ms, so that sampling (when there is no cgroup) sees it too.
    let big = invoke_ok(&env, r#"{"alloc_mb":80,"sleep_ms":200}"#).await;
    shutdown(&env).await;
    let events = probe.probe_output().events();
    let used =
        |rid: &str| one(&events, "platform.report", rid)["record"]["metrics"]["maxMemoryUsedMB"].as_u64().unwrap_or(0);
    let (a, b) = (used(&small.request_id), used(&big.request_id));
    assert!(a > 0 && a < 80, "a small invoke: {a} MB");
    assert!((80..=256).contains(&b), "80 MB allocated and touched: {b} MB ({method})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_delivered_while_the_environment_is_frozen() {
    let dir = TempDir::new();
    let probe =
        Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "platform,function,extension"), ("PROBE_TIMEOUT_MS", "25")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    for i in 0..5 {
        invoke_ok(&env, &format!(r#"{{"log":["invoke {i}"]}}"#)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    shutdown(&env).await;
    let windows = frozen_windows(&env);
    assert!(windows.iter().filter(|(f, t)| t - f >= 100).count() >= 5, "{windows:?}");
    let deliveries: Vec<_> = env.deliveries().into_iter().filter(|d| d.subscriber == "probe-ext").collect();
    assert!(deliveries.len() >= 5, "{deliveries:#?}");
    let inside = |t: u64| windows.iter().find(|(f, th)| t > f + 1 && t + 1 < *th).copied();
    for d in &deliveries {
        assert!(!matches!(d.outcome, Outcome::Rejected(_)), "{d:?}");
        assert_eq!(inside(d.sent_ms), None, "delivery sent at {} while frozen: {d:?}", d.sent_ms);
    }
    for b in probe.probe_output().batches() {
        let at = b["received_ms"].as_u64().unwrap_or(0);
        assert_eq!(inside(at), None, "batch received at {at} while frozen");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_duration_is_in_exactly_one_report() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "platform")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let mut rids = Vec::new();
    for _ in 0..4 {
        rids.push(invoke_ok(&env, "{}").await.request_id);
    }
    shutdown(&env).await;
    let reports = probe.probe_output().of_type("platform.report");
    let order: Vec<&str> = reports.iter().filter_map(|r| r["record"]["requestId"].as_str()).collect();
    assert_eq!(order, rids.iter().map(String::as_str).collect::<Vec<_>>());
    let with_init: Vec<&str> = reports
        .iter()
        .filter(|r| r["record"]["metrics"].get("initDurationMs").is_some())
        .filter_map(|r| r["record"]["requestId"].as_str())
        .collect();
    assert_eq!(with_init, [rids[0].as_str()]);
    let console_inits =
        env.console_lines().iter().filter(|l| l.starts_with("REPORT") && l.contains("Init Duration")).count();
    assert_eq!(console_inits, 1);
}
