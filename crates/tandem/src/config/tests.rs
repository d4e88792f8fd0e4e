//! Tests of the configuration: defaults, every setting, fallbacks, the file, `describe`.

use super::load::parse_bytes;
use super::*;
use crate::rules::RuleKind;
use crate::sink::otlp::encode::{Protocol, Signal};
use crate::sink::transport::url::{check_url, redact_url};
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
    assert_eq!(c.otlp.logs.protocol, Protocol::HttpProtobuf);
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
    assert_eq!(c.http.headers, vec![("Authorization".into(), "Bearer abc".into()), ("X-Team".into(), "pay".into())]);
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
        RetryConfig { max_attempts: 3, base_backoff: Duration::from_millis(50), max_backoff: Duration::from_secs(1) }
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
    assert!(Signal::ALL.iter().all(|s| c.otlp.signal(*s).protocol == Protocol::HttpJson && c.otlp.signal(*s).gzip));
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
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "spdy"),
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
        "OTEL_EXPORTER_OTLP_PROTOCOL: \"spdy\" is not http/protobuf, http/json or grpc; using http/protobuf".into(),
        "OTEL_EXPORTER_OTLP_ENDPOINT: \"collector:4317\" is not an http:// or https:// URL; using http://127.0.0.1:4318".into(),
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
    let (c, problems) = load(&[
        ("TANDEM_SINKS", "http,otlp,otlp"),
        ("TANDEM_HTTP_URL", "ftp://user:pw@host/x?token=1"),
        ("TANDEM_OTLP_ENDPOINT", "http://collector:4318"),
    ]);
    assert_eq!(c.sinks, vec![SinkKind::Otlp]);
    assert_eq!(
        problems,
        vec!["TANDEM_HTTP_URL: \"ftp://***@host/x?***\" is not an http:// or https:// URL; the http sink is dropped"]
    );
    // The default OTLP endpoint is tandem's own receiver: a loop, refused in one line.
    let (c, problems) = load(&[("TANDEM_SINKS", "otlp")]);
    assert_eq!(c.sinks, vec![SinkKind::Stdout]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("TANDEM_OTLP_ENDPOINT: the otlp sink's logs endpoint"), "{problems:?}");
    assert_eq!(problems[1], "TANDEM_SINKS: no usable sink left; using stdout");
    let (c, problems) = load(&[("TANDEM_SINKS", "otlp"), ("TANDEM_OTLP_RECEIVER", "off")]);
    assert_eq!((c.sinks, problems.len()), (vec![SinkKind::Otlp], 0));
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
    let (c, problems) = with_file(&[("TANDEM_CONFIG", "/etc/tandem.toml"), ("TANDEM_FLUSH", "periodic,1000")], TOML);
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
    assert_eq!(c.otlp.traces.protocol, Protocol::HttpJson);
    assert_eq!(c.batch.max_bytes, 2 * MIB);
    assert_eq!(c.rules.len(), 2);
    assert_eq!(c.rules[0].name, "cards");
    assert_eq!(c.rules[0].pattern, r"\d{16}");
    assert_eq!(c.rules[1].name, "#2");
}

#[test]
fn max_delay_from_the_environment_or_the_flush_table_with_bounds() {
    let (c, problems) = load(&[]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(c.max_delay, Duration::from_secs(60));
    assert!(c.describe().contains("max delay: 60000 ms"), "{}", c.describe());
    let (c, problems) = load(&[("TANDEM_MAX_DELAY_MS", "5_000")]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(c.max_delay, Duration::from_secs(5));
    let (c, problems) = load(&[("TANDEM_MAX_DELAY_MS", "0")]);
    assert!(problems.is_empty(), "0 is allowed: deliver before next whenever something is pending");
    assert_eq!(c.max_delay, Duration::ZERO);
    for bad in ["soon", "-1", "3600001", "1.5"] {
        let (c, problems) = load(&[("TANDEM_MAX_DELAY_MS", bad)]);
        assert_eq!(c.max_delay, Duration::from_secs(60));
        assert_eq!(
            problems,
            vec![format!(
                "TANDEM_MAX_DELAY_MS: {bad:?} is not a whole number of milliseconds between 0 and 3600000; using 60000"
            )]
        );
    }
    let toml = "[flush]\nstrategy = \"adaptive\"\nbudget_ms = 50\nmax_delay_ms = 30000\n";
    let (c, problems) = with_file(&[("TANDEM_CONFIG", "/etc/tandem.toml")], toml);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        (c.flush, c.flush_budget, c.max_delay),
        (Strategy::Adaptive, Duration::from_millis(50), Duration::from_secs(30))
    );
    let (c, _) = with_file(&[("TANDEM_CONFIG", "/etc/tandem.toml")], "max_delay_ms = 120000\n");
    assert_eq!(c.max_delay, Duration::from_secs(120), "a top-level key too");
    let (c, problems) = with_file(
        &[("TANDEM_CONFIG", "/etc/tandem.toml"), ("TANDEM_MAX_DELAY_MS", "1000")],
        "[flush]\nmax_delay_ms = \"later\"\n",
    );
    assert_eq!(c.max_delay, Duration::from_secs(1), "the environment wins");
    assert!(problems.is_empty(), "{problems:?}");
    let (c, problems) = with_file(&[("TANDEM_CONFIG", "/etc/tandem.toml")], "[flush]\nmax_delay_ms = \"later\"\n");
    assert_eq!(c.max_delay, Duration::from_secs(60));
    assert_eq!(
        problems,
        vec!["TANDEM_MAX_DELAY_MS (from /etc/tandem.toml): \"later\" is not a whole number of milliseconds between 0 and 3600000; using 60000"]
    );
    let (c, _) = load(&[("TANDEM_FLUSH", "end")]);
    assert!(!c.describe().contains("max delay"), "only adaptive uses it");
}

#[test]
fn file_problems_name_the_file() {
    let (c, problems) =
        with_file(&[("TANDEM_CONFIG", "/etc/tandem.toml")], "flush = \"never\"\nmystery = 1\n[http]\nproxy = \"x\"\n");
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
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("TANDEM_RULES", r#"[{"kind":"mask","name":"cards","pattern":"x"}]"#),
        ("AWS_LAMBDA_FUNCTION_NAME", "checkout"),
    ]);
    let d = c.describe();
    assert!(!d.contains("SECRET") && !d.contains("pw@"), "{d}");
    for want in [
        "sinks: stdout, http, otlp",
        "stdout: CloudWatch EMF, namespace \"Tandem\"",
        "http: NDJSON to https://***@logs.example.com/in?***",
        "logs: http/protobuf http://collector:4318/v1/logs, gzip off, timeout 10000 ms (headers: x-api-key=***)",
        "otlp receiver: http 127.0.0.1:4318, grpc 127.0.0.1:4317",
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

#[test]
fn deep_nesting_is_a_problem_not_a_stack_overflow() {
    // 40 KB of `[`: the depth that aborted the extension before the bound.
    let deep = format!("rules = {}{}\n", "[".repeat(20_000), "]".repeat(20_000));
    let (c, problems) = Config::load_with(env(&[("TANDEM_CONFIG", "/etc/tandem.toml")]), |_| Ok(deep.clone()));
    assert_eq!(c.config_file, None, "the file is ignored");
    assert_eq!(c.sinks, vec![SinkKind::Stdout]);
    assert_eq!(
        problems.iter().map(Problem::to_string).collect::<Vec<_>>(),
        vec![format!(
            "TANDEM_CONFIG: cannot parse /etc/tandem.toml: line 1: arrays or inline tables nested deeper than {} levels; file ignored",
            load::MAX_NESTING
        )]
    );
    // Inline tables count too.
    let deep = format!("x = {}{}\n", "{a = ".repeat(5_000), "}".repeat(5_000));
    let (_, problems) = Config::load_with(env(&[("TANDEM_CONFIG", "/etc/tandem.toml")]), |_| Ok(deep.clone()));
    assert!(problems[0].message.contains("nested deeper than"), "{problems:?}");
}

#[test]
fn nesting_scan_skips_strings_and_comments() {
    let ok = |t: &str| load::check_nesting(t, 2);
    assert_eq!(ok("a = [[1], [2]]\n[[rules]]\nkind = \"mask\"\n"), Ok(()));
    assert_eq!(
        ok("a = \"[[[[\" # [[[[\nb = '{{{{'\nc = \"\"\"\n[[[\n\"\"\"\nd = '''[[['''\ne = \"\\\"[[[\"\n"),
        Ok(())
    );
    assert_eq!(
        ok("a = [[1]]\n# ]]]]\nb = [[[2]]]"),
        Err("line 3: arrays or inline tables nested deeper than 2 levels".into())
    );
    // The real file of the other tests is well within the bound.
    assert_eq!(load::check_nesting(TOML, load::MAX_NESTING), Ok(()));
}

#[test]
fn the_file_read_is_bounded_and_regular() {
    let dir = std::env::temp_dir().join(format!("tandem-config-read-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).expect("create a test directory");
    let msg = |p: &Path| read_config_file(p).map_err(|e| e.to_string());
    // Endless, blocking or not a file at all: refused before a byte is read.
    assert_eq!(msg(Path::new("/dev/zero")), Err("not a regular file (a device, a FIFO or a socket)".into()));
    assert_eq!(msg(&dir), Err("a directory".into()));
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().map(|s| s.success()).unwrap_or(false);
    if made {
        assert_eq!(msg(&fifo), Err("not a regular file (a device, a FIFO or a socket)".into()), "does not block");
    }
    // Huge: refused by its size (sparse, so the test writes nothing).
    let huge = dir.join("huge.toml");
    std::fs::File::create(&huge).and_then(|f| f.set_len(8 * GIB)).expect("a sparse file");
    assert_eq!(msg(&huge), Err("larger than 1MiB (a configuration is a few KiB)".into()));
    let fine = dir.join("fine.toml");
    std::fs::write(&fine, "sinks = [\"file\"]\n").expect("write");
    assert_eq!(msg(&fine), Ok("sinks = [\"file\"]\n".into()));
    // Through the loader: a problem, and the defaults.
    let (c, problems) = Config::load(env(&[("TANDEM_CONFIG", "/dev/zero")]));
    assert_eq!(c.sinks, vec![SinkKind::Stdout]);
    assert_eq!(
        problems.iter().map(Problem::to_string).collect::<Vec<_>>(),
        vec!["TANDEM_CONFIG: cannot read /dev/zero: not a regular file (a device, a FIFO or a socket); file ignored"]
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_variables_are_reported_with_the_closest_name() {
    let vars = [
        ("TANDEM_SNIKS", "file"),
        ("OTEL_EXPORTER_OTLP_ENDPOIN", "http://x"),
        ("TANDEM_SINKS", "stdout"),
        ("TANDEM_ZZZZZZZZZZZZ", "1"),
        ("TANDEM_PREFETCH", "ssm:/a"),
        ("PATH", "/bin"),
        ("TANDEM_EMPTY", ""),
    ];
    let names: Vec<String> = vars.iter().map(|(k, _)| k.to_string()).collect();
    let get = env(&vars);
    let (c, problems) = Config::load_checked(|k| get(k).filter(|v| !v.is_empty()), &names, no_file);
    assert_eq!(c.sinks, vec![SinkKind::Stdout]);
    assert_eq!(
        problems.iter().map(Problem::to_string).collect::<Vec<_>>(),
        vec![
            "TANDEM_SNIKS: not a setting tandem knows (did you mean TANDEM_SINKS?); ignored",
            "OTEL_EXPORTER_OTLP_ENDPOIN: not a setting tandem knows (did you mean OTEL_EXPORTER_OTLP_ENDPOINT?); ignored",
            "TANDEM_ZZZZZZZZZZZZ: not a setting tandem knows; ignored",
        ]
    );
}

#[test]
fn describe_lists_only_the_rules_that_apply() {
    let (c, _) = load(&[(
        "TANDEM_RULES",
        r#"[{"kind":"mask","name":"cards","pattern":"\\d{16}"},{"kind":"exclude","name":"broken","pattern":"("}]"#,
    )]);
    let d = c.describe();
    assert!(
        d.contains("  rules: mask \"cards\", on the first 256KiB of a line (skipped, invalid: exclude \"broken\")\n"),
        "{d}"
    );
}
