//! process: starting the runtime and extension processes as Lambda does (their own
//! environment, their own process group, inside the environment's cgroups and its
//! sandbox's mount namespace) and capturing what they write.
//!
//! Every line a process writes to stdout or stderr is stamped when it is read and
//! sent to the telemetry hub in order. A barrier lets the driver make sure that what
//! a process wrote before an API call is in the stream before the platform record
//! that call causes (for example, the function's last lines before `runtimeDone`).

use crate::clock::Clock;
use crate::sandbox::Entry;
use crate::telemetry::{Hub, Line, Msg, Source};
use std::ffi::CString;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// Lines longer than this are split, as Lambda caps a log record.
pub const MAX_LINE: usize = 256 * 1024;

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

/// A started process.
pub struct Started {
    pub child: Child,
    pub pid: i32,
    pub capture: Capture,
}

/// Handle on a process's output capture.
#[derive(Clone)]
pub struct Capture {
    barrier: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

impl Capture {
    /// Resolves once everything the process wrote so far is in the hub's stream.
    pub async fn sync(&self) {
        let (tx, rx) = oneshot::channel();
        if self.barrier.send(tx).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts `spec` in its own process group, joined to `cgroups` and to the sandbox's
/// namespace (when there is one) before it runs.
pub fn spawn(
    spec: &Spec,
    sandbox: Option<Entry>,
    source: Source,
    hub: &Hub,
    clock: Clock,
    cgroups: &[CString],
) -> io::Result<Started> {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // Joining a mount namespace moves the working directory to its root, and std
    // changes directory before `pre_exec`: inside the sandbox, the closure does it.
    let cwd = match (&spec.cwd, sandbox) {
        (Some(cwd), Some(_)) => Some(
            CString::new(cwd.as_os_str().as_encoded_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the working directory"))?,
        ),
        (Some(cwd), None) => {
            cmd.current_dir(cwd);
            None
        }
        (None, _) => None,
    };
    let paths: Vec<CString> = cgroups.to_vec();
    // SAFETY: the closure runs between fork and exec; it only calls the
    // async-signal-safe open/write/close/setns/chdir on data allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for p in &paths {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                libc::close(fd);
                if !ok {
                    return Err(io::Error::last_os_error());
                }
            }
            // After the cgroups: their files are the host's.
            if let Some(entry) = sandbox {
                entry.join()?;
            }
            if let Some(dir) = &cwd {
                if libc::chdir(dir.as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child
        .id()
        .map(|p| p as i32)
        .ok_or_else(|| io::Error::other("the process exited before it could be tracked"))?;
    let out = child.stdout.take().ok_or_else(|| io::Error::other("no stdout pipe"))?;
    let err = child.stderr.take().ok_or_else(|| io::Error::other("no stderr pipe"))?;
    let out = pipe::Receiver::from_owned_fd(out.into_owned_fd()?)?;
    let err = pipe::Receiver::from_owned_fd(err.into_owned_fd()?)?;
    let (barrier, barrier_rx) = mpsc::unbounded_channel();
    tokio::spawn(capture(out, err, source, hub.clone(), clock, barrier_rx));
    Ok(Started { child, pid, capture: Capture { barrier } })
}

struct Stream {
    rx: pipe::Receiver,
    partial: Vec<u8>,
    open: bool,
}

impl Stream {
    /// Reads what is available now; returns complete lines. `Ok(false)` at EOF.
    fn drain(&mut self, buf: &mut [u8], now_us: u64, source: Source, lines: &mut Vec<Line>) -> bool {
        loop {
            match self.rx.try_read(buf) {
                Ok(0) => {
                    self.open = false;
                    if !self.partial.is_empty() {
                        let text = String::from_utf8_lossy(&self.partial).into_owned();
                        self.partial.clear();
                        lines.push(Line { time_us: now_us, source, text });
                    }
                    return false;
                }
                Ok(n) => split_lines(&mut self.partial, &buf[..n], now_us, source, lines),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.open = false;
                    return false;
                }
            }
        }
    }
}

fn split_lines(partial: &mut Vec<u8>, data: &[u8], now_us: u64, source: Source, lines: &mut Vec<Line>) {
    let mut rest = data;
    while let Some(i) = memchr(b'\n', rest) {
        partial.extend_from_slice(&rest[..i]);
        rest = &rest[i + 1..];
        if partial.last() == Some(&b'\r') {
            partial.pop();
        }
        lines.push(Line { time_us: now_us, source, text: String::from_utf8_lossy(partial).into_owned() });
        partial.clear();
    }
    partial.extend_from_slice(rest);
    while partial.len() >= MAX_LINE {
        let tail = partial.split_off(MAX_LINE);
        lines.push(Line { time_us: now_us, source, text: String::from_utf8_lossy(partial).into_owned() });
        *partial = tail;
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

async fn capture(
    out: pipe::Receiver,
    err: pipe::Receiver,
    source: Source,
    hub: Hub,
    clock: Clock,
    mut barrier: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
) {
    let mut streams =
        [Stream { rx: out, partial: Vec::new(), open: true }, Stream { rx: err, partial: Vec::new(), open: true }];
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut lines = Vec::new();
        let ack = {
            let [a, b] = &mut streams;
            tokio::select! {
                r = a.rx.readable(), if a.open => { if r.is_err() { a.open = false; } None }
                r = b.rx.readable(), if b.open => { if r.is_err() { b.open = false; } None }
                ack = barrier.recv() => ack,
                else => break,
            }
        };
        let now_us = clock.epoch_us(Instant::now());
        for s in streams.iter_mut().filter(|s| s.open) {
            s.drain(&mut buf, now_us, source, &mut lines);
        }
        if !lines.is_empty() {
            hub.send(Msg::Lines(lines));
        }
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
        if streams.iter().all(|s| !s.open) {
            break;
        }
    }
    // Answer barriers that arrive after the pipes closed: nothing more will come.
    barrier.close();
    while let Some(ack) = barrier.recv().await {
        let _ = ack.send(());
    }
}

/// Sends `signal` to the process group `pgid`. A group that is gone is not an error.
pub fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_caps_their_length() {
        let mut partial = Vec::new();
        let mut lines = Vec::new();
        split_lines(&mut partial, b"a\r\nb\nc", 1, Source::Function, &mut lines);
        assert_eq!(lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(partial, b"c");
        split_lines(&mut partial, b"d\n", 2, Source::Function, &mut lines);
        assert_eq!(lines[2].text, "cd");
        let big = vec![b'x'; MAX_LINE * 2 + 10];
        let mut lines = Vec::new();
        split_lines(&mut partial, &big, 3, Source::Extension, &mut lines);
        assert_eq!(lines.len(), 2);
        assert_eq!(partial.len(), 10);
    }
}
