//! guard::watch: the temporary directory under inotify. Watches the directory and each
//! directory created in it after the guard started (never walking the tree: it may
//! hold gigabytes that are none of the function's business), and reports each file
//! created, written, moved in or changing mode, with what it is now: an ELF binary, an
//! executable file. The I/O edge (inotify's syscalls through the `inotify` crate, so
//! that tandem keeps `#![forbid(unsafe_code)]`).

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

/// The watch. See the module documentation.
pub struct Watcher {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    buffer: Vec<u8>,
}

fn mask() -> WatchMask {
    WatchMask::CREATE | WatchMask::CLOSE_WRITE | WatchMask::ATTRIB | WatchMask::MOVED_TO
}

impl Watcher {
    /// Starts watching `dir` (not its existing subdirectories).
    pub fn start(dir: &Path) -> io::Result<Watcher> {
        let inotify = Inotify::init()?;
        let wd = inotify.watches().add(dir, mask())?;
        Ok(Watcher { inotify, dirs: HashMap::from([(wd, dir.to_owned())]), buffer: vec![0; 16 * 1024] })
    }

    /// Waits for the next events and returns the files they concern (directories
    /// created are watched from now on). `Err` when inotify itself failed.
    pub fn wait(&mut self) -> io::Result<Vec<FileFacts>> {
        let mut touched: Vec<PathBuf> = Vec::new();
        let mut new_dirs: Vec<PathBuf> = Vec::new();
        for e in self.inotify.read_events_blocking(&mut self.buffer)? {
            let (Some(dir), Some(name)) = (self.dirs.get(&e.wd), e.name) else {
                if e.mask.contains(EventMask::IGNORED) {
                    self.dirs.remove(&e.wd);
                }
                continue;
            };
            let path = dir.join(name);
            if e.mask.contains(EventMask::ISDIR) {
                if e.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                    new_dirs.push(path);
                }
            } else if !touched.contains(&path) {
                touched.push(path);
            }
        }
        for d in new_dirs {
            if self.dirs.len() < MAX_DIRS {
                if let Ok(wd) = self.inotify.watches().add(&d, mask()) {
                    self.dirs.insert(wd, d);
                }
            }
        }
        Ok(touched.iter().filter_map(|p| facts(p)).collect())
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
