//! `campaign.progress` and `campaign.completed` events, from the campaigns' change announcements
//! (`CampaignEvents`: every send and state change). A progress event is recorded at each state
//! change and, while a campaign runs, at most every [`PROGRESS_EVERY`] (the latest counts: a
//! change inside the interval is recorded when it ends). `campaign.completed` is recorded once,
//! with the id `campaign.completed:<id>`. Ids of progress events name the state and counts, so
//! the same progress is never recorded twice.
//!
//! A campaign is read when its change is announced (batched over 300 ms): a state held for less
//! than that (a tiny campaign started and completed at once) may be told only by the next one.
//!
//! At start the running and paused campaigns are reported (a change of the previous run that was
//! not recorded yet is recorded then). A hub that dies between completing a campaign and recording
//! it loses that `campaign.completed` (the campaign is completed, no longer followed).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::json;
use shared_contracts::ClienteId;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::WebhookRuntime;
use crate::campaigns::CampaignState;
use crate::campaigns::events::{Batch, Changes};
use crate::campaigns::views::full_counts;
use crate::db::{DbError, HubEventKind, NewHubEvent, Store};

/// A running campaign's progress is told at most this often.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

struct Reporter {
    store: Store,
    runtime: WebhookRuntime,
    /// Per campaign: the state last recorded and when.
    last: HashMap<i64, (CampaignState, Instant)>,
    /// Campaigns whose progress is held until the interval ends.
    deferred: BTreeMap<i64, Instant>,
}

pub async fn run(store: Store, runtime: WebhookRuntime, mut changes: Changes, cancel: CancellationToken) {
    let mut reporter = Reporter { store, runtime, last: HashMap::new(), deferred: BTreeMap::new() };
    reporter.sweep().await;
    loop {
        let next_deferred = reporter.deferred.values().min().copied();
        let ids: Vec<i64> = tokio::select! {
            () = cancel.cancelled() => break,
            batch = changes.next_batch() => match batch {
                Batch::Ids(ids) => ids.into_iter().collect(),
                Batch::All => { reporter.sweep().await; continue }
                Batch::Closed => break,
            },
            () = sleep_until(next_deferred) => {
                let now = Instant::now();
                let due: Vec<i64> = reporter.deferred.iter().filter(|(_, at)| **at <= now).map(|(id, _)| *id).collect();
                due
            }
        };
        for id in ids {
            if let Err(e) = reporter.report(id).await {
                tracing::error!(campaign = id, error.message = %e, "could not record a campaign event");
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Reporter {
    /// Reports every running or paused campaign.
    async fn sweep(&mut self) {
        for state in [CampaignState::Running, CampaignState::Paused] {
            match self.store.campaigns_in_state(state).await {
                Ok(campaigns) => {
                    for c in campaigns {
                        if let Err(e) = self.report(c.id).await {
                            tracing::error!(campaign = c.id, error.message = %e, "could not record a campaign event");
                        }
                    }
                }
                Err(e) => tracing::error!(error.message = %e, "could not list campaigns to report"),
            }
        }
    }

    async fn report(&mut self, id: i64) -> Result<(), DbError> {
        let Some(c) = self.store.find_campaign(id).await? else { return Ok(()) };
        if c.state == CampaignState::Draft {
            return Ok(());
        }
        let now = Instant::now();
        if let Some((state, at)) = self.last.get(&id)
            && *state == c.state
            && now.duration_since(*at) < PROGRESS_EVERY
        {
            self.deferred.entry(id).or_insert(*at + PROGRESS_EVERY);
            return Ok(());
        }
        self.deferred.remove(&id);
        let counts = self.store.recipient_counts(&[id]).await?;
        let counts = full_counts(counts.get(&id));
        let data = json!({
            "campaign_id": c.id,
            "name": c.name,
            "state": c.state.as_str(),
            "total": c.total,
            "sent": counts["sent"],
            "failed": counts["failed"],
            "skipped": counts["skipped"],
            "pending": counts["pending"] + counts["sending"],
        });
        let cliente_id = ClienteId::try_from(c.cliente_id).ok();
        let progress = NewHubEvent {
            event_id: format!(
                "campaign.progress:{}:{}:{}:{}:{}",
                c.id,
                c.state.as_str(),
                data["sent"],
                data["failed"],
                data["skipped"]
            ),
            kind: HubEventKind::CampaignProgress,
            cliente_id,
            instance: c.instance.clone(),
            data: data.clone(),
        };
        let mut recorded = self.store.record_hub_event(&progress).await?;
        if c.state == CampaignState::Completed {
            let completed = NewHubEvent {
                event_id: format!("campaign.completed:{}", c.id),
                kind: HubEventKind::CampaignCompleted,
                cliente_id,
                instance: c.instance.clone(),
                data,
            };
            recorded |= self.store.record_hub_event(&completed).await?;
        }
        if recorded {
            self.runtime.event_recorded();
        }
        if matches!(c.state, CampaignState::Completed | CampaignState::Cancelled) {
            self.last.remove(&id);
        } else {
            self.last.insert(id, (c.state, now));
        }
        Ok(())
    }
}
