//! secrets::wrap: `tandem wrap <runtime> [args…]`, the `AWS_LAMBDA_EXEC_WRAPPER` side
//! (the layer's `/opt/tandem-wrapper` runs it): reads `TANDEM_SECRET_ENV`
//! (`DB_PASSWORD=secretsmanager:prod/db#password,API_URL=ssm:/app/url`; `#key` picks a
//! field of a JSON secret), gets every value from the running cache over its HTTP API
//! (in parallel), exports them and execs the runtime.
//!
//! Any failure ends INIT before the function starts, with one line on stderr naming
//! the error type (`Extension.…`) and the variable and reference (never a value): a
//! function never starts with a value missing. Plain blocking std I/O: it runs once,
//! before the runtime, and needs no async runtime.

use super::request::Lookup;
use super::server::TOKEN_HEADER;
use super::settings::{Settings, UNSET_TIMEOUT};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tandem_wire::error::types::EXTENSION_PREFIX;

/// How long the wrapper waits for the cache's port to accept (it is bound before tandem
/// registers, so before any runtime starts; this covers a slow machine).
const CONNECT_WAIT: Duration = Duration::from_secs(3);

/// One variable to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The variable's name.
    pub var: String,
    /// The reference as written (for messages).
    pub reference: String,
    /// What to read.
    pub lookup: Lookup,
    /// The field of a JSON secret to take (`#key`).
    pub key: Option<String>,
}

/// Why the wrapper cannot start the function: an `Extension.*` error type and a message
/// that names the variable and the reference, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapError {
    /// The error type's name after `Extension.`.
    pub kind: &'static str,
    /// What failed.
    pub message: String,
}

impl std::fmt::Display for WrapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{EXTENSION_PREFIX}{}: {}", self.kind, self.message)
    }
}

/// Parses `TANDEM_SECRET_ENV`.
pub fn parse_spec(spec: &str) -> Result<Vec<Export>, WrapError> {
    let invalid = |message: String| WrapError { kind: "SecretEnvInvalid", message };
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (var, reference) = item
            .split_once('=')
            .ok_or_else(|| invalid(format!("TANDEM_SECRET_ENV: {item:?} is not NAME=reference")))?;
        let var = var.trim();
        if var.is_empty()
            || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || var.as_bytes()[0].is_ascii_digit()
        {
            return Err(invalid(format!("TANDEM_SECRET_ENV: {var:?} is not a variable name")));
        }
        let reference = reference.trim();
        let (target, key) = match reference.split_once('#') {
            Some((t, k)) if reference.starts_with("secretsmanager:") => (t, Some(k.to_owned())),
            _ => (reference, None),
        };
        let lookup = Lookup::parse_reference(target)
            .map_err(|why| invalid(format!("TANDEM_SECRET_ENV: {var}: {reference:?} {why}")))?;
        out.push(Export { var: var.to_owned(), reference: reference.to_owned(), lookup, key });
    }
    Ok(out)
}

/// The value to export from the HTTP API's answer (`status`, `body`).
pub fn value_of(export: &Export, status: u16, body: &[u8]) -> Result<String, WrapError> {
    let what = format!("{} ({})", export.var, export.reference);
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if status != 200 {
        let aws_type = v.get("__type").and_then(|t| t.as_str()).unwrap_or("");
        let kind = match status {
            401 => "SecretsUnauthorized",
            403 => "SecretAccessDenied",
            404 => "SecretNotFound",
            502..=504 => "SecretsUnavailable",
            _ => "SecretFetchFailed",
        };
        let detail = if aws_type.is_empty() { format!("HTTP {status}") } else { format!("{aws_type}, HTTP {status}") };
        return Err(WrapError { kind, message: format!("{what}: {detail}") });
    }
    let text = match export.lookup {
        Lookup::Secret { .. } => v.get("SecretString").or_else(|| v.get("SecretBinary")).and_then(|s| s.as_str()),
        Lookup::Parameter { .. } => v.pointer("/Parameter/Value").and_then(|s| s.as_str()),
    };
    let text = text
        .ok_or_else(|| WrapError { kind: "SecretFetchFailed", message: format!("{what}: the answer has no value") })?;
    let Some(key) = &export.key else { return Ok(text.to_owned()) };
    let missing =
        || WrapError { kind: "SecretKeyNotFound", message: format!("{what}: the secret has no JSON field {key:?}") };
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|_| missing())?;
    match doc.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Null) | None => Err(missing()),
        Some(other) => Ok(other.to_string()),
    }
}

/// Runs `tandem wrap`: on success it becomes the runtime (exec) and never returns; it
/// returns the error line's text otherwise.
pub fn run(args: &[String], var: impl Fn(&str) -> Option<String>) -> String {
    let Some((program, rest)) = args.split_first() else {
        return "tandem wrap: usage: tandem wrap <runtime> [args…] (as AWS_LAMBDA_EXEC_WRAPPER)".into();
    };
    match fetch_all(&var) {
        Ok(values) => {
            use std::os::unix::process::CommandExt;
            let err = std::process::Command::new(program).args(rest).envs(values).exec();
            format!("tandem wrap: cannot start {program}: {err}")
        }
        Err(e) => format!("tandem wrap: {e}"),
    }
}

fn fetch_all(var: &impl Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>, WrapError> {
    let exports = parse_spec(&var("TANDEM_SECRET_ENV").unwrap_or_default())?;
    if exports.is_empty() {
        return Ok(Vec::new());
    }
    let (settings, _) = Settings::from_env(var);
    let token = var("AWS_SESSION_TOKEN").unwrap_or_default();
    let timeout = settings.secrets_timeout.max(settings.parameters_timeout).max(UNSET_TIMEOUT) + Duration::from_secs(5);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, settings.port));
    std::thread::scope(|s| {
        let handles: Vec<_> = exports
            .iter()
            .map(|e| s.spawn(|| get(addr, &token, e, timeout).and_then(|(st, b)| value_of(e, st, &b))))
            .collect();
        let mut values = Vec::new();
        for (e, h) in exports.iter().zip(handles) {
            let v = h.join().unwrap_or_else(|_| {
                Err(WrapError {
                    kind: "SecretFetchFailed",
                    message: format!("{} ({}): the fetch panicked", e.var, e.reference),
                })
            })?;
            values.push((e.var.clone(), v));
        }
        Ok(values)
    })
}

/// One GET of the HTTP API: (status, body).
fn get(addr: SocketAddr, token: &str, export: &Export, timeout: Duration) -> Result<(u16, Vec<u8>), WrapError> {
    let unavailable = |why: String| WrapError {
        kind: "SecretsUnavailable",
        message: format!("{} ({}): the secrets cache on {addr} {why}", export.var, export.reference),
    };
    let start = Instant::now();
    let mut stream = loop {
        match TcpStream::connect_timeout(&addr, CONNECT_WAIT) {
            Ok(s) => break s,
            Err(e) if start.elapsed() >= CONNECT_WAIT => return Err(unavailable(format!("is not reachable: {e}"))),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\n{TOKEN_HEADER}: {token}\r\nConnection: close\r\n\r\n",
        export.lookup.http_path()
    );
    stream.write_all(request.as_bytes()).map_err(|e| unavailable(format!("refused the request: {e}")))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| unavailable(format!("did not answer: {e}")))?;
    let split =
        answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| unavailable("answered garbage".into()))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| unavailable("answered garbage".into()))?;
    Ok((status, answer[split + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_names_variables_references_and_keys() {
        let e = parse_spec("DB_PASSWORD=secretsmanager:prod/db#password, API_URL=ssm:/app/url").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].var, "DB_PASSWORD");
        assert_eq!(e[0].key.as_deref(), Some("password"));
        assert_eq!(e[0].lookup.name(), "prod/db");
        assert_eq!(e[1].lookup, Lookup::Parameter { name: "/app/url".into(), with_decryption: false });
        for bad in ["X", "1X=ssm:/a", "X=s3:b", "X-Y=ssm:/a"] {
            assert_eq!(parse_spec(bad).unwrap_err().kind, "SecretEnvInvalid", "{bad}");
        }
    }

    #[test]
    fn values_come_from_the_answer_and_failures_name_type_and_key() {
        let e = &parse_spec("P=secretsmanager:db#password,U=ssm:/u,R=secretsmanager:raw").unwrap();
        let secret = br#"{"Name":"db","SecretString":"{\"password\":\"hunter2\",\"port\":5432}"}"#;
        assert_eq!(value_of(&e[0], 200, secret).unwrap(), "hunter2");
        assert_eq!(value_of(&e[2], 200, secret).unwrap(), r#"{"password":"hunter2","port":5432}"#);
        assert_eq!(value_of(&e[1], 200, br#"{"Parameter":{"Value":"https://x"}}"#).unwrap(), "https://x");
        let missing = Export { key: Some("user".into()), ..e[0].clone() };
        let err = value_of(&missing, 200, secret).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Extension.SecretKeyNotFound: P (secretsmanager:db#password): the secret has no JSON field \"user\""
        );
        assert!(!err.to_string().contains("hunter2"));
        let err = value_of(&e[0], 404, br#"{"__type":"ResourceNotFoundException","message":"x"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Extension.SecretNotFound: P (secretsmanager:db#password): ResourceNotFoundException, HTTP 404"
        );
        assert_eq!(value_of(&e[0], 401, b"").unwrap_err().kind, "SecretsUnauthorized");
    }
}
