//! sink::otlp::config: the `otlp` sink's settings, their loading and their
//! `check-config` lines. Pure, but for [`OtlpConfig::check_files`] (the TLS files).
//!
//! Every exporter setting of the OpenTelemetry specification (`ENDPOINT`, `HEADERS`,
//! `PROTOCOL`, `COMPRESSION`, `TIMEOUT`, `CERTIFICATE`, `CLIENT_CERTIFICATE`,
//! `CLIENT_KEY`) is read per signal, from the first of four names that is set:
//! `TANDEM_OTLP_<SIGNAL>_<X>`, `TANDEM_OTLP_<X>`, `OTEL_EXPORTER_OTLP_<SIGNAL>_<X>`,
//! `OTEL_EXPORTER_OTLP_<X>`. The `TANDEM_OTLP_*` names come first because Lambda gives
//! the function's environment to extensions: the function's SDK reads `OTEL_*` (and must
//! keep exporting to tandem's receiver), the sink reads its own. Headers merge a family's
//! general list with its per-signal one. A per-signal endpoint is used as is; a general
//! one gets `/v1/<signal>` appended to its path, before any query string.

use super::encode::{Protocol, Signal};
use super::metrics::Temporality;
use crate::config::load::Loader;
use crate::config::ReceiverConfig;
use crate::sink::transport::tls::{TlsFile, TlsFiles};
use crate::sink::transport::url::{redact_headers, redact_url, Endpoint};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// The OTLP base URL when no endpoint is set (localhost only).
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://127.0.0.1:4318";
/// The same for the `grpc` protocol (the specification's default port for it).
pub const DEFAULT_OTLP_GRPC_ENDPOINT: &str = "http://127.0.0.1:4317";

/// The two families of names, the sink's own first.
const FAMILIES: [&str; 2] = ["TANDEM_OTLP_", "OTEL_EXPORTER_OTLP_"];

/// The specification's per-signal settings, as read here.
const PER_SIGNAL: [&str; 8] =
    ["ENDPOINT", "HEADERS", "PROTOCOL", "COMPRESSION", "TIMEOUT", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"];

/// `OTEL_EXPORTER_OTLP_*` settings of the specification (or of SDKs) tandem does not
/// support: reported when set, never silently ignored.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("OTEL_EXPORTER_OTLP_INSECURE", "gRPC's insecure flag: the endpoint's scheme (http:// or https://) decides"),
    ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "gRPC's insecure flag: the endpoint's scheme (http:// or https://) decides"),
    (
        "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
        "gRPC's insecure flag: the endpoint's scheme (http:// or https://) decides",
    ),
    ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "gRPC's insecure flag: the endpoint's scheme (http:// or https://) decides"),
    ("OTEL_EXPORTER_OTLP_SPAN_INSECURE", "gRPC's insecure flag: the endpoint's scheme (http:// or https://) decides"),
    ("OTEL_EXPORTER_OTLP_METRIC_INSECURE", "gRPC's insecure flag: the endpoint's scheme (http:// or https://) decides"),
    (
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
        "tandem exports no histograms of its own; received ones are forwarded as they are",
    ),
];

/// The per-signal names ([`PER_SIGNAL`] in both families): settings, though not listed
/// one by one in the settings table (their general form describes them).
pub fn per_signal_settings() -> Vec<String> {
    let mut names = Vec::new();
    for family in FAMILIES {
        for signal in Signal::ALL {
            for x in PER_SIGNAL {
                names.push(format!("{family}{}_{x}", signal.as_str().to_ascii_uppercase()));
            }
        }
    }
    names
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// One signal's destination and how to send there.
pub struct OtlpSignalConfig {
    /// Full URL of the signal's export endpoint.
    pub endpoint: String,
    /// The variable the endpoint came from (`None`: the default).
    pub endpoint_from: Option<String>,
    /// Request headers (a family's general ones merged with the signal's own).
    pub headers: Vec<(String, String)>,
    /// `…_PROTOCOL`.
    pub protocol: Protocol,
    /// `…_COMPRESSION=gzip`.
    pub gzip: bool,
    /// `…_TIMEOUT`: per request.
    pub timeout: Duration,
    /// `…_CERTIFICATE`, `…_CLIENT_CERTIFICATE`, `…_CLIENT_KEY` (with the variables they
    /// came from, for messages).
    pub tls: TlsFiles,
    tls_from: [Option<String>; 3],
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// The `otlp` sink's settings.
pub struct OtlpConfig {
    /// Where log records go.
    pub logs: OtlpSignalConfig,
    /// Where metrics go.
    pub metrics: OtlpSignalConfig,
    /// Where spans go.
    pub traces: OtlpSignalConfig,
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
    pub temporality: Temporality,
}

/// Reads one signal's setting `x` from the first of its four names that is set.
fn pick(l: &Loader<'_>, signal: Signal, x: &str) -> Option<(String, String)> {
    let upper = signal.as_str().to_ascii_uppercase();
    FAMILIES
        .iter()
        .flat_map(|f| [format!("{f}{upper}_{x}"), format!("{f}{x}")])
        .find_map(|key| l.get(&key).map(|v| (key, v)))
}

/// `base` (`scheme://host[:port][/path][?query]`) with `path` appended to its path, the
/// query kept after it.
pub fn signal_url(base: &str, path: &str) -> String {
    let (head, query) = match base.find('?') {
        Some(i) => base.split_at(i),
        None => (base, ""),
    };
    format!("{}{path}{query}", head.trim_end_matches('/'))
}

impl OtlpSignalConfig {
    fn load(l: &mut Loader<'_>, signal: Signal) -> OtlpSignalConfig {
        let upper = signal.as_str().to_ascii_uppercase();
        let protocol = match pick(l, signal, "PROTOCOL") {
            None => Protocol::HttpProtobuf,
            Some((key, v)) => parse_protocol(l, &key, &v),
        };
        // Endpoint: a per-signal one as is, a general one with the signal's path (gRPC
        // uses only the origin: its path is the service's).
        let base = if protocol == Protocol::Grpc { DEFAULT_OTLP_GRPC_ENDPOINT } else { DEFAULT_OTLP_ENDPOINT };
        let default = signal_url(base, signal.path());
        let mut endpoint = (default.clone(), None);
        for family in FAMILIES {
            let own = format!("{family}{upper}_ENDPOINT");
            let general = format!("{family}ENDPOINT");
            if l.get(&own).is_some() {
                if let Some(url) = l.url(&own, &format!("using {}", redact_url(&default))) {
                    endpoint = (url, Some(own));
                }
                break;
            }
            if l.get(&general).is_some() {
                if let Some(url) = l.url(&general, &format!("using {}", redact_url(base))) {
                    endpoint = (signal_url(&url, signal.path()), Some(general));
                }
                break;
            }
        }
        // Headers: the first family with any, its general list merged with the signal's.
        let mut headers = Vec::new();
        for family in FAMILIES {
            let (general, own) = (format!("{family}HEADERS"), format!("{family}{upper}_HEADERS"));
            if l.get(&general).is_none() && l.get(&own).is_none() {
                continue;
            }
            headers = l.headers(&general);
            for (k, v) in l.headers(&own) {
                headers.retain(|(n, _): &(String, String)| !n.eq_ignore_ascii_case(&k));
                headers.push((k, v));
            }
            break;
        }
        let gzip = match pick(l, signal, "COMPRESSION") {
            None => false,
            Some((key, v)) => match v.trim().to_ascii_lowercase().as_str() {
                "gzip" => true,
                "none" => false,
                _ => {
                    l.problem(&key, format!("{v:?} is not gzip or none; using none"));
                    false
                }
            },
        };
        let timeout = match pick(l, signal, "TIMEOUT") {
            None => Duration::from_millis(10_000),
            Some((key, _)) => l.millis(&key, 10_000, 1, 600_000),
        };
        let mut tls = TlsFiles::default();
        let mut tls_from = [None, None, None];
        for (i, (x, slot)) in [
            ("CERTIFICATE", &mut tls.ca),
            ("CLIENT_CERTIFICATE", &mut tls.client_cert),
            ("CLIENT_KEY", &mut tls.client_key),
        ]
        .into_iter()
        .enumerate()
        {
            if let Some((key, v)) = pick(l, signal, x) {
                *slot = Some(PathBuf::from(v.trim()));
                tls_from[i] = Some(key);
            }
        }
        OtlpSignalConfig {
            endpoint: endpoint.0,
            endpoint_from: endpoint.1,
            headers,
            protocol,
            gzip,
            timeout,
            tls,
            tls_from,
        }
    }
}

/// `http/protobuf`, `http/json` or `grpc`; anything else is reported.
fn parse_protocol(l: &mut Loader<'_>, key: &str, v: &str) -> Protocol {
    match v.trim().to_ascii_lowercase().as_str() {
        "http/protobuf" => Protocol::HttpProtobuf,
        "http/json" => Protocol::HttpJson,
        "grpc" => Protocol::Grpc,
        _ => {
            l.problem(key, format!("{v:?} is not http/protobuf, http/json or grpc; using http/protobuf"));
            Protocol::HttpProtobuf
        }
    }
}

/// Hosts that reach tandem's own receiver (bound on 127.0.0.1): Lambda's sandbox names
/// are 127.0.0.1 in its /etc/hosts.
fn is_local_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1" | "0.0.0.0" | "sandbox" | "sandbox.localdomain")
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

    fn signal_mut(&mut self, s: Signal) -> &mut OtlpSignalConfig {
        match s {
            Signal::Logs => &mut self.logs,
            Signal::Metrics => &mut self.metrics,
            Signal::Traces => &mut self.traces,
        }
    }

    pub(crate) fn load(l: &mut Loader<'_>) -> OtlpConfig {
        for (name, why) in UNSUPPORTED {
            if l.get(name).is_some() {
                l.problem(name, format!("not supported by tandem ({why}); ignored"));
            }
        }
        let (logs, metrics, traces) = (
            OtlpSignalConfig::load(l, Signal::Logs),
            OtlpSignalConfig::load(l, Signal::Metrics),
            OtlpSignalConfig::load(l, Signal::Traces),
        );
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
        OtlpConfig { temporality, logs, metrics, traces }
    }

    /// Reads the TLS files each signal names (the one file access of the
    /// configuration besides `TANDEM_CONFIG`); a file that cannot be used is reported
    /// and unset, so the sink runs as if it were not configured (the webpki roots
    /// alone, no client certificate) and the problem is said at start, not at the first
    /// export. Each variable is reported once.
    pub fn check_files(&mut self) -> Vec<crate::config::Problem> {
        let mut problems: Vec<crate::config::Problem> = Vec::new();
        for s in Signal::ALL {
            let c = self.signal_mut(s);
            for (which, why) in c.tls.check() {
                let i = match which {
                    TlsFile::Ca => 0,
                    TlsFile::ClientCert => 1,
                    TlsFile::ClientKey => 2,
                };
                let key = c.tls_from[i].clone().unwrap_or_default();
                let consequence = match which {
                    TlsFile::Ca => "the webpki roots alone are trusted",
                    TlsFile::ClientCert | TlsFile::ClientKey => "no client certificate is presented",
                };
                match which {
                    TlsFile::Ca => c.tls.ca = None,
                    TlsFile::ClientCert | TlsFile::ClientKey => {
                        (c.tls.client_cert, c.tls.client_key) = (None, None);
                    }
                }
                if !problems.iter().any(|p| p.key == key) {
                    problems.push(crate::config::Problem { key, message: format!("{why}; {consequence}") });
                }
            }
        }
        problems
    }

    /// Why the sink would send to tandem's own receiver (a loop), if it would: an
    /// endpoint on a local host at one of the receiver's ports, the receiver being on.
    pub fn loops_into(&self, receiver: &ReceiverConfig) -> Option<(String, String)> {
        if !receiver.enabled() {
            return None;
        }
        Signal::ALL.into_iter().find_map(|s| {
            let c = self.signal(s);
            let e = Endpoint::parse(&c.endpoint).ok()?;
            (is_local_host(&e.host) && receiver.listens_on(e.port)).then(|| {
                let key = c.endpoint_from.clone().unwrap_or_else(|| "TANDEM_OTLP_ENDPOINT".into());
                let message = format!(
                    "the otlp sink's {} endpoint {} is tandem's own OTLP receiver (a loop); set TANDEM_OTLP_ENDPOINT \
                     to the collector (the function's SDK keeps OTEL_EXPORTER_OTLP_*), or TANDEM_OTLP_RECEIVER=off; \
                     the otlp sink is dropped",
                    s.as_str(),
                    redact_url(&c.endpoint)
                );
                (key, message)
            })
        })
    }

    pub(crate) fn describe(&self, s: &mut String) {
        // Writing to a String cannot fail.
        let _ = writeln!(s, "  otlp: metrics temporality {}", self.temporality.as_str());
        for signal in Signal::ALL {
            let c = self.signal(signal);
            let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
            let tls = match (path(&c.tls.ca), path(&c.tls.client_cert)) {
                (None, None) => String::new(),
                (ca, cert) => format!(
                    ", tls: {}{}",
                    ca.map_or("webpki roots".into(), |ca| format!("webpki roots + CA {ca}")),
                    cert.map_or(String::new(), |c| format!(", client certificate {c}"))
                ),
            };
            let _ = writeln!(
                s,
                "    {}: {} {}, gzip {}, timeout {} ms (headers: {}){tls}",
                signal.as_str(),
                c.protocol.as_str(),
                redact_url(&c.endpoint),
                if c.gzip { "on" } else { "off" },
                c.timeout.as_millis(),
                redact_headers(&c.headers)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> (OtlpConfig, Vec<String>) {
        crate::config::load::load_pairs(pairs, OtlpConfig::load)
    }

    #[test]
    fn a_general_endpoint_gets_the_signal_path_before_its_query() {
        assert_eq!(signal_url("http://h:4318/base?k=v", "/v1/logs"), "http://h:4318/base/v1/logs?k=v");
        assert_eq!(signal_url("http://h:4318/", "/v1/traces"), "http://h:4318/v1/traces");
        assert_eq!(signal_url("https://h?a=1&b=2", "/v1/metrics"), "https://h/v1/metrics?a=1&b=2");
        let (c, p) = load(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:4318/base?k=v")]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.logs.endpoint, "http://h:4318/base/v1/logs?k=v");
        assert_eq!(c.traces.endpoint, "http://h:4318/base/v1/traces?k=v");
    }

    #[test]
    fn per_signal_settings_win_over_general_ones() {
        let (c, p) = load(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4318/custom?x=1"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "30000"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "B=3"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
            ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", "/logs.crt"),
            ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "/logs.key"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.logs.endpoint, "http://general:4318/v1/logs");
        assert_eq!(c.traces.endpoint, "http://tempo:4318/custom?x=1", "a per-signal endpoint is used as is");
        assert_eq!(
            (c.logs.protocol, c.metrics.protocol, c.traces.protocol),
            (Protocol::HttpJson, Protocol::HttpProtobuf, Protocol::HttpJson)
        );
        assert_eq!((c.logs.gzip, c.metrics.gzip, c.traces.gzip), (false, true, true));
        assert_eq!(c.metrics.timeout, Duration::from_secs(2));
        assert_eq!(c.traces.timeout, Duration::from_secs(30));
        assert_eq!(c.metrics.headers, vec![("a".into(), "1".into()), ("B".into(), "3".into())]);
        assert_eq!(c.logs.headers, vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(c.metrics.tls, TlsFiles { ca: Some("/ca.pem".into()), ..TlsFiles::default() });
        assert_eq!(
            c.logs.tls,
            TlsFiles {
                ca: Some("/ca.pem".into()),
                client_cert: Some("/logs.crt".into()),
                client_key: Some("/logs.key".into())
            }
        );
    }

    #[test]
    fn tandem_otlp_names_win_over_the_functions_otel_ones() {
        let (c, p) = load(&[
            // What the function's SDK reads: tandem's receiver.
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "sdk=1"),
            // What the sink reads.
            ("TANDEM_OTLP_ENDPOINT", "https://collector.example.com/otlp"),
            ("TANDEM_OTLP_LOGS_ENDPOINT", "https://logs.example.com/in"),
            ("TANDEM_OTLP_HEADERS", "api-key=k"),
            ("TANDEM_OTLP_COMPRESSION", "gzip"),
            ("TANDEM_OTLP_TRACES_TIMEOUT", "1500"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.traces.endpoint, "https://collector.example.com/otlp/v1/traces");
        assert_eq!(c.traces.endpoint_from.as_deref(), Some("TANDEM_OTLP_ENDPOINT"));
        assert_eq!(c.logs.endpoint, "https://logs.example.com/in");
        assert_eq!(c.metrics.headers, vec![("api-key".into(), "k".into())], "the SDK's headers are not mixed in");
        assert!(c.logs.gzip && c.traces.gzip);
        assert_eq!(c.traces.protocol, Protocol::HttpJson, "no TANDEM_OTLP_PROTOCOL: the OTEL one applies");
        assert_eq!(c.traces.timeout, Duration::from_millis(1500));
        assert_eq!(c.logs.timeout, Duration::from_secs(10));
    }

    #[test]
    fn grpc_is_a_protocol_with_its_own_default_port() {
        let (c, p) =
            load(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json")]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!((c.traces.protocol, c.logs.protocol), (Protocol::Grpc, Protocol::HttpJson));
        assert_eq!(c.traces.endpoint, "http://127.0.0.1:4317/v1/traces");
        assert_eq!(c.logs.endpoint, "http://127.0.0.1:4318/v1/logs");
        let (c, _) = load(&[("TANDEM_OTLP_PROTOCOL", "GRPC"), ("TANDEM_OTLP_ENDPOINT", "http://collector:4317")]);
        assert_eq!(
            (c.metrics.protocol, c.metrics.endpoint.as_str()),
            (Protocol::Grpc, "http://collector:4317/v1/metrics")
        );
        assert!(c.loops_into(&ReceiverConfig::default()).is_none());
    }

    #[test]
    fn bad_and_unsupported_values_are_reported_under_their_own_name() {
        let (c, p) = load(&[
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "thrift"),
            ("TANDEM_OTLP_LOGS_COMPRESSION", "zstd"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
            ("TANDEM_OTLP_TRACES_ENDPOINT", "collector:4317"),
        ]);
        assert_eq!(
            p,
            [
                "OTEL_EXPORTER_OTLP_INSECURE: not supported by tandem (gRPC's insecure flag: the endpoint's scheme \
                 (http:// or https://) decides); ignored",
                "TANDEM_OTLP_LOGS_COMPRESSION: \"zstd\" is not gzip or none; using none",
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: \"thrift\" is not http/protobuf, http/json or grpc; using \
                 http/protobuf",
                "TANDEM_OTLP_TRACES_ENDPOINT: \"collector:4317\" is not an http:// or https:// URL; using \
                 http://127.0.0.1:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: \"soon\" is not a whole number of milliseconds between 1 and \
                 600000; using 10000",
            ]
        );
        assert_eq!(c.traces.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(c.metrics.protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn an_endpoint_at_the_receiver_is_a_loop() {
        let on = ReceiverConfig::default();
        let (c, _) = load(&[]);
        let (key, why) = c.loops_into(&on).expect("the default endpoint is the receiver's port");
        assert_eq!(key, "TANDEM_OTLP_ENDPOINT");
        assert!(why.contains("logs endpoint http://127.0.0.1:4318/v1/logs is tandem's own OTLP receiver"), "{why}");
        assert!(c.loops_into(&ReceiverConfig { http: None, grpc: None }).is_none());
        for url in
            ["http://localhost:4317", "http://sandbox.localdomain:4318", "http://[::1]:4318", "http://SANDBOX:4317"]
        {
            let (c, _) = load(&[("TANDEM_OTLP_TRACES_ENDPOINT", url), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:1")]);
            let (key, _) = c.loops_into(&on).unwrap_or_else(|| panic!("{url} loops"));
            assert_eq!(key, "TANDEM_OTLP_TRACES_ENDPOINT");
        }
        let moved = ReceiverConfig { http: Some(9318), grpc: None };
        let (c, _) = load(&[("TANDEM_OTLP_ENDPOINT", "http://127.0.0.1:9318")]);
        assert!(c.loops_into(&moved).is_some());
        let (c, _) = load(&[("TANDEM_OTLP_ENDPOINT", "http://127.0.0.1:4317")]);
        assert!(c.loops_into(&moved).is_none(), "4317 is free when gRPC is off");
        let (c, _) = load(&[("TANDEM_OTLP_ENDPOINT", "http://collector:4318")]);
        assert!(c.loops_into(&on).is_none());
    }

    #[test]
    fn unusable_tls_files_are_reported_once_and_unset() {
        let (mut c, _) = load(&[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
            ("TANDEM_OTLP_TRACES_CLIENT_CERTIFICATE", "/nonexistent/c.pem"),
        ]);
        let p: Vec<String> = c.check_files().iter().map(ToString::to_string).collect();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE: /nonexistent/ca.pem: cannot read"), "{p:?}");
        assert!(p[0].ends_with("; the webpki roots alone are trusted"), "{p:?}");
        assert_eq!(
            p[1],
            "TANDEM_OTLP_TRACES_CLIENT_CERTIFICATE: is set without a client key; no client certificate is presented"
        );
        assert!(Signal::ALL.iter().all(|s| c.signal(*s).tls.is_default()));
        assert!(c.check_files().is_empty());
    }

    #[test]
    fn describe_shows_each_signal_without_secrets() {
        let (c, _) = load(&[
            ("TANDEM_OTLP_ENDPOINT", "https://c.example.com/otlp?token=SECRET"),
            ("TANDEM_OTLP_HEADERS", "api-key=SECRET"),
            ("TANDEM_OTLP_CERTIFICATE", "/opt/ca.pem"),
        ]);
        let mut s = String::new();
        c.describe(&mut s);
        assert!(!s.contains("SECRET"), "{s}");
        assert!(
            s.contains(
                "    traces: http/protobuf https://c.example.com/otlp/v1/traces?***, gzip off, timeout 10000 ms \
                 (headers: api-key=***), tls: webpki roots + CA /opt/ca.pem"
            ),
            "{s}"
        );
        assert_eq!(per_signal_settings().len(), 48);
        assert!(per_signal_settings().contains(&"TANDEM_OTLP_METRICS_CLIENT_KEY".to_owned()));
    }
}
