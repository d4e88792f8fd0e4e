//! guard::finding: what the guard reports: a [`Finding`] (kind, severity, the rule that
//! fired, its evidence, the request id it happened in, what was done), its form as a
//! pipeline record (a [`LogRecord`] at WARN with `security.*` attributes, so every sink
//! carries it as it carries a log line), its one-line diagnostic, and the rate limit
//! on those lines. Pure: the time comes in.

use crate::model::{Level, LogRecord, Source};
use serde_json::{Map, Value};

/// What a finding is about (`security.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A process the exec policy does not allow.
    Process,
    /// A connection to a peer the network policy does not allow.
    Network,
    /// An executable file or ELF binary written under the temporary directory, or a
    /// write to a file the policy watches.
    File,
    /// The guard itself (its scan loop stopped).
    Guard,
}

impl Kind {
    /// `process`, `network`, `file`, `guard`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Process => "process",
            Kind::Network => "network",
            Kind::File => "file",
            Kind::Guard => "guard",
        }
    }
}

/// How bad (`security.severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth a look.
    Medium,
    /// Likely hostile.
    High,
    /// Hostile beyond doubt (a running binary that deleted itself).
    Critical,
}

impl Severity {
    /// `medium`, `high`, `critical`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// The rules (`security.rule`).
pub mod rule {
    /// A process outside `TANDEM_GUARD_ALLOW_EXEC`.
    pub const EXEC: &str = "exec.not_allowed";
    /// A peer outside `TANDEM_GUARD_ALLOW_NET`.
    pub const NET: &str = "net.not_allowed";
    /// An ELF binary written under the temporary directory.
    pub const FILE_ELF: &str = "file.elf_in_tmp";
    /// A file made executable under the temporary directory.
    pub const FILE_EXEC: &str = "file.executable_in_tmp";
    /// A write to a file `TANDEM_GUARD_WATCH_FILES` names.
    pub const FILE_WRITE: &str = "file.watched_write";
    /// The scan loop is no longer running.
    pub const STOPPED: &str = "guard.scan_stopped";
}

/// What the guard did about a finding (`security.action`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Reported only (`detect`, or a process `enforce` must not kill).
    Alert,
    /// `enforce`: the process was sent SIGKILL.
    Killed,
    /// `enforce`: SIGKILL failed (the reason).
    KillFailed(String),
}

impl Action {
    /// `alert`, `killed`, `kill_failed`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Killed => "killed",
            Action::KillFailed(_) => "kill_failed",
        }
    }
}

/// One thing the guard saw that its policy does not allow.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What it is about.
    pub kind: Kind,
    /// How bad.
    pub severity: Severity,
    /// The rule that fired (see [`rule`]).
    pub rule: &'static str,
    /// One line saying what was seen.
    pub summary: String,
    /// The evidence, as attributes (`process.pid`, `process.command_line`,
    /// `network.peer.address`, `file.path`, …; OpenTelemetry's names).
    pub evidence: Map<String, Value>,
    /// The invocation it happened in (none during INIT).
    pub request_id: Option<String>,
    /// The process `enforce` kills, when the policy lets it kill one.
    pub kill: Option<u32>,
    /// What was done.
    pub action: Action,
}

impl Finding {
    /// The pipeline record: a WARN log line from the extension, with the finding in
    /// `security.kind`, `security.rule`, `security.severity`, `security.action`,
    /// `security.evidence` (the summary), the evidence attributes and
    /// `faas.invocation_id`.
    pub fn to_log_record(&self, now_ms: u64) -> LogRecord {
        let mut attributes = self.evidence.clone();
        let mut put = |k: &str, v: &str| {
            attributes.insert(k.into(), Value::String(v.into()));
        };
        put("security.kind", self.kind.as_str());
        put("security.rule", self.rule);
        put("security.severity", self.severity.as_str());
        put("security.action", self.action.as_str());
        put("security.evidence", &self.summary);
        if let Action::KillFailed(why) = &self.action {
            put("security.action_error", why);
        }
        if let Some(id) = &self.request_id {
            put("faas.invocation_id", id);
        }
        LogRecord {
            time_ms: now_ms,
            observed_ms: now_ms,
            source: Source::Extension,
            level: Level::Warn,
            request_id: self.request_id.clone(),
            message: format!("tandem guard: {}", self.summary),
            attributes,
            trace_id: None,
        }
    }

    /// The finding told at the next INVOKE when the scan loop has stopped (`why`).
    pub fn stopped(why: &str, request_id: Option<String>) -> Finding {
        let mut evidence = Map::new();
        evidence.insert("guard.error".into(), why.into());
        Finding {
            kind: Kind::Guard,
            severity: Severity::High,
            rule: rule::STOPPED,
            summary: format!("the guard's scan loop stopped ({why}): nothing is watched any more"),
            evidence,
            request_id,
            kill: None,
            action: Action::Alert,
        }
    }

    /// The diagnostic line (`security <kind> <severity> <rule>: <summary> (<action>,
    /// request <id>)`).
    pub fn line(&self) -> String {
        let action = match &self.action {
            Action::KillFailed(why) => format!("kill failed: {why}"),
            a => a.as_str().to_owned(),
        };
        format!(
            "security {} {} {}: {} ({action}, request {})",
            self.kind.as_str(),
            self.severity.as_str(),
            self.rule,
            self.summary,
            self.request_id.as_deref().unwrap_or("none: init")
        )
    }
}

/// At most `burst` lines per `window_ms`; what is held back is counted and told with
/// the next line let through. The records are never limited: only stdout lines.
#[derive(Debug, Clone)]
pub struct RateLimit {
    burst: u32,
    window_ms: u64,
    window_start: u64,
    used: u32,
    held_back: u64,
}

impl RateLimit {
    /// `burst` lines per `window_ms`.
    pub fn new(burst: u32, window_ms: u64) -> RateLimit {
        RateLimit { burst, window_ms, window_start: 0, used: 0, held_back: 0 }
    }

    /// Whether a line may be written at `now_ms`; when it may, how many were held back
    /// since the last one written.
    pub fn admit(&mut self, now_ms: u64) -> Option<u64> {
        if now_ms.saturating_sub(self.window_start) >= self.window_ms {
            self.window_start = now_ms;
            self.used = 0;
        }
        if self.used >= self.burst {
            self.held_back += 1;
            return None;
        }
        self.used += 1;
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding() -> Finding {
        let mut evidence = Map::new();
        evidence.insert("process.pid".into(), Value::from(912));
        Finding {
            kind: Kind::Process,
            severity: Severity::High,
            rule: rule::EXEC,
            summary: "process 912 /bin/sh -c sleep 5".into(),
            evidence,
            request_id: Some("req-1".into()),
            kill: Some(912),
            action: Action::Killed,
        }
    }

    #[test]
    fn record_carries_the_finding() {
        let r = finding().to_log_record(1_700_000_000_000);
        assert_eq!(r.level, Level::Warn);
        assert_eq!(r.source, Source::Extension);
        assert_eq!(r.request_id.as_deref(), Some("req-1"));
        assert_eq!(r.message, "tandem guard: process 912 /bin/sh -c sleep 5");
        let a = &r.attributes;
        assert_eq!(a["security.kind"], "process");
        assert_eq!(a["security.rule"], "exec.not_allowed");
        assert_eq!(a["security.severity"], "high");
        assert_eq!(a["security.action"], "killed");
        assert_eq!(a["security.evidence"], "process 912 /bin/sh -c sleep 5");
        assert_eq!(a["faas.invocation_id"], "req-1");
        assert_eq!(a["process.pid"], 912);
        let mut f = finding();
        f.request_id = None;
        f.action = Action::KillFailed("EPERM".into());
        let r = f.to_log_record(1);
        assert!(!r.attributes.contains_key("faas.invocation_id"));
        assert_eq!(r.attributes["security.action_error"], "EPERM");
        assert!(f.line().ends_with("(kill failed: EPERM, request none: init)"), "{}", f.line());
    }

    #[test]
    fn stopped_loop() {
        let f = Finding::stopped("panicked", Some("req-3".into()));
        assert_eq!((f.kind, f.rule, f.request_id.as_deref()), (Kind::Guard, rule::STOPPED, Some("req-3")));
        assert_eq!(f.evidence["guard.error"], "panicked");
    }

    #[test]
    fn rate_limit_counts_what_it_holds_back() {
        let mut r = RateLimit::new(2, 1000);
        assert_eq!(r.admit(10), Some(0));
        assert_eq!(r.admit(20), Some(0));
        assert_eq!(r.admit(30), None);
        assert_eq!(r.admit(40), None);
        assert_eq!(r.admit(1010), Some(2), "the next window tells how many were held back");
        assert_eq!(r.admit(1020), Some(0));
    }
}
