//! Shared parts of the end-to-end tests: a real environment (tandem-emulator) running
//! the real `echo-fn` function with the real `tandem` binary as its extension, and
//! real HTTP receivers on 127.0.0.1 (NDJSON and OTLP/HTTP), written with hyper.

#![allow(dead_code)]

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem_emulator::{Config, Environment, Observation};
use tokio::net::TcpListener;

/// The `tandem` binary under test.
/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's Python (awslambdaric, moto and the checkers, from `cargo xtask setup`).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TANDEM_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = repo_root().join("target/venv/bin/python3");
    assert!(venv.is_file(), "{} is missing: run `cargo xtask setup`", venv.display());
    venv
}

pub fn tandem_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tandem"))
}

/// A workspace binary next to `tandem` (built by `cargo build --workspace --bins`).
pub fn peer(name: &str) -> PathBuf {
    let p = tandem_bin().with_file_name(name);
    assert!(p.exists(), "{} is missing: run `cargo build --workspace --bins` first", p.display());
    p
}

/// A fresh directory for one test.
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tandem-e2e-{name}-{}-{}", std::process::id(), fastrand::u64(..)));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the test directory");
    d
}

/// An environment running echo-fn with tandem, configured by `env` (TANDEM_SPOOL_DIR
/// and TANDEM_FILE_PATH default to `dir`, never to the shared /tmp/tandem).
pub async fn start(dir: &Path, env: &[(&str, String)], tune: impl FnOnce(&mut Config)) -> Environment {
    let mut cfg = Config::new(vec![peer("echo-fn").display().to_string()]);
    cfg.extensions.push(tandem_bin());
    cfg.function_name = "echo".into();
    cfg.env.push(("TANDEM_SPOOL_DIR".into(), dir.join("spool").display().to_string()));
    cfg.env.push(("TANDEM_FILE_PATH".into(), dir.join("records.ndjson").display().to_string()));
    cfg.env.push(("TANDEM_LOG_LEVEL".into(), "debug".into()));
    // Tests run in parallel: the OTLP receiver's fixed ports (4318, 4317) are left alone
    // unless a test asks for the receiver (tests/receiver.rs, on free ports).
    cfg.env.push(("TANDEM_OTLP_RECEIVER".into(), "off".into()));
    for (k, v) in env {
        cfg.env.push(((*k).to_owned(), v.clone()));
    }
    tune(&mut cfg);
    let env = Environment::start(cfg).await.expect("the environment starts");
    let (status, error) = env.init_outcome().expect("init ended");
    assert_eq!(status, tandem_wire::Status::Success, "init failed: {error:?}; console: {:#?}", env.console_lines());
    env
}

/// [`start`] with the `http` sink posting to `url`, and `env`.
pub async fn start_http(dir: &Path, url: String, env: &[(&str, &str)]) -> Environment {
    let mut all = vec![("TANDEM_SINKS", "http".to_owned()), ("TANDEM_HTTP_URL", url)];
    all.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    start(dir, &all, |_| {}).await
}

/// Unique log lines for one invocation.
pub fn lines(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-line-{i}-{}", fastrand::u64(..))).collect()
}

/// Invokes with `payload` and returns the request id.
pub async fn invoke(env: &Environment, payload: serde_json::Value) -> tandem_emulator::InvokeOutcome {
    env.invoke(payload.to_string()).await.expect("the invocation runs")
}

/// The NDJSON records of type `kind` in `text`.
pub fn ndjson_of(text: &str, kind: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["type"] == kind)
        .collect()
}

/// Messages of the log records in NDJSON `text`.
pub fn ndjson_messages(text: &str) -> Vec<String> {
    ndjson_of(text, "log").iter().filter_map(|v| v["message"].as_str().map(str::to_owned)).collect()
}

/// Asserts that each of `want` occurs exactly once in `got`.
pub fn exactly_once(what: &str, got: &[String], want: &[String]) {
    for w in want {
        let n = got.iter().filter(|g| *g == w).count();
        assert_eq!(n, 1, "{what}: {w:?} arrived {n} times (of {} records)", got.len());
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The console once the lines tandem wrote at SHUTDOWN are in: tandem-emulator's
/// `shutdown()` can return before its hub has recorded a process's last output, so
/// wait (bounded) until `done` holds for the lines.
pub async fn console_after_shutdown(env: &Environment, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    eventually(Duration::from_secs(3), || done(&env.console_lines())).await;
    env.console_lines()
}

/// The tandem process's pids, in start order.
pub fn tandem_pids(env: &Environment) -> Vec<i32> {
    env.observations()
        .into_iter()
        .filter_map(|o| match o.what {
            Observation::Spawned { process, pid } if process == "tandem" => Some(pid),
            _ => None,
        })
        .collect()
}

/// What a receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Ok = 0,
    Unavailable = 1,
    /// Reads the request and never answers.
    Hang = 2,
    BadRequest = 3,
}

/// One request a receiver got (body decompressed).
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The answer given.
    pub status: u16,
    /// Its `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// A real HTTP server on 127.0.0.1 that records every request.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    requests: Arc<Mutex<Vec<Received>>>,
    hits: Arc<AtomicUsize>,
    /// Requests still to answer 503 before `mode` applies again.
    fail_next: Arc<AtomicUsize>,
    /// Milliseconds to wait before answering (the request is recorded on receipt).
    delay_ms: Arc<AtomicU64>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a receiver");
        let addr = listener.local_addr().expect("receiver address");
        let r = Receiver {
            addr,
            mode: Arc::new(AtomicU8::new(Mode::Ok as u8)),
            requests: Arc::default(),
            hits: Arc::default(),
            fail_next: Arc::default(),
            delay_ms: Arc::default(),
        };
        let server = r.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| server.clone().handle(req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_mode(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }

    /// Answers the next `n` requests 503, then as its mode says.
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Answers every request `d` after receiving it (recorded at receipt, as a receiver
    /// that commits before answering: a client that gives up meanwhile still delivered).
    pub fn set_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.requests.lock().map(|r| r.iter().filter(|x| x.status < 300).cloned().collect()).unwrap_or_default()
    }

    /// Every request answered, whatever the answer.
    pub fn answered(&self) -> Vec<Received> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Every request received (whatever the answer, hung ones included).
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The accepted NDJSON bodies, concatenated.
    pub fn ndjson(&self) -> String {
        self.accepted().iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect()
    }

    async fn handle(self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        self.hits.fetch_add(1, Ordering::SeqCst);
        let path = req.uri().path().to_owned();
        let content_type =
            req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let gzip = req.headers().get("content-encoding").is_some_and(|v| v == "gzip");
        let idempotency_key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let raw = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body = if gzip {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).expect("a gzip body");
            out
        } else {
            raw.to_vec()
        };
        let mode = self.mode.load(Ordering::SeqCst);
        if mode == Mode::Hang as u8 {
            std::future::pending::<()>().await;
        }
        let failing = self.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        let status = match mode {
            _ if failing => StatusCode::SERVICE_UNAVAILABLE,
            m if m == Mode::Unavailable as u8 => StatusCode::SERVICE_UNAVAILABLE,
            m if m == Mode::BadRequest as u8 => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        };
        if let Ok(mut r) = self.requests.lock() {
            r.push(Received { path, content_type, body, status: status.as_u16(), idempotency_key });
        }
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = status;
        Ok(resp)
    }
}

/// The `extensionOverhead` of each `platform.report` tandem received, in order (the
/// time the extension added to each invocation after the runtime finished).
pub fn extension_overheads(env: &Environment) -> Vec<f64> {
    env.delivered_events("tandem")
        .into_iter()
        .filter(|e| e["type"] == "platform.report")
        .filter_map(|r| {
            r["record"]["spans"]
                .as_array()?
                .iter()
                .find(|s| s["name"] == "extensionOverhead")
                .and_then(|s| s["durationMs"].as_f64())
        })
        .collect()
}

/// A 127.0.0.1 URL where nothing listens (connections are refused).
pub async fn refusing_url(path: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    format!("http://{addr}{path}")
}
