//! guard: the security agent. It watches what the function does from inside its
//! sandbox, with no privilege beyond the sandbox's (no ptrace, no eBPF, no netlink):
//! the processes it starts and the connections they open (scanning `/proc`), and the
//! executables dropped in the temporary directory (inotify). Each finding is a record
//! like any other, through every configured sink, plus a rate-limited diagnostic line;
//! `enforce` kills the offending process. Off by default.
//!
//! Sans-I/O core: [`procfs`] (the kernel's text), [`tree`] (the scope rule),
//! [`policy`] (allow-lists, learned policies), [`finding`] (findings as records),
//! [`engine`] (the judgement and its memory), [`config`] (settings). I/O edge:
//! [`scan`] (reads `/proc`), [`watch`] (inotify on the temporary directory) and
//! [`agent`] (the thread that runs them, kills, and hands findings to the pipeline).

pub mod agent;
pub mod config;
pub mod engine;
pub mod finding;
pub mod policy;
pub mod procfs;
pub mod scan;
pub mod tree;
pub mod watch;

pub use agent::Agent;
pub use config::{GuardConfig, Mode};
