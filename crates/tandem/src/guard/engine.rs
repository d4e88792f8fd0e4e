//! guard::engine: the guard's judgement, sans-I/O. Given what one scan read (parsed
//! `stat` rows, the details of the processes it did not know, their socket inodes, the
//! socket tables) and the file events of the temporary directory, it decides what is a
//! finding, which process `enforce` kills, which request id each finding belongs to,
//! and, in `learn` mode, what the policy must allow. It remembers what it judged, so a
//! process, a connection or a file is reported once, and a burst of writes to a
//! watched file once.
//!
//! A process belongs to the invocation during which it started: its `stat` start time
//! and each INVOKE's time are on the same clock (ticks since boot), so a process seen
//! only at the next scan, after a freeze, is still told with the right request id. A
//! connection or a file belongs to the invocation during which it was seen.

use super::config::Mode;
use super::finding::{rule, Action, Finding, Kind, Severity};
use super::policy::{Learned, Policy};
use super::procfs::{Socket, Stat};
use super::tree::Scope;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

/// What the scan read about one process it did not know yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// The `exe` link (path, deleted); `None` when it could not be read.
    pub exe: Option<(String, bool)>,
    /// Its arguments.
    pub cmdline: Vec<String>,
    /// Its real uid.
    pub uid: Option<u32>,
}

/// One scan's reading of `/proc`.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// Every process's `stat` (the whole of `/proc`: the tree needs every parent).
    pub stats: Vec<Stat>,
    /// Details of the processes [`Engine::unknown`] named.
    pub details: HashMap<u32, Details>,
    /// Socket inodes held by each process in scope.
    pub sockets_of: HashMap<u32, Vec<u64>>,
    /// The socket tables (`tcp`, `tcp6`, `udp`, `udp6`).
    pub sockets: Vec<Socket>,
    /// The tables were not read: every socket held in scope was already judged
    /// ([`Engine::needs_tables`]), so `sockets` says nothing about what is live.
    pub tables_skipped: bool,
}

/// What the engine knows of a process it judged.
#[derive(Debug, Clone)]
struct Known {
    start_ticks: u64,
    exe: String,
    cmdline: String,
}

/// Lambda hands an invocation to the runtime and to the extensions at the same time, and
/// tandem may be scheduled later than the runtime: a process started up to this many
/// ticks (200 ms) before tandem saw an INVOKE belongs to that invocation.
pub const INVOKE_LAG_TICKS: u64 = 20;

/// How many INVOKE times are kept for attributing processes to invocations.
const INVOKES_KEPT: usize = 64;
/// Scans in a row that may skip the socket tables when no new socket appears: the
/// tables are still read every this many scans, for a socket whose state changed
/// without a new inode (an unconnected UDP socket that `connect`s, a TCP connect still
/// under way).
pub const TABLES_EVERY: u32 = 10;
/// Bound on the remembered files (a flood of files must not grow memory).
const FILES_KEPT: usize = 10_000;
/// Writes to a watched file closer together than this are one burst, one finding (a
/// log file appended line by line must not make a finding per line).
pub const WRITE_BURST_MS: u64 = 2_000;

/// The guard's state. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    mode: Mode,
    policy: Policy,
    kill_runtime: bool,
    root: u32,
    me: u32,
    known: HashMap<u32, Known>,
    /// Forks seen once still running their parent's program (not exec'd yet).
    forks: HashSet<(u32, u64)>,
    sockets_seen: HashSet<u64>,
    /// Inodes held in scope that the last table reading showed were no connection
    /// (listening, unconnected UDP, or in no table: unix sockets).
    quiet: HashSet<u64>,
    /// Scans since the tables were last read.
    scans_without_tables: u32,
    files_seen: HashSet<String>,
    /// Watched files: the time of the last write of the current burst.
    writes: HashMap<String, u64>,
    invokes: VecDeque<(u64, String)>,
    learned: Learned,
    learned_changed: bool,
}

impl Engine {
    /// An engine for the guard `me` whose parent is `root`.
    pub fn new(mode: Mode, policy: Policy, kill_runtime: bool, root: u32, me: u32) -> Engine {
        Engine {
            mode,
            policy,
            kill_runtime,
            root,
            me,
            known: HashMap::new(),
            forks: HashSet::new(),
            sockets_seen: HashSet::new(),
            quiet: HashSet::new(),
            scans_without_tables: 0,
            files_seen: HashSet::new(),
            writes: HashMap::new(),
            invokes: VecDeque::new(),
            learned: Learned::default(),
            learned_changed: false,
        }
    }

    /// An INVOKE for `request_id` arrived at `uptime_ticks` (ticks since boot).
    pub fn on_invoke(&mut self, request_id: &str, uptime_ticks: u64) {
        if self.invokes.len() == INVOKES_KEPT {
            self.invokes.pop_front();
        }
        self.invokes.push_back((uptime_ticks, request_id.to_owned()));
    }

    /// The current invocation's request id (none before the first INVOKE).
    pub fn current(&self) -> Option<&str> {
        self.invokes.back().map(|(_, id)| id.as_str())
    }

    /// The invocation running at `ticks`: the last INVOKE at or before it, allowing
    /// for [`INVOKE_LAG_TICKS`].
    fn request_at(&self, ticks: u64) -> Option<String> {
        self.invokes.iter().rev().find(|(t, _)| *t <= ticks + INVOKE_LAG_TICKS).map(|(_, id)| id.clone())
    }

    /// The processes in scope among `stats`.
    pub fn scope(&self, stats: &[Stat]) -> Scope {
        Scope::build(stats.iter().map(|s| (s.pid, s.ppid)), self.root, self.me)
    }

    /// The processes in `scope` not judged yet: the scan reads their details.
    pub fn unknown(&self, scope: &Scope, stats: &[Stat]) -> Vec<u32> {
        let starts: HashMap<u32, u64> = stats.iter().map(|s| (s.pid, s.start_ticks)).collect();
        scope
            .iter()
            .filter(|(pid, _)| match (self.known.get(pid), starts.get(pid)) {
                (Some(k), Some(&start)) => k.start_ticks != start,
                _ => true,
            })
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Judges one scan. Findings come in pid order (processes), then inode order
    /// (connections); in `learn` mode there are none.
    pub fn judge(&mut self, scope: &Scope, reading: &Reading) -> Vec<Finding> {
        let stats: HashMap<u32, &Stat> = reading.stats.iter().map(|s| (s.pid, s)).collect();
        // Forget processes that ended (or whose pid was reused).
        self.known.retain(|pid, k| stats.get(pid).is_some_and(|s| s.start_ticks == k.start_ticks));
        self.forks.retain(|(pid, start)| stats.get(pid).is_some_and(|s| s.start_ticks == *start));
        let mut out = Vec::new();
        for (pid, member) in scope.iter() {
            let (Some(stat), Some(d)) = (stats.get(&pid), reading.details.get(&pid)) else { continue };
            if self.known.get(&pid).is_some_and(|k| k.start_ticks == stat.start_ticks) {
                continue;
            }
            let Some((exe, deleted)) = d.exe.clone() else {
                // A zombie, or gone between two reads: nothing to judge.
                continue;
            };
            let cmdline = d.cmdline.join(" ");
            if member.depth >= 2 {
                // A fork still running its parent's program: judged when it execs, or
                // at its second sighting if it never does (a worker of the runtime).
                let parent = self.known.get(&member.ppid);
                let same_as_parent = parent.is_some_and(|p| p.exe == exe && p.cmdline == cmdline);
                if same_as_parent && self.forks.insert((pid, stat.start_ticks)) {
                    continue;
                }
                if !self.policy.allows_exec(&exe, &cmdline) {
                    if self.mode == Mode::Learn {
                        self.learned_changed |= self.learned.exec.insert(exe.clone());
                    } else {
                        out.push(self.exec_finding(pid, stat, scope, &reading.details, &exe, deleted, &cmdline, d.uid));
                    }
                }
            }
            self.known.insert(pid, Known { start_ticks: stat.start_ticks, exe, cmdline });
        }
        out.extend(self.judge_sockets(scope, reading));
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn exec_finding(
        &self,
        pid: u32,
        stat: &Stat,
        scope: &Scope,
        details: &HashMap<u32, Details>,
        exe: &str,
        deleted: bool,
        cmdline: &str,
        uid: Option<u32>,
    ) -> Finding {
        let ancestry: Vec<String> = scope
            .ancestors(pid)
            .into_iter()
            .map(|a| {
                let what = self
                    .known
                    .get(&a)
                    .map(|k| if k.cmdline.is_empty() { k.exe.clone() } else { k.cmdline.clone() })
                    .or_else(|| details.get(&a).map(|d| d.cmdline.join(" ")))
                    .unwrap_or_default();
                format!("{a} {what}")
            })
            .collect();
        let mut ev = Map::new();
        ev.insert("process.pid".into(), pid.into());
        ev.insert("process.parent_pid".into(), stat.ppid.into());
        ev.insert("process.executable.path".into(), exe.into());
        ev.insert("process.command_line".into(), cmdline.into());
        if let Some(uid) = uid {
            ev.insert("process.user.id".into(), uid.into());
        }
        ev.insert("process.ancestry".into(), Value::from(ancestry.clone()));
        if deleted {
            ev.insert("process.executable.deleted".into(), true.into());
        }
        let shown = if cmdline.is_empty() { exe } else { cmdline };
        Finding {
            kind: Kind::Process,
            severity: if deleted { Severity::Critical } else { Severity::High },
            rule: rule::EXEC,
            summary: format!(
                "process {pid} {shown:?} ({exe}{}) not allowed; started by {}",
                if deleted { ", deleted" } else { "" },
                ancestry.join(" <- ")
            ),
            evidence: ev,
            request_id: self.request_at(stat.start_ticks),
            // Depth >= 2: never a platform-started process (the runtime).
            kill: (self.mode == Mode::Enforce).then_some(pid),
            action: Action::Alert,
        }
    }

    /// Whether the next scan must read the socket tables, given the socket inodes held
    /// in scope: when one of them was never judged nor known to be quiet, or every
    /// [`TABLES_EVERY`] scans. Reading the tables is the scan's dearest part (the
    /// kernel walks its whole connection hash, sized by the machine's memory, whatever
    /// the namespace holds); fd links are cheap.
    pub fn needs_tables(&self, sockets_of: &HashMap<u32, Vec<u64>>) -> bool {
        self.scans_without_tables + 1 >= TABLES_EVERY
            || sockets_of.values().flatten().any(|i| !self.sockets_seen.contains(i) && !self.quiet.contains(i))
    }

    fn judge_sockets(&mut self, scope: &Scope, reading: &Reading) -> Vec<Finding> {
        if reading.tables_skipped {
            // Nothing new is held; what is live is unknown, so nothing is forgotten.
            self.scans_without_tables += 1;
            return Vec::new();
        }
        self.scans_without_tables = 0;
        let connections: HashSet<u64> = reading.sockets.iter().filter(|s| s.is_connection()).map(|s| s.inode).collect();
        self.quiet = reading.sockets_of.values().flatten().copied().filter(|i| !connections.contains(i)).collect();
        let mut owner: HashMap<u64, u32> = HashMap::new();
        for (&pid, inodes) in &reading.sockets_of {
            let Some(m) = scope.get(pid) else { continue };
            for &inode in inodes {
                // A socket shared across a fork: the deepest holder is the one to blame.
                let deeper = owner.get(&inode).and_then(|&o| scope.get(o)).is_none_or(|o| m.depth > o.depth);
                if deeper {
                    owner.insert(inode, pid);
                }
            }
        }
        let live: HashSet<u64> = reading.sockets.iter().map(|s| s.inode).collect();
        self.sockets_seen.retain(|i| live.contains(i));
        let mut out = Vec::new();
        let mut sockets: Vec<&Socket> = reading.sockets.iter().filter(|s| s.is_connection()).collect();
        sockets.sort_by_key(|s| s.inode);
        for s in sockets {
            let Some(&pid) = owner.get(&s.inode) else { continue };
            if !self.sockets_seen.insert(s.inode) {
                continue;
            }
            let (ip, port) = s.remote;
            if self.policy.runtime_api == Some((ip, port)) {
                continue;
            }
            if self.mode == Mode::Learn {
                self.learned_changed |= self.learned.net.insert((ip, port));
                continue;
            }
            if self.policy.allows_net(ip, port) {
                continue;
            }
            let depth = scope.get(pid).map_or(1, |m| m.depth);
            let what = self.known.get(&pid).map(|k| k.cmdline.clone()).unwrap_or_default();
            let peer = SocketAddr::new(ip, port);
            let mut ev = Map::new();
            ev.insert("process.pid".into(), pid.into());
            ev.insert("process.command_line".into(), what.clone().into());
            ev.insert("network.transport".into(), s.proto.as_str().into());
            ev.insert("network.peer.address".into(), ip.to_string().into());
            ev.insert("network.peer.port".into(), port.into());
            ev.insert("network.local.port".into(), s.local.1.into());
            let protected = depth <= 1 && !self.kill_runtime;
            out.push(Finding {
                kind: Kind::Network,
                severity: Severity::High,
                rule: rule::NET,
                summary: format!(
                    "{} connection to {peer} by process {pid} {what:?}{}",
                    s.proto.as_str(),
                    if depth <= 1 { " (the runtime or an extension)" } else { "" }
                ),
                evidence: ev,
                request_id: self.current().map(str::to_owned),
                kill: (self.mode == Mode::Enforce && !protected).then_some(pid),
                action: Action::Alert,
            });
        }
        out
    }

    /// A file under the temporary directory was written or changed mode: `elf` (starts
    /// with the ELF magic) and `executable` (a run bit set) say what it is now. A path
    /// is reported once; an allowed exec pattern matching its path allows it.
    pub fn on_file(&mut self, path: &str, elf: bool, executable: bool, mode: u32) -> Option<Finding> {
        if !(elf || executable) || self.files_seen.contains(path) {
            return None;
        }
        if self.files_seen.len() >= FILES_KEPT {
            self.files_seen.clear();
        }
        self.files_seen.insert(path.to_owned());
        if self.mode == Mode::Learn {
            self.learned_changed |= self.learned.exec.insert(path.to_owned());
            return None;
        }
        if self.policy.allows_exec(path, "") {
            return None;
        }
        let mut ev = Map::new();
        ev.insert("file.path".into(), path.into());
        ev.insert("file.mode".into(), format!("{mode:04o}").into());
        ev.insert("file.elf".into(), elf.into());
        let what = match (elf, executable) {
            (true, true) => "executable ELF binary",
            (true, false) => "ELF binary",
            _ => "executable file",
        };
        Some(Finding {
            kind: Kind::File,
            severity: if elf { Severity::High } else { Severity::Medium },
            rule: if elf { rule::FILE_ELF } else { rule::FILE_EXEC },
            summary: format!("{what} written to {path} (mode {mode:04o})"),
            evidence: ev,
            request_id: self.current().map(str::to_owned),
            kill: None,
            action: Action::Alert,
        })
    }

    /// A file was written (closed after writing, or renamed over) at `now_ms`: a
    /// finding when the policy watches it and this write starts a burst (see
    /// [`WRITE_BURST_MS`]). `learn` reports nothing: a watch is not an allow-list.
    pub fn on_write(&mut self, path: &str, now_ms: u64) -> Option<Finding> {
        if self.mode == Mode::Learn {
            return None;
        }
        let pattern = self.policy.watched(path)?.to_string();
        if let Some(last) = self.writes.get_mut(path) {
            let same_burst = now_ms.saturating_sub(*last) < WRITE_BURST_MS;
            *last = now_ms;
            if same_burst {
                return None;
            }
        } else {
            if self.writes.len() >= FILES_KEPT {
                // Ended bursts first; a flood of bursts at once is forgotten whole
                // (its files may be told again) rather than grow memory.
                self.writes.retain(|_, last| now_ms.saturating_sub(*last) < WRITE_BURST_MS);
                if self.writes.len() >= FILES_KEPT {
                    self.writes.clear();
                }
            }
            self.writes.insert(path.to_owned(), now_ms);
        }
        let mut ev = Map::new();
        ev.insert("file.path".into(), path.into());
        ev.insert("guard.watch_pattern".into(), pattern.clone().into());
        Some(Finding {
            kind: Kind::File,
            severity: Severity::High,
            rule: rule::FILE_WRITE,
            summary: format!("{path} written (watched: {pattern})"),
            evidence: ev,
            request_id: self.current().map(str::to_owned),
            kill: None,
            action: Action::Alert,
        })
    }

    /// In `learn` mode: the policy text, when something new was learned since the last
    /// call.
    pub fn take_learned(&mut self) -> Option<String> {
        std::mem::take(&mut self.learned_changed).then(|| self.learned.policy_text())
    }
}

#[cfg(test)]
mod tests;
