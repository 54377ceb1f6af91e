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
    IDEMPOTENCY_KEY_HEADER, MessageText, PhoneNumber, SendRequest, SendResponse, SessionState,
};

use super::{AppJson, AppState};
use crate::error::Error;
use crate::idempotency::{self, Scope, Ticket};

const IDEMPOTENCY_KEY_MAX_LEN: usize = 200;
/// Set on an answer that was given before (by an earlier or a concurrent request with the key).
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

pub async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(request): AppJson<SendRequest>,
) -> Result<Response, Error> {
    let to = PhoneNumber::parse(&request.to)
        .map_err(|e| Error::Validation { message: e, detail: json!({ "field": "to" }) })?;
    let text = MessageText::parse(request.message)
        .map_err(|e| Error::Validation { message: e, detail: json!({ "field": "message" }) })?;
    let key = idempotency_key(&headers)?;
    tracing::info!(to = %to, cliente_id = ?request.cliente_id, idempotency_key = ?key, "send requested");

    let keyed = key.map(|key| {
        let fingerprint = idempotency::fingerprint(request.cliente_id, to.as_str(), text.as_str());
        (Scope { cliente_id: request.cliente_id, key }, fingerprint)
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
            // A send that was attempted has an answer worth replaying; a refusal before it does not.
            Err(
                e
                @ (Error::SendFailed { .. } | Error::SendTimeout { .. } | Error::NumberNotOnWhatsapp { .. }),
            ) => Ok(idempotency::error_answer(&e)),
            Err(e) => Err(e),
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

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else { return Ok(None) };
    let key = value.to_str().ok().map(str::trim).unwrap_or("");
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX_LEN {
        return Err(Error::Validation {
            message: format!(
                "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} visible ASCII characters"
            ),
            detail: json!({ "field": "Idempotency-Key" }),
        });
    }
    Ok(Some(key.to_owned()))
}
