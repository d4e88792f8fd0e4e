//! throughput: the extension's pipeline on one core, telemetry JSON in and OTLP
//! protobuf out (parse per event, logs and invocations, encode), in MB/s of input and
//! records/s, next to the `lambda-extension` crate's typed parse of the same bytes
//! (all that crate does with them).

use crate::stats::Samples;
use serde_json::json;
use std::time::Instant;
use tandem::sink::otlp::resource::Resource;
use tandem_harness::workload::{batch, tandem_pass};

/// One benchmark row in plain values (the bench module formats it).
pub struct PlainRow {
    pub metric: String,
    pub unit: &'static str,
    pub tandem: f64,
    pub baseline: Option<f64>,
    pub target: Option<f64>,
    pub json: serde_json::Value,
}

fn time_runs(runs: usize, mut f: impl FnMut() -> usize) -> Samples {
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f());
        v.push(t.elapsed().as_secs_f64());
    }
    Samples::new(v)
}

pub fn rows(quick: bool) -> Result<Vec<PlainRow>, String> {
    let (body, events) = batch(200, 20);
    let runs = if quick { 15 } else { 60 };
    let resource = Resource::from_env(|k| match k {
        "AWS_LAMBDA_FUNCTION_NAME" => Some("bench-fn".into()),
        "AWS_REGION" => Some("us-east-1".into()),
        _ => None,
    });
    if tandem_pass(&body, &resource) == 0 {
        return Err("the pipeline produced nothing from the benchmark batch".into());
    }
    let ours = time_runs(runs, || tandem_pass(&body, &resource));
    let theirs = time_runs(runs, || {
        serde_json::from_slice::<Vec<lambda_extension::LambdaTelemetry<serde_json::Value>>>(&body)
            .map(|v| v.len())
            .unwrap_or(0)
    });
    let mb = body.len() as f64 / 1e6;
    let (ours_s, theirs_s) = (ours.median(), theirs.median());
    Ok(vec![
        PlainRow {
            metric: format!(
                "pipeline throughput, {:.1} MB batch of {events} events (baseline: the crate's typed parse only)",
                mb
            ),
            unit: "MB/s",
            tandem: mb / ours_s,
            baseline: Some(mb / theirs_s),
            target: Some(200.0),
            json: json!({"bytes": body.len(), "events": events, "tandem_s": ours_s, "baseline_s": theirs_s, "tandem_p99_s": ours.p99()}),
        },
        PlainRow {
            metric: "pipeline throughput in records".into(),
            unit: "records/s",
            tandem: events as f64 / ours_s,
            baseline: Some(events as f64 / theirs_s),
            target: None,
            json: json!({}),
        },
    ])
}
