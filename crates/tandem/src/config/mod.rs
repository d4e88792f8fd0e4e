//! config: `TANDEM_*` and `OTEL_*` environment variables, over an optional TOML file
//! named by `TANDEM_CONFIG`, into one validated [`Config`].
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
//!
//! Laid out by owner: this module holds [`Config`], [`SinkKind`], the general settings
//! and the assembly in setting order; [`load`] reads values (environment, file, the
//! key/value helpers) and owns [`Problem`]; `describe.rs` is what `check-config`
//! prints. Each sink's own settings live in its folder (`sink/<name>/config.rs`),
//! [`LogLevel`] in `diag/level.rs`, URL checks and redaction in the HTTP transport.

mod describe;
pub mod load;
pub mod receiver;
#[cfg(test)]
mod tests;

pub use load::Problem;
pub use receiver::ReceiverConfig;

use crate::diag::level::LogLevel;
use crate::flush::{FlushPolicy, Strategy, DEFAULT_MAX_DELAY};
use crate::guard::GuardConfig;
use crate::invocation::cost::{Arch, Pricing};
use crate::invocation::CorrelatorOptions;
use crate::rules::{Rule, Rules, DEFAULT_MAX_LINE_BYTES};
use crate::sink::file::config::FileConfig;
use crate::sink::http::config::HttpConfig;
use crate::sink::otlp::config::OtlpConfig;
use crate::sink::otlp::resource::{parse_key_values, Resource};
use crate::sink::stdout::config as stdout;
use crate::sink::stdout::encode::EmfOptions;
use load::{Loader, GIB, KIB, MIB};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tandem_wire::TelemetryType;

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
    /// Every sink, in the order their settings are read and described.
    pub const ALL: [SinkKind; 4] = [SinkKind::Stdout, SinkKind::File, SinkKind::Http, SinkKind::Otlp];

    /// The name `TANDEM_SINKS` uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            SinkKind::Stdout => "stdout",
            SinkKind::File => "file",
            SinkKind::Http => "http",
            SinkKind::Otlp => "otlp",
        }
    }

    /// Parses a sink name, case-insensitively.
    pub fn parse(s: &str) -> Option<SinkKind> {
        SinkKind::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// Memory bound of the buffer; beyond it records go to the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    /// Records held in memory.
    pub max_records: usize,
    /// Bytes held in memory.
    pub max_bytes: u64,
}

/// The spool on disk, one directory per sink below `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Where segments are written.
    pub dir: PathBuf,
    /// 0 disables the spool.
    pub max_bytes: u64,
}

/// Per-request batching of the sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Records per request.
    pub max_records: usize,
    /// Bytes per request.
    pub max_bytes: u64,
    /// How long the oldest record may wait before a batch is sent.
    pub max_age: Duration,
}

/// Retries of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry (doubling after each).
    pub base_backoff: Duration,
    /// The largest backoff.
    pub max_backoff: Duration,
}

/// The whole configuration. [`Config::default`] is what an unconfigured extension uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Enabled sinks, never empty, in the order given.
    pub sinks: Vec<SinkKind>,
    /// The `file` sink.
    pub file: FileConfig,
    /// The `http` sink.
    pub http: HttpConfig,
    /// The `otlp` sink.
    pub otlp: OtlpConfig,
    /// The stdout sink's EMF settings (function name from `AWS_LAMBDA_FUNCTION_NAME`).
    pub emf: EmfOptions,
    /// `TANDEM_FLUSH`.
    pub flush: Strategy,
    /// `TANDEM_FLUSH_BUDGET_MS`: how long a flush may delay the next invoke.
    pub flush_budget: Duration,
    /// `TANDEM_MAX_DELAY_MS`: the longest a record should wait for delivery (adaptive).
    pub max_delay: Duration,
    /// Memory bound of each sink's queue.
    pub buffer: BufferConfig,
    /// The spool.
    pub spool: SpoolConfig,
    /// Per-request batching.
    pub batch: BatchConfig,
    /// Retries.
    pub retry: RetryConfig,
    /// Telemetry API subscription types.
    pub log_types: Vec<TelemetryType>,
    /// `TANDEM_RULES`, not compiled yet (see [`Config::compile_rules`]).
    pub rules: Vec<Rule>,
    /// `TANDEM_RULES_MAX_LINE_BYTES`: how much of a line the rules look at.
    pub rules_max_line_bytes: usize,
    /// `TANDEM_ARCH`: the price list used.
    pub arch: Arch,
    /// Prices of the cost estimate.
    pub pricing: Pricing,
    /// `TANDEM_LOG_LEVEL`.
    pub log_level: LogLevel,
    /// OTel resource (FaaS/cloud attributes, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).
    pub resource: Resource,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
    pub memory_size_mb: Option<u64>,
    /// The `TANDEM_CONFIG` file, when one was read.
    pub config_file: Option<PathBuf>,
    /// The security guard (`TANDEM_GUARD*`, `[guard]`).
    pub guard: GuardConfig,
    /// The OTLP receiver's listeners (`TANDEM_OTLP_RECEIVER*`).
    pub receiver: ReceiverConfig,
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
    ("TANDEM_MAX_DELAY_MS", "adaptive: longest a record may wait for delivery before next is delayed (default 60000)"),
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
    ("TANDEM_RULES_MAX_LINE_BYTES", "bytes of a line the rules look at; masks remove the rest (default 256KiB)"),
    ("TANDEM_PRICE_GB_SECOND", "USD per GB-second (default by architecture)"),
    ("TANDEM_PRICE_REQUEST", "USD per request (default 0.0000002)"),
    ("TANDEM_ARCH", "x86_64 or arm64 (default: this binary's)"),
    ("TANDEM_LOG_LEVEL", "the extension's own diagnostics: off, error, warn, info, debug, trace (default info)"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTLP base URL, /v1/<signal> appended to its path (default http://127.0.0.1:4318; :4317 with grpc)"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "OTLP headers, k=v,k2=v2"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf (default), http/json or grpc"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip or none (default none)"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "OTLP request timeout, ms (default 10000)"),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "PEM file of a CA trusted besides the webpki roots"),
    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "PEM file of the client certificate (mTLS)"),
    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "PEM file of the client certificate's private key"),
    ("OTEL_EXPORTER_OTLP_<SIGNAL>_<SETTING>", "per signal (LOGS, METRICS, TRACES): any of the eight above; an endpoint is used as is, headers merge over the general ones"),
    ("TANDEM_OTLP_ENDPOINT", "the otlp sink's endpoint, over OTEL_EXPORTER_OTLP_ENDPOINT (which the function's SDK reads)"),
    ("TANDEM_OTLP_HEADERS", "the otlp sink's headers, over OTEL_EXPORTER_OTLP_HEADERS"),
    ("TANDEM_OTLP_PROTOCOL", "the otlp sink's protocol, over OTEL_EXPORTER_OTLP_PROTOCOL"),
    ("TANDEM_OTLP_COMPRESSION", "the otlp sink's compression, over OTEL_EXPORTER_OTLP_COMPRESSION"),
    ("TANDEM_OTLP_TIMEOUT", "the otlp sink's timeout, over OTEL_EXPORTER_OTLP_TIMEOUT"),
    ("TANDEM_OTLP_CERTIFICATE", "the otlp sink's CA file, over OTEL_EXPORTER_OTLP_CERTIFICATE"),
    ("TANDEM_OTLP_CLIENT_CERTIFICATE", "the otlp sink's client certificate, over OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
    ("TANDEM_OTLP_CLIENT_KEY", "the otlp sink's client key, over OTEL_EXPORTER_OTLP_CLIENT_KEY"),
    ("TANDEM_OTLP_<SIGNAL>_<SETTING>", "per signal, over every OTEL_EXPORTER_OTLP_* one"),
    ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta (default), cumulative or lowmemory"),
    ("TANDEM_OTLP_RECEIVER", "OTLP receiver listeners on 127.0.0.1: http,grpc (default), http, grpc or off"),
    ("TANDEM_OTLP_RECEIVER_HTTP_PORT", "OTLP/HTTP receiver port (default 4318)"),
    ("TANDEM_OTLP_RECEIVER_GRPC_PORT", "OTLP/gRPC receiver port (default 4317)"),
    ("OTEL_SERVICE_NAME", "service.name (default the function name)"),
    ("OTEL_RESOURCE_ATTRIBUTES", "extra resource attributes, k=v,k2=v2"),
    ("TANDEM_GUARD", "security guard: off (default), detect, enforce, learn"),
    ("TANDEM_GUARD_INTERVAL_MS", "guard scan period while the function runs (default 1000)"),
    ("TANDEM_GUARD_ALLOW_EXEC", "executables the function may start: globs on path or command line, comma-separated"),
    ("TANDEM_GUARD_ALLOW_NET", "peers it may connect to: CIDR[:ports], comma-separated (default 127.0.0.1,::1)"),
    ("TANDEM_GUARD_KILL_RUNTIME", "guard enforce may kill the runtime itself (default false)"),
    ("TANDEM_GUARD_POLICY_OUT", "where guard learn writes its policy (default /tmp/tandem/guard-policy.toml)"),
    ("TANDEM_GUARD_WATCH_FILES", "files whose writes are guard findings: absolute paths, globs in the name, comma-separated"),
];

/// Settings read outside this loader, by parts with their own tables (the secrets
/// cache, `secrets/settings.rs`, and `tandem wrap`), known to the unknown-variable check.
const READ_ELSEWHERE: &[&str] =
    &["TANDEM_SECRETS", "TANDEM_SECRETS_STALE_IF_ERROR_S", "TANDEM_PREFETCH", "TANDEM_SECRET_ENV"];

/// The spool's directory when `TANDEM_SPOOL_DIR` is not set.
pub const DEFAULT_SPOOL_DIR: &str = "/tmp/tandem/spool";

impl Default for Config {
    fn default() -> Self {
        Config::load_with(|_| None, |_| Err(io::Error::from(io::ErrorKind::NotFound))).0
    }
}

impl Config {
    /// Loads from the process's view of things: `get` reads a variable, and the
    /// `TANDEM_CONFIG` file (if named) is read from disk.
    /// Variables named like settings (`TANDEM_*`, `OTEL_EXPORTER_OTLP_*`) that are none
    /// are reported, with the closest name, and a `file` sink path that is a directory
    /// drops that sink.
    pub fn load(get: impl Fn(&str) -> Option<String>) -> (Config, Vec<Problem>) {
        let names: Vec<String> = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect();
        let (mut config, mut problems) = Config::load_checked(get, &names, read_config_file);
        if config.has_sink(SinkKind::Otlp) {
            problems.extend(config.otlp.check_files());
        }
        problems.extend(config.guard.check_files());
        if config.has_sink(SinkKind::File) && config.file.path.is_dir() {
            problems.push(Problem {
                key: "TANDEM_FILE_PATH".into(),
                message: format!("{} is a directory, not a file; the file sink is dropped", config.file.path.display()),
            });
            config.sinks.retain(|k| *k != SinkKind::File);
            if config.sinks.is_empty() {
                problems
                    .push(Problem { key: "TANDEM_SINKS".into(), message: "no usable sink left; using stdout".into() });
                config.sinks.push(SinkKind::Stdout);
            }
        }
        (config, problems)
    }

    /// Loads with an explicit file reader (for tests and `check-config`).
    pub fn load_with(
        get: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&Path) -> io::Result<String>,
    ) -> (Config, Vec<Problem>) {
        Config::load_checked(get, &[], read_file)
    }

    /// Like [`Config::load_with`], also reporting each of `names` (the environment's
    /// variable names) that looks like a setting but is none.
    pub fn load_checked(
        get: impl Fn(&str) -> Option<String>,
        names: &[String],
        read_file: impl Fn(&Path) -> io::Result<String>,
    ) -> (Config, Vec<Problem>) {
        let mut l = Loader::new(&get);
        let config_file = l.get("TANDEM_CONFIG").map(|p| PathBuf::from(p.trim()));
        let per_signal = crate::sink::otlp::config::per_signal_settings();
        let settings: Vec<(&str, &str)> =
            SETTINGS.iter().copied().chain(per_signal.iter().map(|n| (n.as_str(), ""))).collect();
        if let Some(path) = &config_file {
            load::load_file(&mut l, path, &read_file, &settings);
        }
        let read = config_file.filter(|_| l.read_file());
        let config = build(&mut l, read);
        let known: Vec<&str> = settings.iter().map(|(k, _)| *k).chain(READ_ELSEWHERE.iter().copied()).collect();
        l.unknown_variables(names, &known);
        (config, l.into_problems())
    }

    /// Compiles [`Config::rules`] (regexes are built here, once, not at load time).
    pub fn compile_rules(&self) -> (Rules, Vec<Problem>) {
        let (rules, problems) = Rules::compile_bounded(&self.rules, self.rules_max_line_bytes);
        let problems = problems.into_iter().map(|message| Problem { key: "TANDEM_RULES".into(), message }).collect();
        (rules, problems)
    }

    /// Options for [`crate::invocation::Correlator`].
    pub fn correlator_options(&self) -> CorrelatorOptions {
        CorrelatorOptions { pricing: self.pricing, memory_size_mb: self.memory_size_mb, ..CorrelatorOptions::default() }
    }

    /// The flush policy configured.
    pub fn flush_policy(&self) -> FlushPolicy {
        FlushPolicy::new(self.flush, self.flush_budget).with_max_delay(self.max_delay)
    }

    /// Whether `kind` is enabled.
    pub fn has_sink(&self, kind: SinkKind) -> bool {
        self.sinks.contains(&kind)
    }
}

/// Largest `TANDEM_CONFIG` file read. A configuration is a few KiB; the bound is what
/// a wrong path (`/dev/zero`, a log file, a FIFO nobody writes) may cost: never the
/// function's memory or a hang at init.
pub const MAX_CONFIG_FILE_BYTES: u64 = MIB;

/// Reads the `TANDEM_CONFIG` file: a regular file (not a device, a FIFO or a directory,
/// which could be endless or block), at most [`MAX_CONFIG_FILE_BYTES`] of UTF-8. The
/// one place `config` touches the file system.
pub fn read_config_file(path: &Path) -> io::Result<String> {
    use std::io::Read as _;
    let regular = |meta: &std::fs::Metadata| -> io::Result<()> {
        let what = meta.file_type();
        if what.is_file() {
            return Ok(());
        }
        let why = if what.is_dir() { "a directory" } else { "not a regular file (a device, a FIFO or a socket)" };
        Err(io::Error::new(io::ErrorKind::InvalidInput, why))
    };
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} (a configuration is a few KiB)", load::human_bytes(MAX_CONFIG_FILE_BYTES)),
        )
    };
    // Checked before opening: opening a FIFO for reading blocks until a writer comes.
    let meta = std::fs::metadata(path)?;
    regular(&meta)?;
    if meta.len() > MAX_CONFIG_FILE_BYTES {
        return Err(too_big());
    }
    let file = std::fs::File::open(path)?;
    // Checked again on what was opened (the path may have changed in between).
    regular(&file.metadata()?)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(too_big());
    }
    Ok(text)
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
    let max_delay = l.millis("TANDEM_MAX_DELAY_MS", DEFAULT_MAX_DELAY.as_millis() as u64, 0, 3_600_000);

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
    let rules_max_line_bytes =
        l.bytes("TANDEM_RULES_MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES as u64, KIB, 64 * MIB) as usize;

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

    // Sinks, in [`SinkKind::ALL`] order.
    let emf = stdout::load(l);
    let file = FileConfig::load(l);
    let http = HttpConfig::load(l);
    let otlp = OtlpConfig::load(l);
    let mut config = Config {
        sinks: Vec::new(),
        file,
        http,
        otlp,
        emf,
        flush,
        flush_budget,
        max_delay,
        buffer,
        spool,
        batch,
        retry,
        log_types,
        rules,
        rules_max_line_bytes,
        arch,
        pricing,
        log_level,
        resource,
        memory_size_mb,
        config_file,
        guard: GuardConfig::load(l),
        receiver: ReceiverConfig::load(l),
    };
    let otlp_loop = config.otlp.loops_into(&config.receiver);
    config.sinks = sinks(l, &mut config.http, otlp_loop);
    config
}

fn sinks(l: &mut Loader<'_>, http: &mut HttpConfig, otlp_loop: Option<(String, String)>) -> Vec<SinkKind> {
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
                if http.enable(l) {
                    sinks.push(SinkKind::Http);
                }
            }
            Some(SinkKind::Otlp) if otlp_loop.is_some() => {
                if let Some((key, why)) = &otlp_loop {
                    l.problem(key, why.clone());
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
