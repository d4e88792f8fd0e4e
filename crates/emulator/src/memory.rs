//! memory: the environment's memory limit and its measurement.
//!
//! Owns the choice of method and says which one measured: a cgroup v1 `memory`
//! controller when one can be created (the kernel enforces the limit, kills past it and
//! keeps the peak of what it charged, as in Lambda's microVMs), else sampling, which
//! then also enforces the limit. The resident sets of the environment's process trees
//! are sampled in both cases: a cgroup does not charge pages that were already cached
//! (a binary's text), which a fresh microVM would count, so the peak reported is the
//! larger of the two.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CGROUP_MEMORY_ROOT: &str = "/sys/fs/cgroup/memory";
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
const MIB: u64 = 1024 * 1024;

/// How memory is measured and limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A cgroup v1 memory controller: limit enforced by the kernel, peak read from it.
    Cgroup,
    /// The processes' RSS, sampled; the limit enforced by killing the largest.
    RssSampling,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Cgroup => "cgroup v1 memory controller",
            Method::RssSampling => "RSS sampling every 10 ms",
        })
    }
}

pub struct Memory {
    limit_bytes: u64,
    cgroup: Option<PathBuf>,
    /// Sampling state: the environment's processes, the peak and the alarm.
    pgids: Arc<Mutex<Vec<i32>>>,
    peak: Arc<AtomicU64>,
    exceeded: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    oom_seen: u64,
}

impl Memory {
    /// Creates the memory cgroup `name` with `limit_mb`, or falls back to sampling.
    pub fn new(name: &str, limit_mb: u64, enforce: bool) -> Self {
        let limit_bytes = limit_mb * MIB;
        let cgroup = create_cgroup(name, limit_bytes, enforce).ok();
        Self {
            limit_bytes,
            cgroup,
            pgids: Arc::default(),
            peak: Arc::default(),
            exceeded: Arc::default(),
            paused: Arc::default(),
            oom_seen: 0,
        }
    }

    pub fn method(&self) -> Method {
        if self.cgroup.is_some() {
            Method::Cgroup
        } else {
            Method::RssSampling
        }
    }

    /// The file a new process writes `0` to, to join the cgroup before it runs.
    pub fn procs_file(&self) -> Option<CString> {
        let p = self.cgroup.as_ref()?.join("cgroup.procs");
        CString::new(p.into_os_string().into_encoded_bytes()).ok()
    }

    /// Tracks a process (and its descendants) for sampling.
    pub fn track(&self, pgid: i32) {
        if let Ok(mut p) = self.pgids.lock() {
            p.push(pgid);
        }
    }

    pub fn untrack(&self, pgid: i32) {
        if let Ok(mut p) = self.pgids.lock() {
            p.retain(|&g| g != pgid);
        }
    }

    /// Peak memory of the environment since the last reset, in MB (rounded to nearest).
    pub fn peak_mb(&self) -> u64 {
        let charged =
            self.cgroup.as_ref().and_then(|dir| read_u64(&dir.join("memory.max_usage_in_bytes"))).unwrap_or(0);
        let resident = self.peak.load(Ordering::Relaxed);
        (charged.max(resident) + MIB / 2) / MIB
    }

    /// Samples the resident sets now (a report is about to be written).
    pub fn sample_now(&self) {
        let roots = self.pgids.lock().map(|g| g.clone()).unwrap_or_default();
        if !roots.is_empty() {
            self.peak.fetch_max(rss_of_trees(&roots, page_size()), Ordering::Relaxed);
        }
    }

    /// The tracked process whose tree holds the most memory.
    pub fn largest(&self) -> Option<i32> {
        let roots = self.pgids.lock().map(|g| g.clone()).unwrap_or_default();
        let page = page_size();
        roots.into_iter().max_by_key(|&p| rss_of_trees(&[p], page))
    }

    /// Stops sampling while the environment is frozen (nothing can change).
    pub fn pause(&self, on: bool) {
        self.paused.store(on, Ordering::Relaxed);
    }

    /// A new environment instance begins: its peak starts from now.
    pub fn reset_peak(&mut self) {
        if let Some(dir) = &self.cgroup {
            let _ = std::fs::write(dir.join("memory.max_usage_in_bytes"), "0");
        }
        self.peak.store(0, Ordering::Relaxed);
        self.exceeded.store(false, Ordering::Relaxed);
    }

    /// Whether the limit killed a process since the last call.
    pub fn take_oom(&mut self) -> bool {
        match &self.cgroup {
            Some(dir) => {
                let kills = std::fs::read_to_string(dir.join("memory.oom_control"))
                    .ok()
                    .and_then(|s| {
                        s.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse::<u64>().ok()))
                    })
                    .unwrap_or(0);
                let new = kills > self.oom_seen;
                self.oom_seen = kills;
                new
            }
            None => self.exceeded.swap(false, Ordering::Relaxed),
        }
    }

    /// Starts the sampler. Without a cgroup and with `enforce`, `on_exceeded` is
    /// called once per breach, after which the caller kills the environment.
    pub fn start_sampler(&self, enforce: bool, on_exceeded: impl Fn() + Send + 'static) {
        let enforce = enforce && self.cgroup.is_none();
        let (pgids, peak, exceeded, paused) =
            (self.pgids.clone(), self.peak.clone(), self.exceeded.clone(), self.paused.clone());
        let limit = self.limit_bytes;
        let page = page_size();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                if paused.load(Ordering::Relaxed) {
                    continue;
                }
                let roots = match pgids.lock() {
                    Ok(g) => g.clone(),
                    Err(_) => return,
                };
                if roots.is_empty() {
                    continue;
                }
                let used = rss_of_trees(&roots, page);
                peak.fetch_max(used, Ordering::Relaxed);
                if enforce && used > limit && !exceeded.swap(true, Ordering::Relaxed) {
                    on_exceeded();
                }
            }
        });
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Some(dir) = &self.cgroup {
            remove_when_empty(dir);
        }
    }
}

fn create_cgroup(name: &str, limit_bytes: u64, enforce: bool) -> std::io::Result<PathBuf> {
    let parent = Path::new(CGROUP_MEMORY_ROOT).join("tandem-emulator");
    std::fs::create_dir_all(&parent)?;
    remove_stale_groups(&parent);
    let dir = parent.join(name);
    std::fs::create_dir(&dir)?;
    let configured = (|| {
        if enforce {
            std::fs::write(dir.join("memory.limit_in_bytes"), limit_bytes.to_string())?;
            // No swap: a process over the limit is killed, as in Lambda.
            let _ = std::fs::write(dir.join("memory.swappiness"), "0");
        }
        Ok::<_, std::io::Error>(())
    })();
    if let Err(e) = configured {
        let _ = std::fs::remove_dir(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// Removes groups that emulators which are gone left behind. A group is named
/// `<pid>-<n>` after the emulator process that made it; groups of a live process (this
/// one included, and other test processes running in parallel) are never touched, and
/// rmdir of a group that still holds processes fails anyway.
pub(crate) fn remove_stale_groups(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(owner) = name.to_str().and_then(|n| n.split('-').next()).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        let _ = std::fs::remove_dir(e.path());
    }
}

/// Removes a cgroup once its killed processes are gone (bounded wait). A group that
/// stays busy is left for the next start's clean-up of stale groups.
pub(crate) fn remove_when_empty(dir: &Path) {
    for _ in 0..100 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Sum of the resident sets of the processes `roots` and their descendants.
fn rss_of_trees(roots: &[i32], page: u64) -> u64 {
    let mut total = 0;
    let mut stack: Vec<(i32, u8)> = roots.iter().map(|&p| (p, 0)).collect();
    while let Some((pid, depth)) = stack.pop() {
        if let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) {
            if let Some(rss) = statm.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()) {
                total += rss * page;
            }
        }
        // Wrapper scripts and shells start children; bounded depth keeps a fork bomb cheap.
        if depth >= 8 {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if let Ok(children) = std::fs::read_to_string(t.path().join("children")) {
                stack.extend(children.split_whitespace().filter_map(|c| c.parse().ok()).map(|c| (c, depth + 1)));
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_sees_this_process() {
        assert!(rss_of_trees(&[std::process::id() as i32], page_size()) > MIB);
    }

    #[test]
    fn method_is_reported() {
        let m = Memory::new(&format!("unit-{}", std::process::id()), 64, true);
        let expect = if Path::new(CGROUP_MEMORY_ROOT).join("tandem-emulator").exists() && m.cgroup.is_some() {
            Method::Cgroup
        } else {
            Method::RssSampling
        };
        assert_eq!(m.method(), expect);
        assert!(!m.method().to_string().is_empty());
    }
}
