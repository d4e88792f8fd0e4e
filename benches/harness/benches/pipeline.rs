//! Criterion micro-benchmarks of the pipeline's hot parts, on the benchmark workload
//! (`tandem_harness::workload::batch`): parse (telemetry JSON to typed events), transform
//! (events to records: invocations correlated, log lines parsed), encode (records to
//! OTLP protobuf and to NDJSON), and the whole pass. `cargo bench -p tandem-harness`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use tandem::invocation::CorrelatorOptions;
use tandem::model::Item;
use tandem::pipeline::Pipeline;
use tandem::sink::otlp::resource::Resource;
use tandem_harness::workload::{batch, tandem_pass};

fn resource() -> Resource {
    Resource::from_env(|k| (k == "AWS_LAMBDA_FUNCTION_NAME").then(|| "bench-fn".to_owned()))
}

fn records(body: &[u8]) -> Vec<Item> {
    let events = tandem_wire::parse_events(body).map(|b| b.events).unwrap_or_default();
    let mut items = Vec::new();
    Pipeline::new(CorrelatorOptions::default(), Vec::new()).ingest(events, "[tandem] ", 0, &mut items);
    items
}

fn pipeline(c: &mut Criterion) {
    let (body, events) = batch(200, 20);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("parse", |b| b.iter(|| tandem_wire::parse_events(black_box(&body)).map(|b| b.events.len())));
    g.bench_function("transform", |b| {
        b.iter_batched(
            || tandem_wire::parse_events(&body).map(|b| b.events).unwrap_or_default(),
            |events| {
                let mut items = Vec::with_capacity(events.len());
                Pipeline::new(CorrelatorOptions::default(), Vec::new()).ingest(events, "[tandem] ", 0, &mut items);
                items
            },
            BatchSize::LargeInput,
        )
    });
    let items = records(&body);
    let logs: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Item::Log(l) => Some(l),
            _ => None,
        })
        .collect();
    let res = resource();
    g.bench_function("encode_otlp_logs", |b| {
        b.iter(|| tandem::sink::otlp::logs::encode_logs(&res, logs.iter().copied()).len())
    });
    g.bench_function("encode_ndjson", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(body.len());
            tandem::encode::ndjson::encode_batch(items.iter(), &mut out);
            out.len()
        })
    });
    g.bench_function("whole_pass_to_otlp", |b| b.iter(|| tandem_pass(black_box(&body), &res)));
    g.finish();
    assert!(events > 0);
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
