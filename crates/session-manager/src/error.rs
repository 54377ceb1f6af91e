//! The crate's one error type: every failure has a stable code, an HTTP status, a sentence saying
//! which step failed and why, and a hint. Rendered as `shared_contracts::ErrorBody`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shared_contracts::{ErrorBody, ErrorCode, LastError, SessionState};

use crate::browser::BrowserError;
use crate::qr::QrError;
use crate::telemetry;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {message}")]
    Validation { message: String, detail: Value },

    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },

    #[error("missing or wrong bearer token")]
    Unauthorized,

    #[error("the Host {host:?} is not one this session-manager answers")]
    HostNotAllowed { host: String },

    #[error("the Idempotency-Key {key:?} was already used for a different message")]
    IdempotencyKeyReused { key: String },

    #[error("no route {method} {path}")]
    NotFound { method: String, path: String },

    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },

    #[error("there is no QR in state {state}")]
    NoQr { state: SessionState },

    #[error("the session is not ready to send (state {state})")]
    SessionNotReady { state: SessionState },

    #[error("a pairing-code login cannot start: {reason}")]
    PairingUnavailable { reason: String, hint: String },

    #[error("{number} has no WhatsApp account")]
    NumberNotOnWhatsapp { number: String },

    #[error("too many {what}: at most {per_minute} per minute")]
    RateLimited { what: &'static str, setting: &'static str, per_minute: u32, retry_after_secs: u64 },

    #[error(transparent)]
    Browser(#[from] BrowserError),

    /// The session failed for a reason already recorded as its `last_error`.
    #[error("{}", .0.message)]
    Session(LastError),

    #[error("the page did not confirm the message within {secs} s")]
    SendTimeout { secs: u64 },

    #[error("the page refused the message: {reason}")]
    SendFailed { reason: String, detail: Value },

    #[error("drawing the QR failed: {0}")]
    Qr(#[from] QrError),

    #[error("{step} failed for {path}: {source}")]
    Io { step: &'static str, path: String, source: std::io::Error },

    #[error("the session task has stopped (the manager is shutting down)")]
    ActorGone,
}

impl Error {
    pub fn validation(message: impl Into<String>) -> Self {
        Error::Validation { message: message.into(), detail: json!({}) }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Validation { .. } => ErrorCode::ValidationError,
            Error::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::Unauthorized => ErrorCode::Unauthorized,
            Error::HostNotAllowed { .. } => ErrorCode::HostNotAllowed,
            Error::IdempotencyKeyReused { .. } => ErrorCode::IdempotencyKeyReused,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            Error::NoQr { .. } => ErrorCode::NoQr,
            Error::SessionNotReady { .. } => ErrorCode::SessionNotReady,
            Error::NumberNotOnWhatsapp { .. } => ErrorCode::NumberNotOnWhatsapp,
            Error::PairingUnavailable { .. } => ErrorCode::PairingUnavailable,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Browser(e) => e.code(),
            Error::Session(e) => e.code,
            Error::SendTimeout { .. } => ErrorCode::SendTimeout,
            Error::SendFailed { .. } => ErrorCode::SendFailed,
            Error::Qr(_) | Error::Io { .. } | Error::ActorGone => ErrorCode::InternalError,
        }
    }

    pub fn hint(&self) -> String {
        match self {
            Error::Validation { .. } => "Fix the request body: see `detail` and the API documentation".into(),
            Error::PayloadTooLarge { .. } => "Send a smaller body".into(),
            Error::Unauthorized => {
                "Send `Authorization: Bearer <token>` with the value of SESSION_MANAGER_TOKEN, \
                 configured in the environment file shared by the hub and the session-manager \
                 (deploy/leadmaster.env)"
                    .into()
            }
            Error::HostNotAllowed { .. } => {
                "Call the session-manager by an allowed name (127.0.0.1 or localhost), or add this one to \
                 SESSION_MANAGER_ALLOWED_HOSTS"
                    .into()
            }
            Error::IdempotencyKeyReused { .. } => "Use a new Idempotency-Key for a different message".into(),
            Error::NotFound { .. } => "See ARCHITECTURE.md for the routes of the session-manager".into(),
            Error::MethodNotAllowed { .. } => "Use a method listed in the Allow header".into(),
            Error::NoQr { state } => match state {
                SessionState::Ready | SessionState::Authenticated => "The session is already linked".into(),
                SessionState::Connecting => {
                    "Wait a moment: the QR appears once WhatsApp Web has loaded".into()
                }
                _ => "POST /connect first, then fetch the QR".into(),
            },
            Error::SessionNotReady { state } => match state {
                SessionState::QrRequired => "Scan the QR with WhatsApp > Linked devices, then retry".into(),
                SessionState::Connecting | SessionState::Authenticated => {
                    "The session is starting: retry when /status says READY".into()
                }
                _ => "POST /connect and wait for READY, then retry".into(),
            },
            Error::NumberNotOnWhatsapp { .. } => "Check the number (country code included)".into(),
            Error::PairingUnavailable { hint, .. } => hint.clone(),
            Error::RateLimited { retry_after_secs, setting, .. } => {
                format!("Retry after {retry_after_secs} s ({setting} sets the limit)")
            }
            Error::Browser(e) => e.hint(),
            Error::Session(e) => e.hint.clone(),
            Error::SendTimeout { .. } => {
                "The message may still be delivered: check before resending (use an Idempotency-Key)".into()
            }
            Error::SendFailed { .. } => "Check /status; retry later".into(),
            Error::Qr(_) => {
                "The QR could not be drawn: fetch it as PNG (GET /qr) or from /qr-code, and report this \
                 with the session-manager's logs"
                    .into()
            }
            Error::Io { .. } => "Check the data directory's permissions and free space".into(),
            Error::ActorGone => "Restart the session-manager".into(),
        }
    }

    fn detail(&self) -> Value {
        match self {
            Error::Validation { detail, .. } | Error::SendFailed { detail, .. } => detail.clone(),
            Error::PayloadTooLarge { limit } => json!({ "limit_bytes": limit }),
            Error::NotFound { method, path } | Error::MethodNotAllowed { method, path } => {
                json!({ "method": method, "path": path })
            }
            Error::NoQr { state } | Error::SessionNotReady { state } => json!({ "state": state }),
            Error::NumberNotOnWhatsapp { number } => json!({ "to": number }),
            Error::HostNotAllowed { host } => json!({ "host": host }),
            Error::IdempotencyKeyReused { key } => json!({ "idempotency_key": key }),
            Error::RateLimited { what, per_minute, retry_after_secs, .. } => {
                json!({ "limit": what, "per_minute": per_minute, "retry_after_secs": retry_after_secs })
            }
            Error::Browser(e) => e.detail(),
            Error::Session(e) => json!({ "at": e.at }),
            Error::SendTimeout { secs } => json!({ "timeout_secs": secs }),
            Error::Io { step, path, source } => {
                json!({ "step": step, "path": path, "cause": source.to_string() })
            }
            Error::Qr(e) => json!({ "step": "draw the QR as text", "cause": e.to_string() }),
            Error::Unauthorized | Error::ActorGone | Error::PairingUnavailable { .. } => json!({}),
        }
    }

    /// The body of this error, with the current request id.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            success: false,
            error: self.to_string(),
            code: self.code(),
            detail: self.detail(),
            hint: self.hint(),
            request_id: service_kit::current_request_id(),
            timestamp: telemetry::now_rfc3339(),
        }
    }

    /// The status and body this error answers with: what `IntoResponse` sends, and what the
    /// idempotency journal keeps to replay.
    pub fn parts(&self) -> (StatusCode, ErrorBody) {
        let status =
            StatusCode::from_u16(self.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, self.body())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, body) = self.parts();
        if status.is_server_error() {
            tracing::error!(code = %body.code, error = %self, "request failed");
        } else {
            tracing::debug!(code = %body.code, error = %self, "request rejected");
        }
        let mut response = (status, axum::Json(body)).into_response();
        if let Error::RateLimited { retry_after_secs, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(err: Error) -> (StatusCode, Option<HeaderValue>, ErrorBody) {
        let response = err.into_response();
        let status = response.status();
        let retry = response.headers().get(header::RETRY_AFTER).cloned();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (status, retry, serde_json::from_slice(&bytes).expect("an ErrorBody"))
    }

    #[tokio::test]
    async fn not_ready_renders_409_with_the_state_and_a_hint() {
        let (status, _, body) = render(Error::SessionNotReady { state: SessionState::QrRequired }).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body.code, ErrorCode::SessionNotReady);
        assert_eq!(body.detail["state"], "QR_REQUIRED");
        assert!(body.hint.contains("Scan"));
        assert!(!body.success);
        assert!(!body.timestamp.is_empty());
    }

    #[tokio::test]
    async fn the_request_id_of_the_task_is_in_the_body() {
        let (_, _, body) = service_kit::RequestContext::new("req-42".to_owned())
            .scope(render(Error::validation("to: bad number")))
            .await;
        assert_eq!(body.request_id.as_deref(), Some("req-42"));
        assert_eq!(body.code, ErrorCode::ValidationError);
    }

    #[tokio::test]
    async fn rate_limited_sets_retry_after() {
        let (status, retry, _) = render(Error::RateLimited {
            what: "sends",
            setting: "SEND_RATE_PER_MINUTE",
            per_minute: 60,
            retry_after_secs: 3,
        })
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry, Some(HeaderValue::from(3u64)));
    }

    #[tokio::test]
    async fn a_qr_that_cannot_be_drawn_is_an_internal_error_not_the_callers() {
        let err = crate::qr::ascii(&"x".repeat(8000)).expect_err("too long for a QR");
        let (status, _, body) = render(Error::from(err)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body.code, ErrorCode::InternalError);
        assert_eq!(body.detail["step"], "draw the QR as text");
        assert!(body.error.contains("8000 bytes"), "{}", body.error);
    }

    #[tokio::test]
    async fn a_missing_chromium_names_the_path_and_the_fix() {
        let err = Error::Browser(BrowserError::NotFound { path: "/nope/chromium".into() });
        let (status, _, body) = render(err).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body.code, ErrorCode::BrowserLaunchFailed);
        assert!(body.error.contains("/nope/chromium"), "{}", body.error);
        assert!(body.hint.contains("CHROMIUM_PATH"), "{}", body.hint);
        assert_eq!(body.detail["path"], "/nope/chromium");
    }
}
