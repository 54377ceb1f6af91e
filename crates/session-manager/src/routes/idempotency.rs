//! `Idempotency-Key`: the same key never sends twice, also across a restart or a crash of the
//! manager.
//!
//! Answers are kept in memory and journaled to `<data_dir>/idempotency.jsonl` (outside the browser
//! profile, so clear-session keeps it), one JSON record per line:
//! - `pending` is written (and synced) before the page is asked to send;
//! - `answered` with the status and body once the send has an answer worth replaying;
//! - `released` when the send was refused before reaching the page (not ready, rate limited), so
//!   the key may be used again.
//!
//! A key whose last record is `pending` was being sent when the manager stopped: whether WhatsApp
//! delivered it is unknown, so it is answered with a stable error, never sent again. The journal is
//! compacted at start and whenever it grows past twice the keys kept.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::error::Error;

/// Keys remembered (oldest forgotten first).
const KEYS_KEPT: usize = 10_000;
/// The journal's file name in the data directory.
pub const JOURNAL_FILE: &str = "idempotency.jsonl";

/// A first answer, replayed for a repeated key.
pub type Answer = (StatusCode, Value);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Record {
    Pending { key: String },
    Answered { key: String, status: u16, body: Value },
    Released { key: String },
}

/// The answers given per idempotency key, and the keys in arrival order (for eviction).
#[derive(Default)]
pub struct Idempotency {
    keys: Mutex<Keys>,
    journal: Option<Mutex<Journal>>,
}

#[derive(Default)]
struct Keys {
    cells: HashMap<String, Arc<OnceCell<Answer>>>,
    order: VecDeque<String>,
}

struct Journal {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl Idempotency {
    /// Loads the journal in `data_dir` (creating it), compacted to the keys kept.
    pub fn open(data_dir: &Path) -> Result<Self, Error> {
        let path = data_dir.join(JOURNAL_FILE);
        let io = |step: &'static str| {
            let path = path.display().to_string();
            move |source| Error::Io { step, path, source }
        };
        let mut answers: Vec<(String, Answer)> = Vec::new();
        if path.exists() {
            let reader = BufReader::new(File::open(&path).map_err(io("reading the idempotency journal"))?);
            let mut latest: HashMap<String, Option<Answer>> = HashMap::new();
            let mut order: Vec<String> = Vec::new();
            for line in reader.lines() {
                let line = line.map_err(io("reading the idempotency journal"))?;
                // A line torn by a crash mid-write is the only way to get a bad one: skip it.
                let Ok(record) = serde_json::from_str::<Record>(&line) else { continue };
                let (key, answer) = match record {
                    Record::Pending { key } => {
                        let answer = outcome_unknown(&key);
                        (key, Some(answer))
                    }
                    Record::Answered { key, status, body } => {
                        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                        (key, Some((status, body)))
                    }
                    Record::Released { key } => (key, None),
                };
                if !latest.contains_key(&key) {
                    order.push(key.clone());
                }
                latest.insert(key, answer);
            }
            answers = order
                .into_iter()
                .filter_map(|key| latest.remove(&key).flatten().map(|answer| (key, answer)))
                .collect();
            let skip = answers.len().saturating_sub(KEYS_KEPT);
            answers.drain(..skip);
        }
        let journal = Journal::rewrite(&path, &answers).map_err(io("writing the idempotency journal"))?;
        let mut keys = Keys::default();
        for (key, answer) in answers {
            keys.order.push_back(key.clone());
            keys.cells.insert(key, Arc::new(OnceCell::new_with(Some(answer))));
        }
        Ok(Idempotency { keys: Mutex::new(keys), journal: Some(Mutex::new(journal)) })
    }

    /// The cell holding the answer for `key` (empty until its first send has one).
    pub fn cell(&self, key: &str) -> Arc<OnceCell<Answer>> {
        let mut keys = lock(&self.keys);
        if let Some(cell) = keys.cells.get(key) {
            return cell.clone();
        }
        if keys.order.len() >= KEYS_KEPT
            && let Some(oldest) = keys.order.pop_front()
        {
            keys.cells.remove(&oldest);
        }
        let cell = Arc::new(OnceCell::new());
        keys.cells.insert(key.to_owned(), cell.clone());
        keys.order.push_back(key.to_owned());
        cell
    }

    /// Journals that `key` is about to be handed to the page.
    pub async fn pending(self: &Arc<Self>, key: &str) {
        self.append(Record::Pending { key: key.to_owned() }).await;
    }

    /// Journals the answer to replay for `key`.
    pub async fn answered(self: &Arc<Self>, key: &str, answer: &Answer) {
        let record =
            Record::Answered { key: key.to_owned(), status: answer.0.as_u16(), body: answer.1.clone() };
        self.append(record).await;
    }

    /// Journals that `key` did not reach the page and may be used again.
    pub async fn released(self: &Arc<Self>, key: &str) {
        self.append(Record::Released { key: key.to_owned() }).await;
    }

    /// Appends and syncs one record off the async workers. A journal that cannot be written is
    /// logged, not fatal: the in-memory record still prevents a repeat until the next restart.
    async fn append(self: &Arc<Self>, record: Record) {
        if self.journal.is_none() {
            return;
        }
        let this = self.clone();
        let written = tokio::task::spawn_blocking(move || this.append_blocking(&record)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not write the idempotency journal"),
            Err(e) => tracing::error!(error = %e, "the idempotency journal writer failed"),
        }
    }

    fn append_blocking(&self, record: &Record) -> std::io::Result<()> {
        let Some(journal) = &self.journal else { return Ok(()) };
        let mut journal = lock(journal);
        let line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        writeln!(journal.file, "{line}")?;
        journal.file.sync_data()?;
        journal.lines += 1;
        if journal.lines > 2 * KEYS_KEPT {
            let answers = self.answers();
            *journal = Journal::rewrite(&journal.path, &answers)?;
        }
        Ok(())
    }

    /// The answers known, oldest first.
    fn answers(&self) -> Vec<(String, Answer)> {
        let keys = lock(&self.keys);
        keys.order.iter().filter_map(|key| Some((key.clone(), keys.cells.get(key)?.get()?.clone()))).collect()
    }
}

impl Journal {
    /// Writes `answers` to a fresh file that atomically replaces `path`, and opens it for appending.
    fn rewrite(path: &Path, answers: &[(String, Answer)]) -> std::io::Result<Journal> {
        let tmp = path.with_extension("jsonl.tmp");
        {
            let mut file = File::create(&tmp)?;
            for (key, (status, body)) in answers {
                let record =
                    Record::Answered { key: key.clone(), status: status.as_u16(), body: body.clone() };
                writeln!(file, "{}", serde_json::to_string(&record).map_err(std::io::Error::other)?)?;
            }
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Journal { path: path.to_owned(), file, lines: answers.len() })
    }
}

/// The answer for a key whose send was under way when the manager stopped.
fn outcome_unknown(key: &str) -> Answer {
    let error = Error::SendFailed {
        reason: "a send with this Idempotency-Key was under way when the session-manager stopped; \
                 whether WhatsApp delivered it is unknown, so it is not sent again"
            .into(),
        detail: json!({ "idempotency_key": key, "outcome": "unknown" }),
    };
    let status = StatusCode::from_u16(error.code().http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (status, serde_json::to_value(error.body()).unwrap_or_default())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_gets_the_same_cell() {
        let cache = Idempotency::default();
        assert!(Arc::ptr_eq(&cache.cell("a"), &cache.cell("a")));
        assert!(!Arc::ptr_eq(&cache.cell("a"), &cache.cell("b")));
    }

    #[tokio::test]
    async fn answers_survive_a_restart_and_an_interrupted_send_is_never_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let first = Arc::new(Idempotency::open(dir.path()).unwrap());
        let sent: Answer = (StatusCode::OK, json!({"success": true, "data": {"message_id": "m1"}}));
        first.pending("sent").await;
        first.answered("sent", &sent).await;
        first.cell("sent").set(sent.clone()).unwrap();
        first.pending("interrupted").await;
        first.pending("refused").await;
        first.released("refused").await;
        drop(first);
        // A crash can tear the last line.
        let mut file = OpenOptions::new().append(true).open(dir.path().join(JOURNAL_FILE)).unwrap();
        write!(file, "{{\"event\":\"answ").unwrap();

        let second = Idempotency::open(dir.path()).unwrap();
        assert_eq!(second.cell("sent").get(), Some(&sent), "the first answer is replayed");
        let (status, body) =
            second.cell("interrupted").get().cloned().expect("an interrupted send has an answer");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "SEND_FAILED");
        assert_eq!(body["detail"]["outcome"], "unknown");
        assert!(second.cell("refused").get().is_none(), "a released key may be used again");
    }

    #[test]
    fn the_journal_is_compacted_to_the_answers_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let mut lines = String::new();
        for i in 0..3 {
            lines += &format!("{{\"event\":\"pending\",\"key\":\"k{i}\"}}\n");
            lines += &format!("{{\"event\":\"answered\",\"key\":\"k{i}\",\"status\":200,\"body\":{{}}}}\n");
        }
        lines += "{\"event\":\"pending\",\"key\":\"gone\"}\n{\"event\":\"released\",\"key\":\"gone\"}\n";
        std::fs::write(&path, lines).unwrap();
        let _ = Idempotency::open(dir.path()).unwrap();
        let compacted = std::fs::read_to_string(&path).unwrap();
        assert_eq!(compacted.lines().count(), 3, "{compacted}");
        assert!(compacted.lines().all(|line| line.contains("\"answered\"")), "{compacted}");
    }
}
