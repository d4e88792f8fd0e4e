//! Property tests: every EMF document the stdout sink writes, for any record and any
//! configuration, passes the rules of the CloudWatch Embedded Metric Format
//! specification (checked by [`check_emf`], written from the specification, not from
//! the encoder).

use super::encode::{encode_health, encode_invocation, encode_security};
use crate::config::Config;
use crate::model::{HealthSnapshot, Invocation};
use proptest::prelude::*;
use serde_json::Value;

/// The units CloudWatch accepts (`MetricDatum.Unit`).
pub(crate) const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

fn cloudwatch_text(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|c| (0x20..0x7f).contains(&c)) && !s.trim().is_empty()
}

/// The specification's rules for one document (one line), with the timestamp it must
/// carry; `Err` says which rule is broken.
pub(crate) fn check_emf(line: &[u8], timestamp_ms: u64) -> Result<(), String> {
    if line.last() != Some(&b'\n') || line.iter().filter(|&&c| c == b'\n').count() != 1 {
        return Err("a document is exactly one line".into());
    }
    let doc: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let root = doc.as_object().ok_or("the root is not an object")?;
    let aws = root.get("_aws").and_then(Value::as_object).ok_or("no _aws object")?;
    if aws.get("Timestamp").and_then(Value::as_u64) != Some(timestamp_ms) {
        return Err(format!("Timestamp {:?} is not {timestamp_ms} (ms since the epoch)", aws.get("Timestamp")));
    }
    let directives = aws.get("CloudWatchMetrics").and_then(Value::as_array).ok_or("no CloudWatchMetrics array")?;
    if directives.is_empty() {
        return Err("CloudWatchMetrics is empty".into());
    }
    for d in directives {
        let ns = d.get("Namespace").and_then(Value::as_str).ok_or("a directive without Namespace")?;
        if !cloudwatch_text(ns, 255) {
            return Err(format!("Namespace {ns:?}"));
        }
        let sets = d.get("Dimensions").and_then(Value::as_array).ok_or("a directive without Dimensions")?;
        for set in sets {
            let set = set.as_array().ok_or("a dimension set is not an array")?;
            if set.len() > 30 {
                return Err(format!("a dimension set of {} keys (at most 30)", set.len()));
            }
            for key in set {
                let key = key.as_str().ok_or("a dimension key is not a string")?;
                if !cloudwatch_text(key, 255) || key.starts_with(':') {
                    return Err(format!("dimension name {key:?}"));
                }
                match root.get(key) {
                    Some(Value::String(v)) if cloudwatch_text(v, 1024) => {}
                    other => return Err(format!("dimension {key:?} is not a valid top-level string: {other:?}")),
                }
            }
        }
        let metrics = d.get("Metrics").and_then(Value::as_array).ok_or("a directive without Metrics")?;
        if metrics.len() > 100 {
            return Err(format!("{} metrics in a directive (at most 100)", metrics.len()));
        }
        let mut names = std::collections::HashSet::new();
        for m in metrics {
            let name = m.get("Name").and_then(Value::as_str).ok_or("a metric without Name")?;
            if !cloudwatch_text(name, 1024) || !names.insert(name) {
                return Err(format!("metric name {name:?} (invalid or repeated)"));
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(a)) if !a.is_empty() && a.len() <= 100 && a.iter().all(Value::is_number) => {}
                other => return Err(format!("metric {name:?} is not a top-level number: {other:?}")),
            }
            if let Some(unit) = m.get("Unit") {
                if !unit.as_str().is_some_and(|u| UNITS.contains(&u)) {
                    return Err(format!("metric {name:?} has unit {unit}"));
                }
            }
        }
    }
    Ok(())
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0f64..1e7,
        1 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(-1.0),
    ]
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9._-]{0,40}", any::<String>(), "[\\x00-\\x1f\"\\\\]{0,8}",]
}

fn any_invocation() -> BoxedStrategy<Invocation> {
    let texts = (any_text(), any_text(), proptest::option::of(any_text()), proptest::option::of(any_text()))
        .prop_map(|(request_id, status, error_type, trace_id)| Invocation {
            request_id,
            status,
            error_type,
            trace_id,
            ..Invocation::default()
        })
        .boxed();
    let durations = proptest::collection::vec(proptest::option::of(any_f64()), 8).boxed();
    let numbers = (any::<u64>(), any::<u64>(), proptest::option::of(any::<u64>()), any::<u64>(), any::<u64>()).boxed();
    let flags = (any::<bool>(), any::<bool>(), any::<bool>(), proptest::option::of(any_text())).boxed();
    (texts, durations, numbers, flags)
        .prop_map(|(base, d, (start_ms, billed, produced, max_mem, mem), (cold, oom, complete, version))| Invocation {
            version,
            start_ms,
            duration_ms: d[0].unwrap_or(0.0),
            billed_duration_ms: billed,
            init_duration_ms: d[1],
            restore_duration_ms: d[2],
            post_runtime_extension_ms: d[3],
            response_latency_ms: d[4],
            response_duration_ms: d[5],
            runtime_duration_ms: d[6],
            produced_bytes: produced,
            max_memory_used_mb: max_mem,
            memory_size_mb: mem,
            cold_start: cold,
            out_of_memory: oom,
            complete,
            estimated_cost_usd: d[7].unwrap_or(f64::NAN),
            ..base
        })
        .boxed()
}

fn any_health() -> BoxedStrategy<HealthSnapshot> {
    (
        any::<u64>(),
        proptest::collection::vec(any::<u64>(), 9),
        proptest::collection::btree_map(any_text(), any::<u64>(), 0..5),
        (any_f64(), any_f64()),
    )
        .prop_map(|(time_ms, c, dropped, (last, max))| HealthSnapshot {
            time_ms,
            records_in: c[0],
            delivered: c[1],
            retried: c[2],
            spooled: c[3],
            parse_errors: c[4],
            flushes: c[5],
            buffered_records: c[6],
            buffered_bytes: c[7],
            spool_bytes: c[8],
            flush_latency_ms_last: last,
            flush_latency_ms_max: max,
            dropped,
            ..HealthSnapshot::default()
        })
        .boxed()
}

/// `TANDEM_EMF_DIMENSIONS` as a user may write it: many pairs, any characters
/// (percent-encoded or not), names and values of any length.
fn any_dimensions() -> BoxedStrategy<String> {
    let name = prop_oneof!["[A-Za-z][A-Za-z0-9]{0,12}", any_text(), "[a-z]{256}"];
    let value = prop_oneof!["[ -~]{0,16}", any_text(), "%[0-9A-F]{2}[a-z]{0,3}", "x{1000,1030}", " {1,3}"];
    proptest::collection::vec((name, value), 0..40)
        .prop_map(|pairs| pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_document_passes_the_emf_specification(
        dims in any_dimensions(),
        function in "[A-Za-z0-9_-]{0,64}",
        namespace in proptest::option::of(any_text()),
        inv in any_invocation(),
        health in any_health(),
        previous in proptest::option::of(any_health()),
        kind in prop_oneof!["process|network|file|guard", any_text()],
        finding_ms in 0u64..4_000_000_000_000,
    ) {
        let (cfg, _) = Config::load_with(
            |k| match k {
                "TANDEM_EMF_DIMENSIONS" => Some(dims.clone()),
                "AWS_LAMBDA_FUNCTION_NAME" => Some(function.clone()),
                "TANDEM_EMF_NAMESPACE" => namespace.clone(),
                _ => None,
            },
            |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        );
        let mut out = Vec::new();
        encode_invocation(&inv, &cfg.emf, &mut out);
        prop_assert_eq!(check_emf(&out, inv.start_ms), Ok(()), "{}", String::from_utf8_lossy(&out));
        out.clear();
        encode_health(&health, previous.as_ref(), &cfg.emf, &mut out);
        prop_assert_eq!(check_emf(&out, health.time_ms), Ok(()), "{}", String::from_utf8_lossy(&out));
        out.clear();
        let mut finding = crate::guard::finding::Finding::stopped("x", None).to_log_record(finding_ms);
        finding.attributes.insert("security.kind".into(), kind.into());
        if encode_security(&finding, &cfg.emf, &mut out) {
            prop_assert_eq!(check_emf(&out, finding_ms), Ok(()), "{}", String::from_utf8_lossy(&out));
        } else {
            prop_assert!(out.is_empty());
        }
    }
}
