//! Applying one inbound event, all in one transaction: the message or ack stored (a replayed
//! event changes nothing), its effects (attribution, campaign recipient, opt-out), its
//! `hub_event`, and the stream position. A failure rolls everything back: the follower retries
//! the same event, and never skips one.

use serde::{Deserialize, Serialize};
use serde_json::json;
use shared_contracts::{AckLevel, ClienteId, InboundEvent, InboundKind, IncomingMessage, MessageAck};
use sqlx::{AnyConnection, Row};

use super::{OptOutKeywords, ack_rank};
use crate::campaigns::optout_list::{NewOptOut, add_opt_out_on};
use crate::clock::rfc3339_from_ms;
use crate::db::{DbError, HubEventKind, NewHubEvent, Store, bounded, record_hub_event};

/// Who opted a number out by keyword, in the opt-out list.
pub const KEYWORD_OPT_OUT_BY: &str = "inbound keyword";

/// What applying an event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The event was at or behind the stored position, or its message was already stored.
    Duplicate,
    Message {
        cliente_id: Option<i64>,
        campaign_id: Option<i64>,
        opted_out: bool,
    },
    Ack {
        campaign_id: Option<i64>,
    },
    /// An ack of a send not stored yet: kept on a placeholder row until the send lands.
    HeldAck,
}

/// An ack kept on a placeholder row (`held_acks`, JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldAck {
    pub ack: AckLevel,
    pub timestamp: i64,
    #[serde(default)]
    pub to: Option<String>,
}

/// The `message.ack` event of `ack` (data as documented in `db::hub_events`).
pub fn ack_event(
    instance: &str,
    whatsapp_id: &str,
    to: Option<&str>,
    ack: &HeldAck,
    cliente_id: Option<ClienteId>,
    campaign_id: Option<i64>,
) -> NewHubEvent {
    NewHubEvent {
        event_id: format!("message.ack:{whatsapp_id}:{}", ack.ack.as_str()),
        kind: HubEventKind::MessageAck,
        cliente_id,
        instance: instance.to_owned(),
        data: json!({
            "message_id": whatsapp_id,
            "to": to.or(ack.to.as_deref()),
            "ack": ack.ack.as_str(),
            "timestamp": ack.timestamp,
            "campaign_id": campaign_id,
        }),
    }
}

/// Fills the `delivered_at` / `read_at` of the campaign recipient sent as `whatsapp_id` (read
/// implies delivered, played implies read); earlier values are kept.
pub async fn fill_recipient_acks(
    conn: &mut AnyConnection,
    whatsapp_id: &str,
    ack: &HeldAck,
) -> Result<(), DbError> {
    let rank = ack_rank(ack.ack);
    if rank < ack_rank(AckLevel::Delivered) {
        return Ok(());
    }
    bounded(
        "record a campaign recipient's ack",
        sqlx::query(
            "update campaign_recipient set delivered_at = coalesce(delivered_at, $1), \
             read_at = case when $2 >= 3 then coalesce(read_at, $1) else read_at end \
             where whatsapp_message_id = $3",
        )
        .bind(rfc3339_from_ms(ack.timestamp))
        .bind(rank)
        .bind(whatsapp_id.to_owned())
        .execute(&mut *conn),
    )
    .await?;
    Ok(())
}

fn to_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl Store {
    /// The last sequence of `instance`'s stream the hub applied (0: none yet).
    pub async fn inbound_position(&self, instance: &str) -> Result<u64, DbError> {
        let step = "read the inbound stream position";
        let row = bounded(
            step,
            sqlx::query("select last_seq from inbound_position where instance = $1")
                .bind(instance.to_owned())
                .fetch_optional(self.pool()),
        )
        .await?;
        let seq: i64 = match row {
            Some(row) => row.try_get("last_seq").map_err(|source| DbError::Query { step, source })?,
            None => 0,
        };
        Ok(u64::try_from(seq).unwrap_or(0))
    }

    /// Applies one event in one transaction (see the module's doc).
    pub async fn apply_inbound(
        &self,
        event: &InboundEvent,
        keywords: &OptOutKeywords,
    ) -> Result<Applied, DbError> {
        let step = "apply an inbound event";
        let mut tx = bounded(step, self.pool().begin()).await?;
        let position = bounded(
            step,
            sqlx::query("select last_seq from inbound_position where instance = $1")
                .bind(event.session.clone())
                .fetch_optional(&mut *tx),
        )
        .await?
        .map(|row| row.try_get::<i64, _>("last_seq"))
        .transpose()
        .map_err(|source| DbError::Query { step, source })?
        .unwrap_or(0);
        if to_i64(event.seq) <= position {
            return Ok(Applied::Duplicate);
        }
        let applied = match &event.kind {
            InboundKind::Message(message) => {
                apply_message(&mut tx, &event.session, message, keywords).await?
            }
            InboundKind::Ack(ack) => apply_ack(&mut tx, &event.session, ack).await?,
        };
        bounded(
            step,
            sqlx::query(
                "insert into inbound_position (instance, last_seq, updated_at) values ($1, $2, $3) \
                 on conflict (instance) do update set last_seq = excluded.last_seq, updated_at = excluded.updated_at \
                 where inbound_position.last_seq < excluded.last_seq",
            )
            .bind(event.session.clone())
            .bind(to_i64(event.seq))
            .bind(crate::clock::now_rfc3339())
            .execute(&mut *tx),
        )
        .await?;
        bounded(step, tx.commit()).await?;
        Ok(applied)
    }
}

fn cliente(raw: Option<i64>, step: &'static str) -> Result<Option<ClienteId>, DbError> {
    raw.map(ClienteId::try_from).transpose().map_err(|reason| DbError::Corrupt { step, reason })
}

async fn apply_message(
    conn: &mut AnyConnection,
    instance: &str,
    m: &IncomingMessage,
    keywords: &OptOutKeywords,
) -> Result<Applied, DbError> {
    let step = "store an incoming message";
    let get = |source| DbError::Query { step, source };
    let known = bounded(
        step,
        sqlx::query("select id from message where instance = $1 and whatsapp_id = $2")
            .bind(instance.to_owned())
            .bind(m.message_id.clone())
            .fetch_optional(&mut *conn),
    )
    .await?;
    if known.is_some() {
        return Ok(Applied::Duplicate);
    }
    // The client that last wrote to this phone (an API or campaign send) owns the reply.
    let last_out = bounded(
        step,
        sqlx::query(
            "select cliente_id, campaign_id, whatsapp_id from message where instance = $1 and peer_phone = $2 \
             and direction = 'out' and cliente_id is not null order by id desc limit 1",
        )
        .bind(instance.to_owned())
        .bind(m.from.clone())
        .fetch_optional(&mut *conn),
    )
    .await?;
    let (cliente_id, campaign_id, replied_to) = match &last_out {
        Some(row) => (
            row.try_get::<Option<i64>, _>("cliente_id").map_err(get)?,
            row.try_get::<Option<i64>, _>("campaign_id").map_err(get)?,
            Some(row.try_get::<String, _>("whatsapp_id").map_err(get)?),
        ),
        None => (None, None, None),
    };
    bounded(
        step,
        sqlx::query(
            "insert into message (direction, instance, whatsapp_id, peer_phone, cliente_id, campaign_id, \
             message_type, body, wa_timestamp_ms, stored_at, stored_at_ms) \
             values ('in', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(instance.to_owned())
        .bind(m.message_id.clone())
        .bind(m.from.clone())
        .bind(cliente_id)
        .bind(campaign_id)
        .bind(m.message_type.clone())
        .bind(m.text.clone())
        .bind(m.timestamp)
        .bind(crate::clock::now_rfc3339())
        .bind(crate::campaigns::now_ms())
        .execute(&mut *conn),
    )
    .await?;
    if let (Some(_), Some(sent_as)) = (campaign_id, &replied_to) {
        bounded(
            step,
            sqlx::query(
                "update campaign_recipient set replied_at = coalesce(replied_at, $1) where whatsapp_message_id = $2",
            )
            .bind(rfc3339_from_ms(m.timestamp))
            .bind(sent_as.clone())
            .execute(&mut *conn),
        )
        .await?;
    }
    let event = NewHubEvent {
        event_id: format!("message.received:{}", m.message_id),
        kind: HubEventKind::MessageReceived,
        cliente_id: cliente(cliente_id, step)?,
        instance: instance.to_owned(),
        data: json!({
            "message_id": m.message_id,
            "from": m.from,
            "chat": m.chat,
            "type": m.message_type,
            "text": m.text,
            "timestamp": m.timestamp,
            "campaign_id": campaign_id,
        }),
    };
    record_hub_event(conn, &event).await?;
    let mut opted_out = false;
    if let Some(keyword) = m.text.as_deref().and_then(|text| keywords.matches(text)) {
        let evidence = format!(
            "message {} from {} at {}: {:?}",
            m.message_id,
            m.from,
            rfc3339_from_ms(m.timestamp),
            m.text.as_deref().unwrap_or_default()
        );
        let reason = format!("keyword {keyword:?}");
        let new = NewOptOut {
            phone: &m.from,
            cliente_id,
            reason: &reason,
            evidence: Some(&evidence),
            created_by: KEYWORD_OPT_OUT_BY,
        };
        add_opt_out_on(conn, &new).await?;
        opted_out = true;
        tracing::info!(phone = %m.from, cliente_id, keyword, "a number opted out by keyword");
    }
    Ok(Applied::Message { cliente_id, campaign_id, opted_out })
}

async fn apply_ack(conn: &mut AnyConnection, instance: &str, a: &MessageAck) -> Result<Applied, DbError> {
    let step = "apply a message ack";
    let get = |source| DbError::Query { step, source };
    let held = HeldAck { ack: a.ack, timestamp: a.timestamp, to: a.to.clone() };
    let rank = ack_rank(a.ack);
    let at = rfc3339_from_ms(a.timestamp);
    let row = bounded(
        step,
        sqlx::query(
            "select id, cliente_id, campaign_id, placeholder, held_acks, peer_phone from message \
             where instance = $1 and whatsapp_id = $2",
        )
        .bind(instance.to_owned())
        .bind(a.message_id.clone())
        .fetch_optional(&mut *conn),
    )
    .await?;
    let corrupt = |e: serde_json::Error| DbError::Corrupt { step, reason: format!("held acks: {e}") };
    let Some(row) = row else {
        let held = serde_json::to_string(&[&held]).map_err(corrupt)?;
        bounded(
            step,
            sqlx::query(
                "insert into message (direction, instance, whatsapp_id, peer_phone, stored_at, stored_at_ms, \
                 ack, ack_rank, ack_at, placeholder, held_acks) values ('out', $1, $2, $3, $4, $5, $6, $7, $8, 1, $9)",
            )
            .bind(instance.to_owned())
            .bind(a.message_id.clone())
            .bind(a.to.clone())
            .bind(crate::clock::now_rfc3339())
            .bind(crate::campaigns::now_ms())
            .bind(a.ack.as_str())
            .bind(rank)
            .bind(at)
            .bind(held)
            .execute(&mut *conn),
        )
        .await?;
        return Ok(Applied::HeldAck);
    };
    let id: i64 = row.try_get("id").map_err(get)?;
    bounded(
        step,
        sqlx::query(
            "update message set ack = $1, ack_rank = $2, ack_at = $3 where id = $4 \
             and (ack_rank is null or ack_rank < $2 or ($2 = -1 and ack_rank < 2))",
        )
        .bind(a.ack.as_str())
        .bind(rank)
        .bind(at)
        .bind(id)
        .execute(&mut *conn),
    )
    .await?;
    if row.try_get::<i64, _>("placeholder").map_err(get)? == 1 {
        let raw: Option<String> = row.try_get("held_acks").map_err(get)?;
        let mut acks: Vec<HeldAck> =
            raw.as_deref().map(serde_json::from_str).transpose().map_err(corrupt)?.unwrap_or_default();
        if !acks.iter().any(|h| h.ack == a.ack) {
            acks.push(held);
            bounded(
                step,
                sqlx::query("update message set held_acks = $1 where id = $2")
                    .bind(serde_json::to_string(&acks).map_err(corrupt)?)
                    .bind(id)
                    .execute(&mut *conn),
            )
            .await?;
        }
        return Ok(Applied::HeldAck);
    }
    let campaign_id: Option<i64> = row.try_get("campaign_id").map_err(get)?;
    let cliente_id = cliente(row.try_get("cliente_id").map_err(get)?, step)?;
    let phone: Option<String> = row.try_get("peer_phone").map_err(get)?;
    let event = ack_event(instance, &a.message_id, phone.as_deref(), &held, cliente_id, campaign_id);
    if !record_hub_event(conn, &event).await? {
        return Ok(Applied::Duplicate);
    }
    fill_recipient_acks(conn, &a.message_id, &held).await?;
    Ok(Applied::Ack { campaign_id })
}
