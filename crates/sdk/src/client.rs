//! client: the Extensions API (2020-01-01) and the subscription APIs, over keep-alive
//! HTTP/1.1 connections to `AWS_LAMBDA_RUNTIME_API`.
//!
//! `next` is a long poll, so it gets a connection of its own; every other call shares
//! a second one. A connection found closed before a request is written is replaced
//! once; nothing is retried after it was sent, so no call can happen twice.

use crate::Error;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tandem_wire::error::ErrorResponse;
use tandem_wire::extensions::{EventType, NextEvent, RegisterRequest, RegisterResponse};
use tandem_wire::subscription::{Api, SubscribeRequest};
use tandem_wire::{headers, paths};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// One keep-alive connection.
struct Conn {
    addr: String,
    sender: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

/// A decoded answer.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    fn error(&self, what: &str) -> Error {
        let detail = serde_json::from_slice::<ErrorResponse>(&self.body)
            .map(|e| format!("{}: {}", e.error_type, e.error_message))
            .unwrap_or_else(|_| String::from_utf8_lossy(&self.body).into_owned());
        Error::transient(format!("{what} was refused with {}: {detail}", self.status))
    }
}

impl Conn {
    fn new(addr: &str) -> Self {
        Self { addr: addr.to_owned(), sender: Mutex::new(None) }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Error> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| Error::transient(format!("cannot reach the Extensions API at {}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::transient(format!("HTTP handshake with {} failed: {e}", self.addr)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn send(&self, build: impl Fn() -> Result<Request<Full<Bytes>>, http::Error>) -> Result<Answer, Error> {
        let mut guard = self.sender.lock().await;
        for _ in 0..2 {
            let fresh = guard.is_none();
            if fresh {
                *guard = Some(self.connect().await?);
            }
            let Some(sender) = guard.as_mut() else { continue };
            if sender.ready().await.is_err() {
                // Closed by the peer while idle: nothing was sent, a new connection is safe.
                *guard = None;
                if fresh {
                    return Err(Error::transient(format!("the connection to {} closed at once", self.addr)));
                }
                continue;
            }
            let req = build().map_err(|e| Error::transient(format!("cannot build the request: {e}")))?;
            let resp = match sender.send_request(req).await {
                Ok(r) => r,
                Err(e) => {
                    *guard = None;
                    return Err(Error::transient(format!("request to {} failed: {e}", self.addr)));
                }
            };
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| Error::transient(format!("reading the answer from {} failed: {e}", self.addr)))?
                .to_bytes();
            return Ok(Answer { status: parts.status, headers: parts.headers, body });
        }
        Err(Error::transient(format!("no usable connection to {}", self.addr)))
    }
}

/// The Extensions API as an extension sees it.
pub(crate) struct Client {
    addr: String,
    next: Conn,
    control: Conn,
}

fn request(
    method: Method,
    addr: &str,
    path: &str,
    hdrs: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let mut b = Request::builder().method(method).uri(path).header(http::header::HOST, addr);
    for (k, v) in hdrs {
        b = b.header(*k, *v);
    }
    if !body.is_empty() {
        b = b.header(http::header::CONTENT_TYPE, "application/json");
    }
    b.body(Full::new(body))
}

impl Client {
    /// A client for `AWS_LAMBDA_RUNTIME_API` (or `addr` when given).
    pub fn new(addr: Option<String>) -> Result<Self, Error> {
        let addr = match addr {
            Some(a) => a,
            None => std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(|_| {
                Error::transient(
                    "AWS_LAMBDA_RUNTIME_API is not set: an extension must be started by Lambda (or tandem-emulator)",
                )
            })?,
        };
        Ok(Self { next: Conn::new(&addr), control: Conn::new(&addr), addr })
    }

    pub async fn register(
        &self,
        name: &str,
        events: &[EventType],
        account_id: bool,
    ) -> Result<(String, RegisterResponse), Error> {
        let body = serde_json::to_vec(&RegisterRequest { events: events.to_vec(), configuration_keys: None })
            .map_err(|e| Error::transient(e.to_string()))?;
        let body = Bytes::from(body);
        let mut hdrs = vec![(headers::EXTENSION_NAME, name)];
        if account_id {
            hdrs.push((headers::EXTENSION_ACCEPT_FEATURE, headers::FEATURE_ACCOUNT_ID));
        }
        let a = self
            .control
            .send(|| request(Method::POST, &self.addr, paths::EXTENSION_REGISTER, &hdrs, body.clone()))
            .await?;
        if a.status != StatusCode::OK {
            return Err(a.error(&format!("registering extension {name:?}")));
        }
        let id =
            a.headers.get(headers::EXTENSION_IDENTIFIER).and_then(|v| v.to_str().ok()).map(str::to_owned).ok_or_else(
                || Error::transient(format!("the register answer has no {} header", headers::EXTENSION_IDENTIFIER)),
            )?;
        let info: RegisterResponse = serde_json::from_slice(&a.body)
            .map_err(|e| Error::transient(format!("the register answer is not valid JSON: {e}")))?;
        Ok((id, info))
    }

    pub async fn next(&self, id: &str) -> Result<NextEvent, Error> {
        let hdrs = [(headers::EXTENSION_IDENTIFIER, id)];
        let a = self.next.send(|| request(Method::GET, &self.addr, paths::EXTENSION_NEXT, &hdrs, Bytes::new())).await?;
        if a.status != StatusCode::OK {
            return Err(a.error("waiting for the next event"));
        }
        serde_json::from_slice(&a.body).map_err(|e| Error::transient(format!("the next event is not valid: {e}")))
    }

    /// Reports `init/error` or `exit/error`.
    pub async fn report_error(&self, id: &str, init: bool, error_type: &str, message: &str) -> Result<(), Error> {
        let body =
            serde_json::json!({ "errorMessage": message, "errorType": error_type, "stackTrace": [] }).to_string();
        let body = Bytes::from(body);
        let path = if init { paths::EXTENSION_INIT_ERROR } else { paths::EXTENSION_EXIT_ERROR };
        let hdrs = [(headers::EXTENSION_IDENTIFIER, id), (headers::EXTENSION_FUNCTION_ERROR_TYPE, error_type)];
        let a = self.control.send(|| request(Method::POST, &self.addr, path, &hdrs, body.clone())).await?;
        if !a.status.is_success() {
            return Err(a.error(path));
        }
        Ok(())
    }

    pub async fn subscribe(&self, id: &str, api: Api, req: &SubscribeRequest) -> Result<(), Error> {
        let body = Bytes::from(serde_json::to_vec(req).map_err(|e| Error::transient(e.to_string()))?);
        let path = match api {
            Api::Telemetry => paths::TELEMETRY_SUBSCRIBE,
            Api::Logs => paths::LOGS_SUBSCRIBE,
        };
        let hdrs = [(headers::EXTENSION_IDENTIFIER, id)];
        let a = self.control.send(|| request(Method::PUT, &self.addr, path, &hdrs, body.clone())).await?;
        if a.status != StatusCode::OK {
            return Err(a.error("subscribing"));
        }
        Ok(())
    }
}
