//! throughput: the extension's pipeline on one core, telemetry JSON in and OTLP
//! protobuf out (parse per event, logs and invocations, encode), in MB/s of input and
//! records/s, next to the `lambda-extension` crate's typed parse of the same bytes
//! (all that crate does with them); and the same pipeline with the write-ahead (each
//! record queued with its copy written to a spool on the temporary directory, then
//! committed as a sink would), next to the pipeline without it: what acknowledging
//! only what survives a `kill -9` costs per batch and per record.

use crate::stats::Samples;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tandem::config::BufferConfig;
use tandem::model::Item;
use tandem::queue::{Incoming, Queue, SpoolSettings};
use tandem::sink::otlp::resource::Resource;
use tandem_harness::workload::{batch, encode_items, tandem_items, tandem_pass};

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

/// What the write-ahead adds to one batch: its records encoded in their spool form,
/// queued with their copies written (one `write`), then taken and committed as a sink
/// accepting them would (the segment is deleted, the cursor kept). Returns the records.
fn write_ahead_pass(items: &[Arc<Item>], queue: &mut Queue, first_seq: u64) -> usize {
    let origin = tandem::spool::origin();
    let mut text = Vec::with_capacity(items.len() * 256);
    let mut ends = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let _ = tandem::spool::encode_line(&mut text, origin, first_seq + i as u64, item);
        ends.push(text.len());
    }
    let mut start = 0;
    let incoming: Vec<Incoming<'_>> = items
        .iter()
        .zip(&ends)
        .enumerate()
        .map(|(i, (item, &end))| {
            let line = &text[start..end];
            start = end;
            Incoming { item, seq: first_seq + i as u64, line }
        })
        .collect();
    queue.push_batch(&incoming, 0);
    let mut n = 0;
    loop {
        let b = queue.batch(1_000, 1 << 20);
        if b.entries.is_empty() {
            return n;
        }
        n += b.entries.len();
        queue.commit(&b.entries);
    }
}

/// The write-ahead's rows: on a Lambda-sized batch (tandem subscribes with at most
/// 1,000 events and 256 KiB), the intake and OTLP encoding with and without it.
fn write_ahead_rows(runs: usize, resource: &Resource) -> Result<Vec<PlainRow>, String> {
    let (body, events) = batch(10, 20);
    let dir = std::env::temp_dir().join(format!("tandem-bench-wal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let limits = BufferConfig { max_records: 100_000, max_bytes: 64 << 20 };
    let spool = SpoolSettings { dir: dir.clone(), max_bytes: 64 << 20, segment_bytes: 1 << 20 };
    let mut queue = Queue::new("bench", limits, Some(spool));
    let mut seq = 1;
    let records = tandem_items(&body).len();
    if records == 0 {
        return Err("the intake produced nothing from the write-ahead batch".into());
    }
    let without = time_runs(runs * 20, || tandem_pass(&body, resource));
    let with = time_runs(runs * 20, || {
        let items = tandem_items(&body);
        let out = encode_items(&items, resource);
        let items: Vec<Arc<Item>> = items.into_iter().map(Arc::new).collect();
        let n = write_ahead_pass(&items, &mut queue, seq);
        seq += items.len() as u64;
        n + out
    });
    let left = std::fs::read_dir(dir.join(""))
        .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".ndjson")).count())
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    if left != 0 {
        return Err(format!("the write-ahead left {left} segments after every record was committed"));
    }
    let (w, wo) = (with.median(), without.median());
    let added = (w - wo).max(0.0);
    let mb = body.len() as f64 / 1e6;
    Ok(vec![
        PlainRow {
            metric: format!(
                "pipeline throughput with the write-ahead, {:.0} KB batch of {events} events (baseline: without it)",
                body.len() as f64 / 1e3
            ),
            unit: "MB/s",
            tandem: mb / w,
            baseline: Some(mb / wo),
            target: Some(200.0),
            json: json!({"bytes": body.len(), "events": events, "records": records, "with_s": w, "without_s": wo, "with_p99_s": with.p99()}),
        },
        PlainRow {
            metric: format!("write-ahead cost per batch of {records} records"),
            unit: "us",
            tandem: added * 1e6,
            baseline: None,
            target: None,
            json: json!({"per_record_ns": added * 1e9 / records as f64}),
        },
        PlainRow {
            metric: "write-ahead cost per record".into(),
            unit: "ns",
            tandem: added * 1e9 / records as f64,
            baseline: None,
            target: None,
            json: json!({}),
        },
    ])
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
    let wal = write_ahead_rows(runs, &resource)?;
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
    ]
    .into_iter()
    .chain(wal)
    .collect())
}
