//! The extension in a local Lambda execution environment (tandem-emulator), next to a
//! real function (examples/function.rs): every line the function prints is forwarded
//! exactly once, the last invocation's report too (Lambda delivers it only after
//! SHUTDOWN, so it goes out through the drain), and the extension exits by itself.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tandem_emulator::{Config, Environment, Observation};

/// The extension, as cargo built it for this test.
const EXTENSION: &str = env!("CARGO_BIN_EXE_{% if binary_name %}{{ binary_name }}{% else %}{{ project_name }}{% endif %}");

/// The function: `cargo test` builds the examples into `target/<profile>/examples`.
fn function() -> PathBuf {
    let test = std::env::current_exe().expect("the test's path");
    let profile = test
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let function = profile.join("examples").join("function");
    assert!(
        function.exists(),
        "{} is missing: run `cargo test`, which builds the examples",
        function.display()
    );
    function
}

/// The JSON objects among the console's lines: what the extension forwarded.
fn forwarded(env: &Environment) -> Vec<Value> {
    env.console_lines()
        .iter()
        .filter_map(|line| {
            line.find('{')
                .and_then(|start| serde_json::from_str(&line[start..]).ok())
        })
        .collect()
}

/// Waits until `done` holds, failing after 10 s.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_line_is_forwarded_once_and_the_last_report_is_drained_at_shutdown() {
    let name = Path::new(EXTENSION)
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let mut config = Config::new(vec![function().to_string_lossy().into_owned()]);
    config.extensions.push(PathBuf::from(EXTENSION));
    config.timeout = Duration::from_secs(10);
    // Lambda freezes the environment between invocations, so a batch often waits for a
    // later one. Not frozen, the first invocation's batch arrives before the second
    // INVOKE, which lets the test see it forwarded there.
    config.freeze = false;
    let env = Environment::start(config).await.expect("init succeeds");

    let mut request_ids = Vec::new();
    for i in 0..3 {
        let event = json!({ "log": [format!("line {i} a"), format!("line {i} b")] });
        let outcome = env
            .invoke(event.to_string())
            .await
            .expect("the invocation runs");
        assert_eq!(outcome.result.function_error, None);
        let answer: Value = serde_json::from_slice(&outcome.result.payload).expect("a JSON answer");
        assert_eq!(answer, json!({ "printed": 2 }));
        request_ids.push(outcome.result.request_id);
        if i == 0 {
            // Held (acknowledged) first, forwarded at the next INVOKE.
            let held = || {
                env.delivered_events(&name)
                    .iter()
                    .any(|e| e["record"] == "line 0 b")
            };
            wait_until("the extension holds the first invocation's lines", held).await;
        }
        if i == 1 {
            let sent = || forwarded(&env).iter().any(|e| e["record"] == "line 0 b");
            wait_until(
                "the second INVOKE forwards the first invocation's lines",
                sent,
            )
            .await;
        }
    }
    env.shutdown().await;

    let events = forwarded(&env);
    for i in 0..3 {
        for part in ["a", "b"] {
            let line = format!("line {i} {part}");
            let copies = events
                .iter()
                .filter(|e| e["type"] == "function" && e["record"] == line.as_str())
                .count();
            assert_eq!(copies, 1, "`{line}` is forwarded once: {events:#?}");
        }
    }
    for id in &request_ids {
        let reports = events
            .iter()
            .filter(|e| e["type"] == "platform.report" && e["record"]["requestId"] == id.as_str())
            .count();
        assert_eq!(
            reports, 1,
            "the report of {id} is forwarded once: {events:#?}"
        );
    }

    let console = env.console_lines().join("\n");
    assert!(
        console.contains(&format!("{name} SHUTDOWN (spindown): drained")),
        "{console}"
    );
    assert!(console.contains("last report received: true"), "{console}");
    let exited_cleanly = env.observations().iter().any(|o| {
        matches!(&o.what, Observation::ProcessExited { process, exit } if *process == name && exit.code == Some(0))
    });
    assert!(
        exited_cleanly,
        "the extension exits 0 by itself at SHUTDOWN: {:#?}",
        env.observations()
    );
}
