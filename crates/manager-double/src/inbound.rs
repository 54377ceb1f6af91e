//! The double's inbound journal: incoming messages and acks injected by a test (or with
//! `POST /__double/inbound`), numbered like the manager's journal and served on `/events` as
//! `event: inbound` with `id: <seq>`. A subscriber's `Last-Event-ID` (or `?since=`) gets every
//! event after it, then live ones; without one, live ones only. The journal is shared across a
//! restart of the double ([`crate::ManagerDouble::spawn_with`]), like the manager's file is, and
//! [`InboundJournal::forget_through`] drops old events like the manager's retention (a subscriber
//! behind them gets `event: gap` with `{"from", "oldest"}` first).
//!
//! It also numbers the double's sends, so each `/send` answers a distinct WhatsApp id.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::sse::Event;
use axum::{Json, http::HeaderMap};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;
use shared_contracts::{
    AckLevel, INBOUND_EVENT_NAME, InboundEvent, InboundKind, IncomingMessage, MessageAck,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Unix milliseconds the double stamps its events with (a fixed base plus the sequence).
const BASE_MS: i64 = 1_767_225_600_000;

#[derive(Default)]
struct Journal {
    events: Vec<InboundEvent>,
    last_seq: u64,
    /// Events up to this one were dropped (retention).
    forgotten_through: u64,
    sends: u64,
    received: u64,
    /// Serve every event to each new subscriber, whatever it resumes from (a manager whose
    /// replay starts too early: the hub must store nothing twice).
    replay_all: bool,
}

/// The journal, cheap to clone; clones share it.
#[derive(Clone)]
pub struct InboundJournal {
    journal: Arc<Mutex<Journal>>,
    /// The last sequence journaled: wakes the streams.
    last: watch::Sender<u64>,
}

impl Default for InboundJournal {
    fn default() -> Self {
        Self { journal: Arc::default(), last: watch::Sender::new(0) }
    }
}

impl InboundJournal {
    fn lock(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Journals an event of the `admin` session and publishes it.
    pub fn append(&self, kind: InboundKind) -> InboundEvent {
        let event = {
            let mut journal = self.lock();
            journal.last_seq += 1;
            let seq = journal.last_seq;
            let event = InboundEvent {
                seq,
                session: "admin".into(),
                received_at: BASE_MS + i64::try_from(seq).unwrap_or(0),
                kind,
            };
            journal.events.push(event.clone());
            event
        };
        self.last.send_replace(event.seq);
        event
    }

    /// An incoming message from `from` (digits); `text` `None` with a media type.
    pub fn message(&self, from: &str, text: Option<&str>, message_type: &str) -> InboundEvent {
        let n = {
            let mut journal = self.lock();
            journal.received += 1;
            journal.received
        };
        self.append(InboundKind::Message(IncomingMessage {
            message_id: format!("false_{from}@c.us_3A0DOUBLEIN{n:05}"),
            from: from.to_owned(),
            chat: format!("{from}@c.us"),
            message_type: message_type.to_owned(),
            text: text.map(str::to_owned),
            timestamp: BASE_MS + i64::try_from(n).unwrap_or(0),
        }))
    }

    /// A text message from `from`.
    pub fn text(&self, from: &str, text: &str) -> InboundEvent {
        self.message(from, Some(text), "chat")
    }

    /// An ack of one of our messages.
    pub fn ack(&self, message_id: &str, to: Option<&str>, ack: AckLevel) -> InboundEvent {
        let seq = self.lock().last_seq + 1;
        self.append(InboundKind::Ack(MessageAck {
            message_id: message_id.to_owned(),
            to: to.map(str::to_owned),
            ack,
            timestamp: BASE_MS + 1_000 + i64::try_from(seq).unwrap_or(0),
        }))
    }

    /// The events journaled so far (those not forgotten).
    pub fn events(&self) -> Vec<InboundEvent> {
        self.lock().events.clone()
    }

    pub fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }

    /// From now on, each new subscriber gets every journaled event, whatever its `Last-Event-ID`.
    pub fn replay_everything(&self, on: bool) {
        self.lock().replay_all = on;
    }

    /// Drops the events up to `seq`, like the manager's retention.
    pub fn forget_through(&self, seq: u64) {
        let mut journal = self.lock();
        journal.events.retain(|e| e.seq > seq);
        journal.forgotten_through = journal.forgotten_through.max(seq);
    }

    /// The WhatsApp id the next `/send` to `to` answers.
    pub fn next_send_id(&self, to: &str) -> String {
        send_id(to, self.lock().sends + 1)
    }

    /// Numbers a send: its WhatsApp id.
    pub(crate) fn take_send_id(&self, to: &str) -> String {
        let mut journal = self.lock();
        journal.sends += 1;
        send_id(to, journal.sends)
    }

    /// A gap (the first event after `since` and the oldest kept, when some between were forgotten,
    /// like the manager's `{"from", "oldest"}`) and the events after `since`.
    fn after(&self, since: u64) -> (Option<(u64, u64)>, Vec<InboundEvent>) {
        let journal = self.lock();
        let gap = (since < journal.forgotten_through).then(|| (since + 1, journal.forgotten_through + 1));
        (gap, journal.events.iter().filter(|e| e.seq > since).cloned().collect())
    }

    /// `event: inbound` for every event after `since`, then each new one, until `stop`.
    pub(crate) fn stream(
        &self,
        since: Option<u64>,
        stop: CancellationToken,
    ) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
        let journal = self.clone();
        let mut rx = self.last.subscribe();
        let since = if self.lock().replay_all { 0 } else { since.unwrap_or_else(|| *rx.borrow_and_update()) };
        let state = (journal, rx, since, VecDeque::<Event>::new(), true);
        stream::unfold(state, move |(journal, mut rx, mut since, mut ready, mut first)| {
            let stop = stop.clone();
            async move {
                loop {
                    if let Some(event) = ready.pop_front() {
                        return Some((Ok(event), (journal, rx, since, ready, first)));
                    }
                    if !first {
                        tokio::select! {
                            () = stop.cancelled() => return None,
                            changed = rx.changed() => changed.ok()?,
                        }
                    }
                    first = false;
                    rx.mark_unchanged();
                    let (gap, events) = journal.after(since);
                    if let Some((from, oldest)) = gap {
                        ready.push_back(
                            Event::default()
                                .event("gap")
                                .data(json!({"from": from, "oldest": oldest}).to_string()),
                        );
                    }
                    for event in events {
                        since = event.seq;
                        if let Ok(sse) = Event::default()
                            .event(INBOUND_EVENT_NAME)
                            .id(event.seq.to_string())
                            .json_data(&event)
                        {
                            ready.push_back(sse);
                        }
                    }
                }
            }
        })
    }
}

fn send_id(to: &str, n: u64) -> String {
    format!("true_{to}@c.us_3EB0DOUBLE{n:05}")
}

/// Where a subscriber resumes: `Last-Event-ID`, else `?since=`.
pub(crate) fn resume_point(headers: &HeaderMap, query: Option<&str>) -> Option<u64> {
    let header =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    header.or_else(|| {
        query?.split('&').find_map(|pair| pair.strip_prefix("since=")).and_then(|v| v.parse().ok())
    })
}

/// The body of `POST /__double/inbound`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Inject {
    Message {
        from: String,
        #[serde(default)]
        text: Option<String>,
        #[serde(default = "chat")]
        message_type: String,
    },
    Ack {
        message_id: String,
        #[serde(default)]
        to: Option<String>,
        ack: AckLevel,
    },
}

fn chat() -> String {
    "chat".to_owned()
}

pub(crate) async fn inject(
    State(journal): State<InboundJournal>,
    Json(body): Json<Inject>,
) -> Json<InboundEvent> {
    Json(match body {
        Inject::Message { from, text, message_type } => {
            journal.message(&from, text.as_deref(), &message_type)
        }
        Inject::Ack { message_id, to, ack } => journal.ack(&message_id, to.as_deref(), ack),
    })
}
