//! The benchmark's baseline: what an extension on the official `lambda-extension`
//! crate looks like when written the way its documentation shows. It subscribes to the
//! Telemetry API (platform and function events) and appends every record to a file
//! (`BASELINE_OUT`, default `/tmp/baseline.ndjson`), as `tandem`'s file sink does, so
//! that both are measured doing the same job in the same emulator.
//!
//! It exits on SHUTDOWN (the crate alone would poll `next` again and be killed at the
//! deadline), only so that benchmark runs do not wait for the deadline.

use lambda_extension::{service_fn, Error, Extension, LambdaEvent, LambdaTelemetry, NextEvent, SharedService};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};

async fn events(event: LambdaEvent) -> Result<(), Error> {
    if let NextEvent::Shutdown(_) = event.next {
        std::process::exit(0);
    }
    Ok(())
}

async fn telemetry(
    out: Arc<Mutex<BufWriter<File>>>,
    batch: Vec<LambdaTelemetry<serde_json::Value>>,
) -> Result<(), Error> {
    let mut out = out.lock().map_err(|_| "the output lock is poisoned")?;
    for event in &batch {
        serde_json::to_writer(&mut *out, event)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let path = std::env::var("BASELINE_OUT").unwrap_or_else(|_| "/tmp/baseline.ndjson".into());
    let port = std::env::var("BASELINE_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(9002);
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    let out = Arc::new(Mutex::new(BufWriter::new(file)));
    let processor = service_fn(move |batch| telemetry(out.clone(), batch));
    Extension::new()
        .with_events(&["INVOKE", "SHUTDOWN"])
        .with_events_processor(service_fn(events))
        .with_telemetry_record_type::<serde_json::Value>()
        .with_telemetry_types(&["platform", "function"])
        .with_telemetry_processor(SharedService::new(processor))
        .with_telemetry_port_number(port)
        .run()
        .await
}
