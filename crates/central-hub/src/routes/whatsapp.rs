//! Client routes: `/api/whatsapp/:clienteId/{status,qr-code,send}`. A client user may use only its
//! own id; admins any. The QR is a credential and is never served without that check.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use shared_contracts::{
    ClienteId, IDEMPOTENCY_KEY_HEADER, MessageText, PhoneNumber, QrInfo, SendRequest, SendResponse,
};

use crate::auth::AuthUser;
use crate::error::{ApiError, AppJson};
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

async fn status(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&user, &raw)?;
    if let Some(status) = state.feed.live_status() {
        state.metrics.status_from_cache();
        return Ok(super::cached_status_response(&status));
    }
    Ok(Json(state.manager.status().await?).into_response())
}

async fn qr_code(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<Json<QrInfo>, ApiError> {
    let id = authorize(&user, &raw)?;
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
) -> Result<Json<SendResponse>, ApiError> {
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
    let request = SendRequest {
        cliente_id: Some(id.get()),
        to: to.as_str().to_owned(),
        message: message.as_str().to_owned(),
    };
    Ok(Json(state.manager.send_message(&request, idempotency_key).await?))
}
