//! Tandem's traces in a real OTLP trace backend: Arize Phoenix (PyPI `arize-phoenix`,
//! pinned, installed by `cargo xtask setup` in `target/phoenix-venv`), started here on
//! 127.0.0.1. The real `tandem` in tandem-emulator with the real `echo-fn` exports its
//! spans over OTLP/HTTP protobuf through a recording pass-through to Phoenix; every span
//! sent is then read back from Phoenix's REST API with its trace and its parent.
//! Needs `cargo build --workspace --bins`.

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// How long Phoenix may take to start (it imports a lot and migrates its database).
const START_DEADLINE: Duration = Duration::from_secs(180);
/// How long the spans may take to be stored and served (Phoenix inserts in batches).
const INGEST_DEADLINE: Duration = Duration::from_secs(60);

fn phoenix_bin() -> PathBuf {
    let bin = repo_root().join("target/phoenix-venv/bin/phoenix");
    assert!(bin.is_file(), "{} is missing: run `cargo xtask setup`", bin.display());
    bin
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    l.local_addr().expect("its address").port()
}

/// One request over a fresh HTTP/1.1 connection: the status and the body.
async fn request(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, body))
}

async fn get(addr: SocketAddr, path: &str) -> Result<(StatusCode, Bytes), String> {
    let req =
        Request::get(path).header("host", addr.to_string()).body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
    request(addr, req).await
}

/// Phoenix serving on 127.0.0.1, its data in a directory of its own; killed (with its
/// process group) when dropped.
struct Phoenix {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Phoenix {
    async fn start(dir: &Path) -> Phoenix {
        let port = free_port();
        let log = dir.join("phoenix.log");
        let out = std::fs::File::create(&log).expect("create Phoenix's log");
        let err = out.try_clone().expect("its log again");
        let child = Command::new(phoenix_bin())
            .arg("serve")
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", port.to_string())
            // Its OTLP/gRPC port defaults to 4317, tandem's receiver's: moved away.
            .env("PHOENIX_GRPC_PORT", free_port().to_string())
            .env("PHOENIX_WORKING_DIR", dir.join("phoenix-data"))
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("start phoenix serve");
        let mut phoenix = Phoenix { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), log };
        let started = Instant::now();
        loop {
            if let Ok((status, _)) = get(phoenix.addr, "/healthz").await {
                if status.is_success() {
                    return phoenix;
                }
            }
            if let Ok(Some(exit)) = phoenix.child.try_wait() {
                panic!("phoenix serve exited ({exit}) before it was ready:\n{}", phoenix.log_text());
            }
            assert!(
                started.elapsed() < START_DEADLINE,
                "Phoenix not ready after {START_DEADLINE:?}:\n{}",
                phoenix.log_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every span of `project` Phoenix serves (its REST API, page by page).
    async fn spans(&self, project: &str) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let path = match &cursor {
                None => format!("/v1/projects/{project}/spans?limit=1000"),
                Some(c) => format!("/v1/projects/{project}/spans?limit=1000&cursor={c}"),
            };
            let Ok((status, body)) = get(self.addr, &path).await else { break };
            if !status.is_success() {
                // The project exists once its first span is stored.
                break;
            }
            let page: serde_json::Value = serde_json::from_slice(&body).expect("Phoenix answers JSON");
            all.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        all
    }
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A pass-through on 127.0.0.1 to Phoenix's OTLP/HTTP endpoint, keeping each body it
/// forwarded and Phoenix accepted: what tandem sent.
#[derive(Clone)]
struct Recorder {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<Bytes>>>,
}

impl Recorder {
    async fn start(to: SocketAddr) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the recorder");
        let r = Recorder { addr: listener.local_addr().expect("its address"), accepted: Arc::default() };
        let server = r.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| server.clone().forward(to, req));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
                });
            }
        });
        r
    }

    async fn forward(self, to: SocketAddr, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let mut out = Request::post(parts.uri.path()).header("host", to.to_string());
        for name in ["content-type", "content-encoding"] {
            if let Some(v) = parts.headers.get(name) {
                out = out.header(name, v);
            }
        }
        let status = match out.body(Full::new(body.clone())) {
            Ok(req) => match request(to, req).await {
                Ok((status, _)) => status,
                Err(_) => StatusCode::BAD_GATEWAY,
            },
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_success() {
            if let Ok(mut a) = self.accepted.lock() {
                a.push(body);
            }
        }
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = status;
        Ok(resp)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A span as both sides name it: trace id, parent span id (if any), name.
type Sent = BTreeMap<String, (String, Option<String>, String)>;

fn sent_spans(bodies: &[Bytes]) -> Sent {
    let mut spans = Sent::new();
    for body in bodies {
        let req = ExportTraceServiceRequest::decode(&body[..]).expect("tandem sent OTLP protobuf");
        for s in req.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans) {
            let parent = (!s.parent_span_id.is_empty()).then(|| hex(&s.parent_span_id));
            spans.insert(hex(&s.span_id), (hex(&s.trace_id), parent, s.name.clone()));
        }
    }
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_span_tandem_exports_is_in_phoenix_with_its_parent() {
    let dir = tempdir("phoenix");
    let phoenix = Phoenix::start(&dir).await;
    let recorder = Recorder::start(phoenix.addr).await;
    let others = Receiver::start().await;
    let project = format!("tandem-{}-{}", std::process::id(), fastrand::u32(..));

    let env = start(
        &dir,
        &[
            ("TANDEM_SINKS", "otlp".to_owned()),
            ("TANDEM_FLUSH", "end".to_owned()),
            ("TANDEM_OTLP_RECEIVER", "off".to_owned()),
            ("TANDEM_OTLP_ENDPOINT", others.url("")),
            ("TANDEM_OTLP_TRACES_ENDPOINT", format!("http://{}/v1/traces", recorder.addr)),
            // Phoenix files spans under this project.
            ("OTEL_RESOURCE_ATTRIBUTES", format!("openinference.project.name={project}")),
        ],
        |_| {},
    )
    .await;
    // The first is a cold start (its root covers init).
    for i in 0..3 {
        let out = invoke(&env, serde_json::json!({ "log": [format!("phoenix line {i}")] })).await;
        assert_eq!(out.result.status, tandem_wire::Status::Success);
    }
    env.shutdown().await;

    let sent = sent_spans(&recorder.accepted.lock().map(|a| a.clone()).unwrap_or_default());
    // An invocation's span is the root of what tandem sends; its parent, if any, is the
    // caller's (the X-Ray trace header's), outside tandem.
    let local_root = |parent: &Option<String>| parent.as_ref().is_none_or(|p| !sent.contains_key(p));
    let roots = sent.values().filter(|(_, parent, _)| local_root(parent)).count();
    assert_eq!(roots, 3, "one root span per invocation: {sent:#?}");
    assert!(sent.len() > roots, "the roots have children: {sent:#?}");
    assert!(sent.values().any(|(_, _, name)| name == "init"), "the cold start's init span: {sent:#?}");

    let started = Instant::now();
    let stored = loop {
        let spans = phoenix.spans(&project).await;
        if spans.len() >= sent.len() || started.elapsed() > INGEST_DEADLINE {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let stored: BTreeMap<String, &serde_json::Value> =
        stored.iter().filter_map(|s| Some((s["context"]["span_id"].as_str()?.to_owned(), s))).collect();
    assert_eq!(stored.len(), sent.len(), "Phoenix holds every span sent, once; log:\n{}", phoenix.log_text());
    for (id, (trace, parent, name)) in &sent {
        let s = stored.get(id).unwrap_or_else(|| panic!("span {id} ({name}) is not in Phoenix"));
        assert_eq!(s["context"]["trace_id"].as_str(), Some(trace.as_str()), "{s}");
        assert_eq!(s["parent_id"].as_str(), parent.as_deref(), "{name}'s parent: {s}");
        assert_eq!(s["name"].as_str(), Some(name.as_str()), "{s}");
        if let Some(p) = parent.as_ref().filter(|p| sent.contains_key(*p)) {
            let up = stored.get(p).unwrap_or_else(|| panic!("{name}'s parent {p} is not in Phoenix"));
            assert_eq!(up["context"]["trace_id"], s["context"]["trace_id"], "a child is in its parent's trace");
        }
    }
    drop(phoenix);
    let _ = std::fs::remove_dir_all(&dir);
}
