//! telemetry: the environment's telemetry stream and its subscribers.
//!
//! The hub task owns the ordered stream of platform records (from the lifecycle) and
//! log lines (from process output), and fans it out: to each subscriber's bounded
//! buffer (delivered by its own task, see [`delivery`]), to the console (with
//! CloudWatch's START/END/REPORT lines), to the log tail of `X-Amz-Log-Type: Tail`
//! invocations, and to the in-memory record a test reads. It never blocks the function:
//! everything it receives goes into bounded buffers that drop their oldest events.

pub mod buffer;
pub mod console;
pub mod delivery;
pub mod render;
mod source;

use crate::clock::Clock;
use buffer::{Buffer, Limits};
use bytes::Bytes;
use delivery::{DeliveryLog, Dest, Shared, State};
use render::Flavor;
pub use source::{Line, Source};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem_wire::subscription::Subscription;
use tandem_wire::telemetry::{Record, TelemetryType};
use tandem_wire::Event;
use tokio::sync::{mpsc, oneshot, watch};

/// How many events a subscriber that joins during init receives from before it joined.
const REPLAY_LIMIT: usize = 10_000;
/// What `X-Amz-Log-Type: Tail` returns: the last 4 KB of the invocation's log.
pub const TAIL_BYTES: usize = 4096;
/// How long the end of an environment waits for its delivery tasks to log their last
/// attempt: an extension that acknowledged a batch and exited has its answer read.
pub(crate) const STOP_WAIT: Duration = Duration::from_millis(500);

/// Platform records kept for [`Hub::platform_events`].
const PLATFORM_KEEP: usize = 100_000;
/// Console lines kept for [`Hub::console_lines`].
const CONSOLE_KEEP: usize = 20_000;

/// Where the console lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleOutput {
    /// Nowhere (kept in memory for [`crate::Environment::console_lines`] only).
    None,
    /// The emulator's stdout.
    Stdout,
    /// The emulator's stderr.
    Stderr,
}

#[derive(Debug)]
pub enum Msg {
    Platform(Event),
    Lines(Vec<Line>),
    Subscribe {
        extension: String,
        subscription: Subscription,
    },
    Freeze(bool),
    /// The shutdown deadline passed (or the environment is done): deliveries end. With
    /// an acknowledgement, it is sent once every delivery task has ended (an answer
    /// already on its way has been read and logged), or after [`STOP_WAIT`].
    StopDelivery(Option<tokio::sync::oneshot::Sender<()>>),
    /// An init starts: the replay window restarts.
    NewGeneration,
    /// Answer with the log tail of `request_id` once its report has passed.
    Tail {
        request_id: String,
        ack: oneshot::Sender<String>,
    },
    /// A line of the emulator's own (printed, never delivered as telemetry).
    Note(String),
    /// A line Lambda writes to the function's log (console and log tail, not telemetry).
    ConsoleLine(String),
    /// Answered once every message sent before it has been handled.
    Barrier(oneshot::Sender<()>),
    /// An event given as raw JSON (what a future Lambda might send), delivered as is
    /// to every subscriber of `category`.
    Raw {
        category: TelemetryType,
        json: Bytes,
    },
}

/// Settings of the hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub console: ConsoleOutput,
    /// Written before each console line (not kept in [`Hub::console_lines`]).
    pub console_prefix: String,
    /// The function logs in JSON (`AWS_LAMBDA_LOG_FORMAT=JSON`).
    pub json_logs: bool,
    pub timeout: Duration,
    /// Platform-side buffer bound per subscriber.
    pub cap_items: usize,
    pub cap_bytes: usize,
    pub record_bodies: bool,
}

/// A handle to the hub task.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::UnboundedSender<Msg>,
    deliveries: DeliveryLog,
    console: Arc<Mutex<VecDeque<String>>>,
    platform: Arc<Mutex<VecDeque<Event>>>,
}

impl Hub {
    pub fn start(cfg: HubConfig, clock: Clock) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let deliveries: DeliveryLog = Arc::default();
        let console: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let platform: Arc<Mutex<VecDeque<Event>>> = Arc::default();
        let (frozen, _) = watch::channel(false);
        let (stop, _) = watch::channel(false);
        let task = HubTask {
            cfg,
            clock,
            subs: Vec::new(),
            tasks: Vec::new(),
            replay: VecDeque::new(),
            frozen,
            stop,
            deliveries: deliveries.clone(),
            console: console.clone(),
            platform: platform.clone(),
            tail: Tail::default(),
        };
        tokio::spawn(task.run(rx));
        Hub { tx, deliveries, console, platform }
    }

    pub fn send(&self, msg: Msg) {
        // The hub lives as long as the environment; a send after it is gone has nobody to tell.
        let _ = self.tx.send(msg);
    }

    /// The delivery attempts so far (the most recent [`delivery::DELIVERIES_KEPT`]), in order.
    pub fn deliveries(&self) -> Vec<delivery::Delivery> {
        self.deliveries.lock().map(|d| d.iter().cloned().collect()).unwrap_or_default()
    }

    /// The console lines printed so far (the most recent ones).
    pub fn console_lines(&self) -> Vec<String> {
        self.console.lock().map(|c| c.iter().cloned().collect()).unwrap_or_default()
    }

    /// The platform records emitted so far (the most recent ones), in order.
    pub fn platform_events(&self) -> Vec<Event> {
        self.platform.lock().map(|p| p.iter().cloned().collect()).unwrap_or_default()
    }

    /// Waits until the hub has handled every message sent before this call.
    pub async fn settle(&self) {
        let (ack, rx) = oneshot::channel();
        self.send(Msg::Barrier(ack));
        let _ = rx.await;
    }
}

struct Sub {
    name: String,
    subscription: Subscription,
    flavor: Flavor,
    shared: Arc<Shared>,
}

enum ReplayItem {
    Platform(Box<Event>),
    Line(Line),
}

#[derive(Default)]
struct Tail {
    request_id: Option<String>,
    text: String,
    done: VecDeque<(String, String)>,
    waiting: HashMap<String, oneshot::Sender<String>>,
}

impl Tail {
    fn push(&mut self, line: &str) {
        if self.request_id.is_none() {
            return;
        }
        self.text.push_str(line);
        self.text.push('\n');
        if self.text.len() > 4 * TAIL_BYTES {
            let cut = self.text.len() - TAIL_BYTES;
            let cut = (cut..self.text.len()).find(|&i| self.text.is_char_boundary(i)).unwrap_or(cut);
            self.text.drain(..cut);
        }
    }

    fn finish(&mut self, request_id: &str) {
        let mut text = std::mem::take(&mut self.text);
        self.request_id = None;
        if text.len() > TAIL_BYTES {
            let cut = text.len() - TAIL_BYTES;
            let cut = (cut..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(cut);
            text.drain(..cut);
        }
        match self.waiting.remove(request_id) {
            Some(ack) => {
                let _ = ack.send(text);
            }
            None => {
                self.done.push_back((request_id.to_owned(), text));
                if self.done.len() > 64 {
                    self.done.pop_front();
                }
            }
        }
    }
}

struct HubTask {
    cfg: HubConfig,
    clock: Clock,
    subs: Vec<Sub>,
    /// The delivery tasks, awaited (bounded) when the environment is done.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    replay: VecDeque<ReplayItem>,
    frozen: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    deliveries: DeliveryLog,
    console: Arc<Mutex<VecDeque<String>>>,
    platform: Arc<Mutex<VecDeque<Event>>>,
    tail: Tail,
}

impl HubTask {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut out: Box<dyn Write + Send> = match self.cfg.console {
            ConsoleOutput::Stdout => Box::new(std::io::stdout()),
            ConsoleOutput::Stderr => Box::new(std::io::stderr()),
            ConsoleOutput::None => Box::new(std::io::sink()),
        };
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Platform(event) => self.on_platform(event, &mut out),
                Msg::Lines(lines) => {
                    for line in lines {
                        self.on_line(line, &mut out);
                    }
                }
                Msg::Subscribe { extension, subscription } => self.on_subscribe(extension, subscription),
                Msg::Freeze(on) => {
                    let _ = self.frozen.send(on);
                }
                Msg::StopDelivery(ack) => {
                    let _ = self.stop.send(true);
                    if let Some(ack) = ack {
                        let tasks = std::mem::take(&mut self.tasks);
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(STOP_WAIT, async {
                                for task in tasks {
                                    let _ = task.await;
                                }
                            })
                            .await;
                            let _ = ack.send(());
                        });
                    }
                }
                Msg::NewGeneration => self.replay.clear(),
                Msg::Barrier(ack) => {
                    let _ = out.flush();
                    let _ = ack.send(());
                }
                Msg::ConsoleLine(line) => self.print(&mut out, &line),
                Msg::Note(line) => {
                    let _ = writeln!(out, "{}{line}", self.cfg.console_prefix);
                    if let Ok(mut c) = self.console.lock() {
                        c.push_back(line);
                    }
                }
                Msg::Raw { category, json } => {
                    let now = Instant::now();
                    for sub in self.subs.iter().filter(|s| s.subscription.wants(&category)) {
                        push_all(&sub.shared, std::slice::from_ref(&json), now);
                    }
                }
                Msg::Tail { request_id, ack } => match self.tail.done.iter().position(|(id, _)| *id == request_id) {
                    Some(i) => {
                        if let Some((_, text)) = self.tail.done.remove(i) {
                            let _ = ack.send(text);
                        }
                    }
                    None => {
                        self.tail.waiting.insert(request_id, ack);
                    }
                },
            }
        }
        let _ = out.flush();
        let _ = self.stop.send(true);
    }

    fn print(&mut self, out: &mut Box<dyn Write + Send>, line: &str) {
        let _ = writeln!(out, "{}{line}", self.cfg.console_prefix);
        self.tail.push(line);
        if let Ok(mut c) = self.console.lock() {
            c.push_back(line.to_owned());
            if c.len() > CONSOLE_KEEP {
                c.pop_front();
            }
        }
    }

    fn on_platform(&mut self, event: Event, out: &mut Box<dyn Write + Send>) {
        if let Ok(mut p) = self.platform.lock() {
            p.push_back(event.clone());
            if p.len() > PLATFORM_KEEP {
                p.pop_front();
            }
        }
        if let Record::Start(s) = &event.record {
            self.tail.request_id = Some(s.request_id.clone());
            self.tail.text.clear();
        }
        for line in console::platform_lines(&event, self.cfg.timeout.as_secs_f64(), self.cfg.json_logs) {
            self.print(out, &line);
        }
        if let Record::Report(r) = &event.record {
            let _ = out.flush();
            self.tail.finish(&r.request_id);
        }
        let now = Instant::now();
        let mut cache: Vec<(Flavor, Vec<Bytes>)> = Vec::new();
        for sub in &self.subs {
            if !sub.subscription.wants(&TelemetryType::Platform) {
                continue;
            }
            let rendered = match cache.iter().position(|(f, _)| *f == sub.flavor) {
                Some(i) => &cache[i].1,
                None => {
                    let mut v = Vec::new();
                    render::render_platform(sub.flavor, &event, &mut v);
                    cache.push((sub.flavor, v));
                    &cache[cache.len() - 1].1
                }
            };
            push_all(&sub.shared, rendered, now);
        }
        self.remember(ReplayItem::Platform(Box::new(event)));
    }

    fn on_line(&mut self, line: Line, out: &mut Box<dyn Write + Send>) {
        self.print(out, &line.text);
        let now = Instant::now();
        let category = line.source.category();
        let mut time: Option<String> = None;
        let mut cache: Vec<(Flavor, Bytes)> = Vec::new();
        for sub in &self.subs {
            if !sub.subscription.wants(&category) {
                continue;
            }
            let json = match cache.iter().find(|(f, _)| *f == sub.flavor) {
                Some((_, b)) => b.clone(),
                None => {
                    let t = time.get_or_insert_with(|| tandem_wire::time::format_epoch_millis(line.time_us / 1000));
                    let Some(b) = render::render_line(sub.flavor, t, line.source, &line.text, self.cfg.json_logs)
                    else {
                        continue;
                    };
                    cache.push((sub.flavor, b.clone()));
                    b
                }
            };
            push_all(&sub.shared, std::slice::from_ref(&json), now);
        }
        self.remember(ReplayItem::Line(line));
    }

    fn remember(&mut self, item: ReplayItem) {
        self.replay.push_back(item);
        if self.replay.len() > REPLAY_LIMIT {
            self.replay.pop_front();
        }
    }

    fn on_subscribe(&mut self, name: String, subscription: Subscription) {
        let limits = Limits {
            max_items: subscription.max_items as usize,
            max_bytes: subscription.max_bytes as usize,
            timeout: Duration::from_millis(u64::from(subscription.timeout_ms)),
            cap_items: self.cfg.cap_items,
            cap_bytes: self.cfg.cap_bytes,
        };
        let dest = Dest { protocol: subscription.protocol, port: subscription.port, path: subscription.path.clone() };
        let flavor = Flavor::of(&subscription);
        let shared = match self.subs.iter_mut().find(|s| s.name == name) {
            Some(existing) => {
                // Re-subscribed after a reset: keep what is pending, deliver to the new
                // listener. Nothing is replayed: this subscriber kept receiving the
                // stream through the reset, the new init's records included (a replay
                // would deliver `platform.initStart` twice).
                if let Ok(mut st) = existing.shared.state.lock() {
                    st.dest = dest;
                    st.buffer.set_limits(limits);
                }
                existing.shared.retry_now.notify_one();
                existing.subscription = subscription;
                existing.flavor = flavor;
                return;
            }
            None => {
                let shared = Arc::new(Shared {
                    state: Mutex::new(State { buffer: Buffer::new(limits), dest }),
                    notify: tokio::sync::Notify::new(),
                    retry_now: tokio::sync::Notify::new(),
                });
                let task = delivery::Task {
                    name: name.clone(),
                    shared: shared.clone(),
                    frozen: self.frozen.subscribe(),
                    stop: self.stop.subscribe(),
                    log: self.deliveries.clone(),
                    record_bodies: self.cfg.record_bodies,
                    clock: self.clock,
                };
                self.tasks.push(tokio::spawn(task.run()));
                self.subs.push(Sub { name: name.clone(), subscription, flavor, shared: shared.clone() });
                shared
            }
        };
        // What happened since init began reaches the new subscriber first.
        let Some(sub) = self.subs.iter().find(|s| s.name == name) else {
            return;
        };
        let now = Instant::now();
        let mut rendered = Vec::new();
        for item in &self.replay {
            match item {
                ReplayItem::Platform(e) if sub.subscription.wants(&TelemetryType::Platform) => {
                    render::render_platform(sub.flavor, e, &mut rendered)
                }
                ReplayItem::Line(l) if sub.subscription.wants(&l.source.category()) => {
                    let t = tandem_wire::time::format_epoch_millis(l.time_us / 1000);
                    rendered.extend(render::render_line(sub.flavor, &t, l.source, &l.text, self.cfg.json_logs));
                }
                _ => {}
            }
        }
        push_all(&shared, &rendered, now);
    }
}

fn push_all(shared: &Shared, events: &[Bytes], now: Instant) {
    if events.is_empty() {
        return;
    }
    if let Ok(mut st) = shared.state.lock() {
        for e in events {
            st.buffer.push(e.clone(), now);
        }
    }
    shared.notify.notify_one();
}
