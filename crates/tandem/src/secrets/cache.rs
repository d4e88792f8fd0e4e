//! secrets::cache: the cache policy, sans-I/O (the time is passed in as the duration
//! since any fixed origin).
//!
//! Owns what a read gets: a fresh value (`Fresh`, and whether to refresh it ahead of
//! its expiry: once half its TTL has passed, so a value read more often than its TTL
//! is never fetched in the function's path again), or nothing usable (`Expired`/absent:
//! the caller fetches); a value past its TTL still served when AWS fails, up to
//! `stale_if_error` more ([`Cache::stale`]); at most `capacity` entries, the least
//! recently used evicted. Values are opaque bytes; nothing here formats them.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Duration;

/// A refresh ahead that failed is not tried again before this (AWS is failing: the
/// entry still has its TTL, and a read after it expires fetches anyway).
const REFRESH_RETRY: Duration = Duration::from_secs(1);

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read<V> {
    /// A value within its TTL; `refresh` when the caller should fetch it again in the
    /// background now (the cache marks it so only one caller is told).
    Fresh {
        /// The value.
        value: V,
        /// Whether to refresh ahead.
        refresh: bool,
    },
    /// Nothing within its TTL: fetch (a stale value may still be served if that fails).
    Missing,
}

struct Entry<V> {
    value: V,
    size: usize,
    fetched: Duration,
    ttl: Duration,
    tick: u64,
    refreshing: bool,
    refresh_failed: Option<Duration>,
}

/// The cache. `K` is the lookup, `V` the value (its size given at insertion).
pub struct Cache<K, V> {
    capacity: usize,
    stale_if_error: Duration,
    entries: HashMap<K, Entry<V>>,
    /// Recency: tick → key, oldest first.
    order: BTreeMap<u64, K>,
    tick: u64,
    bytes: usize,
    evicted: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// An empty cache of at most `capacity` entries.
    pub fn new(capacity: usize, stale_if_error: Duration) -> Cache<K, V> {
        Cache {
            capacity: capacity.max(1),
            stale_if_error,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            evicted: 0,
        }
    }

    /// Reads `key` at `now`; a hit counts as a use (LRU).
    pub fn read(&mut self, key: &K, now: Duration) -> Read<V> {
        self.tick += 1;
        let tick = self.tick;
        let Some(e) = self.entries.get_mut(key) else { return Read::Missing };
        let age = now.saturating_sub(e.fetched);
        if age >= e.ttl {
            return Read::Missing;
        }
        self.order.remove(&e.tick);
        e.tick = tick;
        self.order.insert(tick, key.clone());
        let may_retry = e.refresh_failed.is_none_or(|at| now.saturating_sub(at) >= REFRESH_RETRY);
        let refresh = !e.refreshing && may_retry && age >= e.ttl / 2;
        if refresh {
            e.refreshing = true;
        }
        Read::Fresh { value: e.value.clone(), refresh }
    }

    /// The value of `key` past its TTL but within `stale_if_error` of it, for when a
    /// fetch failed.
    pub fn stale(&self, key: &K, now: Duration) -> Option<V> {
        let e = self.entries.get(key)?;
        (now.saturating_sub(e.fetched) < e.ttl + self.stale_if_error).then(|| e.value.clone())
    }

    /// Stores a fetched value (fetched at `now`, fresh for `ttl`), evicting the least
    /// recently used entries past the capacity. A zero `ttl` stores nothing.
    pub fn insert(&mut self, key: K, value: V, size: usize, ttl: Duration, now: Duration) {
        if ttl.is_zero() {
            return;
        }
        self.tick += 1;
        let entry = Entry { value, size, fetched: now, ttl, tick: self.tick, refreshing: false, refresh_failed: None };
        if let Some(old) = self.entries.insert(key.clone(), entry) {
            self.order.remove(&old.tick);
            self.bytes -= old.size;
        }
        self.order.insert(self.tick, key);
        self.bytes += size;
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.size;
                self.evicted += 1;
            }
        }
    }

    /// A refresh ahead of `key` failed at `now`: the entry keeps its value and TTL.
    pub fn refresh_failed(&mut self, key: &K, now: Duration) {
        if let Some(e) = self.entries.get_mut(key) {
            e.refreshing = false;
            e.refresh_failed = Some(now);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The values' bytes held (as given at insertion).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries evicted so far to keep within the capacity.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn fresh(c: &mut Cache<&'static str, u32>, k: &'static str, now: Duration) -> Option<(u32, bool)> {
        match c.read(&k, now) {
            Read::Fresh { value, refresh } => Some((value, refresh)),
            Read::Missing => None,
        }
    }

    #[test]
    fn values_are_fresh_for_their_ttl_and_refreshed_ahead_once() {
        let mut c = Cache::new(10, 5 * S);
        assert_eq!(c.read(&"a", S), Read::Missing);
        c.insert("a", 1, 1, 10 * S, S);
        assert_eq!(fresh(&mut c, "a", 2 * S), Some((1, false)));
        assert_eq!(fresh(&mut c, "a", 6 * S), Some((1, true)), "half the TTL passed: refresh ahead");
        assert_eq!(fresh(&mut c, "a", 7 * S), Some((1, false)), "one refresh at a time");
        c.insert("a", 2, 1, 10 * S, 7 * S);
        assert_eq!(fresh(&mut c, "a", 8 * S), Some((2, false)));
        assert_eq!(c.read(&"a", 17 * S), Read::Missing, "expired");
    }

    #[test]
    fn a_failed_refresh_waits_before_another_and_stale_is_bounded() {
        let mut c = Cache::new(10, 5 * S);
        c.insert("a", 1, 1, 4 * S, Duration::ZERO);
        assert_eq!(fresh(&mut c, "a", 2 * S), Some((1, true)));
        c.refresh_failed(&"a", 2 * S);
        assert_eq!(fresh(&mut c, "a", 2 * S + REFRESH_RETRY / 2), Some((1, false)));
        assert_eq!(fresh(&mut c, "a", 2 * S + REFRESH_RETRY), Some((1, true)));
        assert_eq!(c.read(&"a", 4 * S), Read::Missing);
        assert_eq!(c.stale(&"a", 8 * S), Some(1), "within TTL + stale_if_error");
        assert_eq!(c.stale(&"a", 9 * S), None);
        assert_eq!(c.stale(&"b", S), None);
    }

    #[test]
    fn least_recently_used_is_evicted() {
        let mut c = Cache::new(2, S);
        c.insert("a", 1, 1, 10 * S, S);
        c.insert("b", 2, 1, 10 * S, S);
        assert!(fresh(&mut c, "a", S).is_some());
        c.insert("c", 3, 1, 10 * S, S);
        assert!(fresh(&mut c, "b", S).is_none(), "b was the least recently used");
        assert!(fresh(&mut c, "a", S).is_some() && fresh(&mut c, "c", S).is_some());
        c.insert("d", 4, 1, Duration::ZERO, S);
        assert_eq!(c.len(), 2, "a zero TTL caches nothing");
    }

    #[test]
    fn ten_thousand_entries_stay_within_the_bound() {
        let mut c: Cache<String, Vec<u8>> = Cache::new(10_000, S);
        for i in 0..25_000u32 {
            let v = vec![0u8; 100];
            c.insert(format!("secret-{i}"), v, 100, 300 * S, S);
        }
        assert_eq!(c.len(), 10_000);
        assert_eq!(c.bytes(), 10_000 * 100);
        assert_eq!(c.evicted(), 15_000);
        assert_eq!(c.order.len(), 10_000, "the recency index is bounded too");
        assert!(matches!(c.read(&"secret-24999".to_owned(), S), Read::Fresh { .. }));
        assert_eq!(c.read(&"secret-0".to_owned(), S), Read::Missing);
    }
}
