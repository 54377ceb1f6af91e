//! The `webhook` table: endpoints, the kinds each wants, its secret and its owner.

use std::fmt;

use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{DbError, HubEvent, HubEventKind, Store, bounded};

const COLUMNS: &str = "webhook_id, url, events, secret, cliente_id, created_by, created_at, from_seq";

/// A webhook to create.
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<HubEventKind>,
    pub secret: String,
    /// `None`: an admin's webhook (every event).
    pub cliente_id: Option<i64>,
    pub created_by: String,
}

/// A live webhook.
#[derive(Clone)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub events: Vec<HubEventKind>,
    /// Never shown after creation, never logged (`Debug` hides it).
    pub secret: String,
    pub cliente_id: Option<i64>,
    pub created_by: String,
    pub created_at: String,
    /// Events up to this position are older than the webhook and not sent to it.
    pub from_seq: i64,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &"<hidden>")
            .field("cliente_id", &self.cliente_id)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// An admin's webhook is told every event; a client's only its own cliente_id's.
    pub fn wants(&self, event: &HubEvent) -> bool {
        event.seq > self.from_seq
            && self.events.contains(&event.kind)
            && match self.cliente_id {
                None => true,
                Some(own) => {
                    event.cliente_id.is_some_and(|id| u64::try_from(own).is_ok_and(|own| id.get() == own))
                }
            }
    }

    /// What the API shows of it (never the secret).
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "events": self.events.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "cliente_id": self.cliente_id,
            "created_by": self.created_by,
            "created_at": self.created_at,
        })
    }
}

fn from_row(row: &AnyRow, step: &'static str) -> Result<Webhook, DbError> {
    let get = |source| DbError::Query { step, source };
    let events: String = row.try_get("events").map_err(get)?;
    let events = events
        .split(',')
        .map(|raw| {
            HubEventKind::parse(raw).ok_or_else(|| DbError::Corrupt {
                step,
                reason: format!("unknown webhook event kind {raw:?}"),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Webhook {
        id: row.try_get("webhook_id").map_err(get)?,
        url: row.try_get("url").map_err(get)?,
        events,
        secret: row.try_get("secret").map_err(get)?,
        cliente_id: row.try_get("cliente_id").map_err(get)?,
        created_by: row.try_get("created_by").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
        from_seq: row.try_get("from_seq").map_err(get)?,
    })
}

impl Store {
    /// Stores a webhook; it is told the events recorded from now on.
    pub async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook, DbError> {
        let step = "create a webhook";
        let events = new.events.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",");
        let sql = sqlx::AssertSqlSafe(format!(
            "insert into webhook (url, events, secret, cliente_id, created_by, created_at, from_seq) \
             values ($1, $2, $3, $4, $5, $6, (select coalesce(max(hub_event_id), 0) from hub_event)) \
             returning {COLUMNS}"
        ));
        let row = bounded(
            step,
            sqlx::query(sql)
                .bind(new.url)
                .bind(events)
                .bind(new.secret)
                .bind(new.cliente_id)
                .bind(new.created_by)
                .bind(crate::clock::now_rfc3339())
                .fetch_one(self.pool()),
        )
        .await?;
        from_row(&row, step)
    }

    /// The live webhooks, of one owner (`Some(cliente_id)`) or all (`None`), oldest first.
    pub async fn list_webhooks(&self, cliente_id: Option<i64>) -> Result<Vec<Webhook>, DbError> {
        let step = "list the webhooks";
        let filter = if cliente_id.is_some() { " and cliente_id = $1" } else { "" };
        let sql = sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from webhook where disabled_at is null{filter} order by webhook_id"
        ));
        let mut query = sqlx::query(sql);
        if let Some(id) = cliente_id {
            query = query.bind(id);
        }
        let rows = bounded(step, query.fetch_all(self.pool())).await?;
        rows.iter().map(|r| from_row(r, step)).collect()
    }

    pub async fn find_webhook(&self, id: i64) -> Result<Option<Webhook>, DbError> {
        let step = "read a webhook";
        let sql = sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from webhook where webhook_id = $1 and disabled_at is null"
        ));
        let row = bounded(step, sqlx::query(sql).bind(id).fetch_optional(self.pool())).await?;
        row.map(|r| from_row(&r, step)).transpose()
    }

    /// Deletes a webhook: it is told nothing more and its pending deliveries end as dead. Its
    /// history stays for the audit. `false` when there was no such live webhook.
    pub async fn delete_webhook(&self, id: i64, now_ms: i64) -> Result<bool, DbError> {
        let step = "delete a webhook";
        let mut tx = bounded(step, self.pool().begin()).await?;
        let done = bounded(
            step,
            sqlx::query("update webhook set disabled_at = $1 where webhook_id = $2 and disabled_at is null")
                .bind(crate::clock::now_rfc3339())
                .bind(id)
                .execute(&mut *tx),
        )
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        bounded(
            step,
            sqlx::query(
                "update webhook_delivery set state = 'dead', last_error = 'the webhook was deleted', \
                 lease_owner = null, updated_ms = $1 where webhook_id = $2 and state = 'pending'",
            )
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx),
        )
        .await?;
        bounded(step, tx.commit()).await?;
        Ok(true)
    }
}
