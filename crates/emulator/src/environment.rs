//! environment: the library API. Builds an execution environment from a [`Config`],
//! starts it (init runs at once, as for a cold start), invokes it, lets a test observe
//! the lifecycle and the telemetry deliveries with their times, and shuts it down.

use crate::clock::Clock;
use crate::config::{log_stream_name, Config};
use crate::driver::{Driver, DriverMsg, InvokeOutcome, Observations, Observed};
use crate::freeze::Freezer;
use crate::lifecycle::{InvokeRequest, Lifecycle, LifecycleConfig, Observation, Rejection};
use crate::memory::{Memory, Method};
use crate::telemetry::delivery::Delivery;
use crate::telemetry::{Hub, HubConfig};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// Why an environment could not start, or an invocation could not run.
#[derive(Debug)]
pub enum Error {
    /// The Runtime API address could not be bound.
    Bind(std::io::Error),
    /// The configuration is unusable (for example, no runtime command).
    Config(String),
    /// The invocation was refused (queue full, shutting down).
    Rejected(Rejection),
    /// The environment's task is gone.
    Gone,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Bind(e) => write!(f, "cannot listen for the Runtime API: {e}"),
            Error::Config(m) => write!(f, "invalid configuration: {m}"),
            Error::Rejected(Rejection::TooManyRequests) => {
                f.write_str("too many invocations are waiting (TooManyRequestsException)")
            }
            Error::Rejected(Rejection::ShuttingDown) => f.write_str("the environment is shutting down"),
            Error::Gone => f.write_str("the environment is gone"),
        }
    }
}

impl std::error::Error for Error {}

/// A running execution environment.
pub struct Environment {
    tx: mpsc::UnboundedSender<DriverMsg>,
    hub: Hub,
    observations: Arc<Observations>,
    runtime_api: SocketAddr,
    memory_method: Method,
    freezer_cgroup: bool,
    cfg: Arc<Config>,
    _alive: oneshot::Sender<()>,
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

impl Environment {
    /// Starts the environment and runs its init (returns once init has ended, however
    /// it ended; see [`Environment::init_outcome`]).
    pub async fn start(mut cfg: Config) -> Result<Self, Error> {
        cfg.absolutize();
        if cfg.runtime.is_empty() {
            return Err(Error::Config("no runtime command".into()));
        }
        // Unpacking layers and making the namespace block: off the async workers.
        let (mut cfg, sandbox) = tokio::task::spawn_blocking(move || {
            let sandbox = crate::sandbox::Sandbox::prepare(&mut cfg);
            (cfg, sandbox)
        })
        .await
        .map_err(|e| Error::Config(format!("the sandbox setup failed: {e}")))?;
        cfg.sandbox = Some(Arc::new(sandbox.map_err(Error::Config)?));
        let cfg = Arc::new(cfg);
        let listener = TcpListener::bind(cfg.runtime_api).await.map_err(Error::Bind)?;
        let runtime_api = listener.local_addr().map_err(Error::Bind)?;
        let clock = Clock::new();
        let name = format!("{}-{}", std::process::id(), INSTANCE.fetch_add(1, Ordering::Relaxed));
        let memory = Memory::new(&name, cfg.memory_mb, cfg.enforce_memory);
        let freezer = Freezer::new(&name);
        let memory_method = memory.method();
        let freezer_cgroup = freezer.uses_cgroup();
        let hub = Hub::start(
            HubConfig {
                console: cfg.console,
                console_prefix: cfg.console_prefix.clone(),
                json_logs: cfg.env_value("AWS_LAMBDA_LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json")),
                timeout: cfg.timeout,
                cap_items: cfg.telemetry_buffer_items,
                cap_bytes: cfg.telemetry_buffer_bytes,
                record_bodies: cfg.record_bodies,
            },
            clock,
        );
        let lc = Lifecycle::new(
            LifecycleConfig {
                function_name: cfg.function_name.clone(),
                function_version: cfg.function_version.clone(),
                handler: cfg.handler.clone(),
                account_id: cfg.account_id.clone(),
                region: cfg.region.clone(),
                memory_mb: cfg.memory_mb,
                timeout: cfg.timeout,
                init_timeout: cfg.init_timeout,
                freeze: cfg.freeze,
                extensions: cfg.extension_names(),
                queue_limit: cfg.queue_limit,
            },
            clock,
            // The lifecycle draws no randomness: its identifiers derive from this.
            uuid::Uuid::new_v4().as_u64_pair().0,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let observations = Arc::new(Observations::default());
        let api = runtime_api.to_string();
        let stream = log_stream_name(&cfg.function_version);
        let runtime_env = cfg.function_env(&api, &stream);
        let extension_env = cfg.extension_env(&api, &stream);
        {
            let tx = tx.clone();
            memory.start_sampler(cfg.enforce_memory, move || {
                let _ = tx.send(DriverMsg::MemoryExceeded);
            });
        }
        let driver = Driver::new(
            lc,
            cfg.clone(),
            clock,
            hub.clone(),
            freezer,
            memory,
            tx.clone(),
            observations.clone(),
            runtime_env,
            extension_env,
        );
        let (alive_tx, alive_rx) = oneshot::channel();
        tokio::spawn(driver.run(rx, alive_rx));
        tokio::spawn(crate::api::serve(listener, tx.clone()));
        let env =
            Environment { tx, hub, observations, runtime_api, memory_method, freezer_cgroup, cfg, _alive: alive_tx };
        env.wait_for(|o| matches!(o, Observation::InitEnd { .. } | Observation::ShutdownComplete), None).await;
        Ok(env)
    }

    /// `host:port` of the Runtime API (what `AWS_LAMBDA_RUNTIME_API` holds).
    pub fn runtime_api(&self) -> SocketAddr {
        self.runtime_api
    }

    /// The configuration it runs with (paths made absolute).
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// How memory is measured here.
    pub fn memory_method(&self) -> Method {
        self.memory_method
    }

    /// Whether freezing uses the cgroup freezer (else SIGSTOP/SIGCONT).
    pub fn freezes_with_cgroup(&self) -> bool {
        self.freezer_cgroup
    }

    /// How the first init ended: `(status, error type)`.
    pub fn init_outcome(&self) -> Option<(tandem_wire::Status, Option<String>)> {
        self.observations().into_iter().find_map(|o| match o.what {
            Observation::InitEnd { status, error_type, .. } => Some((status, error_type)),
            _ => None,
        })
    }

    /// Invokes the function with `payload` and waits for its result.
    pub async fn invoke(&self, payload: impl Into<bytes::Bytes>) -> Result<InvokeOutcome, Error> {
        self.invoke_with(InvokeRequest { payload: payload.into(), ..Default::default() }).await
    }

    /// Invokes the function with a full request (trace id, client context, log tail).
    pub async fn invoke_with(&self, request: InvokeRequest) -> Result<InvokeOutcome, Error> {
        let (reply, rx) = oneshot::channel();
        let request_id = uuid::Uuid::new_v4().to_string();
        self.tx.send(DriverMsg::Invoke { request_id, request, reply }).map_err(|_| Error::Gone)?;
        match rx.await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(r)) => Err(Error::Rejected(r)),
            Err(_) => Err(Error::Gone),
        }
    }

    /// Sends an invocation without waiting: the receiver resolves with its result.
    pub fn invoke_detached(&self, request: InvokeRequest) -> oneshot::Receiver<Result<InvokeOutcome, Rejection>> {
        let (reply, rx) = oneshot::channel();
        let request_id = uuid::Uuid::new_v4().to_string();
        let _ = self.tx.send(DriverMsg::Invoke { request_id, request, reply });
        rx
    }

    /// Shuts the environment down (SHUTDOWN reason `spindown`) and waits until every
    /// process has exited or was killed at the deadline.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(DriverMsg::Shutdown { done }).is_ok() {
            let _ = rx.await;
        }
        // The processes' last lines are in the hub's queue: let them land.
        self.hub.settle().await;
    }

    /// The lifecycle observations so far (the most recent 200,000), in order.
    pub fn observations(&self) -> Vec<Observed> {
        self.observations.log.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default()
    }

    /// Waits for an observation matching `pred` (including past ones), up to `timeout`.
    pub async fn wait_for(&self, pred: impl Fn(&Observation) -> bool, timeout: Option<Duration>) -> Option<Observed> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let notified = self.observations.notify.notified();
            if let Some(o) = self.observations().into_iter().find(|o| pred(&o.what)) {
                return Some(o);
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d.into(), notified).await.is_err() {
                        return None;
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Waits until the invocation `request_id` has ended (its report: every extension is
    /// done with it), up to `timeout`; false at the timeout. Scans back only to the
    /// invocation's start, so a long-running environment pays for its recent past only.
    pub async fn wait_invoke_end(&self, request_id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.observations.notify.notified();
            let ended = self.observations.log.lock().is_ok_and(|log| {
                log.iter()
                    .rev()
                    .take_while(|o| !matches!(&o.what, Observation::InvokeStart { request_id: r } if r == request_id))
                    .any(|o| matches!(&o.what, Observation::InvokeEnd { request_id: r, .. } if r == request_id))
            });
            if ended {
                return true;
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                return false;
            }
        }
    }

    /// The Runtime and Extensions API calls so far (the most recent 200,000), in order
    /// of arrival, each with its answer's time and status once answered.
    pub fn api_calls(&self) -> Vec<crate::driver::ApiMark> {
        self.observations.api.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default()
    }

    /// The telemetry delivery attempts so far (the most recent 100,000), in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.hub.deliveries()
    }

    /// The events accepted by `subscriber` (an extension's name), in delivery order.
    pub fn delivered_events(&self, subscriber: &str) -> Vec<serde_json::Value> {
        self.deliveries()
            .iter()
            .filter(|d| d.subscriber == subscriber && d.delivered())
            .flat_map(Delivery::parsed)
            .collect()
    }

    /// Delivers `event` (raw JSON, possibly of a type or shape Lambda does not send
    /// today) to every subscriber of `category`, to test an extension's tolerance.
    pub fn inject_event(&self, category: tandem_wire::TelemetryType, event: impl Into<bytes::Bytes>) {
        self.hub.send(crate::telemetry::Msg::Raw { category, json: event.into() });
    }

    /// Every platform record the environment emitted (initStart, start, runtimeDone,
    /// report, …), in order: what Lambda reported, to compare with what an extension made of it.
    pub fn platform_events(&self) -> Vec<tandem_wire::Event> {
        self.hub.platform_events()
    }

    /// Waits until the console lines sent so far are written out (and listed by
    /// [`Environment::console_lines`]).
    pub async fn flush_console(&self) {
        self.hub.settle().await;
    }

    /// The console output so far (function and extension lines, START/END/REPORT).
    pub fn console_lines(&self) -> Vec<String> {
        self.hub.console_lines()
    }
}
