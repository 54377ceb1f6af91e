//! Session state and the session-manager's bodies.

use serde::{Deserialize, Serialize};

use crate::{ClienteId, ErrorCode, MessageText, PhoneNumber, WhatsappInventory};

/// The state of the WhatsApp Web session, serialized in capitals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionState {
    Init,
    Connecting,
    QrRequired,
    Authenticated,
    Ready,
    Disconnected,
    Error,
}

impl SessionState {
    /// Every state, in the order of the design's table.
    pub const ALL: [SessionState; 7] = [
        SessionState::Init,
        SessionState::Connecting,
        SessionState::QrRequired,
        SessionState::Authenticated,
        SessionState::Ready,
        SessionState::Disconnected,
        SessionState::Error,
    ];

    /// The wire name (`QR_REQUIRED`), also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Init => "INIT",
            SessionState::Connecting => "CONNECTING",
            SessionState::QrRequired => "QR_REQUIRED",
            SessionState::Authenticated => "AUTHENTICATED",
            SessionState::Ready => "READY",
            SessionState::Disconnected => "DISCONNECTED",
            SessionState::Error => "ERROR",
        }
    }

    /// A browser is running (or being brought up) for the session.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            SessionState::Connecting
                | SessionState::QrRequired
                | SessionState::Authenticated
                | SessionState::Ready
        )
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The login QR as the frontend shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QrInfo {
    /// `data:image/png;base64,...`: usable as `<img src>` as is; decodes to exactly `url`.
    pub base64: String,
    /// The raw string WhatsApp encodes in the QR (opaque: `2@...` or a `wa.me` link).
    pub url: String,
    /// 1 for the first code of a connect, +1 at each rotation.
    pub attempts: u32,
    /// When this code was received, Unix milliseconds.
    pub timestamp: i64,
    /// When WhatsApp is expected to rotate it, Unix milliseconds.
    pub expires_at: i64,
}

/// The last failure of the session: which step failed, why, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LastError {
    pub code: ErrorCode,
    pub message: String,
    pub hint: String,
    /// RFC 3339.
    pub at: String,
}

/// `GET /status` of the session-manager; also the payload of each `/events` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "connected": false, "state": "QR_REQUIRED", "session": "admin", "can_send_messages": false,
    "recommended_action": "Scan the QR with WhatsApp > Linked devices",
    "qr": {"base64": "data:image/png;base64,iVBORw0KGgo...", "url": "2@...", "attempts": 1,
           "timestamp": 1708876543210_i64, "expires_at": 1708876563210_i64},
    "phone_number": null, "since": "2024-02-25T15:55:43Z", "last_error": null
})))]
pub struct StatusBody {
    pub connected: bool,
    pub state: SessionState,
    pub session: String,
    pub can_send_messages: bool,
    pub recommended_action: String,
    /// Present only in `QR_REQUIRED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr: Option<QrInfo>,
    pub phone_number: Option<String>,
    /// When the current state was entered, RFC 3339.
    pub since: String,
    pub last_error: Option<LastError>,
    /// The code to type on the phone (Linked devices > Link with phone number), while a
    /// pairing-code login waits in `QR_REQUIRED`. A credential, like `qr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing_code: Option<PairingCode>,
    /// The WhatsApp Web build the page loaded and what the bridge found in it (once loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsappInventory>,
}

/// A pairing code: link the account by typing it on the phone instead of scanning the QR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PairingCode {
    /// Eight characters shown as `ABCD-EFGH`.
    pub code: String,
    /// The number (digits) the code was asked for: only that phone can use it.
    pub phone: String,
    /// 1 for the first code of a connect, +1 at each refresh.
    pub attempts: u32,
    /// When the manager asks for a fresh code, Unix milliseconds.
    pub expires_at: i64,
}

/// Optional body of `POST /connect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// Link with a pairing code for this phone number (digits, `+`, spaces, dashes) instead of a QR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing_phone: Option<String>,
}

/// `POST /connect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "success": true, "message": "Connecting", "session": "admin", "state": "CONNECTING",
    "alreadyConnected": false
})))]
pub struct ConnectResponse {
    pub success: bool,
    pub message: String,
    pub session: String,
    pub state: SessionState,
    #[serde(rename = "alreadyConnected")]
    pub already_connected: bool,
}

/// Optional body of `POST /disconnect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"logout": true})))]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    /// Also unlink this device from the phone (the next connect shows a QR).
    #[serde(default)]
    pub logout: bool,
}

/// `POST /disconnect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"success": true, "message": "Disconnected"})))]
pub struct DisconnectResponse {
    pub success: bool,
    pub message: String,
}

/// `POST /clear-session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClearSessionResponse {
    pub success: bool,
    pub message: String,
    pub state: SessionState,
    /// Where the previous profile was moved, when there was one.
    #[serde(default)]
    pub backup: Option<String>,
    /// What that backup holds and how long it is kept (absent from older managers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_details: Option<ProfileBackup>,
}

/// A profile moved aside by `clear-session`: it still holds a working linked-device login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProfileBackup {
    /// The backup directory on the manager's host.
    pub path: String,
    /// Always true today: the moved profile holds the WhatsApp login of the linked device.
    pub contains_login: bool,
    /// What an operator must know about it (a sentence).
    pub warning: String,
    /// Backups kept (SESSION_BACKUP_RETENTION); older ones are deleted.
    pub retention: u32,
}

/// `POST /send` body, as the hub and the seeds' callers send it. Each field is validated as it
/// is deserialized: a `SendRequest` holds a positive client id, a phone number and a message that
/// fits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"cliente_id": 51, "to": "5491123456789", "message": "text"})))]
pub struct SendRequest {
    /// The CRM client the message is sent for (metadata for logs and audit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cliente_id: Option<ClienteId>,
    /// Recipient phone number: received as digits with optional `+`, spaces or dashes, sent on
    /// normalized to digits.
    pub to: PhoneNumber,
    pub message: MessageText,
}

/// `POST /send` success body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "success": true, "message": "Message sent",
    "data": {"message_id": "3EB0ABC", "to": "5491123456789", "timestamp": 1708876543210_i64}
})))]
pub struct SendResponse {
    pub success: bool,
    pub message: String,
    pub data: SentMessage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SentMessage {
    pub message_id: String,
    /// The normalized recipient (digits only).
    pub to: String,
    /// Unix milliseconds.
    pub timestamp: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn round_trip<T: serde::de::DeserializeOwned + Serialize>(example: Value) -> T {
        let parsed: T = serde_json::from_value(example.clone()).expect("example parses");
        assert_eq!(serde_json::to_value(&parsed).unwrap(), example, "serializes back to the same fields");
        parsed
    }

    #[test]
    fn status_example_of_the_design_round_trips() {
        let status: StatusBody = round_trip(json!({
            "connected": false, "state": "QR_REQUIRED", "session": "admin", "can_send_messages": false,
            "recommended_action": "Scan the QR with WhatsApp > Linked devices",
            "qr": {"base64": "data:image/png;base64,iVBORw0KGgo...", "url": "2@...", "attempts": 1,
                   "timestamp": 1708876543210_i64, "expires_at": 1708876563210_i64},
            "phone_number": null, "since": "2024-02-25T15:55:43Z", "last_error": null
        }));
        assert_eq!(status.state, SessionState::QrRequired);
        assert_eq!(status.qr.unwrap().attempts, 1);
    }

    #[test]
    fn ready_status_has_no_qr_field_and_a_phone() {
        let status: StatusBody = round_trip(json!({
            "connected": true, "state": "READY", "session": "admin", "can_send_messages": true,
            "recommended_action": "None: the session can send messages",
            "phone_number": "+5491123456789", "since": "2024-02-25T15:55:43Z",
            "last_error": {"code": "LOGGED_OUT", "message": "m", "hint": "h", "at": "2024-02-25T15:55:43Z"}
        }));
        assert!(status.qr.is_none());
        assert_eq!(status.last_error.unwrap().code, ErrorCode::LoggedOut);
    }

    #[test]
    fn connect_response_keeps_the_camel_case_field() {
        let body: ConnectResponse = round_trip(json!({
            "success": true, "message": "Connecting", "session": "admin", "state": "CONNECTING",
            "alreadyConnected": false
        }));
        assert!(!body.already_connected);
    }

    #[test]
    fn send_bodies_of_the_design_round_trip() {
        let req: SendRequest =
            round_trip(json!({"cliente_id": 51, "to": "5491123456789", "message": "text"}));
        assert_eq!(req.cliente_id.map(ClienteId::get), Some(51));
        let normalized: SendRequest =
            serde_json::from_value(json!({"to": "+54 9 11 2345-6789", "message": "text"})).unwrap();
        assert_eq!(normalized.to.as_str(), "5491123456789");
        assert_eq!(normalized.cliente_id, None);
        assert_eq!(
            serde_json::to_value(&normalized).unwrap(),
            json!({"to": "5491123456789", "message": "text"}),
            "no cliente_id field when there is none"
        );
        let resp: SendResponse = round_trip(json!({
            "success": true, "message": "Message sent",
            "data": {"message_id": "3EB0ABC", "to": "5491123456789", "timestamp": 1708876543210_i64}
        }));
        assert_eq!(resp.data.to, "5491123456789");
    }

    #[test]
    fn disconnect_body_defaults_to_keeping_the_link() {
        let body: DisconnectRequest = serde_json::from_str("{}").unwrap();
        assert!(!body.logout);
        round_trip::<DisconnectRequest>(json!({"logout": true}));
        round_trip::<DisconnectResponse>(json!({"success": true, "message": "Disconnected"}));
    }

    #[test]
    fn every_state_serializes_to_its_wire_name() {
        for state in SessionState::ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), json!(state.as_str()));
        }
    }
}
