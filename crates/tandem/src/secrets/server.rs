//! secrets::server: the HTTP API of AWS's Parameters and Secrets extension, on
//! 127.0.0.1 only (never 0.0.0.0).
//!
//! Owns the listener and each request's answer: the token check first
//! (`X-Aws-Parameters-Secrets-Token` equal to `AWS_SESSION_TOKEN`, compared in constant
//! time; anything else is 401 with nothing more said), then the lookup (400 for a bad
//! query, 404 for an unknown path), then the service's outcome: 200 with the AWS
//! answer's body and `X-Tandem-Cache: hit|miss|stale`, or AWS's error passed through
//! with its status and error type. Never logs a request or a body.

use super::request::{status_of, Lookup};
use super::service::{SecretsService, Source};
use crate::aws::client::CallError;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

/// The token header.
pub const TOKEN_HEADER: &str = "x-aws-parameters-secrets-token";
/// The header saying where the value came from.
pub const CACHE_HEADER: &str = "x-tandem-cache";
/// The error type of an answer when AWS could not be reached (no AWS error to pass on).
pub const UNREACHABLE_TYPE: &str = "ServiceUnavailable";

/// Serves `listener` until the process ends. `token` is `AWS_SESSION_TOKEN` (`None`:
/// every request is refused, as with AWS's extension).
pub async fn serve(listener: TcpListener, service: Arc<SecretsService>, token: Option<String>) {
    let token: Arc<Option<Vec<u8>>> = Arc::new(token.map(String::into_bytes));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                // Out of descriptors, most likely: wait rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = Arc::clone(&service);
        let token = Arc::clone(&token);
        tokio::spawn(async move {
            let handler = service_fn(move |req| {
                let service = Arc::clone(&service);
                let token = Arc::clone(&token);
                async move { Ok::<_, Infallible>(answer(&service, token.as_ref().as_deref(), req).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), handler).await;
        });
    }
}

/// Whether `given` is the token, in time independent of where they differ.
pub fn token_matches(expected: Option<&[u8]>, given: Option<&[u8]>) -> bool {
    match (expected, given) {
        (Some(e), Some(g)) => bool::from(e.ct_eq(g)),
        _ => false,
    }
}

async fn answer(service: &Arc<SecretsService>, token: Option<&[u8]>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let given = req.headers().get(TOKEN_HEADER).map(|v| v.as_bytes());
    if !token_matches(token, given) {
        return plain(StatusCode::UNAUTHORIZED, "");
    }
    if req.method() != http::Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET is served");
    }
    let lookup = match Lookup::from_http(req.uri().path(), req.uri().query().unwrap_or("")) {
        Ok(Some(l)) => l,
        Ok(None) => return plain(StatusCode::NOT_FOUND, "unknown path"),
        Err(why) => return plain(StatusCode::BAD_REQUEST, &why),
    };
    match service.get(lookup).await {
        Ok((body, source)) => Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(CACHE_HEADER, source.as_str())
            .body(Full::new(body))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "")),
        Err(CallError::Aws(e)) => error(status_of(&e.error_type, e.status), &e.error_type, &e.message),
        Err(CallError::Unreachable(why)) => error(502, UNREACHABLE_TYPE, &why),
        Err(CallError::Setup(why)) => error(500, "ExtensionConfigurationError", &why),
    }
}

/// An error as AWS's JSON protocols spell it (`__type`, `message`) and the
/// `X-Amzn-ErrorType` header.
fn error(status: u16, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "__type": error_type, "message": message }).to_string();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("x-amzn-errortype", error_type)
        .header(CACHE_HEADER, Source::Miss.as_str())
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, ""))
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_be_given_and_equal() {
        assert!(token_matches(Some(b"tok"), Some(b"tok")));
        assert!(!token_matches(Some(b"tok"), Some(b"tox")));
        assert!(!token_matches(Some(b"tok"), Some(b"tok2")));
        assert!(!token_matches(Some(b"tok"), None));
        assert!(!token_matches(None, Some(b"")), "no session token: nothing is served");
    }
}
