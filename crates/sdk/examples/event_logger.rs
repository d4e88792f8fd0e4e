//! The smallest useful extension: prints every lifecycle event it receives.
//!
//! Deploy as `/opt/extensions/event_logger` (its file name is its registration name).
//! At SHUTDOWN it returns from `run`, so the process exits 0 on its own.

use tandem_sdk::{Context, Drain, Error, Extension, Handler, InvokeEvent, ShutdownEvent};

struct EventLogger;

impl Handler for EventLogger {
    async fn invoke(&self, event: InvokeEvent, ctx: &Context) -> Result<(), Error> {
        println!("{} INVOKE {} deadline {}", ctx.extension_name(), event.request_id, event.deadline_ms);
        Ok(())
    }

    async fn shutdown(&self, event: ShutdownEvent, drain: Drain, ctx: &Context) -> Result<(), Error> {
        println!(
            "{} SHUTDOWN {} with {} ms left",
            ctx.extension_name(),
            event.shutdown_reason,
            drain.time_left().as_millis()
        );
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    Extension::new().run(EventLogger).await
}
