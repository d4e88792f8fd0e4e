//! diag::level: the verbosity of the extension's own diagnostics (`TANDEM_LOG_LEVEL`).
//! Pure: the configuration parses it, [`super`] applies it.

/// Verbosity of the extension's own diagnostics (`TANDEM_LOG_LEVEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Nothing at all.
    Off,
    /// Failures that lose data or stop a part of the extension.
    Error,
    /// Problems handled by a fallback (a bad setting, a sink rejecting requests).
    Warn,
    /// Start, configuration summary, shutdown (the default).
    Info,
    /// Per-flush and per-retry detail.
    Debug,
    /// The most detail (today the same lines as `debug`).
    Trace,
}

impl LogLevel {
    /// The name `TANDEM_LOG_LEVEL` uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// Parses a level name, case-insensitively (`none` and `warning` are accepted too).
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }
}
