//! aws::sign: SigV4 for one request, with the official `aws-sigv4` crate. Pure: the
//! signing time is passed in.
//!
//! Signs the method, the path, every header already set (`Host`, `Content-Type`,
//! `X-Amz-Target`) and the body's SHA-256, and adds `X-Amz-Date`, `Authorization`
//! and, with temporary credentials, `X-Amz-Security-Token`.

use super::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::time::SystemTime;

/// Signs `req` (whose body is `body`) for `service` in `region` at `time`.
pub fn sign_request(
    req: &mut Request<Full<Bytes>>,
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), String> {
    let creds = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.clone(),
        credentials.session_token.clone(),
        None,
        "environment",
    );
    // `Identity` is aws-smithy-runtime-api's; inferred here so no third crate is named.
    let identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign: {e}"))?
        .into();
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let uri = format!("https://{host}{}", req.uri());
    let headers: Vec<(&str, &str)> =
        req.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))).collect();
    let signable = SignableRequest::new(req.method().as_str(), uri, headers.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| format!("cannot sign: {e}"))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| format!("cannot sign: {e}"))?.into_parts();
    instructions.apply_to_request_http1x(req);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request(body: &'static [u8]) -> Request<Full<Bytes>> {
        Request::post("/")
            .header("host", "secretsmanager.us-east-1.amazonaws.com")
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "secretsmanager.GetSecretValue")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap()
    }

    #[test]
    fn adds_the_sigv4_headers() {
        let body = br#"{"SecretId":"a"}"#;
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("token".into()),
        };
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        let mut req = request(body);
        sign_request(&mut req, body, &creds, "us-east-1", "secretsmanager", t).unwrap();
        let h = req.headers();
        assert_eq!(h["x-amz-date"], "20150830T123600Z");
        assert_eq!(h["x-amz-security-token"], "token");
        let auth = h["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request"),
            "{auth}"
        );
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"),
            "{auth}"
        );
        // Deterministic: the same request at the same time signs the same; another body does not.
        let mut again = request(body);
        sign_request(&mut again, body, &creds, "us-east-1", "secretsmanager", t).unwrap();
        assert_eq!(again.headers()["authorization"], auth);
        let mut other = request(b"{}");
        sign_request(&mut other, b"{}", &creds, "us-east-1", "secretsmanager", t).unwrap();
        assert_ne!(other.headers()["authorization"], auth);
    }
}
