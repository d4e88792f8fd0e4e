//! journal: the acknowledged events that are in no record yet — the platform events of
//! invocations still waiting for their `platform.report` (see
//! [`crate::invocation::Correlator::held`]) — kept in one small file beside the sinks'
//! spools, so that a process started after a `kill -9` rebuilds those invocations
//! instead of losing them. The records themselves are protected by the queues'
//! write-ahead ([`crate::queue`]); this covers the correlator's memory.
//!
//! Rewritten in place after each batch that changed it (one positioned write and a
//! truncate of a few hundred bytes; skipped when unchanged), never `fsync`ed (the page
//! cache outlives the process). The first line is the length of what follows, so that a
//! process killed between the write and the truncate leaves no stale tail to read. Read
//! once, before the first batch of a new process. Private like the spool
//! ([`crate::spool::private`]); any I/O error turns it off (told once): it can only
//! cost the records it protects, never the function.

use crate::diag;
use crate::spool::private;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use tandem_wire::telemetry::Record;
use tandem_wire::Event;

/// The journal's file name in the spool directory (beside the sinks' directories).
pub const FILE_NAME: &str = "held-invocations.ndjson";
/// The longest journal read back (a bound on a corrupt or foreign file).
const MAX_BYTES: u64 = 4 << 20;
/// The header: 20 digits and a newline.
const HEADER: usize = 21;

/// See the module documentation.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: Option<File>,
    /// What the file holds now (after its header).
    last: Vec<u8>,
    off: bool,
    loaded: bool,
}

impl Journal {
    /// A journal in `dir` (the spool directory); `None` turns it off. No I/O.
    pub fn new(dir: Option<&Path>) -> Journal {
        Journal {
            dir: dir.map(Path::to_path_buf).unwrap_or_default(),
            file: None,
            last: Vec::new(),
            off: dir.is_none(),
            loaded: false,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// What a previous process left (oldest first), once: empty on later calls, when
    /// there is nothing, or when it cannot be read.
    pub fn load(&mut self) -> Vec<(u64, Record)> {
        if self.off || std::mem::replace(&mut self.loaded, true) {
            return Vec::new();
        }
        let text = match private::read(&self.path()) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                self.failed("read", &e);
                return Vec::new();
            }
        };
        parse(&text)
    }

    /// Writes `held` when it differs from what the file holds.
    pub fn save<'a>(&mut self, held: impl Iterator<Item = (u64, &'a Record)>) {
        if self.off {
            return;
        }
        let mut body = Vec::new();
        for (t, r) in held {
            let event = Event::new(tandem_wire::time::format_epoch_millis(t), r.clone());
            if serde_json::to_writer(&mut body, &event).is_ok() {
                body.push(b'\n');
            }
        }
        if body == self.last || u64::try_from(body.len()).map_or(true, |n| n > MAX_BYTES) {
            return;
        }
        if let Err(e) = self.write(&body) {
            self.failed("write", &e);
            return;
        }
        self.last = body;
    }

    fn write(&mut self, body: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            private::dir(&self.dir)?;
            self.file = Some(private::overwrite(&self.path())?);
        }
        let Some(file) = self.file.as_ref() else {
            return Err(io::Error::other("the journal is not open"));
        };
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(format!("{:020}\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        file.write_all_at(&out, 0)?;
        file.set_len(out.len() as u64)
    }

    fn failed(&mut self, what: &str, e: &io::Error) {
        self.off = true;
        self.file = None;
        diag::warn(format_args!(
            "cannot {what} {}: {e}; invocations waiting for their report are held in memory only",
            self.path().display()
        ));
    }
}

/// The events of a journal's text: only the length its header names, and only the
/// lines that parse as events.
fn parse(text: &[u8]) -> Vec<(u64, Record)> {
    let Some(header) = text.get(..HEADER) else {
        return Vec::new();
    };
    let Some(len) = std::str::from_utf8(&header[..HEADER - 1]).ok().and_then(|h| h.parse::<usize>().ok()) else {
        return Vec::new();
    };
    let Some(body) = text.get(HEADER..HEADER.saturating_add(len)) else {
        return Vec::new();
    };
    body.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<Event>(l).ok())
        .filter_map(|e| Some((e.epoch_millis()?, e.record)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(id: &str) -> Record {
        let e: Event = serde_json::from_value(serde_json::json!({
            "time": "2026-12-06T10:00:00.000Z", "type": "platform.start",
            "record": {"requestId": id, "version": "$LATEST"}
        }))
        .unwrap();
        e.record
    }

    fn tempdir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tandem-journal-{name}-{}-{}", std::process::id(), fastrand::u64(..)))
    }

    #[test]
    fn what_is_saved_is_loaded_by_a_new_process() {
        let dir = tempdir("roundtrip");
        let held = [(1_765_015_200_000, start("a")), (1_765_015_200_001, start("b"))];
        let mut j = Journal::new(Some(&dir));
        j.save(held.iter().map(|(t, r)| (*t, r)));
        let mut again = Journal::new(Some(&dir));
        assert_eq!(again.load(), held.to_vec());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_shorter_save_leaves_no_stale_tail_even_without_the_truncate() {
        let dir = tempdir("tail");
        let mut j = Journal::new(Some(&dir));
        let two = [(1, start("a")), (2, start("b"))];
        j.save(two.iter().map(|(t, r)| (*t, r)));
        j.save(two[..1].iter().map(|(t, r)| (*t, r)));
        assert_eq!(Journal::new(Some(&dir)).load(), two[..1].to_vec());
        // A process killed between the write and the truncate: the old tail is there,
        // the header says where the journal ends.
        let mut text = std::fs::read(dir.join(FILE_NAME)).unwrap();
        text.extend_from_slice(b"{\"time\":\"2026-12-06T10:00:00.000Z\",\"type\":\"platform.start\",\"record\":{\"requestId\":\"stale\"}}\n");
        assert_eq!(parse(&text), two[..1].to_vec());
        j.save(std::iter::empty());
        assert!(Journal::new(Some(&dir)).load().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn garbage_and_a_missing_file_are_nothing() {
        assert!(parse(b"").is_empty());
        assert!(parse(b"not a header at all, no digits here\n{}").is_empty());
        assert!(parse(b"00000000000000000099\n{}").is_empty(), "a header longer than the file");
        assert!(Journal::new(Some(&tempdir("missing"))).load().is_empty());
        assert!(Journal::new(None).load().is_empty());
    }
}
