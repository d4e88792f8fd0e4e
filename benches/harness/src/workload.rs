//! workload: the telemetry the throughput benchmarks feed to the pipeline, shared by
//! the harness (`cargo xtask bench`) and the criterion micro-benchmarks
//! (`cargo bench -p tandem-harness`).

use serde_json::json;
use tandem::invocation::CorrelatorOptions;
use tandem::model::Item;
use tandem::pipeline::Pipeline;
use tandem::sink::otlp::encode::encode_protobuf;
use tandem::sink::otlp::metrics::metrics_request;
use tandem::sink::otlp::resource::Resource;
use tandem::sink::otlp::traces::traces_request;

/// A delivery like Lambda's: per invocation a start, `lines` function lines (text in the
/// runtimes' formats and JSON), a runtimeDone and a report.
pub fn batch(invocations: usize, lines: usize) -> (Vec<u8>, usize) {
    let mut events = Vec::with_capacity(invocations * (lines + 3));
    let t = "2026-11-24T10:00:00.000Z";
    for i in 0..invocations {
        let id = format!("8f5e3b2a-1c4d-4e6f-9a0b-{i:012x}");
        events.push(json!({"time": t, "type": "platform.start", "record": {"requestId": id, "version": "$LATEST",
            "tracing": {"spanId": "54565fb41ac79632", "type": "X-Amzn-Trace-Id", "value": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}}));
        for j in 0..lines {
            let rec = match j % 4 {
                0 => json!(format!("{t}\t{id}\tINFO\tprocessing item {j} of order {i}: fetched 42 rows from the orders table in 3.2 ms")),
                1 => json!(format!("[WARN]\t{t}\t{id}\tretrying the payment provider call {j}, attempt 2 of 3")),
                2 => json!(format!("{{\"level\":\"INFO\",\"message\":\"order step done\",\"requestId\":\"{id}\",\"step\":{j},\"durationMs\":1.7,\"customer\":\"c-{i}\"}}")),
                _ => json!(format!("plain print line {j} with some payload text that a function might write to stdout")),
            };
            events.push(json!({"time": t, "type": "function", "record": rec}));
        }
        events.push(json!({"time": t, "type": "platform.runtimeDone", "record": {"requestId": id, "status": "success",
            "metrics": {"durationMs": 12.5, "producedBytes": 53},
            "spans": [{"name": "responseLatency", "start": t, "durationMs": 10.1}, {"name": "responseDuration", "start": t, "durationMs": 0.2}]}}));
        events.push(json!({"time": t, "type": "platform.report", "record": {"requestId": id, "status": "success",
            "metrics": {"durationMs": 13.1, "billedDurationMs": 14, "memorySizeMB": 128, "maxMemoryUsedMB": 40},
            "spans": [{"name": "extensionOverhead", "start": t, "durationMs": 0.1}]}}));
    }
    let n = events.len();
    (serde_json::to_vec(&events).unwrap_or_default(), n)
}

/// One pass of tandem's pipeline over `body`; returns the bytes of OTLP produced.
pub fn tandem_pass(body: &[u8], resource: &Resource) -> usize {
    encode_items(&tandem_items(body), resource)
}

/// The intake's records for `body` (empty when it does not parse).
pub fn tandem_items(body: &[u8]) -> Vec<Item> {
    let events = match tandem_wire::parse_events(body) {
        Ok(b) => b.events,
        Err(_) => return Vec::new(),
    };
    let mut pipeline = Pipeline::new(CorrelatorOptions::default(), Vec::new());
    let mut items = Vec::with_capacity(events.len());
    pipeline.ingest(events, "[tandem] ", 0, &mut items);
    items
}

/// `items` encoded as OTLP logs, metrics and traces; returns the bytes produced.
pub fn encode_items(items: &[Item], resource: &Resource) -> usize {
    let logs = items.iter().filter_map(|i| match i {
        Item::Log(l) => Some(l),
        _ => None,
    });
    let mut out = tandem::sink::otlp::logs::encode_logs(resource, logs).len();
    let invs: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Item::Invocation(v) => Some(&**v),
            _ => None,
        })
        .collect();
    out += encode_protobuf(&metrics_request(resource, invs.iter().copied())).len();
    out += encode_protobuf(&traces_request(resource, invs.iter().copied())).len();
    out
}
