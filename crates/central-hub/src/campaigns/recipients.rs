//! `GET /api/campaigns/{id}/recipients?state=&page=&per_page=&format=csv`: a campaign's
//! recipients, paged as JSON, or every matching one as a CSV download (the failed ones, to fix
//! and send again).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::RECIPIENT_STATES;
use crate::auth::AuthUser;
use crate::db::{DbError, Store, bounded};
use crate::error::{ApiError, AppQuery};
use crate::state::AppState;

const MAX_PER_PAGE: i64 = 1_000;

const FIELDS: [&str; 14] = [
    "recipient_id",
    "line",
    "phone",
    "state",
    "attempts",
    "error_code",
    "error_detail",
    "whatsapp_message_id",
    "sent_at",
    "delivered_at",
    "read_at",
    "replied_at",
    "rendered",
    "lease_owner",
];

impl Store {
    /// One page of a campaign's recipients (all when `limit` is `None`), in line order.
    pub async fn campaign_recipients(
        &self,
        campaign_id: i64,
        state: Option<&str>,
        offset: i64,
        limit: Option<i64>,
    ) -> Result<(i64, Vec<Value>), DbError> {
        let step = "list a campaign's recipients";
        let total = bounded(
            step,
            sqlx::query(
                "select count(*) as n from campaign_recipient where campaign_id = $1 and ($2 = '' or state = $2)",
            )
            .bind(campaign_id)
            .bind(state.unwrap_or("").to_owned())
            .fetch_one(self.pool()),
        )
        .await?
        .try_get::<i64, _>("n")
        .map_err(|source| DbError::Query { step, source })?;
        let sql = sqlx::AssertSqlSafe(format!(
            "select {} from campaign_recipient where campaign_id = $1 and ($2 = '' or state = $2) \
             order by recipient_id limit $3 offset $4",
            FIELDS.join(", ")
        ));
        let rows = bounded(
            step,
            sqlx::query(sql)
                .bind(campaign_id)
                .bind(state.unwrap_or("").to_owned())
                .bind(limit.unwrap_or(i64::MAX))
                .bind(offset)
                .fetch_all(self.pool()),
        )
        .await?;
        let items = rows
            .iter()
            .map(|r| {
                let get = |source| DbError::Query { step, source };
                let mut item = serde_json::Map::new();
                for field in FIELDS {
                    let value = match field {
                        "recipient_id" | "line" | "attempts" => {
                            json!(r.try_get::<i64, _>(field).map_err(get)?)
                        }
                        _ => json!(r.try_get::<Option<String>, _>(field).map_err(get)?),
                    };
                    item.insert(field.to_owned(), value);
                }
                Ok(Value::Object(item))
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok((total, items))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecipientsQuery {
    /// Only the recipients in this state.
    state: Option<String>,
    /// 1-based page (JSON only).
    page: Option<i64>,
    /// 1 to 1000, default 100 (JSON only).
    per_page: Option<i64>,
    /// `json` (default) or `csv` (every matching recipient).
    format: Option<String>,
}

/// One CSV field, quoted when it needs to be (RFC 4180).
fn csv_field(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// A campaign's recipients, paged as JSON or every matching one as CSV.
#[utoipa::path(get, path = "/api/campaigns/{id}/recipients", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, description = "The campaign's id"), RecipientsQuery),
    responses(
        (status = 200, description = "A page of recipients (JSON) or a CSV download", content(
            (Object = "application/json"),
            (String = "text/csv; charset=utf-8"),
        )),
        (status = 400, description = "VALIDATION_ERROR: unknown state or format, or a parameter that is not valid", body = shared_contracts::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such campaign", body = shared_contracts::ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
    AppQuery(q): AppQuery<RecipientsQuery>,
) -> Result<Response, ApiError> {
    let campaign = super::routes::load(&state, &user, &raw).await?;
    let wanted = q.state.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = wanted
        && !RECIPIENT_STATES.contains(&s)
    {
        return Err(ApiError::Validation {
            message: format!("state {s:?} is not one of {}", RECIPIENT_STATES.join(", ")),
            detail: json!({ "field": "state" }),
        });
    }
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(ApiError::validation(format!("format {other:?} is not json or csv"))),
    };
    if csv {
        let (_, items) = state.store.campaign_recipients(campaign.id, wanted, 0, None).await?;
        let mut out = FIELDS.join(",");
        out.push('\n');
        for item in &items {
            let row: Vec<String> = FIELDS.iter().map(|f| csv_field(&item[*f])).collect();
            out.push_str(&row.join(","));
            out.push('\n');
        }
        let name =
            format!("attachment; filename=\"campaign-{}-{}.csv\"", campaign.id, wanted.unwrap_or("all"));
        let disposition = HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("attachment"));
        return Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            out,
        )
            .into_response());
    }
    let per_page = q.per_page.unwrap_or(100).clamp(1, MAX_PER_PAGE);
    let page = q.page.unwrap_or(1).max(1);
    let (total, items) =
        state.store.campaign_recipients(campaign.id, wanted, (page - 1) * per_page, Some(per_page)).await?;
    Ok(axum::Json(json!({
        "campaign_id": campaign.id,
        "state": wanted,
        "page": page,
        "per_page": per_page,
        "total": total,
        "recipients": items,
    }))
    .into_response())
}
