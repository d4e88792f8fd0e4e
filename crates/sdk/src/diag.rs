//! diag: the SDK's own diagnostics, one line each on stderr, prefixed with the
//! extension's name so that they can be recognised (and kept out of the extension's
//! own telemetry intake: see `Extension::skip_own_logs`).

use std::io::Write;
use std::sync::OnceLock;

static PREFIX: OnceLock<String> = OnceLock::new();

/// Sets the name diagnostics are prefixed with (`[name] `), once: the first call wins.
/// [`Extension::run`](crate::Extension::run) sets it at registration; an extension that
/// prints diagnostics before that (configuration problems, say) calls it first.
pub fn set_prefix(name: &str) {
    let _ = PREFIX.set(format!("[{name}] "));
}

/// The prefix every diagnostic line starts with.
pub fn prefix() -> &'static str {
    PREFIX.get().map_or("[tandem-sdk] ", String::as_str)
}

/// Writes one diagnostic line. Never fails: a closed stderr must not crash anything.
pub fn line(msg: impl std::fmt::Display) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}{msg}", prefix());
}
