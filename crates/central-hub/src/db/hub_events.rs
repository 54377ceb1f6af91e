//! The hub's event log (`hub_event`): what happened that a CRM may be told (webhooks).
//!
//! A producer writes its event in the same transaction as the change it reports
//! ([`record_hub_event`] takes the transaction's connection), so a crash between the change and
//! the event is impossible. Consumers read in order with [`Store::hub_events_after`] and keep
//! their own position. The `data` of each kind:
//!
//! - `message.received`: `{message_id, from, chat, type, text, timestamp, campaign_id}`
//! - `message.ack`: `{message_id, to, ack, timestamp, campaign_id}`
//! - `session.status`: `{state, previous_state, connected, phone_number, since}`
//! - `campaign.progress` / `campaign.completed`: `{campaign_id, name, state, total, sent, failed,
//!   skipped, pending}`
//!
//! (`campaign_id` is null when the message belongs to no campaign.)

use serde::Serialize;
use serde_json::Value;
use shared_contracts::ClienteId;
use sqlx::{AnyConnection, Row};

use super::{DbError, Store, bounded};

/// The kinds a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum HubEventKind {
    #[serde(rename = "message.received")]
    MessageReceived,
    #[serde(rename = "message.ack")]
    MessageAck,
    #[serde(rename = "session.status")]
    SessionStatus,
    #[serde(rename = "campaign.progress")]
    CampaignProgress,
    #[serde(rename = "campaign.completed")]
    CampaignCompleted,
}

impl HubEventKind {
    pub const ALL: [HubEventKind; 5] = [
        HubEventKind::MessageReceived,
        HubEventKind::MessageAck,
        HubEventKind::SessionStatus,
        HubEventKind::CampaignProgress,
        HubEventKind::CampaignCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HubEventKind::MessageReceived => "message.received",
            HubEventKind::MessageAck => "message.ack",
            HubEventKind::SessionStatus => "session.status",
            HubEventKind::CampaignProgress => "campaign.progress",
            HubEventKind::CampaignCompleted => "campaign.completed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }
}

/// An event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewHubEvent {
    /// Stable and unique, derived from what the event reports (e.g.
    /// `message.received:<whatsapp id>`, `message.ack:<whatsapp id>:read`): writing the same
    /// event twice stores it once.
    pub event_id: String,
    pub kind: HubEventKind,
    /// The CRM client it belongs to; `None`: admins only.
    pub cliente_id: Option<ClienteId>,
    /// The WhatsApp session (`admin`).
    pub instance: String,
    pub data: Value,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct HubEvent {
    /// The position in the log (strictly increasing).
    pub seq: i64,
    pub event_id: String,
    pub kind: HubEventKind,
    pub cliente_id: Option<ClienteId>,
    pub instance: String,
    pub data: Value,
    /// RFC 3339.
    pub created_at: String,
}

impl HubEvent {
    /// The JSON body a webhook receives: `{id, event, created_at, cliente_id, instance, data}`.
    pub fn webhook_body(&self) -> Value {
        serde_json::json!({
            "id": self.event_id,
            "event": self.kind.as_str(),
            "created_at": self.created_at,
            "cliente_id": self.cliente_id.map(ClienteId::get),
            "instance": self.instance,
            "data": self.data,
        })
    }
}

/// Records `event` on `conn` (a transaction's connection, or a pooled one). `Ok(false)` when an
/// event with the same `event_id` is already recorded.
pub async fn record_hub_event(conn: &mut AnyConnection, event: &NewHubEvent) -> Result<bool, DbError> {
    let step = "record an event for the webhooks";
    let cliente_id = event.cliente_id.map(|id| i64::try_from(id.get()).unwrap_or(i64::MAX));
    let done = bounded(
        step,
        sqlx::query(
            "insert into hub_event (event_id, kind, cliente_id, instance, payload, created_at) \
             values ($1, $2, $3, $4, $5, $6) on conflict (event_id) do nothing",
        )
        .bind(event.event_id.as_str())
        .bind(event.kind.as_str())
        .bind(cliente_id)
        .bind(event.instance.as_str())
        .bind(event.data.to_string())
        .bind(crate::clock::now_rfc3339())
        .execute(conn),
    )
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// Records one event on its own (for producers without a transaction of their own).
    pub async fn record_hub_event(&self, event: &NewHubEvent) -> Result<bool, DbError> {
        let step = "record an event for the webhooks";
        let mut conn = bounded(step, self.pool.acquire()).await?;
        record_hub_event(&mut conn, event).await
    }

    /// Up to `limit` events after position `after_seq`, oldest first.
    pub async fn hub_events_after(&self, after_seq: i64, limit: i64) -> Result<Vec<HubEvent>, DbError> {
        let step = "read the event log";
        let rows = bounded(
            step,
            sqlx::query(
                "select hub_event_id, event_id, kind, cliente_id, instance, payload, created_at \
                 from hub_event where hub_event_id > $1 order by hub_event_id limit $2",
            )
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.pool),
        )
        .await?;
        rows.iter().map(|row| hub_event_from_row(row, step)).collect()
    }
}

/// A `hub_event` row (columns `hub_event_id, event_id, kind, cliente_id, instance, payload,
/// created_at`) as a [`HubEvent`].
pub(crate) fn hub_event_from_row(row: &sqlx::any::AnyRow, step: &'static str) -> Result<HubEvent, DbError> {
    let get = |source| DbError::Query { step, source };
    let kind: String = row.try_get("kind").map_err(get)?;
    let kind = HubEventKind::parse(&kind)
        .ok_or_else(|| DbError::Corrupt { step, reason: format!("unknown event kind {kind:?}") })?;
    let cliente_id: Option<i64> = row.try_get("cliente_id").map_err(get)?;
    let cliente_id = cliente_id
        .map(ClienteId::try_from)
        .transpose()
        .map_err(|reason| DbError::Corrupt { step, reason })?;
    let payload: String = row.try_get("payload").map_err(get)?;
    let data = serde_json::from_str(&payload)
        .map_err(|error| DbError::Corrupt { step, reason: format!("event payload: {error}") })?;
    Ok(HubEvent {
        seq: row.try_get("hub_event_id").map_err(get)?,
        event_id: row.try_get("event_id").map_err(get)?,
        kind,
        cliente_id,
        instance: row.try_get("instance").map_err(get)?,
        data,
        created_at: row.try_get("created_at").map_err(get)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_is_recorded_once_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/hub.db", dir.path().display())).await.unwrap();
        let event = |id: &str, kind| NewHubEvent {
            event_id: id.into(),
            kind,
            cliente_id: Some(ClienteId::parse("7").unwrap()),
            instance: "admin".into(),
            data: serde_json::json!({"message_id": id}),
        };
        assert!(store.record_hub_event(&event("a", HubEventKind::MessageReceived)).await.unwrap());
        assert!(!store.record_hub_event(&event("a", HubEventKind::MessageReceived)).await.unwrap());
        assert!(store.record_hub_event(&event("b", HubEventKind::MessageAck)).await.unwrap());
        let all = store.hub_events_after(0, 10).await.unwrap();
        assert_eq!(all.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(all[1].webhook_body()["event"], "message.ack");
        assert_eq!(all[1].webhook_body()["cliente_id"], 7);
        let rest = store.hub_events_after(all[0].seq, 10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].data["message_id"], "b");
    }
}
