//! health: the extension's own counters and the [`HealthSnapshot`]s made of them.
//!
//! Owns the counters that belong to no single queue (records in, rule and Lambda-side
//! drops, retries, flushes and their latency) and the emission rule: a snapshot is due
//! once per invocation (set at INVOKE, taken by the first flush after it) and at
//! SHUTDOWN, so that health costs one record per invocation at most and nothing while
//! idle. The snapshot adds up the queues' counters (delivered per sink, spooled,
//! dropped by reason) and what waits. It travels through the same sinks as everything
//! else. Never does I/O, never reads a clock (times are passed in).

use crate::config::SinkKind;
use crate::flush::Pending;
use crate::model::{HealthSnapshot, SinkHealth};
use std::collections::BTreeMap;

/// Drop reasons, as they appear in [`HealthSnapshot::dropped`].
pub mod reason {
    /// An `exclude`/`include` rule dropped a log record.
    pub const RULE: &str = "rule";
    /// Lambda dropped records before they reached the extension (`platform.logsDropped`).
    pub const LAMBDA_LOGS_DROPPED: &str = "lambda_logs_dropped";
    /// Memory full and no usable spool.
    pub const BUFFER_FULL: &str = "buffer_full";
    /// The spool was full: its oldest segment was deleted.
    pub const SPOOL_FULL: &str = "spool_full";
    /// A spooled line could not be read back.
    pub const SPOOL_CORRUPT: &str = "spool_corrupt";
    /// A sink rejected the request for good (4xx other than 408/429).
    pub const PERMANENT_ERROR: &str = "permanent_error";
    /// Not delivered by the end of SHUTDOWN and written to stdout instead.
    pub const UNDELIVERED_AT_SHUTDOWN: &str = "undelivered_at_shutdown";
}

/// Counters of one queue, totals since start (kept by the queue, added up here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Records written to the spool only (memory was full, or the disk held older ones).
    pub spooled: u64,
    /// Records held in memory without a write-ahead copy (the spool had no room).
    pub not_written_ahead: u64,
    /// Records accepted by the sink.
    pub delivered: u64,
    /// Records the sink rejected permanently.
    pub rejected: u64,
    /// Records dropped because memory was full and no spool could take them.
    pub dropped_buffer_full: u64,
    /// Records dropped with the spool's oldest segment when it was full.
    pub dropped_spool_full: u64,
    /// Spooled lines that could not be read back.
    pub dropped_spool_corrupt: u64,
}

/// What one queue contributes to a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct LaneView {
    /// Which sink.
    pub sink: SinkKind,
    /// Its queue's counters.
    pub stats: QueueStats,
    /// What waits in it.
    pub pending: Pending,
    /// Bytes of its spool on disk.
    pub spool_bytes: u64,
    /// Its sink's state.
    pub state: SinkState,
}

/// A sink's state, from its circuit breaker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkState {
    /// Since when it fails (ms), while it does.
    pub failing_since_ms: Option<u64>,
    /// Failed flushes in a row.
    pub failures: u32,
}

/// The counters and the emission rule. See the module documentation.
#[derive(Debug, Clone)]
pub struct Health {
    started_ms: u64,
    records_in: u64,
    dropped: BTreeMap<&'static str, u64>,
    retried: u64,
    duplicates_sent: u64,
    flushes: u64,
    flush_latency_ms_last: f64,
    flush_latency_ms_max: f64,
    due: bool,
}

impl Health {
    /// Counters from zero; `started_ms` is when the process started.
    pub fn new(started_ms: u64) -> Health {
        Health {
            started_ms,
            records_in: 0,
            dropped: BTreeMap::new(),
            retried: 0,
            duplicates_sent: 0,
            flushes: 0,
            flush_latency_ms_last: 0.0,
            flush_latency_ms_max: 0.0,
            due: false,
        }
    }

    /// Counts records accepted from the Telemetry API.
    pub fn records_in(&mut self, n: u64) {
        self.records_in += n;
    }

    /// Counts `n` records dropped for `reason` (see [`reason`]).
    pub fn dropped(&mut self, reason: &'static str, n: u64) {
        if n > 0 {
            *self.dropped.entry(reason).or_insert(0) += n;
        }
    }

    /// Counts `n` repeated send attempts.
    pub fn retried(&mut self, n: u64) {
        self.retried += n;
    }

    /// Counts `n` records sent again after a request carrying them got no answer (the
    /// receiver may hold them twice).
    pub fn duplicates_sent(&mut self, n: u64) {
        self.duplicates_sent += n;
    }

    /// A flush ended after `latency_ms`.
    pub fn flushed(&mut self, latency_ms: f64) {
        self.flushes += 1;
        self.flush_latency_ms_last = latency_ms;
        self.flush_latency_ms_max = self.flush_latency_ms_max.max(latency_ms);
    }

    /// An invocation started (or SHUTDOWN came): the next flush carries a snapshot.
    pub fn mark_due(&mut self) {
        self.due = true;
    }

    /// Whether a snapshot is due now; clears the mark.
    pub fn take_due(&mut self) -> bool {
        std::mem::take(&mut self.due)
    }

    /// A snapshot at `now_ms`, adding up the queues. `parse_errors`: telemetry events
    /// the intake could not parse.
    pub fn snapshot(&self, now_ms: u64, lanes: &[LaneView], parse_errors: u64) -> HealthSnapshot {
        let mut dropped: BTreeMap<String, u64> = self.dropped.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        let mut add = |reason: &str, n: u64| {
            if n > 0 {
                *dropped.entry(reason.to_owned()).or_insert(0) += n;
            }
        };
        let mut delivered_by_sink = BTreeMap::new();
        let mut sinks = BTreeMap::new();
        let (mut delivered, mut spooled, mut records, mut bytes, mut spool_bytes) = (0, 0, 0, 0, 0);
        let mut not_written_ahead = 0;
        for lane in lanes {
            let s = lane.stats;
            add(reason::BUFFER_FULL, s.dropped_buffer_full);
            add(reason::SPOOL_FULL, s.dropped_spool_full);
            add(reason::SPOOL_CORRUPT, s.dropped_spool_corrupt);
            add(reason::PERMANENT_ERROR, s.rejected);
            delivered += s.delivered;
            delivered_by_sink.insert(lane.sink.as_str().to_owned(), s.delivered);
            let st = lane.state;
            sinks.insert(
                lane.sink.as_str().to_owned(),
                SinkHealth {
                    state: if st.failing_since_ms.is_some() { "failing" } else { "ok" }.to_owned(),
                    failing_since_ms: st.failing_since_ms,
                    failures: u64::from(st.failures),
                    pending: lane.pending.records as u64,
                },
            );
            spooled += s.spooled;
            not_written_ahead += s.not_written_ahead;
            records += lane.pending.records as u64;
            bytes += lane.pending.bytes as u64;
            spool_bytes += lane.spool_bytes;
        }
        HealthSnapshot {
            time_ms: now_ms,
            started_ms: Some(self.started_ms),
            records_in: self.records_in,
            delivered,
            delivered_by_sink,
            retried: self.retried,
            duplicates_sent: self.duplicates_sent,
            sinks,
            spooled,
            not_written_ahead,
            dropped,
            buffered_records: records,
            buffered_bytes: bytes,
            spool_bytes,
            flushes: self.flushes,
            flush_latency_ms_last: self.flush_latency_ms_last,
            flush_latency_ms_max: self.flush_latency_ms_max,
            parse_errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_add_up_the_queues_and_are_due_once() {
        let mut h = Health::new(1_000);
        h.records_in(10);
        h.dropped(reason::RULE, 2);
        h.dropped(reason::RULE, 0);
        h.retried(3);
        h.duplicates_sent(4);
        h.flushed(12.5);
        h.flushed(4.0);
        let a = QueueStats { delivered: 7, spooled: 2, rejected: 1, dropped_spool_full: 4, ..QueueStats::default() };
        let b = QueueStats { delivered: 8, ..QueueStats::default() };
        let lanes = [
            LaneView {
                sink: SinkKind::Http,
                stats: a,
                pending: Pending { records: 3, bytes: 300, oldest_ms: None },
                spool_bytes: 90,
                state: SinkState { failing_since_ms: Some(1_500), failures: 2 },
            },
            LaneView {
                sink: SinkKind::File,
                stats: b,
                pending: Pending::default(),
                spool_bytes: 0,
                state: SinkState::default(),
            },
        ];
        let s = h.snapshot(2_000, &lanes, 5);
        assert_eq!(s.started_ms, Some(1_000));
        assert_eq!(s.records_in, 10);
        assert_eq!(s.delivered, 15);
        assert_eq!(s.delivered_by_sink.get("http"), Some(&7));
        assert_eq!(s.delivered_by_sink.get("file"), Some(&8));
        assert_eq!(s.spooled, 2);
        assert_eq!(s.retried, 3);
        assert_eq!(s.duplicates_sent, 4);
        let http = &s.sinks["http"];
        assert_eq!(
            (http.state.as_str(), http.failing_since_ms, http.failures, http.pending),
            ("failing", Some(1_500), 2, 3)
        );
        assert_eq!(s.sinks["file"].state, "ok");
        assert_eq!(s.dropped.get("rule"), Some(&2));
        assert_eq!(s.dropped.get("spool_full"), Some(&4));
        assert_eq!(s.dropped.get("permanent_error"), Some(&1));
        assert!(!s.dropped.contains_key("buffer_full"));
        assert_eq!(s.buffered_records, 3);
        assert_eq!(s.spool_bytes, 90);
        assert_eq!(s.flushes, 2);
        assert_eq!(s.flush_latency_ms_last, 4.0);
        assert_eq!(s.flush_latency_ms_max, 12.5);
        assert_eq!(s.parse_errors, 5);
        assert!(!h.take_due());
        h.mark_due();
        assert!(h.take_due());
        assert!(!h.take_due());
    }
}
