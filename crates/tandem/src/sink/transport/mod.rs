//! sink::transport: the HTTP transport of the `http` and `otlp` sinks. One keep-alive
//! HTTP/1.1 connection per destination (hyper's client connection, no pool), plain TCP
//! or TLS.
//!
//! Owns connecting (to a destination [`url`] parsed), TLS ([`tls`]: rustls with the
//! ring provider, the webpki roots and optionally a private CA and a client
//! certificate, built at the first `https` connection, never at start; only with the
//! `tls` feature), and reading the answer. It never retries a
//! request that may have been sent (the caller decides, with its backoff); it only
//! replaces a connection found closed before a request was written to it. A request
//! cancelled half-way (its future dropped at a deadline) takes its connection with it,
//! since nobody knows what state that connection is in.

pub mod tls;
pub mod url;

use tls::TlsFiles;
use url::Endpoint;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;

/// Answers are read up to this size (to keep the connection reusable); the rest is
/// left unread and the connection dropped.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// An answer: its status, `Retry-After` in seconds when given, and its body (empty when
/// it was longer than the client's answer limit).
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// `Retry-After`, when given in seconds.
    pub retry_after: Option<Duration>,
    /// The body (up to the client's answer limit, 64 KiB by default; empty past it).
    pub body: Bytes,
}

/// One destination's connection.
pub struct Client {
    https: bool,
    host: String,
    port: u16,
    sender: Option<SendRequest<Full<Bytes>>>,
    answer_limit: usize,
    tls: TlsFiles,
}

impl Client {
    /// A client for `endpoint`'s origin; it connects at the first request.
    pub fn new(endpoint: &Endpoint) -> Client {
        Client {
            https: endpoint.https,
            host: endpoint.host.clone(),
            port: endpoint.port,
            sender: None,
            answer_limit: MAX_ANSWER_BYTES,
            tls: TlsFiles::default(),
        }
    }

    /// Uses `files` (a private CA, a client certificate) for `https`; read at the first
    /// connection, not here.
    pub fn with_tls(mut self, files: TlsFiles) -> Client {
        self.tls = files;
        self
    }

    /// Reads answers up to `limit` bytes instead of 64 KiB (the AWS client: a secret's
    /// value may be 64 KiB before its JSON escaping or base64).
    pub fn with_answer_limit(mut self, limit: usize) -> Client {
        self.answer_limit = limit;
        self
    }

    /// Sends `req` and reads the answer. An error means no answer was read: the request
    /// may or may not have reached the server.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, String> {
        // Taken out for the request's duration: cancelled, it is dropped with it.
        let mut req = req;
        let mut fresh = false;
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => {
                fresh = true;
                self.connect().await?
            }
        };
        let resp = loop {
            if sender.ready().await.is_err() {
                if fresh {
                    return Err(format!("the connection to {}:{} closed at once", self.host, self.port));
                }
                fresh = true;
                sender = self.connect().await?;
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(r) => break r,
                Err(mut e) => match e.take_message() {
                    // Closed before the request was written: safe to send it on a new one.
                    Some(back) if !fresh => {
                        req = back;
                        fresh = true;
                        sender = self.connect().await?;
                    }
                    _ => return Err(format!("request to {}:{} failed: {}", self.host, self.port, e.error())),
                },
            }
        };
        let (parts, body) = resp.into_parts();
        let retry_after = parts
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match Limited::new(body, self.answer_limit).collect().await {
            Ok(b) => {
                self.sender = Some(sender);
                Ok(Answer { status: parts.status, retry_after, body: b.to_bytes() })
            }
            // The status was read: that is the answer. The connection is not reused.
            Err(_) => Ok(Answer { status: parts.status, retry_after, body: Bytes::new() }),
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", self.host, self.port))?;
        let _ = tcp.set_nodelay(true);
        if self.https {
            #[cfg(feature = "tls")]
            {
                let stream = tls::connect(&self.host, tcp, &self.tls, b"http/1.1").await?;
                return self.http1(stream).await;
            }
            #[cfg(not(feature = "tls"))]
            return Err(format!("cannot connect to {} with https: this build of tandem has no TLS support", self.host));
        }
        self.http1(tcp).await
    }

    async fn http1<S>(&self, stream: S) -> Result<SendRequest<Full<Bytes>>, String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {}:{} failed: {e}", self.host, self.port))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// Builds a POST of `body` to `endpoint` with the given headers (set after the
/// defaults, so they may override `Content-Type`).
pub fn post(
    endpoint: &Endpoint,
    content_type: &'static str,
    gzip: bool,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let mut req = Request::post(endpoint.path.as_str())
        .header(http::header::HOST, endpoint.authority.as_str())
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::USER_AGENT, concat!("tandem/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    if gzip {
        req.headers_mut().insert(http::header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    for (k, v) in headers {
        req.headers_mut().insert(k.clone(), v.clone());
    }
    Ok(req)
}

/// Configured `(name, value)` pairs as a header map; the config checked them already,
/// so a pair that still does not fit is skipped.
pub fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
            map.insert(name, value);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_override_defaults() {
        let e = Endpoint::parse("http://127.0.0.1:1/p").unwrap();
        let h = header_map(&[("content-type".into(), "text/plain".into()), ("x-key".into(), "v".into())]);
        let r = post(&e, "application/x-ndjson", true, &h, Bytes::from_static(b"x")).unwrap();
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert_eq!(r.headers()["x-key"], "v");
        assert_eq!(r.headers()["content-encoding"], "gzip");
        assert_eq!(r.headers()["host"], "127.0.0.1:1");
        assert_eq!(r.uri(), "/p");
    }
}
