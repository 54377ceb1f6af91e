//! Client routes: `/api/whatsapp/:clienteId/{status,qr-code,send}`. A client user may use only its
//! own id; admins any. The QR links the company's one WhatsApp account (whoever scans it first owns
//! it), so it is served to admins only: a client's status carries no `qr` and its `qr-code` is a 403.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use shared_contracts::{
    ClienteId, IDEMPOTENCY_KEY_HEADER, MessageText, PhoneNumber, QrInfo, Role, SendRequest,
};

use crate::auth::AuthUser;
use crate::client::IDEMPOTENT_REPLAYED_HEADER;
use crate::error::{ApiError, AppJson};
use crate::feed::{with_cliente_id, without_qr};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/whatsapp/{cliente_id}/status", get(status))
        .route("/api/whatsapp/{cliente_id}/qr-code", get(qr_code))
        .route("/api/whatsapp/{cliente_id}/send", post(send))
}

/// Parses the id, then checks the caller may act for it (400 before 403: a bad id is nobody's).
fn authorize(user: &AuthUser, raw: &str) -> Result<ClienteId, ApiError> {
    let id = ClienteId::parse(raw).map_err(|message| ApiError::Validation {
        message,
        detail: json!({ "field": "clienteId", "value": raw }),
    })?;
    user.ensure_may_act_for(id)?;
    Ok(id)
}

/// The session's status with `cliente_id` (the id asked for); without `qr` unless the caller is an admin.
async fn status(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = authorize(&user, &raw)?;
    let admin = user.0.role == Role::Admin;
    if let Some(status) = state.feed.live_status() {
        state.metrics.status_from_cache();
        return Ok(super::json_response(status.for_cliente(admin, id.get())));
    }
    let body = state.manager.status().await?;
    let body = if admin { body } else { without_qr(&body) };
    let json = serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(super::json_response(with_cliente_id(&json, id.get())))
}

async fn qr_code(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<Json<QrInfo>, ApiError> {
    let id = authorize(&user, &raw)?;
    if user.0.role != Role::Admin {
        return Err(ApiError::Forbidden {
            message: format!(
                "the QR links the company's WhatsApp account and is shown to administrators only ({} is a client)",
                user.0.email
            ),
            hint: "An administrator links the WhatsApp session from the admin page; \
                   GET /api/whatsapp/{clienteId}/status tells you when it is ready to send",
        });
    }
    Ok(Json(state.manager.qr_code(Some(id.get())).await?))
}

/// The send body as callers write it; validated into `PhoneNumber` and `MessageText`.
#[derive(Debug, Deserialize)]
struct SendBody {
    to: String,
    message: String,
}

async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
    headers: HeaderMap,
    AppJson(body): AppJson<SendBody>,
) -> Result<Response, ApiError> {
    let id = authorize(&user, &raw)?;
    let to = PhoneNumber::parse(&body.to)
        .map_err(|message| ApiError::Validation { message, detail: json!({ "field": "to" }) })?;
    let message = MessageText::parse(body.message)
        .map_err(|message| ApiError::Validation { message, detail: json!({ "field": "message" }) })?;
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(value) => {
            Some(value.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 200).ok_or_else(|| {
                ApiError::validation("Idempotency-Key must be 1 to 200 printable characters")
            })?)
        }
    };
    // One tenant cannot use up the session's send budget: each caller has its own.
    let caller = match user.0.role {
        Role::Client => format!("cliente:{}", id.get()),
        Role::Admin => format!("admin:{}", user.0.id),
    };
    if let Err(retry_after_secs) = state.send_budget.try_take(&caller) {
        return Err(ApiError::RateLimited {
            message: format!(
                "{caller} used its {} sends per minute (HUB_SEND_RATE_PER_MINUTE)",
                state.send_budget.per_minute()
            ),
            scope: "caller",
            retry_after_secs,
        });
    }
    let request = SendRequest {
        cliente_id: Some(id.get()),
        to: to.as_str().to_owned(),
        message: message.as_str().to_owned(),
    };
    let (answer, replayed) = state.manager.send_message(&request, idempotency_key).await?;
    let mut response = Json(answer).into_response();
    if let Some(value) = replayed {
        // The manager answered from its idempotency journal: say so, as it did.
        response.headers_mut().insert(IDEMPOTENT_REPLAYED_HEADER, value);
    }
    Ok(response)
}
