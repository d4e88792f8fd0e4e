//! `tandem`: an AWS Lambda external extension that receives the function's telemetry
//! (platform events, function and extension log lines) from the Telemetry API, turns it
//! into logs, metrics and traces, and delivers them to sinks (`stdout` as CloudWatch EMF,
//! `file` and `http` as NDJSON, `otlp` as OTLP/HTTP) without losing a record.
//!
//! The pipeline:
//!
//! ```text
//! Telemetry API batch ─► intake ─► invocation::Correlator ─► model::Invocation ─┐
//!                              └─► logs::to_log_record ─► rules::Rules ─► model::LogRecord ─┤
//!                                                                                 buffer (memory, spool)
//!                         flush::FlushPolicy decides when ─►  encode::{emf, ndjson, otlp} ─► sinks
//! ```
//!
//! The pure (sans-I/O) core, each module owning one concern:
//!
//! - [`model`]: the records that flow through the pipeline and their spool form;
//! - [`logs`]: a log line to a [`model::LogRecord`] (level, request id, message) — the hot path;
//! - [`rules`]: `exclude`/`include`/`mask` processing rules;
//! - [`invocation`]: correlation of platform events into [`model::Invocation`]s, cost, OOM;
//! - [`encode`]: records to request bodies (EMF, NDJSON, OTLP protobuf/JSON);
//! - [`flush`]: when to flush, and whether that may delay the next invoke;
//! - [`config`]: `TANDEM_*`/`OTEL_*` settings and the optional TOML file;
//! - [`pipeline`]: the intake: each telemetry event to records, once;
//! - [`health`]: the extension's own counters and health snapshots.
//!
//! None of these modules opens a socket, touches the file system (except
//! [`config::Config::load`] reading the one file `TANDEM_CONFIG` names), reads a clock or
//! spawns a task. The I/O parts are built on top of them and feed them times and events:
//!
//! - [`spool`]: one sink's overflow on disk (append-only NDJSON segments under `/tmp`);
//! - [`queue`]: one sink's records in order, in memory then in its spool;
//! - [`sink`]: `stdout`, `file`, `http`, `otlp`: one attempt at a batch, and retries;
//! - [`delivery`]: the lanes (queue and sink) and the flushes that drain them;
//! - [`app`]: the lifecycle glue, as a `tandem_sdk::Handler`;
//! - [`diag`]: the extension's own diagnostic lines.
//!
//! The telemetry listener, the Extensions API client and the lifecycle loop are
//! `tandem-sdk`'s.

#![forbid(unsafe_code)]

pub mod app;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod diag;
pub mod encode;
pub mod flush;
pub mod health;
pub mod invocation;
pub mod logs;
pub mod model;
pub mod pipeline;
pub mod queue;
pub mod rules;
pub mod sink;
pub mod spool;
