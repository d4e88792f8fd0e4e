//! Configuration: `TANDEM_*` and `OTEL_*` environment variables, over an optional TOML
//! file named by `TANDEM_CONFIG`, into one validated [`Config`].
//!
//! Owns every setting's name, default, range and meaning, and the rule that a bad value
//! never stops the extension: it is reported as one [`Problem`] line (what is wrong and
//! what is used instead) and the default applies. A broken sink (unknown name, `http`
//! without a URL) is dropped; with no sink left, `stdout` is used. Loading reads the
//! environment only through a caller-given getter and reads at most one file (the
//! `TANDEM_CONFIG` one) through a caller-given reader, so it is testable without
//! touching the process; it never does network I/O, never compiles a regex (see
//! [`Config::compile_rules`]) and never echoes a header value (they hold secrets).
//!
//! Defaults need no configuration at all and only ever point at localhost.
//!
//! # The file
//!
//! TOML. A key is the variable's name, lower case, without the `TANDEM_` prefix; a table
//! name is a prefix joined with `_`. So `TANDEM_HTTP_URL` is `http_url = "…"` at the top
//! level or `url = "…"` under `[http]`. `[otel]` holds the `OTEL_*` variables
//! (`[otel] exporter_otlp_endpoint = "…"`, `service_name = "…"`), and a full variable
//! name (`OTEL_SERVICE_NAME = "…"`) is accepted anywhere at the top level. Lists may be
//! arrays (`sinks = ["stdout", "otlp"]`), `k=v` lists may be tables
//! (`[http.headers] authorization = "Bearer …"`), rules an array of tables
//! (`[[rules]] kind = "mask"`, …). Environment variables override the file. An empty
//! variable counts as unset.

use crate::diag::level::LogLevel;
use crate::encode::emf::{check_dimension_name, EmfOptions, MAX_DIMENSIONS_PER_SET};
use crate::encode::otlp::{parse_key_values, Protocol, Resource, Signal};
use crate::flush::{FlushPolicy, Strategy};
use crate::invocation::{Arch, CorrelatorOptions, Pricing};
use crate::rules::{Rule, Rules};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tandem_wire::TelemetryType;

/// One thing wrong with the configuration and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting (`TANDEM_FLUSH`, or `TANDEM_FLUSH (from /path/file.toml)`).
    pub key: String,
    /// What is wrong and what is used instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Where records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SinkKind {
    /// CloudWatch EMF on stdout (invocation and health metrics).
    Stdout,
    /// NDJSON appended to a local file.
    File,
    /// NDJSON POSTed to an HTTP endpoint.
    Http,
    /// OTLP/HTTP to a collector.
    Otlp,
}

impl SinkKind {
    pub const ALL: [SinkKind; 4] = [SinkKind::Stdout, SinkKind::File, SinkKind::Http, SinkKind::Otlp];

    pub const fn as_str(self) -> &'static str {
        match self {
            SinkKind::Stdout => "stdout",
            SinkKind::File => "file",
            SinkKind::Http => "http",
            SinkKind::Otlp => "otlp",
        }
    }

    pub fn parse(s: &str) -> Option<SinkKind> {
        SinkKind::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Required by the `http` sink.
    pub url: Option<String>,
    pub headers: Vec<(String, String)>,
    pub gzip: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSignalConfig {
    /// Full URL of the signal's export endpoint.
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    pub logs: OtlpSignalConfig,
    pub metrics: OtlpSignalConfig,
    pub traces: OtlpSignalConfig,
    pub protocol: Protocol,
    /// `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`.
    pub gzip: bool,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`: per request.
    pub timeout: Duration,
}

impl OtlpConfig {
    pub fn signal(&self, s: Signal) -> &OtlpSignalConfig {
        match s {
            Signal::Logs => &self.logs,
            Signal::Metrics => &self.metrics,
            Signal::Traces => &self.traces,
        }
    }
}

/// Memory bound of the buffer; beyond it records go to the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    pub max_records: usize,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// 0 disables the spool.
    pub max_bytes: u64,
}

/// Per-request batching of the sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    pub max_records: usize,
    pub max_bytes: u64,
    pub max_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

/// The whole configuration. [`Config::default`] is what an unconfigured extension uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Enabled sinks, never empty, in the order given.
    pub sinks: Vec<SinkKind>,
    pub file: FileConfig,
    pub http: HttpConfig,
    pub otlp: OtlpConfig,
    /// The stdout sink's EMF settings (function name from `AWS_LAMBDA_FUNCTION_NAME`).
    pub emf: EmfOptions,
    pub flush: Strategy,
    pub flush_budget: Duration,
    pub buffer: BufferConfig,
    pub spool: SpoolConfig,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
    /// Telemetry API subscription types.
    pub log_types: Vec<TelemetryType>,
    pub rules: Vec<Rule>,
    pub arch: Arch,
    pub pricing: Pricing,
    pub log_level: LogLevel,
    /// OTel resource (FaaS/cloud attributes, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).
    pub resource: Resource,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
    pub memory_size_mb: Option<u64>,
    /// The `TANDEM_CONFIG` file, when one was read.
    pub config_file: Option<PathBuf>,
}

/// Every setting read, for the file's key check and for documentation.
pub const SETTINGS: &[(&str, &str)] = &[
    ("TANDEM_CONFIG", "path of a TOML file with these settings (environment variables win)"),
    ("TANDEM_SINKS", "comma-separated: stdout, file, http, otlp (default stdout)"),
    ("TANDEM_FILE_PATH", "file sink path (default /tmp/tandem/records.ndjson)"),
    ("TANDEM_HTTP_URL", "http sink URL (required by the http sink)"),
    ("TANDEM_HTTP_HEADERS", "http sink headers, k=v,k2=v2 (percent-encoded values)"),
    ("TANDEM_HTTP_GZIP", "gzip http sink bodies (default false)"),
    ("TANDEM_FLUSH", "adaptive (default), end, periodic,<ms>, continuous,<ms>"),
    ("TANDEM_FLUSH_BUDGET_MS", "time a flush may delay the next invoke (default 100)"),
    ("TANDEM_EMF_NAMESPACE", "EMF namespace of invocation metrics (default Tandem)"),
    ("TANDEM_EMF_HEALTH_NAMESPACE", "EMF namespace of the extension's health (default Tandem/Extension)"),
    ("TANDEM_EMF_DIMENSIONS", "extra EMF dimensions, Name=value,Name2=value2"),
    ("TANDEM_BUFFER_MAX_RECORDS", "records held in memory before spooling (default 10000)"),
    ("TANDEM_BUFFER_MAX_BYTES", "bytes held in memory before spooling (default 4MiB)"),
    ("TANDEM_SPOOL_DIR", "spool directory (default /tmp/tandem/spool)"),
    ("TANDEM_SPOOL_MAX_BYTES", "spool size bound, 0 disables (default 64MiB)"),
    ("TANDEM_BATCH_MAX_RECORDS", "records per request (default 1000)"),
    ("TANDEM_BATCH_MAX_BYTES", "bytes per request (default 1MiB)"),
    ("TANDEM_BATCH_MAX_AGE_MS", "oldest record's wait before a batch is sent (default 1000)"),
    ("TANDEM_RETRY_MAX_ATTEMPTS", "attempts per request (default 5)"),
    ("TANDEM_RETRY_BASE_MS", "first retry backoff (default 100)"),
    ("TANDEM_RETRY_MAX_MS", "largest retry backoff (default 5000)"),
    ("TANDEM_LOG_TYPES", "telemetry to subscribe: platform,function,extension (default all)"),
    ("TANDEM_RULES", "JSON list of {kind: exclude|include|mask, name, pattern, replacement}"),
    ("TANDEM_PRICE_GB_SECOND", "USD per GB-second (default by architecture)"),
    ("TANDEM_PRICE_REQUEST", "USD per request (default 0.0000002)"),
    ("TANDEM_ARCH", "x86_64 or arm64 (default: this binary's)"),
    ("TANDEM_LOG_LEVEL", "the extension's own diagnostics: off, error, warn, info, debug, trace (default info)"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTLP base URL (default http://127.0.0.1:4318)"),
    ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTLP logs URL"),
    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTLP metrics URL"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTLP traces URL"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "OTLP headers, k=v,k2=v2"),
    ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTLP logs headers (merged over the general ones)"),
    ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTLP metrics headers"),
    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTLP traces headers"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf (default) or http/json"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip or none (default none)"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "OTLP request timeout, ms (default 10000)"),
    ("OTEL_SERVICE_NAME", "service.name (default the function name)"),
    ("OTEL_RESOURCE_ATTRIBUTES", "extra resource attributes, k=v,k2=v2"),
];

pub const DEFAULT_FILE_PATH: &str = "/tmp/tandem/records.ndjson";
pub const DEFAULT_SPOOL_DIR: &str = "/tmp/tandem/spool";
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://127.0.0.1:4318";

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config::load_with(|_| None, |_| Err(io::Error::from(io::ErrorKind::NotFound))).0
    }
}

/// Where a value came from.
enum Origin {
    Env,
    File,
}

struct Loader<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: BTreeMap<String, String>,
    file_path: Option<String>,
    problems: Vec<Problem>,
}

impl Loader<'_> {
    fn raw(&self, key: &str) -> Option<(String, Origin)> {
        if let Some(v) = (self.env)(key).filter(|v| !v.trim().is_empty()) {
            return Some((v, Origin::Env));
        }
        self.file.get(key).filter(|v| !v.trim().is_empty()).map(|v| (v.clone(), Origin::File))
    }

    fn get(&self, key: &str) -> Option<String> {
        self.raw(key).map(|(v, _)| v)
    }

    fn label(&self, key: &str) -> String {
        match (self.raw(key), &self.file_path) {
            (Some((_, Origin::File)), Some(path)) => format!("{key} (from {path})"),
            _ => key.to_owned(),
        }
    }

    fn problem(&mut self, key: &str, message: impl Into<String>) {
        let key = self.label(key);
        self.problems.push(Problem { key, message: message.into() });
    }

    fn number(&mut self, key: &str, default: u64, min: u64, max: u64, what: &str) -> u64 {
        let Some(v) = self.get(key) else {
            return default;
        };
        match v.trim().replace('_', "").parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.problem(key, format!("{v:?} is not {what} between {min} and {max}; using {default}"));
                default
            }
        }
    }

    fn millis(&mut self, key: &str, default: u64, min: u64, max: u64) -> Duration {
        Duration::from_millis(self.number(key, default, min, max, "a whole number of milliseconds"))
    }

    fn bytes(&mut self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let Some(v) = self.get(key) else {
            return default;
        };
        match parse_bytes(&v) {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                self.problem(
                    key,
                    format!(
                        "{v:?} is not a size between {} and {} (bytes, or with KiB/MiB/GiB, KB/MB/GB); using {}",
                        human_bytes(min),
                        human_bytes(max),
                        human_bytes(default)
                    ),
                );
                default
            }
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        let Some(v) = self.get(key) else {
            return default;
        };
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                self.problem(key, format!("{v:?} is not a boolean (true/false); using {default}"));
                default
            }
        }
    }

    fn price(&mut self, key: &str, default: f64) -> f64 {
        let Some(v) = self.get(key) else {
            return default;
        };
        match v.trim().parse::<f64>() {
            Ok(p) if p.is_finite() && (0.0..=1.0).contains(&p) => p,
            _ => {
                self.problem(key, format!("{v:?} is not a price in USD between 0 and 1; using {default}"));
                default
            }
        }
    }

    fn absolute_path(&mut self, key: &str, default: &str) -> PathBuf {
        let Some(v) = self.get(key) else {
            return PathBuf::from(default);
        };
        let p = PathBuf::from(v.trim());
        if p.is_absolute() {
            p
        } else {
            self.problem(key, format!("{v:?} is not an absolute path; using {default}"));
            PathBuf::from(default)
        }
    }

    /// `k=v` header list; malformed entries and invalid names are reported (without
    /// their values) and skipped.
    fn headers(&mut self, key: &str) -> Vec<(String, String)> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let (pairs, problems) = parse_key_values(&v);
        for p in problems {
            self.problem(key, p);
        }
        let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            if !is_header_name(&name) {
                self.problem(key, format!("header name {name:?} is not a valid HTTP header name; skipped"));
            } else if value.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0) {
                self.problem(key, format!("header {name:?} has a line break in its value; skipped"));
            } else {
                out.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                out.push((name, value));
            }
        }
        out
    }

    /// An http(s) URL, or `None` after reporting.
    fn url(&mut self, key: &str, consequence: &str) -> Option<String> {
        let v = self.get(key)?;
        let v = v.trim().to_owned();
        match check_url(&v) {
            Ok(()) => Some(v),
            Err(why) => {
                self.problem(key, format!("{:?} {why}; {consequence}", redact_url(&v)));
                None
            }
        }
    }
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// `http://host[:port][/path]` or `https://…` with a non-empty host.
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("is not an http:// or https:// URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("has no host");
    }
    if url.bytes().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
        return Err("contains spaces or control characters");
    }
    Ok(())
}

/// The URL without credentials or query string, for messages and `describe`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    let tail = match tail.find(['?', '#']) {
        Some(i) => format!("{}?***", &tail[..i]),
        None => tail.to_owned(),
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

/// Parses `123`, `64KiB`, `4MiB`, `1GiB`, `10KB`, `5MB`, `1GB`, `4k`, `4m`, `1g`.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let t = s.trim().replace('_', "");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn human_bytes(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n % GIB == 0 => format!("{}GiB", n / GIB),
        n if n % MIB == 0 => format!("{}MiB", n / MIB),
        n if n % KIB == 0 => format!("{}KiB", n / KIB),
        n => n.to_string(),
    }
}

fn valid_namespace(ns: &str) -> Result<(), &'static str> {
    if ns.is_empty() || ns.len() > 255 {
        return Err("must be 1 to 255 characters");
    }
    if !ns.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-/#: ".contains(&c)) {
        return Err("may only hold letters, digits and . _ - / # : space");
    }
    if ns.starts_with("AWS/") {
        return Err("must not start with AWS/ (reserved for AWS)");
    }
    Ok(())
}

impl Config {
    /// Loads from the process's view of things: `get` reads a variable, and the
    /// `TANDEM_CONFIG` file (if named) is read from disk.
    pub fn load(get: impl Fn(&str) -> Option<String>) -> (Config, Vec<Problem>) {
        Config::load_with(get, |p| std::fs::read_to_string(p))
    }

    /// Loads with an explicit file reader (for tests and `check-config`).
    pub fn load_with(
        get: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&Path) -> io::Result<String>,
    ) -> (Config, Vec<Problem>) {
        let mut l = Loader { env: &get, file: BTreeMap::new(), file_path: None, problems: Vec::new() };
        let config_file = l.get("TANDEM_CONFIG").map(|p| PathBuf::from(p.trim()));
        if let Some(path) = &config_file {
            load_file(&mut l, path, &read_file);
        }
        let read = config_file.filter(|_| l.file_path.is_some());
        let config = build(&mut l, read);
        (config, l.problems)
    }

    /// Compiles [`Config::rules`] (regexes are built here, once, not at load time).
    pub fn compile_rules(&self) -> (Rules, Vec<Problem>) {
        let (rules, problems) = Rules::compile(&self.rules);
        let problems = problems.into_iter().map(|message| Problem { key: "TANDEM_RULES".into(), message }).collect();
        (rules, problems)
    }

    /// Options for [`crate::invocation::Correlator`].
    pub fn correlator_options(&self) -> CorrelatorOptions {
        CorrelatorOptions { pricing: self.pricing, memory_size_mb: self.memory_size_mb, ..CorrelatorOptions::default() }
    }

    /// The flush policy configured.
    pub fn flush_policy(&self) -> FlushPolicy {
        FlushPolicy::new(self.flush, self.flush_budget)
    }

    pub fn has_sink(&self, kind: SinkKind) -> bool {
        self.sinks.contains(&kind)
    }

    /// A human-readable summary for `tandem check-config`. Header values, URL
    /// credentials and query strings are redacted.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let secret_headers = |h: &[(String, String)]| -> String {
            if h.is_empty() {
                "none".into()
            } else {
                h.iter().map(|(k, _)| format!("{k}=***")).collect::<Vec<_>>().join(", ")
            }
        };
        let ms = |d: Duration| d.as_millis();
        // Writing to a String cannot fail.
        let _ = writeln!(s, "tandem configuration");
        let _ = writeln!(
            s,
            "  config file: {}",
            self.config_file.as_ref().map_or("none".into(), |p| p.display().to_string())
        );
        let _ = writeln!(s, "  sinks: {}", self.sinks.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "));
        for sink in &self.sinks {
            match sink {
                SinkKind::Stdout => {
                    let dims: Vec<String> = self.emf.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let _ = writeln!(
                        s,
                        "  stdout: CloudWatch EMF, namespace {:?}, health namespace {:?}, function {:?}, extra dimensions: {}",
                        self.emf.namespace,
                        self.emf.health_namespace,
                        self.emf.function_name,
                        if dims.is_empty() { "none".into() } else { dims.join(", ") }
                    );
                }
                SinkKind::File => {
                    let _ = writeln!(s, "  file: NDJSON to {}", self.file.path.display());
                }
                SinkKind::Http => {
                    let _ = writeln!(
                        s,
                        "  http: NDJSON to {}, gzip {}, headers: {}",
                        self.http.url.as_deref().map_or("(none)".into(), redact_url),
                        if self.http.gzip { "on" } else { "off" },
                        secret_headers(&self.http.headers)
                    );
                }
                SinkKind::Otlp => {
                    let _ = writeln!(
                        s,
                        "  otlp: {}, gzip {}, timeout {} ms",
                        self.otlp.protocol.as_str(),
                        if self.otlp.gzip { "on" } else { "off" },
                        ms(self.otlp.timeout)
                    );
                    for signal in Signal::ALL {
                        let c = self.otlp.signal(signal);
                        let _ = writeln!(
                            s,
                            "    {}: {} (headers: {})",
                            signal.as_str(),
                            redact_url(&c.endpoint),
                            secret_headers(&c.headers)
                        );
                    }
                }
            }
        }
        let _ = writeln!(s, "  flush: {}, budget {} ms", self.flush, ms(self.flush_budget));
        let _ = writeln!(
            s,
            "  buffer: {} records / {} in memory, then spool {} up to {}",
            self.buffer.max_records,
            human_bytes(self.buffer.max_bytes),
            self.spool.dir.display(),
            if self.spool.max_bytes == 0 { "(disabled)".into() } else { human_bytes(self.spool.max_bytes) }
        );
        let _ = writeln!(
            s,
            "  batch: {} records / {} / {} ms",
            self.batch.max_records,
            human_bytes(self.batch.max_bytes),
            ms(self.batch.max_age)
        );
        let _ = writeln!(
            s,
            "  retry: {} attempts, backoff {}..{} ms",
            self.retry.max_attempts,
            ms(self.retry.base_backoff),
            ms(self.retry.max_backoff)
        );
        let _ =
            writeln!(s, "  telemetry: {}", self.log_types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "));
        let rules: Vec<String> = self.rules.iter().map(|r| format!("{} {:?}", r.kind.as_str(), r.name)).collect();
        let _ = writeln!(s, "  rules: {}", if rules.is_empty() { "none".into() } else { rules.join(", ") });
        let _ = writeln!(
            s,
            "  pricing: {}, {} USD/GB-s + {} USD/request{}",
            self.arch.as_str(),
            self.pricing.gb_second_usd,
            self.pricing.request_usd,
            self.memory_size_mb.map_or(String::new(), |m| format!(", memory {m} MB"))
        );
        let attrs: Vec<String> = self
            .resource
            .attributes()
            .iter()
            .map(|kv| {
                let v = kv.value.as_ref().and_then(|v| v.value.as_ref()).map_or(String::new(), |v| match v {
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => s.clone(),
                    opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(i) => i.to_string(),
                    other => format!("{other:?}"),
                });
                format!("{}={v}", kv.key)
            })
            .collect();
        let _ = writeln!(s, "  resource: {}", attrs.join(", "));
        let _ = writeln!(s, "  log level: {}", self.log_level.as_str());
        s
    }
}

fn load_file(l: &mut Loader<'_>, path: &Path, read_file: &dyn Fn(&Path) -> io::Result<String>) {
    let shown = path.display().to_string();
    let text = match read_file(path) {
        Ok(t) => t,
        Err(e) => {
            l.problem("TANDEM_CONFIG", format!("cannot read {shown}: {e}; file ignored"));
            return;
        }
    };
    let table: Map<String, Value> = match basic_toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            let why = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            l.problem("TANDEM_CONFIG", format!("cannot parse {shown}: {why}; file ignored"));
            return;
        }
    };
    let mut flat = BTreeMap::new();
    let mut unknown = Vec::new();
    for (k, v) in table {
        match v {
            Value::Object(section) if !is_list_setting(&setting_name(None, &k)) => {
                for (k2, v2) in section {
                    let name = setting_name(Some(&k), &k2);
                    insert_setting(&mut flat, &mut unknown, format!("[{k}] {k2}"), name, v2);
                }
            }
            v => {
                let name = setting_name(None, &k);
                insert_setting(&mut flat, &mut unknown, k, name, v);
            }
        }
    }
    for key in unknown {
        l.problems.push(Problem {
            key: "TANDEM_CONFIG".into(),
            message: format!("unknown setting {key:?} in {shown}; ignored"),
        });
    }
    l.file = flat;
    l.file_path = Some(shown);
}

/// Settings whose file value may be a table (a `k=v` list) rather than a section.
fn is_list_setting(name: &str) -> bool {
    matches!(
        name,
        "TANDEM_HTTP_HEADERS" | "TANDEM_EMF_DIMENSIONS" | "OTEL_EXPORTER_OTLP_HEADERS" | "OTEL_RESOURCE_ATTRIBUTES"
    ) || (name.starts_with("OTEL_EXPORTER_OTLP_") && name.ends_with("_HEADERS"))
}

fn setting_name(section: Option<&str>, key: &str) -> String {
    let upper = |s: &str| s.trim().to_ascii_uppercase().replace(['-', '.'], "_");
    match section {
        None if upper(key).starts_with("TANDEM_") || upper(key).starts_with("OTEL_") => upper(key),
        None => format!("TANDEM_{}", upper(key)),
        Some(sec) if upper(sec) == "OTEL" => format!("OTEL_{}", upper(key)),
        Some(sec) => format!("TANDEM_{}_{}", upper(sec), upper(key)),
    }
}

fn insert_setting(
    flat: &mut BTreeMap<String, String>,
    unknown: &mut Vec<String>,
    shown: String,
    name: String,
    v: Value,
) {
    if !SETTINGS.iter().any(|(k, _)| *k == name) || name == "TANDEM_CONFIG" {
        unknown.push(shown);
        return;
    }
    let text = match (name.as_str(), v) {
        ("TANDEM_RULES", v @ Value::Array(_)) => v.to_string(),
        (_, Value::String(s)) => s,
        (_, Value::Array(items)) => items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        (_, Value::Object(m)) => m
            .iter()
            .map(|(k, v)| format!("{}={}", list_escape(k), list_escape(&scalar_text(v))))
            .collect::<Vec<_>>()
            .join(","),
        (_, v) => scalar_text(&v),
    };
    flat.insert(name, text);
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Escapes what the `k=v,…` list syntax would misread.
fn list_escape(s: &str) -> String {
    s.replace('%', "%25").replace(',', "%2C")
}

fn build(l: &mut Loader<'_>, config_file: Option<PathBuf>) -> Config {
    // Telemetry types.
    let default_types = vec![TelemetryType::Platform, TelemetryType::Function, TelemetryType::Extension];
    let log_types = match l.get("TANDEM_LOG_TYPES") {
        None => default_types,
        Some(v) => {
            let mut types = Vec::new();
            for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                match TelemetryType::from(t.to_ascii_lowercase().as_str()) {
                    TelemetryType::Other(_) => l.problem(
                        "TANDEM_LOG_TYPES",
                        format!("unknown type {t:?} (platform, function, extension); skipped"),
                    ),
                    known if !types.contains(&known) => types.push(known),
                    _ => {}
                }
            }
            if types.is_empty() {
                l.problem("TANDEM_LOG_TYPES", "no valid type; using platform, function, extension");
                default_types
            } else {
                if !types.contains(&TelemetryType::Platform) {
                    l.problem(
                        "TANDEM_LOG_TYPES",
                        "without platform there are no invocation records, metrics or traces; kept as configured",
                    );
                }
                types
            }
        }
    };

    // Flush.
    let flush = match l.get("TANDEM_FLUSH") {
        None => Strategy::Adaptive,
        Some(v) => Strategy::parse(&v).unwrap_or_else(|e| {
            l.problem("TANDEM_FLUSH", format!("{e}; using adaptive"));
            Strategy::Adaptive
        }),
    };
    let flush_budget = l.millis("TANDEM_FLUSH_BUDGET_MS", 100, 0, 10_000);

    // Limits.
    let buffer = BufferConfig {
        max_records: l.number("TANDEM_BUFFER_MAX_RECORDS", 10_000, 1, 1_000_000, "a whole number") as usize,
        max_bytes: l.bytes("TANDEM_BUFFER_MAX_BYTES", 4 * MIB, 64 * KIB, 512 * MIB),
    };
    let spool = SpoolConfig {
        dir: l.absolute_path("TANDEM_SPOOL_DIR", DEFAULT_SPOOL_DIR),
        max_bytes: l.bytes("TANDEM_SPOOL_MAX_BYTES", 64 * MIB, 0, 8 * GIB),
    };
    let batch = BatchConfig {
        max_records: l.number("TANDEM_BATCH_MAX_RECORDS", 1_000, 1, 100_000, "a whole number") as usize,
        max_bytes: l.bytes("TANDEM_BATCH_MAX_BYTES", MIB, KIB, 64 * MIB),
        max_age: l.millis("TANDEM_BATCH_MAX_AGE_MS", 1_000, 0, 600_000),
    };
    let base_backoff = l.millis("TANDEM_RETRY_BASE_MS", 100, 1, 60_000);
    let mut max_backoff = l.millis("TANDEM_RETRY_MAX_MS", 5_000, 1, 300_000);
    if max_backoff < base_backoff {
        l.problem(
            "TANDEM_RETRY_MAX_MS",
            format!(
                "{} ms is below TANDEM_RETRY_BASE_MS ({} ms); using {} ms",
                max_backoff.as_millis(),
                base_backoff.as_millis(),
                base_backoff.as_millis()
            ),
        );
        max_backoff = base_backoff;
    }
    let retry = RetryConfig {
        max_attempts: l.number("TANDEM_RETRY_MAX_ATTEMPTS", 5, 1, 100, "a whole number") as u32,
        base_backoff,
        max_backoff,
    };

    // Rules.
    let rules = match l.get("TANDEM_RULES") {
        None => Vec::new(),
        Some(v) => {
            let (rules, problems) = Rule::parse_list(&v);
            for p in problems {
                l.problem("TANDEM_RULES", p);
            }
            rules
        }
    };

    // Pricing.
    let arch = match l.get("TANDEM_ARCH") {
        None => Arch::native(),
        Some(v) => Arch::parse(&v).unwrap_or_else(|| {
            let native = Arch::native();
            l.problem("TANDEM_ARCH", format!("{v:?} is not x86_64 or arm64; using {}", native.as_str()));
            native
        }),
    };
    let list = Pricing::for_arch(arch);
    let pricing = Pricing {
        gb_second_usd: l.price("TANDEM_PRICE_GB_SECOND", list.gb_second_usd),
        request_usd: l.price("TANDEM_PRICE_REQUEST", list.request_usd),
    };

    let log_level = match l.get("TANDEM_LOG_LEVEL") {
        None => LogLevel::Info,
        Some(v) => LogLevel::parse(&v).unwrap_or_else(|| {
            l.problem(
                "TANDEM_LOG_LEVEL",
                format!("{v:?} is not one of off, error, warn, info, debug, trace; using info"),
            );
            LogLevel::Info
        }),
    };

    // Function environment and OTel resource.
    let memory_size_mb = match l.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") {
        None => None,
        Some(v) => v.trim().parse::<u64>().ok().filter(|m| *m > 0),
    };
    if let Some(v) = l.get("OTEL_RESOURCE_ATTRIBUTES") {
        for p in parse_key_values(&v).1 {
            l.problem("OTEL_RESOURCE_ATTRIBUTES", p);
        }
    }
    let resource = Resource::from_env(|k| l.get(k));

    // EMF.
    let mut emf =
        EmfOptions { function_name: l.get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(), ..EmfOptions::default() };
    for (key, slot) in
        [("TANDEM_EMF_NAMESPACE", &mut emf.namespace), ("TANDEM_EMF_HEALTH_NAMESPACE", &mut emf.health_namespace)]
    {
        if let Some(v) = l.get(key) {
            let v = v.trim().to_owned();
            match valid_namespace(&v) {
                Ok(()) => *slot = v,
                Err(why) => l.problem(key, format!("{v:?} {why}; using {slot:?}")),
            }
        }
    }
    if let Some(v) = l.get("TANDEM_EMF_DIMENSIONS") {
        let (pairs, problems) = parse_key_values(&v);
        for p in problems {
            l.problem("TANDEM_EMF_DIMENSIONS", p);
        }
        for (name, value) in pairs {
            if let Err(why) = check_dimension_name(&name) {
                l.problem("TANDEM_EMF_DIMENSIONS", format!("{why}; dimension {name:?} skipped"));
            } else if value.is_empty() || value.len() > 1024 {
                l.problem(
                    "TANDEM_EMF_DIMENSIONS",
                    format!("dimension {name:?} needs a value of 1 to 1024 characters; skipped"),
                );
            } else if emf.dimensions.iter().any(|(n, _)| *n == name) {
                l.problem("TANDEM_EMF_DIMENSIONS", format!("dimension {name:?} given twice; the first is kept"));
            } else if emf.dimensions.len() + 1 >= MAX_DIMENSIONS_PER_SET {
                l.problem(
                    "TANDEM_EMF_DIMENSIONS",
                    format!("more than {} dimensions; {name:?} skipped", MAX_DIMENSIONS_PER_SET - 1),
                );
            } else {
                emf.dimensions.push((name, value));
            }
        }
    }

    // Sinks.
    let file = FileConfig { path: l.absolute_path("TANDEM_FILE_PATH", DEFAULT_FILE_PATH) };
    let http =
        HttpConfig { url: None, headers: l.headers("TANDEM_HTTP_HEADERS"), gzip: l.boolean("TANDEM_HTTP_GZIP", false) };
    let otlp = otlp_config(l);
    let mut config = Config {
        sinks: Vec::new(),
        file,
        http,
        otlp,
        emf,
        flush,
        flush_budget,
        buffer,
        spool,
        batch,
        retry,
        log_types,
        rules,
        arch,
        pricing,
        log_level,
        resource,
        memory_size_mb,
        config_file,
    };
    config.sinks = sinks(l, &mut config.http);
    config
}

fn sinks(l: &mut Loader<'_>, http: &mut HttpConfig) -> Vec<SinkKind> {
    let mut sinks = Vec::new();
    let mut http_requested = false;
    let requested = l.get("TANDEM_SINKS").unwrap_or_else(|| "stdout".into());
    for name in requested.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match SinkKind::parse(name) {
            None => l.problem("TANDEM_SINKS", format!("unknown sink {name:?} (stdout, file, http, otlp); dropped")),
            Some(k) if sinks.contains(&k) => {}
            Some(SinkKind::Http) if http_requested => {}
            Some(SinkKind::Http) => {
                http_requested = true;
                http.url = l.url("TANDEM_HTTP_URL", "the http sink is dropped");
                if http.url.is_some() {
                    sinks.push(SinkKind::Http);
                } else if l.get("TANDEM_HTTP_URL").is_none() {
                    l.problem("TANDEM_SINKS", "the http sink needs TANDEM_HTTP_URL; dropped");
                }
            }
            Some(k) => sinks.push(k),
        }
    }
    if !http_requested && l.get("TANDEM_HTTP_URL").is_some() {
        l.problem("TANDEM_HTTP_URL", "set, but the http sink is not in TANDEM_SINKS; ignored");
    }
    if sinks.is_empty() {
        l.problem("TANDEM_SINKS", "no usable sink left; using stdout");
        sinks.push(SinkKind::Stdout);
    }
    sinks
}

fn otlp_config(l: &mut Loader<'_>) -> OtlpConfig {
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
    OtlpConfig {
        logs,
        metrics,
        traces,
        protocol,
        gzip,
        timeout: l.millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, 1, 600_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleKind;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn no_file(_: &Path) -> io::Result<String> {
        Err(io::Error::from(io::ErrorKind::NotFound))
    }

    fn load(pairs: &[(&str, &str)]) -> (Config, Vec<String>) {
        let (c, p) = Config::load_with(env(pairs), no_file);
        (c, p.iter().map(Problem::to_string).collect())
    }

    fn with_file(pairs: &[(&str, &str)], toml: &'static str) -> (Config, Vec<String>) {
        let (c, p) = Config::load_with(env(pairs), move |path| {
            assert_eq!(path, Path::new("/etc/tandem.toml"));
            Ok(toml.to_owned())
        });
        (c, p.iter().map(Problem::to_string).collect())
    }

    #[test]
    fn defaults_need_nothing_and_stay_local() {
        let (c, problems) = load(&[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c, Config::default());
        assert_eq!(c.sinks, vec![SinkKind::Stdout]);
        assert_eq!(c.file.path, PathBuf::from("/tmp/tandem/records.ndjson"));
        assert_eq!(c.spool.dir, PathBuf::from("/tmp/tandem/spool"));
        assert_eq!(c.flush, Strategy::Adaptive);
        assert_eq!(c.flush_budget, Duration::from_millis(100));
        assert_eq!(c.emf.namespace, "Tandem");
        assert_eq!(c.emf.health_namespace, "Tandem/Extension");
        assert_eq!(c.otlp.logs.endpoint, "http://127.0.0.1:4318/v1/logs");
        assert_eq!(c.otlp.metrics.endpoint, "http://127.0.0.1:4318/v1/metrics");
        assert_eq!(c.otlp.traces.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(c.otlp.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.log_types.len(), 3);
        assert!(c.rules.is_empty());
        assert_eq!(c.arch, Arch::native());
        assert_eq!(c.pricing, Pricing::for_arch(Arch::native()));
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.http.url, None);
        assert_eq!(c.buffer.max_bytes, 4 * MIB);
        assert_eq!(c.retry.max_attempts, 5);
        // No default points anywhere but localhost.
        for s in Signal::ALL {
            assert!(c.otlp.signal(s).endpoint.starts_with("http://127.0.0.1:"));
        }
    }

    #[test]
    fn every_setting_from_the_environment() {
        let (c, problems) = load(&[
            ("TANDEM_SINKS", "stdout, file,http,OTLP"),
            ("TANDEM_FILE_PATH", "/tmp/out.ndjson"),
            ("TANDEM_HTTP_URL", "https://logs.example.com/ingest"),
            ("TANDEM_HTTP_HEADERS", "Authorization=Bearer%20abc,X-Team=pay"),
            ("TANDEM_HTTP_GZIP", "yes"),
            ("TANDEM_FLUSH", "continuous,500"),
            ("TANDEM_FLUSH_BUDGET_MS", "250"),
            ("TANDEM_EMF_NAMESPACE", "Shop/Lambda"),
            ("TANDEM_EMF_DIMENSIONS", "Environment=prod,Team=payments"),
            ("TANDEM_BUFFER_MAX_RECORDS", "20_000"),
            ("TANDEM_BUFFER_MAX_BYTES", "8MiB"),
            ("TANDEM_SPOOL_DIR", "/tmp/sp"),
            ("TANDEM_SPOOL_MAX_BYTES", "0"),
            ("TANDEM_BATCH_MAX_RECORDS", "500"),
            ("TANDEM_BATCH_MAX_BYTES", "512k"),
            ("TANDEM_BATCH_MAX_AGE_MS", "2000"),
            ("TANDEM_RETRY_MAX_ATTEMPTS", "3"),
            ("TANDEM_RETRY_BASE_MS", "50"),
            ("TANDEM_RETRY_MAX_MS", "1000"),
            ("TANDEM_LOG_TYPES", "platform,function"),
            ("TANDEM_RULES", r#"[{"kind":"exclude","name":"health","pattern":"GET /health"}]"#),
            ("TANDEM_ARCH", "arm64"),
            ("TANDEM_PRICE_REQUEST", "0.0000003"),
            ("TANDEM_LOG_LEVEL", "DEBUG"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4318/v1/traces"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k1,x-a=1"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "API-KEY=k2"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_SERVICE_NAME", "shop"),
            ("AWS_LAMBDA_FUNCTION_NAME", "checkout"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.sinks, vec![SinkKind::Stdout, SinkKind::File, SinkKind::Http, SinkKind::Otlp]);
        assert_eq!(c.file.path, PathBuf::from("/tmp/out.ndjson"));
        assert_eq!(c.http.url.as_deref(), Some("https://logs.example.com/ingest"));
        assert_eq!(
            c.http.headers,
            vec![("Authorization".into(), "Bearer abc".into()), ("X-Team".into(), "pay".into())]
        );
        assert!(c.http.gzip);
        assert_eq!(c.flush, Strategy::Continuous(Duration::from_millis(500)));
        assert_eq!(c.flush_budget, Duration::from_millis(250));
        assert_eq!(c.emf.namespace, "Shop/Lambda");
        assert_eq!(c.emf.function_name, "checkout");
        assert_eq!(c.emf.dimensions, vec![("Environment".into(), "prod".into()), ("Team".into(), "payments".into())]);
        assert_eq!(c.buffer, BufferConfig { max_records: 20_000, max_bytes: 8 * MIB });
        assert_eq!(c.spool, SpoolConfig { dir: "/tmp/sp".into(), max_bytes: 0 });
        assert_eq!(c.batch, BatchConfig { max_records: 500, max_bytes: 512 * KIB, max_age: Duration::from_secs(2) });
        assert_eq!(
            c.retry,
            RetryConfig {
                max_attempts: 3,
                base_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(1)
            }
        );
        assert_eq!(c.log_types, vec![TelemetryType::Platform, TelemetryType::Function]);
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].kind, RuleKind::Exclude);
        assert_eq!(c.arch, Arch::Arm64);
        assert_eq!(c.pricing.gb_second_usd, Pricing::ARM64_GB_SECOND);
        assert_eq!(c.pricing.request_usd, 0.000_000_3);
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.otlp.logs.endpoint, "http://collector:4318/v1/logs");
        assert_eq!(c.otlp.metrics.endpoint, "http://collector:4318/v1/metrics");
        assert_eq!(c.otlp.traces.endpoint, "http://tempo:4318/v1/traces");
        assert_eq!(c.otlp.logs.headers, vec![("x-a".into(), "1".into()), ("API-KEY".into(), "k2".into())]);
        assert_eq!(c.otlp.metrics.headers, vec![("api-key".into(), "k1".into()), ("x-a".into(), "1".into())]);
        assert_eq!(c.otlp.protocol, Protocol::HttpJson);
        assert!(c.otlp.gzip);
        assert_eq!(c.resource.get_str("service.name"), Some("shop"));
        assert_eq!(c.memory_size_mb, Some(512));
        assert_eq!(c.correlator_options().memory_size_mb, Some(512));
        assert_eq!(c.flush_policy().strategy(), c.flush);
    }

    #[test]
    fn bad_values_are_one_line_each_and_fall_back() {
        let (c, problems) = load(&[
            ("TANDEM_FLUSH", "sometimes"),
            ("TANDEM_FLUSH_BUDGET_MS", "fast"),
            ("TANDEM_BUFFER_MAX_BYTES", "lots"),
            ("TANDEM_HTTP_GZIP", "maybe"),
            ("TANDEM_ARCH", "mips"),
            ("TANDEM_LOG_LEVEL", "loud"),
            ("TANDEM_PRICE_GB_SECOND", "-1"),
            ("TANDEM_FILE_PATH", "relative/path"),
            ("TANDEM_RETRY_BASE_MS", "1000"),
            ("TANDEM_RETRY_MAX_MS", "10"),
            ("TANDEM_EMF_NAMESPACE", "AWS/Lambda"),
            ("TANDEM_LOG_TYPES", "platform,logs"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        ]);
        let native = Arch::native().as_str();
        let price = Pricing::for_arch(Arch::native()).gb_second_usd;
        let want = [
            "TANDEM_LOG_TYPES: unknown type \"logs\" (platform, function, extension); skipped".to_owned(),
            "TANDEM_FLUSH: \"sometimes\" is not a flush strategy (adaptive, end, periodic,<ms>, continuous,<ms>); using adaptive".into(),
            "TANDEM_FLUSH_BUDGET_MS: \"fast\" is not a whole number of milliseconds between 0 and 10000; using 100".into(),
            "TANDEM_BUFFER_MAX_BYTES: \"lots\" is not a size between 64KiB and 512MiB (bytes, or with KiB/MiB/GiB, KB/MB/GB); using 4MiB".into(),
            "TANDEM_RETRY_MAX_MS: 10 ms is below TANDEM_RETRY_BASE_MS (1000 ms); using 1000 ms".into(),
            format!("TANDEM_ARCH: \"mips\" is not x86_64 or arm64; using {native}"),
            format!("TANDEM_PRICE_GB_SECOND: \"-1\" is not a price in USD between 0 and 1; using {price}"),
            "TANDEM_LOG_LEVEL: \"loud\" is not one of off, error, warn, info, debug, trace; using info".into(),
            "TANDEM_EMF_NAMESPACE: \"AWS/Lambda\" must not start with AWS/ (reserved for AWS); using \"Tandem\"".into(),
            "TANDEM_FILE_PATH: \"relative/path\" is not an absolute path; using /tmp/tandem/records.ndjson".into(),
            "TANDEM_HTTP_GZIP: \"maybe\" is not a boolean (true/false); using false".into(),
            "OTEL_EXPORTER_OTLP_ENDPOINT: \"collector:4317\" is not an http:// or https:// URL; using http://127.0.0.1:4318".into(),
            "OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not supported, use http/protobuf (port 4318); using http/protobuf".into(),
            "OTEL_EXPORTER_OTLP_COMPRESSION: \"zstd\" is not gzip or none; using none".into(),
        ];
        assert_eq!(problems, want);
        assert!(problems.iter().all(|p| !p.contains('\n')));
        assert_eq!(c.flush, Strategy::Adaptive);
        assert_eq!(c.retry.max_backoff, Duration::from_secs(1));
        assert_eq!(c.log_types, vec![TelemetryType::Platform]);
        assert_eq!(c.otlp.logs.endpoint, "http://127.0.0.1:4318/v1/logs");
    }

    #[test]
    fn broken_sinks_are_dropped_and_stdout_is_the_last_resort() {
        let (c, problems) = load(&[("TANDEM_SINKS", "http,kafka,http")]);
        assert_eq!(c.sinks, vec![SinkKind::Stdout]);
        assert_eq!(
            problems,
            vec![
                "TANDEM_SINKS: the http sink needs TANDEM_HTTP_URL; dropped",
                "TANDEM_SINKS: unknown sink \"kafka\" (stdout, file, http, otlp); dropped",
                "TANDEM_SINKS: no usable sink left; using stdout",
            ]
        );
        let (c, problems) =
            load(&[("TANDEM_SINKS", "http,otlp,otlp"), ("TANDEM_HTTP_URL", "ftp://user:pw@host/x?token=1")]);
        assert_eq!(c.sinks, vec![SinkKind::Otlp]);
        assert_eq!(
            problems,
            vec![
                "TANDEM_HTTP_URL: \"ftp://***@host/x?***\" is not an http:// or https:// URL; the http sink is dropped"
            ]
        );
        let (c, _) = load(&[("TANDEM_SINKS", " , ")]);
        assert_eq!(c.sinks, vec![SinkKind::Stdout]);
        let (c, problems) = load(&[("TANDEM_HTTP_URL", "http://127.0.0.1:9000")]);
        assert_eq!(c.sinks, vec![SinkKind::Stdout]);
        assert_eq!(problems, vec!["TANDEM_HTTP_URL: set, but the http sink is not in TANDEM_SINKS; ignored"]);
    }

    #[test]
    fn header_problems_never_show_values() {
        let (c, problems) = load(&[
            ("TANDEM_HTTP_HEADERS", "good=secret1,bad name=secret2,novalue-secret3,crlf=a%0Dsecret4"),
            ("TANDEM_HTTP_URL", "http://127.0.0.1:9000"),
            ("TANDEM_SINKS", "http"),
        ]);
        assert_eq!(c.http.headers, vec![("good".into(), "secret1".into())]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        for p in &problems {
            assert!(
                !p.contains("secret1") && !p.contains("secret2") && !p.contains("secret3") && !p.contains("secret4"),
                "{p}"
            );
        }
        let d = c.describe();
        assert!(d.contains("good=***"), "{d}");
        assert!(!d.contains("secret1"), "{d}");
    }

    #[test]
    fn emf_dimension_checks() {
        let (c, problems) = load(&[("TANDEM_EMF_DIMENSIONS", "Env=prod,Duration=x,Env=dev,Empty=,Team=a")]);
        assert_eq!(c.emf.dimensions, vec![("Env".into(), "prod".into()), ("Team".into(), "a".into())]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("\"Duration\" is a name the EMF document already uses"));
        assert!(problems[1].contains("given twice"));
        assert!(problems[2].contains("\"Empty\" needs a value"));
    }

    #[test]
    fn bad_rules_are_reported_per_rule() {
        let (c, problems) = load(&[(
            "TANDEM_RULES",
            r#"[{"kind":"mask","name":"ok","pattern":"\\d+"},{"kind":"nope","name":"bad","pattern":"x"},{"kind":"exclude","name":"re","pattern":"("}]"#,
        )]);
        assert_eq!(c.rules.len(), 2);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("TANDEM_RULES: rule \"bad\": unknown variant `nope`"), "{}", problems[0]);
        // Regexes are compiled on demand, with their own problems.
        let (rules, problems) = c.compile_rules();
        assert_eq!(rules.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().starts_with("TANDEM_RULES: rule \"re\": invalid pattern \"(\""));
    }

    const TOML: &str = r#"
sinks = ["stdout", "otlp"]
flush = "end"
flush_budget_ms = 300
arch = "x86_64"
OTEL_SERVICE_NAME = "from-file"
log_level = "warn"

[http]
url = "https://example.com/in"
gzip = true

[http.headers]
authorization = "Bearer a,b"

[emf]
namespace = "FileNs"
dimensions = { Env = "staging" }

[otel]
exporter_otlp_endpoint = "http://127.0.0.1:14318"
exporter_otlp_protocol = "http/json"

[batch]
max_bytes = "2MiB"

[[rules]]
kind = "mask"
name = "cards"
pattern = '\d{16}'

[[rules]]
kind = "exclude"
pattern = "noise"
"#;

    #[test]
    fn toml_file_with_environment_overrides() {
        let (c, problems) =
            with_file(&[("TANDEM_CONFIG", "/etc/tandem.toml"), ("TANDEM_FLUSH", "periodic,1000")], TOML);
        assert_eq!(
            problems,
            vec!["TANDEM_HTTP_URL (from /etc/tandem.toml): set, but the http sink is not in TANDEM_SINKS; ignored"]
        );
        assert_eq!(c.config_file, Some(PathBuf::from("/etc/tandem.toml")));
        assert_eq!(c.sinks, vec![SinkKind::Stdout, SinkKind::Otlp]);
        assert_eq!(c.flush, Strategy::Periodic(Duration::from_secs(1)), "the environment wins");
        assert_eq!(c.flush_budget, Duration::from_millis(300));
        assert_eq!(c.arch, Arch::X86_64);
        assert_eq!(c.log_level, LogLevel::Warn);
        assert_eq!(c.resource.get_str("service.name"), Some("from-file"));
        assert_eq!(c.http.url.as_deref(), None, "http is not an enabled sink");
        assert!(c.http.gzip);
        assert_eq!(c.http.headers, vec![("authorization".into(), "Bearer a,b".into())]);
        assert_eq!(c.emf.namespace, "FileNs");
        assert_eq!(c.emf.dimensions, vec![("Env".into(), "staging".into())]);
        assert_eq!(c.otlp.traces.endpoint, "http://127.0.0.1:14318/v1/traces");
        assert_eq!(c.otlp.protocol, Protocol::HttpJson);
        assert_eq!(c.batch.max_bytes, 2 * MIB);
        assert_eq!(c.rules.len(), 2);
        assert_eq!(c.rules[0].name, "cards");
        assert_eq!(c.rules[0].pattern, r"\d{16}");
        assert_eq!(c.rules[1].name, "#2");
    }

    #[test]
    fn file_problems_name_the_file() {
        let (c, problems) = with_file(
            &[("TANDEM_CONFIG", "/etc/tandem.toml")],
            "flush = \"never\"\nmystery = 1\n[http]\nproxy = \"x\"\n",
        );
        assert_eq!(c.flush, Strategy::Adaptive);
        assert_eq!(
            problems,
            vec![
                "TANDEM_CONFIG: unknown setting \"[http] proxy\" in /etc/tandem.toml; ignored",
                "TANDEM_CONFIG: unknown setting \"mystery\" in /etc/tandem.toml; ignored",
                "TANDEM_FLUSH (from /etc/tandem.toml): \"never\" is not a flush strategy (adaptive, end, periodic,<ms>, continuous,<ms>); using adaptive",
            ]
        );
        let (c, problems) = with_file(&[("TANDEM_CONFIG", "/etc/tandem.toml")], "flush = [unclosed");
        assert_eq!(c.flush, Strategy::Adaptive);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("TANDEM_CONFIG: cannot parse /etc/tandem.toml: "), "{}", problems[0]);
        assert!(problems[0].ends_with("; file ignored"));
        let (c, problems) = Config::load_with(env(&[("TANDEM_CONFIG", "/nope.toml")]), no_file);
        assert_eq!(c.config_file, None);
        assert_eq!(problems[0].to_string(), "TANDEM_CONFIG: cannot read /nope.toml: entity not found; file ignored");
    }

    #[test]
    fn describe_summarises_and_redacts() {
        let (c, _) = load(&[
            ("TANDEM_SINKS", "stdout,http,otlp"),
            ("TANDEM_HTTP_URL", "https://user:pw@logs.example.com/in?api_key=SECRET"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=SECRET"),
            ("TANDEM_RULES", r#"[{"kind":"mask","name":"cards","pattern":"x"}]"#),
            ("AWS_LAMBDA_FUNCTION_NAME", "checkout"),
        ]);
        let d = c.describe();
        assert!(!d.contains("SECRET") && !d.contains("pw@"), "{d}");
        for want in [
            "sinks: stdout, http, otlp",
            "stdout: CloudWatch EMF, namespace \"Tandem\"",
            "http: NDJSON to https://***@logs.example.com/in?***",
            "logs: http://127.0.0.1:4318/v1/logs (headers: x-api-key=***)",
            "flush: adaptive, budget 100 ms",
            "rules: mask \"cards\"",
            "service.name=checkout",
        ] {
            assert!(d.contains(want), "missing {want:?} in\n{d}");
        }
        assert!(!d.contains("file: NDJSON"), "disabled sinks are not described");
    }

    #[test]
    fn sizes_and_urls() {
        assert_eq!(parse_bytes("4MiB"), Some(4 * MIB));
        assert_eq!(parse_bytes("10 KB"), Some(10_000));
        assert_eq!(parse_bytes("1_000"), Some(1000));
        assert_eq!(parse_bytes("1g"), Some(GIB));
        assert_eq!(parse_bytes("1.5MiB"), None);
        assert_eq!(parse_bytes("MiB"), None);
        assert_eq!(parse_bytes("99999999999999999999GiB"), None);
        assert!(check_url("http://localhost:4318").is_ok());
        assert!(check_url("https://a.b/c?d=e").is_ok());
        assert!(check_url("http://").is_err());
        assert!(check_url("http://:80").is_err());
        assert!(check_url("http://a b").is_err());
        assert_eq!(redact_url("http://h:1/p#frag"), "http://h:1/p?***");
        assert_eq!(redact_url("http://h"), "http://h");
    }
}
