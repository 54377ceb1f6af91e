//! The socket.io events, with the names and fields of seed 002's plan, and how the manager's
//! `StatusBody` maps to them. Pure data: no socket, no I/O (what `fanout` and `handlers` send).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared_contracts::{ErrorCode, SessionState, StatusBody};

use crate::error::ApiError;

/// Every socket subscribed to the session: `session-status`, and `connection-error` when the hub
/// loses the manager's events.
pub const SESSION_ROOM: &str = "session:admin";
/// The admins among them: `qr-code`, `qr-expired`.
pub const QR_ROOM: &str = "session:admin:qr";

/// client → server: `{token}`, a hub JWT (from `POST /auth/login`).
pub const AUTHENTICATE: &str = "authenticate";
/// client → server: `{instance_id}`; `admin` is the one session.
pub const SUBSCRIBE_SESSION: &str = "subscribe-session";
/// client → server: `{instance_id}`; admins only.
pub const REQUEST_QR: &str = "request-qr";
/// server → client: `{success}`.
pub const AUTHENTICATED: &str = "authenticated";
/// server → client: `{status, state, connectedAt, phoneNumber}`.
pub const SESSION_STATUS: &str = "session-status";
/// server → client (admins): `{qr, expiresAt}`.
pub const QR_CODE: &str = "qr-code";
/// server → client (admins): `{message}`.
pub const QR_EXPIRED: &str = "qr-expired";
/// server → client: `{error, message}`, `error` one of the HTTP API's codes.
pub const CONNECTION_ERROR: &str = "connection-error";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Authenticated {
    pub success: bool,
}

/// `session-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// The seed's vocabulary: `init`, `qr_required`, `connecting`, `connected`, `disconnected`, `error`.
    pub status: &'static str,
    /// The HTTP API's state (`READY`, ...).
    pub state: SessionState,
    /// When the session became READY (RFC 3339), while it is; else `null`.
    pub connected_at: Option<String>,
    /// The linked account's number, once known.
    pub phone_number: Option<String>,
}

impl SessionStatus {
    pub fn of(body: &StatusBody) -> Self {
        Self {
            status: seed_status(body.state),
            state: body.state,
            connected_at: (body.state == SessionState::Ready).then(|| body.since.clone()),
            phone_number: body.phone_number.clone(),
        }
    }
}

/// The seed's lower-case status for a state (AUTHENTICATED is still connecting: not ready to send).
pub fn seed_status(state: SessionState) -> &'static str {
    match state {
        SessionState::Init => "init",
        SessionState::Connecting | SessionState::Authenticated => "connecting",
        SessionState::QrRequired => "qr_required",
        SessionState::Ready => "connected",
        SessionState::Disconnected => "disconnected",
        SessionState::Error => "error",
    }
}

/// `qr-code`: the QR as a `data:image/png;base64,...` URL and when WhatsApp rotates it (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QrCode<'a> {
    pub qr: &'a str,
    pub expires_at: i64,
}

impl<'a> QrCode<'a> {
    /// The QR of a status, when it shows one.
    pub fn of(body: &'a StatusBody) -> Option<Self> {
        let qr = body.qr.as_ref().filter(|_| body.state == SessionState::QrRequired)?;
        Some(Self { qr: &qr.base64, expires_at: qr.expires_at })
    }
}

/// `qr-expired`, when the status says the QR rotated `MAX_QR_ATTEMPTS` times without a scan:
/// the manager's sentence and what to do on the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QrExpired {
    pub message: String,
}

impl QrExpired {
    /// The expiry a status reports, with the time it happened (to tell a new one from a repeat).
    pub fn of(body: &StatusBody) -> Option<(Self, &str)> {
        let error = body.last_error.as_ref().filter(|e| e.code == ErrorCode::QrAttemptsExhausted)?;
        let message = format!(
            "{}. Connect again for new QR codes (POST /api/admin/whatsapp/connect)",
            error.message.trim_end_matches('.')
        );
        Some((Self { message }, &error.at))
    }
}

/// `connection-error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionError {
    pub error: ErrorCode,
    pub message: String,
}

impl From<&ApiError> for ConnectionError {
    fn from(e: &ApiError) -> Self {
        Self { error: e.code(), message: format!("{e}. {}", e.hint()) }
    }
}

impl ConnectionError {
    /// The hub's own subscription to the manager is down: it has no current status to give.
    pub fn feed_down() -> Self {
        Self {
            error: ErrorCode::SessionManagerUnreachable,
            message: "the hub is not receiving the session-manager's events right now. \
                      session-status follows as soon as they are back; check that the session-manager runs \
                      and that SESSION_MANAGER_URL points at it"
                .into(),
        }
    }
}

/// `authenticate`'s payload.
#[derive(Debug, Deserialize)]
pub struct AuthenticateBody {
    pub token: String,
}

/// `subscribe-session`'s and `request-qr`'s payload.
#[derive(Debug, Deserialize)]
pub struct InstanceBody {
    pub instance_id: String,
}

/// Reads an event's payload; a missing or mistyped field is a `VALIDATION_ERROR` naming it (each
/// payload has one field: `field`).
pub fn parse<T: DeserializeOwned>(event: &str, field: &str, data: Value) -> Result<T, ApiError> {
    serde_json::from_value(data).map_err(|e| ApiError::Validation {
        message: format!("`{event}` needs `{{\"{field}\": \"...\"}}`: {e}"),
        detail: json!({ "field": field }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, extra: Value) -> StatusBody {
        let mut body = json!({
            "connected": state == "READY", "state": state, "session": "admin", "can_send_messages": false,
            "recommended_action": "", "phone_number": null, "since": "2026-01-01T00:00:00Z", "last_error": null
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn every_state_has_the_seeds_status() {
        let pairs: Vec<_> = SessionState::ALL.iter().map(|s| (s.as_str(), seed_status(*s))).collect();
        assert_eq!(
            pairs,
            [
                ("INIT", "init"),
                ("CONNECTING", "connecting"),
                ("QR_REQUIRED", "qr_required"),
                ("AUTHENTICATED", "connecting"),
                ("READY", "connected"),
                ("DISCONNECTED", "disconnected"),
                ("ERROR", "error"),
            ]
        );
    }

    #[test]
    fn a_ready_status_is_connected_since_it_became_ready_with_its_number() {
        let ready = status("READY", json!({"phone_number": "5491100000000"}));
        assert_eq!(
            serde_json::to_value(SessionStatus::of(&ready)).unwrap(),
            json!({"status": "connected", "state": "READY", "connectedAt": "2026-01-01T00:00:00Z",
                   "phoneNumber": "5491100000000"})
        );
        let connecting = serde_json::to_value(SessionStatus::of(&status("CONNECTING", json!({})))).unwrap();
        assert_eq!(connecting["connectedAt"], Value::Null);
    }

    #[test]
    fn the_qr_and_its_expiry_come_from_the_status() {
        let qr = json!({"qr": {"url": "2@x", "base64": "data:image/png;base64,AA", "attempts": 5,
                               "timestamp": 1, "expires_at": 20001}});
        let waiting = status("QR_REQUIRED", qr);
        assert_eq!(
            serde_json::to_value(QrCode::of(&waiting)).unwrap(),
            json!({"qr": "data:image/png;base64,AA", "expiresAt": 20001})
        );
        assert_eq!(QrCode::of(&status("READY", json!({}))), None);
        let exhausted = status(
            "DISCONNECTED",
            json!({"last_error": {"code": "QR_ATTEMPTS_EXHAUSTED", "message": "No scan after 5 QR codes.",
                                  "hint": "Connect again.", "at": "2026-01-01T00:01:00Z"}}),
        );
        let (expired, at) = QrExpired::of(&exhausted).expect("an expiry");
        assert_eq!(
            (expired.message.as_str(), at),
            (
                "No scan after 5 QR codes. Connect again for new QR codes (POST /api/admin/whatsapp/connect)",
                "2026-01-01T00:01:00Z"
            )
        );
        assert!(QrExpired::of(&waiting).is_none());
    }

    #[test]
    fn a_payload_without_its_field_is_a_validation_error_naming_it() {
        let e = parse::<InstanceBody>(SUBSCRIBE_SESSION, "instance_id", json!({"id": "admin"})).unwrap_err();
        let event = ConnectionError::from(&e);
        assert_eq!(event.error, ErrorCode::ValidationError);
        assert!(event.message.contains("instance_id"), "{}", event.message);
        assert!(parse::<AuthenticateBody>(AUTHENTICATE, "token", json!("just a string")).is_err());
    }
}
