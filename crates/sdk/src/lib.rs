//! `tandem-sdk`: write AWS Lambda extensions in Rust that lose nothing.
//!
//! An extension implements [`Handler`] (every method is optional) and runs it with
//! [`Extension::run`]:
//!
//! ```no_run
//! use tandem_sdk::{Context, Error, Event, Extension, Handler, TelemetryConfig};
//!
//! struct Printer;
//!
//! impl Handler for Printer {
//!     async fn telemetry(&self, events: Vec<Event>, _ctx: &Context) -> Result<(), Error> {
//!         for e in events {
//!             println!("{} {}", e.time, e.record.type_name());
//!         }
//!         Ok(()) // acknowledged only now
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     Extension::new().telemetry(TelemetryConfig::default()).run(Printer).await
//! }
//! ```
//!
//! What it does differently from the `lambda-extension` crate:
//! - telemetry is parsed event by event: an unknown event type arrives as raw JSON and
//!   a malformed event is counted and skipped, never costing the rest of its batch;
//! - a batch is answered 200 only once the handler accepted it, else 500 so that
//!   Lambda delivers it again;
//! - the listener binds where `sandbox.localdomain` points (127.0.0.1), once, on a free
//!   port unless told otherwise, with keep-alive connections;
//! - at SHUTDOWN it waits (bounded) for the last invocation's report, runs the drain
//!   hook with the time left, and returns before the deadline so the process exits 0;
//! - failures reach Lambda through `init/error` and `exit/error` with `Extension.*` types.
//!
//! Internal extensions (registered from a function's own process, for example one on
//! `lambda_runtime`) use [`Extension::start_internal`].

#![deny(missing_docs)]

mod client;
mod context;
mod diag;
mod error;
mod extension;
mod guard;
mod telemetry;

pub use context::{Context, Stats, StatsSnapshot};
pub use diag::{line as log_line, prefix as log_prefix, set_prefix as set_log_name};
pub use error::Error;
pub use extension::{Drain, Extension, Handler, Internal};
pub use telemetry::{sandbox_ip, TelemetryConfig};

/// The typed model of the Lambda APIs ([`tandem_wire`]), re-exported.
pub use tandem_wire as wire;
pub use tandem_wire::extensions::{EventType, InvokeEvent, ShutdownEvent, ShutdownReason};
pub use tandem_wire::subscription::Api;
pub use tandem_wire::telemetry::{LogRecord, Record, TelemetryType};
pub use tandem_wire::{Event, Status};

// The README's examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
