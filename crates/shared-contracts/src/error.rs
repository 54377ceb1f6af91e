//! The error body both services return for every non-2xx answer, and its stable codes.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code. Each has one HTTP status.
///
/// Codes that describe a session failure (`QR_ATTEMPTS_EXHAUSTED`, `LOGGED_OUT`, ...) also appear
/// in `StatusBody.last_error.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Bad JSON, missing field, bad phone number, message empty or too long.
    ValidationError,
    /// The request body is larger than the service accepts.
    PayloadTooLarge,
    /// No, bad or expired token.
    Unauthorized,
    /// Wrong role, another client's id, or a disabled account.
    Forbidden,
    /// No such route or resource.
    NotFound,
    /// The route exists, but not for this HTTP method (the `Allow` header lists the methods).
    MethodNotAllowed,
    /// No QR in the current state.
    NoQr,
    /// Send while the session is not READY.
    SessionNotReady,
    /// The recipient has no WhatsApp account.
    NumberNotOnWhatsapp,
    /// Too many logins, connects or sends; `Retry-After` is set.
    RateLimited,
    /// An `Idempotency-Key` already used by this caller for a different message.
    IdempotencyKeyReused,
    /// hub: too many password checks are running at once; `Retry-After` is set.
    LoginBusy,
    /// The request's `Host` is not one the service answers (DNS-rebinding guard).
    HostNotAllowed,
    /// Chromium could not be started (not found at the path, launch timed out, exited at once).
    BrowserLaunchFailed,
    /// Chromium or the page crashed; the manager reconnects on its own.
    BrowserCrashed,
    /// WhatsApp Web did not load in the browser (network, URL, timeout).
    PageLoadFailed,
    /// The session could not be brought up for another reason; `detail` carries the cause.
    ConnectionError,
    /// The WhatsApp Web build lacks internals the bridge requires (named in the message).
    WhatsappIncompatible,
    /// A pairing-code login cannot be started now (no such feature in this build, or not waiting for a login).
    PairingUnavailable,
    /// The page refused or failed to send the message; `detail` carries the cause.
    SendFailed,
    /// The page did not confirm the message in time.
    SendTimeout,
    /// The QR rotated more times than `MAX_QR_ATTEMPTS` without a scan.
    QrAttemptsExhausted,
    /// The device was unlinked from the phone; a new QR is needed.
    LoggedOut,
    /// WhatsApp Web was opened in another browser.
    Conflict,
    /// The session's profile directory is held by another session-manager.
    ProfileLocked,
    /// hub: the session-manager refused the connection (nothing listens at the URL).
    SessionManagerUnreachable,
    /// hub: the session-manager did not answer in time.
    SessionManagerTimeout,
    /// hub: the session-manager answered with something that is not the contract.
    SessionManagerError,
    /// hub: the database could not be reached or failed.
    DatabaseError,
    /// hub: a campaign cannot be created as sent (bad lines, template, pace, window); `detail`
    /// lists every offending line.
    CampaignInvalid,
    /// hub: the campaign's state does not allow the action (start a completed one...).
    CampaignStateConflict,
    /// hub: a client's webhook URL is, or resolves to, a loopback/private/link-local address
    /// (allowed only with `WEBHOOK_ALLOW_PRIVATE=true`).
    WebhookUrlNotAllowed,
    /// hub: a replay of a webhook delivery that is already pending.
    WebhookDeliveryPending,
    /// A bug: logged with its cause, reported with the request id.
    InternalError,
    /// A code this build does not know (sent by a newer peer).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status that goes with this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::ValidationError | ErrorCode::CampaignInvalid | ErrorCode::WebhookUrlNotAllowed => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound | ErrorCode::NoQr => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::SessionNotReady
            | ErrorCode::QrAttemptsExhausted
            | ErrorCode::LoggedOut
            | ErrorCode::Conflict
            | ErrorCode::ProfileLocked
            | ErrorCode::PairingUnavailable
            | ErrorCode::CampaignStateConflict
            | ErrorCode::WebhookDeliveryPending => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::HostNotAllowed => 421,
            ErrorCode::NumberNotOnWhatsapp | ErrorCode::IdempotencyKeyReused => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::BrowserLaunchFailed | ErrorCode::InternalError => 500,
            ErrorCode::SessionManagerUnreachable | ErrorCode::SessionManagerError | ErrorCode::Unknown => 502,
            ErrorCode::BrowserCrashed
            | ErrorCode::PageLoadFailed
            | ErrorCode::ConnectionError
            | ErrorCode::WhatsappIncompatible
            | ErrorCode::SendFailed
            | ErrorCode::LoginBusy
            | ErrorCode::DatabaseError => 503,
            ErrorCode::SendTimeout | ErrorCode::SessionManagerTimeout => 504,
        }
    }

    /// The wire name, e.g. `SESSION_NOT_READY`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::NoQr => "NO_QR",
            ErrorCode::SessionNotReady => "SESSION_NOT_READY",
            ErrorCode::NumberNotOnWhatsapp => "NUMBER_NOT_ON_WHATSAPP",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::LoginBusy => "LOGIN_BUSY",
            ErrorCode::HostNotAllowed => "HOST_NOT_ALLOWED",
            ErrorCode::BrowserLaunchFailed => "BROWSER_LAUNCH_FAILED",
            ErrorCode::BrowserCrashed => "BROWSER_CRASHED",
            ErrorCode::PageLoadFailed => "PAGE_LOAD_FAILED",
            ErrorCode::ConnectionError => "CONNECTION_ERROR",
            ErrorCode::WhatsappIncompatible => "WHATSAPP_INCOMPATIBLE",
            ErrorCode::PairingUnavailable => "PAIRING_UNAVAILABLE",
            ErrorCode::SendFailed => "SEND_FAILED",
            ErrorCode::SendTimeout => "SEND_TIMEOUT",
            ErrorCode::QrAttemptsExhausted => "QR_ATTEMPTS_EXHAUSTED",
            ErrorCode::LoggedOut => "LOGGED_OUT",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::ProfileLocked => "PROFILE_LOCKED",
            ErrorCode::SessionManagerUnreachable => "SESSION_MANAGER_UNREACHABLE",
            ErrorCode::SessionManagerTimeout => "SESSION_MANAGER_TIMEOUT",
            ErrorCode::SessionManagerError => "SESSION_MANAGER_ERROR",
            ErrorCode::DatabaseError => "DATABASE_ERROR",
            ErrorCode::CampaignInvalid => "CAMPAIGN_INVALID",
            ErrorCode::CampaignStateConflict => "CAMPAIGN_STATE_CONFLICT",
            ErrorCode::WebhookUrlNotAllowed => "WEBHOOK_URL_NOT_ALLOWED",
            ErrorCode::WebhookDeliveryPending => "WEBHOOK_DELIVERY_PENDING",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every non-2xx body of both services:
/// `{"success":false,"error","code","detail","hint","request_id","timestamp"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "success": false, "error": "The session is not ready to send (state QR_REQUIRED)",
    "code": "SESSION_NOT_READY", "detail": {"state": "QR_REQUIRED"},
    "hint": "Scan the QR first", "request_id": "7f1c", "timestamp": "2024-02-25T15:55:43Z"
})))]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// A human sentence: which step failed and why.
    pub error: String,
    pub code: ErrorCode,
    /// Structured cause (`url`, `path`, `timeout_ms`, `state`, ...); `{}` when there is none.
    #[serde(default)]
    pub detail: serde_json::Value,
    /// What to do about it.
    pub hint: String,
    #[serde(default)]
    pub request_id: Option<String>,
    /// RFC 3339.
    pub timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_body_of_the_design_round_trips() {
        let example = json!({
            "success": false, "error": "The session is not ready to send (state QR_REQUIRED)",
            "code": "SESSION_NOT_READY", "detail": {"state": "QR_REQUIRED"},
            "hint": "Scan the QR first", "request_id": "7f1c", "timestamp": "2024-02-25T15:55:43Z"
        });
        let body: ErrorBody = serde_json::from_value(example.clone()).unwrap();
        assert_eq!(body.code, ErrorCode::SessionNotReady);
        assert_eq!(body.code.http_status(), 409);
        assert_eq!(serde_json::to_value(&body).unwrap(), example);
    }

    #[test]
    fn statuses_match_the_design_table() {
        let table = [
            ("VALIDATION_ERROR", 400),
            ("CAMPAIGN_INVALID", 400),
            ("CAMPAIGN_STATE_CONFLICT", 409),
            ("WEBHOOK_URL_NOT_ALLOWED", 400),
            ("WEBHOOK_DELIVERY_PENDING", 409),
            ("UNAUTHORIZED", 401),
            ("FORBIDDEN", 403),
            ("NO_QR", 404),
            ("METHOD_NOT_ALLOWED", 405),
            ("SESSION_NOT_READY", 409),
            ("NUMBER_NOT_ON_WHATSAPP", 422),
            ("IDEMPOTENCY_KEY_REUSED", 422),
            ("LOGIN_BUSY", 503),
            ("HOST_NOT_ALLOWED", 421),
            ("RATE_LIMITED", 429),
            ("BROWSER_LAUNCH_FAILED", 500),
            ("CONNECTION_ERROR", 503),
            ("WHATSAPP_INCOMPATIBLE", 503),
            ("PAIRING_UNAVAILABLE", 409),
            ("SEND_FAILED", 503),
            ("SESSION_MANAGER_UNREACHABLE", 502),
            ("SESSION_MANAGER_TIMEOUT", 504),
        ];
        for (name, status) in table {
            let code: ErrorCode = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(code.as_str(), name);
            assert_eq!(code.http_status(), status, "{name}");
        }
    }

    #[test]
    fn a_code_from_a_newer_peer_is_kept_as_unknown() {
        let code: ErrorCode = serde_json::from_value(json!("SOMETHING_NEW")).unwrap();
        assert_eq!(code, ErrorCode::Unknown);
    }
}
