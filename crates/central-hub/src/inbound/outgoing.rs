//! Recording what the hub sent (an API send, a campaign send) with the WhatsApp id the manager
//! answered, so replies can be attributed and acks applied.
//!
//! The manager's `sent` ack for a message can reach the hub before the send's answer is stored.
//! Such an ack makes a placeholder row keyed by the WhatsApp id (its levels held in `held_acks`,
//! no event recorded: its client is not known yet); recording the send completes that row, and
//! in the same transaction reports the held acks (`hub_event`, campaign recipient) with the
//! send's `cliente_id`.

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::apply::{HeldAck, ack_event, fill_recipient_acks};
use crate::db::{DbError, Store, bounded, record_hub_event};

/// A message the session sent for a client.
#[derive(Clone, Debug)]
pub struct OutgoingMessage<'a> {
    pub instance: &'a str,
    /// `SentMessage.message_id`, as the manager answered it.
    pub whatsapp_id: &'a str,
    /// Digits only.
    pub phone: &'a str,
    pub cliente_id: i64,
    pub campaign_id: Option<i64>,
    pub text: &'a str,
    /// Unix milliseconds, as the manager answered it.
    pub timestamp_ms: i64,
}

/// Records `message` on `conn` (a transaction's): a new row, or the completion of the placeholder
/// an early ack made. A send already recorded (an idempotent replay) changes nothing.
pub async fn record_outgoing_on(
    conn: &mut AnyConnection,
    message: &OutgoingMessage<'_>,
) -> Result<(), DbError> {
    let step = "record a sent message";
    let get = |source| DbError::Query { step, source };
    let existing = bounded(
        step,
        sqlx::query(
            "select id, placeholder, held_acks from message where instance = $1 and whatsapp_id = $2",
        )
        .bind(message.instance.to_owned())
        .bind(message.whatsapp_id.to_owned())
        .fetch_optional(&mut *conn),
    )
    .await?;
    let now = crate::clock::now_rfc3339();
    let now_ms = crate::campaigns::now_ms();
    let Some(row) = existing else {
        bounded(
            step,
            sqlx::query(
                "insert into message (direction, instance, whatsapp_id, peer_phone, cliente_id, campaign_id, \
                 message_type, body, wa_timestamp_ms, stored_at, stored_at_ms) \
                 values ('out', $1, $2, $3, $4, $5, 'chat', $6, $7, $8, $9)",
            )
            .bind(message.instance.to_owned())
            .bind(message.whatsapp_id.to_owned())
            .bind(message.phone.to_owned())
            .bind(message.cliente_id)
            .bind(message.campaign_id)
            .bind(message.text.to_owned())
            .bind(message.timestamp_ms)
            .bind(now)
            .bind(now_ms)
            .execute(&mut *conn),
        )
        .await?;
        return Ok(());
    };
    if row.try_get::<i64, _>("placeholder").map_err(get)? == 0 {
        return Ok(());
    }
    let id: i64 = row.try_get("id").map_err(get)?;
    let held: Option<String> = row.try_get("held_acks").map_err(get)?;
    bounded(
        step,
        sqlx::query(
            "update message set peer_phone = $1, cliente_id = $2, campaign_id = $3, body = $4, \
             wa_timestamp_ms = $5, placeholder = 0, held_acks = null where id = $6",
        )
        .bind(message.phone.to_owned())
        .bind(message.cliente_id)
        .bind(message.campaign_id)
        .bind(message.text.to_owned())
        .bind(message.timestamp_ms)
        .bind(id)
        .execute(&mut *conn),
    )
    .await?;
    let held: Vec<HeldAck> = match held.as_deref().map(serde_json::from_str::<Value>) {
        None => Vec::new(),
        Some(Ok(value)) => serde_json::from_value(value)
            .map_err(|e| DbError::Corrupt { step, reason: format!("held acks: {e}") })?,
        Some(Err(e)) => return Err(DbError::Corrupt { step, reason: format!("held acks: {e}") }),
    };
    let cliente = shared_contracts::ClienteId::try_from(message.cliente_id)
        .map_err(|reason| DbError::Corrupt { step, reason })?;
    for ack in &held {
        let event = ack_event(
            message.instance,
            message.whatsapp_id,
            Some(message.phone),
            ack,
            Some(cliente),
            message.campaign_id,
        );
        record_hub_event(conn, &event).await?;
        fill_recipient_acks(conn, message.whatsapp_id, ack).await?;
    }
    if !held.is_empty() {
        tracing::debug!(
            whatsapp_id = message.whatsapp_id,
            acks = held.len(),
            "applied acks that arrived before their send"
        );
    }
    Ok(())
}

impl Store {
    /// Records an API send on its own transaction.
    pub async fn record_outgoing(&self, message: &OutgoingMessage<'_>) -> Result<(), DbError> {
        let step = "record a sent message";
        let mut tx = bounded(step, self.pool().begin()).await?;
        record_outgoing_on(&mut tx, message).await?;
        bounded(step, tx.commit()).await
    }
}
