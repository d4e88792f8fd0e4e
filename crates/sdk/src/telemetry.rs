//! telemetry: the intake of the Telemetry API (or the Logs API). Owns the listener
//! (bound where `sandbox.localdomain` points, keep-alive, bounded: a connection limit
//! and header and body timeouts, so that a flooding or slow client in the sandbox never
//! stops Lambda's batches), the event-by-event parse (one bad event, even one invalid
//! UTF-8 byte, costs only itself), and the acknowledgement rule: a batch is answered
//! 200 only once the handler has accepted it, and 500 otherwise, so that Lambda
//! delivers it again.

use crate::context::Context;
use crate::{diag, Error, Handler};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tandem_wire::error::types as et;
use tandem_wire::subscription::{Api, Buffering, Destination, SubscribeRequest, SANDBOX_HOST};
use tandem_wire::telemetry::{EventError, LogRecord, Record, TelemetryType};
use tandem_wire::Event;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Largest batch accepted (Lambda's are at most twice 1 MiB).
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Connections served at once. Lambda delivers over one or two keep-alive
/// connections; anything beyond this is a client flooding the listener (1,088 idle
/// connections once used up the process's descriptors), refused at once.
const MAX_CONNECTIONS: usize = 32;

/// A new connection must have sent its first request's headers within this time, or it
/// is closed (an idle or 1-byte-per-second client holds a connection slot no longer).
/// Later requests on a connection that has delivered a batch are not timed: Lambda's
/// keep-alive connection may idle for as long as the environment is frozen.
const FIRST_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A batch's body must have arrived within this time once its headers have.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What to subscribe to, and where to listen.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// The Telemetry API (default) or the legacy Logs API.
    pub api: Api,
    /// Schema version; `2022-12-13` by default (`2020-08-15` for the Logs API).
    pub schema_version: String,
    /// The streams: `platform`, `function`, `extension`.
    pub types: Vec<TelemetryType>,
    /// Batch size in events (1,000 to 10,000); `None` keeps Lambda's default.
    pub max_items: Option<u32>,
    /// Batch size in bytes (262,144 to 1,048,576); `None` keeps Lambda's default.
    pub max_bytes: Option<u32>,
    /// Longest wait before a batch is sent (25 to 30,000 ms); `None` keeps Lambda's default.
    pub timeout_ms: Option<u32>,
    /// Listener port; 0 picks a free one (the default, which never collides).
    pub port: u16,
    /// With a fixed `port` that is taken: fail (`true`) or fall back to a free port.
    pub strict_port: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            api: Api::Telemetry,
            schema_version: "2022-12-13".into(),
            types: vec![TelemetryType::Platform, TelemetryType::Function],
            max_items: None,
            max_bytes: None,
            timeout_ms: None,
            port: 0,
            strict_port: false,
        }
    }
}

impl TelemetryConfig {
    /// The Logs API (2020-08-15) instead of the Telemetry API.
    pub fn logs_api() -> Self {
        Self { api: Api::Logs, schema_version: "2021-03-18".into(), ..Self::default() }
    }

    /// The subscription request for a listener on `port`, checked as Lambda checks it.
    pub fn request(&self, port: u16) -> Result<SubscribeRequest, Error> {
        let req = SubscribeRequest {
            schema_version: Some(self.schema_version.clone()),
            types: Some(self.types.iter().map(|t| t.as_str().to_owned()).collect()),
            buffering: Some(Buffering {
                max_items: self.max_items.map(i64::from),
                max_bytes: self.max_bytes.map(i64::from),
                timeout_ms: self.timeout_ms.map(i64::from),
            }),
            destination: Some(Destination {
                protocol: Some("HTTP".into()),
                uri: Some(format!("http://{SANDBOX_HOST}:{port}")),
            }),
        };
        req.validate(self.api).map_err(|m| {
            Error::fatal(et::EXTENSION_CONFIG_INVALID, format!("the telemetry subscription is invalid: {m}"))
        })?;
        Ok(req)
    }
}

/// Where `sandbox.localdomain` points, read from /etc/hosts without a DNS query (which
/// could stall a cold start); 127.0.0.1 when it is not listed.
pub fn sandbox_ip() -> IpAddr {
    std::fs::read_to_string("/etc/hosts")
        .ok()
        .and_then(|hosts| {
            hosts.lines().find_map(|line| {
                let line = line.split('#').next()?;
                let mut fields = line.split_whitespace();
                let ip: IpAddr = fields.next()?.parse().ok()?;
                fields.any(|h| h.eq_ignore_ascii_case(SANDBOX_HOST)).then_some(ip)
            })
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Binds the listener: the configured port, else (unless strict) a free one.
pub(crate) async fn bind(cfg: &TelemetryConfig) -> Result<TcpListener, Error> {
    let ip = sandbox_ip();
    match TcpListener::bind(SocketAddr::new(ip, cfg.port)).await {
        Ok(l) => Ok(l),
        Err(e) if cfg.port != 0 && !cfg.strict_port => {
            diag::line(format_args!(
                "telemetry port {} is not available ({e}); listening on a free port instead",
                cfg.port
            ));
            TcpListener::bind(SocketAddr::new(ip, 0))
                .await
                .map_err(|e| Error::fatal(et::EXTENSION_LISTENER_FAILED, format!("cannot listen on {ip}: {e}")))
        }
        Err(e) => Err(Error::fatal(
            et::EXTENSION_LISTENER_FAILED,
            format!(
                "cannot listen on {ip}:{} for telemetry: {e}; choose another port or let the SDK pick one (port 0)",
                cfg.port
            ),
        )),
    }
}

/// Serves telemetry batches until the process ends: at most [`MAX_CONNECTIONS`] at
/// once (more are closed as soon as accepted), each dropped if its first headers take
/// longer than [`FIRST_HEADER_TIMEOUT`].
pub(crate) fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, ctx: Context) {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut refused = 0u64;
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    diag::line(format_args!("telemetry listener: accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // Closed at once: the descriptor is back before the next accept.
                drop(stream);
                refused += 1;
                if refused.is_power_of_two() {
                    diag::line(format_args!(
                        "telemetry listener: {MAX_CONNECTIONS} connections open; {refused} refused so far"
                    ));
                }
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (handler, ctx) = (handler.clone(), ctx.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let started = Arc::new(AtomicBool::new(false));
                let seen = started.clone();
                let service = service_fn(move |req| {
                    seen.store(true, Ordering::Relaxed);
                    batch(req, handler.clone(), ctx.clone())
                });
                let conn = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = tokio::time::sleep(FIRST_HEADER_TIMEOUT) => {}
                }
                if started.load(Ordering::Relaxed) {
                    let _ = conn.await;
                }
                // Otherwise dropping `conn` closes the connection.
            });
        }
    });
}

fn answer(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

async fn batch<H: Handler>(
    req: Request<Incoming>,
    handler: Arc<H>,
    ctx: Context,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST {
        return Ok(answer(StatusCode::METHOD_NOT_ALLOWED));
    }
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), MAX_BATCH_BYTES).collect());
    let body = match read.await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            // Unreadable (cut off or oversized): ask for it again.
            diag::line(format_args!("telemetry batch could not be read: {e}"));
            return Ok(answer(StatusCode::INTERNAL_SERVER_ERROR));
        }
        Err(_) => {
            diag::line(format_args!("telemetry batch body not received within {} s; dropped", BODY_TIMEOUT.as_secs()));
            return Ok(answer(StatusCode::REQUEST_TIMEOUT));
        }
    };
    let parsed = match parse_body(&body) {
        Ok(p) => p,
        Err(e) => {
            // Not a JSON array at all: no delivery of it will ever parse.
            ctx.inner.stats.malformed.fetch_add(1, Ordering::Relaxed);
            diag::line(format_args!("telemetry batch is not a JSON array ({e}); dropped"));
            return Ok(answer(StatusCode::BAD_REQUEST));
        }
    };
    let stats = &ctx.inner.stats;
    stats.batches.fetch_add(1, Ordering::Relaxed);
    let own = diag::prefix();
    let mut events = Vec::with_capacity(parsed.len());
    let mut logged = 0;
    for item in parsed {
        match item {
            Ok(event) => {
                if ctx.inner.skip_own_logs && is_own_line(&event, own) {
                    stats.own_lines.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if matches!(event.record, Record::Unknown { .. }) {
                    stats.unknown.fetch_add(1, Ordering::Relaxed);
                }
                events.push(event);
            }
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                if logged < 3 {
                    logged += 1;
                    diag::line(format_args!("skipped a malformed telemetry event: {e}"));
                }
            }
        }
    }
    let n = events.len() as u64;
    let marks = ctx.marks(&events);
    match crate::guard::guarded("telemetry", handler.telemetry(events, &ctx)).await {
        Ok(()) => {
            stats.events.fetch_add(n, Ordering::Relaxed);
            ctx.accepted(marks);
            Ok(answer(StatusCode::OK))
        }
        Err(e) => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            diag::line(format_args!(
                "the telemetry handler refused a batch of {n} events ({e}); Lambda will deliver it again"
            ));
            Ok(answer(StatusCode::INTERNAL_SERVER_ERROR))
        }
    }
}

/// Parses a batch event by event. serde_json refuses a whole body that holds one
/// invalid UTF-8 byte (inside one event's string), so such a body is split into its
/// elements here, at the byte level, and only the element with the bad byte is
/// malformed. A body that is not a JSON array at all is an error.
fn parse_body(body: &[u8]) -> Result<Vec<Result<Event, EventError>>, serde_json::Error> {
    let err = match tandem_wire::parse_batch(body) {
        Ok(parsed) => return Ok(parsed),
        Err(e) => e,
    };
    if std::str::from_utf8(body).is_ok() {
        return Err(err);
    }
    let Some(elements) = split_array(body) else { return Err(err) };
    Ok(elements.into_iter().enumerate().map(|(index, raw)| parse_element(index, raw)).collect())
}

fn parse_element(index: usize, raw: &[u8]) -> Result<Event, EventError> {
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_slice::<Event>(raw).map_err(|error| {
        let raw = String::from_utf8_lossy(raw).into_owned();
        EventError { index, kind: serde_json::from_str::<Kind>(&raw).ok().map(|k| k.kind), error, raw }
    })
}

/// The elements of a JSON array, as byte slices, found without decoding them: strings
/// (with their escapes) are skipped, brackets counted. `None` when `body` is not one
/// array (then no element is trusted).
fn split_array(body: &[u8]) -> Option<Vec<&[u8]>> {
    let ws = |b: &u8| b.is_ascii_whitespace();
    let start = body.iter().position(|b| !ws(b))?;
    if body[start] != b'[' {
        return None;
    }
    let mut elements = Vec::new();
    let (mut i, mut depth, mut in_string, mut from) = (start + 1, 0usize, false, start + 1);
    while i < body.len() {
        let c = body[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'[' | b'{' => depth += 1,
                b'}' if depth == 0 => return None,
                b']' | b',' if depth == 0 => {
                    let element = body[from..i].trim_ascii();
                    let last = c == b']';
                    if element.is_empty() {
                        // `[]` is an empty batch; `[,` or `,]` is not JSON.
                        if !(last && elements.is_empty()) {
                            return None;
                        }
                    } else {
                        elements.push(element);
                    }
                    if last {
                        return body[i + 1..].iter().all(ws).then_some(elements);
                    }
                    from = i + 1;
                }
                b']' | b'}' => depth -= 1,
                _ => {}
            }
        }
        i += 1;
    }
    None
}

fn is_own_line(event: &Event, prefix: &str) -> bool {
    match &event.record {
        Record::ExtensionLog(LogRecord::Text(t)) => t.starts_with(prefix),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[derive(Default)]
    struct Keep(Mutex<Vec<Event>>);

    impl Handler for Keep {
        async fn telemetry(&self, events: Vec<Event>, _ctx: &Context) -> Result<(), Error> {
            self.0.lock().map_err(|_| Error::transient("poisoned"))?.extend(events);
            Ok(())
        }
    }

    fn function_event(text: &[u8]) -> Vec<u8> {
        let mut e = br#"{"time":"2026-01-01T00:00:00.000Z","type":"function","record":""#.to_vec();
        e.extend_from_slice(text);
        e.extend_from_slice(br#""}"#);
        e
    }

    /// A listener serving `Keep` on 127.0.0.1, as `Extension::run` starts it.
    async fn listen() -> (SocketAddr, Arc<Keep>, Context) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (keep, ctx) =
            (Arc::new(Keep::default()), Context::new("id".into(), "test".into(), Default::default(), false));
        serve(listener, keep.clone(), ctx.clone());
        (addr, keep, ctx)
    }

    /// POSTs `body` over a raw socket and returns the answer's status line.
    async fn post(addr: SocketAddr, body: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let head =
            format!("POST / HTTP/1.1\r\nhost: sandbox\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).await.expect("write the head");
        s.write_all(body).await.expect("write the body");
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.expect("read the answer");
        String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn one_invalid_utf8_byte_costs_its_event_only() {
        let (addr, keep, ctx) = listen().await;
        let mut body = b"[".to_vec();
        body.extend(function_event(b"before"));
        body.extend(b", ");
        body.extend(function_event(b"bad \xff byte, with [brackets] and \\\"quotes\\\""));
        body.extend(b",\n");
        body.extend(function_event(b"after"));
        body.extend(b"]");
        assert_eq!(post(addr, &body).await, "HTTP/1.1 200 OK");
        let kept: Vec<String> = keep
            .0
            .lock()
            .expect("events")
            .iter()
            .map(|e| serde_json::to_value(e).expect("json")["record"].to_string())
            .collect();
        assert_eq!(kept, ["\"before\"", "\"after\""]);
        let s = ctx.stats();
        assert_eq!((s.malformed, s.events, s.batches), (1, 2, 1));
        // Not an array at all stays a 400, and counts once.
        assert_eq!(post(addr, b"{\"a\": \"\xff\"}").await, "HTTP/1.1 400 Bad Request");
        assert_eq!(ctx.stats().malformed, 2);
    }

    /// POSTs `body` on a kept-alive connection and returns the status line.
    async fn post_on(s: &mut TcpStream, body: &[u8]) -> std::io::Result<String> {
        let head = format!("POST / HTTP/1.1\r\nhost: sandbox\r\ncontent-length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            answer.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned())
    }

    /// Whether the server closed `s` (EOF or reset) within `within`.
    async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(within, s.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_one_byte_per_second_client_is_dropped() {
        let (addr, keep, _ctx) = listen().await;
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        let started = std::time::Instant::now();
        let head = b"POST / HTTP/1.1\r\nhost: sandbox\r\ncontent-length: 2\r\n\r\n[]";
        let mut dropped = false;
        for b in head {
            if slow.write_all(&[*b]).await.is_err() || closed_within(&mut slow, Duration::from_secs(1)).await {
                dropped = true;
                break;
            }
        }
        assert!(dropped, "still open after sending its whole request a byte a second");
        let took = started.elapsed();
        assert!(took >= FIRST_HEADER_TIMEOUT - Duration::from_millis(100), "dropped for its pace only: {took:?}");
        assert!(keep.0.lock().expect("events").is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_thousand_idle_connections_do_not_stop_a_real_batch() {
        let (addr, keep, ctx) = listen().await;
        // Lambda's connection, kept alive from before the flood.
        let mut lambda = TcpStream::connect(addr).await.expect("connect");
        let batch = [b"[".to_vec(), function_event(b"one"), b"]".to_vec()].concat();
        assert_eq!(post_on(&mut lambda, &batch).await.expect("first batch"), "HTTP/1.1 200 OK");
        let mut idle = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            idle.push(TcpStream::connect(addr).await.expect("connect an idle client"));
        }
        // The kept-alive connection is served at once.
        let batch = [b"[".to_vec(), function_event(b"two"), b"]".to_vec()].concat();
        assert_eq!(post_on(&mut lambda, &batch).await.expect("second batch"), "HTTP/1.1 200 OK");
        // Beyond the limit, connections are closed at once (before any header timeout)...
        let until = std::time::Instant::now() + FIRST_HEADER_TIMEOUT / 2;
        let mut open = Vec::new();
        for mut s in idle {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if !closed_within(&mut s, left.max(Duration::from_millis(1))).await {
                open.push(s);
            }
        }
        assert!(open.len() <= MAX_CONNECTIONS, "{} not refused", open.len());
        // ...and the ones within it once their first headers are late: none stays open.
        let until = std::time::Instant::now() + FIRST_HEADER_TIMEOUT + Duration::from_secs(20);
        let mut still = 0;
        for s in &mut open {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if !closed_within(s, left.max(Duration::from_millis(1))).await {
                still += 1;
            }
        }
        assert_eq!(still, 0, "idle connections still open");
        let idle = open;
        drop(idle);
        // A new connection is accepted again.
        let mut fresh = TcpStream::connect(addr).await.expect("connect again");
        let batch = [b"[".to_vec(), function_event(b"three"), b"]".to_vec()].concat();
        assert_eq!(post_on(&mut fresh, &batch).await.expect("third batch"), "HTTP/1.1 200 OK");
        assert_eq!(keep.0.lock().expect("events").len(), 3);
        assert_eq!(ctx.stats().batches, 3);
    }

    #[test]
    fn split_array_finds_elements_without_decoding() {
        let split = |b: &[u8]| split_array(b).map(|v| v.iter().map(|e| e.to_vec()).collect::<Vec<_>>());
        assert_eq!(split(b" [ ] "), Some(vec![]));
        assert_eq!(
            split(b"[1, {\"a\":[1,\"]\"]}, \"x\\\"]\"]"),
            Some(vec![b"1".to_vec(), b"{\"a\":[1,\"]\"]}".to_vec(), b"\"x\\\"]\"".to_vec()])
        );
        assert_eq!(split(b"[\"\xff\"]"), Some(vec![b"\"\xff\"".to_vec()]));
        for bad in [&b"{}"[..], b"[1,]", b"[,1]", b"[1} ", b"[1] x", b"[1", b""] {
            assert_eq!(split(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
