//! freeze: stops every process of the environment between invocations, as Lambda
//! freezes its microVM, and resumes them at the next one.
//!
//! With a cgroup v1 `freezer` the kernel freezes the whole group, children included;
//! without one, each process group gets SIGSTOP and SIGCONT.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CGROUP_FREEZER_ROOT: &str = "/sys/fs/cgroup/freezer";

pub struct Freezer {
    cgroup: Option<PathBuf>,
}

impl Freezer {
    pub fn new(name: &str) -> Self {
        let cgroup = (|| {
            let parent = Path::new(CGROUP_FREEZER_ROOT).join("tandem-emulator");
            std::fs::create_dir_all(&parent).ok()?;
            crate::memory::remove_stale_groups(&parent);
            let dir = parent.join(name);
            std::fs::create_dir(&dir).ok()?;
            Some(dir)
        })();
        Self { cgroup }
    }

    /// The file a new process writes `0` to, to join the freezer group.
    pub fn procs_file(&self) -> Option<std::ffi::CString> {
        let p = self.cgroup.as_ref()?.join("cgroup.procs");
        std::ffi::CString::new(p.into_os_string().into_encoded_bytes()).ok()
    }

    pub fn uses_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    pub fn freeze(&self, pgids: &[i32]) {
        match &self.cgroup {
            Some(dir) => set_state(dir, "FROZEN"),
            None => signal_groups(pgids, libc::SIGSTOP),
        }
    }

    pub fn thaw(&self, pgids: &[i32]) {
        match &self.cgroup {
            Some(dir) => set_state(dir, "THAWED"),
            None => signal_groups(pgids, libc::SIGCONT),
        }
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        if let Some(dir) = &self.cgroup {
            set_state(dir, "THAWED");
            crate::memory::remove_when_empty(dir);
        }
    }
}

fn set_state(dir: &Path, state: &str) {
    let file = dir.join("freezer.state");
    if std::fs::write(&file, state).is_err() {
        return;
    }
    // FREEZING is transitional; wait (bounded) until the kernel reports the state.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        match std::fs::read_to_string(&file) {
            Ok(s) if s.trim() == state => return,
            Ok(_) => std::thread::sleep(Duration::from_micros(100)),
            Err(_) => return,
        }
    }
}

fn signal_groups(pgids: &[i32], sig: i32) {
    for &g in pgids {
        // SAFETY: kill has no memory-safety preconditions; a gone group yields ESRCH.
        unsafe {
            libc::kill(-g, sig);
        }
    }
}
