//! The opt-out list: numbers that never receive a campaign, for one client (`cliente_id`) or for
//! all (`null`, admins only). Adding a number also skips it in campaigns not yet sent to it.
//! Routes: `GET/POST /api/opt-outs`, `DELETE /api/opt-outs/{phone}`.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use shared_contracts::{ErrorBody, PhoneNumber, Role};
use sqlx::Row;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::optout_list::{NewOptOut, add_opt_out_on};
use super::routes::{audit, client_scope};
use crate::auth::AuthUser;
use crate::db::{DbError, Store, bounded};
use crate::error::{ApiError, AppJson, AppQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, add)).routes(routes!(remove))
}

impl Store {
    /// The numbers `cliente_id`'s campaigns must skip (its own and the global ones).
    pub async fn opted_out_numbers(&self, cliente_id: i64) -> Result<HashSet<String>, DbError> {
        let step = "read the opt-out list";
        let rows = bounded(
            step,
            sqlx::query("select phone from opt_out where cliente_id is null or cliente_id = $1")
                .bind(cliente_id)
                .fetch_all(self.pool()),
        )
        .await?;
        rows.iter().map(|r| r.try_get("phone").map_err(|source| DbError::Query { step, source })).collect()
    }

    /// Adds a number; `false` when it was already there. Pending recipients with that number
    /// (of that client, or of all) become `skipped`.
    pub async fn add_opt_out(
        &self,
        phone: &str,
        cliente_id: Option<i64>,
        reason: &str,
        evidence: Option<&str>,
        created_by: &str,
    ) -> Result<bool, DbError> {
        let step = "add to the opt-out list";
        let mut tx = bounded(step, self.pool().begin()).await?;
        let added =
            add_opt_out_on(&mut tx, &NewOptOut { phone, cliente_id, reason, evidence, created_by }).await?;
        bounded(step, tx.commit()).await?;
        Ok(added)
    }

    pub async fn remove_opt_out(&self, phone: &str, cliente_id: Option<i64>) -> Result<bool, DbError> {
        let step = "remove from the opt-out list";
        let done = bounded(
            step,
            sqlx::query("delete from opt_out where phone = $1 and coalesce(cliente_id, 0) = $2")
                .bind(phone.to_owned())
                .bind(cliente_id.unwrap_or(0))
                .execute(self.pool()),
        )
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The list, newest first: everything, or what concerns `cliente_id` (its own and the global).
    pub async fn list_opt_outs(&self, cliente_id: Option<i64>) -> Result<Vec<Value>, DbError> {
        let step = "list the opt-out list";
        let rows = bounded(
            step,
            sqlx::query(
                "select phone, cliente_id, reason, evidence, created_by, created_at from opt_out \
                 where $1 = 0 or cliente_id is null or cliente_id = $1 order by opt_out_id desc limit 10000",
            )
            .bind(cliente_id.unwrap_or(0))
            .fetch_all(self.pool()),
        )
        .await?;
        rows.iter()
            .map(|r| {
                let get = |source| DbError::Query { step, source };
                Ok(json!({
                    "phone": r.try_get::<String, _>("phone").map_err(get)?,
                    "cliente_id": r.try_get::<Option<i64>, _>("cliente_id").map_err(get)?,
                    "reason": r.try_get::<String, _>("reason").map_err(get)?,
                    "evidence": r.try_get::<Option<String>, _>("evidence").map_err(get)?,
                    "created_by": r.try_get::<String, _>("created_by").map_err(get)?,
                    "created_at": r.try_get::<String, _>("created_at").map_err(get)?,
                }))
            })
            .collect()
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ScopeQuery {
    /// Only this client's list (admins; a client always sees its own).
    cliente_id: Option<i64>,
}

/// The opt-out list (a client: its own and the global entries).
#[utoipa::path(get, path = "/api/opt-outs", tag = "opt-outs", security(("bearer" = [])),
    params(ScopeQuery),
    responses(
        (status = 200, description = "`{\"opt_outs\": [...]}`", body = Object),
        (status = 400, description = "VALIDATION_ERROR: a query parameter is not valid", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    AppQuery(q): AppQuery<ScopeQuery>,
) -> Result<Json<Value>, ApiError> {
    let scope = match user.0.role {
        Role::Admin => q.cliente_id,
        Role::Client => Some(client_scope(&user, q.cliente_id)?),
    };
    Ok(Json(json!({ "opt_outs": state.store.list_opt_outs(scope).await? })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"phone": "5491123456789", "cliente_id": 51, "reason": "asked by phone"}))]
struct AddBody {
    phone: String,
    #[serde(default)]
    cliente_id: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    evidence: Option<String>,
}

fn parse_phone(raw: &str) -> Result<String, ApiError> {
    PhoneNumber::parse(raw)
        .map(|p| p.as_str().to_owned())
        .map_err(|message| ApiError::Validation { message, detail: json!({ "field": "phone" }) })
}

/// Admins may add for everyone (`cliente_id` null); a client only for its own id.
fn scope_for_write(user: &AuthUser, asked: Option<i64>) -> Result<Option<i64>, ApiError> {
    match user.0.role {
        Role::Admin => Ok(asked),
        Role::Client => client_scope(user, asked).map(Some),
    }
}

/// Adds a number to the opt-out list (`cliente_id` null: for every client, admins only).
#[utoipa::path(post, path = "/api/opt-outs", tag = "opt-outs", security(("bearer" = [])),
    request_body = AddBody,
    responses(
        (status = 201, description = "Added: `{phone, cliente_id, added: true}`", body = Object),
        (status = 200, description = "Already listed: `{phone, cliente_id, added: false}`", body = Object),
        (status = 400, description = "VALIDATION_ERROR: bad phone or body", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
    ))]
async fn add(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<AddBody>,
) -> Result<Response, ApiError> {
    let phone = parse_phone(&body.phone)?;
    let scope = scope_for_write(&user, body.cliente_id)?;
    let reason = body.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).unwrap_or("manual");
    let added = state
        .store
        .add_opt_out(&phone, scope, reason, body.evidence.as_deref(), user.0.email.as_str())
        .await?;
    let target = format!("opt-out:{phone}");
    audit(&state, &user, "opt-out.add", &target, Some(format!("cliente_id {scope:?}: {reason}"))).await;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "phone": phone, "cliente_id": scope, "added": added }))).into_response())
}

/// Removes a number from the opt-out list.
#[utoipa::path(delete, path = "/api/opt-outs/{phone}", tag = "opt-outs", security(("bearer" = [])),
    params(("phone" = String, Path, description = "The number, as digits"), ScopeQuery),
    responses(
        (status = 200, description = "`{phone, cliente_id, removed: true}`", body = Object),
        (status = 400, description = "VALIDATION_ERROR: not a phone number", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: the number is not listed", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
    AppQuery(q): AppQuery<ScopeQuery>,
) -> Result<Json<Value>, ApiError> {
    let phone = parse_phone(&raw)?;
    let scope = scope_for_write(&user, q.cliente_id)?;
    if !state.store.remove_opt_out(&phone, scope).await? {
        return Err(ApiError::Coded {
            code: shared_contracts::ErrorCode::NotFound,
            message: format!("{phone} is not on the opt-out list (cliente_id {scope:?})"),
            detail: json!({ "phone": phone, "cliente_id": scope }),
            hint: "GET /api/opt-outs lists the numbers and their cliente_id".to_owned(),
        });
    }
    audit(&state, &user, "opt-out.remove", &format!("opt-out:{phone}"), None).await;
    Ok(Json(json!({ "phone": phone, "cliente_id": scope, "removed": true })))
}
