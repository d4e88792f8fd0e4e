//! invoke_api: the emulator's front door, Lambda's Invoke API (2015-03-31) on
//! `--listen`: `POST /2015-03-31/functions/{name}/invocations` (RIE's path with the
//! name `function` too), synchronous (`RequestResponse`), asynchronous (`Event`) and
//! `DryRun` invocations, client context, trace header, and the log tail. Behind it, one
//! environment (the library's [`serve`]) or a [`Pool`] of them (`serve --concurrency`).
//! `GET /_tandem/` answers the live lifecycle timeline of those environments.

use crate::api::{accept_within, http1_server};
use crate::config::Config;
use crate::driver::InvokeOutcome;
use crate::environment::{Environment, Error};
use crate::lifecycle::{InvokeRequest, Rejection};
use crate::pool::Pool;
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tandem_wire::error::types as et;
use tandem_wire::runtime::MAX_REQUEST_BYTES;
use tandem_wire::{headers, paths};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Open connections to the Invoke API; more are refused (callers beyond the queue
/// would be refused anyway, and idle ones must not use up the descriptors).
const MAX_CONNECTIONS: usize = 512;

/// The live lifecycle timeline (see `timeline`).
pub const TIMELINE_PATH: &str = "/_tandem/";

/// What the invocations go to.
#[derive(Clone)]
enum Backend {
    /// One environment; its own queue holds the invocations waiting for it.
    One(Arc<Environment>),
    /// Environments started on demand (see [`Pool`]).
    Pool(Arc<Pool>),
}

impl Backend {
    fn config(&self) -> &Config {
        match self {
            Backend::One(env) => env.config(),
            Backend::Pool(pool) => pool.config(),
        }
    }

    /// The timeline page of the environments behind the listener, as they are now.
    fn timeline(&self) -> String {
        let envs: Vec<serde_json::Value> = match self {
            Backend::One(env) => vec![crate::timeline::data(env, "environment")],
            Backend::Pool(pool) => pool.environments().iter().map(|(id, env)| crate::timeline::data(env, id)).collect(),
        };
        let title = format!("tandem-emulator: {} (live)", self.config().function_name);
        crate::timeline::page(&title, &envs, true)
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeOutcome, Error> {
        match self {
            Backend::One(env) => env.invoke_with(request).await,
            Backend::Pool(pool) => pool.invoke_with(request).await,
        }
    }

    /// An asynchronous (`Event`) invocation: its result goes nowhere, as without a destination.
    fn invoke_detached(&self, request: InvokeRequest) {
        match self {
            Backend::One(env) => {
                let rx = env.invoke_detached(request);
                tokio::spawn(async move {
                    let _ = rx.await;
                });
            }
            Backend::Pool(pool) => {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let _ = pool.invoke_with(request).await;
                });
            }
        }
    }
}

/// Serves invocations to one environment until the task is dropped. A caller must send
/// its headers within the Runtime API's header timeout, and connections beyond a limit
/// are refused.
pub async fn serve(listener: TcpListener, env: Arc<Environment>) {
    serve_backend(listener, Backend::One(env)).await
}

/// Like [`serve`], with a pool of environments behind the Invoke API.
pub async fn serve_pool(listener: TcpListener, pool: Arc<Pool>) {
    serve_backend(listener, Backend::Pool(pool)).await
}

async fn serve_backend(listener: TcpListener, backend: Backend) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, slot) = accept_within(&listener, &slots).await;
        let backend = backend.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, backend.clone()));
            let _ = http1_server().serve_connection(TokioIo::new(stream), service).await;
            drop(slot);
        });
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "Type": "User", "Message": message }).to_string();
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header(headers::INVOKE_ERROR_TYPE, kind)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn handle(req: Request<Incoming>, backend: Backend) -> Result<Response<Full<Bytes>>, Infallible> {
    let cfg = backend.config();
    if matches!(req.uri().path(), TIMELINE_PATH | "/_tandem") && req.method() == Method::GET {
        return Ok(Response::builder()
            .status(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .header("Cache-Control", "no-store")
            .body(Full::new(Bytes::from(backend.timeline())))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))));
    }
    let Some(name) = paths::parse_invoke_path(req.uri().path()) else {
        return Ok(error(
            StatusCode::NOT_FOUND,
            et::RESOURCE_NOT_FOUND,
            &format!("No such endpoint: {}", req.uri().path()),
        ));
    };
    let known = name == paths::INVOKE_ANY_FUNCTION
        || name == cfg.function_name
        || name.ends_with(&format!(":function:{}", cfg.function_name));
    if !known {
        return Ok(error(StatusCode::NOT_FOUND, et::RESOURCE_NOT_FOUND, &format!("Function not found: {name}")));
    }
    if req.method() != Method::POST {
        return Ok(error(StatusCode::METHOD_NOT_ALLOWED, et::METHOD_NOT_ALLOWED, "Use POST"));
    }
    let h = req.headers().clone();
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let client_context = match get(headers::INVOKE_CLIENT_CONTEXT) {
        None => None,
        Some(b64) => match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            Ok(raw) => Some(String::from_utf8_lossy(&raw).into_owned()),
            Err(_) => {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    et::INVALID_REQUEST_CONTENT,
                    &format!("{} must be base64-encoded JSON", headers::INVOKE_CLIENT_CONTEXT),
                ))
            }
        },
    };
    let payload = match Limited::new(req.into_body(), MAX_REQUEST_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                et::REQUEST_TOO_LARGE,
                &format!("Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation"),
            ))
        }
    };
    let request = InvokeRequest {
        payload,
        client_context,
        cognito_identity: None,
        trace_id: get(headers::INVOKE_TRACE_ID),
        want_tail: get(headers::INVOKE_LOG_TYPE).is_some_and(|v| v.eq_ignore_ascii_case(headers::LOG_TYPE_TAIL)),
    };
    match get(headers::INVOKE_INVOCATION_TYPE).as_deref() {
        Some(headers::INVOCATION_TYPE_DRY_RUN) => {
            return Ok(Response::builder()
                .status(204)
                .body(Full::new(Bytes::new()))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
        }
        Some(headers::INVOCATION_TYPE_EVENT) => {
            backend.invoke_detached(InvokeRequest { want_tail: false, ..request });
            return Ok(Response::builder()
                .status(202)
                .body(Full::new(Bytes::new()))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))));
        }
        _ => {}
    }
    let outcome = match backend.invoke(request).await {
        Ok(o) => o,
        Err(Error::Rejected(Rejection::TooManyRequests)) => {
            return Ok(error(StatusCode::TOO_MANY_REQUESTS, et::TOO_MANY_REQUESTS, "Rate Exceeded."))
        }
        Err(e) => return Ok(error(StatusCode::SERVICE_UNAVAILABLE, et::SERVICE_EXCEPTION, &e.to_string())),
    };
    let r = &outcome.result;
    let mut b = Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .header(headers::INVOKE_EXECUTED_VERSION, cfg.function_version.as_str())
        .header(headers::INVOKE_REQUEST_ID, r.request_id.as_str());
    if let Some(fe) = &r.function_error {
        b = b.header(headers::INVOKE_FUNCTION_ERROR, fe.as_str());
    }
    if let Some(tail) = &outcome.log_tail {
        b = b.header(headers::INVOKE_LOG_RESULT, base64::engine::general_purpose::STANDARD.encode(tail));
    }
    Ok(b.body(Full::new(r.payload.clone())).unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}
