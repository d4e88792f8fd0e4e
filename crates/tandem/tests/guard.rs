//! The guard end to end, with real processes: tandem in tandem-emulator next to a
//! Python function on awslambdaric (`tests/py/guard_fn.py`) that per event spawns
//! `/bin/sh -c 'sleep 5'`, connects to TCP servers on 127.0.0.2 (outside the default
//! allow-list) and 127.0.0.1 (inside), and drops an executable ELF file in its
//! temporary directory, and appends to files (watched or not). Findings are read from
//! tandem's file sink.

mod common;

use common::{python, repo_root, tandem_bin, tempdir};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;
use tandem_emulator::{Config, Environment};
use tandem_wire::Status;

/// A TCP server that accepts and holds connections (they are closed by the client).
fn server(ip: &str) -> u16 {
    let listener = TcpListener::bind((ip, 0)).expect("bind a test server");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

struct Servers {
    outside: u16,
    inside: u16,
}

impl Servers {
    fn start() -> Servers {
        Servers { outside: server("127.0.0.2"), inside: server("127.0.0.1") }
    }

    /// The event that does everything the guard must see.
    fn event(&self, drop: &str, extra: Value) -> Value {
        let mut e = json!({
            "spawn": true,
            "connect": [["127.0.0.2", self.outside], ["127.0.0.1", self.inside]],
            "drop": drop,
            "hold_ms": 600,
            "start_delay_ms": 300,
        });
        if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
            e.extend(x.clone());
        }
        e
    }
}

/// An environment: the Python function with tandem (file sink), the guard set by
/// `env`, the function's and tandem's TMPDIR in `dir/tmp` (watched by the guard).
async fn start(dir: &Path, env: &[(&str, String)]) -> Environment {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).expect("create the function's TMPDIR");
    let bootstrap = repo_root().join("examples/functions/python/bootstrap");
    let mut cfg = Config::new(vec![bootstrap.display().to_string()]);
    cfg.handler = "guard_fn.handle".into();
    cfg.extensions.push(tandem_bin());
    cfg.function_name = "guarded".into();
    cfg.timeout = Duration::from_secs(30);
    let py_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let base = [
        ("TANDEM_PYTHON", python().display().to_string()),
        ("PYTHONPATH", py_dir.display().to_string()),
        ("TMPDIR", tmp.display().to_string()),
        ("TANDEM_SINKS", "file".to_owned()),
        // Parallel tests leave the OTLP receiver's fixed ports alone.
        ("TANDEM_OTLP_RECEIVER", "off".to_owned()),
        ("TANDEM_FILE_PATH", dir.join("records.ndjson").display().to_string()),
        ("TANDEM_SPOOL_DIR", dir.join("spool").display().to_string()),
        ("TANDEM_LOG_LEVEL", "debug".to_owned()),
        ("TANDEM_GUARD_INTERVAL_MS", "100".to_owned()),
    ];
    cfg.env.extend(base.into_iter().map(|(k, v)| (k.to_owned(), v)));
    cfg.env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let env = Environment::start(cfg).await.expect("the environment starts");
    let (status, error) = env.init_outcome().expect("init ended");
    assert_eq!(status, Status::Success, "init failed: {error:?}; console: {:#?}", env.console_lines());
    env
}

async fn invoke(env: &Environment, event: &Value) -> Value {
    let out = env.invoke(event.to_string()).await.expect("the invocation runs").result;
    assert_eq!(out.status, Status::Success, "{out:?}; console: {:#?}", env.console_lines());
    serde_json::from_slice(&out.payload).expect("a JSON answer")
}

/// The findings tandem delivered (after shutdown: everything is flushed).
fn findings(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("records.ndjson")).unwrap_or_default();
    common::ndjson_of(&text, "log").into_iter().filter(|r| r["attributes"]["security.kind"].is_string()).collect()
}

fn of_kind<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|f| f["attributes"]["security.kind"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_reports_each_with_its_request_and_never_the_runtime_or_tandem() {
    let dir = tempdir("guard-detect");
    let servers = Servers::start();
    let env = start(&dir, &[("TANDEM_GUARD", "detect".into())]).await;
    let mut answers = Vec::new();
    for n in 0..2 {
        answers.push(invoke(&env, &servers.event(&format!("dropper-{n}"), json!({}))).await);
    }
    let tandem_pid = common::tandem_pids(&env);
    env.shutdown().await;
    let all = findings(&dir);
    let console = env.console_lines();
    for a in &answers {
        let id = a["request_id"].as_str().expect("a request id");
        let shell = a["shell_pid"].as_u64().expect("a shell pid");
        let procs: Vec<_> =
            of_kind(&all, "process").into_iter().filter(|f| f["attributes"]["process.pid"] == shell).collect();
        assert_eq!(procs.len(), 1, "one finding for the shell {shell}: {all:#?}\n{console:#?}");
        let f = procs[0];
        assert_eq!(f["requestId"], id);
        assert_eq!(f["attributes"]["faas.invocation_id"], id);
        assert_eq!(f["attributes"]["security.rule"], "exec.not_allowed");
        assert_eq!(f["attributes"]["security.action"], "alert");
        assert_eq!(f["level"], "WARN");
        let cmd = f["attributes"]["process.command_line"].as_str().unwrap_or_default();
        assert!(cmd.contains("sleep 5"), "evidence: {f}");
        let ancestry = f["attributes"]["process.ancestry"].to_string();
        assert!(ancestry.contains(&a["pid"].to_string()), "ancestry up to the runtime: {f}");

        let nets: Vec<_> = of_kind(&all, "network").into_iter().filter(|f| f["requestId"] == id).collect();
        assert_eq!(nets.len(), 1, "one connection finding in {id}: {all:#?}");
        assert_eq!(nets[0]["attributes"]["network.peer.address"], "127.0.0.2");
        assert_eq!(nets[0]["attributes"]["network.peer.port"], servers.outside);
        assert_eq!(nets[0]["attributes"]["process.pid"], a["pid"], "held by the runtime");

        let path = a["dropped"].as_str().expect("a dropped file");
        let files: Vec<_> =
            of_kind(&all, "file").into_iter().filter(|f| f["attributes"]["file.path"] == path).collect();
        assert_eq!(files.len(), 1, "one finding for {path}: {all:#?}");
        assert_eq!(files[0]["requestId"], id);
        assert_eq!(files[0]["attributes"]["security.rule"], "file.elf_in_tmp");
    }
    // Never the allowed connection, the Runtime API, the runtime or tandem itself.
    for f in &all {
        let a = &f["attributes"];
        assert_ne!(a["network.peer.port"], servers.inside, "the allowed connection: {f}");
        assert_ne!(a["network.peer.address"], "127.0.0.1", "the Runtime API or tandem's own: {f}");
        if a["security.kind"] == "process" {
            assert!(answers.iter().all(|x| a["process.pid"] != x["pid"]), "the runtime: {f}");
        }
        assert!(tandem_pid.iter().all(|p| a["process.pid"] != *p), "tandem itself: {f}");
    }
    assert!(console.iter().any(|l| l.contains("security process high exec.not_allowed")), "{console:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_kills_the_shell_and_the_invocation_completes() {
    let dir = tempdir("guard-enforce");
    let servers = Servers::start();
    let env = start(&dir, &[("TANDEM_GUARD", "enforce".into())]).await;
    let a = invoke(&env, &servers.event("dropper", json!({"wait_killed_ms": 4000}))).await;
    env.shutdown().await;
    // Killed by SIGKILL, long before its `sleep 5` could end.
    assert_eq!(a["shell_returncode"], -9, "{a}");
    let all = findings(&dir);
    let shell = &a["shell_pid"];
    let f = of_kind(&all, "process").into_iter().find(|f| f["attributes"]["process.pid"] == *shell);
    assert_eq!(f.map(|f| f["attributes"]["security.action"].clone()), Some(json!("killed")), "{all:#?}");
    // The runtime holds the forbidden connection: reported, never killed.
    let net = of_kind(&all, "network");
    assert_eq!(net.len(), 1, "{all:#?}");
    assert_eq!(net[0]["attributes"]["security.action"], "alert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_policy_applied_yields_no_finding() {
    let dir = tempdir("guard-learn");
    let servers = Servers::start();
    let policy = dir.join("policy.toml");
    let env =
        start(&dir, &[("TANDEM_GUARD", "learn".into()), ("TANDEM_GUARD_POLICY_OUT", policy.display().to_string())])
            .await;
    let event = servers.event("dropper", json!({}));
    invoke(&env, &event).await;
    env.shutdown().await;
    assert!(findings(&dir).is_empty(), "learn reports nothing");
    let text = std::fs::read_to_string(&policy).expect("learn wrote its policy");
    assert!(text.contains(&format!("\"127.0.0.2:{}\"", servers.outside)), "{text}");
    assert!(text.contains("/dropper\""), "{text}");

    let dir2 = tempdir("guard-learned");
    // The same TMPDIR, so the dropped file has the same path.
    std::fs::create_dir_all(dir2.join("tmp")).expect("mkdir");
    let env = start(
        &dir,
        &[
            ("TANDEM_GUARD", "detect".into()),
            ("TANDEM_CONFIG", policy.display().to_string()),
            ("TANDEM_FILE_PATH", dir2.join("records.ndjson").display().to_string()),
        ],
    )
    .await;
    invoke(&env, &event).await;
    env.shutdown().await;
    let all = findings(&dir2);
    assert!(all.is_empty(), "the learned policy allows all that was seen: {all:#?}\n{text}");
    // And without it, the same activity is found.
    let env = start(&dir, &[("TANDEM_GUARD", "detect".into())]).await;
    std::fs::remove_file(dir.join("records.ndjson")).ok();
    invoke(&env, &event).await;
    env.shutdown().await;
    assert!(of_kind(&findings(&dir), "network").len() == 1, "{:#?}", findings(&dir));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_watched_files_are_one_finding_per_burst() {
    let dir = tempdir("guard-watch");
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).expect("mkdir conf");
    let (watched, other) = (conf.join("app.conf"), conf.join("notes.txt"));
    let env = start(
        &dir,
        &[
            ("TANDEM_GUARD", "detect".into()),
            ("TANDEM_GUARD_WATCH_FILES", format!("{}/*.conf", conf.display())),
            ("TANDEM_SINKS", "file,stdout".into()),
        ],
    )
    .await;
    // Three writes in a row to the watched file: one burst; the other file: none.
    let event = json!({
        "write": [[watched.display().to_string(), 3], [other.display().to_string(), 3]],
        "start_delay_ms": 300,
        "hold_ms": 300,
    });
    let a = invoke(&env, &event).await;
    env.shutdown().await;
    let all = findings(&dir);
    let writes: Vec<_> = all.iter().filter(|f| f["attributes"]["security.rule"] == "file.watched_write").collect();
    assert_eq!(writes.len(), 1, "one finding for the burst, none for the unwatched file: {all:#?}");
    let f = writes[0];
    assert_eq!(f["attributes"]["file.path"], watched.display().to_string());
    assert_eq!(f["attributes"]["security.kind"], "file");
    assert_eq!(f["attributes"]["guard.watch_pattern"], format!("{}/*.conf", conf.display()));
    assert_eq!(f["requestId"], a["request_id"], "told with the invocation it happened in");
    assert!(all.iter().all(|f| f["attributes"]["file.path"] != other.display().to_string()), "{all:#?}");
    let console = env.console_lines();
    assert!(console.iter().any(|l| l.contains("security file high file.watched_write")), "{console:#?}");
    // The stdout sink counts it: one EMF document, SecurityFindings by kind.
    let emf: Vec<Value> = console
        .iter()
        .filter_map(|l| l.find("{\"_aws\":").and_then(|i| serde_json::from_str(&l[i..]).ok()))
        .filter(|d: &Value| d.get("SecurityFindings").is_some())
        .collect();
    assert_eq!(emf.len(), 1, "{console:#?}");
    let d = &emf[0];
    assert_eq!(
        (&d["SecurityFindings"], &d["kind"], &d["rule"]),
        (&json!(1), &json!("file"), &json!("file.watched_write"))
    );
    assert_eq!(d["requestId"], a["request_id"]);
    let directive = &d["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Dimensions"], json!([["FunctionName", "kind"]]));
    assert_eq!(directive["Metrics"], json!([{"Name": "SecurityFindings", "Unit": "Count"}]));
    assert_eq!(d["FunctionName"], "guarded");
    // And AWS's own EMF validators (PyPI aws-embedded-metrics) take it.
    let file = dir.join("security-emf.ndjson");
    std::fs::write(&file, format!("{d}\n")).expect("write the document");
    let checker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_emf.py");
    let out = std::process::Command::new(python()).arg(checker).arg(&file).output().expect("run check_emf.py");
    assert!(out.status.success(), "check_emf.py: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}
