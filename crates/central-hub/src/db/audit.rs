//! The audit log of admin actions: who did what, when, and how it ended.

use sqlx::Row;

use super::{DbError, Store, bounded};

/// One admin action to record.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    /// `None` for actions from the command line.
    pub actor_user_id: Option<i64>,
    pub actor_email: String,
    /// e.g. `whatsapp.connect`, `user.disable`.
    pub action: String,
    pub target: Option<String>,
    /// `ok` or the error code.
    pub result: String,
    pub detail: Option<String>,
}

/// A recorded action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    pub actor_user_id: Option<i64>,
    pub actor_email: String,
    pub action: String,
    pub target: Option<String>,
    pub result: String,
    pub detail: Option<String>,
    pub request_id: Option<String>,
}

impl Store {
    pub async fn record_audit(&self, entry: AuditEntry) -> Result<(), DbError> {
        let step = "write the audit log";
        bounded(
            step,
            sqlx::query(
                "insert into audit_log (at, actor_user_id, actor_email, action, target, result, detail, request_id) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(crate::clock::now_rfc3339())
            .bind(entry.actor_user_id)
            .bind(entry.actor_email)
            .bind(entry.action)
            .bind(entry.target)
            .bind(entry.result)
            .bind(entry.detail)
            .bind(crate::request_context::current_request_id())
            .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    /// The most recent entries first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditRecord>, DbError> {
        let step = "read the audit log";
        let rows = bounded(
            step,
            sqlx::query(
                "select audit_log_id, at, actor_user_id, actor_email, action, target, result, detail, request_id \
                 from audit_log order by audit_log_id desc limit $1",
            )
            .bind(limit)
            .fetch_all(&self.pool),
        )
        .await?;
        rows.iter()
            .map(|row| {
                let get = |source| DbError::Query { step, source };
                Ok(AuditRecord {
                    id: row.try_get("audit_log_id").map_err(get)?,
                    at: row.try_get("at").map_err(get)?,
                    actor_user_id: row.try_get("actor_user_id").map_err(get)?,
                    actor_email: row.try_get("actor_email").map_err(get)?,
                    action: row.try_get("action").map_err(get)?,
                    target: row.try_get("target").map_err(get)?,
                    result: row.try_get("result").map_err(get)?,
                    detail: row.try_get("detail").map_err(get)?,
                    request_id: row.try_get("request_id").map_err(get)?,
                })
            })
            .collect()
    }
}
