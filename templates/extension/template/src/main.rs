//! {{ project_name }}: a Lambda extension on tandem-sdk. It subscribes to the function's
//! platform events and log lines through the {% if logs %}Logs API{% else %}Telemetry API{% endif %}, holds each batch
//! before acknowledging it, forwards what it holds at the next INVOKE, and drains the
//! rest at SHUTDOWN, once the last invocation's report has arrived.
//!
//! `forward` writes one JSON line per event to stdout (CloudWatch Logs, on Lambda):
//! replace it with your destination.

use std::io::Write;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tandem_sdk::{
    Context, Drain, Error, Event, Extension, Handler, InvokeEvent, ShutdownEvent, TelemetryConfig,
};

/// The most events held at once. A batch that would go past it is refused, and
/// Lambda delivers it again later: memory stays bounded and nothing is lost.
const MAX_HELD: usize = 10_000;

#[derive(Default)]
struct Forwarder {
    held: Mutex<Vec<Event>>,
}

impl Forwarder {
    fn held(&self) -> MutexGuard<'_, Vec<Event>> {
        // A panic while the lock was held left the events intact: keep them.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.held())
    }
}

impl Handler for Forwarder {
    async fn telemetry(&self, events: Vec<Event>, _ctx: &Context) -> Result<(), Error> {
        let mut held = self.held();
        if held.len() + events.len() > MAX_HELD {
            return Err(Error::transient(format!(
                "{} events held already: batch refused",
                held.len()
            )));
        }
        held.extend(events);
        // Returning Ok acknowledges the batch (HTTP 200): only now that it is held.
        Ok(())
    }

    async fn invoke(&self, _event: InvokeEvent, _ctx: &Context) -> Result<(), Error> {
        // This runs while the function handles the invocation, and the SDK asks for the
        // next event when it returns: keep it short. A slow destination belongs in a
        // background task, or at SHUTDOWN.
        forward(self.take())
    }

    async fn shutdown(
        &self,
        event: ShutdownEvent,
        drain: Drain,
        ctx: &Context,
    ) -> Result<(), Error> {
        // The SDK has waited (bounded) for the last invocation's platform.report, and
        // stops this drain at `drain.deadline`: a network destination should bound its
        // calls by `drain.time_left()`.
        let events = self.take();
        let drained = events.len();
        forward(events)?;
        let stats = ctx.stats();
        println!(
            "{} SHUTDOWN ({}): drained {drained} events; last report received: {}; {} events in {} batches, {} batches refused; {} ms left",
            ctx.extension_name(),
            event.shutdown_reason,
            drain.last_report_received,
            stats.events,
            stats.batches,
            stats.refused,
            drain.time_left().as_millis()
        );
        Ok(())
    }
}

/// Sends events on: one JSON line each, on stdout.
fn forward(events: Vec<Event>) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut out = Vec::with_capacity(events.len() * 256);
    for event in &events {
        serde_json::to_writer(&mut out, event).map_err(|e| Error::transient(e.to_string()))?;
        out.push(b'\n');
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // Platform events and the function's log lines; the extension's own lines (what
    // `forward` prints) are left out, so that they cannot feed back.
    let telemetry = {% if logs %}TelemetryConfig::logs_api(){% else %}TelemetryConfig::default(){% endif %};
    Extension::new()
        .telemetry(telemetry)
        .run(Forwarder::default())
        .await
}
