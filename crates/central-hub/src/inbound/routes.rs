//! `GET /api/messages?direction=in|out&phone=&since=<RFC3339>&limit=&before=<id>&cliente_id=`:
//! the stored messages, newest first, paged by id (`next` is the `before` of the next page, null
//! on the last). Admins see every message (or one `cliente_id`'s); a `client` user only its own
//! `cliente_id`'s (unattributed messages are for admins only).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use shared_contracts::{ErrorBody, PhoneNumber, Role};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::campaigns::routes::client_scope;
use crate::db::{DbError, Store, bounded};
use crate::error::{ApiError, AppQuery};
use crate::state::AppState;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// What a listing asks for, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageFilter {
    pub direction: Option<&'static str>,
    pub phone: Option<String>,
    /// Stored at or after (Unix milliseconds).
    pub since_ms: Option<i64>,
    pub cliente_id: Option<i64>,
    /// Only ids below this one.
    pub before: Option<i64>,
    pub limit: i64,
}

/// The query as sent: every field text, so a bad one is a 400 naming it.
#[derive(Debug, Default, Deserialize)]
pub struct RawQuery {
    direction: Option<String>,
    phone: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    before: Option<String>,
    cliente_id: Option<String>,
}

fn bad(field: &str, message: String) -> ApiError {
    ApiError::Validation { message, detail: json!({ "field": field }) }
}

fn positive(field: &str, raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| bad(field, format!("{field} {raw:?} is not a positive integer")))
}

impl RawQuery {
    pub fn validate(&self) -> Result<MessageFilter, ApiError> {
        let present =
            |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let direction = match present(&self.direction).as_deref() {
            None => None,
            Some("in") => Some("in"),
            Some("out") => Some("out"),
            Some(other) => return Err(bad("direction", format!("direction {other:?} is not `in` or `out`"))),
        };
        let phone = present(&self.phone)
            .map(|raw| PhoneNumber::parse(&raw).map(|p| p.as_str().to_owned()).map_err(|m| bad("phone", m)))
            .transpose()?;
        let since_ms = present(&self.since)
            .map(|raw| {
                raw.parse::<jiff::Timestamp>().map(|t| t.as_millisecond()).map_err(|e| {
                    bad(
                        "since",
                        format!("since {raw:?} is not an RFC 3339 time like 2026-01-31T12:00:00Z: {e}"),
                    )
                })
            })
            .transpose()?;
        let limit = match present(&self.limit) {
            None => DEFAULT_LIMIT,
            Some(raw) => {
                let n = positive("limit", &raw)?;
                if n > MAX_LIMIT {
                    return Err(bad("limit", format!("limit {n} is above the maximum of {MAX_LIMIT}")));
                }
                n
            }
        };
        let before = present(&self.before).map(|raw| positive("before", &raw)).transpose()?;
        let cliente_id = present(&self.cliente_id).map(|raw| positive("cliente_id", &raw)).transpose()?;
        Ok(MessageFilter { direction, phone, since_ms, cliente_id, before, limit })
    }
}

fn message_json(row: &AnyRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "id": row.try_get::<i64, _>("id")?,
        "direction": row.try_get::<String, _>("direction")?,
        "instance": row.try_get::<String, _>("instance")?,
        "message_id": row.try_get::<String, _>("whatsapp_id")?,
        "phone": row.try_get::<Option<String>, _>("peer_phone")?,
        "cliente_id": row.try_get::<Option<i64>, _>("cliente_id")?,
        "campaign_id": row.try_get::<Option<i64>, _>("campaign_id")?,
        "type": row.try_get::<String, _>("message_type")?,
        "text": row.try_get::<Option<String>, _>("body")?,
        "timestamp": row.try_get::<Option<i64>, _>("wa_timestamp_ms")?,
        "stored_at": row.try_get::<String, _>("stored_at")?,
        "ack": row.try_get::<Option<String>, _>("ack")?,
        "ack_at": row.try_get::<Option<String>, _>("ack_at")?,
    }))
}

impl Store {
    /// One page of messages, newest first (placeholders of acks whose send is not stored are left out).
    pub async fn list_messages(&self, f: &MessageFilter) -> Result<Vec<Value>, DbError> {
        let step = "list messages";
        let rows = bounded(
            step,
            sqlx::query(
                "select id, direction, instance, whatsapp_id, peer_phone, cliente_id, campaign_id, message_type, \
                 body, wa_timestamp_ms, stored_at, ack, ack_at from message where placeholder = 0 \
                 and ($1 = '' or direction = $1) and ($2 = '' or peer_phone = $2) and stored_at_ms >= $3 \
                 and ($4 = 0 or cliente_id = $4) and ($5 = 0 or id < $5) order by id desc limit $6",
            )
            .bind(f.direction.unwrap_or(""))
            .bind(f.phone.clone().unwrap_or_default())
            .bind(f.since_ms.unwrap_or(i64::MIN))
            .bind(f.cliente_id.unwrap_or(0))
            .bind(f.before.unwrap_or(0))
            .bind(f.limit)
            .fetch_all(self.pool()),
        )
        .await?;
        rows.iter().map(|row| message_json(row).map_err(|source| DbError::Query { step, source })).collect()
    }
}

#[utoipa::path(get, path = "/api/messages", tag = "messages", security(("bearer" = [])),
    params(
        ("direction" = Option<String>, Query, description = "`in` or `out`"),
        ("phone" = Option<String>, Query, description = "The peer's number"),
        ("since" = Option<String>, Query, description = "Stored at or after this RFC 3339 time"),
        ("limit" = Option<i64>, Query, description = "1..=200, default 50"),
        ("before" = Option<i64>, Query, description = "Only ids below this one: the `next` of the previous page"),
        ("cliente_id" = Option<i64>, Query, description = "Admins: one client's messages; a client user: its own id only"),
    ),
    responses(
        (status = 200, description = "`{\"messages\": [{id, direction, instance, message_id, phone, cliente_id, campaign_id, type, text, timestamp, stored_at, ack, ack_at}], \"next\": id|null}`, newest first", body = Object),
        (status = 400, description = "VALIDATION_ERROR: a query parameter is not valid (`detail.field` names it)", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: a client user asked for another client's messages", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    AppQuery(raw): AppQuery<RawQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut filter = raw.validate()?;
    if user.0.role == Role::Client {
        filter.cliente_id = Some(client_scope(&user, filter.cliente_id)?);
    }
    let messages = state.store.list_messages(&filter).await?;
    let full = i64::try_from(messages.len()).unwrap_or(i64::MAX) == filter.limit;
    let next = if full { messages.last().and_then(|m| m["id"].as_i64()) } else { None };
    Ok(Json(json!({ "messages": messages, "next": next })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> RawQuery {
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        serde_urlencoded_like(&text.join("&"))
    }

    fn serde_urlencoded_like(text: &str) -> RawQuery {
        let uri: axum::http::Uri = format!("/api/messages?{text}").parse().unwrap();
        axum::extract::Query::<RawQuery>::try_from_uri(&uri).unwrap().0
    }

    fn field(err: ApiError) -> String {
        match err {
            ApiError::Validation { detail, .. } => detail["field"].as_str().unwrap().to_owned(),
            other => panic!("a validation error expected, got {other:?}"),
        }
    }

    #[test]
    fn a_good_query_is_read_and_a_bad_field_is_named() {
        let f = query(&[("direction", "in"), ("phone", "%2B54%20911"), ("limit", "5")]).validate();
        assert_eq!(field(f.unwrap_err()), "phone", "too few digits");
        let f = query(&[
            ("direction", "in"),
            ("phone", "5491100000001"),
            ("since", "2026-01-01T00:00:00Z"),
            ("limit", "5"),
            ("before", "9"),
        ])
        .validate()
        .unwrap();
        assert_eq!(f.direction, Some("in"));
        assert_eq!(f.phone.as_deref(), Some("5491100000001"));
        assert_eq!(f.since_ms, Some(1_767_225_600_000));
        assert_eq!((f.limit, f.before), (5, Some(9)));
        for (name, value) in [
            ("direction", "sideways"),
            ("since", "yesterday"),
            ("limit", "0"),
            ("limit", "201"),
            ("before", "x"),
            ("cliente_id", "-1"),
        ] {
            assert_eq!(field(query(&[(name, value)]).validate().unwrap_err()), name, "{name}={value}");
        }
        assert_eq!(query(&[]).validate().unwrap().limit, DEFAULT_LIMIT);
    }
}
