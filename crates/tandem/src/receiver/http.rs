//! receiver::http: the OTLP/HTTP listener (`/v1/traces`, `/v1/metrics`, `/v1/logs`) on
//! hyper's HTTP/1.1 server.
//!
//! Owns each request's answer, per the OTLP/HTTP specification: 404 for an unknown path,
//! 405 for a method other than POST, 415 for a content type or encoding it does not
//! take, 413 over [`MAX_BODY_BYTES`] (declared, sent or inflated), 400 with a
//! `google.rpc.Status` for a body that does not decode, 503 with `Retry-After` when the
//! lanes cannot take it now, else 200 with the `Export*ServiceResponse` in the
//! request's encoding (`partial_success` when items were refused) — only once the data
//! is held (see [`super::Receiver::offer`]). At most [`MAX_CONNECTIONS`] connections;
//! headers within [`HEADER_TIMEOUT`], the body within [`BODY_TIMEOUT`].

use super::decode::{self, code, Encoding, Refusal, MAX_BODY_BYTES};
use super::{Admission, Receiver};
use crate::clock::now_ms;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its headers. hyper counts it from the end of the previous
/// answer too, so it also closes keep-alive connections idle this long (the SDKs'
/// HTTP clients notice a closed pooled connection and open another).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The `Retry-After` of a 503, seconds.
pub const RETRY_AFTER_S: u64 = 1;

/// Serves `listener` until the process ends.
pub async fn serve(listener: TcpListener, receiver: Arc<Receiver>) {
    super::accept_loop(listener, MAX_CONNECTIONS, move |stream| {
        let receiver = Arc::clone(&receiver);
        async move {
            let handler = service_fn(move |req| {
                let receiver = Arc::clone(&receiver);
                async move { Ok::<_, Infallible>(answer(&receiver, req).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        }
    })
    .await;
}

async fn answer(receiver: &Receiver, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(signal) = decode::signal_of_path(req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "unknown path: OTLP/HTTP takes /v1/traces, /v1/metrics, /v1/logs");
    };
    if req.method() != Method::POST {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only POST is served");
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return r;
    }
    let header_str = |name: header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(encoding) = Encoding::from_content_type(header_str(header::CONTENT_TYPE)) else {
        return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "content type: application/x-protobuf or application/json");
    };
    let gzip = match header_str(header::CONTENT_ENCODING).trim().to_ascii_lowercase().as_str() {
        "" | "identity" => false,
        "gzip" => true,
        _ => {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                encoding,
                code::INVALID_ARGUMENT,
                "content encoding: gzip or none",
            )
        }
    };
    let declared = header_str(header::CONTENT_LENGTH).parse::<u64>().ok();
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large(encoding);
    }
    // One of a few requests read and decoded at once (memory); the wait counts in the
    // body's time.
    let read = async {
        let turn = receiver.decoding_turn().await;
        (turn, Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await)
    };
    let Ok((_turn, read)) = tokio::time::timeout(BODY_TIMEOUT, read).await else {
        return status(StatusCode::REQUEST_TIMEOUT, encoding, code::UNAVAILABLE, "body not sent in time");
    };
    let body = match read {
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(encoding),
        Err(e) => return status(StatusCode::BAD_REQUEST, encoding, code::INVALID_ARGUMENT, &format!("body: {e}")),
        Ok(b) => b.to_bytes(),
    };
    let inflated;
    let raw: &[u8] = if gzip {
        inflated = match decode::gunzip(&body, MAX_BODY_BYTES) {
            Ok(v) => v,
            Err(r) => return refused(encoding, r),
        };
        &inflated
    } else {
        &body
    };
    let decoded = match decode::decode(signal, encoding, raw) {
        Ok(d) => d,
        Err(r) => return refused(encoding, r),
    };
    if !decoded.received.is_empty() {
        match receiver.offer(decoded.received, now_ms()) {
            Admission::Held => {}
            Admission::Busy => return unavailable(encoding, "the extension's queues are full; retry later"),
            Admission::Closed => return unavailable(encoding, "the extension is shutting down"),
        }
    }
    let body = decode::success_body(signal, encoding, decoded.rejected, &decoded.message);
    respond(StatusCode::OK, encoding.content_type(), body)
}

fn refused(encoding: Encoding, r: Refusal) -> Response<Full<Bytes>> {
    match r {
        Refusal::TooLarge => too_large(encoding),
        Refusal::Malformed(why) => status(StatusCode::BAD_REQUEST, encoding, code::INVALID_ARGUMENT, &why),
    }
}

fn too_large(encoding: Encoding) -> Response<Full<Bytes>> {
    let why = format!("the body is over {MAX_BODY_BYTES} bytes (inflated); send smaller batches");
    status(StatusCode::PAYLOAD_TOO_LARGE, encoding, code::INVALID_ARGUMENT, &why)
}

fn unavailable(encoding: Encoding, why: &str) -> Response<Full<Bytes>> {
    let mut r = status(StatusCode::SERVICE_UNAVAILABLE, encoding, code::UNAVAILABLE, why);
    r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(RETRY_AFTER_S));
    r
}

fn status(http: StatusCode, encoding: Encoding, code: i32, why: &str) -> Response<Full<Bytes>> {
    respond(http, encoding.content_type(), decode::status_body(encoding, code, why))
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain", text.as_bytes().to_vec())
}
