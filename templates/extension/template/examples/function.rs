//! The function the test runs the extension with, on `lambda_runtime` as a Rust function
//! on Lambda would be: it prints every string of the event's `log` array, one line each
//! (the log lines the extension receives), and answers how many it printed.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let lines: Vec<&str> = match event.payload.get("log").and_then(Value::as_array) {
        Some(lines) => lines.iter().filter_map(Value::as_str).collect(),
        None => Vec::new(),
    };
    for line in &lines {
        println!("{line}");
    }
    Ok(json!({ "printed": lines.len() }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
