//! `GET /events`: Server-Sent Events.
//!
//! - `status` (no id): the full status on subscribe and on every change.
//! - `inbound` (`id:` = the journal's sequence): every journaled incoming message and ack. With
//!   `Last-Event-ID: N` (preferred: a browser sends it when it reconnects) or `?since=N`, every
//!   journaled event after `N` first, in order, then the live ones, with no gap and no repeat;
//!   without either, only new ones.
//! - `gap` (no id): `{"from": N+1, "oldest": M}` before the replay when events after `N` were
//!   already dropped by the journal's retention (the replay starts at `M`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use shared_contracts::{INBOUND_EVENT_NAME, InboundEvent};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, WatchStream};

use super::AppState;
use crate::error::Error;
use crate::inbound::Inbound;
use crate::session::Snapshot;

/// The header an `EventSource` sends back when it reconnects.
const LAST_EVENT_ID: &str = "last-event-id";
/// Events a subscriber's connection may hold before its follower waits.
const SUBSCRIBER_BUFFER: usize = 64;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    since: Option<String>,
}

pub async fn events(
    State(state): State<AppState>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Error> {
    let since = start_after(&headers, query.since.as_deref())?;
    let mut shutting_down = state.shutting_down.clone();
    let stop = async move {
        let _ = shutting_down.wait_for(|stop| *stop).await;
    };
    let status = WatchStream::new(state.session.subscribe()).map(|Snapshot { status, .. }| {
        let event = Event::default().event("status");
        Ok(event.json_data(&status).unwrap_or_else(|_| Event::default().event("status").data("{}")))
    });
    let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
    tokio::spawn(follow(state.inbound.clone(), since, tx));
    let inbound = ReceiverStream::new(rx).map(Ok);
    let stream = futures_util::stream::select(status, inbound).take_until(Box::pin(stop));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The sequence to replay after: `Last-Event-ID`, else `?since=`, else none (only new events).
fn start_after(headers: &HeaderMap, since: Option<&str>) -> Result<Option<u64>, Error> {
    let header = headers.get(LAST_EVENT_ID).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (field, value) = match (&header, since) {
        (Some(value), _) => ("Last-Event-ID", value.as_str()),
        (None, Some(value)) => ("since", value),
        (None, None) => return Ok(None),
    };
    value.trim().parse::<u64>().map(Some).map_err(|_| Error::Validation {
        message: format!(
            "{field}={value:?} is not an event id: give the `id:` of the last `inbound` event received \
             (a whole number, 0 for everything kept)"
        ),
        detail: json!({ "field": field }),
    })
}

fn sse(event: &InboundEvent) -> Event {
    let sse = Event::default().event(INBOUND_EVENT_NAME).id(event.seq.to_string());
    sse.json_data(event).unwrap_or_else(|_| Event::default().event(INBOUND_EVENT_NAME).data("{}"))
}

/// Feeds one subscriber: the replay after `since` (if asked), then the live events, skipping any
/// sequence already sent. A subscriber that falls behind the live channel catches up from the
/// journal. Ends when the subscriber goes away.
async fn follow(inbound: Arc<Inbound>, since: Option<u64>, tx: mpsc::Sender<Event>) {
    // Subscribed before the journal is read: every event is in the file or in this receiver.
    let mut live = inbound.subscribe();
    let mut last = 0;
    if let Some(after) = since {
        let bounds = inbound.bounds();
        let oldest = bounds.oldest.unwrap_or(bounds.next);
        if after.saturating_add(1) < oldest {
            let gap =
                Event::default().event("gap").data(json!({"from": after + 1, "oldest": oldest}).to_string());
            if tx.send(gap).await.is_err() {
                return;
            }
        }
        match catch_up(&inbound, after, &tx).await {
            Some(sent) => last = sent,
            None => return,
        }
    }
    loop {
        let received = tokio::select! {
            () = tx.closed() => return,
            received = live.recv() => received,
        };
        match received {
            Ok(event) if event.seq <= last => {}
            Ok(event) => {
                if tx.send(sse(&event)).await.is_err() {
                    return;
                }
                last = event.seq;
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    last,
                    "an /events subscriber fell behind: catching up from the journal"
                );
                match catch_up(&inbound, last, &tx).await {
                    Some(sent) => last = sent,
                    None => return,
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Sends the journaled events after `after`; the last sequence sent, or `None` when the
/// subscriber went away or the journal could not be read (the stream then ends, and the
/// subscriber reconnects with its `Last-Event-ID`).
async fn catch_up(inbound: &Inbound, after: u64, tx: &mpsc::Sender<Event>) -> Option<u64> {
    let (events_tx, mut events) = mpsc::channel::<Arc<InboundEvent>>(SUBSCRIBER_BUFFER);
    let forward = async {
        let mut last = after;
        while let Some(event) = events.recv().await {
            tx.send(sse(&event)).await.ok()?;
            last = event.seq;
        }
        Some(last)
    };
    let (read, forwarded) = tokio::join!(inbound.replay(after, events_tx), forward);
    if let Err(e) = read {
        tracing::error!(error = %e, after, "could not read the inbound journal for a replay: ending the stream");
        return None;
    }
    forwarded
}
