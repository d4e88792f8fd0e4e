//! context: what a handler knows about its extension: its identity, the function it
//! serves, intake counters, and which invocations' `platform.runtimeDone` and
//! `platform.report` have been accepted (so that a handler can wait for them).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tandem_wire::extensions::RegisterResponse;
use tandem_wire::telemetry::Record;
use tandem_wire::Event;
use tokio::sync::watch;

/// How many recent request ids are remembered per kind of record.
const REMEMBER: usize = 64;

/// Counters of the telemetry intake.
#[derive(Debug, Default)]
pub struct Stats {
    /// Batches received.
    pub batches: AtomicU64,
    /// Events handed to (and accepted by) the handler.
    pub events: AtomicU64,
    /// Events (or whole bodies) that could not be parsed.
    pub malformed: AtomicU64,
    /// Events of a type this SDK does not know (handed over as raw JSON).
    pub unknown: AtomicU64,
    /// Batches the handler refused (answered 500, delivered again by Lambda).
    pub refused: AtomicU64,
    /// The extension's own log lines, kept out of its intake.
    pub own_lines: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Batches received.
    pub batches: u64,
    /// Events accepted by the handler.
    pub events: u64,
    /// Events (or bodies) that could not be parsed.
    pub malformed: u64,
    /// Events of an unknown type (handed over raw).
    pub unknown: u64,
    /// Batches refused by the handler.
    pub refused: u64,
    /// Own diagnostic lines kept out of the intake.
    pub own_lines: u64,
}

#[derive(Debug, Default, Clone)]
struct Seen {
    runtime_done: VecDeque<String>,
    reports: VecDeque<String>,
}

pub(crate) struct Inner {
    pub id: String,
    pub name: String,
    pub info: RegisterResponse,
    pub stats: Stats,
    pub skip_own_logs: bool,
    seen: watch::Sender<Seen>,
    last_invoke: Mutex<Option<String>>,
}

/// Handed to every handler call. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<Inner>,
}

/// Request ids an accepted batch closes.
pub(crate) struct Marks {
    runtime_done: Vec<String>,
    reports: Vec<String>,
}

impl Context {
    pub(crate) fn new(id: String, name: String, info: RegisterResponse, skip_own_logs: bool) -> Self {
        let (seen, _) = watch::channel(Seen::default());
        Context {
            inner: Arc::new(Inner {
                id,
                name,
                info,
                stats: Stats::default(),
                skip_own_logs,
                seen,
                last_invoke: Mutex::new(None),
            }),
        }
    }

    /// The identifier Lambda gave this extension.
    pub fn extension_id(&self) -> &str {
        &self.inner.id
    }

    /// The name it registered under.
    pub fn extension_name(&self) -> &str {
        &self.inner.name
    }

    /// The function's name, from the register answer.
    pub fn function_name(&self) -> &str {
        &self.inner.info.function_name
    }

    /// The function's version.
    pub fn function_version(&self) -> &str {
        &self.inner.info.function_version
    }

    /// The function's handler setting.
    pub fn handler(&self) -> &str {
        &self.inner.info.handler
    }

    /// The account id, when the `accountId` feature was asked for.
    pub fn account_id(&self) -> Option<&str> {
        self.inner.info.account_id.as_deref()
    }

    /// The intake counters so far.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.inner.stats;
        StatsSnapshot {
            batches: s.batches.load(Ordering::Relaxed),
            events: s.events.load(Ordering::Relaxed),
            malformed: s.malformed.load(Ordering::Relaxed),
            unknown: s.unknown.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            own_lines: s.own_lines.load(Ordering::Relaxed),
        }
    }

    /// The request id of the last INVOKE received.
    pub fn last_invoke(&self) -> Option<String> {
        self.inner.last_invoke.lock().ok().and_then(|l| l.clone())
    }

    pub(crate) fn set_last_invoke(&self, request_id: &str) {
        if let Ok(mut l) = self.inner.last_invoke.lock() {
            *l = Some(request_id.to_owned());
        }
    }

    /// Waits until the handler has accepted the `platform.runtimeDone` of
    /// `request_id`, or `until`. Returns whether it did.
    pub async fn wait_runtime_done(&self, request_id: &str, until: Instant) -> bool {
        self.wait(until, |s| s.runtime_done.iter().any(|r| r == request_id)).await
    }

    /// Waits until the handler has accepted the `platform.report` of `request_id`, or
    /// `until`. Returns whether it did.
    pub async fn wait_report(&self, request_id: &str, until: Instant) -> bool {
        self.wait(until, |s| s.reports.iter().any(|r| r == request_id)).await
    }

    async fn wait(&self, until: Instant, pred: impl Fn(&Seen) -> bool) -> bool {
        let mut rx = self.inner.seen.subscribe();
        let found = tokio::time::timeout_at(until.into(), async { rx.wait_for(|s| pred(s)).await.is_ok() }).await;
        matches!(found, Ok(true))
    }

    pub(crate) fn marks(&self, events: &[Event]) -> Marks {
        let mut m = Marks { runtime_done: Vec::new(), reports: Vec::new() };
        for e in events {
            match &e.record {
                Record::RuntimeDone(r) => m.runtime_done.push(r.request_id.clone()),
                Record::Report(r) => m.reports.push(r.request_id.clone()),
                _ => {}
            }
        }
        m
    }

    pub(crate) fn accepted(&self, m: Marks) {
        if m.runtime_done.is_empty() && m.reports.is_empty() {
            return;
        }
        self.inner.seen.send_modify(|s| {
            for (list, new) in [(&mut s.runtime_done, m.runtime_done), (&mut s.reports, m.reports)] {
                for id in new {
                    list.push_back(id);
                    if list.len() > REMEMBER {
                        list.pop_front();
                    }
                }
            }
        });
    }
}
