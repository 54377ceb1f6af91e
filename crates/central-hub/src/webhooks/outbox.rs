//! The outbox (`webhook_delivery`): one row per webhook and event, inserted by the fan-out in the
//! transaction that advances its position, claimed by the delivery worker with a lease, and
//! ended as `delivered` or `dead`. While a row is claimed its `next_attempt_ms` is the lease's
//! end, so a row whose worker died is due again when the lease expires.

use std::sync::Arc;

use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::store::Webhook;
use crate::db::{DbError, HubEvent, Store, bounded, hub_event_from_row};

/// A claimed delivery, with what the worker needs to send it.
#[derive(Debug)]
pub struct Claimed {
    pub id: i64,
    pub webhook_id: i64,
    pub url: String,
    pub secret: String,
    /// The webhook's owner (`None`: an admin's).
    pub owner: Option<i64>,
    pub event: HubEvent,
    /// Including this one.
    pub attempts: i64,
    pub created_ms: i64,
}

/// An attempt that ended, with the claim it was made under.
#[derive(Debug)]
pub struct Finished {
    pub token: Arc<str>,
    pub id: i64,
    pub outcome: Outcome,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered { status: u16 },
    Retry { status: Option<u16>, error: String, at_ms: i64 },
    Dead { status: Option<u16>, error: String },
}

/// A delivery as the API lists it.
fn view(row: &AnyRow, step: &'static str) -> Result<Value, DbError> {
    let get = |source| DbError::Query { step, source };
    let ms = |name: &str| -> Result<Option<String>, DbError> {
        let at: Option<i64> = row.try_get(name).map_err(get)?;
        Ok(at.and_then(|at| jiff::Timestamp::from_millisecond(at).ok()).map(|t| t.to_string()))
    };
    let state: String = row.try_get("state").map_err(get)?;
    Ok(json!({
        "id": row.try_get::<i64, _>("webhook_delivery_id").map_err(get)?,
        "webhook_id": row.try_get::<i64, _>("webhook_id").map_err(get)?,
        "event_id": row.try_get::<String, _>("event_id").map_err(get)?,
        "event": row.try_get::<String, _>("kind").map_err(get)?,
        "attempts": row.try_get::<i64, _>("attempts").map_err(get)?,
        "last_status": row.try_get::<Option<i64>, _>("last_status").map_err(get)?,
        "last_error": row.try_get::<Option<String>, _>("last_error").map_err(get)?,
        "created_at": ms("created_ms")?,
        "delivered_at": ms("delivered_ms")?,
        "next_attempt_at": if state == "pending" { ms("next_attempt_ms")? } else { None },
        "state": state,
    }))
}

const VIEW_COLUMNS: &str = "d.webhook_delivery_id, d.webhook_id, d.event_id, e.kind, d.state, d.attempts, \
                            d.last_status, d.last_error, d.created_ms, d.delivered_ms, d.next_attempt_ms";

impl Store {
    pub async fn fanout_position(&self) -> Result<i64, DbError> {
        let step = "read the webhook fan-out position";
        let row = bounded(
            step,
            sqlx::query("select position from webhook_fanout where fanout_id = 1").fetch_one(self.pool()),
        )
        .await?;
        row.try_get("position").map_err(|source| DbError::Query { step, source })
    }

    /// In one transaction: a pending delivery for each event and each webhook that wants it, and
    /// the fan-out's position moved to `position`. Returns how many deliveries were queued.
    pub async fn fan_out(
        &self,
        events: &[HubEvent],
        webhooks: &[Webhook],
        position: i64,
        now_ms: i64,
    ) -> Result<u64, DbError> {
        let step = "queue webhook deliveries";
        let mut tx = bounded(step, self.pool().begin()).await?;
        let mut queued = 0;
        for event in events {
            for webhook in webhooks.iter().filter(|w| w.wants(event)) {
                let done = bounded(
                    step,
                    sqlx::query(
                        "insert into webhook_delivery (webhook_id, hub_event_id, event_id, state, attempts, \
                         next_attempt_ms, created_ms, updated_ms) values ($1, $2, $3, 'pending', 0, $4, $4, $4) \
                         on conflict (webhook_id, hub_event_id) do nothing",
                    )
                    .bind(webhook.id)
                    .bind(event.seq)
                    .bind(event.event_id.as_str())
                    .bind(now_ms)
                    .execute(&mut *tx),
                )
                .await?;
                queued += done.rows_affected();
            }
        }
        bounded(
            step,
            sqlx::query("update webhook_fanout set position = $1 where fanout_id = 1 and position < $1")
                .bind(position)
                .execute(&mut *tx),
        )
        .await?;
        bounded(step, tx.commit()).await?;
        Ok(queued)
    }

    /// Claims up to `limit` due deliveries for `token` until `now_ms + lease_ms`, counting the
    /// attempt, and returns them with their webhook and event.
    pub async fn claim_deliveries(
        &self,
        token: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, DbError> {
        let step = "claim webhook deliveries";
        let claimed = bounded(
            step,
            sqlx::query(
                "update webhook_delivery set lease_owner = $1, lease_until_ms = $2, next_attempt_ms = $2, \
                 attempts = attempts + 1, updated_ms = $3 \
                 where webhook_delivery_id in (select webhook_delivery_id from webhook_delivery \
                 where state = 'pending' and next_attempt_ms <= $3 order by next_attempt_ms limit $4) \
                 and state = 'pending' and next_attempt_ms <= $3",
            )
            .bind(token)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(limit)
            .execute(self.pool()),
        )
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(Vec::new());
        }
        let rows = bounded(
            step,
            sqlx::query(
                "select d.webhook_delivery_id, d.webhook_id, d.attempts, d.created_ms, w.url, w.secret, \
                 w.cliente_id as owner, e.hub_event_id, e.event_id, e.kind, e.cliente_id, e.instance, e.payload, \
                 e.created_at from webhook_delivery d join webhook w on w.webhook_id = d.webhook_id \
                 join hub_event e on e.hub_event_id = d.hub_event_id \
                 where d.lease_owner = $1 and d.state = 'pending'",
            )
            .bind(token)
            .fetch_all(self.pool()),
        )
        .await?;
        rows.iter()
            .map(|row| {
                let get = |source| DbError::Query { step, source };
                Ok(Claimed {
                    id: row.try_get("webhook_delivery_id").map_err(get)?,
                    webhook_id: row.try_get("webhook_id").map_err(get)?,
                    url: row.try_get("url").map_err(get)?,
                    secret: row.try_get("secret").map_err(get)?,
                    owner: row.try_get("owner").map_err(get)?,
                    event: hub_event_from_row(row, step)?,
                    attempts: row.try_get("attempts").map_err(get)?,
                    created_ms: row.try_get("created_ms").map_err(get)?,
                })
            })
            .collect()
    }

    /// Records the outcomes of `token`'s attempts in one transaction (a row whose lease another
    /// worker took over is left to it).
    pub async fn record_outcomes(&self, finished: &[Finished], now_ms: i64) -> Result<(), DbError> {
        let step = "record webhook delivery outcomes";
        let mut tx = bounded(step, self.pool().begin()).await?;
        for Finished { token, id, outcome } in finished {
            let (state, status, error, next_ms, delivered_ms) = match outcome {
                Outcome::Delivered { status } => ("delivered", Some(*status), None, now_ms, Some(now_ms)),
                Outcome::Retry { status, error, at_ms } => {
                    ("pending", *status, Some(error.as_str()), *at_ms, None)
                }
                Outcome::Dead { status, error } => ("dead", *status, Some(error.as_str()), now_ms, None),
            };
            bounded(
                step,
                sqlx::query(
                    "update webhook_delivery set state = $1, last_status = $2, last_error = $3, \
                     next_attempt_ms = $4, delivered_ms = $5, lease_owner = null, lease_until_ms = null, \
                     updated_ms = $6 where webhook_delivery_id = $7 and lease_owner = $8",
                )
                .bind(state)
                .bind(status.map(i64::from))
                .bind(error)
                .bind(next_ms)
                .bind(delivered_ms)
                .bind(now_ms)
                .bind(*id)
                .bind(token.to_string())
                .execute(&mut *tx),
            )
            .await?;
        }
        bounded(step, tx.commit()).await?;
        Ok(())
    }

    /// SQLite serves one hub: at its start the deliveries its previous run held are due at once.
    pub async fn expire_delivery_leases(&self, now_ms: i64) -> Result<u64, DbError> {
        let step = "take over the webhook deliveries of a previous run";
        let done = bounded(
            step,
            sqlx::query(
                "update webhook_delivery set lease_owner = null, lease_until_ms = null, next_attempt_ms = $1 \
                 where state = 'pending' and lease_owner is not null",
            )
            .bind(now_ms)
            .execute(self.pool()),
        )
        .await?;
        Ok(done.rows_affected())
    }

    /// When the next pending delivery is due (a claimed one: when its lease ends).
    pub async fn next_delivery_due_ms(&self) -> Result<Option<i64>, DbError> {
        let step = "read the next webhook delivery time";
        let row = bounded(
            step,
            sqlx::query("select min(next_attempt_ms) as due from webhook_delivery where state = 'pending'")
                .fetch_one(self.pool()),
        )
        .await?;
        row.try_get("due").map_err(|source| DbError::Query { step, source })
    }

    /// How many deliveries are pending (the queue depth).
    pub async fn pending_deliveries(&self) -> Result<i64, DbError> {
        let step = "count pending webhook deliveries";
        let row = bounded(
            step,
            sqlx::query("select count(*) as n from webhook_delivery where state = 'pending'")
                .fetch_one(self.pool()),
        )
        .await?;
        row.try_get("n").map_err(|source| DbError::Query { step, source })
    }

    /// A webhook's most recent deliveries (newest first), of one state or all.
    pub async fn list_deliveries(
        &self,
        webhook_id: i64,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Value>, DbError> {
        let step = "list webhook deliveries";
        let filter = if state.is_some() { " and d.state = $3" } else { "" };
        let sql = sqlx::AssertSqlSafe(format!(
            "select {VIEW_COLUMNS} from webhook_delivery d join hub_event e on e.hub_event_id = d.hub_event_id \
             where d.webhook_id = $1{filter} order by d.webhook_delivery_id desc limit $2"
        ));
        let mut query = sqlx::query(sql).bind(webhook_id).bind(limit);
        if let Some(state) = state {
            query = query.bind(state.to_owned());
        }
        let rows = bounded(step, query.fetch_all(self.pool())).await?;
        rows.iter().map(|r| view(r, step)).collect()
    }

    /// One delivery as the API shows it, with its webhook's id.
    pub async fn find_delivery(&self, id: i64) -> Result<Option<(i64, Value)>, DbError> {
        let step = "read a webhook delivery";
        let sql = sqlx::AssertSqlSafe(format!(
            "select {VIEW_COLUMNS} from webhook_delivery d join hub_event e on e.hub_event_id = d.hub_event_id \
             where d.webhook_delivery_id = $1"
        ));
        let row = bounded(step, sqlx::query(sql).bind(id).fetch_optional(self.pool())).await?;
        row.map(|r| {
            let webhook_id = r.try_get("webhook_id").map_err(|source| DbError::Query { step, source })?;
            Ok((webhook_id, view(&r, step)?))
        })
        .transpose()
    }

    /// Queues a delivered or dead delivery again, due now, with a fresh WEBHOOK_MAX_AGE.
    /// `false` when it is already pending.
    pub async fn replay_delivery(&self, id: i64, now_ms: i64) -> Result<bool, DbError> {
        let step = "replay a webhook delivery";
        let done = bounded(
            step,
            sqlx::query(
                "update webhook_delivery set state = 'pending', attempts = 0, next_attempt_ms = $1, \
                 created_ms = $1, delivered_ms = null, lease_owner = null, lease_until_ms = null, updated_ms = $1 \
                 where webhook_delivery_id = $2 and state <> 'pending'",
            )
            .bind(now_ms)
            .bind(id)
            .execute(self.pool()),
        )
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// The events at these positions (ones that committed after later ones: PostgreSQL hands
    /// sequence numbers out before commit).
    pub async fn hub_events_at(&self, seqs: &[i64]) -> Result<Vec<HubEvent>, DbError> {
        let step = "read late events of the event log";
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        // Integers of our own: written inline (no binding of arrays through the Any driver).
        let list = seqs.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sql = sqlx::AssertSqlSafe(format!(
            "select hub_event_id, event_id, kind, cliente_id, instance, payload, created_at from hub_event \
             where hub_event_id in ({list}) order by hub_event_id"
        ));
        let rows = bounded(step, sqlx::query(sql).fetch_all(self.pool())).await?;
        rows.iter().map(|r| hub_event_from_row(r, step)).collect()
    }
}
