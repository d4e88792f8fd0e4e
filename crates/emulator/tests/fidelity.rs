//! Fidelity to Lambda where extensions written by others depend on it: SHUTDOWN on
//! time whatever telemetry is pending, telemetry during the shutdown phase by the
//! subscription's own buffering, the hosts a subscription may name, and the platform's
//! records and console lines (issue 12).

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;
use tandem_emulator::{Environment, Observation, Signal};

/// `(shutdown start, deadline)` of the environment's last shutdown, epoch ms.
fn shutdown_window(env: &Environment) -> (u64, u64) {
    observed(env, |o| matches!(o, Observation::ShutdownStart { .. }))
        .last()
        .and_then(|o| match o.what {
            Observation::ShutdownStart { deadline_ms, .. } => Some((o.epoch_ms, deadline_ms)),
            _ => None,
        })
        .expect("a shutdown started")
}

/// Asserts that extension `name` received SHUTDOWN before the deadline and exited on
/// its own (status 0), never SIGKILLed.
#[track_caller]
fn got_shutdown_on_time(env: &Environment, ext: &Ext, name: &str) {
    let (start, deadline) = shutdown_window(env);
    let out = ext.probe_output();
    let shutdown = out.lifecycle("SHUTDOWN");
    let [line] = shutdown[..] else { panic!("{name}: one SHUTDOWN expected, got {shutdown:?}") };
    let at = line["received_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        at >= start && at < deadline,
        "{name} got SHUTDOWN at {at}, outside the shutdown phase {start}..{deadline}"
    );
    assert_eq!(line["event"]["deadlineMs"].as_u64(), Some(deadline));
    let killed =
        observed(env, |o| matches!(o, Observation::Signalled { process, signal: Signal::Kill } if process == name));
    assert!(killed.is_empty(), "{name} was SIGKILLed: {killed:?}");
    let exits: Vec<_> = observed(env, |o| matches!(o, Observation::ProcessExited { process, .. } if process == name));
    let exited_alone =
        exits.iter().any(|o| matches!(&o.what, Observation::ProcessExited { exit, .. } if exit.code == Some(0)));
    assert!(exited_alone, "{name} exited on its own: {exits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_answers_gets_shutdown_on_time() {
    let dir = TempDir::new();
    let hang = Ext::probe(
        &dir,
        "hang",
        &[("PROBE_NEVER_ANSWER", "1"), ("PROBE_TIMEOUT_MS", "25"), ("PROBE_SHUTDOWN_LINGER_MS", "500")],
    );
    let mut cfg = echo_config();
    cfg.extensions = vec![hang.path()];
    let env = start(cfg).await;
    for i in 0..3 {
        invoke_ok(&env, &format!(r#"{{"log":["line {i}"],"sleep_ms":60}}"#)).await;
    }
    shutdown(&env).await;
    assert!(hang.lines().iter().any(|l| l.get("held_batch").is_some()), "a batch was held unanswered");
    got_shutdown_on_time(&env, &hang, "hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_logs_a_line_per_batch_of_its_own_records_gets_shutdown_on_time() {
    let dir = TempDir::new();
    let chatty = Ext::probe(
        &dir,
        "chatty",
        &[
            ("PROBE_TYPES", "platform,function,extension"),
            ("PROBE_LOG_PER_BATCH", "1"),
            ("PROBE_TIMEOUT_MS", "25"),
            ("PROBE_SHUTDOWN_LINGER_MS", "500"),
        ],
    );
    let mut cfg = echo_config();
    cfg.extensions = vec![chatty.path()];
    let env = start(cfg).await;
    for i in 0..3 {
        invoke_ok(&env, &format!(r#"{{"log":["line {i}"],"sleep_ms":60}}"#)).await;
    }
    shutdown(&env).await;
    let own = chatty.probe_output().of_type("extension");
    assert!(
        own.iter().any(|e| e["record"].as_str().is_some_and(|r| r.contains("received batch"))),
        "its own lines came back as extension records: {own:?}"
    );
    got_shutdown_on_time(&env, &chatty, "chatty");
}

/// The deliveries to `name` that started within `from..=to`, by start time.
fn sent_between(env: &Environment, name: &str, from: u64, to: u64) -> Vec<u64> {
    let mut sent: Vec<u64> = env
        .deliveries()
        .into_iter()
        .filter(|d| d.subscriber == name && d.sent_ms >= from && d.sent_ms <= to)
        .map(|d| d.sent_ms)
        .collect();
    sent.sort_unstable();
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_during_the_shutdown_phase_follow_the_subscribers_timeout() {
    for timeout_ms in [100u64, 400] {
        let dir = TempDir::new();
        let t = timeout_ms.to_string();
        // Each batch it receives makes it log a line, which is the next batch: a
        // subscriber that keeps its own backlog non-empty, lingering after SHUTDOWN
        // as AWS's samples do "to receive the remaining events".
        let chatty = Ext::probe(
            &dir,
            "chatty",
            &[
                ("PROBE_TYPES", "extension"),
                ("PROBE_LOG_PER_BATCH", "1"),
                ("PROBE_TIMEOUT_MS", &t),
                ("PROBE_SHUTDOWN_LINGER_MS", "1200"),
            ],
        );
        let mut cfg = echo_config();
        cfg.extensions = vec![chatty.path()];
        let env = start(cfg).await;
        invoke_ok(&env, "{}").await;
        shutdown(&env).await;
        got_shutdown_on_time(&env, &chatty, "chatty");
        let (start, deadline) = shutdown_window(&env);
        let sent = sent_between(&env, "chatty", start, deadline);
        let shutdown_at = chatty.probe_output().lifecycle("SHUTDOWN")[0]["received_ms"].as_u64().unwrap_or(0);
        assert!(
            sent.iter().any(|&s| s > shutdown_at),
            "telemetry kept flowing after SHUTDOWN (timeoutMs {timeout_ms}): {sent:?}, SHUTDOWN at {shutdown_at}"
        );
        // A batch is due only once its oldest record waited timeoutMs, and every record
        // here is caused by the previous batch: POSTs are at least timeoutMs apart (less
        // a millisecond of rounding to epoch milliseconds each side).
        for pair in sent.windows(2) {
            assert!(
                pair[1] - pair[0] + 2 >= timeout_ms,
                "POSTs {} ms apart with timeoutMs {timeout_ms}: {sent:?}",
                pair[1] - pair[0]
            );
        }
        assert!(
            sent.len() as u64 <= (deadline - start) / timeout_ms + 1,
            "{} POSTs in a {} ms shutdown phase with timeoutMs {timeout_ms}: {sent:?}",
            sent.len(),
            deadline - start
        );
        // Deliveries end with the environment: nothing is attempted after it is done.
        let done = wait_for(&env, "ShutdownComplete", |o| matches!(o, Observation::ShutdownComplete)).await;
        tokio::time::sleep(Duration::from_millis(2 * timeout_ms)).await;
        let late: Vec<Value> = env
            .deliveries()
            .into_iter()
            .filter(|d| d.subscriber == "chatty" && d.sent_ms > done.epoch_ms + 1)
            .map(|d| Value::from(d.sent_ms))
            .collect();
        assert!(late.is_empty(), "deliveries after the environment shut down at {}: {late:?}", done.epoch_ms);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_reinitialises_with_one_init_start() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "platform"), ("PROBE_TIMEOUT_MS", "25")]);
    let mut cfg = echo_config();
    cfg.timeout = Duration::from_secs(1);
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let timed_out = invoke(&env, r#"{"sleep_ms":5000}"#).await.result;
    assert_eq!(timed_out.error_type.as_deref(), Some("Sandbox.Timedout"));
    invoke_ok(&env, "{}").await;
    let crashed = invoke(&env, r#"{"exit":3}"#).await.result;
    assert_eq!(crashed.error_type.as_deref(), Some("Runtime.ExitError"));
    invoke_ok(&env, "{}").await;
    shutdown(&env).await;
    let starts: Vec<(String, String)> = probe
        .probe_output()
        .of_type("platform.initStart")
        .iter()
        .map(|e| (e["time"].as_str().unwrap_or_default().to_owned(), e["record"]["phase"].to_string()))
        .collect();
    // The cold start, then one suppressed init (phase invoke) after each reset.
    let phases: Vec<&str> = starts.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(phases, [r#""init""#, r#""invoke""#, r#""invoke""#], "{starts:?}");
    let emitted = env.platform_events().iter().filter(|e| e.record.type_name() == "platform.initStart").count();
    assert_eq!(emitted, 3);
}

/// The index of the first console line for which `pred` holds.
fn line_index(lines: &[String], what: &str, pred: impl Fn(&str) -> bool) -> usize {
    lines.iter().position(|l| pred(l)).unwrap_or_else(|| panic!("no console line {what} in {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_lines_out_of_memory_and_init_start_read_as_lambdas() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "platform"), ("PROBE_TIMEOUT_MS", "25")]);
    let old = Ext::probe(
        &dir,
        "old-schema",
        &[("PROBE_TYPES", "platform"), ("PROBE_TIMEOUT_MS", "25"), ("PROBE_SCHEMA", "2022-07-01")],
    );
    let mut cfg = echo_config();
    cfg.memory_mb = 128;
    cfg.extensions = vec![probe.path(), old.path()];
    let env = start(cfg).await;
    let crashed = invoke(&env, r#"{"exit":3}"#).await.result;
    assert_eq!(crashed.error_type.as_deref(), Some("Runtime.ExitError"));
    let oom = invoke(&env, r#"{"alloc_mb":200,"sleep_ms":500}"#).await.result;
    assert_eq!(oom.error_type.as_deref(), Some("Runtime.OutOfMemory"));
    shutdown(&env).await;
    let lines = env.console_lines();
    let rid = &crashed.request_id;
    let crash = line_index(&lines, "of the crash", |l| {
        l == format!("RequestId: {rid} Error: Runtime exited with error: exit status 3")
    });
    assert_eq!(lines[crash + 1], "Runtime.ExitError", "{lines:#?}");
    let report = line_index(&lines, "REPORT of the out-of-memory invoke", |l| {
        l.starts_with(&format!("REPORT RequestId: {}", oom.request_id))
    });
    assert!(lines[report].contains("\tMax Memory Used: 128 MB\t"), "{}", lines[report]);
    let reported = env.platform_events().into_iter().find_map(|e| match e.record {
        tandem_wire::Record::Report(r) if r.request_id == oom.request_id => Some(r.metrics.max_memory_used_mb),
        _ => None,
    });
    assert_eq!(reported, Some(128), "Lambda reports the memory size when the limit killed the function");
    // INIT_START names the runtime version, as Lambda's does.
    let init = line_index(&lines, "INIT_START", |l| l.starts_with("INIT_START "));
    assert!(
        lines[init].starts_with("INIT_START Runtime Version: ")
            && lines[init].contains("\tRuntime Version ARN: arn:aws:lambda:"),
        "{}",
        lines[init]
    );
    // platform.initStart identifies the environment from schema 2022-12-13 on.
    let ids: Vec<Value> =
        probe.probe_output().of_type("platform.initStart").iter().map(|e| e["record"]["instanceId"].clone()).collect();
    assert!(ids.len() >= 2 && ids.iter().all(|i| i.as_str().is_some_and(|s| s.len() == 36)), "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one environment, one instance id across resets: {ids:?}");
    let first = &probe.probe_output().of_type("platform.initStart")[0];
    assert_eq!(first["record"]["instanceMaxMemory"], 128);
    for e in old.probe_output().of_type("platform.initStart") {
        assert!(e["record"].get("instanceId").is_none(), "schema 2022-07-01 has no instanceId: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_error_document_reaches_the_caller_unchanged() {
    let dir = TempDir::new();
    // What awslambdaric posts when the handler's module cannot be imported.
    const DOCUMENT: &str = r#"{"errorMessage": "Unable to import module 'app': No module named 'app'", "errorType": "Runtime.ImportModuleError", "requestId": "", "stackTrace": []}"#;
    let body = format!(
        "status, _, _ = post('/2018-06-01/runtime/init/error', {DOCUMENT:?}.encode(), b'Lambda-Runtime-Function-Error-Type: Runtime.ImportModuleError\\r\\n')\nsys.exit(1)\n"
    );
    let env = start(config(python_runtime(&dir, "import_error.py", &body))).await;
    assert_eq!(env.init_outcome().map(|(_, e)| e), Some(Some("Runtime.ImportModuleError".to_owned())));
    let out = invoke(&env, "{}").await.result;
    shutdown(&env).await;
    assert_eq!(out.error_type.as_deref(), Some("Runtime.ImportModuleError"));
    assert_eq!(String::from_utf8_lossy(&out.payload), DOCUMENT, "the runtime's own document, byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format_writes_the_platform_lines_as_json() {
    let mut cfg = echo_config();
    cfg.env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
    let env = start(cfg).await;
    let out = invoke_ok(&env, "{}").await;
    shutdown(&env).await;
    let lines = env.console_lines();
    assert!(
        !lines.iter().any(|l| l.starts_with("START ") || l.starts_with("END ") || l.starts_with("REPORT ")),
        "{lines:#?}"
    );
    let platform: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"].as_str().is_some_and(|t| t.starts_with("platform.")))
        .collect();
    let kinds: Vec<&str> = platform.iter().filter_map(|v| v["type"].as_str()).collect();
    assert_eq!(kinds, ["platform.initStart", "platform.start", "platform.report"], "{lines:#?}");
    for v in &platform[1..] {
        assert_eq!(v["record"]["requestId"], out.request_id.as_str());
    }
    assert!(platform[2]["record"]["metrics"]["billedDurationMs"].as_u64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_may_name_the_host_sandbox() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_HOST", "sandbox"), ("PROBE_TIMEOUT_MS", "25")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let out = invoke_ok(&env, r#"{"log":["to sandbox"]}"#).await;
    shutdown(&env).await;
    let p = probe.probe_output();
    assert_eq!(p.subscribe_statuses(), [200]);
    assert!(p.events().iter().any(|e| e["record"] == "to sandbox"), "{:?}", p.events());
    assert_eq!(
        p.of_type("platform.report").iter().filter(|e| e["record"]["requestId"] == out.request_id.as_str()).count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_to_other_hosts_or_with_control_characters_are_validation_errors() {
    let init = OpenInit::new().await;
    let id = init.register("subscriber", "[]").await;
    for uri in
        ["http://localhost:4243", "http://sandbox:4243/a\r\nX-Injected: 1", "http://sandbox.localdomain:4243/\u{7f}"]
    {
        let body = serde_json::json!({
            "schemaVersion": "2022-12-13",
            "types": ["platform"],
            "destination": {"protocol": "HTTP", "URI": uri},
        });
        let a = request(init.api, "PUT", TELEMETRY, &[("Lambda-Extension-Identifier", &id)], body.to_string()).await;
        a.assert_error(400, "ValidationError");
    }
    init.finish().await;
}
