//! sink::stdout::encode: CloudWatch Embedded Metric Format (EMF): one JSON document per
//! line, written to the extension's stdout, from which CloudWatch Logs extracts metrics.
//!
//! Owns the EMF rendering of [`Invocation`] (namespace from [`EmfOptions::namespace`]),
//! of [`HealthSnapshot`] (namespace [`EmfOptions::health_namespace`]) and of the
//! guard's security findings (metric `SecurityFindings` by `kind`, in the invocation
//! namespace). Follows the
//! specification: every dimension key is a top-level member holding a string, every
//! metric a top-level number, at most 100 metrics per directive, at most 30 keys per
//! dimension set, units from CloudWatch's set. Other log records are not EMF: they are
//! not written here. Pure: no I/O.
//!
//! Caution for the stdout sink: what the extension prints comes back through the
//! Telemetry API as `extension` records. Drop those that [`is_emf_document`] recognises
//! to avoid a feedback loop.

use crate::encode::{push_f64, push_json_str, push_key, push_u64};
use crate::model::{HealthSnapshot, Invocation, Item, LogRecord, Source};

/// EMF limits (CloudWatch).
pub const MAX_METRICS_PER_DIRECTIVE: usize = 100;
/// At most this many keys per dimension set.
pub const MAX_DIMENSIONS_PER_SET: usize = 30;

/// The dimension every document carries.
pub const FUNCTION_NAME: &str = "FunctionName";

/// Top-level member names the encoder writes itself: a configured dimension may not use
/// them.
pub const RESERVED_NAMES: &[&str] = &[
    "_aws",
    FUNCTION_NAME,
    "Duration",
    "BilledDuration",
    "InitDuration",
    "RestoreDuration",
    "PostRuntimeExtensionDuration",
    "ResponseLatency",
    "ResponseDuration",
    "RuntimeDuration",
    "ProducedBytes",
    "MaxMemoryUsed",
    "MemorySize",
    "ColdStart",
    "Errors",
    "Timeouts",
    "OutOfMemory",
    "EstimatedCost",
    "requestId",
    "status",
    "errorType",
    "traceId",
    "version",
    "complete",
    "RecordsIn",
    "Delivered",
    "Retried",
    "Spooled",
    "Dropped",
    "ParseErrors",
    "Flushes",
    "FlushLatency",
    "FlushLatencyMax",
    "BufferedRecords",
    "BufferedBytes",
    "SpoolBytes",
    "droppedByReason",
    SECURITY_FINDINGS,
    SECURITY_KIND,
    "rule",
    "severity",
];

/// The metric counting the guard's findings.
pub const SECURITY_FINDINGS: &str = "SecurityFindings";
/// Its dimension: the finding's kind (`process`, `network`, `file`, `guard`).
pub const SECURITY_KIND: &str = "kind";

#[derive(Debug, Clone, PartialEq, Eq)]
/// The EMF settings of the `stdout` sink.
pub struct EmfOptions {
    /// Namespace of invocation metrics (`TANDEM_EMF_NAMESPACE`, default `Tandem`).
    pub namespace: String,
    /// Namespace of the extension's own health metrics (default `Tandem/Extension`).
    pub health_namespace: String,
    /// Value of the `FunctionName` dimension (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function_name: String,
    /// Extra dimensions `(name, value)`: written as top-level members, and as a second
    /// dimension set `["FunctionName", name, …]` next to `["FunctionName"]`.
    pub dimensions: Vec<(String, String)>,
}

impl Default for EmfOptions {
    fn default() -> Self {
        EmfOptions {
            namespace: "Tandem".into(),
            health_namespace: "Tandem/Extension".into(),
            function_name: String::new(),
            dimensions: Vec::new(),
        }
    }
}

/// The longest dimension value CloudWatch accepts.
pub const MAX_DIMENSION_VALUE_LEN: usize = 1024;

/// Checks a configured dimension name as CloudWatch does: 1 to 255 ASCII characters
/// without control characters, at least one not a space, not starting with `:`, and
/// not one of [`RESERVED_NAMES`].
pub fn check_dimension_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err("a dimension name must be 1 to 255 characters".into());
    }
    if !name.bytes().all(|c| (0x20..0x7f).contains(&c)) || name.starts_with(':') {
        return Err("a dimension name must be printable ASCII and not start with ':'".into());
    }
    if name.trim().is_empty() {
        return Err("a dimension name must hold a character that is not a space".into());
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!("{name:?} is a name the EMF document already uses"));
    }
    Ok(())
}

/// Checks a dimension value as CloudWatch does (a document with another one is
/// rejected whole): 1 to 1024 ASCII characters, no control character, at least one not a
/// space. The error (what a valid value is) never quotes the value.
pub fn check_dimension_value(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_DIMENSION_VALUE_LEN {
        return Err(format!("a value of 1 to {MAX_DIMENSION_VALUE_LEN} characters"));
    }
    if !value.bytes().all(|c| (0x20..0x7f).contains(&c)) {
        return Err("an ASCII value without control characters".into());
    }
    if value.trim().is_empty() {
        return Err("a value with a character that is not a space".into());
    }
    Ok(())
}

/// True when `line` is an EMF document (starts with `{"_aws":`), e.g. one this extension
/// printed and the Telemetry API delivered back as an `extension` record.
pub fn is_emf_document(line: &str) -> bool {
    line.trim_start().starts_with("{\"_aws\":")
}

#[derive(Clone, Copy)]
enum Num {
    F(f64),
    U(u64),
}

struct Metric {
    name: &'static str,
    unit: &'static str,
    value: Num,
}

fn m(name: &'static str, unit: &'static str, value: Num) -> Metric {
    Metric { name, unit, value }
}

/// Appends the EMF document of `item` (one line) and returns true; log records other
/// than security findings are not EMF and write nothing (false). Health documents are written with absolute counters
/// (see [`encode_health`] for deltas).
pub fn encode_item(item: &Item, opts: &EmfOptions, out: &mut Vec<u8>) -> bool {
    match item {
        Item::Invocation(i) => encode_invocation(i, opts, out),
        Item::Health(h) => encode_health(h, None, opts, out),
        Item::Log(r) => return encode_security(r, opts, out),
        Item::Otlp(_) => return false,
    }
    true
}

/// The kind of a security finding: a record from the extension itself with a
/// `security.kind` attribute (the guard's, `guard::finding`) that is a valid dimension
/// value. `None` for any other record (the function's lines, tandem's other lines).
pub fn security_kind(r: &LogRecord) -> Option<&str> {
    if r.source != Source::Extension {
        return None;
    }
    r.attributes.get("security.kind").and_then(|v| v.as_str()).filter(|k| check_dimension_value(k).is_ok())
}

/// Appends one EMF document (and `\n`) for a security finding: `SecurityFindings`
/// (Count, 1) with the dimension `kind`; properties `rule`, `severity`, `requestId`.
/// Returns false (nothing written) for a record that is not a finding.
pub fn encode_security(r: &LogRecord, opts: &EmfOptions, out: &mut Vec<u8>) -> bool {
    let Some(kind) = security_kind(r) else { return false };
    begin_with(
        out,
        r.time_ms,
        &opts.namespace,
        opts,
        &[(SECURITY_KIND, kind)],
        &[m(SECURITY_FINDINGS, "Count", Num::U(1))],
    );
    let attr = |k: &str| r.attributes.get(k).and_then(|v| v.as_str());
    push_prop(out, "rule", attr("security.rule"));
    push_prop(out, "severity", attr("security.severity"));
    push_prop(out, "requestId", r.request_id.as_deref());
    out.extend_from_slice(b"}\n");
    true
}

/// `,"key":"value"` when there is a value.
fn push_prop(out: &mut Vec<u8>, key: &str, v: Option<&str>) {
    if let Some(v) = v {
        out.push(b',');
        push_key(out, key);
        push_json_str(out, v);
    }
}

/// Appends one EMF document (and `\n`) for an invocation. Metrics (only those known are
/// written): Duration, BilledDuration, InitDuration (cold start), RestoreDuration
/// (SnapStart), PostRuntimeExtensionDuration, ResponseLatency, ResponseDuration,
/// RuntimeDuration (Milliseconds), ProducedBytes (Bytes), MaxMemoryUsed, MemorySize
/// (Megabytes), ColdStart, Errors, Timeouts, OutOfMemory (Count, 0 or 1), EstimatedCost
/// (None, USD). Properties: requestId, status, errorType, traceId, version, complete.
pub fn encode_invocation(inv: &Invocation, opts: &EmfOptions, out: &mut Vec<u8>) {
    let ms = "Milliseconds";
    let mut metrics = Vec::with_capacity(16);
    metrics.push(m("Duration", ms, Num::F(inv.duration_ms)));
    metrics.push(m("BilledDuration", ms, Num::U(inv.billed_duration_ms)));
    if inv.cold_start {
        if let Some(d) = inv.init_duration_ms {
            metrics.push(m("InitDuration", ms, Num::F(d)));
        }
    }
    let optional = [
        ("RestoreDuration", inv.restore_duration_ms),
        ("PostRuntimeExtensionDuration", inv.post_runtime_extension_ms),
        ("ResponseLatency", inv.response_latency_ms),
        ("ResponseDuration", inv.response_duration_ms),
        ("RuntimeDuration", inv.runtime_duration_ms),
    ];
    for (name, v) in optional {
        if let Some(v) = v {
            metrics.push(m(name, ms, Num::F(v)));
        }
    }
    if let Some(b) = inv.produced_bytes {
        metrics.push(m("ProducedBytes", "Bytes", Num::U(b)));
    }
    if inv.complete {
        // A partial invocation has no memory report: writing 0 would skew the metric.
        metrics.push(m("MaxMemoryUsed", "Megabytes", Num::U(inv.max_memory_used_mb)));
    }
    if inv.memory_size_mb > 0 {
        metrics.push(m("MemorySize", "Megabytes", Num::U(inv.memory_size_mb)));
    }
    let flag = |b: bool| Num::U(u64::from(b));
    metrics.push(m("ColdStart", "Count", flag(inv.cold_start)));
    metrics.push(m("Errors", "Count", flag(inv.is_error())));
    metrics.push(m("Timeouts", "Count", flag(inv.is_timeout())));
    metrics.push(m("OutOfMemory", "Count", flag(inv.out_of_memory)));
    metrics.push(m("EstimatedCost", "None", Num::F(inv.estimated_cost_usd)));

    begin(out, inv.start_ms, &opts.namespace, opts, &metrics);
    out.push(b',');
    push_key(out, "requestId");
    push_json_str(out, &inv.request_id);
    out.push(b',');
    push_key(out, "status");
    push_json_str(out, &inv.status);
    push_prop(out, "errorType", inv.error_type.as_deref());
    push_prop(out, "traceId", inv.trace_id.as_deref());
    push_prop(out, "version", inv.version.as_deref());
    out.push(b',');
    push_key(out, "complete");
    out.extend_from_slice(if inv.complete { b"true" } else { b"false" });
    out.extend_from_slice(b"}\n");
}

/// Appends one EMF document (and `\n`) for the extension's health. Counters (RecordsIn,
/// Delivered, Retried, Spooled, Dropped, ParseErrors, Flushes) are the change since
/// `previous` (CloudWatch sums per period, so totals would be meaningless), or the totals
/// when there is no previous snapshot; gauges (BufferedRecords, BufferedBytes,
/// SpoolBytes, FlushLatency, FlushLatencyMax) are current values. Property
/// `droppedByReason` holds the totals by reason.
pub fn encode_health(h: &HealthSnapshot, previous: Option<&HealthSnapshot>, opts: &EmfOptions, out: &mut Vec<u8>) {
    let d = |f: fn(&HealthSnapshot) -> u64| Num::U(f(h).saturating_sub(previous.map_or(0, f)));
    let metrics = [
        m("RecordsIn", "Count", d(|s| s.records_in)),
        m("Delivered", "Count", d(|s| s.delivered)),
        m("Retried", "Count", d(|s| s.retried)),
        m("Spooled", "Count", d(|s| s.spooled)),
        m("Dropped", "Count", d(HealthSnapshot::dropped_total)),
        m("ParseErrors", "Count", d(|s| s.parse_errors)),
        m("Flushes", "Count", d(|s| s.flushes)),
        m("BufferedRecords", "Count", Num::U(h.buffered_records)),
        m("BufferedBytes", "Bytes", Num::U(h.buffered_bytes)),
        m("SpoolBytes", "Bytes", Num::U(h.spool_bytes)),
        m("FlushLatency", "Milliseconds", Num::F(h.flush_latency_ms_last)),
        m("FlushLatencyMax", "Milliseconds", Num::F(h.flush_latency_ms_max)),
    ];
    begin(out, h.time_ms, &opts.health_namespace, opts, &metrics);
    out.push(b',');
    push_key(out, "droppedByReason");
    out.push(b'{');
    for (i, (reason, n)) in h.dropped.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_str(out, reason);
        out.push(b':');
        push_u64(out, *n);
    }
    out.extend_from_slice(b"}}\n");
}

/// Writes `{"_aws":{...},"FunctionName":..,<dims>,<metric values>` (object left open).
fn begin(out: &mut Vec<u8>, timestamp_ms: u64, namespace: &str, opts: &EmfOptions, metrics: &[Metric]) {
    begin_with(out, timestamp_ms, namespace, opts, &[], metrics);
}

/// [`begin`] with the document's own dimensions (`own`, valid names and values) after
/// `FunctionName` in every dimension set.
fn begin_with(
    out: &mut Vec<u8>,
    timestamp_ms: u64,
    namespace: &str,
    opts: &EmfOptions,
    own: &[(&str, &str)],
    metrics: &[Metric],
) {
    debug_assert!(metrics.len() <= MAX_METRICS_PER_DIRECTIVE);
    let room = MAX_DIMENSIONS_PER_SET - 1 - own.len();
    let extra = &opts.dimensions[..opts.dimensions.len().min(room)];
    out.extend_from_slice(b"{\"_aws\":{\"Timestamp\":");
    push_u64(out, timestamp_ms);
    out.extend_from_slice(b",\"CloudWatchMetrics\":[{\"Namespace\":");
    push_json_str(out, namespace);
    out.extend_from_slice(b",\"Dimensions\":[[\"FunctionName\"");
    for (name, _) in own {
        out.push(b',');
        push_json_str(out, name);
    }
    out.push(b']');
    if !extra.is_empty() {
        out.extend_from_slice(b",[\"FunctionName\"");
        for name in own.iter().map(|(n, _)| *n).chain(extra.iter().map(|(n, _)| n.as_str())) {
            out.push(b',');
            push_json_str(out, name);
        }
        out.push(b']');
    }
    out.extend_from_slice(b"],\"Metrics\":[");
    for (i, metric) in metrics.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"Name\":\"");
        out.extend_from_slice(metric.name.as_bytes());
        out.extend_from_slice(b"\",\"Unit\":\"");
        out.extend_from_slice(metric.unit.as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}]},\"FunctionName\":");
    let function = if opts.function_name.is_empty() { "unknown" } else { opts.function_name.as_str() };
    push_json_str(out, function);
    for (name, value) in own.iter().copied().chain(extra.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
        out.push(b',');
        push_json_str(out, name);
        out.push(b':');
        push_json_str(out, value);
    }
    for metric in metrics {
        out.push(b',');
        push_key(out, metric.name);
        match metric.value {
            Num::F(f) => push_f64(out, f),
            Num::U(u) => push_u64(out, u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    use crate::sink::stdout::spec_tests::UNITS;

    fn opts() -> EmfOptions {
        EmfOptions {
            function_name: "checkout".into(),
            dimensions: vec![("Environment".into(), "prod".into())],
            ..EmfOptions::default()
        }
    }

    fn cold() -> Invocation {
        Invocation {
            request_id: "r-1".into(),
            version: Some("$LATEST".into()),
            start_ms: 1_704_067_200_000,
            duration_ms: 100.25,
            billed_duration_ms: 101,
            init_duration_ms: Some(150.5),
            cold_start: true,
            response_latency_ms: Some(90.0),
            produced_bytes: Some(42),
            runtime_duration_ms: Some(95.5),
            post_runtime_extension_ms: Some(4.75),
            max_memory_used_mb: 60,
            memory_size_mb: 128,
            status: "timeout".into(),
            error_type: Some("Sandbox.Timedout".into()),
            estimated_cost_usd: 4.1e-7,
            trace_id: Some("1-5759e988-bd862e3fe1be46a994272793".into()),
            complete: true,
            ..Invocation::default()
        }
    }

    /// Checks a document against the EMF specification and returns it parsed.
    fn validate(line: &[u8]) -> Value {
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&c| c == b'\n').count(), 1, "one line");
        let doc: Value = serde_json::from_slice(line).unwrap();
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_u64());
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        for d in directives {
            assert!(d["Namespace"].as_str().is_some_and(|n| !n.is_empty()));
            for set in d["Dimensions"].as_array().unwrap() {
                let set = set.as_array().unwrap();
                assert!(!set.is_empty() && set.len() <= MAX_DIMENSIONS_PER_SET);
                for key in set {
                    assert!(doc[key.as_str().unwrap()].is_string(), "dimension {key} must be a top-level string");
                }
            }
            let metrics = d["Metrics"].as_array().unwrap();
            assert!(metrics.len() <= MAX_METRICS_PER_DIRECTIVE);
            for metric in metrics {
                let name = metric["Name"].as_str().unwrap();
                assert!(doc[name].is_number(), "metric {name} must be a top-level number");
                assert!(UNITS.contains(&metric["Unit"].as_str().unwrap()), "{metric}");
            }
        }
        doc
    }

    #[test]
    fn invocation_document_follows_the_spec() {
        let mut out = Vec::new();
        encode_invocation(&cold(), &opts(), &mut out);
        let doc = validate(&out);
        let d = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_704_067_200_000u64);
        assert_eq!(d["Namespace"], "Tandem");
        assert_eq!(d["Dimensions"], json!([["FunctionName"], ["FunctionName", "Environment"]]));
        assert_eq!(doc["FunctionName"], "checkout");
        assert_eq!(doc["Environment"], "prod");
        assert_eq!(doc["Duration"], 100.25);
        assert_eq!(doc["BilledDuration"], 101);
        assert_eq!(doc["InitDuration"], 150.5);
        assert_eq!(doc["PostRuntimeExtensionDuration"], 4.75);
        assert_eq!(doc["ResponseLatency"], 90);
        assert_eq!(doc["ProducedBytes"], 42);
        assert_eq!(doc["MaxMemoryUsed"], 60);
        assert_eq!(doc["MemorySize"], 128);
        assert_eq!(doc["ColdStart"], 1);
        assert_eq!(doc["Errors"], 1);
        assert_eq!(doc["Timeouts"], 1);
        assert_eq!(doc["OutOfMemory"], 0);
        assert_eq!(doc["EstimatedCost"], 4.1e-7);
        assert_eq!(doc["requestId"], "r-1");
        assert_eq!(doc["status"], "timeout");
        assert_eq!(doc["errorType"], "Sandbox.Timedout");
        assert_eq!(doc["traceId"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(doc["complete"], true);
        let units: Vec<(String, String)> = d["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Name"].as_str().unwrap().to_owned(), m["Unit"].as_str().unwrap().to_owned()))
            .collect();
        assert!(units.contains(&("ProducedBytes".into(), "Bytes".into())));
        assert!(units.contains(&("MaxMemoryUsed".into(), "Megabytes".into())));
        assert!(units.contains(&("EstimatedCost".into(), "None".into())));
        assert!(units.contains(&("Duration".into(), "Milliseconds".into())));
    }

    #[test]
    fn warm_and_partial_invocations_omit_what_is_unknown() {
        let warm = Invocation {
            cold_start: false,
            init_duration_ms: None,
            status: "success".into(),
            error_type: None,
            trace_id: None,
            response_latency_ms: None,
            produced_bytes: None,
            ..cold()
        };
        let mut out = Vec::new();
        encode_invocation(&warm, &EmfOptions::default(), &mut out);
        let doc = validate(&out);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["FunctionName"]]));
        assert_eq!(doc["FunctionName"], "unknown");
        for absent in ["InitDuration", "ResponseLatency", "ProducedBytes", "errorType", "traceId"] {
            assert!(doc.get(absent).is_none(), "{absent}");
        }
        assert_eq!((doc["ColdStart"].as_u64(), doc["Errors"].as_u64()), (Some(0), Some(0)));

        let partial = Invocation { complete: false, memory_size_mb: 0, status: "unknown".into(), ..warm };
        out.clear();
        encode_invocation(&partial, &EmfOptions::default(), &mut out);
        let doc = validate(&out);
        assert!(doc.get("MaxMemoryUsed").is_none() && doc.get("MemorySize").is_none());
        assert_eq!(doc["complete"], false);
    }

    #[test]
    fn health_document_reports_deltas() {
        let prev = HealthSnapshot {
            records_in: 100,
            delivered: 90,
            dropped: [("rule".to_string(), 3u64)].into_iter().collect(),
            ..HealthSnapshot::default()
        };
        let now = HealthSnapshot {
            time_ms: 1_704_067_260_000,
            records_in: 150,
            delivered: 140,
            retried: 2,
            dropped: [("rule".to_string(), 5u64), ("spool_full".to_string(), 1u64)].into_iter().collect(),
            buffered_records: 7,
            spool_bytes: 4096,
            flush_latency_ms_last: 12.5,
            ..HealthSnapshot::default()
        };
        let mut out = Vec::new();
        encode_health(&now, Some(&prev), &opts(), &mut out);
        let doc = validate(&out);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Tandem/Extension");
        assert_eq!(doc["RecordsIn"], 50);
        assert_eq!(doc["Delivered"], 50);
        assert_eq!(doc["Retried"], 2);
        assert_eq!(doc["Dropped"], 3);
        assert_eq!(doc["BufferedRecords"], 7);
        assert_eq!(doc["SpoolBytes"], 4096);
        assert_eq!(doc["FlushLatency"], 12.5);
        assert_eq!(doc["droppedByReason"], json!({"rule": 5, "spool_full": 1}));
        out.clear();
        assert!(encode_item(&Item::from(now), &opts(), &mut out));
        assert_eq!(validate(&out)["RecordsIn"], 150);
    }

    #[test]
    fn logs_are_not_emf_and_own_documents_are_recognised() {
        let mut out = Vec::new();
        let log = crate::logs::to_log_record(
            0,
            crate::model::Source::Function,
            &tandem_wire::LogRecord::Text("x".into()),
            None,
        );
        assert!(!encode_item(&Item::Log(log), &opts(), &mut out));
        assert!(out.is_empty());
        let mut fake = crate::logs::to_log_record(
            0,
            crate::model::Source::Function,
            &tandem_wire::LogRecord::Text("x".into()),
            None,
        );
        fake.attributes.insert("security.kind".into(), "process".into());
        assert!(!encode_item(&Item::Log(fake), &opts(), &mut out), "the function cannot make a finding");
        assert!(out.is_empty());
        encode_invocation(&cold(), &opts(), &mut out);
        assert!(is_emf_document(std::str::from_utf8(&out).unwrap()));
        assert!(!is_emf_document("{\"level\":\"INFO\"}"));
    }

    #[test]
    fn security_findings_are_a_metric_by_kind() {
        let mut f =
            crate::guard::finding::Finding::stopped("gone", Some("req-9".into())).to_log_record(1_700_000_000_123);
        let mut o = opts();
        o.dimensions = vec![("Stage".into(), "prod".into())];
        let mut out = Vec::new();
        assert!(encode_item(&Item::Log(f.clone()), &o, &mut out));
        let doc = validate(&out);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let d = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], "Tandem");
        assert_eq!(d["Dimensions"], json!([["FunctionName", "kind"], ["FunctionName", "kind", "Stage"]]));
        assert_eq!(d["Metrics"], json!([{"Name": "SecurityFindings", "Unit": "Count"}]));
        assert_eq!(
            (&doc["kind"], &doc["SecurityFindings"], &doc["Stage"]),
            (&json!("guard"), &json!(1), &json!("prod"))
        );
        assert_eq!(
            (&doc["rule"], &doc["severity"], &doc["requestId"]),
            (&json!("guard.scan_stopped"), &json!("high"), &json!("req-9"))
        );
        // A kind CloudWatch would refuse as a dimension: no document rather than a bad one.
        f.attributes.insert("security.kind".into(), "\u{1}".into());
        out.clear();
        assert!(!encode_item(&Item::Log(f), &o, &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn dimension_names_are_checked() {
        assert!(check_dimension_name("Environment").is_ok());
        assert!(check_dimension_name("").is_err());
        assert!(check_dimension_name("Duration").is_err());
        assert!(check_dimension_name("FunctionName").is_err());
        assert!(check_dimension_name(":x").is_err());
        assert!(check_dimension_name("naïve").is_err());
    }

    #[test]
    fn dimension_values_are_checked_as_cloudwatch_does() {
        assert!(check_dimension_value("prod").is_ok());
        assert!(check_dimension_value(&"x".repeat(1024)).is_ok());
        for bad in ["", "   ", "caf\u{e9}", "a\tb", "line\nbreak", "nul\0", "\u{7f}"] {
            assert!(check_dimension_value(bad).is_err(), "{bad:?}");
        }
        assert!(check_dimension_value(&"x".repeat(1025)).is_err());
        assert!(check_dimension_name("  ").is_err());
    }

    #[test]
    fn dimension_strings_are_escaped() {
        let o = EmfOptions {
            function_name: "f\"n".into(),
            dimensions: vec![("Team".into(), "a\\b".into())],
            ..EmfOptions::default()
        };
        let mut out = Vec::new();
        encode_invocation(&cold(), &o, &mut out);
        let doc = validate(&out);
        assert_eq!(doc["FunctionName"], "f\"n");
        assert_eq!(doc["Team"], "a\\b");
    }
}
