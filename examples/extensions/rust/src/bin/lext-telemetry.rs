//! `lext-telemetry`: an external extension on the `lambda-extension` crate that
//! subscribes to the Telemetry API (schema 2022-07-01, the only one the crate
//! speaks) on `LEXT_PORT` and records every telemetry event, as the crate
//! re-serializes it, as one JSON line in `LEXT_OUT`. INVOKE/SHUTDOWN events are
//! recorded in the same file (lines with an `"event"` key; telemetry lines have
//! `"time"`/`"type"`/`"record"`). Optional: `LEXT_TYPES`, `LEXT_MAX_ITEMS`,
//! `LEXT_MAX_BYTES`, `LEXT_TIMEOUT_MS`, `LEXT_EXIT_ON_SHUTDOWN`,
//! `LEXT_SHUTDOWN_LINGER_MS`, `LEXT_IGNORE_SHUTDOWN`, `LEXT_TICK_FILE`.

use example_extensions::{
    buffering_from_env, fail, handle_event, port_from_env, program_name, start_ticker_from_env, types_from_env,
    JsonLines, ShutdownBehaviour,
};
use lambda_extension::{service_fn, Error, Extension, LambdaEvent, LambdaTelemetry, SharedService};
use serde_json::Value;

#[tokio::main]
async fn main() {
    let out = JsonLines::from_env();
    let port = port_from_env();
    let behaviour = ShutdownBehaviour::from_env();
    let buffering = buffering_from_env();
    let types = types_from_env();
    let type_refs: Option<Vec<&str>> = types.as_ref().map(|t| t.iter().map(String::as_str).collect());
    start_ticker_from_env();

    let events_out = out.clone();
    let events = service_fn(move |event: LambdaEvent| handle_event(events_out.clone(), behaviour, event));
    let telemetry = service_fn(move |batch: Vec<LambdaTelemetry<Value>>| record_batch(out.clone(), batch));

    // The record type must be chosen before the processor is set. `Value`
    // accepts both plain-string and JSON-object function log records.
    let mut extension = Extension::new()
        .with_events(&["INVOKE", "SHUTDOWN"])
        .with_events_processor(events)
        .with_telemetry_record_type::<Value>()
        .with_telemetry_processor(SharedService::new(telemetry))
        .with_telemetry_port_number(port);
    if let Some(types) = type_refs.as_deref() {
        extension = extension.with_telemetry_types(types);
    }
    if let Some(buffering) = buffering {
        extension = extension.with_telemetry_buffering(buffering);
    }
    if let Err(err) = extension.run().await {
        fail(&format!("extension ended: {err}"));
    }
}

/// Writes each event of a delivered batch as one line. `LambdaTelemetry`
/// implements `Serialize`, so the line is the crate's own view of the event.
async fn record_batch(out: JsonLines, batch: Vec<LambdaTelemetry<Value>>) -> Result<(), Error> {
    for event in &batch {
        out.write(&serde_json::to_value(event)?)?;
    }
    // One line per batch, not per event: our stdout is itself a log source
    // that may be subscribed to (`extension` type).
    println!("{} received {} telemetry events", program_name(), batch.len());
    Ok(())
}
