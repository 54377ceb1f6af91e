//! The status fan-out: one subscription to the session-manager's `GET /events`, the latest
//! `StatusBody` kept in a `watch`, so any number of pollers and browsers cost the manager nothing.
//! Reconnects with exponential back-off; while the stream is down, `live` is false and readers
//! fall back to asking the manager directly.
//!
//! Each status is serialized to JSON once, when it arrives, and kept next to it: a poll answers
//! those bytes as they are (a QR status carries a data URL of several KB, and pollers outnumber
//! changes by thousands to one).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::StreamExt;
use shared_contracts::StatusBody;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientError, SessionManagerClient};
use crate::metrics::Metrics;

const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A stream silent for this long (no event, no keep-alive) is presumed dead and reopened.
const IDLE_LIMIT: Duration = Duration::from_secs(90);

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
}

impl CachedStatus {
    pub fn new(body: StatusBody) -> Result<Self, serde_json::Error> {
        let json = Bytes::from(serde_json::to_vec(&body)?);
        let public_json = if body.qr.is_some() {
            Bytes::from(serde_json::to_vec(&without_qr(&body))?)
        } else {
            json.clone()
        };
        Ok(Self { body, json, public_json })
    }

    /// The JSON as text (it is valid UTF-8: serde_json wrote it).
    pub fn json_str(&self) -> &str {
        std::str::from_utf8(&self.json).unwrap_or_default()
    }
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
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = watch::channel(FeedSnapshot::default());
        let task = tokio::spawn(run(client, tx, metrics, cancel));
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
}

async fn run(
    client: SessionManagerClient,
    tx: watch::Sender<FeedSnapshot>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    let mut failures: u32 = 0;
    loop {
        let mut connected = false;
        let end = tokio::select! {
            () = cancel.cancelled() => break,
            end = follow(&client, &tx, &metrics, &mut connected) => end,
        };
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
    tx: &watch::Sender<FeedSnapshot>,
    metrics: &Metrics,
    connected: &mut bool,
) -> StreamEnd {
    let url = client.base_url().to_owned();
    let response = match client.open_events().await {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    tracing::info!(%url, "subscribed to the session-manager's event stream");
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
            if !matches!(event.name.as_str(), "status" | "message" | "") {
                continue;
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

#[derive(Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub name: String,
    pub data: String,
}

/// An incremental Server-Sent Events parser (the subset servers send: `event`, `data`, comments).
///
/// Works on bytes: a chunk may end inside a multi-byte UTF-8 character or between the `\r` and
/// `\n` of a line end, so lines are split on their end bytes first and decoded whole.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet ended.
    line: Vec<u8>,
    /// The last byte seen was a `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    name: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_ended(&String::from_utf8_lossy(&line)) {
                        events.push(event);
                    }
                }
                _ => self.line.push(byte),
            }
        }
        events
    }

    /// Applies one whole line; an empty line dispatches the event gathered so far.
    fn line_ended(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let name = std::mem::take(&mut self.name);
            let data = std::mem::take(&mut self.data);
            return (!data.is_empty()).then(|| SseEvent { name, data: data.join("\n") });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = value.to_owned(),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_comments_are_handled() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nevent: status\nda").is_empty());
        let events = p.push(b"ta: {\"a\":1}\r\n\r\ndata: x\ndata: y\n\n");
        assert_eq!(
            events,
            vec![
                SseEvent { name: "status".into(), data: "{\"a\":1}".into() },
                SseEvent { name: String::new(), data: "x\ny".into() },
            ]
        );
    }

    #[test]
    fn a_character_or_a_crlf_split_at_any_point_arrives_intact() {
        let stream =
            "event: status\r\ndata: {\"a\":\"ñandú 😀 €\"}\r\n\r\n: ka\r\rdata: x\r\n\r\n".as_bytes();
        let want = vec![
            SseEvent { name: "status".into(), data: "{\"a\":\"ñandú 😀 €\"}".into() },
            SseEvent { name: String::new(), data: "x".into() },
        ];
        for split in 0..=stream.len() {
            let mut p = SseParser::default();
            let mut events = p.push(&stream[..split]);
            events.extend(p.push(&stream[split..]));
            assert_eq!(events, want, "split at byte {split}");
        }
        // Every byte in its own chunk.
        let mut p = SseParser::default();
        let events: Vec<_> = stream.iter().flat_map(|b| p.push(std::slice::from_ref(b))).collect();
        assert_eq!(events, want);
    }
}
