//! Client routes: `/api/whatsapp/:clienteId/{status,qr-code,send}`. A client user may use only its
//! own id; admins any. The QR links the company's one WhatsApp account (whoever scans it first owns
//! it), so it is served to admins only: a client's status carries no `qr` and its `qr-code` is a 403.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use shared_contracts::{
    ADMIN_SESSION, ClienteId, ErrorBody, IDEMPOTENCY_KEY_HEADER, IdempotencyKey, MessageText, PhoneNumber,
    QrInfo, Role, SendRequest, SendResponse, StatusBody,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::client::IDEMPOTENT_REPLAYED_HEADER;
use crate::error::{ApiError, AppJson};
use crate::inbound::OutgoingMessage;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status)).routes(routes!(qr_code)).routes(routes!(send))
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
#[utoipa::path(get, path = "/api/whatsapp/{cliente_id}/status", tag = "whatsapp", security(("bearer" = [])),
    params(("cliente_id" = String, Path, description = "The CRM client's id (a positive integer); a client user may use only its own", example = "51")),
    responses(
        (status = 200, description = "The session's status, with `cliente_id`", body = StatusBody),
        (status = 400, description = "VALIDATION_ERROR: the id is not a positive integer", body = ErrorBody),
        (status = 502, description = "SESSION_MANAGER_UNREACHABLE or SESSION_MANAGER_ERROR", body = ErrorBody),
        (status = 504, description = "SESSION_MANAGER_TIMEOUT", body = ErrorBody),
    ))]
async fn status(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = authorize(&user, &raw)?;
    let json = super::current_status_json(&state, user.0.role == Role::Admin, Some(id.get())).await?;
    Ok(super::json_response(json))
}

/// The login QR (administrators only).
#[utoipa::path(get, path = "/api/whatsapp/{cliente_id}/qr-code", tag = "whatsapp", security(("bearer" = [])),
    params(("cliente_id" = String, Path, description = "The CRM client's id (a positive integer); a client user may use only its own", example = "51")),
    responses(
        (status = 200, description = "The QR to scan", body = QrInfo),
        (status = 404, description = "NO_QR: no QR in the current state", body = ErrorBody),
        (status = 400, description = "VALIDATION_ERROR: the id is not a positive integer", body = ErrorBody),
        (status = 502, description = "SESSION_MANAGER_UNREACHABLE or SESSION_MANAGER_ERROR", body = ErrorBody),
        (status = 504, description = "SESSION_MANAGER_TIMEOUT", body = ErrorBody),
    ))]
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
    Ok(Json(state.manager.qr_code(Some(id)).await?))
}

/// The send body as callers write it, validated as it is deserialized (a bad `to` or `message`
/// is a 400 naming the field, from the extractor).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"to": "5491123456789", "message": "text"}))]
struct SendBody {
    to: PhoneNumber,
    message: MessageText,
}

/// Sends a text message through the session.
#[utoipa::path(post, path = "/api/whatsapp/{cliente_id}/send", tag = "whatsapp", security(("bearer" = [])),
    params(("cliente_id" = String, Path, description = "The CRM client's id (a positive integer); a client user may use only its own", example = "51"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retried send with the same key is delivered once")),
    request_body = SendBody,
    responses(
        (status = 200, description = "Sent", body = SendResponse),
        (status = 409, description = "SESSION_NOT_READY", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
        (status = 422, description = "NUMBER_NOT_ON_WHATSAPP or IDEMPOTENCY_KEY_REUSED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED (see Retry-After)", body = ErrorBody),
        (status = 503, description = "SEND_FAILED (from the session-manager)", body = ErrorBody),
        (status = 400, description = "VALIDATION_ERROR: the id is not a positive integer", body = ErrorBody),
        (status = 502, description = "SESSION_MANAGER_UNREACHABLE or SESSION_MANAGER_ERROR", body = ErrorBody),
        (status = 504, description = "SESSION_MANAGER_TIMEOUT or SEND_TIMEOUT", body = ErrorBody),
    ))]
async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
    headers: HeaderMap,
    AppJson(body): AppJson<SendBody>,
) -> Result<Response, ApiError> {
    let id = authorize(&user, &raw)?;
    let idempotency_key = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .map(|value| IdempotencyKey::parse(value.as_bytes()))
        .transpose()
        .map_err(|message| ApiError::Validation { message, detail: json!({ "field": "Idempotency-Key" }) })?;
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
    let request = SendRequest { cliente_id: Some(id), to: body.to, message: body.message };
    let (answer, replayed) = state.manager.send_message(&request, idempotency_key.as_ref()).await?;
    let sent = OutgoingMessage {
        instance: ADMIN_SESSION,
        whatsapp_id: &answer.data.message_id,
        phone: request.to.as_str(),
        cliente_id: i64::try_from(id.get()).unwrap_or(i64::MAX),
        campaign_id: None,
        text: request.message.as_str(),
        timestamp_ms: answer.data.timestamp,
    };
    match state.store.record_outgoing(&sent).await {
        // Acks that came before the send was stored are now reported: fan them out at once.
        Ok(_) => state.webhooks.event_recorded(),
        Err(e) => {
            // The message went out: answering an error would make the caller send it again. Its
            // replies are then not attributed to this client (admins still see them).
            tracing::error!(
            error.message = %e,
            whatsapp_id = %answer.data.message_id,
            "sent, but could not record the message: replies to it will not be attributed"
            );
        }
    }
    let mut response = Json(answer).into_response();
    if let Some(value) = replayed {
        // The manager answered from its idempotency journal: say so, as it did.
        response.headers_mut().insert(IDEMPOTENT_REPLAYED_HEADER, value);
    }
    Ok(response)
}
