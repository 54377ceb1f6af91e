//! The recipients table as the dispatcher's queue: claim one row with a lease (PostgreSQL
//! `FOR UPDATE SKIP LOCKED`, so several hubs share a campaign; SQLite one `UPDATE ... RETURNING`
//! from its single writer), take over a lease whose owner died, and write a send's result only
//! while holding the lease.

use shared_contracts::{IdempotencyKey, MessageText, PhoneNumber};
use sqlx::Row;

use super::store::{COLUMNS, Campaign, campaign_from_row};
use super::{CampaignState, PauseReason};
use crate::db::{Backend, DbError, Store, bounded};
use crate::inbound::OutgoingMessage;
use crate::inbound::outgoing::record_outgoing_on;

/// A recipient this hub now holds the lease of.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub recipient_id: i64,
    pub campaign_id: i64,
    pub phone: PhoneNumber,
    pub rendered: MessageText,
    /// Including this one.
    pub attempts: i64,
}

impl Claimed {
    /// The send's Idempotency-Key: the same for every attempt, so a resend after a crash or a
    /// timeout is answered from the manager's journal instead of sent twice.
    pub fn idempotency_key(&self) -> IdempotencyKey {
        IdempotencyKey::parse(
            format!("campaign:{}:recipient:{}", self.campaign_id, self.recipient_id).as_bytes(),
        )
        .expect("two integers and ASCII words make a valid Idempotency-Key")
    }
}

impl Store {
    pub async fn campaigns_in_state(&self, state: CampaignState) -> Result<Vec<Campaign>, DbError> {
        let step = "list campaigns to dispatch";
        let sql = sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from campaign where state = $1 order by campaign_id limit 1000"
        ));
        let rows = bounded(step, sqlx::query(sql).bind(state.as_str()).fetch_all(self.pool())).await?;
        rows.iter().map(|r| campaign_from_row(r, step)).collect()
    }

    /// Claims the campaign's next recipient for `lease_ms`: first a `sending` row whose lease
    /// expired (its hub died mid-send: it is sent again with the same key), then the oldest
    /// `pending` row due now.
    pub async fn claim_recipient(
        &self,
        campaign_id: i64,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Claimed>, DbError> {
        let step = "claim a campaign recipient";
        let lock = match self.backend() {
            Backend::Postgres => " for update skip locked",
            Backend::Sqlite => "",
        };
        for due in
            ["state = 'sending' and lease_until_ms <= $4", "state = 'pending' and next_attempt_ms <= $4"]
        {
            let sql = sqlx::AssertSqlSafe(format!(
                "update campaign_recipient set state = 'sending', lease_owner = $1, lease_until_ms = $2, \
                 attempts = attempts + 1 \
                 where recipient_id = (select recipient_id from campaign_recipient \
                 where campaign_id = $3 and {due} order by recipient_id limit 1{lock}) and {due} \
                 returning recipient_id, campaign_id, phone, rendered, attempts"
            ));
            let row = bounded(
                step,
                sqlx::query(sql)
                    .bind(owner.to_owned())
                    .bind(now_ms + lease_ms)
                    .bind(campaign_id)
                    .bind(now_ms)
                    .fetch_optional(self.pool()),
            )
            .await?;
            if let Some(row) = row {
                let get = |source| DbError::Query { step, source };
                // Stored after validation at creation: a value that no longer parses is a corrupt row.
                let corrupt = |reason| DbError::Corrupt { step, reason };
                let phone: String = row.try_get("phone").map_err(get)?;
                let rendered: String = row.try_get("rendered").map_err(get)?;
                return Ok(Some(Claimed {
                    recipient_id: row.try_get("recipient_id").map_err(get)?,
                    campaign_id: row.try_get("campaign_id").map_err(get)?,
                    phone: PhoneNumber::parse(&phone).map_err(corrupt)?,
                    rendered: MessageText::parse(rendered).map_err(corrupt)?,
                    attempts: row.try_get("attempts").map_err(get)?,
                }));
            }
        }
        Ok(None)
    }

    /// SQLite serves one hub: at its start, every lease left by its previous run is expired.
    pub async fn expire_leases(&self) -> Result<u64, DbError> {
        let step = "take over the leases of a previous run";
        let done = bounded(
            step,
            sqlx::query("update campaign_recipient set lease_until_ms = 0 where state = 'sending'")
                .execute(self.pool()),
        )
        .await?;
        Ok(done.rows_affected())
    }

    /// The send went out: `false` when this hub no longer held the lease. The row keeps the
    /// lease's owner: which hub sent it. The message is recorded (`message`, for replies and acks)
    /// in the same transaction.
    pub async fn mark_sent(
        &self,
        claimed: &Claimed,
        owner: &str,
        sent: &OutgoingMessage<'_>,
        at_ms: i64,
    ) -> Result<bool, DbError> {
        let step = "record a campaign send";
        let mut tx = bounded(step, self.pool().begin()).await?;
        let done = bounded(
            step,
            sqlx::query(
                "update campaign_recipient set state = 'sent', whatsapp_message_id = $1, sent_via = $2, \
                 sent_at = $3, sent_at_ms = $4, error_code = null, error_detail = null \
                 where recipient_id = $5 and lease_owner = $6 and state = 'sending'",
            )
            .bind(sent.whatsapp_id.to_owned())
            .bind(sent.instance.to_owned())
            .bind(crate::clock::now_rfc3339())
            .bind(at_ms)
            .bind(claimed.recipient_id)
            .bind(owner.to_owned())
            .execute(&mut *tx),
        )
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        record_outgoing_on(&mut tx, sent).await?;
        bounded(step, tx.commit()).await?;
        Ok(true)
    }

    /// The send failed: `retry_at_ms` puts it back in the queue for then, `None` fails it for good.
    pub async fn mark_unsent(
        &self,
        claimed: &Claimed,
        owner: &str,
        code: &str,
        detail: &str,
        retry_at_ms: Option<i64>,
        refund_attempt: bool,
    ) -> Result<bool, DbError> {
        let step = "record a failed campaign send";
        let (state, next) = match retry_at_ms {
            Some(at) => ("pending", at),
            None => ("failed", 0),
        };
        let done = bounded(
            step,
            sqlx::query(
                "update campaign_recipient set state = $1, next_attempt_ms = $2, error_code = $3, \
                 error_detail = $4, lease_owner = null, lease_until_ms = 0, attempts = attempts - $7 \
                 where recipient_id = $5 and lease_owner = $6 and state = 'sending'",
            )
            .bind(state)
            .bind(next)
            .bind(code.to_owned())
            .bind(detail.to_owned())
            .bind(claimed.recipient_id)
            .bind(owner.to_owned())
            .bind(i64::from(refund_attempt))
            .execute(self.pool()),
        )
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Lifts a pause the dispatcher made once its cause is gone (not a user's, nor one that
    /// another hub already lifted).
    pub async fn resume_automatic(&self, id: i64, reason: PauseReason) -> Result<Option<Campaign>, DbError> {
        let step = "resume a campaign";
        let sql = sqlx::AssertSqlSafe(format!(
            "update campaign set state = 'running', pause_reason = null, pause_detail = null, updated_at = $1 \
             where campaign_id = $2 and state = 'paused' and pause_reason = $3 returning {COLUMNS}"
        ));
        let row = bounded(
            step,
            sqlx::query(sql)
                .bind(crate::clock::now_rfc3339())
                .bind(id)
                .bind(reason.as_str())
                .fetch_optional(self.pool()),
        )
        .await?;
        row.map(|r| campaign_from_row(&r, step)).transpose()
    }

    /// Counts a send against the campaign's run of failures (a success ends it); returns the run.
    pub async fn note_send_outcome(
        &self,
        campaign_id: i64,
        failed_with: Option<&str>,
    ) -> Result<i64, DbError> {
        let step = "count a campaign's failures";
        let row = bounded(
            step,
            sqlx::query(
                "update campaign set consecutive_failures = case when $1 = 1 then consecutive_failures + 1 \
                 else 0 end, last_error = coalesce($2, last_error) where campaign_id = $3 \
                 returning consecutive_failures",
            )
            .bind(i64::from(failed_with.is_some()))
            .bind(failed_with.map(str::to_owned))
            .bind(campaign_id)
            .fetch_optional(self.pool()),
        )
        .await?;
        match row {
            Some(row) => {
                row.try_get("consecutive_failures").map_err(|source| DbError::Query { step, source })
            }
            None => Ok(0),
        }
    }

    /// A running campaign with no recipient left to send or being sent becomes `completed`.
    pub async fn complete_if_done(&self, campaign_id: i64) -> Result<Option<Campaign>, DbError> {
        let step = "complete a campaign";
        let sql = sqlx::AssertSqlSafe(format!(
            "update campaign set state = 'completed', finished_at = $1, updated_at = $1, pause_reason = null \
             where campaign_id = $2 and state = 'running' and not exists (select 1 from campaign_recipient \
             where campaign_id = $2 and state in ('pending', 'sending')) returning {COLUMNS}"
        ));
        let row = bounded(
            step,
            sqlx::query(sql).bind(crate::clock::now_rfc3339()).bind(campaign_id).fetch_optional(self.pool()),
        )
        .await?;
        row.map(|r| campaign_from_row(&r, step)).transpose()
    }

    /// When the campaign's next recipient becomes due (a retry's back-off, a lease's expiry);
    /// `None` when nothing is left.
    pub async fn next_due_ms(&self, campaign_id: i64) -> Result<Option<i64>, DbError> {
        let step = "find a campaign's next due recipient";
        let row = bounded(
            step,
            sqlx::query(
                "select min(case when state = 'pending' then next_attempt_ms else lease_until_ms end) as due \
                 from campaign_recipient where campaign_id = $1 and state in ('pending', 'sending')",
            )
            .bind(campaign_id)
            .fetch_one(self.pool()),
        )
        .await?;
        row.try_get::<Option<i64>, _>("due").map_err(|source| DbError::Query { step, source })
    }

    /// Send times of every campaign since `since_ms` (the pacer's history, all hubs included).
    pub async fn sends_since(&self, since_ms: i64) -> Result<Vec<i64>, DbError> {
        let step = "read the recent campaign sends";
        let rows = bounded(
            step,
            sqlx::query("select sent_at_ms from campaign_recipient where sent_at_ms > $1")
                .bind(since_ms)
                .fetch_all(self.pool()),
        )
        .await?;
        rows.iter()
            .map(|row| row.try_get::<i64, _>("sent_at_ms").map_err(|source| DbError::Query { step, source }))
            .collect()
    }
}
