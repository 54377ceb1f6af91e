//! `Idempotency-Key`: the same key never sends twice, also across a restart or a crash of the
//! manager.
//!
//! A key belongs to its caller: the journal key is (`cliente_id` of the request or none, the
//! `Idempotency-Key`), so two tenants never share an answer. Each entry keeps a fingerprint (SHA-256
//! of `cliente_id`, recipient and text), and the same key with another message is refused with 422
//! `IDEMPOTENCY_KEY_REUSED`.
//!
//! Answers are kept in memory and journaled to `<data_dir>/idempotency.jsonl` (`journal.rs`: 0600,
//! outside the browser profile, so clear-session keeps it), one JSON record per line:
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

mod journal;
mod once;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::error::Error;
pub use journal::JOURNAL_FILE;
use journal::{Claimed, Journal, Record};
pub use once::Ticket;

/// Lines the journal may hold before it is compacted, however few entries are alive.
const MIN_COMPACTION_LINES: usize = 1_000;
/// How often memory is swept for expired answers.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A first answer, replayed for a repeated key: the status and the JSON body.
pub type Answer = (StatusCode, Value);

/// The answer an error gives: the status and body its `IntoResponse` sends.
pub fn error_answer(error: &Error) -> Answer {
    let (status, body) = error.parts();
    (status, serde_json::to_value(body).unwrap_or_default())
}

/// Whose key it is: the request's `cliente_id` (or none) and the `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default)]
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
        for record in journal::load(&path).map_err(io("reading the idempotency journal"))? {
            match record {
                Record::Pending(Claimed { scope, fingerprint, at }) => {
                    let settled = Settled { answer: outcome_unknown(&scope.key), at: at.unwrap_or(now_secs) };
                    map.insert(scope, Entry::settled(fingerprint, settled));
                }
                Record::Answered { claimed: Claimed { scope, fingerprint, at }, status, body } => {
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                    let settled = Settled { answer: (status, body), at: at.unwrap_or(now_secs) };
                    map.insert(scope, Entry::settled(fingerprint, settled));
                }
                Record::Released(scope) => {
                    map.remove(&scope);
                }
            }
        }
        map.retain(|_, entry| entry.cell.get().is_some_and(|s| s.at >= cutoff));
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
        self.append(Record::Pending(Claimed { scope: scope.clone(), fingerprint, at: Some(at) })).await;
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

    /// Journals that `scope` did not reach the page and may be used again (only a key journaled
    /// as `pending` needs it: a send refused earlier left nothing on disk).
    pub async fn released(self: &Arc<Self>, scope: &Scope) {
        {
            let mut entries = lock(&self.entries);
            let Some(entry) = entries.map.get_mut(scope) else { return };
            if !matches!(entry.durable, Durable::Pending { .. }) {
                return;
            }
            entry.durable = Durable::Nothing;
        }
        self.append(Record::Released(scope.clone())).await;
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
        journal.append(record)?;
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
            journal.compact(&records)?;
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
                Record::Pending(Claimed {
                    scope: scope.clone(),
                    fingerprint: entry.fingerprint.clone(),
                    at: Some(*at),
                }),
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
        claimed: Claimed { scope: scope.clone(), fingerprint: fingerprint.to_owned(), at: Some(settled.at) },
        status: settled.answer.0.as_u16(),
        body: settled.answer.1.clone(),
    }
}

/// The answer for a key whose send was under way when the manager stopped.
fn outcome_unknown(key: &str) -> Answer {
    error_answer(&Error::SendFailed {
        reason: "a send with this Idempotency-Key was under way when the session-manager stopped; \
                 whether WhatsApp delivered it is unknown, so it is not sent again"
            .into(),
        detail: json!({ "idempotency_key": key, "outcome": "unknown" }),
    })
}

pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
