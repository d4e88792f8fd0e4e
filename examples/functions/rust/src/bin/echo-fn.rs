//! `echo-fn`: a real `lambda_runtime` function whose behaviour is driven by the
//! event, so the emulator's tests can make it log, sleep, allocate, crash, fail
//! or answer big payloads on demand. Every event field is optional; they are
//! applied in the order documented on `handle`.

use std::io::Write;
use std::time::Duration;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::{json, Map, Value};

/// Environment variables echoed back so tests can check what the runtime got.
const ECHOED_ENV: &[&str] = &[
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_REGION",
    "_HANDLER",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "TANDEM_WRAPPED",
];

const MIB: usize = 1024 * 1024;
const PAGE: usize = 4096;
/// Each `log_bytes` line is exactly this long, newline included.
const LOG_LINE_LEN: usize = 100;

#[tokio::main]
async fn main() {
    // Init-phase knobs: a slow init, then an init crash before the runtime
    // client ever calls `next`.
    if let Ok(ms) = std::env::var("ECHO_INIT_SLEEP_MS") {
        match ms.trim().parse::<u64>() {
            Ok(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Err(err) => {
                eprintln!("echo-fn: ECHO_INIT_SLEEP_MS={ms:?} is not a number of milliseconds: {err}");
                std::process::exit(2);
            }
        }
    }
    if let Ok(message) = std::env::var("ECHO_INIT_FAIL") {
        eprintln!("{message}");
        std::process::exit(1);
    }

    if let Err(err) = lambda_runtime::run(service_fn(handle)).await {
        eprintln!("echo-fn: runtime loop ended: {err}");
        std::process::exit(1);
    }
}

/// Applies, in order: `log`, `stderr`, `json_log`, `log_bytes`, `alloc_mb`,
/// `sleep_ms`, `exit`, `panic`, `error`, then answers `response_bytes` or the echo.
async fn handle(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, ctx) = event.into_parts();

    for line in string_items(&payload, "log") {
        println!("{line}");
    }
    for line in string_items(&payload, "stderr") {
        eprintln!("{line}");
    }
    if let Some(objects) = payload.get("json_log").and_then(Value::as_array) {
        for object in objects {
            // `Value`'s Display is compact JSON: one object per line.
            println!("{object}");
        }
    }
    if let Some(bytes) = u64_field(&payload, "log_bytes") {
        write_log_bytes(bytes as usize).map_err(|err| diagnostic("LogError", err.to_string()))?;
    }
    // Allocated before the sleep and held until the handler returns, so the
    // memory stays resident for the rest of the invoke.
    let _ballast = u64_field(&payload, "alloc_mb").map(|mb| allocate_and_touch(mb as usize));
    if let Some(ms) = u64_field(&payload, "sleep_ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        let code = i32::try_from(code).unwrap_or(1);
        eprintln!("exiting with {code}");
        std::process::exit(code);
    }
    if payload.get("panic").and_then(Value::as_bool) == Some(true) {
        panic!("echo-fn was asked to panic");
    }
    if let Some(message) = payload.get("error").and_then(Value::as_str) {
        return Err(diagnostic("EchoError", message.to_string()));
    }
    if let Some(n) = u64_field(&payload, "response_bytes") {
        return Ok(json!({ "data": "a".repeat(n as usize) }));
    }

    let env: Map<String, Value> = ECHOED_ENV
        .iter()
        .map(|name| {
            let value = std::env::var(name).map(Value::String).unwrap_or(Value::Null);
            ((*name).to_string(), value)
        })
        .collect();
    Ok(json!({
        "echo": payload,
        "request_id": ctx.request_id,
        "deadline_ms": ctx.deadline,
        "invoked_function_arn": ctx.invoked_function_arn,
        "trace_id": ctx.xray_trace_id,
        "env": env,
    }))
}

fn diagnostic(error_type: &str, error_message: String) -> Diagnostic {
    Diagnostic { error_type: error_type.to_string(), error_message }
}

fn u64_field(payload: &Value, name: &str) -> Option<u64> {
    payload.get(name).and_then(Value::as_u64)
}

/// Items of an array field as text: strings as they are, anything else as JSON.
fn string_items(payload: &Value, name: &str) -> Vec<String> {
    payload
        .get(name)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes about `total` bytes as 100-byte lines (`line <i> xxx…\n`) through one
/// buffer, so large volumes reach the pipe in big writes rather than per line.
fn write_log_bytes(total: usize) -> std::io::Result<()> {
    let lines = total.div_ceil(LOG_LINE_LEN);
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut line = String::with_capacity(LOG_LINE_LEN);
    for i in 0..lines {
        line.clear();
        line.push_str("line ");
        line.push_str(&i.to_string());
        line.push(' ');
        while line.len() < LOG_LINE_LEN - 1 {
            line.push('x');
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

/// Allocates `mb` MiB and writes to every page so the pages become resident
/// (a zeroed allocation alone would only reserve address space).
fn allocate_and_touch(mb: usize) -> Vec<u8> {
    let mut ballast = vec![0u8; mb * MIB];
    for i in (0..ballast.len()).step_by(PAGE) {
        ballast[i] = 1;
    }
    std::hint::black_box(ballast)
}
