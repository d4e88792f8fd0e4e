//! sink::otlp::grpc: the `grpc` protocol of the `otlp` sink (`OTEL_EXPORTER_OTLP_PROTOCOL=
//! grpc`): one unary `Export` call per signal over hyper's HTTP/2 client, the framing of
//! `encode::grpc` (shared with the receiver), `grpc-encoding: gzip` when compression is
//! on, one kept-alive connection per target.
//!
//! `http://` endpoints: cleartext HTTP/2 with prior knowledge. `https://` endpoints: TLS
//! offering ALPN `h2` (the transport's rustls configuration with the same certificate
//! settings as http/protobuf: private CA, client certificate), refused at start only in
//! a build without the `tls` feature. The endpoint's origin is used; the method path is
//! the signal's.
//!
//! hyper's `http2` feature rather than `tonic`: the framing is a few lines, and tonic
//! would add its codegen runtime, tower and a second HTTP stack to the binary. The size
//! each adds is in the README's measurements.
//!
//! Outcome: `grpc-status` 0 is ok; the codes OTLP retries (`UNAVAILABLE`,
//! `RESOURCE_EXHAUSTED`, …) and transport failures are retried; the rest is permanent.
//! An HTTP status other than 200 is judged like the OTLP/HTTP answers.

use super::encode::Signal;
use crate::encode::grpc;
use crate::sink::transport::tls::TlsFiles;
use crate::sink::transport::url::Endpoint;
use crate::sink::Attempt;
use http::HeaderMap;
#[cfg(feature = "grpc")]
use {
    crate::sink::{classify, Class},
    bytes::Bytes,
    http::{header, HeaderValue, Method, Request},
    http_body_util::{BodyExt, Full, Limited},
    hyper::client::conn::http2::{self, SendRequest},
    hyper_util::rt::{TokioExecutor, TokioIo},
};

/// The most of an answer's body read (the response message is small).
#[cfg(feature = "grpc")]
const ANSWER_LIMIT: usize = 64 * 1024;

/// One target's gRPC connection.
#[cfg_attr(not(feature = "grpc"), allow(dead_code))]
pub struct GrpcClient {
    https: bool,
    tls: TlsFiles,
    host: String,
    port: u16,
    authority: String,
    #[cfg(feature = "grpc")]
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl GrpcClient {
    /// A client for `endpoint`'s origin; it connects at the first call. An `https://`
    /// endpoint is refused only by a build without TLS.
    pub fn new(endpoint: &Endpoint) -> Result<GrpcClient, String> {
        if !cfg!(feature = "grpc") {
            return Err("uses grpc, which this build of tandem leaves out (feature `grpc`; use http/protobuf)".into());
        }
        if endpoint.https && !cfg!(feature = "tls") {
            return Err("uses grpc over https, which this build of tandem leaves out (feature `tls`)".into());
        }
        Ok(GrpcClient {
            https: endpoint.https,
            tls: TlsFiles::default(),
            host: endpoint.host.clone(),
            port: endpoint.port,
            authority: endpoint.authority.clone(),
            #[cfg(feature = "grpc")]
            sender: None,
        })
    }

    /// Uses `files` (a private CA, a client certificate) for `https`; read at the first
    /// connection, not here.
    pub fn with_tls(mut self, files: TlsFiles) -> GrpcClient {
        self.tls = files;
        self
    }

    #[cfg(feature = "grpc")]
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let _ = tcp.set_nodelay(true);
        if self.https {
            #[cfg(feature = "tls")]
            {
                let stream = crate::sink::transport::tls::connect(&self.host, tcp, &self.tls, b"h2").await?;
                // A server that did not choose h2 would read our preface as garbage.
                if stream.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
                    return Err(format!("{} did not agree to HTTP/2 (ALPN h2) over TLS", self.authority));
                }
                return self.handshake(stream).await;
            }
            #[cfg(not(feature = "tls"))]
            return Err(format!(
                "cannot connect to {} with https: this build of tandem has no TLS support",
                self.authority
            ));
        }
        self.handshake(tcp).await
    }

    #[cfg(feature = "grpc")]
    async fn handshake<S>(&self, stream: S) -> Result<SendRequest<Full<Bytes>>, String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/2 handshake with {} failed: {e}", self.authority))?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Without the `grpc` feature no client is built ([`GrpcClient::new`] refuses).
    #[cfg(not(feature = "grpc"))]
    pub async fn export(&mut self, _: Signal, _: &HeaderMap, _: &[u8], _: bool) -> Attempt {
        Attempt::Permanent(format!("gRPC to {}: not in this build (feature `grpc`)", self.authority))
    }

    /// One `Export` call of `signal` carrying `message` (already gzipped when
    /// `compressed`).
    #[cfg(feature = "grpc")]
    pub async fn export(&mut self, signal: Signal, headers: &HeaderMap, message: &[u8], compressed: bool) -> Attempt {
        let scheme = if self.https { "https" } else { "http" };
        let uri = format!("{scheme}://{}{}", self.authority, grpc::method_path(signal));
        let mut req = Request::new(Full::new(Bytes::from(grpc::frame(message, compressed))));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = match uri.parse() {
            Ok(u) => u,
            Err(e) => return Attempt::Permanent(format!("gRPC URI {uri}: {e}")),
        };
        let h = req.headers_mut();
        h.extend(headers.clone());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(grpc::CONTENT_TYPE));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        if compressed {
            h.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        }
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => match self.connect().await {
                Ok(s) => s,
                Err(e) => return Attempt::retry(e),
            },
        };
        if let Err(e) = sender.ready().await {
            return Attempt::retry(format!("gRPC connection to {} lost: {e}", self.authority));
        }
        let answer = match sender.send_request(req).await {
            Ok(a) => a,
            Err(e) => return Attempt::retry(format!("gRPC call to {} failed: {e}", self.authority)),
        };
        self.sender = Some(sender);
        let what = format!("gRPC {}", grpc::method_path(signal));
        match classify(answer.status()) {
            Class::Ok => {}
            Class::Retry => return Attempt::retry(format!("{what} answered HTTP {}", answer.status())),
            Class::Permanent => return Attempt::Permanent(format!("{what} answered HTTP {}", answer.status())),
        }
        if let Some(outcome) = judge(&what, answer.headers()) {
            return outcome; // trailers-only
        }
        match Limited::new(answer.into_body(), ANSWER_LIMIT).collect().await {
            Ok(body) => match body.trailers().and_then(|t| judge(&what, t)) {
                Some(outcome) => outcome,
                None => Attempt::retry(format!("{what}: the answer ended without grpc-status")),
            },
            Err(e) => Attempt::retry(format!("{what}: the answer was cut: {e}")),
        }
    }
}

/// The outcome `grpc-status` (and `grpc-message`) in `headers` say, if there.
pub fn judge(what: &str, headers: &HeaderMap) -> Option<Attempt> {
    let code: i32 = headers.get("grpc-status")?.to_str().ok()?.trim().parse().ok()?;
    if code == grpc::code::OK {
        return Some(Attempt::Ok);
    }
    let message = headers.get("grpc-message").and_then(|v| v.to_str().ok()).map(grpc::percent_decode);
    let reason = match message {
        Some(m) if !m.is_empty() => format!("{what} answered grpc-status {code}: {m}"),
        _ => format!("{what} answered grpc-status {code}"),
    };
    Some(if grpc::retryable(code) { Attempt::retry(reason) } else { Attempt::Permanent(reason) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn statuses_are_judged_like_otlp_says() {
        assert_eq!(judge("x", &headers(&[("grpc-status", "0")])), Some(Attempt::Ok));
        assert_eq!(judge("x", &HeaderMap::new()), None);
        match judge("x", &headers(&[("grpc-status", "14"), ("grpc-message", "queue%20full")])) {
            Some(Attempt::Retry { reason, .. }) => assert_eq!(reason, "x answered grpc-status 14: queue full"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(judge("x", &headers(&[("grpc-status", "3")])), Some(Attempt::Permanent(_))));
        assert!(matches!(judge("x", &headers(&[("grpc-status", "8")])), Some(Attempt::Retry { .. })));
    }

    #[test]
    #[cfg(feature = "grpc")]
    fn https_endpoints_need_the_tls_feature() {
        let e = Endpoint::parse("https://collector:4317").unwrap();
        match GrpcClient::new(&e) {
            Ok(c) => assert!(cfg!(feature = "tls") && c.https),
            Err(m) => assert!(!cfg!(feature = "tls") && m.contains("https"), "{m}"),
        }
        assert!(GrpcClient::new(&Endpoint::parse("http://127.0.0.1:4317").unwrap()).is_ok_and(|c| !c.https));
    }
}
