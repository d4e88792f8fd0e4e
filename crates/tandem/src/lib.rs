//! `tandem`: an AWS Lambda external extension that receives the function's telemetry
//! (platform events, function and extension log lines) from the Telemetry API, turns it
//! into logs, metrics and traces, and delivers them to sinks (`stdout` as CloudWatch EMF,
//! `file` and `http` as NDJSON, `otlp` as OTLP/HTTP) without losing a record.
//!
//! The pipeline:
//!
//! ```text
//! Telemetry API batch ─► pipeline ─► invocation::Correlator ─► model::Invocation ─┐
//!                               └─► logs::to_log_record ─► rules::Rules ─► model::LogRecord ─┤
//!                                                                   queue (memory, then spool)
//!                  flush::FlushPolicy decides when ─► sink::<name> (encoder, attempt) ─► out
//! ```
//!
//! The pure (sans-I/O) core, each module owning one concern:
//!
//! - [`model`]: the records that flow through the pipeline and their spool form;
//! - [`logs`]: a log line to a [`model::LogRecord`] (level, request id, message) — the hot path;
//! - [`rules`]: `exclude`/`include`/`mask` processing rules;
//! - [`invocation`]: correlation of platform events into [`model::Invocation`]s, OOM;
//!   [`invocation::cost`]: architecture, prices and the cost formula;
//! - [`pipeline`]: the intake: each telemetry event to records, once;
//! - [`flush`]: when to flush, and whether that may delay the next invoke;
//! - [`health`]: the extension's own counters, the queues' [`health::QueueStats`], and
//!   health snapshots;
//! - [`config`]: `TANDEM_*`/`OTEL_*` settings and the optional TOML file ([`config::load`]
//!   reads, `describe` prints for `check-config`); each sink's settings are in its folder;
//! - [`encode`]: the encoders sinks share (JSON primitives, [`encode::ndjson`]);
//! - in each sink folder, its settings (`sink/<name>/config.rs`) and encoders
//!   ([`sink::stdout::encode`], EMF; [`sink::otlp`]'s `encode`, `resource`, `ids`, `logs`,
//!   `metrics`, `traces`), and [`sink::transport::url`] (URL checks and redaction);
//! - [`diag::level`]: the diagnostics' verbosity.
//!
//! None of these opens a socket, touches the file system (except
//! [`config::Config::load`] reading the one file `TANDEM_CONFIG` names), reads a clock or
//! spawns a task, and none imports an I/O module. The I/O edge is built on top of them
//! and feeds them times and events:
//!
//! - [`clock`]: wall time, read here only;
//! - [`spool`]: one sink's overflow on disk (append-only NDJSON segments under `/tmp`);
//! - [`queue`]: one sink's records in order, in memory then in its spool;
//! - [`sink`]: the sink list and [`sink::Deliver`], one attempt at a batch per sink
//!   (`sink/<name>/mod.rs`), [`sink::drive`] (retries with backoff, shared by all) and
//!   [`sink::transport`] (the one HTTP client);
//! - [`delivery`]: the lanes (queue and sink) and the flushes that drain them;
//! - [`receiver`]: the OTLP receiver on 127.0.0.1 (the function's own OpenTelemetry
//!   export into the lanes; its decoding and annotation are pure);
//! - [`app`]: the lifecycle glue, as a `tandem_sdk::Handler`;
//! - [`diag`]: the extension's own diagnostic lines.
//!
//! The telemetry listener, the Extensions API client and the lifecycle loop are
//! `tandem-sdk`'s.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
#[cfg(feature = "secrets")]
pub mod aws;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod diag;
pub mod encode;
pub mod flush;
pub mod guard;
pub mod health;
pub mod invocation;
pub mod journal;
pub mod logs;
pub mod model;
pub mod pipeline;
pub mod queue;
pub mod receiver;
pub mod rules;
#[cfg(feature = "secrets")]
pub mod secrets;
pub mod sink;
pub mod spool;
