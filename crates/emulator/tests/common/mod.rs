//! Shared helpers of the emulator's integration tests: where the real peer programs
//! are, temporary directories, extension launchers with their own settings, a small
//! HTTP client, JSON-lines readers and bounded waits.
//!
//! Every test runs real processes over real sockets on 127.0.0.1. Nothing here
//! sleeps to assert speed: waits are polls with generous protocol deadlines.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tandem_emulator::{Config, Environment, Observation, Observed};

/// The generous deadline of every protocol step (an invoke, a shutdown, a request).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root exists")
}

/// `target/<profile>/`, where `cargo build --workspace --bins` puts the peers.
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test binary>
    exe.parent().and_then(Path::parent).map(Path::to_path_buf).expect("the test binary lives in target/<profile>/deps")
}

/// A binary of the workspace (a peer program or the emulator's CLI).
pub fn bin(name: &str) -> PathBuf {
    let path = target_profile_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first (cargo xtask test does)",
        path.display()
    );
    path
}

/// A file of the repository's examples.
pub fn example(rel: &str) -> PathBuf {
    let path = repo_root().join("examples").join(rel);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// The Python interpreter that has awslambdaric (also used for stdlib-only scripts).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TANDEM_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = repo_root().join("target/venv/bin/python3");
    if venv.is_file() {
        return venv;
    }
    panic!(
        "no Python with awslambdaric: TANDEM_PYTHON is unset and {} does not exist; \
         run `cargo xtask setup` (it creates target/venv), or run the tests with `cargo xtask test`",
        venv.display()
    );
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A temporary directory removed when dropped.
pub struct TempDir(PathBuf);

static DIRS: AtomicU64 = AtomicU64::new(0);

impl TempDir {
    pub fn new() -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "tandem-emulator-test-{}-{}-{nanos}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes an executable file.
    pub fn script(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.join(name);
        std::fs::write(&path, text).expect("write a script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("make the script executable");
        path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An external extension as Lambda launches it: an executable named `name` (its
/// registration name) that starts `program` with its own environment variables, so
/// that several differently configured extensions can share one environment.
pub struct Ext {
    path: PathBuf,
    out: PathBuf,
}

impl Ext {
    /// `program` (a peer binary) started as extension `name` with `vars`. `PROBE_OUT`
    /// and `LEXT_OUT` point at `<dir>/<name>.out` and `PROBE_NAME` is `name`.
    pub fn new(dir: &TempDir, name: &str, program: &Path, vars: &[(&str, &str)]) -> Self {
        let out = dir.join(&format!("{name}.out"));
        let out_s = out.to_string_lossy().into_owned();
        let mut text = String::from("#!/bin/sh\n");
        let mut all: Vec<(&str, &str)> =
            vec![("PROBE_OUT", out_s.as_str()), ("LEXT_OUT", out_s.as_str()), ("PROBE_NAME", name)];
        all.extend_from_slice(vars);
        for (k, v) in all {
            text.push_str(&format!("export {k}={}\n", sh_quote(v)));
        }
        text.push_str(&format!("exec {}\n", sh_quote(&program.to_string_lossy())));
        let path = dir.script(name, &text);
        Ext { path, out }
    }

    /// probe-ext as extension `name`.
    pub fn probe(dir: &TempDir, name: &str, vars: &[(&str, &str)]) -> Self {
        Self::new(dir, name, &bin("probe-ext"), vars)
    }

    /// An `lext-*` peer under its own name (the crate registers the file name).
    pub fn lext(dir: &TempDir, program: &str, vars: &[(&str, &str)]) -> Self {
        Self::new(dir, program, &bin(program), vars)
    }

    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The JSON lines the extension wrote so far.
    pub fn lines(&self) -> Vec<Value> {
        read_json_lines(&self.out)
    }

    /// What probe-ext recorded so far.
    pub fn probe_output(&self) -> ProbeOutput {
        ProbeOutput { lines: self.lines() }
    }
}

/// Parses a JSON-lines file (missing file: no lines). A line still being written (no
/// newline yet) is left for the next read; a complete line that is not JSON fails the
/// test: the peers write whole lines.
pub fn read_json_lines(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                let end = (0..=l.len().min(300)).rev().find(|&i| l.is_char_boundary(i)).unwrap_or(0);
                panic!("{}: invalid JSON line ({e}): {}…", path.display(), &l[..end])
            })
        })
        .collect()
}

/// What probe-ext recorded.
#[derive(Debug, Clone)]
pub struct ProbeOutput {
    pub lines: Vec<Value>,
}

impl ProbeOutput {
    /// Accepted batches, in the order they were written.
    pub fn batches(&self) -> Vec<&Value> {
        self.lines.iter().filter(|l| l.get("batch").is_some()).collect()
    }

    /// Events of accepted batches, in order.
    pub fn events(&self) -> Vec<Value> {
        self.batches().iter().flat_map(|b| b["events"].as_array().cloned().unwrap_or_default()).collect()
    }

    /// Events of accepted batches with the time their batch arrived.
    pub fn timed_events(&self) -> Vec<(u64, Value)> {
        self.batches()
            .iter()
            .flat_map(|b| {
                let at = b["received_ms"].as_u64().unwrap_or(0);
                b["events"].as_array().cloned().unwrap_or_default().into_iter().map(move |e| (at, e))
            })
            .collect()
    }

    /// Events of the given `type`.
    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["type"] == kind).collect()
    }

    pub fn rejected(&self) -> Vec<&Value> {
        self.lines.iter().filter(|l| l.get("rejected_batch").is_some()).collect()
    }

    pub fn bad(&self) -> Vec<&Value> {
        self.lines.iter().filter(|l| l.get("bad_batch").is_some()).collect()
    }

    /// INVOKE or SHUTDOWN lines.
    pub fn lifecycle(&self, kind: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["lifecycle"] == kind).collect()
    }

    pub fn subscribe_statuses(&self) -> Vec<u64> {
        self.lines.iter().filter_map(|l| l.get("subscribe_status").and_then(Value::as_u64)).collect()
    }
}

/// A configuration with test-friendly defaults: no console output, the given runtime.
pub fn config(runtime: Vec<String>) -> Config {
    let mut cfg = Config::new(runtime);
    cfg.timeout = Duration::from_secs(10);
    cfg
}

/// echo-fn as the runtime.
pub fn echo_config() -> Config {
    config(vec![bin("echo-fn").to_string_lossy().into_owned()])
}

/// Runs `f`, failing the test with `what` if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {limit:?}"),
    }
}

/// Starts an environment (init included), bounded.
pub async fn start(cfg: Config) -> Environment {
    within(Duration::from_secs(60), "Environment::start", Environment::start(cfg))
        .await
        .unwrap_or_else(|e| panic!("the environment did not start: {e}"))
}

/// Invokes with `payload` and returns the outcome, bounded.
pub async fn invoke(env: &Environment, payload: &str) -> tandem_emulator::InvokeOutcome {
    within(DEADLINE, "invoke", env.invoke(payload.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("the invocation was refused: {e}"))
}

/// Shuts down, bounded.
pub async fn shutdown(env: &Environment) {
    within(DEADLINE, "shutdown", env.shutdown()).await;
}

/// Parses a payload as JSON (the test fails with the payload if it is not).
pub fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// Polls `check` every 10 ms until it returns `Some`, failing the test after `limit`.
pub async fn poll<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= until {
            panic!("{what}: not seen within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The observations matching `pred`.
pub fn observed(env: &Environment, pred: impl Fn(&Observation) -> bool) -> Vec<Observed> {
    env.observations().into_iter().filter(|o| pred(&o.what)).collect()
}

/// Waits for an observation, failing the test after [`DEADLINE`].
pub async fn wait_for(env: &Environment, what: &str, pred: impl Fn(&Observation) -> bool) -> Observed {
    env.wait_for(pred, Some(DEADLINE))
        .await
        .unwrap_or_else(|| panic!("observation {what}: not seen within {DEADLINE:?}"))
}

/// The pid of a process of the environment (its latest start).
pub fn pid_of(env: &Environment, process: &str) -> i32 {
    env.observations()
        .into_iter()
        .rev()
        .find_map(|o| match o.what {
            Observation::Spawned { process: p, pid } if p == process => Some(pid),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no process {process} was started"))
}

/// `(Frozen epoch ms, Thawed epoch ms)` windows; a window still open ends at `u64::MAX`.
pub fn frozen_windows(env: &Environment) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut open: Option<u64> = None;
    for o in env.observations() {
        match o.what {
            Observation::Frozen => open = Some(o.epoch_ms),
            Observation::Thawed => {
                if let Some(f) = open.take() {
                    out.push((f, o.epoch_ms));
                }
            }
            _ => {}
        }
    }
    if let Some(f) = open {
        out.push((f, u64::MAX));
    }
    out
}

// ----- HTTP ---------------------------------------------------------------------------

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        json(&self.body)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a Lambda API error answer: `status` and JSON `errorType`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error_type: &str) {
        assert_eq!(self.status, status, "expected {status} {error_type}, got {} {}", self.status, self.text());
        let body = self.json();
        assert_eq!(body["errorType"], error_type, "errorType of the answer {}", self.text());
        assert!(
            body["errorMessage"].as_str().is_some_and(|m| !m.is_empty()),
            "the error answer has a message: {}",
            self.text()
        );
    }
}

/// One HTTP/1.1 request on a fresh connection, bounded by [`DEADLINE`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let body = body.into();
    let what = format!("{method} {path}");
    within(DEADLINE, &what, async {
        let stream =
            tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{what}: connect to {addr}: {e}"));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap_or_else(|e| panic!("{what}: handshake: {e}"));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut b = http::Request::builder().method(method).uri(path).header("Host", addr.to_string());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body)).expect("a valid request");
        let resp = sender.send_request(req).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap_or_else(|e| panic!("{what}: reading the answer: {e}")).to_bytes();
        Answer { status: parts.status.as_u16(), headers: parts.headers, body }
    })
    .await
}

/// A request that may legitimately block (a long-poll `next`), run in the background.
pub fn background(
    addr: SocketAddr,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
) -> tokio::task::JoinHandle<Answer> {
    tokio::spawn(async move {
        let stream =
            tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{method} {path}: connect: {e}"));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: handshake: {e}"));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut b = http::Request::builder().method(method).uri(path).header("Host", addr.to_string());
        for (k, v) in &headers {
            b = b.header(*k, v.as_str());
        }
        let req = b.body(Full::new(Bytes::new())).expect("a valid request");
        let resp = sender.send_request(req).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Answer { status: parts.status.as_u16(), headers: parts.headers, body }
    })
}

// ----- an init that stays open ---------------------------------------------------------

pub const REGISTER: &str = "/2020-01-01/extension/register";
pub const EXT_NEXT: &str = "/2020-01-01/extension/event/next";
pub const EXT_INIT_ERROR: &str = "/2020-01-01/extension/init/error";
pub const EXT_EXIT_ERROR: &str = "/2020-01-01/extension/exit/error";
pub const TELEMETRY: &str = "/2022-07-01/telemetry";
pub const LOGS: &str = "/2020-08-15/logs";
pub const RUNTIME_NEXT: &str = "/2018-06-01/runtime/invocation/next";
pub const RUNTIME_INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

/// An environment whose runtime is a real process that never calls the Runtime API
/// (a shell writing `AWS_LAMBDA_RUNTIME_API` to a file, then `sleep`), so that init
/// stays open (init limit 120 s) while the test itself talks to the APIs, as an
/// internal extension or in the runtime's place. `Environment::start` runs in the
/// background and returns once init ends.
pub struct OpenInit {
    pub dir: TempDir,
    pub api: SocketAddr,
    started: Option<tokio::task::JoinHandle<Environment>>,
    env: Option<Environment>,
}

impl OpenInit {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = TempDir::new();
        let addr_file = dir.join("runtime-api");
        let script = format!(
            "printf '%s' \"$AWS_LAMBDA_RUNTIME_API\" > {f}.tmp && mv {f}.tmp {f} && exec sleep 300",
            f = sh_quote(&addr_file.to_string_lossy())
        );
        let mut cfg = config(vec!["/bin/sh".into(), "-c".into(), script]);
        cfg.task_root = Some(dir.path().to_path_buf());
        cfg.init_timeout = Duration::from_secs(120);
        adjust(&mut cfg);
        let started = tokio::spawn(async move {
            Environment::start(cfg).await.unwrap_or_else(|e| panic!("the environment did not start: {e}"))
        });
        let until = Instant::now() + DEADLINE;
        let api = loop {
            let addr = std::fs::read_to_string(&addr_file).ok().and_then(|s| s.trim().parse::<SocketAddr>().ok());
            if let Some(addr) = addr {
                break addr;
            }
            if started.is_finished() {
                let env = started.await.expect("the start task did not panic");
                panic!(
                    "init ended before the sleeping runtime ran: {:?}\n{:#?}",
                    env.init_outcome(),
                    env.console_lines()
                );
            }
            assert!(
                Instant::now() < until,
                "the sleeping runtime did not write AWS_LAMBDA_RUNTIME_API within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        OpenInit { dir, api, started: Some(started), env: None }
    }

    /// Registers an internal extension `name` for `events` (a JSON array); returns
    /// its identifier.
    pub async fn register(&self, name: &str, events: &str) -> String {
        let a = request(
            self.api,
            "POST",
            REGISTER,
            &[("Lambda-Extension-Name", name)],
            format!(r#"{{"events":{events}}}"#),
        )
        .await;
        assert_eq!(a.status, 200, "register {name}: {}", a.text());
        a.header("Lambda-Extension-Identifier").expect("the register answer carries Lambda-Extension-Identifier")
    }

    /// The environment, once init has ended (waits for `Environment::start`).
    pub async fn environment(&mut self) -> &Environment {
        if let Some(handle) = self.started.take() {
            let env = within(DEADLINE, "Environment::start after init ended", handle)
                .await
                .expect("the start task did not panic");
            self.env = Some(env);
        }
        self.env.as_ref().expect("the environment started")
    }

    /// Ends init with a runtime init/error if it is still open, then shuts down.
    pub async fn finish(mut self) {
        if self.started.is_some() && self.env.is_none() {
            let _ = request(
                self.api,
                "POST",
                RUNTIME_INIT_ERROR,
                &[("Lambda-Runtime-Function-Error-Type", "Runtime.TestDone")],
                r#"{"errorMessage":"test done","errorType":"Runtime.TestDone"}"#,
            )
            .await;
        }
        let env = self.environment().await;
        shutdown(env).await;
    }
}

/// A subscription request body for port `port` (host sandbox.localdomain).
pub fn subscription(schema: &str, port: u16) -> String {
    format!(
        r#"{{"schemaVersion":"{schema}","types":["platform","function"],"destination":{{"protocol":"HTTP","URI":"http://sandbox.localdomain:{port}"}}}}"#
    )
}

// ----- tiny custom runtimes in Python's standard library -------------------------------

/// The Runtime API client shared by the script runtimes: raw sockets, HTTP/1.1 by hand.
const PY_CLIENT: &str = r#"
import base64, json, os, socket, sys

HOST, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)

def connect():
    return socket.create_connection((HOST, int(PORT)))

def read_answer(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("runtime: the Runtime API closed the connection")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("runtime: the answer ended early")
        rest += chunk
    return status, headers, rest[:length]

def next_event():
    s = connect()
    s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: runtime\r\n\r\n")
    status, headers, body = read_answer(s)
    s.close()
    if status != 200:
        sys.exit("runtime: next answered %d %r" % (status, body))
    return headers, body

def post(path, body, extra=b""):
    s = connect()
    s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: runtime\r\nContent-Type: application/json\r\n"
              + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    answer = read_answer(s)
    s.close()
    return answer
"#;

/// A runtime that answers every event with `{"headers": {...}, "event": "<raw>"}`:
/// the Runtime API headers exactly as it received them.
pub const HEADER_DUMP_RUNTIME: &str = r#"
while True:
    headers, body = next_event()
    rid = headers["lambda-runtime-aws-request-id"]
    answer = json.dumps({"headers": headers, "event": body.decode()}).encode()
    status, _, text = post("/2018-06-01/runtime/invocation/%s/response" % rid, answer)
    print("header-dump answered %s: %d" % (rid, status), flush=True)
"#;

/// Writes `body` (after the shared client) as a Python script; returns the runtime argv.
pub fn python_runtime(dir: &TempDir, name: &str, body: &str) -> Vec<String> {
    let path = dir.join(name);
    std::fs::write(&path, format!("{PY_CLIENT}\n{body}")).expect("write the runtime script");
    vec![python().to_string_lossy().into_owned(), "-u".into(), path.to_string_lossy().into_owned()]
}

/// Invokes and asserts that the invocation succeeded.
pub async fn invoke_ok(env: &Environment, payload: &str) -> tandem_emulator::InvokeResult {
    let out = invoke(env, payload).await.result;
    assert_eq!(
        out.status,
        tandem_wire::Status::Success,
        "invoke {payload} failed: {}",
        String::from_utf8_lossy(&out.payload[..out.payload.len().min(500)])
    );
    out
}
