//! Queries on `app_user`.

use shared_contracts::{ClienteId, Email, Role, UserInfo};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{DbError, Store, bounded};

/// A user as stored (the hash never leaves the hub).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: Email,
    pub password_hash: String,
    pub role: Role,
    pub cliente_id: Option<ClienteId>,
    /// Bumped by every password change and disable/enable; tokens carry it (`cv`).
    pub credential_version: i64,
    /// RFC 3339, set while the account is disabled.
    pub disabled_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl User {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }

    pub fn info(&self) -> UserInfo {
        UserInfo { id: self.id, email: self.email.clone(), role: self.role, cliente_id: self.cliente_id }
    }
}

/// What it takes to create a user (the `Email` is already normalized: trimmed, lower case).
#[derive(Clone, Debug)]
pub struct NewUser {
    pub email: Email,
    pub password_hash: String,
    pub role: Role,
    pub cliente_id: Option<ClienteId>,
}

const COLUMNS: &str = "app_user_id, email, password_hash, role, cliente_id, credential_version, disabled_at, created_at, updated_at";

fn user_from_row(row: &AnyRow, step: &'static str) -> Result<User, DbError> {
    let get = |e: sqlx::Error| DbError::Query { step, source: e };
    let role: String = row.try_get("role").map_err(get)?;
    let role = match role.as_str() {
        "admin" => Role::Admin,
        "client" => Role::Client,
        other => return Err(DbError::Corrupt { step, reason: format!("unknown role {other:?}") }),
    };
    let cliente_id: Option<i64> = row.try_get("cliente_id").map_err(get)?;
    let cliente_id = cliente_id
        .map(ClienteId::try_from)
        .transpose()
        .map_err(|reason| DbError::Corrupt { step, reason })?;
    let email: String = row.try_get("email").map_err(get)?;
    let email = Email::parse(&email).map_err(|reason| DbError::Corrupt { step, reason })?;
    Ok(User {
        id: row.try_get("app_user_id").map_err(get)?,
        email,
        password_hash: row.try_get("password_hash").map_err(get)?,
        role,
        cliente_id,
        credential_version: row.try_get("credential_version").map_err(get)?,
        disabled_at: row.try_get("disabled_at").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
        updated_at: row.try_get("updated_at").map_err(get)?,
    })
}

fn to_i64(cliente_id: Option<ClienteId>) -> Option<i64> {
    // ClienteId values come from URLs and the CLI; anything above i64::MAX cannot be stored.
    cliente_id.map(|id| i64::try_from(id.get()).unwrap_or(i64::MAX))
}

impl Store {
    pub async fn count_users(&self) -> Result<i64, DbError> {
        let step = "count users";
        let row =
            bounded(step, sqlx::query("select count(*) as n from app_user").fetch_one(&self.pool)).await?;
        row.try_get::<i64, _>("n").map_err(|source| DbError::Query { step, source })
    }

    pub async fn create_user(&self, new: NewUser) -> Result<User, DbError> {
        let step = "create a user";
        let email = new.email;
        let now = crate::clock::now_rfc3339();
        let sql = sqlx::AssertSqlSafe(format!(
            "insert into app_user (email, password_hash, role, cliente_id, disabled_at, created_at, updated_at) \
             values ($1, $2, $3, $4, null, $5, $5) returning {COLUMNS}"
        ));
        let result = bounded(
            step,
            sqlx::query(sql)
                .bind(email.as_str().to_owned())
                .bind(new.password_hash)
                .bind(new.role.as_str())
                .bind(to_i64(new.cliente_id))
                .bind(now)
                .fetch_one(&self.pool),
        )
        .await;
        match result {
            Ok(row) => user_from_row(&row, step),
            Err(DbError::Query { source: sqlx::Error::Database(db), .. }) if db.is_unique_violation() => {
                Err(DbError::DuplicateEmail(email.into()))
            }
            Err(other) => Err(other),
        }
    }

    pub async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, DbError> {
        let step = "look up a user by email";
        let sql = sqlx::AssertSqlSafe(format!("select {COLUMNS} from app_user where email = $1"));
        let row = bounded(step, sqlx::query(sql).bind(email.as_str().to_owned()).fetch_optional(&self.pool))
            .await?;
        row.map(|r| user_from_row(&r, step)).transpose()
    }

    pub async fn find_user(&self, id: i64) -> Result<Option<User>, DbError> {
        let step = "look up a user by id";
        let sql = sqlx::AssertSqlSafe(format!("select {COLUMNS} from app_user where app_user_id = $1"));
        let row = bounded(step, sqlx::query(sql).bind(id).fetch_optional(&self.pool)).await?;
        row.map(|r| user_from_row(&r, step)).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>, DbError> {
        let step = "list users";
        let sql = sqlx::AssertSqlSafe(format!("select {COLUMNS} from app_user order by app_user_id"));
        let rows = bounded(step, sqlx::query(sql).fetch_all(&self.pool)).await?;
        rows.iter().map(|r| user_from_row(r, step)).collect()
    }

    /// Replaces a user's password hash; `false` when no such user exists.
    pub async fn set_password_hash(&self, email: &Email, hash: &str) -> Result<bool, DbError> {
        let step = "change a password";
        let done = bounded(
            step,
            sqlx::query(
                "update app_user set password_hash = $1, updated_at = $2, \
                 credential_version = credential_version + 1 where email = $3",
            )
            .bind(hash.to_owned())
            .bind(crate::clock::now_rfc3339())
            .bind(email.as_str().to_owned())
            .execute(&self.pool),
        )
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Disables (or re-enables) an account; `false` when no such user exists.
    pub async fn set_disabled(&self, email: &Email, disabled: bool) -> Result<bool, DbError> {
        let step = "disable a user";
        let now = crate::clock::now_rfc3339();
        let disabled_at = disabled.then(|| now.clone());
        let done = bounded(
            step,
            sqlx::query(
                "update app_user set disabled_at = $1, updated_at = $2, \
                 credential_version = credential_version + 1 where email = $3",
            )
            .bind(disabled_at)
            .bind(now)
            .bind(email.as_str().to_owned())
            .execute(&self.pool),
        )
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
