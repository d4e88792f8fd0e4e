//! The whole pure pipeline on arbitrary input: an optional list of rules (JSON, before
//! the first blank line) and a telemetry batch (the rest) go through the intake (log
//! lines to records, rules, the correlator), then through every encoder. Nothing panics,
//! and what is written is what a receiver can read:
//! - every NDJSON line is a JSON object;
//! - every EMF line is an EMF document;
//! - the direct OTLP logs writer is byte-identical to prost's encoding of the same
//!   request, and decodes to one log record per record, with its message as body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use tandem::encode::ndjson;
use tandem::invocation::CorrelatorOptions;
use tandem::model::{Item, LogRecord};
use tandem::pipeline::Pipeline;
use tandem::rules::Rule;
use tandem::sink::otlp::logs::{encode_logs, logs_request};
use tandem::sink::otlp::resource::Resource;
use tandem::sink::stdout::encode::{encode_item, is_emf_document, EmfOptions};

fuzz_target!(|data: &[u8]| {
    let (rules, batch) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (Rule::parse_list(&String::from_utf8_lossy(&data[..i])).0, &data[i + 2..]),
        None => (Vec::new(), data),
    };
    let Ok(events) = tandem_wire::parse_batch(batch) else { return };
    let events: Vec<_> = events.into_iter().flatten().collect();
    let mut pipeline = Pipeline::new(CorrelatorOptions::default(), rules);
    pipeline.compile_rules();
    let mut items = Vec::new();
    pipeline.ingest(events, "[tandem]", 1_700_000_000_000, &mut items);
    items.extend(pipeline.finish());

    let mut out = Vec::new();
    ndjson::encode_batch(&items, &mut out);
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let value: serde_json::Value = serde_json::from_slice(line).expect("an NDJSON line is JSON");
        assert!(value.is_object());
    }

    let opts = EmfOptions::default();
    for item in &items {
        let mut out = Vec::new();
        if encode_item(item, &opts, &mut out) {
            for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let line = std::str::from_utf8(line).expect("EMF is UTF-8");
                assert!(is_emf_document(line), "not an EMF document: {line}");
            }
        }
    }

    let logs: Vec<&LogRecord> = items
        .iter()
        .filter_map(|i| match i {
            Item::Log(l) => Some(l),
            _ => None,
        })
        .collect();
    if logs.is_empty() {
        return;
    }
    let resource = Resource::from_env(|k| (k == "AWS_LAMBDA_FUNCTION_NAME").then(|| "fuzz".to_string()));
    let direct = encode_logs(&resource, logs.iter().copied());
    let via_prost = logs_request(&resource, logs.iter().copied()).encode_to_vec();
    assert_eq!(direct, via_prost, "the direct writer differs from prost");
    let decoded = ExportLogsServiceRequest::decode(direct.as_slice()).expect("the request decodes");
    let records: Vec<_> =
        decoded.resource_logs.iter().flat_map(|r| &r.scope_logs).flat_map(|s| &s.log_records).collect();
    assert_eq!(records.len(), logs.len());
    for (got, want) in records.iter().zip(&logs) {
        let body = got.body.as_ref().and_then(|b| b.value.as_ref());
        assert!(matches!(body, Some(Any::StringValue(s)) if *s == want.message), "body {body:?} != {:?}", want.message);
    }
});
