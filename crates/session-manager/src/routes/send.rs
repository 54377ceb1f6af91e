//! `POST /send`: validation at the border, rate limit (SEND_RATE_PER_MINUTE), and `Idempotency-Key` (the same key never
//! sends twice: later requests get the first answer again).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared_contracts::{IDEMPOTENCY_KEY_HEADER, MessageText, PhoneNumber, SendRequest, SendResponse};
use tokio::sync::OnceCell;

use super::{AppJson, AppState};
use crate::error::Error;

/// Keys remembered (oldest forgotten first).
const IDEMPOTENCY_KEYS_KEPT: usize = 10_000;
const IDEMPOTENCY_KEY_MAX_LEN: usize = 200;

/// A first answer, replayed for a repeated key.
type Answer = (StatusCode, serde_json::Value);

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
        match state.session.send(to.clone(), text.clone()).await {
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
        }
    };

    let Some(key) = key else {
        let (status, body) = attempt().await?;
        return Ok((status, Json(body)).into_response());
    };
    let cell = state.idempotency.cell(&key);
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

/// The answers given per idempotency key, and the keys in arrival order (for eviction).
#[derive(Default)]
pub struct Idempotency {
    inner: Mutex<Keys>,
}

type Keys = (HashMap<String, Arc<OnceCell<Answer>>>, VecDeque<String>);

impl Idempotency {
    fn cell(&self, key: &str) -> Arc<OnceCell<Answer>> {
        let mut guard = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (map, order) = &mut *guard;
        if let Some(cell) = map.get(key) {
            return cell.clone();
        }
        if order.len() >= IDEMPOTENCY_KEYS_KEPT
            && let Some(oldest) = order.pop_front()
        {
            map.remove(&oldest);
        }
        let cell = Arc::new(OnceCell::new());
        map.insert(key.to_owned(), cell.clone());
        order.push_back(key.to_owned());
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_gets_the_same_cell() {
        let cache = Idempotency::default();
        assert!(Arc::ptr_eq(&cache.cell("a"), &cache.cell("a")));
        assert!(!Arc::ptr_eq(&cache.cell("a"), &cache.cell("b")));
    }
}
