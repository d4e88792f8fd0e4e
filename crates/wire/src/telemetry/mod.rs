//! telemetry: Telemetry API and Logs API events: `{"time","type","record"}` and every
//! record schema of platform, function and extension events.
//!
//! Forward-compatible by construction: unknown fields are ignored, string values
//! outside the known set parse as `Other(..)`, and an unknown `type` parses into
//! [`Record::Unknown`] holding its raw JSON. [`parse_batch`] parses a delivered JSON
//! array event by event, so one bad event never costs the rest of its batch.
//!
//! `records` owns the record schemas, `event` the envelope and its one-pass parse,
//! `batch` the parsing of a whole delivery.

mod batch;
mod event;
mod records;

pub use batch::{parse_batch, parse_events, parse_ndjson, Batch, EventError};
pub use event::{Event, Record};
pub use records::{
    End, ExtensionInfo, InitStart, InitializationType, LogRecord, LogsDropped, Phase, PhaseDone, PhaseMetrics,
    PhaseReport, Report, ReportMetrics, RestoreStart, RuntimeDone, RuntimeDoneMetrics, Span, Start, Status,
    SubscriptionInfo, TelemetryType, TraceContext,
};

/// `type` strings of every event. Spelled here once.
pub mod types {
    /// `platform.initStart`.
    pub const INIT_START: &str = "platform.initStart";
    /// `platform.initRuntimeDone`.
    pub const INIT_RUNTIME_DONE: &str = "platform.initRuntimeDone";
    /// `platform.initReport`.
    pub const INIT_REPORT: &str = "platform.initReport";
    /// `platform.restoreStart`.
    pub const RESTORE_START: &str = "platform.restoreStart";
    /// `platform.restoreRuntimeDone`.
    pub const RESTORE_RUNTIME_DONE: &str = "platform.restoreRuntimeDone";
    /// `platform.restoreReport`.
    pub const RESTORE_REPORT: &str = "platform.restoreReport";
    /// `platform.start`.
    pub const START: &str = "platform.start";
    /// `platform.runtimeDone`.
    pub const RUNTIME_DONE: &str = "platform.runtimeDone";
    /// `platform.report`.
    pub const REPORT: &str = "platform.report";
    /// `platform.extension`.
    pub const EXTENSION: &str = "platform.extension";
    /// `platform.telemetrySubscription`.
    pub const TELEMETRY_SUBSCRIPTION: &str = "platform.telemetrySubscription";
    /// `platform.logsDropped`.
    pub const LOGS_DROPPED: &str = "platform.logsDropped";
    // Logs API only.
    /// `platform.end`.
    pub const END: &str = "platform.end";
    /// `platform.fault`.
    pub const FAULT: &str = "platform.fault";
    /// `platform.logsSubscription`.
    pub const LOGS_SUBSCRIPTION: &str = "platform.logsSubscription";
    // Log lines.
    /// A line the function wrote.
    pub const FUNCTION: &str = "function";
    /// A line an extension wrote.
    pub const EXTENSION_LOG: &str = "extension";
}
