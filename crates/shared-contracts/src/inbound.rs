//! What WhatsApp sends back: incoming messages and the acks of our outgoing ones.
//!
//! The session-manager writes each one to a durable journal with a sequence number and serves it
//! on `GET /events` as an SSE event named `inbound` whose `id:` is that sequence; a subscriber that
//! reconnects with `Last-Event-ID: N` (or `?since=N`) gets every journaled event after `N`. The
//! central-hub follows that stream and keeps its position, so nothing is missed across restarts.

use serde::{Deserialize, Serialize};

/// The SSE event name of a journaled inbound event on the manager's `/events`.
pub const INBOUND_EVENT_NAME: &str = "inbound";

/// One journaled event: the sequence is the manager's, strictly increasing, never reused (it
/// survives restarts and journal compaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundEvent {
    pub seq: u64,
    /// The session it came through (`admin` for the one session).
    pub session: String,
    /// Unix milliseconds when the manager journaled it.
    pub received_at: i64,
    #[serde(flatten)]
    pub kind: InboundKind,
}

/// `{"type": "message", ...}` or `{"type": "ack", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundKind {
    Message(IncomingMessage),
    Ack(MessageAck),
}

/// A new message someone sent to the session's number (never one of ours, never history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingMessage {
    /// WhatsApp's serialized message id (`false_<chat>_<id>`): the key the hub deduplicates on.
    pub message_id: String,
    /// The sender's phone number, digits only (the phone-number user, also for LID chats when
    /// WhatsApp can tell it; else the LID user's digits).
    pub from: String,
    /// The chat's serialized id (`<digits>@c.us`, `<digits>@lid`, `<id>@g.us`).
    pub chat: String,
    /// WhatsApp's message type: `chat` for text, else `image`, `video`, `audio`, `ptt`,
    /// `document`, `sticker`, `location`, `vcard`, ...
    pub message_type: String,
    /// The text, or a media message's caption; `None` for media without one (the media itself is
    /// not downloaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Unix milliseconds, as WhatsApp stamped the message.
    pub timestamp: i64,
}

/// A change of the delivery state of one of our outgoing messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAck {
    /// The same string `POST /send` answered in `data.message_id`.
    pub message_id: String,
    /// The recipient, digits only, when WhatsApp tells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub ack: AckLevel,
    /// Unix milliseconds when the page saw the change.
    pub timestamp: i64,
}

/// WhatsApp's ack levels (-1..=4 in the page, `ACK_ERROR` .. `ACK_PLAYED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckLevel {
    Error,
    Pending,
    Sent,
    Delivered,
    Read,
    Played,
}

impl AckLevel {
    /// WhatsApp's number for the level: -1 error, 0 pending (clock), 1 sent (one tick),
    /// 2 delivered (two ticks), 3 read (blue), 4 played (voice notes).
    pub fn from_wa(level: i64) -> Option<Self> {
        Some(match level {
            -1 => AckLevel::Error,
            0 => AckLevel::Pending,
            1 => AckLevel::Sent,
            2 => AckLevel::Delivered,
            3 => AckLevel::Read,
            4 => AckLevel::Played,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AckLevel::Error => "error",
            AckLevel::Pending => "pending",
            AckLevel::Sent => "sent",
            AckLevel::Delivered => "delivered",
            AckLevel::Read => "read",
            AckLevel::Played => "played",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_have_a_flat_tagged_shape() {
        let event = InboundEvent {
            seq: 7,
            session: "admin".into(),
            received_at: 1_700_000_000_000,
            kind: InboundKind::Ack(MessageAck {
                message_id: "true_34600111222@c.us_ABC".into(),
                to: Some("34600111222".into()),
                ack: AckLevel::Delivered,
                timestamp: 1_700_000_000_500,
            }),
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            value,
            json!({"seq": 7, "session": "admin", "received_at": 1_700_000_000_000_i64, "type": "ack",
                   "message_id": "true_34600111222@c.us_ABC", "to": "34600111222", "ack": "delivered",
                   "timestamp": 1_700_000_000_500_i64})
        );
        assert_eq!(serde_json::from_value::<InboundEvent>(value).unwrap(), event);
        let message: InboundEvent = serde_json::from_value(json!({
            "seq": 8, "session": "admin", "received_at": 1, "type": "message",
            "message_id": "false_34600111222@c.us_X", "from": "34600111222", "chat": "34600111222@c.us",
            "message_type": "image", "timestamp": 2
        }))
        .unwrap();
        assert!(matches!(message.kind, InboundKind::Message(IncomingMessage { text: None, .. })));
    }

    #[test]
    fn wa_levels_map_in_order() {
        let levels: Vec<_> = (-1..=4).map(|n| AckLevel::from_wa(n).unwrap()).collect();
        assert!(levels.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(AckLevel::from_wa(5), None);
    }
}
