//! memory: the environment's memory limit and its measurement.
//!
//! Owns the choice of method and says which one measured: a cgroup v1 `memory`
//! controller when one can be created (the kernel enforces the limit and keeps the
//! peak, as in Lambda's microVMs), else sampling the resident set of every process of
//! the environment every few milliseconds and killing them all past the limit.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CGROUP_MEMORY_ROOT: &str = "/sys/fs/cgroup/memory";
const SAMPLE_EVERY: Duration = Duration::from_millis(5);
const MIB: u64 = 1024 * 1024;

/// How memory is measured and limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Cgroup,
    RssSampling,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Cgroup => "cgroup v1 memory controller",
            Method::RssSampling => "RSS sampling every 5 ms",
        })
    }
}

pub struct Memory {
    limit_bytes: u64,
    cgroup: Option<PathBuf>,
    /// Sampling state: the environment's process groups, the peak and the alarm.
    pgids: Arc<Mutex<Vec<i32>>>,
    peak: Arc<AtomicU64>,
    exceeded: Arc<AtomicBool>,
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

    pub fn cgroup_dir(&self) -> Option<&Path> {
        self.cgroup.as_deref()
    }

    /// Tracks a process group for sampling.
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
        let bytes = match &self.cgroup {
            Some(dir) => read_u64(&dir.join("memory.max_usage_in_bytes")).unwrap_or(0),
            None => self.peak.load(Ordering::Relaxed),
        };
        (bytes + MIB / 2) / MIB
    }

    /// A new environment instance begins: its peak starts from now.
    pub fn reset_peak(&mut self) {
        match &self.cgroup {
            Some(dir) => {
                let _ = std::fs::write(dir.join("memory.max_usage_in_bytes"), "0");
            }
            None => self.peak.store(0, Ordering::Relaxed),
        }
        self.exceeded.store(false, Ordering::Relaxed);
    }

    /// Whether the limit killed a process since the last call.
    pub fn take_oom(&mut self) -> bool {
        match &self.cgroup {
            Some(dir) => {
                let kills = std::fs::read_to_string(dir.join("memory.oom_control"))
                    .ok()
                    .and_then(|s| {
                        s.lines().find_map(|l| {
                            l.strip_prefix("oom_kill ")
                                .and_then(|v| v.trim().parse::<u64>().ok())
                        })
                    })
                    .unwrap_or(0);
                let new = kills > self.oom_seen;
                self.oom_seen = kills;
                new
            }
            None => self.exceeded.swap(false, Ordering::Relaxed),
        }
    }

    /// Starts the sampler (only without a cgroup). `on_exceeded` is called once per
    /// breach, after which the caller kills the environment.
    pub fn start_sampler(&self, on_exceeded: impl Fn() + Send + 'static) {
        if self.cgroup.is_some() {
            return;
        }
        let (pgids, peak, exceeded, limit) = (
            self.pgids.clone(),
            self.peak.clone(),
            self.exceeded.clone(),
            self.limit_bytes,
        );
        let page = page_size();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let groups = match pgids.lock() {
                    Ok(g) => g.clone(),
                    Err(_) => return,
                };
                if groups.is_empty() {
                    continue;
                }
                let used = rss_of_groups(&groups, page);
                peak.fetch_max(used, Ordering::Relaxed);
                if used > limit && !exceeded.swap(true, Ordering::Relaxed) {
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

/// Removes empty groups that earlier runs left behind (rmdir of a busy group fails).
pub(crate) fn remove_stale_groups(parent: &Path) {
    if let Ok(entries) = std::fs::read_dir(parent) {
        for e in entries.flatten() {
            let empty = std::fs::read_to_string(e.path().join("cgroup.procs"))
                .is_ok_and(|s| s.trim().is_empty());
            if empty {
                let _ = std::fs::remove_dir(e.path());
            }
        }
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

/// Sum of the resident sets of every process in `groups` (children included).
fn rss_of_groups(groups: &[i32], page: u64) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: getpgid only reads the process table.
        let pgid = unsafe { libc::getpgid(pid) };
        if !groups.contains(&pgid) {
            continue;
        }
        if let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) {
            if let Some(rss) = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
            {
                total += rss * page;
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
        // SAFETY: getpgid(0) reads our own process group.
        let me = unsafe { libc::getpgid(0) };
        assert!(rss_of_groups(&[me], page_size()) > MIB);
    }

    #[test]
    fn method_is_reported() {
        let m = Memory::new(&format!("unit-{}", std::process::id()), 64, true);
        let expect = if Path::new(CGROUP_MEMORY_ROOT)
            .join("tandem-emulator")
            .exists()
            && m.cgroup.is_some()
        {
            Method::Cgroup
        } else {
            Method::RssSampling
        };
        assert_eq!(m.method(), expect);
        assert!(!m.method().to_string().is_empty());
    }
}
