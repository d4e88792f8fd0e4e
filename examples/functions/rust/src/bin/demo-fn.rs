//! `demo-fn`: the function of `cargo xtask demo`, on the lambda_runtime crate. Each
//! invocation processes an "order" and logs like a real service does: a plain text
//! line, a structured JSON line, a WARN now and then and an ERROR rarely, so that the
//! extension has both text and JSON logs, levels and request ids to work with.
//!
//! Event: `{"order": <n>}` (any other event counts as order 0). Response:
//! `{"order": n, "status": "processed"}`. It writes exactly 2 lines per invocation, plus
//! one more when `n % 10 == 0` (WARN) and one more when `n % 50 == 0` (ERROR).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use std::time::Instant;

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let started = Instant::now();
    let order = event.payload.get("order").and_then(Value::as_u64).unwrap_or(0);
    let id = &event.context.request_id;
    println!("[INFO] {id} processing order {order}");
    // Some work proportional to the order, so durations vary a little.
    let mut acc = order;
    for i in 0..(order % 7) * 1000 {
        acc = acc.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    if order % 10 == 0 {
        println!("[WARN] {id} order {order} needed a manual check");
    }
    if order % 50 == 0 {
        eprintln!("[ERROR] {id} order {order}: payment provider timed out, retried");
    }
    let line = json!({
        "level": "INFO",
        "message": "order processed",
        "requestId": id,
        "order": order,
        "checksum": acc % 1000,
        "durationUs": started.elapsed().as_micros() as u64,
    });
    println!("{line}");
    Ok(json!({ "order": order, "status": "processed" }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
