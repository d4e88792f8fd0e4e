//! `lext-events`: an external extension on the `lambda-extension` crate that
//! subscribes to INVOKE and SHUTDOWN and records each event as a JSON line in
//! `LEXT_OUT`. Knobs: `LEXT_EXIT_ON_SHUTDOWN`, `LEXT_IGNORE_SHUTDOWN`,
//! `LEXT_SHUTDOWN_LINGER_MS`, `LEXT_TICK_FILE` (see the crate's lib.rs).

use example_extensions::{fail, handle_event, start_ticker_from_env, JsonLines, ShutdownBehaviour};
use lambda_extension::{service_fn, Extension, LambdaEvent};

#[tokio::main]
async fn main() {
    let out = JsonLines::from_env();
    let behaviour = ShutdownBehaviour::from_env();
    start_ticker_from_env();

    let processor = service_fn(move |event: LambdaEvent| handle_event(out.clone(), behaviour, event));
    let result = Extension::new().with_events(&["INVOKE", "SHUTDOWN"]).with_events_processor(processor).run().await;
    if let Err(err) = result {
        fail(&format!("extension loop ended: {err}"));
    }
}
