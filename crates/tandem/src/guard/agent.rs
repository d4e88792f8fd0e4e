//! guard::agent: the guard at run time. One thread scans (at start, at each INVOKE,
//! then every `TANDEM_GUARD_INTERVAL_MS` while the environment runs: a frozen
//! environment's thread does not run, so a freeze costs nothing), a second one blocks
//! on inotify's events (the temporary directory, the watched files' directories); the
//! [`Engine`] judges, `enforce` kills
//! (SIGKILL), findings become records handed to the pipeline and one rate-limited
//! diagnostic line each, and `learn` writes its policy file. Threads, not tasks: a scan
//! is blocking file I/O, and the extension's runtime has one thread.
//!
//! Tamper resistance within the sandbox: the settings are read once at start (the
//! function cannot change tandem's environment after that); if the scan thread ends
//! (a panic), the next INVOKE reports it as a finding, and the extension goes on.

use super::config::{GuardConfig, Mode};
use super::engine::Engine;
use super::finding::{Action, Finding, RateLimit};
use super::watch::{Touch, Watcher};
use super::{scan, watch};
use crate::clock::now_ms;
use crate::diag;
use crate::model::Item;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Where findings go: the pipeline's queues.
pub type Emit = Arc<dyn Fn(Vec<Item>) + Send + Sync>;

/// Diagnostic lines: at most this many per window (the records are never limited).
const LINES_PER_WINDOW: u32 = 10;
const LINE_WINDOW_MS: u64 = 60_000;

enum Msg {
    Invoke(String, u64),
    Files(Vec<Touch>),
    Stop,
}

struct Running {
    tx: Sender<Msg>,
    thread: JoinHandle<()>,
    emit: Emit,
    last_request: Option<String>,
    told_stopped: bool,
}

/// The guard. [`Agent::new`] does nothing; [`Agent::start`] starts it unless it is off.
pub struct Agent {
    config: GuardConfig,
    running: Mutex<Option<Running>>,
}

impl Agent {
    /// A guard with these settings, not started: no thread, no read.
    pub fn new(config: &GuardConfig) -> Agent {
        Agent { config: config.clone(), running: Mutex::new(None) }
    }

    /// Starts the threads (nothing when off). Findings are handed to `emit`.
    pub fn start(&self, emit: Emit) {
        if self.config.mode == Mode::Off {
            return;
        }
        let me = std::process::id();
        let Some(root) = scan::parent() else {
            diag::error("guard: cannot read /proc/self/stat; the guard is not running");
            return;
        };
        let engine = Engine::new(self.config.mode, self.config.policy.clone(), self.config.kill_runtime, root, me);
        let (tx, rx) = mpsc::channel();
        let tmp = std::env::temp_dir();
        let watched: Vec<PathBuf> = self.config.policy.watch.iter().map(|w| PathBuf::from(w.dir())).collect();
        start_watcher(&tmp, &watched, tx.clone());
        let config = self.config.clone();
        let out = emit.clone();
        let thread = std::thread::Builder::new().name("tandem-guard".into()).spawn(move || {
            let mut scanner =
                Scanner { engine, config, emit: out, lines: RateLimit::new(LINES_PER_WINDOW, LINE_WINDOW_MS) };
            scanner.run(&rx);
        });
        match thread {
            Ok(thread) => {
                let files: Vec<String> = self.config.policy.watch.iter().map(ToString::to_string).collect();
                diag::info(format_args!(
                    "guard: {}, scanning every {} ms, watching {}{}{}",
                    self.config.mode.as_str(),
                    self.config.interval.as_millis(),
                    tmp.display(),
                    if files.is_empty() { "" } else { " and writes to " },
                    files.join(", ")
                ));
                *lock(&self.running) = Some(Running { tx, thread, emit, last_request: None, told_stopped: false });
            }
            Err(e) => diag::error(format_args!("guard: cannot start its thread: {e}; the guard is not running")),
        }
    }

    /// An INVOKE: the scan loop attributes what follows to `request_id` and scans now.
    /// A scan loop found stopped is a finding (once).
    pub fn invoke(&self, request_id: &str) {
        let mut guard = lock(&self.running);
        let Some(r) = guard.as_mut() else { return };
        if r.thread.is_finished() {
            if !r.told_stopped {
                r.told_stopped = true;
                let f = Finding::stopped("the scan thread ended", Some(request_id.to_owned()));
                diag::warn(f.line());
                (r.emit)(vec![Item::Log(f.to_log_record(now_ms()))]);
            }
            return;
        }
        r.last_request = Some(request_id.to_owned());
        let ticks = scan::uptime_ticks().unwrap_or(u64::MAX);
        let _ = r.tx.send(Msg::Invoke(request_id.to_owned(), ticks));
    }

    /// Stops the scan loop (at SHUTDOWN; `learn` has written its policy already).
    pub fn stop(&self) {
        if let Some(r) = lock(&self.running).take() {
            let _ = r.tx.send(Msg::Stop);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The inotify thread: blocks on the events and forwards them. Ends when the scan loop
/// has (its channel is closed) at the next event, or when inotify fails. A directory
/// that cannot be watched is said once and left out; the others are still watched.
fn start_watcher(tmp: &Path, watched: &[PathBuf], tx: Sender<Msg>) {
    let mut watcher = match Watcher::new() {
        Ok(w) => w,
        Err(e) => {
            diag::warn(format_args!("guard: cannot start inotify: {e}; files are not watched"));
            return;
        }
    };
    let dirs = std::iter::once((tmp, true)).chain(watched.iter().map(|d| (d.as_path(), false)));
    let mut any = false;
    for (dir, is_tmp) in dirs {
        if !watch::is_dir(dir) {
            diag::warn(format_args!("guard: {} is not a directory; not watched", dir.display()));
            continue;
        }
        match watcher.add(dir, is_tmp) {
            Ok(()) => any = true,
            Err(e) => diag::warn(format_args!("guard: cannot watch {}: {e}", dir.display())),
        }
    }
    if !any {
        return;
    }
    let spawned = std::thread::Builder::new().name("tandem-guard-files".into()).spawn(move || loop {
        match watcher.wait() {
            Ok(files) if files.is_empty() => {}
            Ok(files) => {
                if tx.send(Msg::Files(files)).is_err() {
                    return;
                }
            }
            Err(e) => {
                diag::warn(format_args!("guard: inotify failed: {e}; files are no longer watched"));
                return;
            }
        }
    });
    if let Err(e) = spawned {
        diag::warn(format_args!("guard: cannot start the file watch: {e}"));
    }
}

struct Scanner {
    engine: Engine,
    config: GuardConfig,
    emit: Emit,
    lines: RateLimit,
}

impl Scanner {
    fn run(&mut self, rx: &mpsc::Receiver<Msg>) {
        let mut next = Instant::now();
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            let scan_now = match rx.recv_timeout(wait) {
                Ok(Msg::Invoke(id, ticks)) => {
                    self.engine.on_invoke(&id, ticks);
                    true
                }
                Ok(Msg::Files(touched)) => {
                    let now = now_ms();
                    let mut found = Vec::new();
                    for t in &touched {
                        if let Some(f) = &t.facts {
                            found.extend(self.engine.on_file(&f.path, f.elf, f.executable, f.mode));
                        }
                        if t.wrote {
                            found.extend(self.engine.on_write(&t.path, now));
                        }
                    }
                    self.report(found);
                    false
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => true,
            };
            if scan_now {
                let (scope, reading) = scan::read(&self.engine);
                let found = self.engine.judge(&scope, &reading);
                let found = found.into_iter().map(|f| self.enforce(f, &reading.stats)).collect();
                self.report(found);
                next = Instant::now() + self.config.interval;
            }
        }
    }

    /// `enforce`: SIGKILL to the process the engine named, if it is still the process
    /// that was judged (same start time: a pid is reused).
    fn enforce(&self, mut f: Finding, stats: &[super::procfs::Stat]) -> Finding {
        let Some(pid) = f.kill else { return f };
        let judged = stats.iter().find(|s| s.pid == pid).map(|s| s.start_ticks);
        let now = scan::stat_of(pid).map(|s| s.start_ticks);
        f.action = if judged.is_none() || judged != now {
            Action::KillFailed("the process had already ended".into())
        } else {
            match kill(pid) {
                Ok(()) => Action::Killed,
                Err(why) => Action::KillFailed(why),
            }
        };
        f
    }

    fn report(&mut self, found: Vec<Finding>) {
        if let Some(text) = self.engine.take_learned() {
            write_policy(&self.config.policy_out, &text);
        }
        if found.is_empty() {
            return;
        }
        let now = now_ms();
        for f in &found {
            if let Some(held) = self.lines.admit(now) {
                let more = if held > 0 { format!(" ({held} earlier finding lines held back)") } else { String::new() };
                diag::warn(format_args!("{}{more}", f.line()));
            }
        }
        (self.emit)(found.iter().map(|f| Item::Log(f.to_log_record(now))).collect());
    }
}

/// SIGKILL, through `nix` with only its `signal` feature: measured on a stripped
/// release binary that already links `inotify` (and so libc), nix adds 1.7 KB and
/// `rustix` with `process` 1.6 KB; nix builds on the libc every other dependency
/// uses, where rustix would bring its own syscall layer (`linux-raw-sys`) to build.
fn kill(pid: u32) -> Result<(), String> {
    let pid = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| e.to_string())
}

/// Writes the learned policy: to a temporary file renamed over the old one, so a
/// reader never sees half of it.
fn write_policy(path: &PathBuf, text: &str) {
    let tmp = path.with_extension("tmp");
    let result = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, text))
        .and_then(|()| std::fs::rename(&tmp, path));
    match result {
        Ok(()) => diag::debug(format_args!("guard (learn): policy written to {}", path.display())),
        Err(e) => diag::once(
            crate::diag::LogLevel::Warn,
            "guard-policy-out",
            format_args!("guard (learn): cannot write {}: {e}", path.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan loop's thread ended (as after a panic): the next INVOKE tells it, once,
    /// with that request id, and the extension goes on (no panic, no more messages).
    #[test]
    fn a_stopped_scan_loop_is_a_finding_at_the_next_invoke() {
        let seen: Arc<Mutex<Vec<Item>>> = Arc::default();
        let sink = seen.clone();
        let emit: Emit = Arc::new(move |items| lock(&sink).extend(items));
        let (tx, _rx) = mpsc::channel();
        let thread = std::thread::spawn(|| {});
        while !thread.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let agent = Agent::new(&GuardConfig { mode: Mode::Detect, ..GuardConfig::default() });
        *lock(&agent.running) = Some(Running { tx, thread, emit, last_request: None, told_stopped: false });
        agent.invoke("req-7");
        agent.invoke("req-8");
        let items = lock(&seen);
        assert_eq!(items.len(), 1, "told once: {items:?}");
        let Item::Log(r) = &items[0] else { panic!("a log record: {:?}", items[0]) };
        assert_eq!(r.attributes["security.rule"], super::super::finding::rule::STOPPED);
        assert_eq!(r.attributes["security.kind"], "guard");
        assert_eq!(r.request_id.as_deref(), Some("req-7"));
        agent.stop();
    }
}
