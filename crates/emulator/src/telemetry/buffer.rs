//! telemetry::buffer: one subscriber's platform-side buffer and batching, sans-I/O.
//!
//! Owns the rules of Lambda's delivery: a batch is due when it reaches `maxItems`, or
//! `maxBytes`, or its oldest event has waited `timeoutMs`; the buffer behind it is
//! bounded and never blocks the function, so on overflow the oldest events go and the
//! next batch starts with an exact `platform.logsDropped`. No I/O, no clock reads.

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Limits of one subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_items: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
    /// Bound of the platform-side buffer (events waiting for delivery).
    pub cap_items: usize,
    pub cap_bytes: usize,
}

#[derive(Debug)]
struct Pending {
    json: Bytes,
    at: Instant,
}

/// A batch to deliver: the events, and what was dropped before them.
#[derive(Debug, Default, PartialEq)]
pub struct Batch {
    pub events: Vec<Bytes>,
    /// `(records, bytes)` dropped since the previous batch.
    pub dropped: Option<(u64, u64)>,
}

#[derive(Debug)]
pub struct Buffer {
    limits: Limits,
    queue: VecDeque<Pending>,
    bytes: usize,
    dropped_records: u64,
    dropped_bytes: u64,
}

impl Buffer {
    pub fn new(limits: Limits) -> Self {
        Self { limits, queue: VecDeque::new(), bytes: 0, dropped_records: 0, dropped_bytes: 0 }
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Events held (what the tests check).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Queues one rendered event; drops the oldest ones when over the bound.
    pub fn push(&mut self, json: Bytes, at: Instant) {
        self.bytes += json.len();
        self.queue.push_back(Pending { json, at });
        while self.queue.len() > self.limits.cap_items || self.bytes > self.limits.cap_bytes {
            match self.queue.pop_front() {
                Some(old) => {
                    self.bytes -= old.json.len();
                    self.dropped_records += 1;
                    self.dropped_bytes += old.json.len() as u64;
                }
                None => break,
            }
        }
    }

    /// When the oldest pending event's timeout expires.
    pub fn deadline(&self) -> Option<Instant> {
        self.queue.front().map(|p| p.at + self.limits.timeout)
    }

    /// Whether a batch should go out at `now`.
    /// The same rules hold at shutdown: Lambda keeps each subscription's buffering
    /// until the deadline rather than flushing. (Drops are reported with the next batch:
    /// the queue is never empty after a drop.)
    pub fn due(&self, now: Instant) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        self.queue.len() >= self.limits.max_items
            || self.bytes >= self.limits.max_bytes
            || self.deadline().is_some_and(|d| now >= d)
    }

    /// Takes the next batch if one is due: up to `maxItems` events, and events while
    /// the batch is under `maxBytes` (so a batch stays below `2 * maxBytes`).
    pub fn take(&mut self, now: Instant) -> Option<Batch> {
        if !self.due(now) {
            return None;
        }
        let mut events = Vec::new();
        let mut size = 0;
        while let Some(front) = self.queue.front() {
            if events.len() >= self.limits.max_items || (size >= self.limits.max_bytes && !events.is_empty()) {
                break;
            }
            if !events.is_empty() && size + front.json.len() > 2 * self.limits.max_bytes {
                break;
            }
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            size += p.json.len();
            self.bytes -= p.json.len();
            events.push(p.json);
        }
        let dropped = (self.dropped_records > 0).then_some((self.dropped_records, self.dropped_bytes));
        self.dropped_records = 0;
        self.dropped_bytes = 0;
        Some(Batch { events, dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_items: 3, max_bytes: 100, timeout: Duration::from_millis(25), cap_items: 5, cap_bytes: 1000 }
    }

    fn ev(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn max_items_triggers_a_batch() {
        let t = Instant::now();
        let mut b = Buffer::new(limits());
        b.push(ev(1), t);
        b.push(ev(1), t);
        assert!(b.take(t).is_none());
        b.push(ev(1), t);
        assert_eq!(b.take(t).unwrap().events.len(), 3);
        assert!(b.take(t).is_none());
    }

    #[test]
    fn max_bytes_triggers_a_batch_that_stays_under_twice_the_limit() {
        let t = Instant::now();
        let mut b = Buffer::new(Limits { max_items: 100, ..limits() });
        b.push(ev(60), t);
        assert!(!b.due(t));
        b.push(ev(60), t);
        b.push(ev(60), t);
        let batch = b.take(t).unwrap();
        assert_eq!(batch.events.len(), 2, "stops once maxBytes is reached");
        assert!(!b.due(t), "the rest waits for its own trigger");
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn timeout_triggers_a_batch() {
        let t = Instant::now();
        let mut b = Buffer::new(limits());
        b.push(ev(1), t);
        assert_eq!(b.deadline(), Some(t + Duration::from_millis(25)));
        assert!(b.take(t + Duration::from_millis(24)).is_none());
        assert_eq!(b.take(t + Duration::from_millis(25)).unwrap().events.len(), 1);
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_exactly() {
        let t = Instant::now();
        let mut b = Buffer::new(Limits { max_items: 100, ..limits() });
        for i in 0..8u8 {
            b.push(Bytes::from(vec![i; 10]), t);
        }
        assert_eq!(b.len(), 5);
        let batch = b.take(t + Duration::from_millis(25)).unwrap();
        assert_eq!(batch.dropped, Some((3, 30)));
        assert_eq!(batch.events.first().unwrap()[0], 3, "the oldest went first");
        b.push(ev(1), t);
        assert_eq!(b.take(t + Duration::from_millis(25)).unwrap().dropped, None, "drops are reported once");
    }

    #[test]
    fn nothing_is_due_before_a_limit_or_the_timeout() {
        let t = Instant::now();
        let mut b = Buffer::new(limits());
        assert!(!b.due(t + Duration::from_secs(60)), "an empty buffer never is");
        b.push(ev(1), t);
        assert!(!b.due(t + Duration::from_millis(24)));
        assert!(b.due(t + Duration::from_millis(25)));
    }
}
