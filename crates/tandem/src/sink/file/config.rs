//! sink::file::config: the `file` sink's settings (`TANDEM_FILE_PATH`), their loading
//! and their `check-config` line. Pure.

use crate::config::load::Loader;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Where the `file` sink writes when `TANDEM_FILE_PATH` is not set.
pub const DEFAULT_FILE_PATH: &str = "/tmp/tandem/records.ndjson";

/// The `file` sink's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// The file NDJSON is appended to (absolute).
    pub path: PathBuf,
}

impl FileConfig {
    pub(crate) fn load(l: &mut Loader<'_>) -> FileConfig {
        FileConfig { path: l.absolute_path("TANDEM_FILE_PATH", DEFAULT_FILE_PATH) }
    }

    pub(crate) fn describe(&self, s: &mut String) {
        // Writing to a String cannot fail.
        let _ = writeln!(s, "  file: NDJSON to {}", self.path.display());
    }
}
