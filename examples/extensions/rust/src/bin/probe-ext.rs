//! `probe-ext`: a configurable Telemetry/Logs API subscriber for the emulator's
//! tests, written against the raw APIs (tokio + hyper + serde_json, no
//! `lambda-extension` crate) so that every knob of a subscription can be set
//! and everything the platform sends is recorded as it arrived.
//! (Over 600 lines: a test peer kept in one file so that it reads as one program.)
//!
//! It registers for INVOKE and SHUTDOWN under its name (`PROBE_NAME`, default
//! the file name it was started as), listens on 127.0.0.1 on a port the kernel
//! picks, subscribes, and then loops on `next`.
//!
//! Settings (environment):
//! - `PROBE_OUT` (required): the JSON-lines file it appends to (see below).
//! - `PROBE_API`: `telemetry` (default, `PUT /2022-07-01/telemetry`), `logs`
//!   (`PUT /2020-08-15/logs`) or `none` (no subscription, events only).
//! - `PROBE_SCHEMA`: schemaVersion (default `2022-12-13`, Logs API `2021-03-18`).
//! - `PROBE_TYPES`: comma list (default `platform,function`).
//! - `PROBE_PROTOCOL`: `HTTP` (default) or `TCP` (newline-delimited JSON).
//! - `PROBE_MAX_ITEMS`, `PROBE_MAX_BYTES`, `PROBE_TIMEOUT_MS`: buffering; unset
//!   ones are left out of the request (the platform's defaults apply).
//! - `PROBE_FAIL_FIRST=N`: answer the first N batches 500 (HTTP only).
//! - `PROBE_DELAY_MS=N`: sleep N ms before answering each batch (HTTP only).
//! - `PROBE_NEXT_DELAY_MS=N`: after an INVOKE, wait N ms before the next `next`.
//! - `PROBE_WAIT_RUNTIME_DONE=1`: after an INVOKE, call `next` only once that
//!   invoke's `platform.runtimeDone` has been received (bounded by the INVOKE's
//!   deadline), as a telemetry extension that flushes before `next` does.
//! - `PROBE_SHUTDOWN_LINGER_MS=N`: after SHUTDOWN, wait N ms (late telemetry)
//!   before exiting 0. Unset, it does what AWS's samples do "to receive the
//!   remaining events": it waits until no batch has arrived for the subscription's
//!   `timeoutMs` (1000 when unset) plus 250 ms, and at most until 150 ms before the
//!   SHUTDOWN deadline.
//! - `PROBE_HOST`: the host of the destination URI (default `sandbox.localdomain`;
//!   Lambda also accepts `sandbox`).
//! - `PROBE_NEVER_ANSWER=1`: read each batch, record it, and never answer (HTTP
//!   only): a subscriber that hangs.
//! - `PROBE_LOG_PER_BATCH=1`: print one line to stdout per batch received (with
//!   `extension` in `PROBE_TYPES`, each batch causes the next one).
//! - `PROBE_ENDLESS_ANSWER=1`: record each batch, then answer 200 with a chunked body
//!   that never ends (HTTP only): a subscriber whose answer cannot be read to its end.
//!
//! Output lines (each one JSON object, written with one `write`):
//! - `{"registered":id,"name":..,"port":..}`
//! - `{"subscribe_status":code,"subscribe_body":..}` (body as JSON when it parses)
//! - `{"batch":n,"received_ms":epoch_ms,"events":[...]}` per accepted batch
//!   (TCP: per read that completed at least one line)
//! - `{"rejected_batch":k,"status":500,"received_ms":..,"events":[...]}`
//! - `{"held_batch":k,"received_ms":..,"events":[...]}` (never answered)
//! - `{"bad_batch":text,"error":..,"received_ms":..}` for a body that is not a JSON array
//! - `{"next":k,"sent_ms":..}` each time it calls `next`
//! - `{"lifecycle":"INVOKE"|"SHUTDOWN","event":{..},"received_ms":..}`
//! - `{"runtime_done_wait":request_id,"found":bool,"waited_ms":..}`
//!
//! Every failure prints a message to stderr and exits 1 (2 for bad settings).

use std::collections::HashSet;
use std::convert::Infallible;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

static NAME: OnceLock<String> = OnceLock::new();

fn name() -> &'static str {
    NAME.get().map(String::as_str).unwrap_or("probe-ext")
}

fn fail(message: &str) -> ! {
    eprintln!("{}: {message}", name());
    std::process::exit(1);
}

fn bad_setting(message: &str) -> ! {
    eprintln!("{}: {message}", name());
    std::process::exit(2);
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SubApi {
    Telemetry,
    Logs,
    None,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    Http,
    Tcp,
}

struct Settings {
    runtime_api: String,
    out: String,
    api: SubApi,
    schema: String,
    types: Vec<String>,
    protocol: Proto,
    max_items: Option<u64>,
    max_bytes: Option<u64>,
    timeout_ms: Option<u64>,
    fail_first: u64,
    delay: Duration,
    next_delay: Duration,
    wait_runtime_done: bool,
    linger: Option<Duration>,
    host: String,
    never_answer: bool,
    log_per_batch: bool,
    endless_answer: bool,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn number(name: &str) -> Option<u64> {
    let v = var(name)?;
    match v.parse() {
        Ok(n) => Some(n),
        Err(_) => bad_setting(&format!("{name}={v:?} is not a non-negative integer")),
    }
}

impl Settings {
    fn from_env() -> Self {
        let runtime_api =
            var("AWS_LAMBDA_RUNTIME_API").unwrap_or_else(|| bad_setting("AWS_LAMBDA_RUNTIME_API is not set"));
        let out = var("PROBE_OUT").unwrap_or_else(|| bad_setting("PROBE_OUT is required"));
        let api = match var("PROBE_API").as_deref().map(str::to_ascii_lowercase) {
            None => SubApi::Telemetry,
            Some(a) if a == "telemetry" => SubApi::Telemetry,
            Some(a) if a == "logs" => SubApi::Logs,
            Some(a) if a == "none" => SubApi::None,
            Some(a) => bad_setting(&format!("PROBE_API={a:?} is not telemetry, logs or none")),
        };
        let schema = var("PROBE_SCHEMA").unwrap_or_else(|| {
            if api == SubApi::Logs {
                "2021-03-18".into()
            } else {
                "2022-12-13".into()
            }
        });
        let types = var("PROBE_TYPES")
            .unwrap_or_else(|| "platform,function".into())
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let protocol = match var("PROBE_PROTOCOL").as_deref().map(str::to_ascii_uppercase) {
            None => Proto::Http,
            Some(p) if p == "HTTP" => Proto::Http,
            Some(p) if p == "TCP" => Proto::Tcp,
            Some(p) => bad_setting(&format!("PROBE_PROTOCOL={p:?} is not HTTP or TCP")),
        };
        Settings {
            runtime_api,
            out,
            api,
            schema,
            types,
            protocol,
            max_items: number("PROBE_MAX_ITEMS"),
            max_bytes: number("PROBE_MAX_BYTES"),
            timeout_ms: number("PROBE_TIMEOUT_MS"),
            fail_first: number("PROBE_FAIL_FIRST").unwrap_or(0),
            delay: Duration::from_millis(number("PROBE_DELAY_MS").unwrap_or(0)),
            next_delay: Duration::from_millis(number("PROBE_NEXT_DELAY_MS").unwrap_or(0)),
            wait_runtime_done: var("PROBE_WAIT_RUNTIME_DONE").as_deref() == Some("1"),
            linger: number("PROBE_SHUTDOWN_LINGER_MS").map(Duration::from_millis),
            host: var("PROBE_HOST").unwrap_or_else(|| "sandbox.localdomain".into()),
            never_answer: var("PROBE_NEVER_ANSWER").as_deref() == Some("1"),
            log_per_batch: var("PROBE_LOG_PER_BATCH").as_deref() == Some("1"),
            endless_answer: var("PROBE_ENDLESS_ANSWER").as_deref() == Some("1"),
        }
    }
}

/// The output file: one JSON object per line, each line in a single write.
struct Out {
    file: Mutex<File>,
}

impl Out {
    fn open(path: &str) -> Self {
        match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => Out { file: Mutex::new(file) },
            Err(e) => fail(&format!("cannot open PROBE_OUT {path}: {e}")),
        }
    }

    /// Appends `value` as one line; a failed write ends the extension.
    fn write(&self, value: &Value) {
        let mut line = value.to_string();
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            fail(&format!("cannot write to PROBE_OUT: {e}"));
        }
    }
}

/// State shared by the listener and the event loop.
struct State {
    out: Out,
    fail_first: u64,
    delay: Duration,
    never_answer: bool,
    log_per_batch: bool,
    held: AtomicU64,
    /// When the last batch arrived (epoch ms), for the quiet wait after SHUTDOWN.
    last_batch_ms: AtomicU64,
    rejected: AtomicU64,
    batches: AtomicU64,
    runtime_done: Mutex<HashSet<String>>,
    runtime_done_seen: Notify,
}

impl State {
    /// Remembers the `platform.runtimeDone` request ids of a batch.
    fn note(&self, events: &[Value]) {
        let ids: Vec<String> = events
            .iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("platform.runtimeDone"))
            .filter_map(|e| e.pointer("/record/requestId").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        if ids.is_empty() {
            return;
        }
        self.runtime_done.lock().unwrap_or_else(|p| p.into_inner()).extend(ids);
        self.runtime_done_seen.notify_waiters();
    }

    fn accept(&self, events: Vec<Value>, received_ms: u64) {
        self.note(&events);
        let n = self.batches.fetch_add(1, Ordering::SeqCst) + 1;
        self.log_batch(n, events.len());
        self.out.write(&json!({ "batch": n, "received_ms": received_ms, "events": events }));
    }

    /// With `PROBE_LOG_PER_BATCH`, one stdout line per batch (an `extension` record).
    fn log_batch(&self, n: u64, events: usize) {
        if self.log_per_batch {
            println!("{} received batch {n} ({events} events)", name());
        }
    }

    fn has_runtime_done(&self, request_id: &str) -> bool {
        self.runtime_done.lock().unwrap_or_else(|p| p.into_inner()).contains(request_id)
    }
}

fn text_response(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn handle_batch(req: Request<Incoming>, st: Arc<State>) -> Result<Response<Full<Bytes>>, Infallible> {
    let received_ms = epoch_ms();
    st.last_batch_ms.fetch_max(received_ms, Ordering::SeqCst);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            st.out.write(&json!({
                "bad_batch": "", "error": format!("reading the body: {e}"), "received_ms": received_ms
            }));
            return Ok(text_response(StatusCode::BAD_REQUEST, "unreadable body"));
        }
    };
    let events = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(events)) => events,
        Ok(_) => {
            st.out.write(&json!({
                "bad_batch": String::from_utf8_lossy(&body), "error": "not a JSON array",
                "received_ms": received_ms
            }));
            return Ok(text_response(StatusCode::BAD_REQUEST, "not a JSON array"));
        }
        Err(e) => {
            st.out.write(&json!({
                "bad_batch": String::from_utf8_lossy(&body), "error": e.to_string(),
                "received_ms": received_ms
            }));
            return Ok(text_response(StatusCode::BAD_REQUEST, "invalid JSON"));
        }
    };
    if st.never_answer {
        let k = st.held.fetch_add(1, Ordering::SeqCst) + 1;
        st.log_batch(k, events.len());
        st.out.write(&json!({ "held_batch": k, "received_ms": received_ms, "events": events }));
        // Hold the request open until the platform gives up on it.
        std::future::pending::<()>().await;
    }
    if !st.delay.is_zero() {
        tokio::time::sleep(st.delay).await;
    }
    let reject = st
        .rejected
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| (r < st.fail_first).then_some(r + 1))
        .ok()
        .map(|r| r + 1);
    if let Some(k) = reject {
        st.out.write(&json!({
            "rejected_batch": k, "status": 500, "received_ms": received_ms, "events": events
        }));
        return Ok(text_response(StatusCode::INTERNAL_SERVER_ERROR, "rejected on purpose"));
    }
    st.accept(events, received_ms);
    Ok(text_response(StatusCode::OK, "OK"))
}

async fn serve_http(listener: TcpListener, st: Arc<State>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                eprintln!("{}: accept on the telemetry listener: {e}", name());
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let st = st.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle_batch(req, st.clone()));
            // The platform hanging up (at shutdown) ends only this connection.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// `PROBE_ENDLESS_ANSWER`: HTTP by hand, since the answer is a body that never ends.
/// Each request (headers, then `Content-Length` bytes) is recorded as a batch, then
/// answered 200 with 64 KiB chunks until the platform hangs up.
async fn serve_endless(listener: TcpListener, st: Arc<State>) {
    use tokio::io::AsyncWriteExt;
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let st = st.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let (head_end, length) = loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (end + 4, length);
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            while buf.len() < head_end + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let events = match serde_json::from_slice::<Value>(&buf[head_end..head_end + length]) {
                Ok(Value::Array(events)) => events,
                _ => Vec::new(),
            };
            st.accept(events, epoch_ms());
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return;
            }
            let mut piece = format!("{:x}\r\n", 64 * 1024).into_bytes();
            piece.extend(std::iter::repeat_n(b' ', 64 * 1024));
            piece.extend_from_slice(b"\r\n");
            while stream.write_all(&piece).await.is_ok() {}
        });
    }
}

async fn read_tcp(mut stream: TcpStream, st: Arc<State>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                eprintln!("{}: reading the TCP stream: {e}", name());
                break;
            }
        };
        let received_ms = epoch_ms();
        st.last_batch_ms.fetch_max(received_ms, Ordering::SeqCst);
        pending.extend_from_slice(&chunk[..n]);
        let Some(last) = pending.iter().rposition(|&b| b == b'\n') else {
            continue;
        };
        let complete: Vec<u8> = pending.drain(..=last).collect();
        let mut events = Vec::new();
        for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Value>(line) {
                Ok(v) => events.push(v),
                Err(e) => st.out.write(&json!({
                    "bad_batch": String::from_utf8_lossy(line), "error": e.to_string(),
                    "received_ms": received_ms
                })),
            }
        }
        if !events.is_empty() {
            st.accept(events, received_ms);
        }
    }
    if !pending.is_empty() {
        st.out.write(&json!({
            "bad_batch": String::from_utf8_lossy(&pending),
            "error": "the connection closed in the middle of a line",
            "received_ms": epoch_ms()
        }));
    }
}

async fn serve_tcp(listener: TcpListener, st: Arc<State>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(read_tcp(stream, st.clone()));
            }
            Err(e) => {
                eprintln!("{}: accept on the telemetry listener: {e}", name());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

/// One request to the Runtime API on a fresh connection.
async fn call(
    addr: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Answer, String> {
    let stream =
        TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to the Runtime API at {addr}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut builder = Request::builder().method(method.clone()).uri(path).header("Host", addr);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Full::new(Bytes::from(body))).map_err(|e| format!("building {method} {path}: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| format!("{method} {path}: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| format!("reading the answer to {method} {path}: {e}"))?.to_bytes();
    Ok(Answer { status: parts.status, headers: parts.headers, body })
}

fn body_value(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into()))
}

async fn subscribe(s: &Settings, id: &str, port: u16, out: &Out) {
    let path = match s.api {
        SubApi::Telemetry => "/2022-07-01/telemetry",
        SubApi::Logs => "/2020-08-15/logs",
        SubApi::None => return,
    };
    let mut buffering = serde_json::Map::new();
    if let Some(v) = s.max_items {
        buffering.insert("maxItems".into(), json!(v));
    }
    if let Some(v) = s.max_bytes {
        buffering.insert("maxBytes".into(), json!(v));
    }
    if let Some(v) = s.timeout_ms {
        buffering.insert("timeoutMs".into(), json!(v));
    }
    let mut request = json!({
        "schemaVersion": s.schema,
        "types": s.types,
        "destination": {
            "protocol": if s.protocol == Proto::Tcp { "TCP" } else { "HTTP" },
            "URI": format!("http://{}:{port}", s.host),
        },
    });
    if !buffering.is_empty() {
        request["buffering"] = Value::Object(buffering);
    }
    let answer = call(
        &s.runtime_api,
        Method::PUT,
        path,
        &[("Lambda-Extension-Identifier", id), ("Content-Type", "application/json")],
        request.to_string().into_bytes(),
    )
    .await
    .unwrap_or_else(|e| fail(&e));
    out.write(&json!({
        "subscribe_status": answer.status.as_u16(),
        "subscribe_body": body_value(&answer.body),
    }));
    if answer.status != StatusCode::OK {
        fail(&format!("subscription to {path} answered {}: {}", answer.status, String::from_utf8_lossy(&answer.body)));
    }
}

/// Waits (bounded by the INVOKE's deadline) until `request_id`'s runtimeDone arrived.
async fn wait_runtime_done(st: &State, request_id: &str, deadline_ms: u64) {
    let started = epoch_ms();
    let budget = Duration::from_millis(deadline_ms.saturating_sub(started));
    let until = tokio::time::Instant::now() + budget;
    let found = loop {
        let notified = st.runtime_done_seen.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if st.has_runtime_done(request_id) {
            break true;
        }
        if tokio::time::timeout_at(until, notified).await.is_err() {
            break st.has_runtime_done(request_id);
        }
    };
    st.out.write(&json!({
        "runtime_done_wait": request_id, "found": found, "waited_ms": epoch_ms().saturating_sub(started)
    }));
}

/// Waits until no batch has arrived for `quiet_ms` (counting from `since_ms` at the
/// earliest), or until `until_ms`.
async fn quiet_wait(st: &State, since_ms: u64, quiet_ms: u64, until_ms: u64) {
    loop {
        let now = epoch_ms();
        let quiet_until = st.last_batch_ms.load(Ordering::SeqCst).max(since_ms) + quiet_ms;
        let wake = quiet_until.min(until_ms);
        if now >= wake {
            return;
        }
        tokio::time::sleep(Duration::from_millis(wake - now)).await;
    }
}

#[tokio::main]
async fn main() {
    let own_name = var("PROBE_NAME").unwrap_or_else(|| {
        std::env::args()
            .next()
            .as_deref()
            .map(Path::new)
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "probe-ext".into())
    });
    let _ = NAME.set(own_name.clone());
    let s = Settings::from_env();
    let state = Arc::new(State {
        out: Out::open(&s.out),
        fail_first: s.fail_first,
        delay: s.delay,
        never_answer: s.never_answer,
        log_per_batch: s.log_per_batch,
        held: AtomicU64::new(0),
        last_batch_ms: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        batches: AtomicU64::new(0),
        runtime_done: Mutex::new(HashSet::new()),
        runtime_done_seen: Notify::new(),
    });

    let register = call(
        &s.runtime_api,
        Method::POST,
        "/2020-01-01/extension/register",
        &[("Lambda-Extension-Name", own_name.as_str()), ("Content-Type", "application/json")],
        br#"{"events":["INVOKE","SHUTDOWN"]}"#.to_vec(),
    )
    .await
    .unwrap_or_else(|e| fail(&e));
    if register.status != StatusCode::OK {
        fail(&format!("register answered {}: {}", register.status, String::from_utf8_lossy(&register.body)));
    }
    let id = register
        .headers
        .get("Lambda-Extension-Identifier")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| fail("the register answer has no Lambda-Extension-Identifier"));

    let mut port = 0;
    if s.api != SubApi::None {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap_or_else(|e| fail(&format!("cannot listen on 127.0.0.1: {e}")));
        port =
            listener.local_addr().unwrap_or_else(|e| fail(&format!("no local address for the listener: {e}"))).port();
        match s.protocol {
            Proto::Http if s.endless_answer => tokio::spawn(serve_endless(listener, state.clone())),
            Proto::Http => tokio::spawn(serve_http(listener, state.clone())),
            Proto::Tcp => tokio::spawn(serve_tcp(listener, state.clone())),
        };
    }
    state.out.write(&json!({ "registered": id, "name": own_name, "port": port }));
    subscribe(&s, &id, port, &state.out).await;

    let mut k = 0u64;
    loop {
        k += 1;
        state.out.write(&json!({ "next": k, "sent_ms": epoch_ms() }));
        let answer = call(
            &s.runtime_api,
            Method::GET,
            "/2020-01-01/extension/event/next",
            &[("Lambda-Extension-Identifier", id.as_str())],
            Vec::new(),
        )
        .await
        .unwrap_or_else(|e| fail(&e));
        let received_ms = epoch_ms();
        if answer.status != StatusCode::OK {
            fail(&format!("next answered {}: {}", answer.status, String::from_utf8_lossy(&answer.body)));
        }
        let event: Value = serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
            fail(&format!("next returned invalid JSON ({e}): {}", String::from_utf8_lossy(&answer.body)))
        });
        let kind = event.get("eventType").and_then(Value::as_str).unwrap_or_default().to_owned();
        state.out.write(&json!({
            "lifecycle": kind, "event": event, "received_ms": received_ms
        }));
        match kind.as_str() {
            "INVOKE" => {
                let request_id = event.get("requestId").and_then(Value::as_str).unwrap_or_default();
                println!("{own_name} got INVOKE {request_id}");
                if !s.next_delay.is_zero() {
                    tokio::time::sleep(s.next_delay).await;
                }
                if s.wait_runtime_done {
                    let deadline_ms =
                        event.get("deadlineMs").and_then(Value::as_u64).unwrap_or_else(|| epoch_ms() + 3_000);
                    wait_runtime_done(&state, request_id, deadline_ms).await;
                }
            }
            "SHUTDOWN" => {
                let reason = event.get("shutdownReason").and_then(Value::as_str).unwrap_or_default();
                println!("{own_name} got SHUTDOWN {reason}");
                match s.linger {
                    Some(linger) => tokio::time::sleep(linger).await,
                    None if s.api != SubApi::None => {
                        let deadline_ms = event.get("deadlineMs").and_then(Value::as_u64).unwrap_or(received_ms);
                        let quiet_ms = s.timeout_ms.unwrap_or(1000) + 250;
                        quiet_wait(&state, received_ms, quiet_ms, deadline_ms.saturating_sub(150)).await;
                    }
                    None => {}
                }
                // Every line was written (and flushed) when it was recorded.
                std::process::exit(0);
            }
            other => fail(&format!("unexpected event type {other:?}: {event}")),
        }
    }
}
