//! pool: Lambda's scaling behind one Invoke API (`serve --concurrency N`). It owns a set
//! of environments of one function: an invocation takes an idle one (warm, the most
//! recently used first), else starts a new one (a cold start: its own processes, Runtime
//! API, sandbox and `/tmp`, subscriptions) while fewer than N exist, else waits in a
//! bounded queue (beyond it: `TooManyRequests`, Lambda's throttle). An environment stays
//! busy until its invocation has ended (its report), not only until the runtime
//! answered, and one idle for longer than the idle timeout is shut down (`spindown`).

use crate::config::Config;
use crate::driver::InvokeOutcome;
use crate::environment::{Environment, Error};
use crate::lifecycle::{InvokeRequest, Rejection};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// How far past the function's timeout an invocation may run its extensions before its
/// environment is handed out again regardless (Lambda bounds the phase by the timeout).
const PHASE_GRACE: Duration = Duration::from_secs(30);

/// What a pool tells its owner (the CLI prints it).
pub enum PoolEvent<'a> {
    /// An environment started (its init has ended, however it ended).
    Started {
        /// Its id (`env-N`), which prefixes its console lines.
        id: &'a str,
        /// The environment.
        env: &'a Arc<Environment>,
    },
    /// An environment idle for the idle timeout is being shut down (`spindown`).
    IdleShutdown {
        /// Its id.
        id: &'a str,
    },
}

/// Called at each [`PoolEvent`], from the task that caused it (keep it short).
pub type OnEvent = Arc<dyn Fn(PoolEvent<'_>) + Send + Sync>;

/// How many environments may run, and for how long an idle one is kept.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The most environments at once (Lambda's concurrency limit for the function).
    pub concurrency: usize,
    /// An environment idle for this long is shut down; `None` keeps it.
    pub idle_timeout: Option<Duration>,
}

/// Environments of one function, started on demand up to a limit.
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    base: Config,
    cfg: PoolConfig,
    /// One permit per environment that may be busy; waiting for one is the queue.
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    state: Mutex<State>,
    on_event: Option<OnEvent>,
}

#[derive(Default)]
struct State {
    /// Every live environment by its number (idle or busy).
    live: BTreeMap<u64, Arc<Environment>>,
    /// The idle ones, least recently used first, with when they became idle.
    idle: Vec<(u64, Instant)>,
    started: u64,
    closed: bool,
    /// Shutdowns of environments taken out of the pool (idle timeout), awaited at the end.
    stopping: Vec<JoinHandle<()>>,
}

/// The id an environment's lines are prefixed with.
pub fn env_id(n: u64) -> String {
    format!("env-{n}")
}

impl Pool {
    /// A pool of environments built from `base` (none is started yet; see
    /// [`Pool::prewarm`]). Must be called within a tokio runtime when an idle timeout
    /// is set (its reaper task).
    pub fn new(base: Config, cfg: PoolConfig, on_event: Option<OnEvent>) -> Self {
        let concurrency = cfg.concurrency.max(1);
        let inner = Arc::new(Inner {
            base,
            cfg: PoolConfig { concurrency, ..cfg },
            permits: Arc::new(Semaphore::new(concurrency)),
            waiting: AtomicUsize::new(0),
            state: Mutex::new(State::default()),
            on_event,
        });
        if let Some(idle) = inner.cfg.idle_timeout {
            tokio::spawn(reap(Arc::downgrade(&inner), idle));
        }
        Pool { inner }
    }

    /// The configuration every environment is built from.
    pub fn config(&self) -> &Config {
        &self.inner.base
    }

    /// Starts one environment now, idle (a server is then ready at once, and a runtime
    /// that cannot start is reported before the first request).
    pub async fn prewarm(&self) -> Result<(), Error> {
        let permit =
            self.inner.permits.clone().try_acquire_owned().map_err(|_| Error::Rejected(Rejection::ShuttingDown))?;
        let (n, _) = self.inner.cold_start().await?;
        self.inner.release(n, true);
        drop(permit);
        Ok(())
    }

    /// Runs one invocation on an idle environment, or a new one, or after waiting for one.
    /// It runs to its end even when the caller stops waiting (a client that hung up), as
    /// in Lambda, so that its environment is always handed back.
    pub async fn invoke_with(&self, request: InvokeRequest) -> Result<InvokeOutcome, Error> {
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.invoke(request).await }).await.unwrap_or(Err(Error::Gone))
    }

    /// Environments started so far (cold starts).
    pub fn started(&self) -> u64 {
        self.inner.state.lock().map(|s| s.started).unwrap_or(0)
    }

    /// The live environments with their ids, oldest first.
    pub fn environments(&self) -> Vec<(String, Arc<Environment>)> {
        self.inner
            .state
            .lock()
            .map(|s| s.live.iter().map(|(n, env)| (env_id(*n), env.clone())).collect())
            .unwrap_or_default()
    }

    /// Invocations waiting for an environment now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::SeqCst)
    }

    /// Environments alive now (idle or busy).
    pub fn live(&self) -> usize {
        self.inner.state.lock().map(|s| s.live.len()).unwrap_or(0)
    }

    /// Refuses new invocations and shuts every environment down (SHUTDOWN `spindown`),
    /// waiting for each to finish.
    pub async fn shutdown(&self) {
        self.inner.permits.close();
        let (envs, stopping) = match self.inner.state.lock() {
            Ok(mut s) => {
                s.closed = true;
                s.idle.clear();
                (std::mem::take(&mut s.live).into_values().collect::<Vec<_>>(), std::mem::take(&mut s.stopping))
            }
            Err(_) => return,
        };
        let shutdowns: Vec<_> = envs.into_iter().map(|env| tokio::spawn(async move { env.shutdown().await })).collect();
        for task in shutdowns.into_iter().chain(stopping) {
            let _ = task.await;
        }
    }
}

impl Inner {
    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeOutcome, Error> {
        let permit = self.admit().await?;
        let (n, env) = match self.take_idle() {
            Some(found) => found,
            None => self.cold_start().await?,
        };
        let result = env.invoke_with(request).await;
        let reusable = match &result {
            Ok(out) => {
                let limit = self.base.timeout + PHASE_GRACE;
                env.wait_invoke_end(&out.result.request_id, limit).await;
                true
            }
            Err(Error::Gone) => false,
            Err(_) => true,
        };
        self.release(n, reusable);
        drop(permit);
        result
    }

    /// A permit to use one environment: at once when one is free, else in the queue
    /// while it has room.
    async fn admit(&self) -> Result<OwnedSemaphorePermit, Error> {
        match self.permits.clone().try_acquire_owned() {
            Ok(p) => return Ok(p),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(Error::Rejected(Rejection::ShuttingDown)),
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.base.queue_limit {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Rejected(Rejection::TooManyRequests));
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| Error::Rejected(Rejection::ShuttingDown))
    }

    /// The most recently used idle environment, taken out of the idle list.
    fn take_idle(&self) -> Option<(u64, Arc<Environment>)> {
        let mut s = self.state.lock().ok()?;
        while let Some((n, _)) = s.idle.pop() {
            if let Some(env) = s.live.get(&n) {
                return Some((n, env.clone()));
            }
        }
        None
    }

    /// Starts a new environment (its init runs now) and registers it as busy.
    async fn cold_start(&self) -> Result<(u64, Arc<Environment>), Error> {
        let n = {
            let mut s = self.state.lock().map_err(|_| Error::Gone)?;
            s.started += 1;
            s.started
        };
        let mut cfg = self.base.clone();
        cfg.console_prefix = format!("[{}] {}", env_id(n), self.base.console_prefix);
        let env = Arc::new(Environment::start(cfg).await?);
        if let Some(hook) = &self.on_event {
            hook(PoolEvent::Started { id: &env_id(n), env: &env });
        }
        let closed = match self.state.lock() {
            Ok(mut s) if !s.closed => {
                s.live.insert(n, env.clone());
                false
            }
            _ => true,
        };
        if closed {
            // The pool was shut down while this one started: it must not outlive it.
            env.shutdown().await;
            return Err(Error::Rejected(Rejection::ShuttingDown));
        }
        Ok((n, env))
    }

    /// Returns environment `n` to the idle list, or forgets it when it cannot serve again.
    fn release(&self, n: u64, reusable: bool) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if s.closed {
            return;
        }
        if reusable {
            s.idle.push((n, Instant::now()));
        } else {
            s.live.remove(&n);
        }
    }
}

/// Shuts down environments idle for longer than `idle`, until the pool is gone.
async fn reap(pool: Weak<Inner>, idle: Duration) {
    let tick = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        let Some(inner) = pool.upgrade() else {
            return;
        };
        let Ok(mut s) = inner.state.lock() else {
            return;
        };
        if s.closed {
            return;
        }
        let now = Instant::now();
        let (expired, kept): (Vec<_>, Vec<_>) =
            s.idle.iter().partition(|(_, since)| now.duration_since(*since) >= idle);
        s.idle = kept;
        for (n, _) in expired {
            if let Some(env) = s.live.remove(&n) {
                if let Some(hook) = &inner.on_event {
                    hook(PoolEvent::IdleShutdown { id: &env_id(n) });
                }
                s.stopping.push(tokio::spawn(async move { env.shutdown().await }));
            }
        }
        s.stopping.retain(|t| !t.is_finished());
    }
}
