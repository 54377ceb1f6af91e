//! `session.status` events: one per change of the session's state, from the hub's status feed
//! (a state entered again, with a new `since`, is a change too: the feed may have coalesced the
//! states in between).
//! The event id is `session.status:<state>:<since>` (`since`: when the manager entered the
//! state), so the same change seen twice (the feed re-subscribes, the hub restarts) is recorded
//! once. For admins only (`cliente_id` null): the session is the company's.

use serde_json::json;
use shared_contracts::SessionState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::WebhookRuntime;
use crate::db::{HubEventKind, NewHubEvent, Store};
use crate::feed::FeedSnapshot;

pub async fn run(
    store: Store,
    runtime: WebhookRuntime,
    mut feed: watch::Receiver<FeedSnapshot>,
    cancel: CancellationToken,
) {
    // The state and `since` last recorded.
    let mut last: Option<(SessionState, String)> = None;
    loop {
        let event = {
            let snapshot = feed.borrow_and_update();
            let changed = |s: &&std::sync::Arc<crate::feed::CachedStatus>| {
                last.as_ref().is_none_or(|(state, since)| *state != s.body.state || *since != s.body.since)
            };
            snapshot.status.as_ref().filter(changed).map(|status| {
                let body = &status.body;
                let event = NewHubEvent {
                    event_id: format!("session.status:{}:{}", body.state.as_str(), body.since),
                    kind: HubEventKind::SessionStatus,
                    cliente_id: None,
                    instance: body.session.clone(),
                    data: json!({
                        "state": body.state.as_str(),
                        "previous_state": last.as_ref().map(|(state, _)| state.as_str()),
                        "connected": body.connected,
                        "phone_number": body.phone_number,
                        "since": body.since,
                    }),
                };
                ((body.state, body.since.clone()), event)
            })
        };
        if let Some((seen, event)) = event {
            match store.record_hub_event(&event).await {
                Ok(recorded) => {
                    last = Some(seen);
                    if recorded {
                        runtime.event_recorded();
                    }
                }
                Err(e) => {
                    tracing::error!(error.message = %e, "could not record a session.status event; retrying in 2 s");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(std::time::Duration::from_secs(2)) => continue,
                    }
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            changed = feed.changed() => if changed.is_err() { break },
        }
    }
}
