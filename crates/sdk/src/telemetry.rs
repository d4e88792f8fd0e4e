//! telemetry: the intake of the Telemetry API (or the Logs API). Owns the listener
//! (bound where `sandbox.localdomain` points, keep-alive), the event-by-event parse,
//! and the acknowledgement rule: a batch is answered 200 only once the handler has
//! accepted it, and 500 otherwise, so that Lambda delivers it again.

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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tandem_wire::error::types as et;
use tandem_wire::subscription::{Api, Buffering, Destination, SubscribeRequest, SANDBOX_HOST};
use tandem_wire::telemetry::{LogRecord, Record, TelemetryType};
use tandem_wire::Event;
use tokio::net::TcpListener;

/// Largest batch accepted (Lambda's are at most twice 1 MiB).
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

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

/// Serves telemetry batches until the process ends.
pub(crate) fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, ctx: Context) {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    diag::line(format_args!("telemetry listener: accept failed: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (handler, ctx) = (handler.clone(), ctx.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req| batch(req, handler.clone(), ctx.clone()));
                let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
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
    let body = match Limited::new(req.into_body(), MAX_BATCH_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            // Unreadable (cut off or oversized): ask for it again.
            diag::line(format_args!("telemetry batch could not be read: {e}"));
            return Ok(answer(StatusCode::INTERNAL_SERVER_ERROR));
        }
    };
    let parsed = match tandem_wire::parse_batch(&body) {
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

fn is_own_line(event: &Event, prefix: &str) -> bool {
    match &event.record {
        Record::ExtensionLog(LogRecord::Text(t)) => t.starts_with(prefix),
        _ => false,
    }
}
