//! The status fan-out: one subscription to the session-manager's `GET /events`, the latest
//! `StatusBody` kept in a `watch`, so any number of pollers and browsers cost the manager nothing.
//! Reconnects with exponential back-off; while the stream is down, `live` is false and readers
//! fall back to asking the manager directly.
//!
//! The same connection carries the manager's journaled inbound events (`event: inbound`, `id:`
//! its sequence): each (re)connection sends `Last-Event-ID` = the hub's stored position, and the
//! events are handed to the inbound follower (`crate::inbound`), so the hub keeps one stream to
//! the manager. `event: gap` (events the manager's retention dropped) is logged and counted.
//!
//! Each status is serialized to JSON once, when it arrives, and kept next to it: a poll answers
//! those bytes as they are (a QR status carries a data URL of several KB, and pollers outnumber
//! changes by thousands to one). A client's status, which also names its `cliente_id`, is composed
//! once per id and status and then served the same way.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use shared_contracts::{INBOUND_EVENT_NAME, InboundEvent, StatusBody};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientError, SessionManagerClient};
use crate::db::DbError;
use crate::inbound::InboundSink;
use crate::metrics::Metrics;
use crate::sse::SseParser;

const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A stream silent for this long (no event, no keep-alive) is presumed dead and reopened.
const IDLE_LIMIT: Duration = Duration::from_secs(90);
/// At most this many client bodies (one per view and `cliente_id`) are kept per status.
const MAX_CLIENT_BODIES: usize = 1024;

/// What the hub knows of the session right now.
#[derive(Clone, Debug, Default)]
pub struct FeedSnapshot {
    /// The event stream is connected, so `status` is current.
    pub live: bool,
    pub status: Option<Arc<CachedStatus>>,
}

/// A status as received, with its JSON serialized once for every reader.
#[derive(Debug)]
pub struct CachedStatus {
    pub body: StatusBody,
    /// `body` as JSON (what `GET /status` would answer), QR included: for admins only.
    pub json: Bytes,
    /// `body` without its `qr` as JSON: what a client user may see (the QR links the company's
    /// account, so only admins get it). Serialized once per change too: client polls are the hot path.
    pub public_json: Bytes,
    /// (admin view, cliente_id) -> the matching JSON with `"cliente_id":N` appended.
    for_clients: RwLock<HashMap<(bool, u64), Bytes>>,
}

impl CachedStatus {
    pub fn new(body: StatusBody) -> Result<Self, serde_json::Error> {
        let json = Bytes::from(serde_json::to_vec(&body)?);
        let public_json = if body.qr.is_some() {
            Bytes::from(serde_json::to_vec(&without_qr(&body))?)
        } else {
            json.clone()
        };
        Ok(Self { body, json, public_json, for_clients: RwLock::default() })
    }

    /// The status as `/api/whatsapp/{cliente_id}/status` answers it (with `qr` for admins only),
    /// composed on the first poll for this id and reused until the status changes.
    pub fn for_cliente(&self, admin: bool, cliente_id: u64) -> Bytes {
        let key = (admin, cliente_id);
        if let Some(body) = self.for_clients.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return body.clone();
        }
        let json = if admin { &self.json } else { &self.public_json };
        let body = Bytes::from(with_cliente_id(json, cliente_id));
        let mut bodies = self.for_clients.write().unwrap_or_else(|p| p.into_inner());
        if bodies.len() < MAX_CLIENT_BODIES {
            bodies.insert(key, body.clone());
        }
        body
    }

    /// The JSON as text (it is valid UTF-8: serde_json wrote it).
    pub fn json_str(&self) -> &str {
        std::str::from_utf8(&self.json).unwrap_or_default()
    }
}

/// `{...}` becomes `{...,"cliente_id":N}`: the serialized JSON is reused, never parsed again.
pub fn with_cliente_id(json: &[u8], cliente_id: u64) -> Vec<u8> {
    let head = json.strip_suffix(b"}").unwrap_or(json);
    let mut out = Vec::with_capacity(json.len() + 32);
    out.extend_from_slice(head);
    if head.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(format!("\"cliente_id\":{cliente_id}}}").as_bytes());
    out
}

/// The status as a client user may see it: everything but the login credentials (QR, pairing code).
pub fn without_qr(body: &StatusBody) -> StatusBody {
    StatusBody { qr: None, pairing_code: None, ..body.clone() }
}

#[derive(Clone)]
pub struct StatusFeed {
    rx: watch::Receiver<FeedSnapshot>,
}

impl StatusFeed {
    /// Starts the subscription task; it ends when `cancel` is cancelled.
    pub fn spawn(
        client: SessionManagerClient,
        inbound: InboundSink,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = watch::channel(FeedSnapshot::default());
        let task = tokio::spawn(run(client, inbound, tx, metrics, cancel));
        (Self { rx }, task)
    }

    /// The current status, when the stream is live (else `None`: ask the manager).
    pub fn live_status(&self) -> Option<Arc<CachedStatus>> {
        let snapshot = self.rx.borrow();
        if snapshot.live { snapshot.status.clone() } else { None }
    }

    pub fn subscribe(&self) -> watch::Receiver<FeedSnapshot> {
        self.rx.clone()
    }
}

#[derive(Debug, thiserror::Error)]
enum StreamEnd {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the event stream from {url} broke: {cause}")]
    Broken { url: String, cause: String },
    #[error("the event stream from {url} sent nothing for {}s", IDLE_LIMIT.as_secs())]
    Idle { url: String },
    #[error("the session-manager at {url} closed the event stream")]
    Closed { url: String },
    #[error("could not read where the hub is in the inbound stream: {0}")]
    Position(#[from] DbError),
    #[error("the inbound follower stopped")]
    FollowerStopped,
}

/// `event: gap`: the manager's retention dropped the events from `from` to before `oldest`.
#[derive(Debug, Deserialize)]
struct Gap {
    from: u64,
    oldest: u64,
}

async fn run(
    client: SessionManagerClient,
    inbound: InboundSink,
    tx: watch::Sender<FeedSnapshot>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    let mut failures: u32 = 0;
    let mut was_live = false;
    loop {
        let mut connected = false;
        if was_live {
            metrics.inbound.reconnect();
        }
        let end = tokio::select! {
            () = cancel.cancelled() => break,
            end = follow(&client, &inbound, &tx, &metrics, &mut connected) => end,
        };
        was_live |= connected;
        tx.send_modify(|s| s.live = false);
        metrics.set_stream_connected(false);
        if connected {
            backoff = MIN_BACKOFF;
            failures = 0;
        }
        failures += 1;
        // Loud once, then quiet: a manager that stays down must not flood the logs.
        if failures == 1 || failures.is_multiple_of(50) {
            tracing::error!(
                url = client.base_url(),
                error.message = %end,
                failures,
                "session-manager event stream unavailable; /api/admin/whatsapp/status falls back to direct \
                 calls. Check that the session-manager runs and that SESSION_MANAGER_URL points at it"
            );
        } else {
            tracing::debug!(url = client.base_url(), error.message = %end, "event stream still unavailable");
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    metrics.set_stream_connected(false);
}

/// Follows one connection of the stream until it ends; sets `connected` at its first status event.
async fn follow(
    client: &SessionManagerClient,
    inbound: &InboundSink,
    tx: &watch::Sender<FeedSnapshot>,
    metrics: &Metrics,
    connected: &mut bool,
) -> StreamEnd {
    let url = client.base_url().to_owned();
    let after = match inbound.resume_after().await {
        Ok(seq) => seq,
        Err(e) => return e.into(),
    };
    let response = match client.open_events(after).await {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    tracing::info!(%url, last_event_id = after, "subscribed to the session-manager's event stream");
    let mut body = response.bytes_stream();
    let mut parser = SseParser::default();
    loop {
        let chunk = match tokio::time::timeout(IDLE_LIMIT, body.next()).await {
            Err(_) => return StreamEnd::Idle { url },
            Ok(None) => return StreamEnd::Closed { url },
            Ok(Some(Err(e))) => return StreamEnd::Broken { url, cause: e.to_string() },
            Ok(Some(Ok(chunk))) => chunk,
        };
        for event in parser.push(&chunk) {
            match event.name.as_str() {
                INBOUND_EVENT_NAME => {
                    match serde_json::from_str::<InboundEvent>(&event.data) {
                        Ok(inbound_event) => {
                            if !inbound.deliver(inbound_event).await {
                                return StreamEnd::FollowerStopped;
                            }
                        }
                        Err(e) => inbound.unreadable(&event.data, &e),
                    }
                    continue;
                }
                "gap" => {
                    match serde_json::from_str::<Gap>(&event.data) {
                        Ok(gap) => inbound.gap(gap.from, gap.oldest),
                        Err(e) => {
                            tracing::warn!(%url, error.message = %e, "ignoring a gap event that does not parse")
                        }
                    }
                    continue;
                }
                "status" | "message" | "" => {}
                _ => continue,
            }
            match serde_json::from_str::<StatusBody>(&event.data).and_then(CachedStatus::new) {
                Ok(status) => {
                    // The manager sends the full status on subscribe: the cache is live from the
                    // first event on, and readers ask directly until then.
                    tx.send_modify(|s| {
                        s.live = true;
                        s.status = Some(Arc::new(status));
                    });
                    if !*connected {
                        *connected = true;
                        metrics.set_stream_connected(true);
                    }
                }
                Err(e) => {
                    tracing::warn!(%url, error.message = %e, "ignoring a status event that does not parse")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_body_names_its_id_hides_the_qr_from_clients_and_is_composed_once() {
        let body: StatusBody = serde_json::from_value(serde_json::json!({
            "connected": false, "state": "QR_REQUIRED", "session": "admin", "can_send_messages": false,
            "recommended_action": "scan", "qr": {"url": "2@ref", "base64": "data:image/png;base64,AA", "attempts": 1, "timestamp": 0, "expires_at": 0},
            "phone_number": null, "since": "2026-01-01T00:00:00Z", "last_error": null
        }))
        .unwrap();
        let status = CachedStatus::new(body).unwrap();
        let client: serde_json::Value = serde_json::from_slice(&status.for_cliente(false, 7)).unwrap();
        assert_eq!((client["cliente_id"].as_u64(), client.get("qr")), (Some(7), None), "{client}");
        let admin: serde_json::Value = serde_json::from_slice(&status.for_cliente(true, 7)).unwrap();
        assert_eq!((admin["cliente_id"].as_u64(), admin["qr"]["url"].as_str()), (Some(7), Some("2@ref")));
        let (first, again) = (status.for_cliente(false, 8), status.for_cliente(false, 8));
        assert_eq!(first.as_ptr(), again.as_ptr(), "the second poll shares the first one's bytes");
    }
}
