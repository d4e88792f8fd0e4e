//! tandem-sdk end to end: its examples run as real extensions (and as a real function)
//! inside tandem-emulator, with real processes over real sockets on 127.0.0.1.

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tandem_emulator::{Config, Environment, Observation, Outcome};
use tandem_sdk::TelemetryType;

/// `target/<profile>`, where cargo put this test's binaries and the workspace's.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>").to_path_buf()
}

fn binary(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins --examples` first (cargo xtask test does)",
        p.display()
    );
    p
}

fn example(name: &str) -> PathBuf {
    binary(&format!("examples/{name}"))
}

fn config(runtime: PathBuf) -> Config {
    let mut c = Config::new(vec![runtime.to_string_lossy().into_owned()]);
    c.timeout = Duration::from_secs(10);
    c
}

fn temp_file(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("tandem-sdk-{tag}-{}-{}.ndjson", std::process::id(), fastrand_suffix()));
    let _ = std::fs::remove_file(&p);
    p
}

fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn read_events(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON event"))
        .collect()
}

fn exited_cleanly(env: &Environment, name: &str) -> bool {
    let obs = env.observations();
    let exited = obs.iter().any(
        |o| matches!(&o.what, Observation::ProcessExited { process, exit } if process == name && exit.code == Some(0)),
    );
    let killed = obs.iter().any(|o| {
        matches!(&o.what, Observation::Signalled { process, signal: tandem_emulator::Signal::Kill } if process == name)
    });
    exited && !killed
}

#[tokio::test]
async fn event_logger_sees_every_event_and_exits_by_itself_before_the_deadline() {
    let mut cfg = config(binary("echo-fn"));
    cfg.extensions.push(example("event_logger"));
    let env = Environment::start(cfg).await.expect("start");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(env.invoke(r#"{"a":1}"#).await.expect("invoke").result.request_id);
    }
    let started = std::time::Instant::now();
    env.shutdown().await;
    assert!(started.elapsed() < Duration::from_millis(1500), "it exits at SHUTDOWN, not at the 2 s deadline");
    let console = env.console_lines().join("\n");
    for id in &ids {
        assert!(console.contains(&format!("event_logger INVOKE {id}")), "{console}");
    }
    assert!(console.contains("event_logger SHUTDOWN spindown"), "{console}");
    assert!(exited_cleanly(&env, "event_logger"), "{:#?}", env.observations());
}

#[tokio::test]
async fn telemetry_to_file_persists_every_event_and_drains_with_the_last_report() {
    let file = temp_file("persist");
    let mut cfg = config(binary("echo-fn"));
    cfg.extensions.push(example("telemetry_to_file"));
    cfg.env.push(("TELEMETRY_FILE".into(), file.to_string_lossy().into_owned()));
    let env = Environment::start(cfg).await.expect("start");
    let mut ids = Vec::new();
    for i in 0..5 {
        let out = env.invoke(format!(r#"{{"log":["line {i} a","line {i} b"]}}"#)).await.expect("invoke");
        ids.push(out.result.request_id);
    }
    env.shutdown().await;
    let events = read_events(&file);
    for i in 0..5 {
        for part in ["a", "b"] {
            let line = format!("line {i} {part}");
            let n = events.iter().filter(|e| e["type"] == "function" && e["record"] == line.as_str()).count();
            assert_eq!(n, 1, "{line} must arrive exactly once");
        }
    }
    for id in &ids {
        assert!(
            events.iter().any(|e| e["type"] == "platform.report" && e["record"]["requestId"] == id.as_str()),
            "the report of {id} (the last one is delivered only at SHUTDOWN) is in the file"
        );
    }
    let console = env.console_lines().join("\n");
    assert!(console.contains("last_report=true"), "the drain hook saw the last report: {console}");
    assert!(exited_cleanly(&env, "telemetry_to_file"));
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn an_unknown_type_and_a_malformed_event_cost_nothing_else() {
    let file = temp_file("unknown");
    let mut cfg = config(binary("echo-fn"));
    cfg.extensions.push(example("telemetry_to_file"));
    cfg.env.push(("TELEMETRY_FILE".into(), file.to_string_lossy().into_owned()));
    let env = Environment::start(cfg).await.expect("start");
    let unknown = r#"{"time":"2026-01-01T00:00:00.000Z","type":"platform.futureThing","record":{"k":[1,2]}}"#;
    let malformed = r#"{"time":"2026-01-01T00:00:00.000Z","type":"platform.report","record":{"requestId":7}}"#;
    env.inject_event(TelemetryType::Platform, unknown);
    env.inject_event(TelemetryType::Platform, malformed);
    env.invoke(r#"{"log":["alpha","beta"]}"#).await.expect("invoke");
    env.shutdown().await;

    // The batch that held both was accepted (a single 200), with every other event.
    let events = read_events(&file);
    let fut = events.iter().find(|e| e["type"] == "platform.futureThing").expect("the unknown event, kept raw");
    assert_eq!(fut["record"], serde_json::json!({"k":[1,2]}));
    for line in ["alpha", "beta"] {
        assert!(events.iter().any(|e| e["record"] == line), "{line}");
    }
    assert!(!events.iter().any(|e| e["record"]["requestId"] == 7), "the malformed event is skipped");
    let attempts = env.deliveries();
    let with_unknown: Vec<_> = attempts
        .iter()
        .filter(|d| d.subscriber == "telemetry_to_file" && String::from_utf8_lossy(&d.body).contains("futureThing"))
        .collect();
    assert_eq!(with_unknown.len(), 1, "{attempts:#?}");
    assert!(with_unknown[0].delivered() && with_unknown[0].attempt == 1, "accepted at once: {attempts:#?}");
    let console = env.console_lines().join("\n");
    assert!(console.contains("malformed=1 unknown=1"), "{console}");
    assert!(console.contains("skipped a malformed telemetry event"), "malformed events are logged: {console}");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn a_refused_batch_is_delivered_again_and_nothing_is_lost() {
    let file = temp_file("refuse");
    let mut cfg = config(binary("echo-fn"));
    cfg.extensions.push(example("telemetry_to_file"));
    cfg.env.push(("TELEMETRY_FILE".into(), file.to_string_lossy().into_owned()));
    cfg.env.push(("TELEMETRY_FILE_REFUSE_FIRST".into(), "2".into()));
    let env = Environment::start(cfg).await.expect("start");
    for i in 0..3 {
        env.invoke(format!(r#"{{"log":["kept {i}"]}}"#)).await.expect("invoke");
    }
    env.shutdown().await;
    let attempts: Vec<_> = env.deliveries().into_iter().filter(|d| d.subscriber == "telemetry_to_file").collect();
    let refused = attempts.iter().filter(|d| d.outcome == Outcome::Rejected(500)).count();
    assert_eq!(refused, 2, "{attempts:#?}");
    // Each refused batch came back under the same number and was then accepted.
    for r in attempts.iter().filter(|d| d.outcome == Outcome::Rejected(500)) {
        assert!(attempts.iter().any(|d| d.batch == r.batch && d.attempt > r.attempt && d.delivered()));
    }
    let events = read_events(&file);
    for i in 0..3 {
        let line = format!("kept {i}");
        assert_eq!(events.iter().filter(|e| e["record"] == line.as_str()).count(), 1, "{line}");
    }
    let initstarts = events.iter().filter(|e| e["type"] == "platform.initStart").count();
    assert_eq!(initstarts, 1, "a redelivered event is persisted once");
    assert!(env.console_lines().join("\n").contains("refused=2"));
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn an_internal_extension_in_a_lambda_runtime_function_receives_every_invoke() {
    let env = Environment::start(config(example("internal"))).await.expect("start");
    assert!(
        env.observations().iter().any(|o| matches!(&o.what,
            Observation::ExtensionRegistered { name, external: false, .. } if name == "internal-flusher")),
        "registered as an internal extension"
    );
    let mut ids = Vec::new();
    for i in 0..5 {
        let out = env.invoke(format!(r#"{{"n":{i}}}"#)).await.expect("invoke");
        assert!(out.result.function_error.is_none());
        ids.push(out.result.request_id);
    }
    // The fifth INVOKE is done before the fifth report: the report waits for its `next`.
    env.wait_for(
        |o| matches!(o, Observation::InvokeEnd { request_id, .. } if *request_id == ids[4]),
        Some(Duration::from_secs(10)),
    )
    .await
    .expect("the last invoke ends");
    env.shutdown().await;
    let console = env.console_lines().join("\n");
    for id in &ids {
        assert!(console.contains(&format!("internal extension: INVOKE {id} flushed 1 metric(s)")), "{console}");
    }
}

/// One recorded stream (the emulator's delivery of Python and Rust functions, plus
/// documented events), parsed by the `lambda-extension` crate and by this SDK: wherever
/// the crate succeeds, both yield the same record.
#[test]
fn parity_with_the_lambda_extension_crate_wherever_it_succeeds() {
    let data = include_str!("data/recorded.ndjson");
    let mut compared = 0;
    let mut crate_failed = Vec::new();
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let ours: tandem_sdk::Event = serde_json::from_str(line).expect("the SDK parses every event");
        let theirs: Result<lambda_extension::LambdaTelemetry<Value>, _> = serde_json::from_str(line);
        let Ok(theirs) = theirs else {
            crate_failed.push(ours.record.type_name().to_owned());
            continue;
        };
        let ours = serde_json::to_value(&ours).expect("serialize");
        let theirs = serde_json::to_value(&theirs).expect("serialize");
        assert_eq!(ours["type"], theirs["type"], "{line}");
        let t_ours = tandem_sdk::wire::time::parse_rfc3339_millis(ours["time"].as_str().unwrap_or_default());
        let t_theirs = tandem_sdk::wire::time::parse_rfc3339_millis(theirs["time"].as_str().unwrap_or_default());
        assert_eq!(t_ours, t_theirs, "time of {line}");
        same_fields(&ours["record"], &theirs["record"], line);
        compared += 1;
    }
    assert!(compared >= 35, "most of the stream is comparable ({compared})");
    // Where the crate fails, it fails the whole batch; the SDK still has the event.
    assert!(crate_failed.iter().any(|t| t == "platform.futureThing"), "{crate_failed:?}");
    assert!(crate_failed.iter().any(|t| t.starts_with("platform.restore")), "{crate_failed:?}");
}

/// Every field the crate produced has the same value in ours (the crate drops fields it
/// does not model and writes absent `spans` as `[]`).
fn same_fields(ours: &Value, theirs: &Value, line: &str) {
    match theirs {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "spans" && v == &Value::Array(vec![]) && ours.get(k).is_none() {
                    continue;
                }
                if v.is_null() && ours.get(k).is_none() {
                    continue;
                }
                let o = ours.get(k).unwrap_or_else(|| panic!("field {k} missing in ours for {line}"));
                same_fields(o, v, line);
            }
        }
        Value::Number(n) => assert_eq!(ours.as_f64(), n.as_f64(), "{line}"),
        other => assert_eq!(ours, other, "{line}"),
    }
}
