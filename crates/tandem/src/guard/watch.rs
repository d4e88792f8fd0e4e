//! guard::watch: inotify on the temporary directory and on the directories of the
//! watched files. In the temporary tree (the directory and each directory created in
//! it after the guard started; never walked: it may hold gigabytes that are none of
//! the function's business) each file created, written, moved in or changing mode is
//! reported with what it is now (an ELF binary, an executable file); in every watched
//! directory, each file written (closed after a write, or renamed over) is reported as
//! a write, for the engine to match against the watched files. The I/O edge (inotify's
//! syscalls through the `inotify` crate, so that tandem keeps `#![forbid(unsafe_code)]`).

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// At most this many directories are watched (each costs the kernel a watch).
const MAX_DIRS: usize = 1024;

/// What a file under the watched directory is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// Its path.
    pub path: String,
    /// Starts with the ELF magic.
    pub elf: bool,
    /// A run bit is set.
    pub executable: bool,
    /// Its permission bits.
    pub mode: u32,
}

/// One file an event batch touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    /// Its path (the watched directory joined with the name).
    pub path: String,
    /// Written: closed after a write, or renamed over.
    pub wrote: bool,
    /// In the temporary tree: what it is now (`None` elsewhere, or when it is no
    /// longer a regular file).
    pub facts: Option<FileFacts>,
}

/// A watched directory: whether it is in the temporary tree (whose new directories
/// are watched too and whose files are judged as droppers).
struct Dir {
    path: PathBuf,
    tmp: bool,
}

/// The watch. See the module documentation.
pub struct Watcher {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, Dir>,
    buffer: Vec<u8>,
}

fn mask() -> WatchMask {
    WatchMask::CREATE | WatchMask::CLOSE_WRITE | WatchMask::ATTRIB | WatchMask::MOVED_TO
}

impl Watcher {
    /// An inotify instance watching nothing yet.
    pub fn new() -> io::Result<Watcher> {
        Ok(Watcher { inotify: Inotify::init()?, dirs: HashMap::new(), buffer: vec![0; 16 * 1024] })
    }

    /// Watches `dir` (not its existing subdirectories); `tmp`: it is the temporary
    /// directory. One directory watched twice is one watch (inotify gives it one
    /// descriptor, the same mask), in the temporary tree if either said so.
    pub fn add(&mut self, dir: &Path, tmp: bool) -> io::Result<()> {
        let wd = self.inotify.watches().add(dir, mask())?;
        let tmp = tmp || self.dirs.get(&wd).is_some_and(|d| d.tmp);
        self.dirs.insert(wd, Dir { path: dir.to_owned(), tmp });
        Ok(())
    }

    /// Waits for the next events and returns the files they concern (directories
    /// created in the temporary tree are watched from now on). `Err` when inotify
    /// itself failed.
    pub fn wait(&mut self) -> io::Result<Vec<Touch>> {
        let mut touched: Vec<(PathBuf, bool, bool)> = Vec::new();
        let mut new_dirs: Vec<PathBuf> = Vec::new();
        for e in self.inotify.read_events_blocking(&mut self.buffer)? {
            let (Some(dir), Some(name)) = (self.dirs.get(&e.wd), e.name) else {
                if e.mask.contains(EventMask::IGNORED) {
                    self.dirs.remove(&e.wd);
                }
                continue;
            };
            let path = dir.path.join(name);
            let wrote = e.mask.intersects(EventMask::CLOSE_WRITE | EventMask::MOVED_TO);
            if e.mask.contains(EventMask::ISDIR) {
                if dir.tmp && e.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                    new_dirs.push(path);
                }
            } else if let Some(t) = touched.iter_mut().find(|t| t.0 == path) {
                t.1 |= wrote;
            } else {
                touched.push((path, wrote, dir.tmp));
            }
        }
        for d in new_dirs {
            if self.dirs.len() < MAX_DIRS {
                if let Ok(wd) = self.inotify.watches().add(&d, mask()) {
                    self.dirs.insert(wd, Dir { path: d, tmp: true });
                }
            }
        }
        Ok(touched
            .into_iter()
            .map(|(path, wrote, tmp)| Touch {
                facts: if tmp { facts(&path) } else { None },
                path: path.to_string_lossy().into_owned(),
                wrote,
            })
            .collect())
    }
}

/// What `path` is: only a regular file, opened without following a link and without
/// blocking (a FIFO swapped in must not hang the guard), its first four bytes read.
pub fn facts(path: &Path) -> Option<FileFacts> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut magic = [0u8; 4];
    let elf = (&file).take(4).read_exact(&mut magic).is_ok() && magic == *b"\x7fELF";
    let mode = meta.mode() & 0o7777;
    Some(FileFacts { path: path.to_string_lossy().into_owned(), elf, executable: mode & 0o111 != 0, mode })
}

/// Whether `dir` exists as a directory (the watch needs one).
pub fn is_dir(dir: &Path) -> bool {
    fs::metadata(dir).is_ok_and(|m| m.is_dir())
}
