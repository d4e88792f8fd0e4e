//! extension: the lifecycle of an extension. Registers, subscribes, runs the event
//! loop (calling `next` as soon as INVOKE work is done), and at SHUTDOWN waits (bounded)
//! for the last invocation's `platform.report`, runs the drain hook with the time left,
//! and returns before the deadline so that the process exits by itself.

use crate::client::Client;
use crate::context::Context;
use crate::guard::guarded;
use crate::telemetry::{self, TelemetryConfig};
use crate::{diag, Error};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tandem_wire::error::types as et;
use tandem_wire::extensions::{EventType, InvokeEvent, NextEvent, RegisterResponse, ShutdownEvent, ShutdownReason};
use tandem_wire::telemetry::TelemetryType;
use tandem_wire::Event;

/// What an extension does. Every method has a default that does nothing, so an
/// implementation writes only what it needs.
///
/// The futures must be `Send`: the SDK runs them on a multi-task runtime.
pub trait Handler: Send + Sync + 'static {
    /// After registration (and subscription), before the first `next`. A fatal error
    /// is reported through `init/error` and fails the environment's init.
    fn init(&self, ctx: &Context) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// An INVOKE event. `next` is called as soon as this returns, so whatever is done
    /// here is post-runtime time billed to the function: keep it short, or hand work
    /// to a background task.
    fn invoke(&self, event: InvokeEvent, ctx: &Context) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (event, ctx);
        async { Ok(()) }
    }

    /// A batch of telemetry, one parsed event at a time (unknown types arrive as
    /// `Record::Unknown` with their raw JSON). Return `Ok` only once the events are
    /// held (queued or persisted): the batch is then acknowledged. An error makes
    /// Lambda deliver the batch again.
    fn telemetry(&self, events: Vec<Event>, ctx: &Context) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (events, ctx);
        async { Ok(()) }
    }

    /// SHUTDOWN: drain what is held, within `drain.time_left()`. The SDK returns from
    /// [`Extension::run`] when this returns or when the drain deadline comes.
    fn shutdown(
        &self,
        event: ShutdownEvent,
        drain: Drain,
        ctx: &Context,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (event, drain, ctx);
        async { Ok(()) }
    }
}

/// The time a shutdown drain has.
#[derive(Debug, Clone)]
pub struct Drain {
    /// Lambda's deadline minus the safety margin.
    pub deadline: Instant,
    /// Why the environment shuts down.
    pub reason: ShutdownReason,
    /// Whether the last invocation's `platform.report` was received before the drain.
    pub last_report_received: bool,
}

impl Drain {
    /// Time left until [`Drain::deadline`].
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// This process's registration: an extension process registers once, and what Lambda
/// answered describes its execution environment to any part of the process (e.g. a
/// telemetry exporter's resource), however deep.
static REGISTERED: OnceLock<(String, RegisterResponse)> = OnceLock::new();

/// An extension to run: built with [`Extension::new`] and its setters.
#[derive(Debug, Clone)]
pub struct Extension {
    name: Option<String>,
    events: Vec<EventType>,
    account_id: bool,
    telemetry: Option<TelemetryConfig>,
    shutdown_margin: Duration,
    report_wait: Duration,
    skip_own_logs: bool,
    runtime_api: Option<String>,
}

impl Default for Extension {
    fn default() -> Self {
        Self::new()
    }
}

impl Extension {
    /// An external extension subscribed to INVOKE and SHUTDOWN, named after its
    /// executable, asking for the account id at register (see
    /// [`Extension::with_account_id`]).
    pub fn new() -> Self {
        Self {
            name: None,
            events: vec![EventType::Invoke, EventType::Shutdown],
            account_id: true,
            telemetry: None,
            shutdown_margin: Duration::from_millis(100),
            report_wait: Duration::from_millis(1000),
            skip_own_logs: true,
            runtime_api: None,
        }
    }

    /// The registration name. Lambda treats an extension as external only when this
    /// equals its file name in /opt/extensions, which is the default.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The lifecycle events to receive (INVOKE, SHUTDOWN).
    pub fn events(mut self, events: &[EventType]) -> Self {
        self.events = events.to_vec();
        self
    }

    /// Asks for the account id in the register answer (`accountId` feature; the
    /// default: Lambda answers it to any extension that asks, and telemetry needs it
    /// for `cloud.account.id` and the function's ARN).
    pub fn with_account_id(mut self) -> Self {
        self.account_id = true;
        self
    }

    /// Does not ask for the account id at register.
    pub fn without_account_id(mut self) -> Self {
        self.account_id = false;
        self
    }

    /// This process's registration, once registered: the extension identifier
    /// Lambda gave (unique to this execution environment and stable for its life) and
    /// the register answer (function name and version, handler, account id when asked).
    pub fn registration() -> Option<(&'static str, &'static RegisterResponse)> {
        REGISTERED.get().map(|(id, info)| (id.as_str(), info))
    }

    /// Subscribes to telemetry (see [`TelemetryConfig`]; its default is the
    /// Telemetry API, schema 2022-12-13, platform and function events).
    pub fn telemetry(mut self, cfg: TelemetryConfig) -> Self {
        self.telemetry = Some(cfg);
        self
    }

    /// How long before Lambda's SHUTDOWN deadline [`Extension::run`] returns (default 100 ms).
    pub fn shutdown_margin(mut self, margin: Duration) -> Self {
        self.shutdown_margin = margin;
        self
    }

    /// How long SHUTDOWN waits for the last invocation's report (default 1 s, bounded
    /// by the deadline).
    pub fn report_wait(mut self, wait: Duration) -> Self {
        self.report_wait = wait;
        self
    }

    /// Whether the extension's own diagnostic lines (prefixed `[name] `) are kept out
    /// of its telemetry intake (default true, so that they cannot feed back).
    pub fn skip_own_logs(mut self, on: bool) -> Self {
        self.skip_own_logs = on;
        self
    }

    /// The Extensions API address (default: `AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api(mut self, addr: impl Into<String>) -> Self {
        self.runtime_api = Some(addr.into());
        self
    }

    fn resolved_name(&self) -> Result<String, Error> {
        if let Some(n) = &self.name {
            return Ok(n.clone());
        }
        // argv[0] is the path Lambda started, even through a symlink (current_exe
        // would resolve it); its file name is what makes the extension external.
        std::env::args_os()
            .next()
            .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
            .or_else(|| std::env::current_exe().ok()?.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::transient("cannot tell the executable's name; set Extension::name"))
    }

    /// Registers, subscribes, and returns the running parts before the event loop.
    async fn setup<H: Handler>(&self, handler: &Arc<H>) -> Result<(Client, Context), Error> {
        let name = self.resolved_name()?;
        diag::set_prefix(&name);
        let client = Client::new(self.runtime_api.clone())?;
        let (id, info) = client.register(&name, &self.events, self.account_id).await?;
        // The first registration of the process is the one its environment knows.
        let _ = REGISTERED.set((id.clone(), info.clone()));
        let ctx = Context::new(id.clone(), name, info, self.skip_own_logs);
        if let Err(e) = self.start_intake(&client, &ctx, handler).await {
            return Err(fail(&client, &id, true, e).await);
        }
        if let Err(e) = guarded("init", handler.init(&ctx)).await {
            let e = if e.is_fatal() { e } else { Error::fatal(et::EXTENSION_INIT_FAILED, e.message()) };
            return Err(fail(&client, &id, true, e).await);
        }
        Ok((client, ctx))
    }

    async fn start_intake<H: Handler>(&self, client: &Client, ctx: &Context, handler: &Arc<H>) -> Result<(), Error> {
        let Some(cfg) = &self.telemetry else { return Ok(()) };
        // Checked before anything is bound: a bad configuration is the user's to fix.
        cfg.request(if cfg.port == 0 { 1 } else { cfg.port })?;
        let listener = telemetry::bind(cfg).await?;
        let port = listener
            .local_addr()
            .map_err(|e| {
                Error::fatal(et::EXTENSION_LISTENER_FAILED, format!("the telemetry listener has no address: {e}"))
            })?
            .port();
        let request = cfg.request(port)?;
        telemetry::serve(listener, handler.clone(), ctx.clone());
        client
            .subscribe(ctx.extension_id(), cfg.api, &request)
            .await
            .map_err(|e| Error::fatal(et::EXTENSION_SUBSCRIBE_FAILED, e.message()))
    }

    /// Runs the extension until SHUTDOWN has been handled. Return from `main` after it:
    /// the process then exits 0 before Lambda's deadline.
    pub async fn run<H: Handler>(self, handler: H) -> Result<(), Error> {
        let handler = Arc::new(handler);
        let (client, ctx) = self.setup(&handler).await?;
        let wants_reports = self.telemetry.as_ref().is_some_and(|t| t.types.contains(&TelemetryType::Platform));
        loop {
            let event = match client.next(ctx.extension_id()).await {
                Ok(e) => e,
                Err(e) => {
                    // Without `next` there is no lifecycle to follow: the platform is gone.
                    return Err(Error::transient(format!("the event loop ended: {e}")));
                }
            };
            match event {
                NextEvent::Invoke(inv) => {
                    ctx.set_last_invoke(&inv.request_id);
                    if let Err(e) = guarded("INVOKE", handler.invoke(inv, &ctx)).await {
                        if e.is_fatal() {
                            return Err(fail(&client, ctx.extension_id(), false, e).await);
                        }
                        diag::line(format_args!("INVOKE handler failed: {e}"));
                    }
                }
                NextEvent::Shutdown(sd) => {
                    let deadline =
                        instant_of(sd.deadline_ms).checked_sub(self.shutdown_margin).unwrap_or_else(Instant::now);
                    let mut last_report_received = true;
                    if let (true, Some(last)) = (wants_reports, ctx.last_invoke()) {
                        let until = (Instant::now() + self.report_wait).min(deadline);
                        last_report_received = ctx.wait_report(&last, until).await;
                    }
                    let drain = Drain { deadline, reason: sd.shutdown_reason.clone(), last_report_received };
                    match tokio::time::timeout_at(
                        deadline.into(),
                        guarded("SHUTDOWN", handler.shutdown(sd, drain, &ctx)),
                    )
                    .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => diag::line(format_args!("SHUTDOWN handler failed: {e}")),
                        Err(_) => diag::line("SHUTDOWN handler did not finish before the deadline; exiting"),
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Starts an *internal* extension: registered from the function's own process
    /// (INVOKE only; Lambda does not send internal extensions SHUTDOWN), with its event
    /// loop in a background task. Call it before the runtime client starts (for
    /// example before `lambda_runtime::run`): registration closes at the runtime's
    /// first `next`.
    pub async fn start_internal<H: Handler>(self, handler: H) -> Result<Internal, Error> {
        let mut this = self;
        this.events.retain(|e| *e == EventType::Invoke);
        if this.name.is_none() {
            return Err(Error::transient(
                "an internal extension needs a name (Extension::name) that is not a file in /opt/extensions",
            ));
        }
        let handler = Arc::new(handler);
        let (client, ctx) = this.setup(&handler).await?;
        let task_ctx = ctx.clone();
        let task = tokio::spawn(async move {
            loop {
                match client.next(task_ctx.extension_id()).await {
                    Ok(NextEvent::Invoke(inv)) => {
                        task_ctx.set_last_invoke(&inv.request_id);
                        if let Err(e) = guarded("INVOKE", handler.invoke(inv, &task_ctx)).await {
                            if e.is_fatal() {
                                let _ = fail(&client, task_ctx.extension_id(), false, e).await;
                                return;
                            }
                            diag::line(format_args!("INVOKE handler failed: {e}"));
                        }
                    }
                    Ok(NextEvent::Shutdown(_)) => return,
                    Err(e) => {
                        diag::line(format_args!("internal extension stopped: {e}"));
                        return;
                    }
                }
            }
        });
        Ok(Internal { ctx, task })
    }
}

/// A running internal extension.
pub struct Internal {
    ctx: Context,
    task: tokio::task::JoinHandle<()>,
}

impl Internal {
    /// Its context (identity, stats).
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Stops its event loop.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Reports a fatal error to Lambda and returns it.
async fn fail(client: &Client, id: &str, init: bool, e: Error) -> Error {
    let error_type = e.error_type().unwrap_or(et::EXTENSION_UNKNOWN_ERROR).to_owned();
    diag::line(format_args!("{e}"));
    if let Err(report) = client.report_error(id, init, &error_type, e.message()).await {
        diag::line(format_args!("could not report {error_type} to Lambda: {report}"));
    }
    e
}

/// The monotonic instant of an epoch-milliseconds deadline.
fn instant_of(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
