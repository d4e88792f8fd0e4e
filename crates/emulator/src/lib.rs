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
//! See ARCHITECTURE.md for the map: [`lifecycle`] decides (sans-I/O), the driver acts,
//! [`api`] frames HTTP, [`telemetry`] delivers, [`process`], [`freeze`] and [`memory`]
//! deal with the operating system.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod driver;
pub mod environment;
pub mod freeze;
pub mod invoke_api;
pub mod lifecycle;
pub mod memory;
pub mod process;
pub mod telemetry;

pub use config::Config;
pub use driver::{InvokeOutcome, Observed};
pub use environment::{Environment, Error};
pub use lifecycle::{InvokeRequest, InvokeResult, Observation};
pub use telemetry::delivery::{Delivery, Outcome};
pub use telemetry::ConsoleOutput;
