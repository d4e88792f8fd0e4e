//! `stream-fn`: a response-streaming function on `lambda_runtime`'s streaming
//! support. It streams `"chunks"` chunks (`chunk <i>\n`, default 3) with
//! `"delay_ms"` between them (default 10); with `"fail_midway": true` the stream
//! fails after the first chunk, which lambda_runtime reports as a mid-stream
//! error (see the note on `produce`).

use std::time::Duration;

use http::{header::CONTENT_TYPE, HeaderMap, HeaderValue, StatusCode};
use lambda_runtime::streaming::{channel, Body, Response, Sender};
use lambda_runtime::{service_fn, Error, LambdaEvent, MetadataPrelude};
use serde_json::Value;

const DEFAULT_CHUNKS: u64 = 3;
const DEFAULT_DELAY_MS: u64 = 10;

#[tokio::main]
async fn main() {
    if let Err(err) = lambda_runtime::run(service_fn(handle)).await {
        eprintln!("stream-fn: runtime loop ended: {err}");
        std::process::exit(1);
    }
}

async fn handle(event: LambdaEvent<Value>) -> Result<Response<Body>, Error> {
    let payload = event.payload;
    let chunks = payload.get("chunks").and_then(Value::as_u64).unwrap_or(DEFAULT_CHUNKS);
    let delay = Duration::from_millis(payload.get("delay_ms").and_then(Value::as_u64).unwrap_or(DEFAULT_DELAY_MS));
    let fail_midway = payload.get("fail_midway").and_then(Value::as_bool) == Some(true);

    let (tx, rx) = channel();
    tokio::spawn(produce(tx, chunks, delay, fail_midway));

    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(Response {
        metadata_prelude: MetadataPrelude { status_code: StatusCode::OK, headers, cookies: Vec::new() },
        stream: rx,
    })
}

/// Feeds the response body. A failure is injected with `Sender::abort`, which
/// makes the body stream yield an error; lambda_runtime turns that error into
/// its `Lambda-Runtime-Function-Error-Type: Runtime.StreamError` /
/// `Lambda-Runtime-Function-Error-Body: base64("user body write aborted")`
/// report. (The error type the sender takes is not re-exported by
/// lambda_runtime, so `abort` is the only failure it lets us inject.)
async fn produce(mut tx: Sender, chunks: u64, delay: Duration, fail_midway: bool) {
    for i in 0..chunks {
        if i > 0 {
            tokio::time::sleep(delay).await;
        }
        if let Err(err) = tx.send_data(format!("chunk {i}\n").into()).await {
            eprintln!("stream-fn: response stream closed while sending chunk {i}: {err}");
            return;
        }
        if fail_midway {
            eprintln!("stream-fn: failing the stream after chunk {i}");
            tx.abort();
            return;
        }
    }
}
