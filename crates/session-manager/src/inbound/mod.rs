//! Inbound events (incoming messages, acks of our messages): journaled durably with a sequence,
//! then published to the `/events` subscribers.
//!
//! The session actor hands each event the page reported to a bounded queue ([`QUEUE`] events); a
//! writer task takes them in batches, appends them to the journal (`journal.rs`: one write and one
//! fsync per batch, events already journaled skipped) and only then publishes them. When the queue
//! is full the actor waits for the writer (nothing is dropped); when the journal cannot be written
//! (a full disk) the writer keeps the batch and retries with a back-off up to [`RETRY_MAX`], logging
//! each failure, so events wait rather than vanish.
//!
//! A subscriber that asks for the events after `N` (`Last-Event-ID`, `?since=`) subscribes to the
//! live events first, then reads the journal: anything journaled before the read is in the file,
//! anything after reaches the live receiver, and the subscriber skips what it already sent.

pub mod journal;
pub mod watermark;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use shared_contracts::InboundEvent;
use tokio::sync::{broadcast, mpsc};

use crate::metrics::Metrics;
use crate::telemetry::now_ms;
pub use journal::{JOURNAL_FILE, Journal, Limits, Offered};

/// Events the actor may hand over before it waits for the journal.
pub const QUEUE: usize = 1024;
/// Events journaled per write (one fsync each).
const BATCH: usize = 256;
/// Live events a slow subscriber may fall behind before it catches up from the journal.
const LIVE_CAPACITY: usize = 1024;
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The journal and its live subscribers. Shared by the writer task and the `/events` handlers.
pub struct Inbound {
    journal: Mutex<Journal>,
    live: broadcast::Sender<Arc<InboundEvent>>,
    session: String,
    metrics: Arc<Metrics>,
}

/// Where the journal stands: the oldest sequence kept (if any) and the next to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub oldest: Option<u64>,
    pub next: u64,
}

/// The actor's end of the queue.
pub type InboundSender = mpsc::Sender<Offered>;

impl Inbound {
    /// Opens the journal in `data_dir` for `session`.
    pub fn open(
        data_dir: &Path,
        limits: Limits,
        session: &str,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Arc<Self>> {
        let journal = Journal::open(data_dir, limits, now_ms())?;
        tracing::info!(
            path = %journal.path().display(),
            events = journal.len(),
            next_seq = journal.next_seq(),
            bytes = journal.bytes(),
            "inbound journal open"
        );
        metrics.inbound_journal_bytes.store(journal.bytes(), Ordering::Relaxed);
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        Ok(Arc::new(Inbound { journal: Mutex::new(journal), live, session: session.to_owned(), metrics }))
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        // A panic while holding the lock leaves the journal as the last append left it.
        self.journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the writer task; the sender is the actor's.
    pub fn start(self: &Arc<Self>) -> InboundSender {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(self.clone().write_loop(rx));
        tx
    }

    /// Journals then publishes; the writer task's body (public for tests without an actor).
    pub fn append<O: Into<Offered>>(&self, kinds: Vec<O>) -> std::io::Result<Vec<InboundEvent>> {
        let mut journal = self.journal();
        let offered = kinds.len();
        let events = journal.append(&self.session, kinds, now_ms())?;
        self.metrics.inbound_journal_bytes.store(journal.bytes(), Ordering::Relaxed);
        self.metrics.inbound_events_written.fetch_add(events.len() as u64, Ordering::Relaxed);
        self.metrics.inbound_duplicates.fetch_add((offered - events.len()) as u64, Ordering::Relaxed);
        // Published under the lock: subscribers see the events in sequence order.
        for event in &events {
            let _ = self.live.send(Arc::new(event.clone()));
        }
        Ok(events)
    }

    async fn write_loop(self: Arc<Self>, mut rx: mpsc::Receiver<Offered>) {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let mut backoff = RETRY_MIN;
            loop {
                let (inbound, kinds) = (self.clone(), batch.clone());
                match tokio::task::spawn_blocking(move || inbound.append(kinds)).await {
                    Ok(Ok(events)) => {
                        tracing::debug!(events = events.len(), "inbound events journaled");
                        break;
                    }
                    Ok(Err(e)) => tracing::error!(
                        error = %e,
                        events = batch.len(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "could not write the inbound journal: retrying (check the data directory's disk)"
                    ),
                    Err(e) => tracing::error!(error = %e, "the inbound journal writer panicked: retrying"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
            batch.clear();
        }
        tracing::debug!("inbound writer stopped");
    }

    /// A receiver of the events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<InboundEvent>> {
        self.live.subscribe()
    }

    pub fn bounds(&self) -> Bounds {
        let journal = self.journal();
        Bounds { oldest: journal.oldest_seq(), next: journal.next_seq() }
    }

    /// Sends every journaled event after `after` to `tx`, in order, from a blocking thread; returns
    /// the last sequence sent (`after` when none). Stops early when the receiver is gone.
    pub async fn replay(&self, after: u64, tx: mpsc::Sender<Arc<InboundEvent>>) -> std::io::Result<u64> {
        let path = self.journal().path().to_owned();
        let read = tokio::task::spawn_blocking(move || {
            let mut last = after;
            journal::read_after(&path, after, |event| {
                last = event.seq;
                Ok(tx.blocking_send(Arc::new(event)).is_ok())
            })?;
            Ok(last)
        });
        read.await.map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests;
