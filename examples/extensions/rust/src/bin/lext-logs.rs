//! `lext-logs`: an external extension on the `lambda-extension` crate that
//! subscribes to the legacy Logs API (schema 2021-03-18, as the crate sends) on
//! `LEXT_PORT` and records every delivered log event as one JSON line
//! `{"time","type","record"}` in `LEXT_OUT`. INVOKE/SHUTDOWN events go to the
//! same file (lines with an `"event"` key). Same optional knobs as
//! `lext-telemetry`.

use example_extensions::{
    buffering_from_env, fail, handle_event, port_from_env, program_name, start_ticker_from_env, types_from_env,
    JsonLines, ShutdownBehaviour,
};
use lambda_extension::{service_fn, Error, Extension, LambdaEvent, LambdaLog, LambdaLogRecord, SharedService};
use serde_json::{json, Value};

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
    let logs = service_fn(move |batch: Vec<LambdaLog>| record_batch(out.clone(), batch));

    let mut extension = Extension::new()
        .with_events(&["INVOKE", "SHUTDOWN"])
        .with_events_processor(events)
        .with_logs_processor(SharedService::new(logs))
        .with_log_port_number(port);
    if let Some(types) = type_refs.as_deref() {
        extension = extension.with_log_types(types);
    }
    if let Some(buffering) = buffering {
        extension = extension.with_log_buffering(buffering);
    }
    if let Err(err) = extension.run().await {
        fail(&format!("extension ended: {err}"));
    }
}

async fn record_batch(out: JsonLines, batch: Vec<LambdaLog>) -> Result<(), Error> {
    for log in &batch {
        out.write(&log_line(log)?)?;
    }
    println!("{} received {} log events", program_name(), batch.len());
    Ok(())
}

/// `LambdaLog` does not implement `Serialize`, so the wire shape is rebuilt
/// from its fields (the crate has already dropped anything it does not model).
fn log_line(log: &LambdaLog) -> Result<Value, Error> {
    // chrono's serde form is RFC 3339 in UTC, like the API's own `time`.
    let time = serde_json::to_value(log.time)?;
    let (kind, record) = match &log.record {
        LambdaLogRecord::Function(line) => ("function", json!(line)),
        LambdaLogRecord::Extension(line) => ("extension", json!(line)),
        LambdaLogRecord::PlatformStart { request_id } => ("platform.start", json!({ "requestId": request_id })),
        LambdaLogRecord::PlatformEnd { request_id } => ("platform.end", json!({ "requestId": request_id })),
        LambdaLogRecord::PlatformReport { request_id, metrics } => {
            let mut metrics_json = json!({
                "durationMs": metrics.duration_ms,
                "billedDurationMs": metrics.billed_duration_ms,
                "memorySizeMB": metrics.memory_size_mb,
                "maxMemoryUsedMB": metrics.max_memory_used_mb,
            });
            if let Some(init) = metrics.init_duration_ms {
                metrics_json["initDurationMs"] = json!(init);
            }
            ("platform.report", json!({ "requestId": request_id, "metrics": metrics_json }))
        }
        LambdaLogRecord::PlatformFault(text) => ("platform.fault", json!(text)),
        LambdaLogRecord::PlatformExtension { name, state, events } => {
            ("platform.extension", json!({ "name": name, "state": state, "events": events }))
        }
        LambdaLogRecord::PlatformLogsSubscription { name, state, types } => {
            ("platform.logsSubscription", json!({ "name": name, "state": state, "types": types }))
        }
        LambdaLogRecord::PlatformLogsDropped { reason, dropped_records, dropped_bytes } => (
            "platform.logsDropped",
            json!({ "reason": reason, "droppedRecords": dropped_records, "droppedBytes": dropped_bytes }),
        ),
        LambdaLogRecord::PlatformRuntimeDone { request_id, status } => {
            ("platform.runtimeDone", json!({ "requestId": request_id, "status": status }))
        }
    };
    Ok(json!({ "time": time, "type": kind, "record": record }))
}
