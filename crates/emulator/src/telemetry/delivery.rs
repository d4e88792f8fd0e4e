//! telemetry::delivery: one task per subscriber that takes due batches from its
//! [`Buffer`](super::buffer::Buffer) and sends them to the extension's listener on
//! 127.0.0.1 (`sandbox.localdomain`), over HTTP (a JSON array per POST) or TCP
//! (newline-delimited JSON). A batch that fails is retried with backoff until it is
//! accepted; nothing is sent while the environment is frozen, and time spent frozen
//! does not count against a request's timeout.

use super::buffer::{Batch, Buffer};
use crate::clock::Clock;
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem_wire::subscription::{Protocol, SANDBOX_HOST};
use tandem_wire::telemetry::{types, LogsDropped};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};

/// How long one delivery may take while the environment runs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a subscriber's answer body read (Lambda only looks at the status).
/// How long an attempt in flight when deliveries stop may still take to be answered.
const STOP_GRACE: Duration = Duration::from_millis(250);
const MAX_ANSWER_BYTES: usize = 64 * 1024;
const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
const DROP_REASON: &str = "Consumer seems to have fallen behind as it has not acknowledged receipt of logs.";

/// Where a subscriber listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    pub protocol: Protocol,
    pub port: u16,
    pub path: String,
}

/// State shared by the hub (which fills the buffer) and the delivery task.
#[derive(Debug)]
pub struct State {
    pub buffer: Buffer,
    pub dest: Dest,
}

#[derive(Debug)]
pub struct Shared {
    pub state: Mutex<State>,
    /// New events, or a flush: look at the buffer again.
    pub notify: Notify,
    /// The subscriber changed (resubscribed after a reset): end a retry backoff early.
    pub retry_now: Notify,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The subscriber answered 2xx (HTTP) or the bytes were written (TCP).
    Delivered(u16),
    /// The subscriber answered with another status; the batch is sent again.
    Rejected(u16),
    /// No answer (connection refused, reset, timeout); the batch is sent again.
    Failed(String),
}

/// One delivery attempt, as a test reads it back.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The subscribing extension's name.
    pub subscriber: String,
    /// Batch number for this subscriber, from 1; retries keep the number.
    pub batch: u64,
    /// Attempt number of this batch, from 1.
    pub attempt: u32,
    /// When the attempt started, in epoch milliseconds.
    pub sent_ms: u64,
    /// How it went.
    pub outcome: Outcome,
    /// Number of events in the batch.
    pub events: usize,
    /// The body as sent (empty when bodies are not recorded).
    pub body: Bytes,
    /// HTTP or TCP.
    pub protocol: Protocol,
}

impl Delivery {
    /// Whether the subscriber accepted it.
    pub fn delivered(&self) -> bool {
        matches!(self.outcome, Outcome::Delivered(_))
    }

    /// The events of this delivery as JSON values.
    pub fn parsed(&self) -> Vec<serde_json::Value> {
        match self.protocol {
            Protocol::Http => serde_json::from_slice(&self.body).unwrap_or_default(),
            Protocol::Tcp => self
                .body
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .filter_map(|l| serde_json::from_slice(l).ok())
                .collect(),
        }
    }
}

/// The most recent delivery attempts (bounded: `serve` may run for a long time).
pub type DeliveryLog = Arc<Mutex<std::collections::VecDeque<Delivery>>>;

/// Delivery attempts kept in a [`DeliveryLog`].
pub const DELIVERIES_KEPT: usize = 100_000;

pub struct Task {
    pub name: String,
    pub shared: Arc<Shared>,
    pub frozen: watch::Receiver<bool>,
    pub stop: watch::Receiver<bool>,
    pub log: DeliveryLog,
    pub record_bodies: bool,
    pub clock: Clock,
}

enum Conn {
    Http(SendRequest<Full<Bytes>>),
    Tcp(TcpStream),
}

impl Task {
    pub async fn run(mut self) {
        let mut conn: Option<(Dest, Conn)> = None;
        let mut batch_no = 0u64;
        loop {
            if *self.stop.borrow() {
                return;
            }
            if !self.wait_thawed().await {
                return;
            }
            let now = Instant::now();
            let (batch, deadline, dest) = match self.shared.state.lock() {
                Ok(mut s) => (s.buffer.take(now), s.buffer.deadline(), s.dest.clone()),
                Err(_) => return,
            };
            let Some(batch) = batch else {
                let sleep = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = self.shared.notify.notified() => {}
                    _ = sleep => {}
                    _ = self.frozen.changed() => {}
                    _ = self.stop.changed() => {}
                }
                continue;
            };
            batch_no += 1;
            let count = batch.events.len() + usize::from(batch.dropped.is_some());
            let body = self.encode(batch, dest.protocol);
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                if !self.wait_thawed().await {
                    return;
                }
                let sent_ms = self.clock.epoch_ms(Instant::now());
                let dest = self.shared.state.lock().map(|s| s.dest.clone()).unwrap_or_else(|_| dest.clone());
                let (outcome, stopping) = {
                    let send =
                        with_active_timeout(send(&mut conn, &dest, body.clone()), REQUEST_TIMEOUT, &mut self.frozen);
                    tokio::pin!(send);
                    let no_answer = || Outcome::Failed(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()));
                    tokio::select! {
                        o = &mut send => (o.unwrap_or_else(no_answer), false),
                        // The deadline, or the environment is done: an answer already on its
                        // way (an extension that acknowledged, then exited) is still read and
                        // logged; an attempt with no answer within a moment is abandoned.
                        _ = self.stop.changed() => match tokio::time::timeout(STOP_GRACE, &mut send).await {
                            Ok(Some(o)) => (o, true),
                            _ => return,
                        },
                    }
                };
                let ok = matches!(outcome, Outcome::Delivered(_));
                if !ok {
                    conn = None;
                }
                if let Ok(mut log) = self.log.lock() {
                    log.push_back(Delivery {
                        subscriber: self.name.clone(),
                        batch: batch_no,
                        attempt,
                        sent_ms,
                        outcome,
                        events: count,
                        body: if self.record_bodies { body.clone() } else { Bytes::new() },
                        protocol: dest.protocol,
                    });
                    if log.len() > DELIVERIES_KEPT {
                        log.pop_front();
                    }
                }
                if stopping {
                    return;
                }
                if ok {
                    break;
                }
                let backoff = (BACKOFF_BASE * 2u32.saturating_pow(attempt.min(10) - 1)).min(BACKOFF_MAX);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    // A new subscription (the extension restarted after a reset): try
                    // again now rather than at the end of the backoff.
                    _ = self.shared.retry_now.notified() => {}
                    _ = self.stop.changed() => return,
                }
                let current = self.shared.state.lock().map(|s| s.dest.clone()).ok();
                if current.as_ref().is_some_and(|d| *d != dest) {
                    attempt = 0;
                }
            }
        }
    }

    /// Waits while the environment is frozen; false when the task should stop.
    async fn wait_thawed(&mut self) -> bool {
        while *self.frozen.borrow() {
            tokio::select! {
                r = self.frozen.changed() => if r.is_err() { return true },
                _ = self.stop.changed() => return false,
            }
        }
        !*self.stop.borrow()
    }

    fn encode(&self, batch: Batch, protocol: Protocol) -> Bytes {
        let mut events = Vec::with_capacity(batch.events.len() + 1);
        if let Some((records, bytes)) = batch.dropped {
            #[derive(Serialize)]
            struct Out<'a> {
                time: String,
                #[serde(rename = "type")]
                kind: &'a str,
                record: LogsDropped,
            }
            let ev = Out {
                time: self.clock.rfc3339(Instant::now()),
                kind: types::LOGS_DROPPED,
                record: LogsDropped { dropped_bytes: bytes, dropped_records: records, reason: DROP_REASON.into() },
            };
            if let Ok(v) = serde_json::to_vec(&ev) {
                events.push(Bytes::from(v));
            }
        }
        events.extend(batch.events);
        let size: usize = events.iter().map(|e| e.len() + 1).sum::<usize>() + 2;
        let mut out = BytesMut::with_capacity(size);
        match protocol {
            Protocol::Http => {
                out.put_u8(b'[');
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        out.put_u8(b',');
                    }
                    out.put_slice(e);
                }
                out.put_u8(b']');
            }
            Protocol::Tcp => {
                for e in &events {
                    out.put_slice(e);
                    out.put_u8(b'\n');
                }
            }
        }
        out.freeze()
    }
}

async fn send(conn: &mut Option<(Dest, Conn)>, dest: &Dest, body: Bytes) -> Outcome {
    if conn.as_ref().is_some_and(|(d, _)| d != dest) {
        *conn = None;
    }
    if conn.is_none() {
        let stream = match TcpStream::connect(("127.0.0.1", dest.port)).await {
            Ok(s) => s,
            Err(e) => return Outcome::Failed(format!("connect to {SANDBOX_HOST}:{}: {e}", dest.port)),
        };
        let _ = stream.set_nodelay(true);
        let c = match dest.protocol {
            Protocol::Tcp => Conn::Tcp(stream),
            Protocol::Http => match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok((sender, connection)) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    Conn::Http(sender)
                }
                Err(e) => return Outcome::Failed(format!("HTTP handshake: {e}")),
            },
        };
        *conn = Some((dest.clone(), c));
    }
    let Some((_, c)) = conn.as_mut() else {
        return Outcome::Failed("no connection".into());
    };
    match c {
        Conn::Tcp(stream) => match stream.write_all(&body).await {
            Ok(()) => Outcome::Delivered(0),
            Err(e) => Outcome::Failed(format!("TCP write: {e}")),
        },
        Conn::Http(sender) => {
            if let Err(e) = sender.ready().await {
                return Outcome::Failed(format!("connection closed: {e}"));
            }
            let request = http::Request::post(dest.path.as_str())
                .header(http::header::HOST, format!("{SANDBOX_HOST}:{}", dest.port))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body));
            let request = match request {
                Ok(r) => r,
                Err(e) => return Outcome::Failed(format!("bad request: {e}")),
            };
            match sender.send_request(request).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    // Read the answer to the end so that the connection can be reused,
                    // but never more of it than an acknowledgement needs: a subscriber
                    // answering with an endless body loses the connection, not memory.
                    if Limited::new(resp.into_body(), MAX_ANSWER_BYTES).collect().await.is_err() {
                        *conn = None;
                    }
                    if (200..300).contains(&status) {
                        Outcome::Delivered(status)
                    } else {
                        Outcome::Rejected(status)
                    }
                }
                Err(e) => Outcome::Failed(format!("request: {e}")),
            }
        }
    }
}

/// Runs `f` with a timeout that only counts time spent thawed.
async fn with_active_timeout<F: Future>(
    f: F,
    budget: Duration,
    frozen: &mut watch::Receiver<bool>,
) -> Option<F::Output> {
    tokio::pin!(f);
    let mut left = budget;
    loop {
        if *frozen.borrow() {
            tokio::select! {
                out = &mut f => return Some(out),
                r = frozen.changed() => if r.is_err() { return Some(f.await) },
            }
            continue;
        }
        let start = Instant::now();
        tokio::select! {
            out = &mut f => return Some(out),
            _ = tokio::time::sleep(left) => return None,
            r = frozen.changed() => {
                if r.is_err() {
                    return tokio::time::timeout(left.saturating_sub(start.elapsed()), f).await.ok();
                }
                left = left.saturating_sub(start.elapsed());
            }
        }
    }
}
