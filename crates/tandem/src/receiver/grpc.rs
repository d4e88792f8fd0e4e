//! receiver::grpc: the OTLP/gRPC listener (the three `Export` services) on hyper's
//! HTTP/2 server, prior knowledge (h2c, no TLS: 127.0.0.1 only).
//!
//! Owns each call's answer: `UNIMPLEMENTED` for another method, `INVALID_ARGUMENT` for
//! a message that does not decode (or is not one length-prefixed message),
//! `RESOURCE_EXHAUSTED` over [`MAX_BODY_BYTES`], `UNAVAILABLE` when the lanes cannot
//! take it now or SHUTDOWN began (the exporter retries), else `OK` with the
//! `Export*ServiceResponse` (`partial_success` when items were refused) — only once the
//! data is held (see [`super::Receiver::offer`]). Errors are trailers-only answers.
//! `grpc-encoding: gzip` is accepted. Connections and their streams are bounded.

use super::decode::{self, code, Encoding, Refusal, MAX_BODY_BYTES};
use super::{Admission, Receiver};
use crate::clock::now_ms;
use crate::encode::grpc;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpListener;

use super::http::{BODY_TIMEOUT, MAX_CONNECTIONS};

/// Calls in flight on one connection.
pub const MAX_STREAMS: u32 = 16;

/// A unary answer: one message, then the trailers (or the trailers alone).
pub struct Unary {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Unary {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

/// Serves `listener` until the process ends.
pub async fn serve(listener: TcpListener, receiver: Arc<Receiver>) {
    super::accept_loop(listener, MAX_CONNECTIONS, move |stream| {
        let receiver = Arc::clone(&receiver);
        async move {
            let handler = service_fn(move |req| {
                let receiver = Arc::clone(&receiver);
                async move { Ok::<_, Infallible>(answer(&receiver, req).await) }
            });
            let _ = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(MAX_STREAMS)
                .max_header_list_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        }
    })
    .await;
}

async fn answer(receiver: &Receiver, req: Request<Incoming>) -> Response<Unary> {
    let Some(signal) = grpc::signal_of_path(req.uri().path()) else {
        return status(
            code::UNIMPLEMENTED,
            "OTLP/gRPC serves the Export method of the trace, metrics and logs services",
        );
    };
    let header_str = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !header_str(header::CONTENT_TYPE.as_str()).starts_with(grpc::CONTENT_TYPE) {
        return status(code::INVALID_ARGUMENT, "content-type: application/grpc");
    }
    let gzip = match header_str("grpc-encoding") {
        "" | "identity" => false,
        "gzip" => true,
        other => return status(code::UNIMPLEMENTED, &format!("grpc-encoding {other}: gzip or identity")),
    };
    // One of a few requests read and decoded at once (memory); the wait counts in the
    // message's time. The prefix is 5 bytes beyond the bound of the message.
    let read = async {
        let turn = receiver.decoding_turn().await;
        (turn, Limited::new(req.into_body(), MAX_BODY_BYTES + 5).collect().await)
    };
    let Ok((_turn, read)) = tokio::time::timeout(BODY_TIMEOUT, read).await else {
        return status(code::UNAVAILABLE, "message not sent in time");
    };
    let body = match read {
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => return status(code::INVALID_ARGUMENT, &format!("body: {e}")),
        Ok(b) => b.to_bytes(),
    };
    let (compressed, message) = match grpc::deframe(&body) {
        Ok(m) => m,
        Err(why) => return status(code::INVALID_ARGUMENT, &why),
    };
    let inflated;
    let message = if compressed {
        if !gzip {
            return status(code::INVALID_ARGUMENT, "a compressed message without grpc-encoding");
        }
        inflated = match decode::gunzip(message, MAX_BODY_BYTES) {
            Ok(v) => v,
            Err(r) => return refused(r),
        };
        &inflated[..]
    } else {
        message
    };
    let decoded = match decode::decode(signal, Encoding::Protobuf, message) {
        Ok(d) => d,
        Err(r) => return refused(r),
    };
    if !decoded.received.is_empty() {
        match receiver.offer(decoded.received, now_ms()) {
            Admission::Held => {}
            Admission::Busy => return status(code::UNAVAILABLE, "the extension's queues are full; retry later"),
            Admission::Closed => return status(code::UNAVAILABLE, "the extension is shutting down"),
        }
    }
    let reply = decode::success_body(signal, Encoding::Protobuf, decoded.rejected, &decoded.message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code::OK));
    respond(Unary { data: Some(Bytes::from(grpc::frame(&reply, false))), trailers: Some(trailers) }, HeaderMap::new())
}

fn refused(r: Refusal) -> Response<Unary> {
    match r {
        Refusal::TooLarge => too_large(),
        Refusal::Malformed(why) => status(code::INVALID_ARGUMENT, &why),
    }
}

fn too_large() -> Response<Unary> {
    status(code::RESOURCE_EXHAUSTED, &format!("the message is over {MAX_BODY_BYTES} bytes (inflated)"))
}

/// A trailers-only answer: the status in the headers, no body.
fn status(code: i32, message: &str) -> Response<Unary> {
    let mut headers = HeaderMap::new();
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(&grpc::percent_encode(message)) {
        headers.insert("grpc-message", v);
    }
    respond(Unary { data: None, trailers: None }, headers)
}

fn respond(body: Unary, headers: HeaderMap) -> Response<Unary> {
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(grpc::CONTENT_TYPE));
    r.headers_mut().extend(headers);
    r
}
