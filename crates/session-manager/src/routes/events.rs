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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use shared_contracts::{InboundKind, IncomingMessage};
    use tower::ServiceExt;

    use super::super::tests::{app, call, get};
    use crate::Application;

    fn message(n: usize) -> InboundKind {
        InboundKind::Message(IncomingMessage {
            message_id: format!("false_34600111222@c.us_{n:040}"),
            from: "34600111222".into(),
            chat: "34600111222@c.us".into(),
            message_type: "chat".into(),
            text: Some(format!("mensaje número {n} con algo de texto para ocupar espacio")),
            timestamp: 1,
        })
    }

    /// `(event, id, data)` of the stream's events until `count` named `inbound` or `gap` arrived.
    async fn read_events(
        app: &Application,
        request: Request<Body>,
        count: usize,
    ) -> Vec<(String, String, String)> {
        let response = app.router().oneshot(request).await.expect("response");
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let (mut text, mut events) = (String::new(), Vec::new());
        while events.len() < count {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .unwrap_or_else(|_| panic!("{count} events within 5 s, got {events:?}"))
                .expect("the stream goes on")
                .expect("a frame");
            text.push_str(&String::from_utf8_lossy(&frame.into_data().unwrap_or_default()));
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                let field = |name: &str| {
                    block.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().trim().to_owned()
                };
                let event = field("event:");
                if event == "inbound" || event == "gap" {
                    events.push((event, field("id:"), field("data:")));
                }
            }
        }
        events
    }

    #[tokio::test]
    async fn a_follower_resumes_after_its_last_event_id_and_then_gets_live_ones() {
        let (app, _dir) = app(&[]).await;
        app.inbound().append((0..3).map(message).collect()).expect("journaled");
        let mut request = get("/events?since=0");
        request.headers_mut().insert("last-event-id", "1".parse().unwrap());
        let inbound = app.inbound().clone();
        let live = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            inbound.append(vec![message(3), message(0)]).expect("journaled");
        });
        let events = read_events(&app, request, 3).await;
        live.await.unwrap();
        let ids: Vec<&str> = events.iter().map(|(_, id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            ["2", "3", "4"],
            "Last-Event-ID wins over since; the repeat of message 0 is not journaled"
        );
        let data: serde_json::Value = serde_json::from_str(&events[2].2).unwrap();
        assert_eq!((data["seq"].as_u64(), data["type"].as_str()), (Some(4), Some("message")));
    }

    #[tokio::test]
    async fn a_follower_behind_the_retention_is_told_of_the_gap() {
        let (app, _dir) = app(&["--inbound-journal-max-bytes", "65536"]).await;
        app.inbound().append((0..400).map(message).collect()).expect("journaled");
        let oldest = app.inbound().bounds().oldest.expect("some kept");
        assert!(oldest > 1, "the size limit dropped the oldest");
        let events = read_events(&app, get("/events?since=0"), 2).await;
        assert_eq!(events[0].0, "gap");
        let gap: serde_json::Value = serde_json::from_str(&events[0].2).unwrap();
        assert_eq!(gap, serde_json::json!({"from": 1, "oldest": oldest}));
        assert_eq!(events[1].1, oldest.to_string(), "the replay starts at the oldest kept");
    }

    #[tokio::test]
    async fn ids_that_are_not_numbers_are_refused_naming_the_field() {
        let (app, _dir) = app(&[]).await;
        let (status, _, body) = call(&app, get("/events?since=abc")).await;
        assert_eq!((status.as_u16(), body["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{body}");
        assert_eq!(body["detail"]["field"], "since");
        let mut request = get("/events");
        request.headers_mut().insert("last-event-id", "x".parse().unwrap());
        let (status, _, body) = call(&app, request).await;
        assert_eq!(
            (status.as_u16(), body["detail"]["field"].as_str()),
            (400, Some("Last-Event-ID")),
            "{body}"
        );
    }
}
