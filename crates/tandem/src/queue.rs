//! queue: one sink's records waiting for delivery, in order, in memory and then on disk.
//!
//! Owns the delivery order of one sink (FIFO) and the rule that a record leaves only
//! when the sink took it: [`Queue::batch`] copies the front, [`Queue::commit`] removes
//! it once the sink accepted (or permanently rejected) it; on failure the records stay
//! where they are. Items are shared across the sinks' queues (`Arc`), so a record sent
//! to four sinks is held once in memory.
//!
//! The write-ahead: with a spool, every record taken into memory is also copied to
//! the sink's [`Spool`] ([`Queue::push_batch`] writes a batch's copies with one `write`
//! before it returns, so an acknowledged batch survives a `kill -9`; no `fsync`: the
//! page cache survives the process). A segment is deleted once every record in it was
//! delivered, and the spool's cursor records how much of a partly delivered segment
//! was, so a new process neither loses nor re-sends. Memory is bounded
//! ([`BufferConfig`], per queue). Beyond the bound, and as long as anything waits on
//! disk (to keep the order), new records go to the spool only; they are read back a
//! segment at a time when the front needs them. [`Queue::persist`] writes what memory
//! holds without a copy (the spool had no room, or none) when the sink is failing.
//! The spool is opened at the first record (or the first look at what is pending), so
//! start-up never scans a directory; a new process finds the segments of the previous
//! one there and delivers them first.
//!
//! Never does network I/O and never blocks on anything but the local file system. A
//! spool I/O error turns the spool off (memory only, told once); when memory is full
//! and there is no spool, the newest record is dropped (`buffer_full`). Every drop is
//! counted by reason.

use crate::config::BufferConfig;
use crate::diag;
use crate::flush::Pending;
use crate::health::QueueStats;
use crate::model::Item;
use crate::spool::{origin, Spool, Stamp};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// One queued record.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The record (shared with the other sinks' queues).
    pub item: Arc<Item>,
    /// [`Item::approx_size`].
    pub size: u64,
    /// When it entered memory (ms since the epoch); 0 when read back from the spool.
    pub at_ms: u64,
    /// Sink-specific progress kept across attempts (the OTLP sink: signals accepted).
    pub progress: u8,
    /// A request carrying it was permanently rejected.
    pub rejected: bool,
    /// Its identity: the process that numbered it and its number in arrival order
    /// (kept in the spool; the `http` sink's `Idempotency-Key` is made of it).
    pub stamp: Stamp,
    /// The spool segment holding a copy of it.
    seg: Option<u64>,
}

impl Entry {
    /// An entry for `item`, entered at `at_ms`.
    pub fn new(item: Arc<Item>, at_ms: u64) -> Entry {
        let size = item.approx_size() as u64;
        Entry {
            item,
            size,
            at_ms,
            progress: 0,
            rejected: false,
            stamp: Stamp { origin: origin().clone(), seq: 0 },
            seg: None,
        }
    }
}

/// A front batch: copies of the first entries.
#[derive(Debug, Default)]
pub struct Batch {
    /// The entries, oldest first.
    pub entries: Vec<Entry>,
    /// More records wait behind it, or it reached a limit.
    pub full: bool,
}

#[derive(Debug)]
enum Disk {
    /// Not opened yet: `(dir, max_bytes, segment_bytes)`.
    Closed(PathBuf, u64, u64),
    Open(Spool),
    Off,
}

/// One sink's queue. See the module documentation.
#[derive(Debug)]
pub struct Queue {
    name: &'static str,
    limits: BufferConfig,
    mem: VecDeque<Entry>,
    mem_bytes: u64,
    disk: Disk,
    /// Spool segments whose records are in memory.
    backed: HashMap<u64, Backed>,
    stats: QueueStats,
}

/// A spool segment whose records are in memory.
#[derive(Debug, Clone, Copy, Default)]
struct Backed {
    /// Its records still in memory (not delivered).
    left: u64,
    /// Its records taken into memory.
    loaded: u64,
    /// Its first records, delivered by a previous process (skipped when loaded).
    skipped: u64,
}

impl Backed {
    fn new(loaded: u64, skipped: u64) -> Backed {
        Backed { left: loaded, loaded, skipped }
    }

    /// Records of the segment delivered, counted from its first line.
    fn delivered(&self) -> u64 {
        self.skipped + self.loaded - self.left
    }
}

/// A record arriving at a queue: the record, its number in arrival order, and its
/// line in the spool form (encoded once for all queues).
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The record (shared across queues).
    pub item: &'a Arc<Item>,
    /// Its number in arrival order.
    pub seq: u64,
    /// Its spool line (see [`crate::spool::encode_line`]: stamped with this process's
    /// origin and `seq`), ending in a newline.
    pub line: &'a [u8],
}

/// The spool of a queue: its directory and bounds.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// This queue's spool directory.
    pub dir: PathBuf,
    /// Its size bound, bytes (0: no spool).
    pub max_bytes: u64,
    /// Size at which a segment is closed and the next one started.
    pub segment_bytes: u64,
}

impl Queue {
    /// A queue named after its sink; `spool: None` keeps it in memory only.
    pub fn new(name: &'static str, limits: BufferConfig, spool: Option<SpoolSettings>) -> Queue {
        let disk = match spool {
            Some(s) if s.max_bytes > 0 => Disk::Closed(s.dir, s.max_bytes, s.segment_bytes),
            _ => Disk::Off,
        };
        Queue {
            name,
            limits,
            mem: VecDeque::new(),
            mem_bytes: 0,
            disk,
            backed: HashMap::new(),
            stats: QueueStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Bytes in the spool directory.
    pub fn spool_bytes(&self) -> u64 {
        match &self.disk {
            Disk::Open(s) => s.bytes(),
            _ => 0,
        }
    }

    /// Records held in memory.
    pub fn in_memory(&self) -> usize {
        self.mem.len()
    }

    /// Whether every record held in memory has a copy in the spool.
    pub fn all_on_disk(&self) -> bool {
        self.mem.iter().all(|e| e.seg.is_some())
    }

    /// The spool, opened (and the previous process's segments found) at first use.
    fn spool(&mut self) -> Option<&mut Spool> {
        if let Disk::Closed(dir, max, seg) = &self.disk {
            self.disk = match Spool::open(dir.clone(), *max, *seg) {
                Ok(s) => {
                    if s.has_unloaded() {
                        diag::info(format_args!(
                            "{}: found {} bytes of undelivered records in {} from a previous run; delivering them first",
                            self.name,
                            s.bytes(),
                            s.dir().display()
                        ));
                    }
                    Disk::Open(s)
                }
                Err(e) => {
                    diag::warn(format_args!(
                        "{}: cannot use the spool directory {}: {e}; keeping records in memory only",
                        self.name,
                        dir.display()
                    ));
                    Disk::Off
                }
            };
        }
        match &mut self.disk {
            Disk::Open(s) => Some(s),
            _ => None,
        }
    }

    fn spool_failed(&mut self, what: &str, e: std::io::Error) {
        let dir = match &self.disk {
            Disk::Open(s) => s.dir().display().to_string(),
            _ => String::new(),
        };
        diag::warn(format_args!(
            "{}: spool {what} failed in {dir}: {e}; keeping records in memory only from now on",
            self.name
        ));
        self.disk = Disk::Off;
        // Whatever was on disk cannot be read any more: entries keep their memory copy.
        self.backed.clear();
        for e in &mut self.mem {
            e.seg = None;
        }
    }

    fn fits(&self, size: u64) -> bool {
        self.mem.is_empty()
            || (self.mem.len() < self.limits.max_records && self.mem_bytes + size <= self.limits.max_bytes)
    }

    fn push_mem(&mut self, entry: Entry) {
        self.mem_bytes += entry.size;
        self.mem.push_back(entry);
    }

    /// Takes a batch of records in, in order: each one into memory while it has room
    /// and nothing waits on disk, with its write-ahead copy in the spool (one `write`
    /// for the batch, before returning), else into the spool only; dropped (and
    /// counted) only when neither can hold it.
    pub fn push_batch(&mut self, batch: &[Incoming<'_>], now_ms: u64) {
        let mut staged = false;
        for incoming in batch {
            let mut entry = Entry::new(incoming.item.clone(), now_ms);
            entry.stamp.seq = incoming.seq;
            let disk_waiting = self.spool().is_some_and(|s| s.has_unloaded());
            if !disk_waiting && self.fits(entry.size) {
                entry.seg = self.write_ahead(incoming.line);
                if let Some(seg) = entry.seg {
                    staged = true;
                    let b = self.backed.entry(seg).or_default();
                    b.left += 1;
                    b.loaded += 1;
                }
                self.push_mem(entry);
                continue;
            }
            self.overflow(entry, incoming.line);
        }
        if staged {
            let synced = self.spool().map(Spool::sync);
            if let Some(Err(e)) = synced {
                // The copies of this batch may be cut: they are held in memory only now.
                self.spool_failed("write", e);
            }
        }
    }

    /// Takes one record in (see [`Queue::push_batch`]).
    #[cfg(test)]
    pub fn push(&mut self, item: Arc<Item>, now_ms: u64, seq: u64) {
        let mut line = Vec::new();
        let _ = crate::spool::encode_line(&mut line, origin(), seq, &item);
        self.push_batch(&[Incoming { item: &item, seq, line: &line }], now_ms);
    }

    /// Stages `line` as a write-ahead copy; the segment holding it, if any.
    fn write_ahead(&mut self, line: &[u8]) -> Option<u64> {
        // No spool (configured off, or failed): memory only, as the spool's absence says.
        let spool = self.spool()?;
        if line.is_empty() {
            // Could not be encoded: held in memory only.
            self.stats.not_written_ahead += 1;
            return None;
        }
        let staged = spool.append_resident(line);
        match staged {
            Ok(Some(seg)) => Some(seg),
            Ok(None) => {
                self.stats.not_written_ahead += 1;
                diag::once(
                    crate::diag::LogLevel::Warn,
                    &format!("{}-spool-no-room", self.name),
                    format_args!(
                        "{}: the spool is full; new records are held in memory only until it has room",
                        self.name
                    ),
                );
                None
            }
            Err(e) => {
                self.spool_failed("write", e);
                None
            }
        }
    }

    /// Takes a record that memory cannot hold (or that must queue behind the disk).
    fn overflow(&mut self, entry: Entry, line: &[u8]) {
        let spool = if line.is_empty() { None } else { self.spool() };
        let appended = match spool {
            Some(spool) => spool.append_line(line),
            None => {
                if self.fits(entry.size) {
                    self.push_mem(entry);
                } else {
                    self.stats.dropped_buffer_full += 1;
                }
                return;
            }
        };
        match appended {
            Ok(a) => {
                self.stats.dropped_spool_full += a.dropped_records;
                if a.written {
                    self.stats.spooled += 1;
                } else {
                    self.stats.dropped_spool_full += 1;
                }
                if a.dropped_records > 0 || !a.written {
                    diag::once(
                        crate::diag::LogLevel::Warn,
                        &format!("{}-spool-full", self.name),
                        format_args!(
                            "{}: the spool is full; dropping the oldest records (counted as spool_full)",
                            self.name
                        ),
                    );
                }
            }
            Err(e) => {
                self.spool_failed("write", e);
                if self.fits(entry.size) {
                    self.push_mem(entry);
                } else {
                    self.stats.dropped_buffer_full += 1;
                }
            }
        }
    }

    /// What waits, in memory and on disk.
    pub fn pending(&mut self) -> Pending {
        let (disk_records, disk_bytes) = self.spool().map_or((0, 0), |s| s.unloaded());
        Pending {
            records: self.mem.len() + disk_records as usize,
            bytes: (self.mem_bytes + disk_bytes) as usize,
            oldest_ms: self.mem.front().map(|e| e.at_ms).filter(|t| *t > 0),
        }
    }

    /// Reads spooled segments back into memory until the front holds a full batch.
    fn refill(&mut self, max_records: usize, max_bytes: u64) {
        while self.mem.len() < max_records && self.mem_bytes < max_bytes {
            let loaded = match self.spool() {
                Some(spool) => spool.load_front(),
                None => return,
            };
            match loaded {
                Ok(Some(loaded)) => {
                    self.stats.dropped_spool_corrupt += loaded.corrupt;
                    let n = loaded.items.len() as u64;
                    if n == 0 {
                        self.remove_segment(loaded.id);
                        continue;
                    }
                    self.backed.insert(loaded.id, Backed::new(n, loaded.skipped));
                    for (item, stamp) in loaded.items.into_iter().zip(loaded.stamps) {
                        let mut entry = Entry::new(Arc::new(item), 0);
                        if let Some(stamp) = stamp {
                            entry.stamp = stamp;
                        }
                        entry.seg = Some(loaded.id);
                        self.push_mem(entry);
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    self.spool_failed("read", e);
                    return;
                }
            }
        }
    }

    fn remove_segment(&mut self, id: u64) {
        let removed = match self.spool() {
            Some(spool) => spool.remove(id),
            None => return,
        };
        if let Err(e) = removed {
            self.spool_failed("delete", e);
        }
    }

    /// Copies of the first records, up to `max_records` and about `max_bytes` (at least
    /// one record), reading the spool back when memory runs short.
    pub fn batch(&mut self, max_records: usize, max_bytes: u64) -> Batch {
        let max_records = max_records.max(1);
        self.refill(max_records, max_bytes);
        let mut entries = Vec::new();
        let mut bytes = 0;
        let mut full = false;
        for e in &self.mem {
            if entries.len() >= max_records || (!entries.is_empty() && bytes + e.size > max_bytes) {
                full = true;
                break;
            }
            bytes += e.size;
            entries.push(e.clone());
        }
        if !full {
            full = entries.len() >= max_records || bytes >= max_bytes || self.spool().is_some_and(|s| s.has_unloaded());
        }
        Batch { entries, full }
    }

    /// Removes `batch` (the front, as returned by [`Queue::batch`]) after the sink
    /// accepted it; entries marked `rejected` count as rejected, the others as
    /// delivered. Returns `(delivered, rejected)`.
    pub fn commit(&mut self, batch: &[Entry]) -> (u64, u64) {
        let (mut delivered, mut rejected) = (0, 0);
        for b in batch {
            let same = self.mem.front().is_some_and(|f| Arc::ptr_eq(&f.item, &b.item));
            if !same {
                // Never happens while flushes of a sink are serialized; stop rather than
                // drop records that were not sent.
                break;
            }
            let Some(e) = self.mem.pop_front() else { break };
            self.mem_bytes -= e.size;
            if b.rejected {
                rejected += 1;
            } else {
                delivered += 1;
            }
            if let Some(seg) = e.seg {
                self.release(seg);
            }
        }
        self.stats.delivered += delivered;
        self.stats.rejected += rejected;
        self.save_cursor();
        (delivered, rejected)
    }

    fn release(&mut self, seg: u64) {
        let left = match self.backed.get_mut(&seg) {
            Some(b) => {
                b.left = b.left.saturating_sub(1);
                b.left
            }
            None => return,
        };
        if left == 0 {
            self.backed.remove(&seg);
            self.remove_segment(seg);
        }
    }

    /// Tells the spool which segment is partly delivered, and how far (commits are in
    /// order, so at most one is: the oldest one still backing memory).
    fn save_cursor(&mut self) {
        let (seg, delivered) = self
            .backed
            .iter()
            .filter(|(_, b)| b.left > 0)
            .min_by_key(|(seg, _)| **seg)
            .map_or((0, 0), |(seg, b)| (*seg, b.delivered()));
        let saved = match self.spool() {
            Some(spool) => spool.set_cursor(seg, delivered),
            None => return,
        };
        if let Err(e) = saved {
            // Costs at most a re-send of that segment's delivered records after a restart.
            diag::once(
                crate::diag::LogLevel::Warn,
                &format!("{}-spool-cursor", self.name),
                format_args!("{}: cannot record delivery progress in the spool: {e}", self.name),
            );
        }
    }

    /// Keeps the progress a failed attempt made on `batch` (signals already accepted).
    pub fn keep_progress(&mut self, batch: &[Entry]) {
        for (e, b) in self.mem.iter_mut().zip(batch) {
            if Arc::ptr_eq(&e.item, &b.item) {
                e.progress = b.progress;
                e.rejected = b.rejected;
            }
        }
    }

    /// Writes what memory holds to the spool, in front of everything on disk, so that
    /// it survives the process; only when some record in memory has no copy there
    /// (the write-ahead had no room or no spool). Returns whether it wrote.
    pub fn persist(&mut self) -> bool {
        if self.mem.iter().all(|e| e.seg.is_some()) {
            return false;
        }
        let items: Vec<(Arc<Item>, Stamp)> = self.mem.iter().map(|e| (e.item.clone(), e.stamp.clone())).collect();
        let written = match self.spool() {
            Some(spool) => spool.write_front(items.iter().map(|(i, s)| (&**i, s))),
            None => return false,
        };
        match written {
            Ok(id) => {
                // The new segment holds every record of the segments loaded so far.
                let old: Vec<u64> = self.backed.drain().map(|(seg, _)| seg).collect();
                let n = self.mem.len() as u64;
                self.backed.insert(id, Backed::new(n, 0));
                for e in &mut self.mem {
                    if e.seg.is_none() {
                        self.stats.spooled += 1;
                    }
                    e.seg = Some(id);
                }
                for seg in old {
                    self.remove_segment(seg);
                }
                self.save_cursor();
                true
            }
            Err(e) => {
                self.spool_failed("write", e);
                false
            }
        }
    }

    /// Empties the queue for a last resort: every record in memory and as many spooled
    /// ones as can be read before `deadline`, whose files are then deleted. Returns the
    /// records and an estimate of those left on disk.
    pub fn drain_all(&mut self, deadline: Instant) -> (Vec<Arc<Item>>, u64) {
        while Instant::now() < deadline && self.spool().is_some_and(|s| s.has_unloaded()) {
            let before = self.mem.len();
            self.refill(usize::MAX, u64::MAX);
            if self.mem.len() == before {
                break;
            }
        }
        let items: Vec<Arc<Item>> = self.mem.drain(..).map(|e| e.item).collect();
        self.mem_bytes = 0;
        let segs: Vec<u64> = self.backed.drain().map(|(s, _)| s).collect();
        for seg in segs {
            self.remove_segment(seg);
        }
        self.save_cursor();
        let left = self.spool().map_or(0, |s| s.unloaded().0);
        (items, left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: usize) -> Arc<Item> {
        Arc::new(crate::spool::tests::log(n))
    }

    fn msg(e: &Entry) -> String {
        match &*e.item {
            Item::Log(l) => l.message.clone(),
            _ => String::new(),
        }
    }

    fn tempdir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tandem-queue-{name}-{}-{}", std::process::id(), fastrand::u64(..)))
    }

    fn spool(dir: &std::path::Path) -> Option<SpoolSettings> {
        Some(SpoolSettings { dir: dir.to_path_buf(), max_bytes: 1 << 20, segment_bytes: 512 })
    }

    fn drain_in_order(q: &mut Queue) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let b = q.batch(3, 1 << 20);
            if b.entries.is_empty() {
                return out;
            }
            out.extend(b.entries.iter().map(msg));
            q.commit(&b.entries);
        }
    }

    #[test]
    fn memory_then_spool_in_fifo_order() {
        let dir = tempdir("fifo");
        let limits = BufferConfig { max_records: 4, max_bytes: 1 << 20 };
        let mut q = Queue::new("file", limits, spool(&dir));
        for n in 0..20 {
            q.push(log(n), 1, 0);
        }
        assert_eq!(q.in_memory(), 4);
        assert_eq!(q.stats().spooled, 16);
        assert_eq!(q.pending().records, 20);
        // Memory frees up: new records still queue behind the spooled ones.
        let b = q.batch(2, 1 << 20);
        q.commit(&b.entries);
        q.push(log(20), 1, 0);
        let mut got = vec!["line 0".to_owned(), "line 1".to_owned()];
        got.extend(drain_in_order(&mut q));
        assert_eq!(got, (0..=20).map(|n| format!("line {n}")).collect::<Vec<_>>());
        assert_eq!(q.stats().delivered, 21);
        assert_eq!(q.spool_bytes(), 0, "delivered segments are deleted");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_failed_batch_stays_and_is_sent_again() {
        let mut q = Queue::new("http", BufferConfig { max_records: 100, max_bytes: 1 << 20 }, None);
        for n in 0..5 {
            q.push(log(n), 1, 0);
        }
        let mut b = q.batch(3, 1 << 20);
        assert!(b.full);
        b.entries[0].progress = 1;
        q.keep_progress(&b.entries);
        let again = q.batch(3, 1 << 20);
        assert_eq!(again.entries.iter().map(msg).collect::<Vec<_>>(), ["line 0", "line 1", "line 2"]);
        assert_eq!(again.entries[0].progress, 1);
        let mut again = again;
        again.entries[1].rejected = true;
        assert_eq!(q.commit(&again.entries), (2, 1));
        let rest = q.batch(3, 1 << 20);
        assert!(!rest.full);
        assert_eq!(rest.entries.len(), 2);
    }

    #[test]
    fn without_a_spool_memory_is_bounded_and_the_newest_is_dropped() {
        let mut q = Queue::new("http", BufferConfig { max_records: 3, max_bytes: 1 << 20 }, None);
        for n in 0..5 {
            q.push(log(n), 1, 0);
        }
        assert_eq!(q.in_memory(), 3);
        assert_eq!(q.stats().dropped_buffer_full, 2);
        assert_eq!(drain_in_order(&mut q), ["line 0", "line 1", "line 2"]);
    }

    #[test]
    fn every_record_held_in_memory_is_on_disk_when_push_returns() {
        let dir = tempdir("wal");
        let limits = BufferConfig { max_records: 3, max_bytes: 1 << 20 };
        {
            let mut q = Queue::new("http", limits, spool(&dir));
            for n in 0..6 {
                q.push(log(n), 1, 0);
            }
            assert_eq!(q.in_memory(), 3);
            assert!(q.all_on_disk());
            assert_eq!(q.stats().spooled, 3, "only the overflow is spooled-only");
            assert!(!q.persist(), "nothing to write: the write-ahead holds it");
            // The process is killed here (no persist, no drop logic).
            std::mem::forget(q);
        }
        let mut q = Queue::new("http", limits, spool(&dir));
        q.push(log(6), 1, 0);
        assert!(q.pending().records >= 2, "estimated from the segment sizes until read");
        assert_eq!(drain_in_order(&mut q), (0..7).map(|n| format!("line {n}")).collect::<Vec<_>>());
        assert_eq!(q.spool_bytes(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_new_process_resends_nothing_that_was_delivered() {
        let dir = tempdir("cursor");
        let limits = BufferConfig { max_records: 100, max_bytes: 1 << 20 };
        let big = Some(SpoolSettings { dir: dir.clone(), max_bytes: 1 << 20, segment_bytes: 1 << 20 });
        {
            let mut q = Queue::new("http", limits, big.clone());
            for n in 0..8 {
                q.push(log(n), 1, 0);
            }
            // One segment, partly delivered: the cursor says how far.
            let b = q.batch(3, 1 << 20);
            q.commit(&b.entries);
            std::mem::forget(q);
        }
        {
            let mut q = Queue::new("http", limits, big.clone());
            let b = q.batch(2, 1 << 20);
            assert_eq!(b.entries.iter().map(msg).collect::<Vec<_>>(), ["line 3", "line 4"]);
            q.commit(&b.entries);
            // Killed again: the cursor counts the previous process's deliveries too.
            std::mem::forget(q);
        }
        let mut q = Queue::new("http", limits, big);
        assert_eq!(drain_in_order(&mut q), (5..8).map(|n| format!("line {n}")).collect::<Vec<_>>());
        assert_eq!(q.spool_bytes(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_stale_cursor_never_skips_records_of_a_later_segment() {
        let dir = tempdir("stale");
        let limits = BufferConfig { max_records: 100, max_bytes: 1 << 20 };
        {
            // A process killed after deleting its delivered segment, before moving the
            // cursor on: the cursor names a segment that is gone.
            let mut q = Queue::new("otlp", limits, spool(&dir));
            for n in 0..4 {
                q.push(log(n), 1, 0);
            }
            let b = q.batch(2, 1 << 20);
            q.commit(&b.entries);
            std::mem::forget(q);
        }
        let cursor = std::fs::read(dir.join("cursor")).unwrap();
        for seg in std::fs::read_dir(&dir).unwrap().flatten() {
            if seg.file_name() != "cursor" {
                std::fs::remove_file(seg.path()).unwrap();
            }
        }
        {
            // The next process reuses the segment ids from the start and is killed
            // before delivering anything.
            let mut q = Queue::new("otlp", limits, spool(&dir));
            for n in 10..15 {
                q.push(log(n), 1, 0);
            }
            std::mem::forget(q);
        }
        assert_ne!(std::fs::read(dir.join("cursor")).unwrap(), cursor, "the stale cursor was cleared");
        let mut q = Queue::new("otlp", limits, spool(&dir));
        assert_eq!(drain_in_order(&mut q), (10..15).map(|n| format!("line {n}")).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn everything_delivered_leaves_nothing_to_replay() {
        let dir = tempdir("done");
        let limits = BufferConfig { max_records: 100, max_bytes: 1 << 20 };
        {
            let mut q = Queue::new("http", limits, spool(&dir));
            for n in 0..10 {
                q.push(log(n), 1, 0);
            }
            assert_eq!(drain_in_order(&mut q).len(), 10);
            assert_eq!(q.spool_bytes(), 0);
            std::mem::forget(q);
        }
        let mut q = Queue::new("http", limits, spool(&dir));
        assert_eq!(q.pending().records, 0);
        assert!(drain_in_order(&mut q).is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_full_spool_keeps_new_records_in_memory_counted_and_persist_writes_them() {
        let dir = tempdir("noroom");
        let limits = BufferConfig { max_records: 100, max_bytes: 1 << 20 };
        let tiny = Some(SpoolSettings { dir: dir.clone(), max_bytes: 300, segment_bytes: 300 });
        {
            let mut q = Queue::new("http", limits, tiny.clone());
            for n in 0..6 {
                q.push(log(n), 1, 0);
            }
            assert_eq!(q.in_memory(), 6, "memory had room: nothing dropped");
            assert!(q.stats().not_written_ahead > 0);
            assert!(!q.all_on_disk());
            // The sink failed: persist writes what has no copy (past the bound, once).
            assert!(q.persist());
            assert!(q.all_on_disk());
            std::mem::forget(q);
        }
        let mut q = Queue::new("http", limits, tiny);
        assert_eq!(drain_in_order(&mut q), (0..6).map(|n| format!("line {n}")).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn persist_after_partial_delivery_of_a_loaded_segment_keeps_only_the_rest() {
        let dir = tempdir("partial");
        let limits = BufferConfig { max_records: 2, max_bytes: 1 << 20 };
        {
            let mut q = Queue::new("otlp", limits, spool(&dir));
            for n in 0..8 {
                q.push(log(n), 1, 0);
            }
            let b = q.batch(3, 1 << 20);
            q.commit(&b.entries);
            q.persist();
        }
        let mut q = Queue::new("otlp", limits, spool(&dir));
        assert_eq!(drain_in_order(&mut q), (3..8).map(|n| format!("line {n}")).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_unusable_spool_degrades_to_memory() {
        let limits = BufferConfig { max_records: 2, max_bytes: 1 << 20 };
        let bad = SpoolSettings { dir: "/proc/tandem-no-spool".into(), max_bytes: 1 << 20, segment_bytes: 1024 };
        let mut q = Queue::new("file", limits, Some(bad));
        for n in 0..4 {
            q.push(log(n), 1, 0);
        }
        assert_eq!(q.in_memory(), 2);
        assert_eq!(q.stats().dropped_buffer_full, 2);
        assert!(!q.persist());
    }

    #[test]
    fn drain_all_returns_memory_and_disk() {
        let dir = tempdir("drain");
        let mut q = Queue::new("http", BufferConfig { max_records: 2, max_bytes: 1 << 20 }, spool(&dir));
        for n in 0..5 {
            q.push(log(n), 1, 0);
        }
        let (items, left) = q.drain_all(Instant::now() + std::time::Duration::from_secs(5));
        assert_eq!(items.len(), 5);
        assert_eq!(left, 0);
        assert_eq!(q.pending().records, 0);
        assert_eq!(q.spool_bytes(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
