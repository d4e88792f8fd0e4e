//! A function on `lambda_runtime` with an internal extension in its own process.
//!
//! The handler records a metric per invocation into a shared buffer; the internal
//! extension, registered for INVOKE before the runtime starts, waits until the
//! handler is done with the invocation and flushes the buffer before it calls `next`,
//! i.e. before Lambda freezes the environment. Nothing recorded is left in a frozen
//! process. (Run it as the runtime: `tandem-emulator invoke --runtime <this binary>`.)

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem_sdk::{Context, Error, EventType, Extension, Handler, InvokeEvent};
use tokio::sync::Notify;

#[derive(Default)]
struct Metrics {
    pending: Mutex<Vec<(String, u128)>>,
    handled: Notify,
}

struct Flusher(Arc<Metrics>);

impl Handler for Flusher {
    async fn invoke(&self, event: InvokeEvent, _ctx: &Context) -> Result<(), Error> {
        // Wait (bounded by the invocation's deadline) until the handler recorded this
        // invocation, then flush: the freeze comes only after this returns.
        let until = Instant::now() + Duration::from_millis(event.deadline_ms.saturating_sub(now_ms()));
        loop {
            let handled = self.0.handled.notified();
            let done = self.0.pending.lock().map(|p| p.iter().any(|(id, _)| *id == event.request_id)).unwrap_or(true);
            if done || tokio::time::timeout_at(until.into(), handled).await.is_err() {
                break;
            }
        }
        let batch: Vec<_> = self.0.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        println!("internal extension: INVOKE {} flushed {} metric(s)", event.request_id, batch.len());
        Ok(())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let metrics = Arc::new(Metrics::default());
    // Before lambda_runtime starts: registration closes at the runtime's first `next`.
    Extension::new()
        .name("internal-flusher")
        .events(&[EventType::Invoke])
        .start_internal(Flusher(metrics.clone()))
        .await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let metrics = metrics.clone();
        async move {
            let started = Instant::now();
            let response = json!({ "echo": event.payload });
            if let Ok(mut p) = metrics.pending.lock() {
                p.push((event.context.request_id.clone(), started.elapsed().as_micros()));
            }
            metrics.handled.notify_waiters();
            Ok::<Value, lambda_runtime::Error>(response)
        }
    }))
    .await
}
