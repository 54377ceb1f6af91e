//! The idempotency journal on disk: `<data_dir>/idempotency.jsonl` (0600), one JSON record per line,
//! appended and synced, rewritten atomically when compacted.
//!
//! The format is stable: journals written by earlier versions (without `cliente_id`, `fingerprint`
//! or `at`) still load, and a line torn by a crash mid-write is skipped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Scope;

/// The journal's file name in the data directory.
pub const JOURNAL_FILE: &str = "idempotency.jsonl";

/// A key handed to the page: whose it is, the fingerprint of its message, and when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claimed {
    #[serde(flatten)]
    pub scope: Scope,
    /// Empty in journals written before fingerprints: then any body replays.
    #[serde(default)]
    pub fingerprint: String,
    /// Absent in journals written before answers expired by age: counted from the load.
    #[serde(default)]
    pub at: Option<u64>,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// Written (and synced) before the page is asked to send.
    Pending(Claimed),
    /// The answer to replay, once the send has one.
    Answered {
        #[serde(flatten)]
        claimed: Claimed,
        status: u16,
        body: Value,
    },
    /// The send was refused after `pending` (the session left READY): the key may be used again.
    Released(Scope),
}

/// The open journal, appended to.
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Lines in the file (compaction is due when they far outnumber the entries alive).
    pub lines: usize,
}

/// Reads every readable record of the journal at `path`, in order (none if there is no file).
pub fn load(path: &Path) -> std::io::Result<Vec<Record>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut records = Vec::new();
    for line in BufReader::new(File::open(path)?).lines() {
        // A line torn by a crash mid-write is the only way to get a bad one: skip it.
        if let Ok(record) = serde_json::from_str::<Record>(&line?) {
            records.push(record);
        }
    }
    Ok(records)
}

impl Journal {
    /// Writes `records` to a fresh file (0600) that atomically replaces `path`, and opens it for
    /// appending.
    pub fn rewrite(path: &Path, records: &[Record]) -> std::io::Result<Journal> {
        let tmp = path.with_extension("jsonl.tmp");
        {
            let mut file = private_file().write(true).create(true).truncate(true).open(&tmp)?;
            for record in records {
                writeln!(file, "{}", serde_json::to_string(record).map_err(std::io::Error::other)?)?;
            }
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = private_file().append(true).open(path)?;
        Ok(Journal { path: path.to_owned(), file, lines: records.len() })
    }

    /// Replaces the file with `records` (compaction).
    pub fn compact(&mut self, records: &[Record]) -> std::io::Result<()> {
        *self = Journal::rewrite(&self.path, records)?;
        Ok(())
    }

    /// Appends one record and syncs it to disk.
    pub fn append(&mut self, record: &Record) -> std::io::Result<()> {
        let line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        writeln!(self.file, "{line}")?;
        self.file.sync_data()?;
        self.lines += 1;
        Ok(())
    }
}

/// Options for a file only the manager's user may read (whatever the umask).
fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}
