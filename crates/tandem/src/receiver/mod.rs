//! receiver: the OTLP receiver on 127.0.0.1 (never 0.0.0.0): what the function's
//! OpenTelemetry SDK exports (auto-instrumentation through `AWS_LAMBDA_EXEC_WRAPPER`)
//! enters the same lanes as tandem's own telemetry, with the same guarantee.
//!
//! Owns the acknowledgement rule for received data: success is answered only after the
//! request was pushed into the lanes ([`Lanes::push`]: `Delivery::push`, held in the
//! queues and their write-ahead); otherwise a retryable refusal (503 + `Retry-After`,
//! gRPC `UNAVAILABLE`) while the lanes are over their bound or once SHUTDOWN began, so
//! that the exporter in the function retries rather than drops.
//!
//! - [`decode`] (pure): paths, encodings, gzip within the bound, validation, answers;
//! - [`annotate`] (pure): the invocation's link and `faas.invocation_id`;
//! - [`http`]: the OTLP/HTTP listener (hyper, HTTP/1.1);
//! - [`grpc`]: the OTLP/gRPC listener (hyper, HTTP/2; framing in `encode::grpc`);
//! - [`State`]: the current invocation and the open/closed switch, set by the app.
//!
//! On only when `TANDEM_OTLP_RECEIVER` says so and a sink can carry what it receives
//! (`otlp`, `file`, `http`); `stdout` writes only the metric points with an unambiguous
//! EMF form (`sink::stdout::received`), and each other received item is counted as not
//! deliverable there ([`UNDELIVERABLE_STDOUT`]), never silently lost.

pub mod annotate;
pub mod decode;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod http;

use crate::config::{ReceiverConfig, SinkKind};
use crate::model::{Item, Received};
use annotate::Current;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};

/// Requests read and decoded at once, over both listeners: each may hold its body (up
/// to 8 MiB), the body inflated and the decoded messages, so this bounds the receiver's
/// memory (an SDK sends at most one request per signal at a time).
pub const DECODING_AT_ONCE: usize = 2;

/// The health `dropped` reason of received items the `stdout` sink cannot carry.
pub const UNDELIVERABLE_STDOUT: &str = "otlp_undeliverable_stdout";

/// Where received data goes: the app's lanes.
pub trait Lanes: Send + Sync + 'static {
    /// What the fullest lane holds now, bytes (memory and spool).
    fn pending_bytes(&self) -> u64;
    /// Holds `item` in the lanes (returns once it is held).
    fn push(&self, item: Item);
    /// Counts `n` items dropped for `reason` in the health snapshot.
    fn dropped(&self, reason: &'static str, n: u64);
}

/// What the app tells the receiver: the running invocation, and when to stop taking
/// data in.
#[derive(Debug, Default)]
pub struct State {
    current: Mutex<Option<Current>>,
    /// `true` once SHUTDOWN began: held for writing while it flips, and for reading
    /// across each admission and push, so nothing is pushed after the drain started.
    closed: RwLock<bool>,
}

impl State {
    /// A new invocation began (INVOKE): received data is stamped with it from now.
    pub fn invoke(&self, request_id: &str, trace_header: Option<&str>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Current::new(request_id, trace_header));
    }

    /// SHUTDOWN: refuse (retryably) from now on; returns once no push is under way.
    pub fn close(&self) {
        *self.closed.write().unwrap_or_else(|p| p.into_inner()) = true;
    }

    fn current(&self) -> Option<Current> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The outcome of offering a request to the lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Pushed: answer success.
    Held,
    /// Not taken now, retryable: the lanes are over their bound.
    Busy,
    /// Not taken: SHUTDOWN began.
    Closed,
}

/// The receiver's shared parts, one per process.
pub struct Receiver {
    state: Arc<State>,
    lanes: Arc<dyn Lanes>,
    /// The lanes' bound, bytes: a request is refused (retryably) when the fullest lane
    /// would go over it (unless that lane is empty).
    capacity: u64,
    stdout: bool,
    /// [`DECODING_AT_ONCE`] permits.
    decoding: tokio::sync::Semaphore,
}

impl Receiver {
    fn new(state: Arc<State>, lanes: Arc<dyn Lanes>, capacity: u64, stdout: bool) -> Receiver {
        Receiver { state, lanes, capacity, stdout, decoding: tokio::sync::Semaphore::new(DECODING_AT_ONCE) }
    }

    /// Waits for a turn to read and decode a request (see [`DECODING_AT_ONCE`]).
    pub async fn decoding_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.decoding.acquire().await.ok()
    }

    /// Annotates `received` with the current invocation and pushes it, unless the
    /// lanes are full or closed. `time_ms` is now.
    pub fn offer(&self, mut received: Received, time_ms: u64) -> Admission {
        let closed = self.state.closed.read().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return Admission::Closed;
        }
        // Over the bound only with something waiting: a request larger than the bound
        // alone is taken when the lanes are empty, or it would be refused forever.
        let size = received.approx_size() as u64;
        let pending = self.lanes.pending_bytes();
        if pending > 0 && pending.saturating_add(size) > self.capacity {
            return Admission::Busy;
        }
        received.time_ms = time_ms;
        annotate::annotate(&mut received, self.state.current().as_ref());
        if self.stdout {
            let emf = crate::sink::stdout::received::emf_points(&received);
            self.lanes.dropped(UNDELIVERABLE_STDOUT, decode::count_items(&received).saturating_sub(emf));
        }
        self.lanes.push(Item::from(received));
        drop(closed);
        Admission::Held
    }
}

/// Whether a sink of `kind` carries received OTLP data.
pub fn carries(kind: SinkKind) -> bool {
    !matches!(kind, SinkKind::Stdout)
}

/// Binds and serves the enabled listeners in the background of the current tokio
/// runtime. Call it before registering, so the function's INIT can export. Off (and
/// `None`) when no sink in `sinks` carries received data; a port that cannot be bound
/// is one error line, and tandem carries on without that listener.
pub fn start(
    cfg: &ReceiverConfig,
    sinks: &[SinkKind],
    capacity: u64,
    state: Arc<State>,
    lanes: Arc<dyn Lanes>,
) -> Option<Arc<Receiver>> {
    if !cfg.enabled() {
        return None;
    }
    if !sinks.iter().any(|&k| carries(k)) {
        crate::diag::debug(format_args!(
            "otlp receiver: off (no sink carries OTLP data; add otlp, file or http to TANDEM_SINKS)"
        ));
        return None;
    }
    let receiver = Arc::new(Receiver::new(state, lanes, capacity, sinks.contains(&SinkKind::Stdout)));
    if let Some(port) = cfg.http {
        if let Some(listener) = bind(port, "OTLP/HTTP") {
            tokio::spawn(http::serve(listener, Arc::clone(&receiver)));
        }
    }
    if let Some(port) = cfg.grpc {
        #[cfg(feature = "grpc")]
        if let Some(listener) = bind(port, "OTLP/gRPC") {
            tokio::spawn(grpc::serve(listener, Arc::clone(&receiver)));
        }
        #[cfg(not(feature = "grpc"))]
        crate::diag::error(format_args!(
            "otlp receiver: OTLP/gRPC on port {port} not started: this build leaves gRPC out (feature `grpc`)"
        ));
    }
    Some(receiver)
}

/// Accepts connections on `listener` until the process ends, at most `max` served at
/// once (more wait in the listen backlog), each by `serve` in its own task.
async fn accept_loop<F, Fut>(listener: tokio::net::TcpListener, max: usize, serve: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of descriptors, most likely: wait rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = serve(stream);
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
}

fn bind(port: u16, what: &str) -> Option<tokio::net::TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let bound = std::net::TcpListener::bind(addr).and_then(|l| {
        l.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(l)
    });
    match bound {
        Ok(l) => Some(l),
        Err(e) => {
            crate::diag::error(format_args!("otlp receiver: {what} not started: cannot listen on {addr}: {e}"));
            None
        }
    }
}

#[cfg(all(test, feature = "grpc"))]
mod tests;
