//! The conversation side: incoming messages delivered to the page, the acks of sent messages
//! (moving up on their own after delays, or set by `POST /__sim/ack`), and the history a page loads
//! at login (`isNewMsg: false`).
//!
//! New messages and acks go to the pages that are CONNECTED with their history loaded ("synced");
//! an ack that changes while no such page is open is pushed when one reports synced, as WhatsApp
//! delivers the receipts a device missed while it was offline.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::state::{AppState, Inner, PageCommand};

/// WhatsApp's ack levels (`-1` error .. `4` played).
pub const ACK_SENT: i64 = 1;
pub const ACK_DELIVERED: i64 = 2;
pub const ACK_READ: i64 = 3;

/// The numbers history messages come from (digits), one per message, cycling.
const HISTORY_SENDERS: [&str; 3] = ["5491100000101", "5491100000102", "5491100000103"];

/// A message as the page adds it to its `Msg` collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMessage {
    /// The serialized id: `<fromMe>_<chat>_<key id>`.
    pub id: String,
    pub from_me: bool,
    /// The serialized chat id (`<digits>@c.us` or `<lid>@lid`).
    pub chat: String,
    #[serde(rename = "type")]
    pub message_type: String,
    pub body: Option<String>,
    pub caption: Option<String>,
    /// Unix seconds (WhatsApp's `t`).
    pub t: i64,
    pub ack: i64,
    /// `isNewMsg`: false for history.
    pub is_new: bool,
}

/// An incoming message the simulator gave a page (new, or loaded as history at a login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingRecord {
    pub message_id: String,
    /// The sender's phone number (digits).
    pub from: String,
    pub chat: String,
    #[serde(rename = "type")]
    pub message_type: String,
    /// The text of a `chat` message.
    pub body: Option<String>,
    pub caption: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// False for the history messages loaded at login.
    pub new: bool,
}

impl IncomingRecord {
    fn page_message(&self, is_new: bool) -> PageMessage {
        PageMessage {
            id: self.message_id.clone(),
            from_me: false,
            chat: self.chat.clone(),
            message_type: self.message_type.clone(),
            body: self.body.clone(),
            caption: self.caption.clone(),
            t: self.timestamp / 1000,
            ack: 0,
            is_new,
        }
    }
}

/// What the conversation side remembers.
#[derive(Debug, Default)]
pub(crate) struct Chats {
    incoming: Vec<IncomingRecord>,
    /// The ack level a page last got, per sent message id (the rest is pending).
    shown: HashMap<String, i64>,
}

/// The simulator's LID of a phone number: `20` + the digits reversed (the page uses the same rule).
pub fn lid_of(digits: &str) -> String {
    format!("20{}", digits.chars().rev().collect::<String>())
}

/// A WhatsApp-looking key id: `3EB0` + 16 hex digits.
fn new_key_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string().to_ascii_uppercase();
    format!("3EB0{}", &hex[..16])
}

fn chat_of(inner: &Inner, digits: &str) -> String {
    if inner.is_lid_number(digits) { format!("{}@lid", lid_of(digits)) } else { format!("{digits}@c.us") }
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl AppState {
    /// Delivers a new incoming message to every synced page; the record, or `NoConnectedPage`.
    pub fn deliver_incoming(
        &self,
        from: &str,
        message_type: &str,
        text: Option<String>,
        caption: Option<String>,
    ) -> Result<IncomingRecord, SimError> {
        let mut inner = self.inner();
        let chat = chat_of(&inner, from);
        let (body, caption) = if message_type == "chat" { (text, None) } else { (None, caption) };
        let record = IncomingRecord {
            message_id: format!("false_{chat}_{}", new_key_id()),
            from: from.to_owned(),
            chat,
            message_type: message_type.to_owned(),
            body,
            caption,
            timestamp: now_ms(),
            new: true,
        };
        let command = PageCommand::Incoming { message: record.page_message(true) };
        let delivered = inner.synced_pages().filter(|p| p.tx.send(command.clone()).is_ok()).count();
        if delivered == 0 {
            return Err(SimError::NoConnectedPage);
        }
        inner.chats.incoming.push(record.clone());
        Ok(record)
    }

    /// Every incoming message given to a page, history included, in order.
    pub fn incoming(&self) -> Vec<IncomingRecord> {
        self.inner().chats.incoming.clone()
    }

    /// A sent message was recorded at level `sent`: the page set it itself.
    pub(crate) fn track_sent(&self, id: &str) {
        self.inner().chats.shown.insert(id.to_owned(), ACK_SENT);
    }

    /// Sets the ack of sent message `id` (only raising it when `raise_only`) and pushes it to the
    /// synced pages; how many got it (0: pending until a page reports synced).
    pub fn set_ack(&self, id: &str, level: i64, raise_only: bool) -> Result<usize, SimError> {
        let mut inner = self.inner();
        let message = inner
            .messages
            .iter_mut()
            .find(|m| m.id == id)
            .ok_or_else(|| SimError::UnknownMessage(id.to_owned()))?;
        if raise_only && message.ack >= level {
            return Ok(0);
        }
        message.ack = level;
        tracing::info!(id, ack = level, "ack changed");
        Ok(push_pending(&mut inner))
    }

    /// Pushes the acks no page has seen yet to the synced pages (after a page reports synced).
    pub(crate) fn flush_acks(&self) {
        push_pending(&mut self.inner());
    }

    /// Moves a just-sent message to `delivered` and `read` after the configured delays.
    pub(crate) fn schedule_acks(&self, id: &str) {
        let delays = self.inner().ack_delays;
        for (delay, level) in [(delays.delivered_ms, ACK_DELIVERED), (delays.read_ms, ACK_READ)] {
            let Some(delay) = delay else { continue };
            let (state, id) = (self.clone(), id.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                if let Err(e) = state.set_ack(&id, level, true) {
                    tracing::warn!(error = %e, "automatic ack");
                }
            });
        }
    }

    /// What a page loads at login, all as not new: `history_messages` incoming messages (made at
    /// the first login), the incoming messages delivered before, and the sent messages at the ack
    /// level a page last saw (newer levels are pushed once the page reports synced).
    pub(crate) fn history(&self) -> Vec<PageMessage> {
        let mut inner = self.inner();
        if inner.chats.incoming.iter().all(|m| m.new) {
            let now = now_ms();
            let count = i64::from(self.config().history_messages);
            for n in 0..count {
                let from = HISTORY_SENDERS[usize::try_from(n).unwrap_or(0) % HISTORY_SENDERS.len()];
                let chat = chat_of(&inner, from);
                let record = IncomingRecord {
                    message_id: format!("false_{chat}_{}", new_key_id()),
                    from: from.to_owned(),
                    chat,
                    message_type: "chat".to_owned(),
                    body: Some(format!("history message {}", n + 1)),
                    caption: None,
                    timestamp: now - (count - n) * 60_000,
                    new: false,
                };
                inner.chats.incoming.insert(usize::try_from(n).unwrap_or(0), record);
            }
        }
        let mut messages: Vec<PageMessage> =
            inner.chats.incoming.iter().map(|m| m.page_message(false)).collect();
        for sent in &inner.messages {
            let ack = inner.chats.shown.get(&sent.id).copied().unwrap_or(sent.ack);
            let chat = sent.chat.clone().unwrap_or_else(|| format!("{}@c.us", sent.to));
            messages.push(PageMessage {
                id: sent.id.clone(),
                from_me: true,
                chat,
                message_type: "chat".to_owned(),
                body: Some(sent.text.clone()),
                caption: None,
                t: sent.timestamp / 1000,
                ack,
                is_new: false,
            });
        }
        messages
    }
}

/// Sends every ack level not shown yet to the synced pages; marks it shown when one got it.
fn push_pending(inner: &mut Inner) -> usize {
    let pending: Vec<(String, i64)> = inner
        .messages
        .iter()
        .filter(|m| inner.chats.shown.get(&m.id).is_none_or(|shown| *shown != m.ack))
        .map(|m| (m.id.clone(), m.ack))
        .collect();
    let mut reached = 0;
    for (id, ack) in pending {
        let command = PageCommand::Ack { id: id.clone(), ack };
        let pages = inner.synced_pages().filter(|p| p.tx.send(command.clone()).is_ok()).count();
        if pages > 0 {
            inner.chats.shown.insert(id, ack);
            reached = reached.max(pages);
        }
    }
    reached
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lids_follow_the_documented_rule() {
        assert_eq!(lid_of("34600111222"), "2022211100643");
        let key = new_key_id();
        assert!(key.starts_with("3EB0") && key.len() == 20, "{key}");
    }
}
