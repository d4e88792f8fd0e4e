//! Telemetry API (`PUT /2022-07-01/telemetry`) and Logs API (`PUT /2020-08-15/logs`)
//! subscription requests, their limits, and the validation Lambda applies.
//!
//! Validation is pure and shared: the emulator answers with it, the SDK checks its
//! own request with it before sending.

use crate::telemetry::TelemetryType;
use serde::{Deserialize, Serialize};

/// The host a destination URI names (what the SDK subscribes with).
pub const SANDBOX_HOST: &str = "sandbox.localdomain";
/// Every host Lambda accepts in a destination URI: both resolve to the sandbox itself
/// (AWS's Logs API samples and several Telemetry API samples subscribe with `sandbox`).
pub const SANDBOX_HOSTS: [&str; 2] = [SANDBOX_HOST, "sandbox"];
/// The port of the Runtime API inside Lambda; a destination may not use it.
pub const RESERVED_PORT: u16 = 9001;

/// Telemetry API schema versions, oldest first.
pub const TELEMETRY_SCHEMAS: [&str; 3] = ["2022-07-01", "2022-12-13", "2025-01-29"];
/// Logs API schema versions, oldest first; the first is the default.
pub const LOGS_SCHEMAS: [&str; 2] = ["2020-08-15", "2021-03-18"];

/// Buffering limits (identical for both APIs).
pub mod limits {
    /// `maxBytes` when not given.
    pub const MAX_BYTES_DEFAULT: u32 = 262_144;
    /// Smallest `maxBytes` accepted.
    pub const MAX_BYTES_MIN: u32 = 262_144;
    /// Largest `maxBytes` accepted.
    pub const MAX_BYTES_MAX: u32 = 1_048_576;
    /// `maxItems` when not given.
    pub const MAX_ITEMS_DEFAULT: u32 = 10_000;
    /// Smallest `maxItems` accepted.
    pub const MAX_ITEMS_MIN: u32 = 1_000;
    /// Largest `maxItems` accepted.
    pub const MAX_ITEMS_MAX: u32 = 10_000;
    /// `timeoutMs` when not given.
    pub const TIMEOUT_MS_DEFAULT: u32 = 1_000;
    /// Smallest `timeoutMs` accepted.
    pub const TIMEOUT_MS_MIN: u32 = 25;
    /// Largest `timeoutMs` accepted.
    pub const TIMEOUT_MS_MAX: u32 = 30_000;
}

/// Which of the two subscription APIs a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// The Telemetry API (2022-07-01).
    Telemetry,
    /// The Logs API (2020-08-15).
    Logs,
}

/// `buffering` of a subscription request, as sent (checked by validation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Buffering {
    /// Most events in one batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<i64>,
    /// Most bytes in one batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<i64>,
    /// Longest a batch waits before it is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
}

/// `destination` of a subscription request, as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// `HTTP` or `TCP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Where to deliver: `http://sandbox.localdomain:PORT/path`.
    #[serde(rename = "URI", default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// The body of a subscription request, as sent (every field optional so that
/// validation, not parsing, reports what is missing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    /// One of [`TELEMETRY_SCHEMAS`] or [`LOGS_SCHEMAS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
    /// The categories wanted (`platform`, `function`, `extension`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// Batching limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffering: Option<Buffering>,
    /// Where events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
}

/// Transport of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// A JSON array per POST.
    Http,
    /// Newline-delimited JSON on a connection.
    Tcp,
}

/// A subscription that passed validation, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The API it came through.
    pub api: Api,
    /// The schema version asked for (the Logs API's default when it was absent).
    pub schema_version: String,
    /// The categories wanted.
    pub types: Vec<TelemetryType>,
    /// Most events in one batch.
    pub max_items: u32,
    /// Most bytes in one batch.
    pub max_bytes: u32,
    /// Longest a batch waits before it is sent.
    pub timeout_ms: u32,
    /// The destination's transport.
    pub protocol: Protocol,
    /// The URI as given (host `sandbox.localdomain` or `sandbox`).
    pub uri: String,
    /// The destination port on 127.0.0.1.
    pub port: u16,
    /// Path and query, `/` when the URI has none.
    pub path: String,
}

impl Subscription {
    /// Whether events of category `t` go to this subscriber.
    pub fn wants(&self, t: &TelemetryType) -> bool {
        self.types.contains(t)
    }

    /// Whether the Logs API sends this subscriber `platform.runtimeDone` (schema
    /// 2021-03-18 or later).
    pub fn logs_runtime_done(&self) -> bool {
        self.api == Api::Logs && self.schema_version.as_str() >= "2021-03-18"
    }

    /// Whether JSON log lines may be delivered as objects (schema 2022-12-13 or later).
    pub fn structured_logs(&self) -> bool {
        self.api == Api::Telemetry && self.schema_version.as_str() >= "2022-12-13"
    }
}

impl SubscribeRequest {
    /// A request for `types` delivered over HTTP to `port` on `sandbox.localdomain`.
    pub fn http(schema_version: &str, types: &[TelemetryType], port: u16) -> Self {
        Self {
            schema_version: Some(schema_version.to_owned()),
            types: Some(types.iter().map(|t| t.as_str().to_owned()).collect()),
            buffering: None,
            destination: Some(Destination {
                protocol: Some("HTTP".into()),
                uri: Some(format!("http://{SANDBOX_HOST}:{port}")),
            }),
        }
    }

    /// Checks the request as Lambda does. The error is the `errorMessage` of a 400.
    pub fn validate(&self, api: Api) -> Result<Subscription, String> {
        let schema_version = match (api, self.schema_version.as_deref()) {
            (Api::Telemetry, Some(v)) if TELEMETRY_SCHEMAS.contains(&v) => v.to_owned(),
            (Api::Telemetry, Some(v)) => {
                return Err(format!(
                    "schemaVersion {v:?} is not supported; use one of {}",
                    TELEMETRY_SCHEMAS.join(", ")
                ))
            }
            (Api::Telemetry, None) => return Err("schemaVersion is required".into()),
            (Api::Logs, Some(v)) if LOGS_SCHEMAS.contains(&v) => v.to_owned(),
            (Api::Logs, Some(v)) => {
                return Err(format!("schemaVersion {v:?} is not supported; use one of {}", LOGS_SCHEMAS.join(", ")))
            }
            (Api::Logs, None) => LOGS_SCHEMAS[0].to_owned(),
        };

        let raw_types = self.types.as_deref().unwrap_or_default();
        if raw_types.is_empty() {
            return Err("types must name at least one of platform, function, extension".into());
        }
        let mut types = Vec::with_capacity(3);
        for t in raw_types {
            match TelemetryType::from(t.as_str()) {
                TelemetryType::Other(o) => {
                    return Err(format!("type {o:?} is not one of platform, function, extension"))
                }
                known if !types.contains(&known) => types.push(known),
                _ => {}
            }
        }

        let b = self.buffering.clone().unwrap_or_default();
        let bounded = |name: &str, v: Option<i64>, default: u32, min: u32, max: u32| match v {
            None => Ok(default),
            Some(v) if v >= i64::from(min) && v <= i64::from(max) => Ok(v as u32),
            Some(v) => Err(format!("buffering.{name} is {v}; it must be between {min} and {max}")),
        };
        use limits::*;
        let max_items = bounded("maxItems", b.max_items, MAX_ITEMS_DEFAULT, MAX_ITEMS_MIN, MAX_ITEMS_MAX)?;
        let max_bytes = bounded("maxBytes", b.max_bytes, MAX_BYTES_DEFAULT, MAX_BYTES_MIN, MAX_BYTES_MAX)?;
        let timeout_ms = bounded("timeoutMs", b.timeout_ms, TIMEOUT_MS_DEFAULT, TIMEOUT_MS_MIN, TIMEOUT_MS_MAX)?;

        let dest = self.destination.as_ref().ok_or_else(|| String::from("destination is required"))?;
        let protocol = match dest.protocol.as_deref() {
            Some("HTTP") => Protocol::Http,
            Some("TCP") => Protocol::Tcp,
            Some(p) => return Err(format!("destination.protocol {p:?} is not HTTP or TCP")),
            None => return Err("destination.protocol is required".into()),
        };
        let uri = dest.uri.as_deref().ok_or_else(|| String::from("destination.URI is required"))?;
        let (port, path) = parse_destination_uri(uri, protocol)?;
        Ok(Subscription {
            api,
            schema_version,
            types,
            max_items,
            max_bytes,
            timeout_ms,
            protocol,
            uri: uri.to_owned(),
            port,
            path,
        })
    }
}

/// Splits `scheme://sandbox.localdomain:PORT[/path]` (or host `sandbox`) into port and
/// path. A control character anywhere (CR/LF would end up in the delivery's request
/// line) is refused here, where Lambda refuses it, not at every delivery attempt.
fn parse_destination_uri(uri: &str, protocol: Protocol) -> Result<(u16, String), String> {
    if uri.chars().any(char::is_control) {
        return Err(format!("destination.URI {uri:?} contains a control character"));
    }
    let rest = match protocol {
        Protocol::Http => uri.strip_prefix("http://"),
        // Lambda's samples use http:// for TCP too; accept tcp:// as well.
        Protocol::Tcp => uri.strip_prefix("tcp://").or_else(|| uri.strip_prefix("http://")),
    }
    .ok_or_else(|| format!("destination.URI {uri:?} must start with http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = authority.rsplit_once(':').ok_or_else(|| format!("destination.URI {uri:?} has no port"))?;
    if !SANDBOX_HOSTS.iter().any(|h| host.eq_ignore_ascii_case(h)) {
        return Err(format!("destination.URI {uri:?} must use the host {SANDBOX_HOST} (or sandbox), not {host:?}"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("destination.URI {uri:?} has an invalid port {port:?}"))?;
    if port == RESERVED_PORT {
        return Err(format!(
            "destination.URI {uri:?} uses port {RESERVED_PORT}, which is reserved for the Runtime API"
        ));
    }
    Ok((port, path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> SubscribeRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn applies_defaults() {
        let s = req(r#"{"schemaVersion":"2022-12-13","types":["platform","function"],
            "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080/lambda"}}"#)
        .validate(Api::Telemetry)
        .unwrap();
        assert_eq!((s.max_items, s.max_bytes, s.timeout_ms), (10_000, 262_144, 1_000));
        assert_eq!((s.port, s.path.as_str()), (8080, "/lambda"));
        assert!(s.structured_logs());
        let l =
            req(r#"{"types":["platform"],"destination":{"protocol":"TCP","URI":"http://sandbox.localdomain:4243"}}"#)
                .validate(Api::Logs)
                .unwrap();
        assert_eq!(l.schema_version, "2020-08-15");
        assert_eq!((l.protocol, l.path.as_str()), (Protocol::Tcp, "/"));
        assert!(!l.structured_logs());
    }

    #[test]
    fn rejects_what_lambda_rejects() {
        let cases = [
            (
                r#"{"types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080"}}"#,
                "schemaVersion",
            ),
            (
                r#"{"schemaVersion":"2021-01-01","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080"}}"#,
                "not supported",
            ),
            (
                r#"{"schemaVersion":"2022-12-13","types":[],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080"}}"#,
                "types",
            ),
            (
                r#"{"schemaVersion":"2022-12-13","types":["metrics"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080"}}"#,
                "metrics",
            ),
            (
                r#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain"}}"#,
                "no port",
            ),
            (
                r#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://example.com:8080"}}"#,
                "host",
            ),
            (
                r#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:9001"}}"#,
                "reserved",
            ),
            (
                r#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"UDP","URI":"http://sandbox.localdomain:8080"}}"#,
                "protocol",
            ),
            (r#"{"schemaVersion":"2022-12-13","types":["platform"]}"#, "destination"),
            (
                r#"{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":999},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080"}}"#,
                "maxItems",
            ),
            (
                r#"{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxBytes":2000000},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080"}}"#,
                "maxBytes",
            ),
            (
                r#"{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"timeoutMs":24},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080"}}"#,
                "timeoutMs",
            ),
        ];
        for (json, needle) in cases {
            let err = req(json).validate(Api::Telemetry).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn both_sandbox_hosts_are_accepted_and_nothing_else() {
        let with = |uri: &str| {
            req(&format!(
                r#"{{"schemaVersion":"2022-12-13","types":["platform"],"destination":{{"protocol":"HTTP","URI":"{uri}"}}}}"#
            ))
            .validate(Api::Telemetry)
        };
        for ok in ["http://sandbox:4243", "http://SANDBOX:4243/x", "http://sandbox.localdomain:4243"] {
            assert_eq!(with(ok).map(|s| s.port), Ok(4243), "{ok}");
        }
        for bad in
            ["http://localhost:4243", "http://127.0.0.1:4243", "http://sandboxx:4243", "http://sandbox.evil:4243"]
        {
            assert!(with(bad).unwrap_err().contains("host"), "{bad}");
        }
        let logs = req(r#"{"types":["platform"],"destination":{"protocol":"TCP","URI":"http://sandbox:4243"}}"#);
        assert_eq!(logs.validate(Api::Logs).map(|s| s.protocol), Ok(Protocol::Tcp));
    }

    #[test]
    fn control_characters_in_the_uri_are_refused() {
        // JSON escapes: the parsed URI holds the control characters themselves.
        let uris = [
            r"http://sandbox:4243/a\r\nX-Injected: 1",
            r"http://sandbox:4243/a\nb",
            r"http://sandbox:4243/\u0000",
            r"http://sandbox:4243/\t",
        ];
        for uri in uris {
            let json = format!(
                r#"{{"schemaVersion":"2022-12-13","types":["platform"],"destination":{{"protocol":"HTTP","URI":"{uri}"}}}}"#
            );
            let err = req(&json).validate(Api::Telemetry).unwrap_err();
            assert!(err.contains("control character"), "{uri}: {err}");
        }
    }

    #[test]
    fn buffering_bounds_are_inclusive() {
        let s = req(r#"{"schemaVersion":"2022-07-01","types":["platform"],
            "buffering":{"maxItems":1000,"maxBytes":1048576,"timeoutMs":25},
            "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1"}}"#)
        .validate(Api::Telemetry)
        .unwrap();
        assert_eq!((s.max_items, s.max_bytes, s.timeout_ms), (1000, 1_048_576, 25));
    }
}
