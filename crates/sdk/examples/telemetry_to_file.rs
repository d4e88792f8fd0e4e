//! A telemetry extension that persists every event before acknowledging it.
//!
//! Each batch is appended to `TELEMETRY_FILE` (default `/tmp/telemetry.ndjson`), one
//! event per line, and only then answered 200: a crash in between makes Lambda send
//! the batch again instead of losing it. At SHUTDOWN it syncs the file, once the last
//! invocation's `platform.report` has arrived (the SDK waits for it), and prints what
//! it received.
//!
//! `TELEMETRY_FILE_REFUSE_FIRST=N` refuses the first N batches, to watch Lambda (or
//! tandem-emulator) deliver them again.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tandem_sdk::{Context, Drain, Error, Event, Extension, Handler, ShutdownEvent, TelemetryConfig, TelemetryType};

struct ToFile {
    file: Mutex<File>,
    refuse: AtomicU64,
}

impl Handler for ToFile {
    async fn telemetry(&self, events: Vec<Event>, _ctx: &Context) -> Result<(), Error> {
        if self.refuse.load(Ordering::Relaxed) > 0 {
            self.refuse.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::transient("refusing this batch on purpose (TELEMETRY_FILE_REFUSE_FIRST)"));
        }
        let mut out = Vec::with_capacity(events.len() * 256);
        for e in &events {
            serde_json::to_writer(&mut out, e).map_err(|e| Error::transient(e.to_string()))?;
            out.push(b'\n');
        }
        let mut file = self.file.lock().map_err(|_| Error::transient("the file lock is poisoned"))?;
        file.write_all(&out)?;
        Ok(())
    }

    async fn shutdown(&self, event: ShutdownEvent, drain: Drain, ctx: &Context) -> Result<(), Error> {
        if let Ok(file) = self.file.lock() {
            file.sync_all()?;
        }
        let s = ctx.stats();
        println!(
            "telemetry_to_file: SHUTDOWN {} last_report={} events={} batches={} malformed={} unknown={} refused={} time_left_ms={}",
            event.shutdown_reason,
            drain.last_report_received,
            s.events,
            s.batches,
            s.malformed,
            s.unknown,
            s.refused,
            drain.time_left().as_millis()
        );
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let path = std::env::var("TELEMETRY_FILE").unwrap_or_else(|_| "/tmp/telemetry.ndjson".into());
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::fatal("Extension.ConfigInvalid", format!("cannot open TELEMETRY_FILE {path}: {e}")))?;
    let refuse = std::env::var("TELEMETRY_FILE_REFUSE_FIRST").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let cfg = TelemetryConfig {
        types: vec![TelemetryType::Platform, TelemetryType::Function, TelemetryType::Extension],
        timeout_ms: Some(25),
        ..TelemetryConfig::default()
    };
    Extension::new().telemetry(cfg).run(ToFile { file: Mutex::new(file), refuse: AtomicU64::new(refuse) }).await
}
