//! `Idempotency-Key`: the same key never sends twice, also across a restart or a crash of the
//! manager.
//!
//! A key belongs to its caller: the journal key is (`cliente_id` of the request or none, the
//! `Idempotency-Key`), so two tenants never share an answer. Each entry keeps a fingerprint (SHA-256
//! of `cliente_id`, recipient and text), and the same key with another message is refused with 422
//! `IDEMPOTENCY_KEY_REUSED`.
//!
//! Answers are kept in memory and journaled to `<data_dir>/idempotency.jsonl` (0600, outside the
//! browser profile, so clear-session keeps it), one JSON record per line:
//! - `pending` is written (and synced) before the page is asked to send;
//! - `answered` with the status, the body and the time once the send has an answer worth replaying;
//! - `released` when the send was refused after `pending` (the session left READY), so the key may
//!   be used again.
//!
//! Requests refused before reaching the page (validation, 429, 409) leave no entry behind. Answered
//! keys are forgotten by age only (IDEMPOTENCY_TTL_HOURS, 24 h by default), never because other keys
//! arrived. A key whose last record is `pending` was being sent when the manager stopped: whether
//! WhatsApp delivered it is unknown, so it is answered with a stable error, never sent again. The
//! journal is compacted (expired entries dropped) at start and whenever it grows past twice the
//! entries alive, so its size follows the sends of one TTL.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::error::Error;

/// The journal's file name in the data directory.
pub const JOURNAL_FILE: &str = "idempotency.jsonl";
/// Lines the journal may hold before it is compacted, however few entries are alive.
const MIN_COMPACTION_LINES: usize = 1_000;
/// How often memory is swept for expired answers.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A first answer, replayed for a repeated key.
pub type Answer = (StatusCode, Value);

/// Whose key it is: the request's `cliente_id` (or none) and the `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub cliente_id: Option<u64>,
    pub key: String,
}

/// An answer and when it was given (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub answer: Answer,
    pub at: u64,
}

/// The fingerprint of a send: SHA-256 over `cliente_id`, the normalized recipient and the text.
pub fn fingerprint(cliente_id: Option<u64>, to: &str, message: &str) -> String {
    let canonical = serde_json::to_vec(&(cliente_id, to, message)).unwrap_or_default();
    Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Record {
    Pending {
        #[serde(default)]
        cliente_id: Option<u64>,
        key: String,
        #[serde(default)]
        fingerprint: String,
        #[serde(default)]
        at: Option<u64>,
    },
    Answered {
        #[serde(default)]
        cliente_id: Option<u64>,
        key: String,
        #[serde(default)]
        fingerprint: String,
        /// Absent in journals written before answers expired by age: counted from the load.
        #[serde(default)]
        at: Option<u64>,
        status: u16,
        body: Value,
    },
    Released {
        #[serde(default)]
        cliente_id: Option<u64>,
        key: String,
    },
}

/// What the journal holds for an entry.
#[derive(Debug, Clone)]
enum Durable {
    Nothing,
    Pending { at: u64 },
    Answered(Settled),
}

struct Entry {
    /// Empty only in journals written before fingerprints: then any body replays.
    fingerprint: String,
    cell: Arc<OnceCell<Settled>>,
    durable: Durable,
}

/// The answers given per caller and key.
pub struct Idempotency {
    entries: Mutex<Entries>,
    journal: Option<Mutex<Journal>>,
    ttl: Duration,
    /// Set when a sweep forgot entries: the next append compacts the file.
    compact_soon: AtomicBool,
}

struct Entries {
    map: HashMap<Scope, Entry>,
    last_sweep: SystemTime,
}

struct Journal {
    path: PathBuf,
    file: File,
    lines: usize,
}

/// What [`Idempotency::claim`] found for a key.
pub enum Claim {
    /// The answer cell for this key: already set (replay) or to be set by whoever runs first.
    Cell(Arc<OnceCell<Settled>>),
    /// The key was used by this caller for another message.
    Reused,
}

impl Idempotency {
    /// An in-memory store (no journal), for tests.
    pub fn in_memory(ttl: Duration) -> Self {
        Self::with(HashMap::new(), None, ttl)
    }

    fn with(map: HashMap<Scope, Entry>, journal: Option<Journal>, ttl: Duration) -> Self {
        Idempotency {
            entries: Mutex::new(Entries { map, last_sweep: SystemTime::now() }),
            journal: journal.map(Mutex::new),
            ttl,
            compact_soon: AtomicBool::new(false),
        }
    }

    /// Loads the journal in `data_dir` (creating it), keeping the answers younger than `ttl`.
    pub fn open(data_dir: &Path, ttl: Duration) -> Result<Self, Error> {
        Self::open_at(data_dir, ttl, SystemTime::now())
    }

    /// [`Idempotency::open`] as if the time were `now`.
    pub fn open_at(data_dir: &Path, ttl: Duration, now: SystemTime) -> Result<Self, Error> {
        let path = data_dir.join(JOURNAL_FILE);
        let io = |step: &'static str| {
            let path = path.display().to_string();
            move |source| Error::Io { step, path, source }
        };
        let now_secs = unix_secs(now);
        let cutoff = now_secs.saturating_sub(ttl.as_secs());
        let mut map: HashMap<Scope, Entry> = HashMap::new();
        if path.exists() {
            let reader = BufReader::new(File::open(&path).map_err(io("reading the idempotency journal"))?);
            for line in reader.lines() {
                let line = line.map_err(io("reading the idempotency journal"))?;
                // A line torn by a crash mid-write is the only way to get a bad one: skip it.
                let Ok(record) = serde_json::from_str::<Record>(&line) else { continue };
                match record {
                    Record::Pending { cliente_id, key, fingerprint, at } => {
                        let at = at.unwrap_or(now_secs);
                        let settled = Settled { answer: outcome_unknown(&key), at };
                        map.insert(Scope { cliente_id, key }, Entry::settled(fingerprint, settled));
                    }
                    Record::Answered { cliente_id, key, fingerprint, at, status, body } => {
                        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                        let settled = Settled { answer: (status, body), at: at.unwrap_or(now_secs) };
                        map.insert(Scope { cliente_id, key }, Entry::settled(fingerprint, settled));
                    }
                    Record::Released { cliente_id, key } => {
                        map.remove(&Scope { cliente_id, key });
                    }
                }
            }
            map.retain(|_, entry| entry.cell.get().is_some_and(|s| s.at >= cutoff));
        }
        let journal =
            Journal::rewrite(&path, &durable_records(&map)).map_err(io("writing the idempotency journal"))?;
        Ok(Self::with(map, Some(journal), ttl))
    }

    /// The answer cell for `scope`, unless the caller used this key for another message.
    pub fn claim(&self, scope: &Scope, fingerprint: &str) -> Claim {
        let mut entries = lock(&self.entries);
        self.sweep(&mut entries);
        let entry = entries.map.entry(scope.clone()).or_insert_with(|| Entry {
            fingerprint: fingerprint.to_owned(),
            cell: Arc::new(OnceCell::new()),
            durable: Durable::Nothing,
        });
        if !entry.fingerprint.is_empty() && entry.fingerprint != fingerprint {
            return Claim::Reused;
        }
        Claim::Cell(entry.cell.clone())
    }

    /// Forgets `scope` if its send was refused (the cell is still empty) and nobody else waits on
    /// it: a refused request takes no slot. A waiter still holding the cell retries the send itself.
    pub fn forget_unanswered(&self, scope: &Scope, cell: Arc<OnceCell<Settled>>) {
        let mut entries = lock(&self.entries);
        let Some(entry) = entries.map.get(scope) else { return };
        // Two holders: the map and `cell`. Nobody can take a third while we hold the lock.
        if Arc::ptr_eq(&entry.cell, &cell) && cell.get().is_none() && Arc::strong_count(&cell) == 2 {
            entries.map.remove(scope);
        }
    }

    /// Journals that `scope` is about to be handed to the page.
    pub async fn pending(self: &Arc<Self>, scope: &Scope) {
        let at = unix_secs(SystemTime::now());
        let fingerprint = {
            let mut entries = lock(&self.entries);
            let Some(entry) = entries.map.get_mut(scope) else { return };
            entry.durable = Durable::Pending { at };
            entry.fingerprint.clone()
        };
        let record = Record::Pending {
            cliente_id: scope.cliente_id,
            key: scope.key.clone(),
            fingerprint,
            at: Some(at),
        };
        self.append(record).await;
    }

    /// Journals the answer to replay for `scope`.
    pub async fn answered(self: &Arc<Self>, scope: &Scope, settled: &Settled) {
        let fingerprint = {
            let mut entries = lock(&self.entries);
            let Some(entry) = entries.map.get_mut(scope) else { return };
            entry.durable = Durable::Answered(settled.clone());
            entry.fingerprint.clone()
        };
        self.append(answered_record(scope, &fingerprint, settled)).await;
    }

    /// Journals that `scope` did not reach the page and may be used again.
    pub async fn released(self: &Arc<Self>, scope: &Scope) {
        if let Some(entry) = lock(&self.entries).map.get_mut(scope) {
            entry.durable = Durable::Nothing;
        }
        self.append(Record::Released { cliente_id: scope.cliente_id, key: scope.key.clone() }).await;
    }

    /// Entries in memory (answered, in flight or just claimed).
    pub fn len(&self) -> usize {
        lock(&self.entries).map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// At most once a minute: forgets the answers older than the TTL.
    fn sweep(&self, entries: &mut Entries) {
        let now = SystemTime::now();
        if now.duration_since(entries.last_sweep).unwrap_or_default() < SWEEP_EVERY {
            return;
        }
        entries.last_sweep = now;
        let cutoff = unix_secs(now).saturating_sub(self.ttl.as_secs());
        let before = entries.map.len();
        entries.map.retain(|_, entry| entry.cell.get().is_none_or(|s| s.at >= cutoff));
        if entries.map.len() < before {
            self.compact_soon.store(true, Ordering::Relaxed);
        }
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
        let alive = self.len();
        if journal.lines > (2 * alive).max(MIN_COMPACTION_LINES)
            || self.compact_soon.swap(false, Ordering::Relaxed)
        {
            let records = {
                let mut entries = lock(&self.entries);
                let cutoff = unix_secs(SystemTime::now()).saturating_sub(self.ttl.as_secs());
                entries.map.retain(|_, entry| entry.cell.get().is_none_or(|s| s.at >= cutoff));
                durable_records(&entries.map)
            };
            *journal = Journal::rewrite(&journal.path, &records)?;
        }
        Ok(())
    }
}

impl Entry {
    fn settled(fingerprint: String, settled: Settled) -> Self {
        Entry {
            fingerprint,
            durable: Durable::Answered(settled.clone()),
            cell: Arc::new(OnceCell::new_with(Some(settled))),
        }
    }
}

/// What the journal must hold for `map`: every answer, and every send under way.
fn durable_records(map: &HashMap<Scope, Entry>) -> Vec<Record> {
    let mut records: Vec<(u64, Record)> = map
        .iter()
        .filter_map(|(scope, entry)| match &entry.durable {
            Durable::Nothing => None,
            Durable::Pending { at } => Some((
                *at,
                Record::Pending {
                    cliente_id: scope.cliente_id,
                    key: scope.key.clone(),
                    fingerprint: entry.fingerprint.clone(),
                    at: Some(*at),
                },
            )),
            Durable::Answered(settled) => {
                Some((settled.at, answered_record(scope, &entry.fingerprint, settled)))
            }
        })
        .collect();
    records.sort_by_key(|(at, _)| *at);
    records.into_iter().map(|(_, record)| record).collect()
}

fn answered_record(scope: &Scope, fingerprint: &str, settled: &Settled) -> Record {
    Record::Answered {
        cliente_id: scope.cliente_id,
        key: scope.key.clone(),
        fingerprint: fingerprint.to_owned(),
        at: Some(settled.at),
        status: settled.answer.0.as_u16(),
        body: settled.answer.1.clone(),
    }
}

impl Journal {
    /// Writes `records` to a fresh file (0600) that atomically replaces `path`, and opens it for
    /// appending.
    fn rewrite(path: &Path, records: &[Record]) -> std::io::Result<Journal> {
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
}

/// Options for a file only the manager's user may read (whatever the umask).
fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
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

pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn scope(cliente_id: Option<u64>, key: &str) -> Scope {
        Scope { cliente_id, key: key.to_owned() }
    }

    fn cell(store: &Idempotency, scope: &Scope, fingerprint: &str) -> Arc<OnceCell<Settled>> {
        match store.claim(scope, fingerprint) {
            Claim::Cell(cell) => cell,
            Claim::Reused => panic!("{scope:?} refused as reused"),
        }
    }

    fn settled(id: &str) -> Settled {
        Settled {
            answer: (StatusCode::OK, json!({"success": true, "data": {"message_id": id}})),
            at: unix_secs(SystemTime::now()),
        }
    }

    #[test]
    fn keys_belong_to_their_caller_and_a_key_is_bound_to_its_message() {
        let store = Idempotency::in_memory(DAY);
        let (a, b, none) = (scope(Some(1), "k"), scope(Some(2), "k"), scope(None, "k"));
        let fa = fingerprint(Some(1), "5491100000001", "hola");
        let fb = fingerprint(Some(2), "5491100000001", "hola");
        assert_ne!(fa, fb, "the caller is part of the fingerprint");
        let first = cell(&store, &a, &fa);
        assert!(Arc::ptr_eq(&first, &cell(&store, &a, &fa)));
        assert!(!Arc::ptr_eq(&first, &cell(&store, &b, &fb)));
        assert!(!Arc::ptr_eq(&first, &cell(&store, &none, &fingerprint(None, "5491100000001", "hola"))));
        let other = fingerprint(Some(1), "5491100000001", "chau");
        assert!(matches!(store.claim(&a, &other), Claim::Reused));
    }

    #[test]
    fn a_refused_send_leaves_no_entry_unless_someone_waits_on_it() {
        let store = Idempotency::in_memory(DAY);
        let s = scope(None, "k");
        let first = cell(&store, &s, "f");
        store.forget_unanswered(&s, first);
        assert!(store.is_empty());
        let first = cell(&store, &s, "f");
        let waiter = cell(&store, &s, "f");
        store.forget_unanswered(&s, first);
        assert_eq!(store.len(), 1, "kept while a waiter holds it");
        store.forget_unanswered(&s, waiter);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn answers_survive_a_restart_and_an_interrupted_send_is_never_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let first = Arc::new(Idempotency::open(dir.path(), DAY).unwrap());
        let (sent, interrupted, refused) =
            (scope(Some(7), "sent"), scope(None, "interrupted"), scope(None, "refused"));
        let answer = settled("m1");
        let c = cell(&first, &sent, "f1");
        first.pending(&sent).await;
        first.answered(&sent, &answer).await;
        c.set(answer.clone()).unwrap();
        let _c = cell(&first, &interrupted, "f2");
        first.pending(&interrupted).await;
        let _c = cell(&first, &refused, "f3");
        first.pending(&refused).await;
        first.released(&refused).await;
        drop(first);
        // A crash can tear the last line.
        let mut file = OpenOptions::new().append(true).open(dir.path().join(JOURNAL_FILE)).unwrap();
        write!(file, "{{\"event\":\"answ").unwrap();

        let second = Idempotency::open(dir.path(), DAY).unwrap();
        assert_eq!(cell(&second, &sent, "f1").get(), Some(&answer), "the first answer is replayed");
        assert!(matches!(second.claim(&sent, "another body"), Claim::Reused), "the fingerprint is kept");
        assert!(cell(&second, &scope(None, "sent"), "f1").get().is_none(), "another caller's key is not");
        let Settled { answer: (status, body), .. } =
            cell(&second, &interrupted, "f2").get().cloned().expect("an interrupted send has an answer");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "SEND_FAILED");
        assert_eq!(body["detail"]["outcome"], "unknown");
        assert!(cell(&second, &refused, "f3").get().is_none(), "a released key may be used again");
    }

    #[test]
    fn answers_older_than_the_ttl_are_dropped_on_load_and_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let now = SystemTime::now();
        let old = unix_secs(now) - DAY.as_secs() - 60;
        let young = unix_secs(now) - DAY.as_secs() + 3600;
        let mut lines = String::new();
        for (key, at) in [("old", old), ("young", young)] {
            lines += &format!(
                "{{\"event\":\"pending\",\"cliente_id\":3,\"key\":\"{key}\",\"fingerprint\":\"f\",\"at\":{at}}}\n"
            );
            lines += &format!(
                "{{\"event\":\"answered\",\"cliente_id\":3,\"key\":\"{key}\",\"fingerprint\":\"f\",\"at\":{at},\"status\":200,\"body\":{{}}}}\n"
            );
        }
        // A journal from before expiry by age (no cliente_id, fingerprint nor time) still loads.
        lines += "{\"event\":\"answered\",\"key\":\"legacy\",\"status\":200,\"body\":{}}\n";
        lines += "{\"event\":\"pending\",\"key\":\"gone\"}\n{\"event\":\"released\",\"key\":\"gone\"}\n";
        std::fs::write(&path, lines).unwrap();

        let store = Idempotency::open_at(dir.path(), DAY, now).unwrap();
        assert!(cell(&store, &scope(Some(3), "old"), "f").get().is_none(), "expired");
        assert!(cell(&store, &scope(Some(3), "young"), "f").get().is_some());
        assert!(cell(&store, &scope(None, "legacy"), "any").get().is_some(), "kept, counted from now");
        let compacted = std::fs::read_to_string(&path).unwrap();
        assert_eq!(compacted.lines().count(), 2, "{compacted}");
        assert!(!compacted.contains("\"old\"") && !compacted.contains("\"gone\""), "{compacted}");
        assert!(compacted.lines().all(|line| line.contains("\"answered\"")), "{compacted}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the journal holds phone numbers: {mode:o}");
    }

    #[tokio::test]
    async fn the_file_stays_bounded_by_the_entries_alive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Idempotency::open(dir.path(), DAY).unwrap());
        // Sends refused after `pending` (the session left READY) write two lines each, keep nothing.
        for i in 0..600 {
            let s = scope(None, &format!("refused-{i}"));
            let c = cell(&store, &s, "f");
            store.pending(&s).await;
            store.released(&s).await;
            store.forget_unanswered(&s, c);
        }
        assert!(store.is_empty());
        let lines = std::fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap().lines().count();
        assert!(lines <= MIN_COMPACTION_LINES, "{lines} lines for no entry");
    }
}
