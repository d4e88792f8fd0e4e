//! sandbox::namespace: the environment's private mount namespace (Linux), created once
//! and joined by every process of the environment, so that they all see the same
//! `/opt`, `/var/task`, `/tmp` and `/etc/hosts`, and the host sees none of it.
//!
//! Why this shape: `unshare(CLONE_NEWNS)` in each process's `pre_exec` would give every
//! process a namespace of its own (two `/tmp`s), and re-executing the emulator binary as
//! a setup helper does not work for the library (a test binary is not the emulator). So
//! a short-lived child, forked here, unshares, mounts and reports; the parent keeps a
//! descriptor on the child's namespace (which keeps it alive without any process) and
//! every spawned process `setns`es into it in its `pre_exec`. As root the namespace is a
//! plain mount namespace; otherwise it is inside a new user namespace mapping the
//! caller's uid and gid to root, joined first.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// One mount made in the namespace, in order.
pub enum Mount {
    /// `src` bind-mounted on `dst`, read-only when `readonly` (as Lambda's `/opt` and `/var/task`).
    Bind { src: CString, dst: CString, readonly: bool },
    /// A tmpfs on `dst` with these mount options (`size=…`).
    Tmpfs { dst: CString, options: CString },
}

/// A live namespace: descriptors to join it.
pub struct Namespace {
    mnt: OwnedFd,
    user: Option<OwnedFd>,
}

/// The raw descriptors a process joins in its `pre_exec` (copyable into the closure).
#[derive(Clone, Copy)]
pub struct Entry {
    mnt: RawFd,
    user: Option<RawFd>,
}

impl Entry {
    /// Joins the namespace. Runs between fork and exec: raw system calls only.
    pub fn join(self) -> io::Result<()> {
        // SAFETY: setns takes two integers; the descriptors outlive every spawn (the
        // Namespace that owns them is held by the configuration the driver spawns from).
        unsafe {
            if let Some(u) = self.user {
                if libc::setns(u, libc::CLONE_NEWUSER) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::setns(self.mnt, libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// The steps of the setup, to say which one failed.
const STEPS: &[&str] = &["unshare", "setgroups", "uid_map", "gid_map", "make / private", "mount", "remount read-only"];

impl Namespace {
    /// Creates the namespace with `mounts` made in it.
    pub fn create(mounts: &[Mount]) -> io::Result<Namespace> {
        // One at a time: a child forked by a concurrent create would inherit this one's
        // `hold_w` (and this child that one's), and each would wait for the other's exit.
        static CREATE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = CREATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: geteuid/getegid have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let userns = uid != 0;
        // Everything the child uses is allocated before the fork: after it, the child
        // of a multi-threaded process may only make async-signal-safe calls.
        let uid_map = format!("0 {uid} 1");
        let gid_map = format!("0 {gid} 1");
        let remount_flags: Vec<libc::c_ulong> = mounts
            .iter()
            .map(|m| match m {
                Mount::Bind { src, readonly: true, .. } => locked_flags(src),
                _ => 0,
            })
            .collect();
        let (ready_r, ready_w) = pipe()?;
        let (hold_r, hold_w) = pipe()?;
        // SAFETY: see the comment above; the child only calls raw system calls on
        // memory allocated before the fork, then `_exit`s without unwinding.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // The child's copy of the parent's ends: with `hold_w` open here, the
            // read below would never see the parent close it.
            unsafe {
                libc::close(hold_w.as_raw_fd());
                libc::close(ready_r.as_raw_fd());
            }
            let result = unsafe { setup(userns, uid_map.as_bytes(), gid_map.as_bytes(), mounts, &remount_flags) };
            let mut msg = [0u8; 5];
            if let Err((step, errno)) = result {
                msg[0] = step + 1;
                msg[1..].copy_from_slice(&errno.to_ne_bytes());
            }
            unsafe {
                libc::write(ready_w.as_raw_fd(), msg.as_ptr().cast(), msg.len());
                // Wait until the parent holds the namespace (it closes its end).
                let mut b = [0u8; 1];
                libc::read(hold_r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        drop(ready_w);
        drop(hold_r);
        let result = (|| {
            let mut msg = [0u8; 5];
            let n = unsafe { libc::read(ready_r.as_raw_fd(), msg.as_mut_ptr().cast(), msg.len()) };
            if n != msg.len() as isize {
                return Err(io::Error::other("the namespace setup process ended early"));
            }
            if msg[0] != 0 {
                let errno = i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]);
                let step = STEPS.get(usize::from(msg[0] - 1)).copied().unwrap_or("setup");
                let e = io::Error::from_raw_os_error(errno);
                return Err(io::Error::new(e.kind(), format!("{step}: {e}")));
            }
            let mnt = open_ns(pid, "mnt")?;
            let user = if userns { Some(open_ns(pid, "user")?) } else { None };
            Ok(Namespace { mnt, user })
        })();
        drop(hold_w);
        let mut status = 0;
        // SAFETY: waits for our own child; it exits as soon as `hold_w` is closed.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        result
    }

    /// The descriptors for [`Entry::join`].
    pub fn entry(&self) -> Entry {
        Entry { mnt: self.mnt.as_raw_fd(), user: self.user.as_ref().map(AsRawFd::as_raw_fd) }
    }

    /// Whether it lives in a user namespace of its own (the emulator is not root).
    pub fn in_user_namespace(&self) -> bool {
        self.user.is_some()
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors, which we then own.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

fn open_ns(pid: libc::pid_t, kind: &str) -> io::Result<OwnedFd> {
    let path = format!("/proc/{pid}/ns/{kind}");
    Ok(std::fs::File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?.into())
}

/// The flags of the mount holding `path` that a remount inside a user namespace must
/// keep (the kernel refuses to clear them there).
fn locked_flags(path: &CString) -> libc::c_ulong {
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs writes into `st`, a properly sized struct.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let pairs = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    pairs.iter().filter(|(st_flag, _)| st.f_flag & st_flag != 0).fold(0, |acc, (_, ms)| acc | ms)
}

/// Runs in the forked child: unshare, map ids (user namespace), mount.
///
/// # Safety
/// Only async-signal-safe calls on memory allocated before the fork.
unsafe fn setup(
    userns: bool,
    uid_map: &[u8],
    gid_map: &[u8],
    mounts: &[Mount],
    remount_flags: &[libc::c_ulong],
) -> Result<(), (u8, i32)> {
    let errno = || io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let flags = if userns { libc::CLONE_NEWUSER | libc::CLONE_NEWNS } else { libc::CLONE_NEWNS };
    if libc::unshare(flags) != 0 {
        return Err((0, errno()));
    }
    if userns {
        write_file(c"/proc/self/setgroups", b"deny").map_err(|e| (1, e))?;
        write_file(c"/proc/self/uid_map", uid_map).map_err(|e| (2, e))?;
        write_file(c"/proc/self/gid_map", gid_map).map_err(|e| (3, e))?;
    }
    // Nothing mounted here may propagate back to the host.
    let none = std::ptr::null();
    if libc::mount(none, c"/".as_ptr(), none, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
        return Err((4, errno()));
    }
    for (m, extra) in mounts.iter().zip(remount_flags) {
        match m {
            Mount::Bind { src, dst, readonly } => {
                let f = libc::MS_BIND | libc::MS_REC;
                if libc::mount(src.as_ptr(), dst.as_ptr(), none, f, std::ptr::null()) != 0 {
                    return Err((5, errno()));
                }
                let f = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | extra;
                if *readonly && libc::mount(none, dst.as_ptr(), none, f, std::ptr::null()) != 0 {
                    return Err((6, errno()));
                }
            }
            Mount::Tmpfs { dst, options } => {
                let f = libc::MS_NOSUID | libc::MS_NODEV;
                if libc::mount(c"tmpfs".as_ptr(), dst.as_ptr(), c"tmpfs".as_ptr(), f, options.as_ptr().cast()) != 0 {
                    return Err((5, errno()));
                }
            }
        }
    }
    Ok(())
}

/// # Safety
/// Async-signal-safe: open, write, close.
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> Result<(), i32> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    let n = libc::write(fd, data.as_ptr().cast(), data.len());
    let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    libc::close(fd);
    if n != data.len() as isize {
        return Err(e);
    }
    Ok(())
}
