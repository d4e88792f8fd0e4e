//! secrets::service: reads through the cache: single-flight fetches, refresh ahead in
//! the background, stale-if-error. The I/O side of [`super::cache`]: reads the clock,
//! spawns the fetch tasks, calls AWS through [`crate::aws::client`].
//!
//! A fetch runs in its own task, so a caller that gives up (its connection closed, its
//! timeout passed) never cancels the fetch others wait on. Diagnostics name lookups,
//! never values.

use super::cache::{Cache, Read};
use super::request::Lookup;
use super::settings::{Level, Settings};
use crate::aws::client::{AwsClient, CallError};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Where a served value came from (the `X-Tandem-Cache` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The cache, within its TTL.
    Hit,
    /// AWS, now.
    Miss,
    /// The cache past its TTL, because AWS failed.
    Stale,
}

impl Source {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Hit => "hit",
            Source::Miss => "miss",
            Source::Stale => "stale",
        }
    }
}

/// A read's outcome: the AWS answer's body and where it came from, or why none.
pub type Outcome = Result<(Bytes, Source), CallError>;

struct State {
    cache: Cache<Lookup, Bytes>,
    /// Lookups being fetched, and who waits for each.
    inflight: HashMap<Lookup, Vec<oneshot::Sender<Outcome>>>,
}

/// Counters, for tests and diagnostics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Calls made to AWS (after retries: one per fetch).
    pub fetches: AtomicU64,
    /// Reads answered from the cache.
    pub hits: AtomicU64,
}

/// The cache service, shared by the HTTP API's connections.
pub struct SecretsService {
    settings: Settings,
    aws: AwsClient,
    origin: Instant,
    state: Mutex<State>,
    /// Counters.
    pub counters: Counters,
}

impl SecretsService {
    /// A service for `settings`, calling AWS through `aws`.
    pub fn new(settings: Settings, aws: AwsClient) -> Arc<SecretsService> {
        let capacity = settings.cache_size;
        Arc::new(SecretsService {
            state: Mutex::new(State { cache: Cache::new(capacity, settings.stale_if_error), inflight: HashMap::new() }),
            settings,
            aws,
            origin: Instant::now(),
            counters: Counters::default(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ttl(&self, lookup: &Lookup) -> Duration {
        if !self.settings.cache_enabled {
            return Duration::ZERO;
        }
        match lookup {
            Lookup::Secret { .. } => self.settings.secrets_ttl,
            Lookup::Parameter { .. } => self.settings.parameters_ttl,
        }
    }

    fn timeout(&self, lookup: &Lookup) -> Duration {
        match lookup {
            Lookup::Secret { .. } => self.settings.secrets_timeout,
            Lookup::Parameter { .. } => self.settings.parameters_timeout,
        }
    }

    /// Writes a diagnostic line at `level` (lookup names only, never values).
    pub fn log(&self, level: Level, msg: impl std::fmt::Display) {
        if level != Level::None && level <= self.settings.level {
            crate::diag::log(crate::diag::LogLevel::Error, format_args!("secrets: {msg}"));
        }
    }

    /// Reads `lookup`: from the cache, else from AWS (joining a fetch already under
    /// way), else a stale value if AWS failed.
    pub async fn get(self: &Arc<Self>, lookup: Lookup) -> Outcome {
        let rx = {
            let now = self.now();
            let mut st = self.state();
            if let Read::Fresh { value, refresh } = st.cache.read(&lookup, now) {
                if refresh {
                    self.start_fetch(&mut st, lookup.clone(), None);
                }
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok((value, Source::Hit));
            }
            let (tx, rx) = oneshot::channel();
            self.start_fetch(&mut st, lookup.clone(), Some(tx));
            rx
        };
        rx.await.unwrap_or_else(|_| Err(CallError::Unreachable("the fetch was abandoned".into())))
    }

    /// Fetches `lookup` into the cache now (prefetch), not waiting for it.
    pub fn prefetch(self: &Arc<Self>, lookup: Lookup) {
        let mut st = self.state();
        self.start_fetch(&mut st, lookup, None);
    }

    /// Joins the fetch of `lookup` under way, or starts one.
    fn start_fetch(self: &Arc<Self>, st: &mut State, lookup: Lookup, waiter: Option<oneshot::Sender<Outcome>>) {
        if let Some(waiters) = st.inflight.get_mut(&lookup) {
            waiters.extend(waiter);
            return;
        }
        st.inflight.insert(lookup.clone(), waiter.into_iter().collect());
        let this = Arc::clone(self);
        tokio::spawn(async move { this.fetch(lookup).await });
    }

    async fn fetch(self: Arc<Self>, lookup: Lookup) {
        let (operation, body) = lookup.aws_call();
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        self.log(Level::Debug, format_args!("fetching {}", lookup.name()));
        let (result, _) = self.aws.call(lookup.service(), operation, body, self.timeout(&lookup)).await;
        let now = self.now();
        let mut st = self.state();
        let outcome = match result {
            Ok(value) => {
                let size = value.len();
                st.cache.insert(lookup.clone(), value.clone(), size, self.ttl(&lookup), now);
                Ok((value, Source::Miss))
            }
            Err(e) => {
                st.cache.refresh_failed(&lookup, now);
                match st.cache.stale(&lookup, now) {
                    Some(value) => Ok((value, Source::Stale)),
                    None => Err(e),
                }
            }
        };
        let waiters = st.inflight.remove(&lookup).unwrap_or_default();
        drop(st);
        match &outcome {
            Ok((_, Source::Stale)) if !waiters.is_empty() => {
                self.log(Level::Warn, format_args!("AWS failed for {}: serving its last value", lookup.name()))
            }
            Err(e) => self.log(Level::Warn, format_args!("{} not read: {e}", lookup.name())),
            _ => {}
        }
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
    }

    /// Entries held.
    pub fn cached(&self) -> usize {
        self.state().cache.len()
    }

    /// The cache's size: (entries, the values' bytes, entries evicted so far).
    pub fn cache_stats(&self) -> (usize, usize, u64) {
        let st = self.state();
        (st.cache.len(), st.cache.bytes(), st.cache.evicted())
    }
}
