//! Campaign rows in SQL: creation with all its recipients in one transaction (multi-row inserts
//! in chunks under SQLite's bind limit), reads, counts, and the state transitions users ask for.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::intake::NewRecipient;
use super::pacer::Pace;
use super::{CampaignState, PauseReason};
use crate::db::{DbError, Store, bounded};

/// Recipients per multi-row insert: 6 binds each (24,000), under SQLite's 32,766 and PostgreSQL's 65,535.
const INSERT_CHUNK: usize = 4_000;

/// A campaign as stored.
#[derive(Clone, Debug)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub cliente_id: i64,
    pub instance: String,
    pub template: String,
    pub state: CampaignState,
    pub pause_reason: Option<PauseReason>,
    pub pause_detail: Option<String>,
    pub pace: Pace,
    pub time_zone: String,
    pub window_start_min: u32,
    pub window_end_min: u32,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    pub total: i64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// What creating a campaign takes (recipients apart).
#[derive(Clone, Debug)]
pub struct NewCampaign {
    pub name: String,
    pub cliente_id: i64,
    pub instance: String,
    pub template: String,
    pub pace: Pace,
    pub time_zone: String,
    pub window_start_min: u32,
    pub window_end_min: u32,
    pub created_by: String,
}

pub(crate) const COLUMNS: &str = "campaign_id, name, cliente_id, instance, template, state, pause_reason, \
    pause_detail, min_delay_ms, max_delay_ms, max_per_hour, max_per_day, time_zone, window_start_min, \
    window_end_min, consecutive_failures, last_error, total, created_by, created_at, updated_at, started_at, \
    finished_at";

pub(crate) fn campaign_from_row(row: &AnyRow, step: &'static str) -> Result<Campaign, DbError> {
    let get = |source| DbError::Query { step, source };
    let corrupt = |reason: String| DbError::Corrupt { step, reason };
    let state: String = row.try_get("state").map_err(get)?;
    let reason: Option<String> = row.try_get("pause_reason").map_err(get)?;
    let int = |name: &str| -> Result<i64, DbError> { row.try_get::<i64, _>(name).map_err(get) };
    let small = |name: &str| -> Result<u32, DbError> {
        u32::try_from(int(name)?).map_err(|_| corrupt(format!("{name} out of range")))
    };
    Ok(Campaign {
        id: int("campaign_id")?,
        name: row.try_get("name").map_err(get)?,
        cliente_id: int("cliente_id")?,
        instance: row.try_get("instance").map_err(get)?,
        template: row.try_get("template").map_err(get)?,
        state: CampaignState::parse(&state).ok_or_else(|| corrupt(format!("campaign state {state:?}")))?,
        pause_reason: match reason {
            None => None,
            Some(r) => Some(PauseReason::parse(&r).ok_or_else(|| corrupt(format!("pause reason {r:?}")))?),
        },
        pause_detail: row.try_get("pause_detail").map_err(get)?,
        pace: Pace {
            min_delay_ms: u64::from(small("min_delay_ms")?),
            max_delay_ms: u64::from(small("max_delay_ms")?),
            max_per_hour: small("max_per_hour")?,
            max_per_day: small("max_per_day")?,
        },
        time_zone: row.try_get("time_zone").map_err(get)?,
        window_start_min: small("window_start_min")?,
        window_end_min: small("window_end_min")?,
        consecutive_failures: int("consecutive_failures")?,
        last_error: row.try_get("last_error").map_err(get)?,
        total: int("total")?,
        created_by: row.try_get("created_by").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
        updated_at: row.try_get("updated_at").map_err(get)?,
        started_at: row.try_get("started_at").map_err(get)?,
        finished_at: row.try_get("finished_at").map_err(get)?,
    })
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// Stores the campaign (as a draft) and every recipient, all or nothing.
    pub async fn create_campaign(
        &self,
        new: NewCampaign,
        recipients: Vec<NewRecipient>,
    ) -> Result<Campaign, DbError> {
        let step = "create a campaign";
        let get = |source| DbError::Query { step, source };
        let mut tx = bounded(step, self.pool().begin()).await?;
        let now = crate::clock::now_rfc3339();
        let sql = sqlx::AssertSqlSafe(format!(
            "insert into campaign (name, cliente_id, instance, template, state, min_delay_ms, max_delay_ms, \
             max_per_hour, max_per_day, time_zone, window_start_min, window_end_min, total, created_by, \
             created_at, updated_at) values ($1, $2, $3, $4, 'draft', $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $14) returning {COLUMNS}"
        ));
        let row = bounded(
            step,
            sqlx::query(sql)
                .bind(new.name)
                .bind(new.cliente_id)
                .bind(new.instance)
                .bind(new.template)
                .bind(to_i64(new.pace.min_delay_ms))
                .bind(to_i64(new.pace.max_delay_ms))
                .bind(i64::from(new.pace.max_per_hour))
                .bind(i64::from(new.pace.max_per_day))
                .bind(new.time_zone)
                .bind(i64::from(new.window_start_min))
                .bind(i64::from(new.window_end_min))
                .bind(i64::try_from(recipients.len()).unwrap_or(i64::MAX))
                .bind(new.created_by)
                .bind(now)
                .fetch_one(&mut *tx),
        )
        .await?;
        let campaign = campaign_from_row(&row, step)?;
        let mut rows = recipients.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<NewRecipient> = rows.by_ref().take(INSERT_CHUNK).collect();
            let mut sql = String::with_capacity(64 + chunk.len() * 40);
            sql.push_str(
                "insert into campaign_recipient (campaign_id, line, phone, vars, rendered, state, error_code) values ",
            );
            // SQLite looks a `$N` parameter up by name among those seen so far (quadratic in a
            // statement of thousands): anonymous `?` there, `$N` for PostgreSQL.
            let sqlite = self.backend() == crate::db::Backend::Sqlite;
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                // The campaign id is ours (an integer from the database): written inline, saving a bind.
                if sqlite {
                    sql.push_str(&format!("({}, ?, ?, ?, ?, ?, ?)", campaign.id));
                } else {
                    let b = i * 6;
                    sql.push_str(&format!(
                        "({}, ${}, ${}, ${}, ${}, ${}, ${})",
                        campaign.id,
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6
                    ));
                }
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                let (state, code) =
                    if r.opted_out { ("skipped", Some("OPTED_OUT")) } else { ("pending", None) };
                query = query
                    .bind(i64::try_from(r.line).unwrap_or(i64::MAX))
                    .bind(r.phone)
                    .bind(r.vars)
                    .bind(r.rendered)
                    .bind(state)
                    .bind(code);
            }
            bounded(step, query.execute(&mut *tx)).await?;
        }
        bounded(step, tx.commit()).await.map_err(|e| match e {
            DbError::Query { source, .. } => get(source),
            other => other,
        })?;
        Ok(campaign)
    }

    pub async fn find_campaign(&self, id: i64) -> Result<Option<Campaign>, DbError> {
        let step = "read a campaign";
        let sql = sqlx::AssertSqlSafe(format!("select {COLUMNS} from campaign where campaign_id = $1"));
        let row = bounded(step, sqlx::query(sql).bind(id).fetch_optional(self.pool())).await?;
        row.map(|r| campaign_from_row(&r, step)).transpose()
    }

    /// Newest first; only `cliente_id`'s when given.
    pub async fn list_campaigns(&self, cliente_id: Option<i64>) -> Result<Vec<Campaign>, DbError> {
        let step = "list campaigns";
        let sql = sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from campaign where ($1 = 0 or cliente_id = $1) order by campaign_id desc limit 500"
        ));
        let rows =
            bounded(step, sqlx::query(sql).bind(cliente_id.unwrap_or(0)).fetch_all(self.pool())).await?;
        rows.iter().map(|r| campaign_from_row(r, step)).collect()
    }

    /// Recipients per state, for each campaign asked.
    pub async fn recipient_counts(
        &self,
        ids: &[i64],
    ) -> Result<BTreeMap<i64, BTreeMap<String, i64>>, DbError> {
        let step = "count a campaign's recipients";
        let mut out: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "select campaign_id, state, count(*) as n from campaign_recipient \
             where campaign_id in ({}) group by campaign_id, state",
            list.join(",")
        ));
        let rows = bounded(step, sqlx::query(sql).fetch_all(self.pool())).await?;
        for row in rows {
            let get = |source| DbError::Query { step, source };
            let id: i64 = row.try_get("campaign_id").map_err(get)?;
            let state: String = row.try_get("state").map_err(get)?;
            let n: i64 = row.try_get("n").map_err(get)?;
            out.entry(id).or_default().insert(state, n);
        }
        Ok(out)
    }

    /// Sends of the campaign after `since_ms` (its recent rate).
    pub async fn campaign_sent_since(&self, id: i64, since_ms: i64) -> Result<i64, DbError> {
        let step = "measure a campaign's rate";
        let row = bounded(
            step,
            sqlx::query(
                "select count(*) as n from campaign_recipient where campaign_id = $1 and sent_at_ms > $2",
            )
            .bind(id)
            .bind(since_ms)
            .fetch_one(self.pool()),
        )
        .await?;
        row.try_get("n").map_err(|source| DbError::Query { step, source })
    }

    /// Moves a campaign from one of `from` to `to` (a pause with its reason); `None` when it was
    /// in none of them. Leaving a pause clears the reason and the failure count.
    pub async fn transition_campaign(
        &self,
        id: i64,
        from: &[CampaignState],
        to: CampaignState,
        pause: Option<(PauseReason, Option<String>)>,
    ) -> Result<Option<Campaign>, DbError> {
        let step = "change a campaign's state";
        let states: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let (reason, detail) = match pause {
            Some((reason, detail)) => (Some(reason.as_str()), detail),
            None => (None, None),
        };
        let finished = matches!(to, CampaignState::Completed | CampaignState::Cancelled);
        let now = crate::clock::now_rfc3339();
        let sql = sqlx::AssertSqlSafe(format!(
            "update campaign set state = $1, pause_reason = $2, pause_detail = $3, updated_at = $4, \
             started_at = case when $1 = 'running' then coalesce(started_at, $4) else started_at end, \
             finished_at = case when $5 = 1 then $4 else finished_at end, \
             consecutive_failures = case when $1 = 'running' then 0 else consecutive_failures end \
             where campaign_id = $6 and state in ({}) returning {COLUMNS}",
            states.join(",")
        ));
        let row = bounded(
            step,
            sqlx::query(sql)
                .bind(to.as_str())
                .bind(reason)
                .bind(detail)
                .bind(now)
                .bind(i64::from(finished))
                .bind(id)
                .fetch_optional(self.pool()),
        )
        .await?;
        row.map(|r| campaign_from_row(&r, step)).transpose()
    }

    /// A cancelled campaign's recipients not yet handed to WhatsApp become `skipped` (CANCELLED).
    pub async fn skip_pending(&self, id: i64) -> Result<u64, DbError> {
        let step = "cancel a campaign's pending recipients";
        let done = bounded(
            step,
            sqlx::query(
                "update campaign_recipient set state = 'skipped', error_code = 'CANCELLED' \
                 where campaign_id = $1 and state = 'pending'",
            )
            .bind(id)
            .execute(self.pool()),
        )
        .await?;
        Ok(done.rows_affected())
    }
}
