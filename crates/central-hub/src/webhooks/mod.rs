//! Webhooks: signed, durable, at-least-once deliveries of the hub's events (`hub_event`) to the
//! CRM's endpoints.
//!
//! - `store`: the endpoints (`webhook`); `outbox`: their deliveries (`webhook_delivery`).
//! - `fanout`: event log → one pending delivery per webhook that wants the event.
//! - `worker`: claims due deliveries with a lease, POSTs them signed (`sign`), retries with
//!   back-off, ends them `delivered` or `dead`.
//! - `target`: which URLs a webhook may point at (clients: public addresses only).
//! - `session_events`, `campaign_events`: record `session.status` and `campaign.*` events.
//! - `routes`: `/api/webhooks`.
//!
//! See docs/contracts.md ("Webhooks") and README.md (signature verification).

pub mod campaign_events;
pub mod fanout;
pub mod metrics;
pub mod outbox;
pub mod routes;
pub mod session_events;
pub mod sign;
pub mod store;
pub mod target;
pub mod worker;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::campaigns::events::CampaignEvents;
use crate::config::WebhookSettings;
use crate::db::Store;
use crate::feed::StatusFeed;
use metrics::WebhookMetrics;

/// What producers and routes use to talk to the webhook tasks. Cheap to clone.
#[derive(Clone)]
pub struct WebhookRuntime {
    pub settings: WebhookSettings,
    pub metrics: Arc<WebhookMetrics>,
    fanout_wake: Arc<Notify>,
    worker_wake: Arc<Notify>,
}

impl WebhookRuntime {
    pub fn new(settings: WebhookSettings) -> Self {
        Self { settings, metrics: Arc::default(), fanout_wake: Arc::default(), worker_wake: Arc::default() }
    }

    /// Call after committing a `hub_event`: the fan-out reads it at once instead of at its next
    /// poll (the difference between a few milliseconds and up to 250 ms of latency).
    pub fn event_recorded(&self) {
        self.fanout_wake.notify_one();
    }

    /// Deliveries were queued (or replayed): the worker claims them at once.
    pub fn deliveries_queued(&self) {
        self.worker_wake.notify_one();
    }

    /// Starts the fan-out, the delivery worker and the session/campaign event recorders; they end
    /// when `cancel` is cancelled.
    pub fn spawn(
        &self,
        store: &Store,
        feed: &StatusFeed,
        campaigns: &CampaignEvents,
        cancel: &CancellationToken,
    ) -> Result<Vec<JoinHandle<()>>, reqwest::Error> {
        let senders = worker::Senders::new(&self.settings)?;
        Ok(vec![
            tokio::spawn(fanout::run(store.clone(), self.clone(), self.fanout_wake.clone(), cancel.clone())),
            tokio::spawn(worker::run(
                store.clone(),
                self.clone(),
                senders,
                self.worker_wake.clone(),
                cancel.clone(),
            )),
            tokio::spawn(session_events::run(store.clone(), self.clone(), feed.subscribe(), cancel.clone())),
            tokio::spawn(campaign_events::run(
                store.clone(),
                self.clone(),
                campaigns.subscribe(),
                cancel.clone(),
            )),
        ])
    }
}
