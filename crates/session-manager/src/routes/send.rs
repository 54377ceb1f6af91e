//! `POST /send`: validation at the border, rate limit (SEND_RATE_PER_MINUTE), and `Idempotency-Key`
//! (per caller, bound to its message: the same key never sends twice, later requests get the first
//! answer again with `Idempotent-Replayed: true`, also after a restart; see `idempotency.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared_contracts::{
    IDEMPOTENCY_KEY_HEADER, MessageText, PhoneNumber, SendRequest, SendResponse, SessionState,
};

use super::idempotency::{self, Answer, Claim, Scope, Settled};
use super::{AppJson, AppState};
use crate::error::Error;

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

    // Refusals before the page is asked (429, 409) return early: nothing to replay, no slot taken.
    let attempt = {
        let (state, to, text) = (state.clone(), to.clone(), text.clone());
        move |scope: Option<Scope>| {
            let state = state.clone();
            let (to, text) = (to.clone(), text.clone());
            async move {
                state.send_limiter.try_acquire()?;
                let current = state.session.status().state;
                if current != SessionState::Ready {
                    return Err(Error::SessionNotReady { state: current });
                }
                if let Some(scope) = &scope {
                    state.idempotency.pending(scope).await;
                }
                let outcome = match state.session.send(to, text).await {
                    Ok(data) => {
                        let body = SendResponse { success: true, message: "Message sent".into(), data };
                        Ok((StatusCode::OK, serde_json::to_value(body).unwrap_or_default()))
                    }
                    // Refused before the page was asked: nothing to replay, the caller may try again.
                    Err(e @ Error::SessionNotReady { .. }) => Err(e),
                    // Handed to the page: whatever the outcome (sent, refused, or unknown because the
                    // page went away mid-send, as at a logout), it is the key's answer for good, so a
                    // retry with the key can never send a second time.
                    Err(e) => {
                        let status =
                            StatusCode::from_u16(e.code().http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
                        Ok((status, serde_json::to_value(e.body()).unwrap_or_default()))
                    }
                };
                let settled = outcome.map(|answer: Answer| Settled {
                    answer,
                    at: idempotency::unix_secs(std::time::SystemTime::now()),
                });
                if let Some(scope) = &scope {
                    match &settled {
                        Ok(settled) => state.idempotency.answered(scope, settled).await,
                        Err(_) => state.idempotency.released(scope).await,
                    }
                }
                settled
            }
        }
    };

    let Some(key) = key else {
        let Settled { answer: (status, body), .. } = attempt(None).await?;
        return Ok((status, Json(body)).into_response());
    };
    let fingerprint = idempotency::fingerprint(request.cliente_id, to.as_str(), text.as_str());
    let scope = Scope { cliente_id: request.cliente_id, key };
    let cell = match state.idempotency.claim(&scope, &fingerprint) {
        Claim::Cell(cell) => cell,
        Claim::Reused => return Err(Error::IdempotencyKeyReused { key: scope.key }),
    };
    // Whoever runs the send answers first-hand; everyone else (later or waiting) gets a replay.
    // The send runs in its own task: a caller that goes away mid-send (a hub killed, a timeout)
    // must not cancel it half-way, or the page sends while the key is left unanswered and the
    // caller's retry with the same key sends a second time.
    let ran = Arc::new(AtomicBool::new(false));
    let job = {
        let (cell, scope, ran) = (cell.clone(), scope.clone(), ran.clone());
        tokio::spawn(async move {
            cell.get_or_try_init(|| {
                ran.store(true, Ordering::Relaxed);
                attempt(Some(scope))
            })
            .await
            .cloned()
        })
    };
    let result = job.await.unwrap_or(Err(Error::ActorGone));
    let Settled { answer: (status, body), .. } = match result {
        Ok(settled) => settled,
        Err(e) => {
            state.idempotency.forget_unanswered(&scope, cell);
            return Err(e);
        }
    };
    let mut response = (status, Json(body)).into_response();
    if !ran.load(Ordering::Relaxed) {
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
