//! sink::file: NDJSON appended to a local file, one JSON object per record and line
//! (`TANDEM_FILE_PATH`). Opened (parent directories created) at the first batch, kept
//! open, reopened after an error. A batch is one `write`; the file is opened in append
//! mode, so concurrent writers never interleave within a line. Created 0600 (missing
//! directories 0700), never through a symbolic link, never another user's file
//! ([`crate::spool::private`]): the default path is under a shared, predictable `/tmp`.

pub mod config;

use super::{Attempt, Deliver};
use crate::config::Config;
use crate::encode::ndjson;
use crate::queue::Entry;
use crate::spool::private;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The `file` sink.
pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
}

impl FileSink {
    /// A sink appending to `path` (opened at the first batch).
    pub fn new(path: PathBuf) -> FileSink {
        FileSink { path, file: None, buf: Vec::new() }
    }

    fn open(&self) -> std::io::Result<File> {
        private::parents(&self.path)?;
        private::append(&self.path)
    }

    /// Appends the batch in one write.
    pub fn attempt(&mut self, batch: &mut [Entry]) -> Attempt {
        self.buf.clear();
        ndjson::encode_batch(batch.iter().map(|e| &*e.item), &mut self.buf);
        let file = match self.file.take() {
            Some(f) => f,
            None => match self.open() {
                Ok(f) => f,
                Err(e) => return Attempt::retry(format!("cannot open {}: {e}", self.path.display())),
            },
        };
        let mut file = file;
        match file.write_all(&self.buf) {
            Ok(()) => {
                self.file = Some(file);
                Attempt::Ok
            }
            Err(e) => Attempt::retry(format!("cannot write to {}: {e}", self.path.display())),
        }
    }
}

impl Deliver for FileSink {
    fn build(config: &Config, _instance: &Arc<OnceLock<String>>) -> Result<Self, String> {
        Ok(FileSink::new(config.file.path.clone()))
    }

    fn attempt_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn attempt(&mut self, batch: &mut [Entry]) -> impl Future<Output = Attempt> + Send {
        std::future::ready(FileSink::attempt(self, batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HealthSnapshot, Item};
    use std::sync::Arc;

    #[test]
    fn appends_one_line_per_record_creating_directories() {
        let dir = std::env::temp_dir().join(format!("tandem-file-{}-{}", std::process::id(), fastrand::u64(..)));
        let path = dir.join("a/b/out.ndjson");
        let mut s = FileSink::new(path.clone());
        let mut batch: Vec<Entry> =
            (0..3).map(|_| Entry::new(Arc::new(Item::from(HealthSnapshot::default())), 1)).collect();
        assert_eq!(s.attempt(&mut batch), Attempt::Ok);
        assert_eq!(s.attempt(&mut batch[..1]), Attempt::Ok);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"] == "health"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_file_is_private_and_a_symlinked_path_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tandem-file-priv-{}-{}", std::process::id(), fastrand::u64(..)));
        let path = dir.join("sub/out.ndjson");
        let mut s = FileSink::new(path.clone());
        let mut batch = vec![Entry::new(Arc::new(Item::from(HealthSnapshot::default())), 1)];
        assert_eq!(s.attempt(&mut batch), Attempt::Ok);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.join("sub")), 0o700);
        // Someone plants a link where the sink writes: it must not write through it.
        let target = dir.join("victim");
        std::fs::write(&target, b"untouched").unwrap();
        let link = dir.join("link.ndjson");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut s = FileSink::new(link);
        match s.attempt(&mut batch) {
            Attempt::Retry { reason, .. } => assert!(reason.contains("symbolic link"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
        let _ = std::fs::remove_dir_all(dir);
    }
}
