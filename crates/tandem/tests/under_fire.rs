//! Under fire: tandem in tandem-emulator with faults injected by real processes: HTTP
//! sinks on 127.0.0.1 that answer 503, hang, answer late or refuse connections, and
//! `kill -9` of tandem between invocations. Each test is one promise of the README
//! (issue 11). Needs `cargo build --workspace --bins` first (for echo-fn).

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tandem_emulator::Observation;
use tandem_wire::Status;

/// A sink that answers 503, one that never answers and one that refuses connections:
/// after the first failed flush, no invocation waits for it again (the breaker keeps
/// it to background attempts), and what it missed arrives once it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_costs_the_function_nothing_after_its_first_failure() {
    // The budget a blocking flush may spend; an invocation that waited on the sink
    // would add about that much.
    const BUDGET_MS: u64 = 1_000;
    // Telemetry batching (25 ms) and scheduling on a loaded machine, far below the budget.
    const FREE_MS: f64 = 300.0;
    for fault in ["unavailable", "hang", "refused"] {
        let dir = tempdir(&format!("breaker-{fault}"));
        let http = Receiver::start().await;
        let url = match fault {
            "unavailable" => {
                http.set_mode(Mode::Unavailable);
                http.url("/ingest")
            }
            "hang" => {
                http.set_mode(Mode::Hang);
                http.url("/ingest")
            }
            _ => refusing_url("/ingest").await,
        };
        let env = start_http(
            &dir,
            url,
            &[
                ("TANDEM_FLUSH", "end"),
                ("TANDEM_FLUSH_BUDGET_MS", &BUDGET_MS.to_string()),
                ("TANDEM_RETRY_BASE_MS", "400"),
            ],
        )
        .await;
        let mut want = Vec::new();
        for i in 0..5 {
            let l = lines(&format!("{fault}{i}"), 3);
            want.extend(l.iter().cloned());
            let out = invoke(&env, json!({"log": l})).await;
            assert_eq!(out.result.status, Status::Success);
        }
        if fault == "unavailable" {
            // Recovery: delivered in the background or at SHUTDOWN, each line once.
            http.set_mode(Mode::Ok);
            for i in 5..7 {
                let l = lines(&format!("{fault}{i}"), 3);
                want.extend(l.iter().cloned());
                invoke(&env, json!({"log": l})).await;
            }
        }
        env.shutdown().await;
        // Every report is delivered before SHUTDOWN.
        let overheads = extension_overheads(&env);
        assert!(overheads.len() >= 5, "{fault}: {overheads:?}");
        // The first invocation's flush met the failure; the later ones cost nothing.
        for (i, o) in overheads.iter().enumerate().skip(1) {
            assert!(*o < FREE_MS, "{fault}: invocation {} waited {o} ms for a failing sink: {overheads:?}", i + 1);
        }
        if fault == "unavailable" {
            exactly_once("after recovery", &ndjson_messages(&http.ndjson()), &want);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A sink that fails its first requests at SHUTDOWN and then recovers gets everything:
/// the drain retries until its deadline (minus the last resort's reserve), past the
/// per-request attempt limit, shortening a backoff that would pass the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_drain_retries_a_recovering_sink_until_its_deadline() {
    let dir = tempdir("drain-retries");
    let http = Receiver::start().await;
    let env = start_http(
        &dir,
        http.url("/ingest"),
        &[
            // Flushed at the first INVOKE only: the rest waits for SHUTDOWN.
            ("TANDEM_FLUSH", "periodic,3600000"),
            ("TANDEM_RETRY_BASE_MS", "20"),
            ("TANDEM_RETRY_MAX_MS", "200"),
        ],
    )
    .await;
    let mut want = Vec::new();
    for i in 0..20 {
        let l = lines(&format!("drain{i}"), 50);
        want.extend(l.iter().cloned());
        invoke(&env, json!({"log": l})).await;
    }
    // More failures in a row than TANDEM_RETRY_MAX_ATTEMPTS (5) allows a request.
    http.fail_next(8);
    env.shutdown().await;
    let got = ndjson_messages(&http.ndjson());
    exactly_once("after the drain", &got, &want);
    assert!(http.answered().iter().filter(|r| r.status == 503).count() == 8, "the sink failed 8 times first");
    let console = env.console_lines();
    assert!(!console.iter().any(|l| l.contains("\"tandem_undelivered\"")), "nothing went to the last resort");
    let _ = std::fs::remove_dir_all(dir);
}

/// A sink's outage is told at the default log level: one `warn` line when it starts
/// failing and one when it recovers, however many flushes failed; the health records
/// carry its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_failure_and_its_recovery_are_one_warn_line_each() {
    let dir = tempdir("told");
    let http = Receiver::start().await;
    http.set_mode(Mode::Unavailable);
    let env = start_http(
        &dir,
        http.url("/ingest"),
        &[
            ("TANDEM_FLUSH", "end"),
            ("TANDEM_RETRY_BASE_MS", "5"),
            ("TANDEM_RETRY_MAX_MS", "20"),
            // The default level (pushed after the helper's `debug`, so it wins).
            ("TANDEM_LOG_LEVEL", "info"),
        ],
    )
    .await;
    for i in 0..10 {
        invoke(&env, json!({"log": lines(&format!("told{i}"), 2)})).await;
    }
    assert!(http.hits() >= 3, "retried in the background ({} requests)", http.hits());
    http.set_mode(Mode::Ok);
    for i in 10..15 {
        invoke(&env, json!({"log": lines(&format!("told{i}"), 2)})).await;
    }
    env.shutdown().await;
    let console = env.console_lines();
    let failing: Vec<&String> = console.iter().filter(|l| l.contains("http sink: failing")).collect();
    let recovered: Vec<&String> = console.iter().filter(|l| l.contains("http sink: recovered")).collect();
    assert_eq!(failing.len(), 1, "{failing:#?}");
    assert_eq!(recovered.len(), 1, "{recovered:#?}");
    assert!(!console.iter().any(|l| l.contains("retrying in")), "no debug lines at the default level");
    let health = ndjson_of(&http.ndjson(), "health");
    assert!(health.iter().any(|h| h["sinks"]["http"]["state"] == "failing"), "the outage is in health");
    let last = health.last().expect("health records");
    assert_eq!(last["sinks"]["http"]["state"], "ok", "{last}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A sink slower than the flush budget: a request is never abandoned and its records
/// sent again (each line arrives once), every request names its records with an
/// `Idempotency-Key`, and no duplicate is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_gets_each_record_in_one_request_with_an_idempotency_key() {
    let dir = tempdir("slow");
    let http = Receiver::start().await;
    http.set_delay(Duration::from_millis(700));
    let env =
        start_http(&dir, http.url("/ingest"), &[("TANDEM_FLUSH", "end"), ("TANDEM_FLUSH_BUDGET_MS", "100")]).await;
    let mut want = Vec::new();
    for i in 0..8 {
        let l = lines(&format!("slow{i}"), 5);
        want.extend(l.iter().cloned());
        invoke(&env, json!({"log": l})).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.shutdown().await;
    // Every request the receiver got (it records on receipt), answered or not.
    let all: String = http.answered().iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    exactly_once("each line in one request", &ndjson_messages(&all), &want);
    let keys: Vec<String> = http.answered().iter().map(|r| r.idempotency_key.clone().unwrap_or_default()).collect();
    assert!(keys.iter().all(|k| !k.is_empty()), "every request has an Idempotency-Key: {keys:?}");
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), keys.len(), "no two requests carry the same records: {keys:?}");
    let health = ndjson_of(&all, "health");
    assert!(health.iter().all(|h| h["duplicatesSent"] == 0), "no duplicate sent");
    let _ = std::fs::remove_dir_all(dir);
}

/// `kill -9` of tandem between invocations, with a healthy sink and records waiting in
/// memory for a later flush: every record tandem acknowledged to the Telemetry API
/// arrives, once per Idempotency-Key. The write-ahead copy written before each
/// acknowledgement is replayed by the next tandem process, and what was delivered
/// before the kill is not re-sent (except a request whose answer the kill cut off,
/// under its original key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_loses_no_acknowledged_record_and_resends_none() {
    let dir = tempdir("wal-kill9");
    let http = Receiver::start().await;
    let env = start_http(
        &dir,
        http.url("/ingest"),
        &[
            // Records wait in memory for a flush that does not come before the kill.
            ("TANDEM_FLUSH", "periodic,3600000"),
            ("TANDEM_BATCH_MAX_RECORDS", "7"),
        ],
    )
    .await;
    for round in 0..2 {
        for i in 0..6 {
            invoke(&env, json!({"log": lines(&format!("wal{round}x{i}"), 20)})).await;
        }
        let frozen = eventually(Duration::from_secs(5), || {
            env.observations().last().is_some_and(|o| matches!(o.what, Observation::Frozen))
        })
        .await;
        assert!(frozen, "the environment froze after the invocation");
        let pids = tandem_pids(&env);
        let pid = *pids.last().expect("tandem runs");
        let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().expect("run kill");
        assert!(status.success());
    }
    // The next invocation finds tandem dead (Extension.Crash) and resets; the new
    // tandem replays its spool.
    for i in 0..3 {
        invoke(&env, json!({"log": lines(&format!("walafter{i}"), 5)})).await;
    }
    env.shutdown().await;
    assert!(tandem_pids(&env).len() >= 3, "tandem was restarted after each kill");
    // What tandem acknowledged: the function lines of every batch it answered 200.
    let acknowledged: Vec<String> = env
        .delivered_events("tandem")
        .iter()
        .filter(|e| e["type"] == "function")
        .filter_map(|e| e["record"].as_str().map(str::to_owned))
        .filter(|l| l.starts_with("wal"))
        .collect();
    let killed: Vec<&String> = acknowledged.iter().filter(|l| !l.starts_with("walafter")).collect();
    assert!(killed.len() >= 100, "most lines before the kills were acknowledged: {}", killed.len());
    // A request in flight when the environment froze may have been accepted without
    // tandem seeing the answer before the kill: the new process sends those records
    // again, under the same Idempotency-Key (at-least-once). A receiver that drops a
    // key it has seen gets each record once.
    let mut seen_keys = std::collections::HashSet::new();
    let mut got = Vec::new();
    let mut invocations = Vec::new();
    for r in http.accepted() {
        let key = r.idempotency_key.clone().expect("every request has an Idempotency-Key");
        if seen_keys.insert(key) {
            let body = String::from_utf8_lossy(&r.body);
            got.extend(ndjson_messages(&body));
            invocations.extend(
                ndjson_of(&body, "invocation").iter().filter_map(|v| v["requestId"].as_str().map(str::to_owned)),
            );
        }
    }
    // Every invocation whose platform.start tandem acknowledged has its record, once,
    // even those whose report never reached the killed process (rebuilt from the
    // journal by the next one, and sent as partial records).
    let started: Vec<String> = env
        .delivered_events("tandem")
        .iter()
        .filter(|e| e["type"] == "platform.start")
        .filter_map(|e| e["record"]["requestId"].as_str().map(str::to_owned))
        .collect();
    assert!(started.len() >= 12, "{started:?}");
    exactly_once("invocation records", &invocations, &started);
    let want: Vec<String> = acknowledged.iter().map(|l| l.trim_end().to_owned()).collect();
    exactly_once("after two kill -9", &got, &want);
    let _ = std::fs::remove_dir_all(dir);
}

/// `kill -9` of tandem after it acknowledged an invocation's `platform.start` and
/// `platform.runtimeDone` but before the `platform.report` that completes its record:
/// the next process rebuilds the invocation from the journal, so its record keeps what
/// those events carried (start time, produced bytes, response latency).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_before_the_report_keeps_what_the_invocation_had() {
    let dir = tempdir("journal-kill9");
    let http = Receiver::start().await;
    // `end`: each invocation waits for its runtimeDone, so start and runtimeDone are
    // acknowledged before the freeze; the report comes at the next thaw.
    let env = start_http(&dir, http.url("/ingest"), &[("TANDEM_FLUSH", "end")]).await;
    for i in 0..3 {
        invoke(&env, json!({"log": lines(&format!("journal{i}"), 2)})).await;
    }
    let frozen = eventually(Duration::from_secs(5), || {
        env.observations().last().is_some_and(|o| matches!(o.what, Observation::Frozen))
    })
    .await;
    assert!(frozen, "the environment froze after the invocation");
    let pid = *tandem_pids(&env).last().expect("tandem runs");
    let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().expect("run kill");
    assert!(status.success());
    for i in 0..3 {
        invoke(&env, json!({"log": lines(&format!("journalafter{i}"), 2)})).await;
    }
    env.shutdown().await;
    // Every runtimeDone tandem acknowledged: its invocation's record carries what that
    // event and its start said (the crash invocation's runtimeDone, acknowledged by the
    // new process, may carry no spans: only what an event carried is required).
    let done: Vec<serde_json::Value> =
        env.delivered_events("tandem").into_iter().filter(|e| e["type"] == "platform.runtimeDone").collect();
    assert!(done.len() >= 3, "{done:#?}");
    let records = ndjson_of(&http.ndjson(), "invocation");
    for event in &done {
        let id = event["record"]["requestId"].as_str().unwrap_or_default();
        let r: Vec<&serde_json::Value> = records.iter().filter(|r| r["requestId"] == id).collect();
        assert_eq!(r.len(), 1, "{id}: one invocation record: {records:#?}");
        assert!(!r[0]["startMs"].is_null(), "{id}: startMs kept across the kill: {}", r[0]);
        if event["record"]["metrics"]["producedBytes"].is_u64() {
            assert!(!r[0]["producedBytes"].is_null(), "{id}: producedBytes kept across the kill: {}", r[0]);
        }
        let spans = event["record"]["spans"].as_array().cloned().unwrap_or_default();
        if spans.iter().any(|s| s["name"] == "responseLatency") {
            assert!(!r[0]["responseLatencyMs"].is_null(), "{id}: responseLatencyMs kept across the kill: {}", r[0]);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
