//! The follower: applies the inbound events the status feed reads from the manager's stream, one
//! at a time and in order, each in its own transaction. A failure (the database is down) is
//! retried with back-off, never skipped: the stored position does not move past an event that is
//! not stored, so a hub stopped meanwhile gets it again from the manager.
//!
//! The feed hands events over a bounded queue (it waits when the queue is full, so a slow database
//! slows the reading, never drops), and asks [`InboundSink::resume_after`] for the `Last-Event-ID`
//! of each (re)connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shared_contracts::{ADMIN_SESSION, InboundEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::OptOutKeywords;
use super::apply::Applied;
use super::metrics::Outcome;
use crate::campaigns::events::CampaignEvents;
use crate::db::{DbError, Store};
use crate::metrics::Metrics;
use crate::webhooks::WebhookRuntime;

/// Events read from the stream and not applied yet, at most.
const QUEUE: usize = 256;
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The feed's handle on the follower. Cheap to clone.
#[derive(Clone)]
pub struct InboundSink {
    tx: mpsc::Sender<InboundEvent>,
    store: Store,
    metrics: Arc<Metrics>,
    /// The highest sequence handed to the follower (0: none yet).
    handed: Arc<AtomicU64>,
}

impl InboundSink {
    /// Starts the follower; it ends when `cancel` is cancelled (an event being retried then is
    /// not stored, and comes again from the manager at the next start).
    pub fn spawn(
        store: Store,
        keywords: OptOutKeywords,
        metrics: Arc<Metrics>,
        campaigns: CampaignEvents,
        webhooks: WebhookRuntime,
        cancel: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let follower =
            Follower { store: store.clone(), keywords, metrics: metrics.clone(), campaigns, webhooks };
        let task = tokio::spawn(follower.run(rx, cancel));
        (Self { tx, store, metrics, handed: Arc::default() }, task)
    }

    /// The `Last-Event-ID` of a (re)connection: the stored position, or the last event already
    /// queued when that is further.
    pub async fn resume_after(&self) -> Result<u64, DbError> {
        let stored = self.store.inbound_position(ADMIN_SESSION).await?;
        Ok(stored.max(self.handed.load(Ordering::Relaxed)))
    }

    /// Queues an event (waits while the queue is full). `false` when the follower has stopped.
    pub async fn deliver(&self, event: InboundEvent) -> bool {
        let seq = event.seq;
        if self.tx.send(event).await.is_err() {
            return false;
        }
        self.handed.fetch_max(seq, Ordering::Relaxed);
        true
    }

    /// The manager dropped events `from..oldest` before the hub read them (its retention):
    /// nothing can bring them back, so it is said loudly and counted.
    pub fn gap(&self, from: u64, oldest: u64) {
        self.metrics.inbound.gap();
        tracing::warn!(
            from,
            oldest,
            lost = oldest.saturating_sub(from),
            "the session-manager no longer has the inbound events from {from} to before {oldest} \
             (its journal retention dropped them while the hub was away): they are lost; consider a \
             longer retention on the manager"
        );
    }

    /// An `inbound` event that does not parse: it cannot be applied, so it is said and counted.
    pub fn unreadable(&self, data: &str, error: &serde_json::Error) {
        self.metrics.inbound.unreadable();
        let snippet: String = data.chars().take(200).collect();
        tracing::error!(error.message = %error, data = %snippet, "an inbound event from the session-manager does not parse: skipped");
    }
}

struct Follower {
    store: Store,
    keywords: OptOutKeywords,
    metrics: Arc<Metrics>,
    campaigns: CampaignEvents,
    /// Woken after each stored event: its `hub_event` is fanned out to the webhooks at once.
    webhooks: WebhookRuntime,
}

impl Follower {
    async fn run(self, mut rx: mpsc::Receiver<InboundEvent>, cancel: CancellationToken) {
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                event = rx.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
            };
            if !self.apply(&event, &cancel).await {
                return;
            }
        }
    }

    /// Applies `event`, retrying until it is stored; `false` when cancelled first.
    async fn apply(&self, event: &InboundEvent, cancel: &CancellationToken) -> bool {
        let mut backoff = MIN_BACKOFF;
        let mut failures: u32 = 0;
        loop {
            match self.store.apply_inbound(event, &self.keywords).await {
                Ok(applied) => {
                    if failures > 0 {
                        tracing::info!(seq = event.seq, failures, "inbound event stored after retries");
                    }
                    self.webhooks.event_recorded();
                    self.applied(event, applied);
                    return true;
                }
                Err(e) => {
                    self.metrics.inbound.failure();
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(20) {
                        tracing::error!(
                            seq = event.seq,
                            failures,
                            error.message = %e,
                            "could not store an inbound event; retrying (nothing is skipped). Check the database"
                        );
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn applied(&self, event: &InboundEvent, applied: Applied) {
        let lag = crate::campaigns::now_ms() - event.received_at;
        let (outcome, campaign) = match applied {
            Applied::Duplicate => (Outcome::Duplicate, None),
            Applied::Message { campaign_id, .. } => (Outcome::Message, campaign_id),
            Applied::Ack { campaign_id } => (Outcome::Ack, campaign_id),
            Applied::HeldAck => (Outcome::HeldAck, None),
        };
        self.metrics.inbound.applied(outcome, event.seq, lag);
        if let Some(id) = campaign {
            self.campaigns.changed(id);
        }
    }
}
