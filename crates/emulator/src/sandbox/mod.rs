//! sandbox: the file system Lambda gives an environment, built on the host: the layers
//! merged onto `/opt` (their `extensions/` launched), the code on `/var/task`, an
//! `/etc/hosts` where `sandbox` and `sandbox.localdomain` are the loopback address, a
//! private `/tmp` of the ephemeral storage's size, all in one private mount namespace
//! (`namespace.rs`) that every process of the environment joins. Layers and code are
//! unpacked (`layers.rs`) into a staging directory removed with the sandbox.

mod layers;
mod namespace;

pub use namespace::Entry;

use crate::config::{extensions_in, Config};
use namespace::{Mount, Namespace};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where Lambda mounts the layers.
pub const OPT: &str = "/opt";
/// Where Lambda mounts the function's code (`LAMBDA_TASK_ROOT`).
pub const TASK: &str = "/var/task";

/// The hosts file of the sandbox: Lambda resolves these names for every process.
const HOSTS: &str = "127.0.0.1\tlocalhost sandbox sandbox.localdomain\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// An environment's sandbox: its namespace (when one could be made) and staging files.
pub struct Sandbox {
    ns: Option<Namespace>,
    staging: PathBuf,
    note: String,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.note)
    }
}

static STAGING: AtomicU64 = AtomicU64::new(0);

impl Sandbox {
    /// Builds the sandbox `cfg` asks for and adds the layers' extensions
    /// (`/opt/extensions/*`, by name) before `cfg.extensions`. Blocking (unpacks files).
    pub fn prepare(cfg: &mut Config) -> Result<Sandbox, String> {
        let packaged = !cfg.layers.is_empty() || cfg.code.is_some();
        let staging = std::env::temp_dir().join(format!(
            "tandem-emulator-sandbox-{}-{}",
            std::process::id(),
            STAGING.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        // From here on, dropping `sb` removes the staging directory.
        let mut sb = Sandbox { ns: None, staging, note: String::new() };
        let mut mounts = Vec::new();
        let hosts = sb.staging.join("hosts");
        std::fs::write(&hosts, HOSTS).map_err(|e| format!("cannot write {}: {e}", hosts.display()))?;
        mounts.push(bind(&hosts, Path::new("/etc/hosts"), true)?);
        if !cfg.layers.is_empty() {
            let opt = sb.staging.join("opt");
            for layer in &cfg.layers {
                layers::merge(layer, &opt).map_err(|e| format!("cannot unpack the layer {}: {e}", layer.display()))?;
            }
            let found = match extensions_in(&opt.join("extensions")) {
                Ok(found) => found,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(format!("cannot list the layers' extensions: {e}")),
            };
            let names = found.iter().filter_map(|p| p.file_name()).map(|n| Path::new(OPT).join("extensions").join(n));
            cfg.extensions.splice(0..0, names);
            mounts.push(bind(&opt, Path::new(OPT), true)?);
        }
        if let Some(code) = &cfg.code {
            let dir = if code.is_dir() {
                code.clone()
            } else {
                let task = sb.staging.join("task");
                layers::merge(code, &task).map_err(|e| format!("cannot unpack the code {}: {e}", code.display()))?;
                task
            };
            mounts.push(bind(&dir, Path::new(TASK), true)?);
        }
        if let Some(mb) = cfg.ephemeral_storage_mb {
            mounts.push(Mount::Tmpfs {
                dst: cstring(Path::new("/tmp"))?,
                options: cstr(&format!("size={mb}m,mode=1777"))?,
            });
        }
        if cfg.extensions.len() > crate::lifecycle::MAX_EXTENSIONS {
            return Err(format!(
                "at most {} extensions can run, {} were given (layers included)",
                crate::lifecycle::MAX_EXTENSIONS,
                cfg.extensions.len()
            ));
        }
        match mount_points(&mounts).and_then(|()| Namespace::create(&mounts)) {
            Ok(ns) => {
                sb.note = format!(
                    "a private mount namespace{} (sandbox.localdomain is 127.0.0.1{}{}{})",
                    if ns.in_user_namespace() { " in a user namespace" } else { "" },
                    if cfg.layers.is_empty() { "" } else { ", layers on /opt" },
                    if cfg.code.is_some() { ", code on /var/task" } else { "" },
                    cfg.ephemeral_storage_mb.map(|mb| format!(", /tmp private ({mb} MB)")).unwrap_or_default(),
                );
                sb.ns = Some(ns);
            }
            Err(e) if packaged || cfg.ephemeral_storage_mb.is_some() => {
                return Err(format!("--layer, --code and a private /tmp need a private mount namespace: {e}"));
            }
            Err(e) => {
                sb.note = format!("the host's file system (no private mount namespace: {e})");
                eprintln!("tandem-emulator: no private mount namespace ({e}): /etc/hosts and /tmp are the host's");
            }
        }
        Ok(sb)
    }

    /// What the processes join, if the namespace exists.
    pub fn entry(&self) -> Option<Entry> {
        self.ns.as_ref().map(Namespace::entry)
    }

    /// One line: what the processes see.
    pub fn describe(&self) -> &str {
        &self.note
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

fn cstring(p: &Path) -> Result<CString, String> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} contains a NUL byte", p.display()))
}

fn bind(src: &Path, dst: &Path, readonly: bool) -> Result<Mount, String> {
    Ok(Mount::Bind { src: cstring(src)?, dst: cstring(dst)?, readonly })
}

/// Lambda's mount points may be missing on the host (`/var/task`): they are created,
/// empty, once; the host never sees what is mounted on them.
fn mount_points(mounts: &[Mount]) -> std::io::Result<()> {
    for m in mounts {
        if let Mount::Bind { src, dst, .. } = m {
            use std::os::unix::ffi::OsStrExt;
            let dst = Path::new(std::ffi::OsStr::from_bytes(dst.as_bytes()));
            let src = Path::new(std::ffi::OsStr::from_bytes(src.as_bytes()));
            if src.is_dir() && !dst.exists() {
                std::fs::create_dir_all(dst)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create {}: {e}", dst.display())))?;
            }
        }
    }
    Ok(())
}
