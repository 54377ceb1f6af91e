//! `/api/webhooks`: list, create (the secret is in the 201 answer and nowhere else, ever),
//! delete, a webhook's recent deliveries, and replaying a delivery. An admin sees and manages
//! every webhook (its own receive every event); a `client` user only its own cliente_id's (another
//! one's is a 404, as if it did not exist). Creations, deletions and replays are audited.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use shared_contracts::{ErrorBody, ErrorCode, Role};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::sign::generate_secret;
use super::store::{NewWebhook, Webhook};
use super::target::{self, TargetError};
use crate::auth::AuthUser;
use crate::campaigns::now_ms;
use crate::campaigns::routes::audit;
use crate::db::HubEventKind;
use crate::error::{ApiError, AppJson, AppQuery};
use crate::state::AppState;

/// Deliveries listed per request, at most.
const MAX_LISTED: i64 = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
        .routes(routes!(deliveries))
        .routes(routes!(replay))
}

/// The cliente_id whose webhooks the caller manages: `None` for an admin (all).
fn scope(user: &AuthUser) -> Option<i64> {
    match user.0.role {
        Role::Admin => None,
        // A client account always has its id (the store refuses one without); 0 matches nothing.
        Role::Client => Some(user.0.cliente_id.and_then(|id| i64::try_from(id.get()).ok()).unwrap_or(0)),
    }
}

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::Coded {
        code: ErrorCode::NotFound,
        message: format!("there is no {what} {id}"),
        detail: json!({ "id": id }),
        hint: "GET /api/webhooks lists the webhooks you may see".to_owned(),
    }
}

fn field_error(field: &str, message: String) -> ApiError {
    ApiError::Validation { message, detail: json!({ "field": field }) }
}

/// The live webhook `raw`, if the caller may see it.
async fn load(state: &AppState, user: &AuthUser, raw: &str) -> Result<Webhook, ApiError> {
    let id: i64 = raw.parse().map_err(|_| not_found("webhook", raw))?;
    let webhook = state.store.find_webhook(id).await?.ok_or_else(|| not_found("webhook", raw))?;
    match scope(user) {
        Some(own) if webhook.cliente_id != Some(own) => Err(not_found("webhook", raw)),
        _ => Ok(webhook),
    }
}

#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, description = "`{\"webhooks\": [{id, url, events, cliente_id, created_by, created_at}]}` (never the secret)", body = Object)))]
async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    let webhooks = state.store.list_webhooks(scope(&user)).await?;
    Ok(Json(json!({ "webhooks": webhooks.iter().map(Webhook::view).collect::<Vec<_>>() })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"url": "https://crm.example.com/hooks/whatsapp", "events": ["message.received", "message.ack"]}))]
struct CreateBody {
    /// http(s) URL the events are POSTed to.
    url: String,
    /// message.received, message.ack, session.status, campaign.progress, campaign.completed
    events: Vec<String>,
}

#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = CreateBody,
    responses(
        (status = 201, description = "Created: the webhook with its `secret`, shown this once", body = Object),
        (status = 400, description = "VALIDATION_ERROR (`detail.field` url or events) or WEBHOOK_URL_NOT_ALLOWED (a client's private address)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<CreateBody>,
) -> Result<Response, ApiError> {
    let url = target::parse_url(&body.url).map_err(|e| field_error("url", e.to_string()))?;
    let mut events = Vec::new();
    for raw in &body.events {
        let kind = HubEventKind::parse(raw).ok_or_else(|| {
            let known: Vec<_> = HubEventKind::ALL.iter().map(|k| k.as_str()).collect();
            field_error("events", format!("unknown event {raw:?}: the events are {}", known.join(", ")))
        })?;
        if !events.contains(&kind) {
            events.push(kind);
        }
    }
    if events.is_empty() {
        return Err(field_error("events", "name at least one event".to_owned()));
    }
    let owner = scope(&user);
    if owner.is_some() && !state.webhooks.settings.allow_private {
        target::ensure_public(&url).await.map_err(|e| match e {
            TargetError::Private { .. } => ApiError::Coded {
                code: ErrorCode::WebhookUrlNotAllowed,
                message: e.to_string(),
                detail: json!({ "field": "url" }),
                hint: "Use your CRM's public URL".to_owned(),
            },
            other => field_error("url", other.to_string()),
        })?;
    }
    let secret = generate_secret();
    let webhook = state
        .store
        .create_webhook(NewWebhook {
            url: url.to_string(),
            events,
            secret: secret.clone(),
            cliente_id: owner,
            created_by: user.0.email.to_string(),
        })
        .await?;
    let kinds: Vec<_> = webhook.events.iter().map(|k| k.as_str()).collect();
    audit(
        &state,
        &user,
        "webhook.create",
        &format!("webhook:{}", webhook.id),
        Some(format!("{} {}", webhook.url, kinds.join(","))),
    )
    .await;
    let mut view = webhook.view();
    view["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 204, description = "Deleted: no more deliveries are queued for it"),
        (status = 404, description = "NOT_FOUND: no such webhook (or another client's)", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let webhook = load(&state, &user, &raw).await?;
    if !state.store.delete_webhook(webhook.id, now_ms()).await? {
        return Err(not_found("webhook", &raw));
    }
    audit(&state, &user, "webhook.delete", &format!("webhook:{}", webhook.id), Some(webhook.url)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
struct DeliveriesQuery {
    /// pending, delivered or dead; all when absent.
    state: Option<String>,
    /// 1..=200 (default 50; out of range is clamped).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "The webhook's id"), DeliveriesQuery),
    responses(
        (status = 200, description = "`{webhook_id, deliveries: [{id, event_id, event, state, attempts, last_status, last_error, ...}]}`, newest first", body = Object),
        (status = 400, description = "VALIDATION_ERROR: `state` or `limit` is not valid", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such webhook (or another client's)", body = ErrorBody),
    ))]
async fn deliveries(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
    AppQuery(query): AppQuery<DeliveriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let webhook = load(&state, &user, &raw).await?;
    let wanted = query.state.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = wanted
        && !matches!(s, "pending" | "delivered" | "dead")
    {
        return Err(field_error("state", format!("state {s:?} is not pending, delivered or dead")));
    }
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_LISTED);
    let list = state.store.list_deliveries(webhook.id, wanted, limit).await?;
    Ok(Json(json!({ "webhook_id": webhook.id, "deliveries": list })))
}

#[utoipa::path(post, path = "/api/webhooks/deliveries/{id}/replay", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "The delivery's id")),
    responses(
        (status = 200, description = "Queued again: the delivery, pending", body = Object),
        (status = 404, description = "NOT_FOUND: no such delivery (or another client's)", body = ErrorBody),
        (status = 409, description = "WEBHOOK_DELIVERY_PENDING: it is already being retried", body = ErrorBody),
    ))]
async fn replay(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = raw.parse().map_err(|_| not_found("delivery", &raw))?;
    let (webhook_id, _) = state.store.find_delivery(id).await?.ok_or_else(|| not_found("delivery", &raw))?;
    // The webhook must be live and the caller's: else the delivery does not exist for them.
    load(&state, &user, &webhook_id.to_string()).await.map_err(|_| not_found("delivery", &raw))?;
    if !state.store.replay_delivery(id, now_ms()).await? {
        return Err(ApiError::Coded {
            code: ErrorCode::WebhookDeliveryPending,
            message: format!("delivery {id} is already pending: it is being retried"),
            detail: json!({ "id": id, "state": "pending" }),
            hint: "Wait for it to be delivered or to die; only delivered and dead deliveries are replayed"
                .to_owned(),
        });
    }
    state.webhooks.deliveries_queued();
    audit(&state, &user, "webhook.replay", &format!("delivery:{id}"), Some(format!("webhook:{webhook_id}")))
        .await;
    let (_, view) = state.store.find_delivery(id).await?.ok_or_else(|| not_found("delivery", &raw))?;
    Ok(Json(view))
}
