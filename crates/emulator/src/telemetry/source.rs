//! telemetry::source: what the hub is fed from process output: a line, when it was
//! read and who wrote it (the function or an extension). Produced by the capture in
//! `process`, consumed by the hub and its renderings.

use tandem_wire::telemetry::{types, TelemetryType};

/// Who wrote a line: the runtime (the function) or an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The runtime process.
    Function,
    /// An extension process.
    Extension,
}

impl Source {
    /// The subscription category its lines belong to.
    pub fn category(self) -> TelemetryType {
        match self {
            Source::Function => TelemetryType::Function,
            Source::Extension => TelemetryType::Extension,
        }
    }

    /// The `type` of the events carrying its lines.
    pub fn type_name(self) -> &'static str {
        match self {
            Source::Function => types::FUNCTION,
            Source::Extension => types::EXTENSION_LOG,
        }
    }
}

/// A line a process wrote, stamped when it was read.
#[derive(Debug, Clone)]
pub struct Line {
    /// When it was read, microseconds since the epoch.
    pub time_us: u64,
    /// Who wrote it.
    pub source: Source,
    /// The line, without its newline.
    pub text: String,
}
