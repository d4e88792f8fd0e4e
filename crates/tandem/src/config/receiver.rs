//! config::receiver: the OTLP receiver's settings (`TANDEM_OTLP_RECEIVER`,
//! `TANDEM_OTLP_RECEIVER_HTTP_PORT`, `TANDEM_OTLP_RECEIVER_GRPC_PORT`), their loading and
//! their `check-config` line. Pure: which listeners to bind, never the binding.

use super::load::Loader;
use std::fmt::Write as _;

/// The receiver's OTLP/HTTP port when `TANDEM_OTLP_RECEIVER_HTTP_PORT` is not set (the
/// OpenTelemetry SDKs' default destination).
pub const DEFAULT_HTTP_PORT: u16 = 4318;
/// The receiver's OTLP/gRPC port when `TANDEM_OTLP_RECEIVER_GRPC_PORT` is not set.
pub const DEFAULT_GRPC_PORT: u16 = 4317;

/// Which receiver listeners are on, and their ports on 127.0.0.1 (`None`: off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// OTLP/HTTP (`/v1/traces`, `/v1/metrics`, `/v1/logs`).
    pub http: Option<u16>,
    /// OTLP/gRPC (the three `Export` services).
    pub grpc: Option<u16>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig { http: Some(DEFAULT_HTTP_PORT), grpc: Some(DEFAULT_GRPC_PORT) }
    }
}

impl ReceiverConfig {
    /// Whether any listener is on.
    pub fn enabled(&self) -> bool {
        self.http.is_some() || self.grpc.is_some()
    }

    /// Whether `port` is one of the receiver's listening ports (a sink sending there
    /// would send to tandem itself).
    pub fn listens_on(&self, port: u16) -> bool {
        self.http == Some(port) || self.grpc == Some(port)
    }

    pub(crate) fn load(l: &mut Loader<'_>) -> ReceiverConfig {
        const KEY: &str = "TANDEM_OTLP_RECEIVER";
        let (mut http, mut grpc) = (true, true);
        if let Some(v) = l.get(KEY) {
            let words: Vec<String> =
                v.split(',').map(|w| w.trim().to_ascii_lowercase()).filter(|w| !w.is_empty()).collect();
            if words.iter().any(|w| w == "off" || w == "none") {
                if words.len() > 1 {
                    l.problem(KEY, format!("{v:?} mixes off with listeners; using off"));
                }
                (http, grpc) = (false, false);
            } else {
                (http, grpc) = (false, false);
                for w in &words {
                    match w.as_str() {
                        "http" => http = true,
                        "grpc" => grpc = true,
                        other => l.problem(KEY, format!("unknown listener {other:?} (http, grpc, off); skipped")),
                    }
                }
                if !http && !grpc {
                    l.problem(KEY, "no valid listener; using http,grpc");
                    (http, grpc) = (true, true);
                }
            }
        }
        let port = |l: &mut Loader<'_>, key: &str, default: u16| {
            l.number(key, u64::from(default), 1, u64::from(u16::MAX), "a port") as u16
        };
        let http_port = port(l, "TANDEM_OTLP_RECEIVER_HTTP_PORT", DEFAULT_HTTP_PORT);
        let mut grpc_port = port(l, "TANDEM_OTLP_RECEIVER_GRPC_PORT", DEFAULT_GRPC_PORT);
        if http && grpc && http_port == grpc_port {
            let fallback = if http_port == DEFAULT_GRPC_PORT { DEFAULT_HTTP_PORT } else { DEFAULT_GRPC_PORT };
            l.problem(
                "TANDEM_OTLP_RECEIVER_GRPC_PORT",
                format!("{grpc_port} is also the HTTP receiver's port; using {fallback}"),
            );
            grpc_port = fallback;
        }
        ReceiverConfig { http: http.then_some(http_port), grpc: grpc.then_some(grpc_port) }
    }

    pub(crate) fn describe(&self, s: &mut String) {
        let on = |p: Option<u16>| p.map_or("off".to_owned(), |p| format!("127.0.0.1:{p}"));
        // Writing to a String cannot fail.
        let _ = writeln!(s, "  otlp receiver: http {}, grpc {}", on(self.http), on(self.grpc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> (ReceiverConfig, Vec<String>) {
        crate::config::load::load_pairs(pairs, ReceiverConfig::load)
    }

    #[test]
    fn defaults_are_both_listeners_on_the_sdk_ports() {
        let (c, problems) = load(&[]);
        assert_eq!(c, ReceiverConfig { http: Some(4318), grpc: Some(4317) });
        assert!(problems.is_empty());
        assert!(c.listens_on(4318) && c.listens_on(4317) && !c.listens_on(4319));
    }

    #[test]
    fn off_and_single_listeners() {
        let (c, p) = load(&[("TANDEM_OTLP_RECEIVER", "off")]);
        assert_eq!(c, ReceiverConfig { http: None, grpc: None });
        assert!(!c.enabled() && p.is_empty());
        let (c, p) = load(&[("TANDEM_OTLP_RECEIVER", " HTTP "), ("TANDEM_OTLP_RECEIVER_HTTP_PORT", "9000")]);
        assert_eq!(c, ReceiverConfig { http: Some(9000), grpc: None });
        assert!(p.is_empty());
        let (c, _) = load(&[("TANDEM_OTLP_RECEIVER", "grpc"), ("TANDEM_OTLP_RECEIVER_GRPC_PORT", "9001")]);
        assert_eq!(c, ReceiverConfig { http: None, grpc: Some(9001) });
    }

    #[test]
    fn bad_values_are_reported_and_fall_back() {
        let (c, p) = load(&[("TANDEM_OTLP_RECEIVER", "http,zipkin")]);
        assert_eq!(c, ReceiverConfig { http: Some(4318), grpc: None });
        assert!(p[0].contains("zipkin"), "{p:?}");
        let (c, p) = load(&[("TANDEM_OTLP_RECEIVER", "nope")]);
        assert_eq!(c, ReceiverConfig::default());
        assert_eq!(p.len(), 2, "{p:?}");
        let (c, p) = load(&[("TANDEM_OTLP_RECEIVER_HTTP_PORT", "99999"), ("TANDEM_OTLP_RECEIVER_GRPC_PORT", "0")]);
        assert_eq!(c, ReceiverConfig::default());
        assert_eq!(p.len(), 2, "{p:?}");
        let (c, p) = load(&[("TANDEM_OTLP_RECEIVER_GRPC_PORT", "4318")]);
        assert_eq!(c, ReceiverConfig::default());
        assert!(p[0].contains("also the HTTP receiver's port"), "{p:?}");
    }

    #[test]
    fn describe_names_each_listener() {
        let mut s = String::new();
        ReceiverConfig { http: Some(4318), grpc: None }.describe(&mut s);
        assert_eq!(s, "  otlp receiver: http 127.0.0.1:4318, grpc off\n");
    }
}
