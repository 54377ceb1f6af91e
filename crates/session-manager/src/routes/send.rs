//! `POST /send`: validation at the border, rate limit (SEND_RATE_PER_MINUTE), and `Idempotency-Key` (the same key never
//! sends twice: later requests get the first answer again, also after a restart; see `idempotency.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared_contracts::{IDEMPOTENCY_KEY_HEADER, MessageText, PhoneNumber, SendRequest, SendResponse};

use super::{AppJson, AppState};
use crate::error::Error;

const IDEMPOTENCY_KEY_MAX_LEN: usize = 200;

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

    let attempt = || async {
        state.send_limiter.try_acquire()?;
        if let Some(key) = key.as_deref() {
            state.idempotency.pending(key).await;
        }
        let outcome = match state.session.send(to.clone(), text.clone()).await {
            Ok(data) => {
                let body = SendResponse { success: true, message: "Message sent".into(), data };
                Ok((StatusCode::OK, serde_json::to_value(body).unwrap_or_default()))
            }
            // A send that was attempted has an answer worth replaying; a refusal before it does not.
            Err(
                e
                @ (Error::SendFailed { .. } | Error::SendTimeout { .. } | Error::NumberNotOnWhatsapp { .. }),
            ) => {
                let status = StatusCode::from_u16(e.code().http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
                Ok((status, serde_json::to_value(e.body()).unwrap_or_default()))
            }
            Err(e) => Err(e),
        };
        if let Some(key) = key.as_deref() {
            match &outcome {
                Ok(answer) => state.idempotency.answered(key, answer).await,
                Err(_) => state.idempotency.released(key).await,
            }
        }
        outcome
    };

    let Some(key) = key.as_deref() else {
        let (status, body) = attempt().await?;
        return Ok((status, Json(body)).into_response());
    };
    let cell = state.idempotency.cell(key);
    let first_time = cell.get().is_none();
    let (status, body) = cell.get_or_try_init(attempt).await?.clone();
    let mut response = (status, Json(body)).into_response();
    if !first_time {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
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
