//! api: the HTTP edge of the Runtime API (2018-06-01), Extensions API (2020-01-01),
//! Telemetry API (2022-07-01) and Logs API (2020-08-15), served on the address that
//! `AWS_LAMBDA_RUNTIME_API` names.
//!
//! It only frames: routes a request, reads its headers and body (with Lambda's size
//! limits, response streaming and error trailers), hands an [`ApiCall`] to the driver
//! and writes back the [`Reply`]. Every rule about state lives in the lifecycle.
//! It also bounds what a misbehaving client can hold (shared with the Invoke API): a
//! connection must send its headers within [`HEADER_TIMEOUT`], connections beyond a
//! limit are refused, and a response body is read only once the lifecycle has said its
//! request id may be answered.

use crate::driver::DriverMsg;
use crate::lifecycle::{ApiCall, Reply};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_wire::error::types as et;
use tandem_wire::paths::{self, InvocationPath};
use tandem_wire::runtime::{MAX_RESPONSE_BYTES, MAX_STREAMED_RESPONSE_BYTES};
use tandem_wire::subscription::Api;
use tandem_wire::{headers, ErrorResponse};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Largest error or register body read (Lambda bounds these well below a response).
const MAX_SMALL_BODY: usize = 1024 * 1024;
/// How long a client may take to send a request's headers (also how long a keep-alive
/// connection may sit idle between requests): a slow or silent client is dropped.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections to the Runtime/Extensions API: the runtime and at most ten
/// extensions need a few each; more are refused, so that idle clients cannot use up
/// the descriptors (Lambda's sandbox has 1,024).
const MAX_CONNECTIONS: usize = 256;

/// Accepts connections until the driver goes away.
pub async fn serve(listener: TcpListener, driver: mpsc::UnboundedSender<DriverMsg>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, slot) = accept_within(&listener, &slots).await;
        if driver.is_closed() {
            return;
        }
        let driver = driver.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, driver.clone()));
            // A runtime or extension that drops its connection ends only its own requests.
            let _ = http1_server().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
            drop(slot);
        });
    }
}

/// The next connection while fewer than `slots` are open, with the slot it holds until
/// it closes. A connection beyond the limit is closed at once (refused).
pub(crate) async fn accept_within(listener: &TcpListener, slots: &Arc<Semaphore>) -> (TcpStream, OwnedSemaphorePermit) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of descriptors or similar: wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            let _ = stream.set_nodelay(true);
            return (stream, slot);
        }
    }
}

/// HTTP/1.1 serving with the header timeout.
pub(crate) fn http1_server() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    builder
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn reply_to_response(r: Reply) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(r.body));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in r.headers {
        if let Ok(v) = http::HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

fn error(status: u16, error_type: &str, message: impl Into<String>) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&ErrorResponse::new(error_type, message)).unwrap_or_default();
    reply_to_response(Reply {
        status,
        headers: vec![("Content-Type", "application/json".into())],
        body: Bytes::from(body),
    })
}

async fn call(driver: &mpsc::UnboundedSender<DriverMsg>, call: ApiCall) -> Response<Full<Bytes>> {
    let (tx, rx) = oneshot::channel();
    if driver.send(DriverMsg::Api { call, reply: tx }).is_err() {
        return error(500, et::INTERNAL_SERVER_ERROR, "The environment is gone");
    }
    match rx.await {
        Ok(r) => reply_to_response(r),
        Err(_) => error(500, et::INTERNAL_SERVER_ERROR, "The environment ended before answering"),
    }
}

/// Reads a whole body up to `limit` bytes; `Err(size_so_far)` past it.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, usize> {
    let mut body = body;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Err(buf.len());
            }
        }
    }
    Ok(buf.freeze())
}

async fn handle(
    req: Request<Incoming>,
    driver: mpsc::UnboundedSender<DriverMsg>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().trim_end_matches('/').to_owned();
    let h = &parts.headers;
    let m = &parts.method;
    let resp = if let Some(p) = paths::parse_invocation_path(&path) {
        match (m, p) {
            (&Method::GET, InvocationPath::Next) => call(&driver, ApiCall::RuntimeNext).await,
            (&Method::POST, InvocationPath::Response(id)) => runtime_response(id, h, body, arrived, &driver).await,
            (&Method::POST, InvocationPath::Error(id)) => match read_body(body, MAX_SMALL_BODY).await {
                Ok(b) => {
                    let c = ApiCall::RuntimeError {
                        request_id: id.to_owned(),
                        error_type: header(h, headers::RUNTIME_FUNCTION_ERROR_TYPE),
                        body: b,
                        received: arrived,
                    };
                    call(&driver, c).await
                }
                Err(n) => error(
                    413,
                    et::REQUEST_ENTITY_TOO_LARGE,
                    format!("Error body of {n} bytes exceeds {MAX_SMALL_BODY} bytes"),
                ),
            },
            _ => error(405, et::METHOD_NOT_ALLOWED, format!("{m} is not allowed on {path}")),
        }
    } else {
        match (m, path.as_str()) {
            (&Method::POST, paths::RUNTIME_INIT_ERROR) => match read_body(body, MAX_SMALL_BODY).await {
                Ok(b) => {
                    call(
                        &driver,
                        ApiCall::RuntimeInitError {
                            error_type: header(h, headers::RUNTIME_FUNCTION_ERROR_TYPE),
                            body: b,
                        },
                    )
                    .await
                }
                Err(n) => error(
                    413,
                    et::REQUEST_ENTITY_TOO_LARGE,
                    format!("Error body of {n} bytes exceeds {MAX_SMALL_BODY} bytes"),
                ),
            },
            (&Method::POST, paths::EXTENSION_REGISTER) => match read_body(body, MAX_SMALL_BODY).await {
                Ok(b) => {
                    let accept = h
                        .get_all(headers::EXTENSION_ACCEPT_FEATURE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(|v| v.split(','))
                        .any(|f| f.trim() == headers::FEATURE_ACCOUNT_ID);
                    call(
                        &driver,
                        ApiCall::ExtRegister {
                            name: header(h, headers::EXTENSION_NAME),
                            body: b,
                            accept_account_id: accept,
                        },
                    )
                    .await
                }
                Err(_) => error(403, et::INVALID_REQUEST_FORMAT, "The register body is too large"),
            },
            (&Method::GET, paths::EXTENSION_NEXT) => {
                call(&driver, ApiCall::ExtNext { id: header(h, headers::EXTENSION_IDENTIFIER) }).await
            }
            (&Method::POST, paths::EXTENSION_INIT_ERROR) | (&Method::POST, paths::EXTENSION_EXIT_ERROR) => {
                let init = path == paths::EXTENSION_INIT_ERROR;
                let b = read_body(body, MAX_SMALL_BODY).await.unwrap_or_default();
                let id = header(h, headers::EXTENSION_IDENTIFIER);
                let error_type = header(h, headers::EXTENSION_FUNCTION_ERROR_TYPE);
                let c = if init {
                    ApiCall::ExtInitError { id, error_type, body: b }
                } else {
                    ApiCall::ExtExitError { id, error_type, body: b }
                };
                call(&driver, c).await
            }
            (&Method::PUT, paths::TELEMETRY_SUBSCRIBE) | (&Method::PUT, paths::LOGS_SUBSCRIBE) => {
                let api = if path == paths::TELEMETRY_SUBSCRIBE { Api::Telemetry } else { Api::Logs };
                match read_body(body, MAX_SMALL_BODY).await {
                    Ok(b) => {
                        call(&driver, ApiCall::Subscribe { api, id: header(h, headers::EXTENSION_IDENTIFIER), body: b })
                            .await
                    }
                    Err(_) => error(400, et::TELEMETRY_VALIDATION, "The subscription body is too large"),
                }
            }
            _ => error(404, et::NOT_FOUND, format!("No such endpoint: {m} {path}")),
        }
    };
    Ok(resp)
}

/// `POST /runtime/invocation/{id}/response`, buffered or streamed.
async fn runtime_response(
    id: &str,
    h: &HeaderMap,
    body: Incoming,
    arrived: Instant,
    driver: &mpsc::UnboundedSender<DriverMsg>,
) -> Response<Full<Bytes>> {
    let streaming = match header(h, headers::RUNTIME_RESPONSE_MODE) {
        None => false,
        Some(m) if m.eq_ignore_ascii_case(headers::RESPONSE_MODE_STREAMING) => true,
        Some(m) => {
            return error(
                400,
                et::INVALID_RESPONSE_MODE,
                format!("{} must be {:?}, not {m:?}", headers::RUNTIME_RESPONSE_MODE, headers::RESPONSE_MODE_STREAMING),
            )
        }
    };
    // The id first: a body for an invocation that cannot be answered is never read.
    let check = call(driver, ApiCall::ResponseStart { request_id: id.to_owned() }).await;
    if check.status() != StatusCode::ACCEPTED {
        return check;
    }
    let limit = if streaming { MAX_STREAMED_RESPONSE_BYTES } else { MAX_RESPONSE_BYTES };
    let mut body = body;
    let mut buf = BytesMut::new();
    let mut first_byte = if streaming { None } else { Some(arrived) };
    let mut trailer: Option<(String, Bytes)> = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            // The body ended before its announced end (Content-Length not reached, a
            // chunked body cut off): the invocation fails, it never succeeds with
            // part of a response.
            Err(e) => {
                let c = ApiCall::RuntimeResponseTruncated {
                    request_id: id.to_owned(),
                    received: buf.len(),
                    error: e.to_string(),
                };
                return call(driver, c).await;
            }
        };
        match frame.into_data() {
            Ok(data) => {
                if first_byte.is_none() && !data.is_empty() {
                    first_byte = Some(Instant::now());
                }
                buf.extend_from_slice(&data);
                if buf.len() > limit {
                    let c = ApiCall::RuntimeResponseTooLarge { request_id: id.to_owned(), size: buf.len(), limit };
                    return call(driver, c).await;
                }
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    if let Some(kind) = t.get(headers::RUNTIME_FUNCTION_ERROR_TYPE).and_then(|v| v.to_str().ok()) {
                        let body = t
                            .get(headers::RUNTIME_FUNCTION_ERROR_BODY)
                            .and_then(|v| v.to_str().ok())
                            .map(|b| {
                                base64::engine::general_purpose::STANDARD
                                    .decode(b.trim())
                                    .unwrap_or_else(|_| b.as_bytes().to_vec())
                            })
                            .unwrap_or_default();
                        trailer = Some((kind.to_owned(), Bytes::from(body)));
                    }
                }
            }
        }
    }
    let last_byte = Instant::now();
    let c = ApiCall::RuntimeResponse {
        request_id: id.to_owned(),
        body: buf.freeze(),
        first_byte: first_byte.unwrap_or(last_byte),
        last_byte,
        error_trailer: trailer,
    };
    call(driver, c).await
}
