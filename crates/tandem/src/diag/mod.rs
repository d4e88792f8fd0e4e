//! diag: the extension's own diagnostic lines, one per event worth telling, on stderr.
//!
//! Owns the verbosity (`TANDEM_LOG_LEVEL`) and the "say it once" rule for problems that
//! repeat. Every line goes through the SDK's [`tandem_sdk::log_line`], so it carries the
//! `[<extension name>] ` prefix that keeps it out of the extension's own telemetry
//! intake: it lands in CloudWatch but can never feed back into the pipeline. Never
//! called per record. [`LogLevel`] itself is pure (`level.rs`), so the configuration
//! can parse it without depending on this I/O module.

pub mod level;

pub use level::LogLevel;

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static ONCE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Sets the verbosity (from the configuration).
pub fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether lines of `level` are written.
pub fn enabled(level: LogLevel) -> bool {
    level != LogLevel::Off && (level as u8) <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line at `level` (a line break in `msg` is flattened: one event, one line).
pub fn log(level: LogLevel, msg: impl Display) {
    if enabled(level) {
        let text = msg.to_string();
        if text.contains('\n') {
            tandem_sdk::log_line(text.split_whitespace().collect::<Vec<_>>().join(" "));
        } else {
            tandem_sdk::log_line(text);
        }
    }
}

/// Writes one line at [`LogLevel::Error`].
pub fn error(msg: impl Display) {
    log(LogLevel::Error, msg);
}

/// Writes one line at [`LogLevel::Warn`].
pub fn warn(msg: impl Display) {
    log(LogLevel::Warn, msg);
}

/// Writes one line at [`LogLevel::Info`].
pub fn info(msg: impl Display) {
    log(LogLevel::Info, msg);
}

/// Writes one line at [`LogLevel::Debug`].
pub fn debug(msg: impl Display) {
    log(LogLevel::Debug, msg);
}

/// Writes `msg` at `level` the first time `key` is seen (for problems that would
/// otherwise repeat at every flush, such as a sink rejecting requests).
pub fn once(level: LogLevel, key: &str, msg: impl Display) {
    let first = match ONCE.lock() {
        Ok(mut seen) => seen.get_or_insert_with(HashSet::new).insert(key.to_owned()),
        Err(_) => true,
    };
    if first {
        log(level, msg);
    }
}
