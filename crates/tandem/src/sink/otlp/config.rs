//! sink::otlp::config: the `otlp` sink's settings (`OTEL_EXPORTER_OTLP_*`: endpoints
//! per signal, headers, protocol, compression, timeout), their loading and their
//! `check-config` lines. Pure.

use super::encode::{Protocol, Signal};
use super::metrics::Temporality;
use crate::config::load::Loader;
use crate::sink::transport::url::{redact_headers, redact_url};
use std::fmt::Write as _;
use std::time::Duration;

/// The OTLP base URL when `OTEL_EXPORTER_OTLP_ENDPOINT` is not set (localhost only).
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://127.0.0.1:4318";

#[derive(Debug, Clone, PartialEq, Eq)]
/// One signal's destination.
pub struct OtlpSignalConfig {
    /// Full URL of the signal's export endpoint.
    pub endpoint: String,
    /// Request headers (the general ones merged with the signal's own).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// The `otlp` sink's settings (`OTEL_EXPORTER_OTLP_*`).
pub struct OtlpConfig {
    /// Where log records go.
    pub logs: OtlpSignalConfig,
    /// Where metrics go.
    pub metrics: OtlpSignalConfig,
    /// Where spans go.
    pub traces: OtlpSignalConfig,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: Protocol,
    /// `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`.
    pub gzip: bool,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`: per request.
    pub timeout: Duration,
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
    pub temporality: Temporality,
}

impl OtlpConfig {
    /// The destination of `s`.
    pub fn signal(&self, s: Signal) -> &OtlpSignalConfig {
        match s {
            Signal::Logs => &self.logs,
            Signal::Metrics => &self.metrics,
            Signal::Traces => &self.traces,
        }
    }

    pub(crate) fn load(l: &mut Loader<'_>) -> OtlpConfig {
        let base = l
            .url("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("using {DEFAULT_OTLP_ENDPOINT}"))
            .unwrap_or_else(|| DEFAULT_OTLP_ENDPOINT.to_owned());
        let general = l.headers("OTEL_EXPORTER_OTLP_HEADERS");
        let mut signal = |s: Signal| {
            let upper = s.as_str().to_ascii_uppercase();
            let default = format!("{}{}", base.trim_end_matches('/'), s.path());
            let key = format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT");
            let endpoint = l.url(&key, &format!("using {}", redact_url(&default))).unwrap_or(default);
            let mut headers = general.clone();
            for (k, v) in l.headers(&format!("OTEL_EXPORTER_OTLP_{upper}_HEADERS")) {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&k));
                headers.push((k, v));
            }
            OtlpSignalConfig { endpoint, headers }
        };
        let (logs, metrics, traces) = (signal(Signal::Logs), signal(Signal::Metrics), signal(Signal::Traces));
        let protocol = match l.get("OTEL_EXPORTER_OTLP_PROTOCOL") {
            None => Protocol::HttpProtobuf,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "http/protobuf" => Protocol::HttpProtobuf,
                "http/json" => Protocol::HttpJson,
                "grpc" => {
                    l.problem(
                        "OTEL_EXPORTER_OTLP_PROTOCOL",
                        "grpc is not supported, use http/protobuf (port 4318); using http/protobuf",
                    );
                    Protocol::HttpProtobuf
                }
                _ => {
                    l.problem(
                        "OTEL_EXPORTER_OTLP_PROTOCOL",
                        format!("{v:?} is not http/protobuf or http/json; using http/protobuf"),
                    );
                    Protocol::HttpProtobuf
                }
            },
        };
        let gzip = match l.get("OTEL_EXPORTER_OTLP_COMPRESSION") {
            None => false,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "gzip" => true,
                "none" => false,
                _ => {
                    l.problem("OTEL_EXPORTER_OTLP_COMPRESSION", format!("{v:?} is not gzip or none; using none"));
                    false
                }
            },
        };
        let temporality = match l.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE") {
            None => Temporality::default(),
            Some(v) => Temporality::parse(&v).unwrap_or_else(|| {
                l.problem(
                    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                    format!("{v:?} is not cumulative, delta or lowmemory; using delta"),
                );
                Temporality::default()
            }),
        };
        OtlpConfig {
            temporality,
            logs,
            metrics,
            traces,
            protocol,
            gzip,
            timeout: l.millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, 1, 600_000),
        }
    }

    pub(crate) fn describe(&self, s: &mut String) {
        // Writing to a String cannot fail.
        let _ = writeln!(
            s,
            "  otlp: {}, gzip {}, timeout {} ms, metrics temporality {}",
            self.protocol.as_str(),
            if self.gzip { "on" } else { "off" },
            self.timeout.as_millis(),
            self.temporality.as_str()
        );
        for signal in Signal::ALL {
            let c = self.signal(signal);
            let _ = writeln!(
                s,
                "    {}: {} (headers: {})",
                signal.as_str(),
                redact_url(&c.endpoint),
                redact_headers(&c.headers)
            );
        }
    }
}
