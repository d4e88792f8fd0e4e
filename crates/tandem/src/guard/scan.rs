//! guard::scan: one reading of `/proc` for the [`Engine`]: every process's `stat` (the
//! tree needs every parent), the details of the processes in scope the engine does not
//! know yet (`exe`, `cmdline`, `status`), the socket inodes of every process in scope
//! (`fd/*` links), and the socket tables when a process in scope holds a socket the
//! engine has not judged yet (or every few scans, see [`Engine::needs_tables`]). The
//! I/O edge: every read may fail (a process ends between two reads), and a failed read
//! only leaves that process or table out of this scan.

use super::engine::{Details, Engine, Reading};
use super::procfs::{self, Proto, Stat};
use super::tree::Scope;
use std::fs;
use std::path::Path;

const PROC: &str = "/proc";

/// Socket tables read, with their transport.
const TABLES: &[(&str, Proto)] =
    &[("net/tcp", Proto::Tcp), ("net/tcp6", Proto::Tcp), ("net/udp", Proto::Udp), ("net/udp6", Proto::Udp)];

/// Every process's `stat` (threads are not listed in `/proc`'s top level).
pub fn stats() -> Vec<Stat> {
    let Ok(dir) = fs::read_dir(PROC) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        if let Ok(text) = fs::read_to_string(Path::new(PROC).join(pid).join("stat")) {
            out.extend(procfs::parse_stat(&text));
        }
    }
    out
}

/// One process's `stat`, read again (before a kill: the pid may have been reused).
pub fn stat_of(pid: u32) -> Option<Stat> {
    procfs::parse_stat(&fs::read_to_string(format!("{PROC}/{pid}/stat")).ok()?)
}

/// The guard's own parent: the root of its scope.
pub fn parent() -> Option<u32> {
    procfs::parse_stat(&fs::read_to_string(format!("{PROC}/self/stat")).ok()?).map(|s| s.ppid)
}

/// Ticks since boot (`/proc/uptime`), the clock of the processes' start times.
pub fn uptime_ticks() -> Option<u64> {
    procfs::parse_uptime_ticks(&fs::read_to_string(format!("{PROC}/uptime")).ok()?)
}

fn details(pid: u32) -> Details {
    let base = Path::new(PROC).join(pid.to_string());
    Details {
        exe: fs::read_link(base.join("exe")).ok().map(|p| procfs::parse_exe(&p.to_string_lossy())),
        cmdline: fs::read(base.join("cmdline")).map(|b| procfs::parse_cmdline(&b)).unwrap_or_default(),
        uid: fs::read_to_string(base.join("status")).ok().and_then(|s| procfs::parse_status_uid(&s)),
    }
}

fn sockets_of(pid: u32) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(format!("{PROC}/{pid}/fd")) else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter_map(|l| l.to_str().and_then(procfs::socket_inode))
        .collect()
}

/// Reads what `engine` needs for one scan.
pub fn read(engine: &Engine) -> (Scope, Reading) {
    let stats = stats();
    let scope = engine.scope(&stats);
    let mut reading = Reading { stats, ..Reading::default() };
    for pid in engine.unknown(&scope, &reading.stats) {
        reading.details.insert(pid, details(pid));
    }
    for (pid, _) in scope.iter() {
        let inodes = sockets_of(pid);
        if !inodes.is_empty() {
            reading.sockets_of.insert(pid, inodes);
        }
    }
    if !reading.sockets_of.is_empty() {
        if engine.needs_tables(&reading.sockets_of) {
            for (table, proto) in TABLES {
                if let Ok(text) = fs::read_to_string(Path::new(PROC).join(table)) {
                    reading.sockets.extend(procfs::parse_net(&text, *proto));
                }
            }
        } else {
            reading.tables_skipped = true;
        }
    }
    (scope, reading)
}
