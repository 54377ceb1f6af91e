//! Writing to the opt-out list inside a caller's transaction (the list's routes and reads are in
//! `optouts`): the inbound follower opts a number out in the same transaction that stores the
//! message asking for it.

use sqlx::AnyConnection;

use crate::db::{DbError, bounded};

/// A number to put on the list.
#[derive(Clone, Copy, Debug)]
pub struct NewOptOut<'a> {
    pub phone: &'a str,
    /// `None`: no campaign of any client reaches it.
    pub cliente_id: Option<i64>,
    pub reason: &'a str,
    pub evidence: Option<&'a str>,
    pub created_by: &'a str,
}

/// Adds a number on `conn` (a transaction's); `false` when it was already there. Pending
/// recipients with that number (of that client, or of all) become `skipped`, so a running
/// campaign skips it from then on.
pub async fn add_opt_out_on(conn: &mut AnyConnection, new: &NewOptOut<'_>) -> Result<bool, DbError> {
    let step = "add to the opt-out list";
    let done = bounded(
        step,
        sqlx::query(
            "insert into opt_out (phone, cliente_id, reason, evidence, created_by, created_at) \
             values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
        )
        .bind(new.phone.to_owned())
        .bind(new.cliente_id)
        .bind(new.reason.to_owned())
        .bind(new.evidence.map(str::to_owned))
        .bind(new.created_by.to_owned())
        .bind(crate::clock::now_rfc3339())
        .execute(&mut *conn),
    )
    .await?;
    bounded(
        step,
        sqlx::query(
            "update campaign_recipient set state = 'skipped', error_code = 'OPTED_OUT' \
             where phone = $1 and state = 'pending' \
             and ($2 = 0 or campaign_id in (select campaign_id from campaign where cliente_id = $2))",
        )
        .bind(new.phone.to_owned())
        .bind(new.cliente_id.unwrap_or(0))
        .execute(&mut *conn),
    )
    .await?;
    Ok(done.rows_affected() > 0)
}
