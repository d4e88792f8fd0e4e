//! spool: one sink's records on disk, under `/tmp` (which survives across invocations
//! and across a restart of the extension within the same execution environment): the
//! write-ahead copy of what the queue holds in memory, and its overflow.
//!
//! Owns the files of one directory: append-only segments named `<20-digit id>.ndjson`,
//! one [`Item`] per line in its serde form (the model's spool form) after its
//! [`Stamp`] (`#<origin>-<seq> `: the process that numbered it and its number, so that
//! a record keeps its identity, and a request its `Idempotency-Key`, across a
//! restart), and a `cursor` file. Ids order the segments: the oldest has the lowest id. Two kinds of appends:
//! *resident* ones ([`Spool::append_resident`]) copy a record the queue keeps in memory
//! (the write-ahead: staged, then written once per batch by [`Spool::sync`] before the
//! batch is acknowledged), *overflow* ones ([`Spool::append`]) hold a record that is
//! only on disk until read back. Each kind goes to its own segments (a new one when the
//! open one reaches the segment size or the kind changes). What the queue had in memory
//! and must keep safe otherwise is written as a new segment at the front
//! ([`Spool::write_front`]). The queue reads a segment back whole
//! ([`Spool::load_front`]) and removes it once every record in it was delivered.
//!
//! The cursor ([`Spool::set_cursor`]) names the one segment that is partly delivered
//! and how many of its first records were: a new process skips them, so a restart
//! re-sends nothing the sink had accepted (one small positioned write per commit).
//!
//! Bounded: when an append would pass `max_bytes`, the oldest segment not loaded in
//! memory is deleted and its records are reported as dropped (`spool_full`).
//!
//! Never interprets records beyond (de)serialising them, never decides what goes to
//! disk (the queue does), and never panics on I/O: every error is returned. A line
//! that does not parse (the tail of a segment cut by a `kill -9`) is skipped and
//! counted. Files are written without `fsync`: a killed process loses nothing that
//! `write` returned for, and a lost machine loses `/tmp` anyway.
//!
//! Private: `/tmp` is shared and its paths are predictable, so directories are created
//! 0700 and files 0600, never through a symbolic link, and a directory or segment
//! owned by another user is refused ([`private`], shared with the file sink and the
//! write-ahead).

use crate::model::Item;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Id of the first segment of an empty spool; leaves room for front segments below it.
const BASE_ID: u64 = 1 << 40;
const SUFFIX: &str = ".ndjson";
/// Records assumed per byte for segments found at start and not read yet.
const ESTIMATED_RECORD_BYTES: u64 = 256;

#[derive(Debug)]
struct Segment {
    id: u64,
    records: u64,
    bytes: u64,
    /// Its items are in the queue's memory; the file stays until they are delivered.
    loaded: bool,
    /// `records` was counted (false for segments found at start, until read).
    counted: bool,
}

/// A record's identity: the process that numbered it (see [`origin`]) and its number
/// in that process's arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The numbering process.
    pub origin: Arc<str>,
    /// The record's number.
    pub seq: u64,
}

/// This process's origin: its start time and id, in hex (`<ms>.<pid>`), which keeps
/// the numbers of two processes apart.
pub fn origin() -> &'static Arc<str> {
    static ORIGIN: OnceLock<Arc<str>> = OnceLock::new();
    ORIGIN.get_or_init(|| format!("{:x}.{:x}", crate::clock::now_ms(), std::process::id()).into())
}

/// Appends a record's spool line to `out`: its stamp, its serde form, a newline.
pub fn encode_line(out: &mut Vec<u8>, origin: &str, seq: u64, item: &Item) -> io::Result<()> {
    let start = out.len();
    write!(out, "#{origin}-{seq} ")?;
    if let Err(e) = serde_json::to_writer(&mut *out, item) {
        out.truncate(start);
        return Err(io::Error::other(e));
    }
    out.push(b'\n');
    Ok(())
}

/// Splits a spool line into its stamp (absent on a line written without one) and its
/// JSON.
fn split_line(line: &[u8]) -> (Option<(&str, u64)>, &[u8]) {
    let Some(rest) = line.strip_prefix(b"#") else {
        return (None, line);
    };
    let Some(space) = rest.iter().position(|&c| c == b' ') else {
        return (None, line);
    };
    let stamp = std::str::from_utf8(&rest[..space])
        .ok()
        .and_then(|t| t.rsplit_once('-'))
        .and_then(|(origin, seq)| Some((origin, seq.parse().ok()?)));
    (stamp, &rest[space + 1..])
}

/// A segment read back.
#[derive(Debug)]
pub struct Loaded {
    /// The segment's id.
    pub id: u64,
    /// The records that parsed, without those the cursor says were delivered.
    pub items: Vec<Item>,
    /// Each record's stamp (same order as `items`).
    pub stamps: Vec<Option<Stamp>>,
    /// Lines that did not parse (skipped).
    pub corrupt: u64,
    /// Records skipped at the front because the cursor says they were delivered.
    pub skipped: u64,
}

/// The file name of the cursor, beside the segments (never taken for a segment).
const CURSOR: &str = "cursor";
/// The cursor's text: `<segment id> <records delivered>`, fixed width so that an
/// update is one positioned write over the previous one.
const CURSOR_LEN: usize = 20 + 1 + 20 + 1;

/// The result of [`Spool::append`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// Whether the item was written.
    pub written: bool,
    /// Records of older segments deleted to make room.
    pub dropped_records: u64,
}

/// One sink's spool directory. See the module documentation.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// The open segment (always the last of `segments`), its file, and whether it
    /// holds resident copies.
    writer: Option<(u64, File, bool)>,
    /// Resident lines staged for the open segment, written by [`Spool::sync`].
    staged: Vec<u8>,
    bytes: u64,
    line: Vec<u8>,
    /// The cursor read at open (segment, records delivered), applied when that segment
    /// is loaded.
    found_cursor: Option<(u64, u64)>,
    /// The cursor as last written, and its file once created.
    cursor: (u64, u64),
    cursor_file: Option<File>,
}

impl Spool {
    /// Opens `dir` (created at the first write) and takes over the segments a previous
    /// process left there. `max_bytes` bounds the whole directory, `segment_bytes` one
    /// segment. Reads only the directory listing, never the segments.
    pub fn open(dir: PathBuf, max_bytes: u64, segment_bytes: u64) -> io::Result<Spool> {
        let mut segments = Vec::new();
        let mut bytes = 0;
        private::check_existing_dir(&dir)?;
        match fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    let name = entry.file_name();
                    let Some(id) = name.to_str().and_then(parse_name) else {
                        continue;
                    };
                    let meta = fs::symlink_metadata(entry.path())?;
                    if !private::is_own_file(&meta) {
                        // Planted by someone else (or a link): never read, never deleted.
                        continue;
                    }
                    let len = meta.len();
                    if len == 0 {
                        // An empty leftover: nothing to deliver.
                        let _ = fs::remove_file(entry.path());
                        continue;
                    }
                    bytes += len;
                    segments.push(Segment {
                        id,
                        records: len.div_ceil(ESTIMATED_RECORD_BYTES),
                        bytes: len,
                        loaded: false,
                        counted: false,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        segments.sort_by_key(|s| s.id);
        // The cursor counts only for the segment it names. One naming a segment that is
        // gone (deleted once delivered, the process killed before the cursor moved on)
        // is cleared now: a later segment may get that id, and must not lose its first
        // records to a stale count.
        let mut cursor_file = None;
        let mut found_cursor = read_cursor(&dir);
        if let Some((seg, _)) = found_cursor {
            if !segments.iter().any(|s| s.id == seg) {
                found_cursor = None;
                let file = private::overwrite(&dir.join(CURSOR))?;
                FileExt::write_all_at(&file, format!("{:020} {:020}\n", 0, 0).as_bytes(), 0)?;
                cursor_file = Some(file);
            }
        }
        Ok(Spool {
            dir,
            max_bytes,
            segment_bytes: segment_bytes.max(1),
            segments: segments.into(),
            writer: None,
            staged: Vec::new(),
            bytes,
            line: Vec::new(),
            found_cursor,
            cursor: found_cursor.unwrap_or((0, 0)),
            cursor_file,
        })
    }

    /// This spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk, loaded segments included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether segments wait to be read back.
    pub fn has_unloaded(&self) -> bool {
        self.segments.iter().any(|s| !s.loaded)
    }

    /// Records and bytes waiting on disk (not loaded). Records of segments found at
    /// start are estimated until they are read.
    pub fn unloaded(&self) -> (u64, u64) {
        self.segments.iter().filter(|s| !s.loaded).fold((0, 0), |(r, b), s| (r + s.records, b + s.bytes))
    }

    /// Appends one item, stamped as this process's record number `seq`, at the back,
    /// on disk only (an overflow). See [`Spool::append_line`].
    pub fn append(&mut self, item: &Item, seq: u64) -> io::Result<Appended> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let encoded = encode_line(&mut line, origin(), seq, item);
        let out = encoded.and_then(|()| self.append_line(&line));
        self.line = line;
        out
    }

    /// Appends one record's line (its spool form, ending in a newline) at the back, on
    /// disk only, written at once. When the spool is full, the oldest segments not
    /// loaded are deleted first; a line that cannot fit even then is not written.
    pub fn append_line(&mut self, line: &[u8]) -> io::Result<Appended> {
        let len = line.len() as u64;
        let mut out = Appended::default();
        while self.bytes + len > self.max_bytes {
            match self.drop_oldest_unloaded()? {
                Some(records) => out.dropped_records += records,
                None => return Ok(out),
            }
        }
        let id = self.open_for(len, false)?;
        let Some((_, file, _)) = self.writer.as_mut() else {
            return Err(io::Error::other("the spool has no open segment"));
        };
        if let Err(e) = file.write_all(line) {
            // The segment may hold a partial line now (skipped when read); never append
            // to it again.
            self.writer = None;
            return Err(e);
        }
        self.count(id, len);
        out.written = true;
        Ok(out)
    }

    /// Stages a copy of a record the queue holds in memory (its line, ending in a
    /// newline) at the back, in a resident segment, and returns that segment's id; the
    /// line reaches the file at the next [`Spool::sync`]. `None` when the spool has no
    /// room: resident copies never push older records out.
    pub fn append_resident(&mut self, line: &[u8]) -> io::Result<Option<u64>> {
        let len = line.len() as u64;
        if self.bytes + len > self.max_bytes {
            return Ok(None);
        }
        let id = self.open_for(len, true)?;
        self.staged.extend_from_slice(line);
        self.count(id, len);
        Ok(Some(id))
    }

    /// Writes the staged resident lines to their segment. After an error the segment
    /// is never appended to again (it may end in a partial line, skipped when read).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let result = match self.writer.as_mut() {
            Some((_, file, true)) => file.write_all(&self.staged),
            _ => Err(io::Error::other("the spool's resident segment is gone")),
        };
        self.staged.clear();
        if result.is_err() {
            self.writer = None;
        }
        result
    }

    /// Makes the open segment one of kind `resident` with room for `len` more bytes
    /// (rotating when needed) and returns its id.
    fn open_for(&mut self, len: u64, resident: bool) -> io::Result<u64> {
        let open = match (&self.writer, self.segments.back()) {
            (Some((id, _, r)), Some(last)) if last.id == *id && *r == resident => {
                Some(*id).filter(|_| last.bytes == 0 || last.bytes + len <= self.segment_bytes)
            }
            _ => None,
        };
        match open {
            Some(id) => Ok(id),
            None => self.rotate(resident),
        }
    }

    fn count(&mut self, id: u64, len: u64) {
        if let Some(seg) = self.segments.iter_mut().rev().find(|s| s.id == id) {
            seg.records += 1;
            seg.bytes += len;
        }
        self.bytes += len;
    }

    /// Records that the first `delivered` records of segment `id` were delivered
    /// (`(0, 0)`: none partly delivered). Written only when it changed.
    pub fn set_cursor(&mut self, id: u64, delivered: u64) -> io::Result<()> {
        let cursor = if delivered == 0 { (0, 0) } else { (id, delivered) };
        if cursor == self.cursor {
            return Ok(());
        }
        // `self.cursor` is what the file says (no file: (0, 0)).
        if self.cursor_file.is_none() {
            private::dir(&self.dir)?;
            self.cursor_file = Some(private::overwrite(&self.dir.join(CURSOR))?);
        }
        let text = format!("{:020} {:020}\n", cursor.0, cursor.1);
        debug_assert_eq!(text.len(), CURSOR_LEN);
        if let Some(file) = self.cursor_file.as_ref() {
            FileExt::write_all_at(file, text.as_bytes(), 0)?;
        }
        self.cursor = cursor;
        Ok(())
    }

    /// Reads the oldest segment not loaded yet, marks it loaded and returns its items.
    /// The file stays until [`Spool::remove`].
    pub fn load_front(&mut self) -> io::Result<Option<Loaded>> {
        let Some(i) = self.segments.iter().position(|s| !s.loaded) else {
            return Ok(None);
        };
        let id = self.segments[i].id;
        if self.writer.as_ref().is_some_and(|(w, _, _)| *w == id) {
            // Reading the open segment: later appends go to a new one.
            self.writer = None;
        }
        let text = match private::read(&segment_path(&self.dir, id)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut items = Vec::new();
        let mut stamps: Vec<Option<Stamp>> = Vec::new();
        let mut corrupt = 0;
        let mut last_origin: Option<Arc<str>> = None;
        for line in text.split(|&c| c == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
            let (stamp, json) = split_line(line);
            match serde_json::from_slice::<Item>(json) {
                Ok(item) => {
                    items.push(item);
                    stamps.push(stamp.map(|(o, seq)| {
                        // Consecutive records share their origin's allocation.
                        let origin = match &last_origin {
                            Some(a) if &**a == o => a.clone(),
                            _ => {
                                let a: Arc<str> = o.into();
                                last_origin = Some(a.clone());
                                a
                            }
                        };
                        Stamp { origin, seq }
                    }));
                }
                Err(_) => corrupt += 1,
            }
        }
        let mut skipped = 0;
        if let Some((_, delivered)) = self.found_cursor.filter(|(seg, _)| *seg == id) {
            // Delivered by the previous process before it ended.
            self.found_cursor = None;
            skipped = delivered.min(items.len() as u64);
            items.drain(..skipped as usize);
            stamps.drain(..skipped as usize);
        }
        let real = text.len() as u64;
        let seg = &mut self.segments[i];
        self.bytes = self.bytes - seg.bytes + real;
        seg.bytes = real;
        seg.records = items.len() as u64;
        seg.counted = true;
        seg.loaded = true;
        Ok(Some(Loaded { id, items, stamps, corrupt, skipped }))
    }

    /// Deletes segment `id` (its records were delivered or are held elsewhere).
    pub fn remove(&mut self, id: u64) -> io::Result<()> {
        let Some(i) = self.segments.iter().position(|s| s.id == id) else {
            return Ok(());
        };
        if self.writer.as_ref().is_some_and(|(w, _, _)| *w == id) {
            self.writer = None;
            self.staged.clear();
        }
        remove_file(&segment_path(&self.dir, id))?;
        if let Some(seg) = self.segments.remove(i) {
            self.bytes -= seg.bytes;
        }
        Ok(())
    }

    /// Writes `items` as a new segment in front of every other one, already loaded (the
    /// caller holds them in memory), and returns its id. Not bounded by `max_bytes`:
    /// these are records the queue already holds; later appends make room.
    pub fn write_front<'a>(&mut self, items: impl IntoIterator<Item = (&'a Item, &'a Stamp)>) -> io::Result<u64> {
        let mut body = Vec::new();
        let mut records = 0;
        for (item, stamp) in items {
            encode_line(&mut body, &stamp.origin, stamp.seq, item)?;
            records += 1;
        }
        let first = self.segments.front().map_or(BASE_ID, |s| s.id.saturating_sub(1));
        let (id, mut file) = self.create(first, false)?;
        let path = segment_path(&self.dir, id);
        if let Err(e) = file.write_all(&body) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        let bytes = body.len() as u64;
        self.segments.push_front(Segment { id, records, bytes, loaded: true, counted: true });
        self.bytes += bytes;
        Ok(id)
    }

    /// Deletes the oldest segment that is not loaded; returns its record count, or
    /// `None` when every segment is loaded.
    fn drop_oldest_unloaded(&mut self) -> io::Result<Option<u64>> {
        let Some(i) = self.segments.iter().position(|s| !s.loaded) else {
            return Ok(None);
        };
        let (id, counted, records) = {
            let s = &self.segments[i];
            (s.id, s.counted, s.records)
        };
        let path = segment_path(&self.dir, id);
        let records = if counted { records } else { count_lines(&path).unwrap_or(records) };
        if self.writer.as_ref().is_some_and(|(w, _, _)| *w == id) {
            self.writer = None;
        }
        remove_file(&path)?;
        if let Some(seg) = self.segments.remove(i) {
            self.bytes -= seg.bytes;
        }
        Ok(Some(records))
    }

    /// Closes the open segment (writing what is staged for it) and opens the next one;
    /// a resident one counts as loaded (its records are in the queue's memory).
    fn rotate(&mut self, resident: bool) -> io::Result<u64> {
        self.sync()?;
        self.writer = None;
        let next = self.segments.back().map_or(BASE_ID, |s| s.id + 1);
        let (id, file) = self.create(next, true)?;
        self.segments.push_back(Segment { id, records: 0, bytes: 0, loaded: resident, counted: true });
        self.writer = Some((id, file, resident));
        Ok(id)
    }

    /// Creates a new segment file at `id`, or the nearest free id in the direction of
    /// growth (another writer may have taken it).
    fn create(&self, id: u64, upwards: bool) -> io::Result<(u64, File)> {
        private::dir(&self.dir)?;
        let mut id = id;
        for _ in 0..64 {
            match private::create_new(&segment_path(&self.dir, id)) {
                Ok(f) => return Ok((id, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    id = if upwards { id + 1 } else { id.saturating_sub(1) };
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!("no free segment name in {}", self.dir.display())))
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SUFFIX}"))
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The cursor a previous process left, when it is well formed.
fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let text = private::read(&dir.join(CURSOR)).ok()?;
    let text = std::str::from_utf8(&text).ok()?;
    let (seg, delivered) = text.trim().split_once(' ')?;
    let cursor = (seg.parse().ok()?, delivered.parse().ok()?);
    (cursor.1 > 0).then_some(cursor)
}

fn count_lines(path: &Path) -> io::Result<u64> {
    Ok(private::read(path)?.iter().filter(|&&c| c == b'\n').count() as u64)
}

pub mod private {
    //! Files only this user can read, under a shared `/tmp`: directories 0700, files
    //! 0600, opened without following a symbolic link (`O_NOFOLLOW`), and refused when
    //! another user owns them.

    use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
    use std::io::{self, Read};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    use std::path::Path;
    use std::sync::OnceLock;

    /// Linux's `O_NOFOLLOW` (its value differs on arm64; std does not export it).
    #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
    const O_NOFOLLOW: i32 = 0o100000;
    #[cfg(not(any(target_arch = "aarch64", target_arch = "arm")))]
    const O_NOFOLLOW: i32 = 0o400000;

    /// This process's user id (the owner of `/proc/self`), when it can be told.
    pub fn uid() -> Option<u32> {
        static UID: OnceLock<Option<u32>> = OnceLock::new();
        *UID.get_or_init(|| fs::metadata("/proc/self").ok().map(|m| m.uid()))
    }

    fn refused(path: &Path, why: &str) -> io::Error {
        io::Error::new(io::ErrorKind::PermissionDenied, format!("{} {why}; refused", path.display()))
    }

    fn owned(meta: &Metadata) -> bool {
        uid().is_none_or(|me| meta.uid() == me)
    }

    /// Whether `meta` (from `symlink_metadata`) is a regular file of this user.
    pub fn is_own_file(meta: &Metadata) -> bool {
        meta.file_type().is_file() && owned(meta)
    }

    /// Checks `dir` when it exists: a real directory (not a link) of this user, made
    /// 0700 if it was looser. A missing directory is fine (created at first write).
    pub fn check_existing_dir(dir: &Path) -> io::Result<()> {
        let meta = match fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            return Err(refused(dir, "is a symbolic link"));
        }
        if !meta.is_dir() {
            return Err(refused(dir, "is not a directory"));
        }
        if !owned(&meta) {
            return Err(refused(dir, &format!("is owned by uid {}, not this user", meta.uid())));
        }
        if meta.mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// Creates `dir` (and missing parents) 0700, or checks it (see
    /// [`check_existing_dir`]).
    pub fn dir(dir: &Path) -> io::Result<()> {
        if fs::symlink_metadata(dir).is_err() {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        check_existing_dir(dir)
    }

    /// Creates missing parents of a file 0700 without checking existing ones (a file
    /// may live in a shared directory such as `/tmp`).
    pub fn parents(path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err() => {
                DirBuilder::new().recursive(true).mode(0o700).create(p)
            }
            _ => Ok(()),
        }
    }

    fn checked(path: &Path, file: File) -> io::Result<File> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(refused(path, "is not a regular file"));
        }
        if !owned(&meta) {
            return Err(refused(path, &format!("is owned by uid {}, not this user", meta.uid())));
        }
        Ok(file)
    }

    /// Creates a new file 0600 for appending; fails if it exists.
    pub fn create_new(path: &Path) -> io::Result<File> {
        OpenOptions::new().append(true).create_new(true).mode(0o600).custom_flags(O_NOFOLLOW).open(path)
    }

    /// Opens `path` for writing in place (positioned writes), created 0600 if missing;
    /// a link or another user's file is refused.
    pub fn overwrite(path: &Path) -> io::Result<File> {
        let file = OpenOptions::new().write(true).create(true).mode(0o600).custom_flags(O_NOFOLLOW).open(path);
        match file {
            Ok(f) => checked(path, f),
            Err(e) if e.raw_os_error() == Some(40) => Err(refused(path, "is a symbolic link")),
            Err(e) => Err(e),
        }
    }

    /// Opens `path` for appending, created 0600 if missing; a link or another user's
    /// file is refused.
    pub fn append(path: &Path) -> io::Result<File> {
        let file = OpenOptions::new().append(true).create(true).mode(0o600).custom_flags(O_NOFOLLOW).open(path);
        match file {
            Ok(f) => checked(path, f),
            Err(e) if e.raw_os_error() == Some(40) => Err(refused(path, "is a symbolic link")),
            Err(e) => Err(e),
        }
    }

    /// Reads a whole file of this user, never through a link.
    pub fn read(path: &Path) -> io::Result<Vec<u8>> {
        let file = match OpenOptions::new().read(true).custom_flags(O_NOFOLLOW).open(path) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(40) => return Err(refused(path, "is a symbolic link")),
            Err(e) => return Err(e),
        };
        let mut file = checked(path, file)?;
        let mut out = Vec::new();
        file.read_to_end(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests;
