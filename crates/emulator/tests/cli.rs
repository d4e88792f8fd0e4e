//! The `tandem-emulator invoke` command, run as a process.

mod common;

use common::*;
use std::process::Output;
use std::time::Duration;

async fn run_cli(args: &[String]) -> Output {
    let mut cmd = tokio::process::Command::new(bin("tandem-emulator"));
    cmd.args(args).kill_on_drop(true).stdin(std::process::Stdio::null());
    within(Duration::from_secs(60), "tandem-emulator invoke", cmd.output()).await.expect("the CLI runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_invoke_runs_n_invocations_and_prints_reports() {
    let dir = TempDir::new();
    let event = dir.join("event.json");
    std::fs::write(&event, r#"{"log":["cli line"]}"#).expect("write the event");
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_EXIT_ON_SHUTDOWN", "1")]);
    let args: Vec<String> = vec![
        "invoke".into(),
        "--runtime".into(),
        bin("echo-fn").to_string_lossy().into_owned(),
        "--extension".into(),
        events.path().to_string_lossy().into_owned(),
        "--event".into(),
        event.to_string_lossy().into_owned(),
        "-n".into(),
        "3".into(),
    ];
    let out = run_cli(&args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exit {:?}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    let responses: Vec<serde_json::Value> = stdout.lines().map(|l| json(l.as_bytes())).collect();
    assert_eq!(responses.len(), 3, "{stdout}");
    for r in &responses {
        assert_eq!(r["echo"], serde_json::json!({"log":["cli line"]}), "{r}");
    }
    let reports: Vec<&str> = stderr.lines().filter(|l| l.starts_with("REPORT RequestId: ")).collect();
    assert_eq!(reports.len(), 3, "{stderr}");
    for (i, r) in reports.iter().enumerate() {
        let rid = responses[i]["request_id"].as_str().expect("request id");
        assert!(r.starts_with(&format!("REPORT RequestId: {rid}\t")), "{r}");
        let used: u64 = r
            .split('\t')
            .find_map(|f| f.strip_prefix("Max Memory Used: "))
            .and_then(|v| v.strip_suffix(" MB"))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("Max Memory Used in {r:?}"));
        assert!(used > 0, "{r}");
        assert!(r.contains("\tBilled Duration: "), "{r}");
        assert_eq!(r.contains("Init Duration"), i == 0, "Init Duration only on the cold start: {r}");
    }
    assert_eq!(stderr.lines().filter(|l| *l == "cli line").count(), 3, "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("START RequestId: ")).count(), 3);
    let invokes = events.lines().into_iter().filter(|l| l["event"] == "INVOKE").count();
    let shutdowns = events.lines().into_iter().filter(|l| l["event"] == "SHUTDOWN").count();
    assert_eq!((invokes, shutdowns), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_invoke_exits_non_zero_when_the_function_errors() {
    let dir = TempDir::new();
    let event = dir.join("event.json");
    std::fs::write(&event, r#"{"error":"cli failure"}"#).expect("write the event");
    let args: Vec<String> = vec![
        "invoke".into(),
        "--runtime".into(),
        bin("echo-fn").to_string_lossy().into_owned(),
        "--event".into(),
        event.to_string_lossy().into_owned(),
    ];
    let out = run_cli(&args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "a function error fails the command: {:?}", out.status);
    assert_eq!(out.status.code(), Some(1));
    let body = json(stdout.trim().as_bytes());
    assert_eq!(body["errorType"], "EchoError");
    assert_eq!(body["errorMessage"], "cli failure");

    // A bad argument is a usage error, not a function error.
    let out = run_cli(&["invoke".into(), "--runtime".into(), "x".into(), "--memory-mb".into(), "64".into()]).await;
    assert!(!out.status.success());
    assert_ne!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}
