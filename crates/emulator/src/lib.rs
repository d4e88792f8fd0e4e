//! `tandem-emulator`: a local AWS Lambda execution environment.
//!
//! It runs a real function runtime and real extension processes, serves the Runtime
//! API, the Extensions API, the Telemetry API and the Logs API on
//! `AWS_LAMBDA_RUNTIME_API` as Lambda does, and drives Lambda's lifecycle: parallel
//! extension start, init (with its 10 s limit and the suppressed init), invocations
//! with timeouts, freezing between invocations, resets after failures, and shutdown
//! with its deadlines. Telemetry is delivered to subscribers, batched as they asked.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tandem_emulator::Error> {
//! use tandem_emulator::{Config, Environment};
//! let mut cfg = Config::new(vec!["./bootstrap".into()]);
//! cfg.extensions.push("./extensions/my-ext".into());
//! let env = Environment::start(cfg).await?;
//! let out = env.invoke(r#"{"hello":"world"}"#).await?;
//! println!("{}", String::from_utf8_lossy(&out.result.payload));
//! env.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! See ARCHITECTURE.md for the map: `lifecycle` decides (sans-I/O), `driver` acts,
//! `api` frames HTTP, `telemetry` delivers, `process`, `freeze` and `memory` deal with
//! the operating system. The modules are private; this root is the library API.

#![warn(missing_docs)]

mod api;
mod cli;
mod clock;
mod config;
mod driver;
mod environment;
mod freeze;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod invoke_api;
mod lifecycle;
mod memory;
mod pool;
mod process;
mod sandbox;
mod telemetry;
mod timeline;

// The README's examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use cli::main as run_cli;
pub use config::Config;
pub use driver::{ApiMark, InvokeOutcome, Observed};
pub use environment::{Environment, Error};
pub use invoke_api::{serve as serve_invoke_api, serve_pool as serve_invoke_api_pool};
pub use lifecycle::{ExitInfo, InvokeRequest, InvokeResult, Observation, Rejection, Signal};
pub use memory::Method as MemoryMethod;
pub use pool::{OnEvent, Pool, PoolConfig, PoolEvent};
pub use telemetry::delivery::{Delivery, Outcome};
pub use telemetry::ConsoleOutput;
pub use timeline::{data as timeline_data, page as timeline_page};
