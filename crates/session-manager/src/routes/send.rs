//! `POST /send`: validation at the border, rate limit (SEND_RATE_PER_MINUTE), and `Idempotency-Key`
//! (per caller, bound to its message: the same key never sends twice, later requests get the first
//! answer again with `Idempotent-Replayed: true`, also after a restart; the store and its journal
//! are `crate::idempotency`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared_contracts::{
    ClienteId, ErrorBody, IDEMPOTENCY_KEY_HEADER, IdempotencyKey, SendRequest, SendResponse, SessionState,
};

use super::{AppJson, AppState};
use crate::error::Error;
use crate::idempotency::{self, Scope, Ticket};

/// Set on an answer that was given before (by an earlier or a concurrent request with the key).
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// Sends a text message (the session must be READY).
#[utoipa::path(post, path = "/send", tag = "session", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "A retried send with the same key is delivered once")),
    request_body = SendRequest,
    responses(
        (status = 200, description = "Sent", body = SendResponse),
        (status = 400, description = "VALIDATION_ERROR: bad `to`, `message`, `cliente_id` or Idempotency-Key", body = ErrorBody),
        (status = 409, description = "SESSION_NOT_READY", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
        (status = 422, description = "NUMBER_NOT_ON_WHATSAPP or IDEMPOTENCY_KEY_REUSED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: SEND_RATE_PER_MINUTE (see Retry-After)", body = ErrorBody),
        (status = 503, description = "SEND_FAILED", body = ErrorBody),
        (status = 504, description = "SEND_TIMEOUT", body = ErrorBody),
    ))]
pub async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(request): AppJson<SendRequest>,
) -> Result<Response, Error> {
    // The extractor validated the body: `to` is a phone number, `message` fits, `cliente_id` is positive.
    let SendRequest { cliente_id, to, message: text } = request;
    let cliente_id = cliente_id.map(ClienteId::get);
    let key = idempotency_key(&headers)?;
    tracing::info!(to = %to, cliente_id = ?cliente_id, idempotency_key = ?key, "send requested");

    let keyed = key.map(|key| {
        let fingerprint = idempotency::fingerprint(cliente_id, to.as_str(), text.as_str());
        (Scope { cliente_id, key: key.into() }, fingerprint)
    });
    let store = state.idempotency.clone();
    // Refusals before the page is asked (429, 409) return early: nothing to replay, no slot taken.
    let attempt = |ticket: Ticket| async move {
        state.send_limiter.try_acquire()?;
        let current = state.session.status().state;
        if current != SessionState::Ready {
            return Err(Error::SessionNotReady { state: current });
        }
        ticket.pending().await;
        match state.session.send(to, text).await {
            Ok(data) => {
                let body = SendResponse { success: true, message: "Message sent".into(), data };
                Ok((StatusCode::OK, serde_json::to_value(body).unwrap_or_default()))
            }
            // Refused before the page was asked: nothing to replay, the caller may try again.
            Err(e @ Error::SessionNotReady { .. }) => Err(e),
            // Handed to the page: whatever the outcome (sent, refused, or unknown because the page
            // went away mid-send, as at a logout), it is the key's answer for good, so a retry with
            // the key can never send a second time.
            Err(e) => Ok(idempotency::error_answer(&e)),
        }
    };

    let ((status, body), replayed) = match keyed {
        None => (attempt(Ticket::untracked()).await?, false),
        Some((scope, fingerprint)) => store.once(scope, &fingerprint, attempt).await?,
    };
    let mut response = (status, Json(body)).into_response();
    if replayed {
        response.headers_mut().insert(IDEMPOTENT_REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, Error> {
    headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .map(|value| IdempotencyKey::parse(value.as_bytes()))
        .transpose()
        .map_err(|message| Error::Validation { message, detail: json!({ "field": "Idempotency-Key" }) })
}
