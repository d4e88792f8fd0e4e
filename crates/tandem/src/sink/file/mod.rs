//! sink::file: NDJSON appended to a local file, one JSON object per record and line
//! (`TANDEM_FILE_PATH`). Opened (parent directories created) at the first batch, kept
//! open, reopened after an error. A batch is one `write`; the file is opened in append
//! mode, so concurrent writers never interleave within a line.

pub mod config;

use super::{Attempt, Deliver};
use crate::config::Config;
use crate::encode::ndjson;
use crate::queue::Entry;
use std::fs::{self, File, OpenOptions};
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
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        OpenOptions::new().create(true).append(true).open(&self.path)
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
}
