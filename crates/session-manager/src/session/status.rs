//! What the session shows: the status body of `GET /status` and `/events`, and the snapshot the
//! actor publishes (the status with the PNG of the QR it shows).

use std::sync::Arc;

use shared_contracts::{ADMIN_SESSION, ErrorCode, PairingCode, QrInfo, SessionState, StatusBody};

use super::Session;
use crate::telemetry::format_rfc3339;

/// What the actor publishes on every change: the status, and the QR's PNG while one is shown (so
/// `/qr` serves the bytes rendered once instead of decoding the status's data URL).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub status: StatusBody,
    pub qr_png: Option<Arc<[u8]>>,
}

impl Session {
    /// The status and the PNG of the QR it shows.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { status: self.status(), qr_png: self.shown_qr().map(|qr| qr.image.png.clone()) }
    }

    fn shown_qr(&self) -> Option<&super::Qr> {
        self.qr.as_ref().filter(|_| self.state == SessionState::QrRequired)
    }

    /// The body of `GET /status` and of each `/events` message.
    pub fn status(&self) -> StatusBody {
        let ready = self.state == SessionState::Ready;
        StatusBody {
            connected: ready,
            state: self.state,
            session: ADMIN_SESSION.to_owned(),
            can_send_messages: ready,
            recommended_action: self.recommended_action(),
            qr: self.shown_qr().map(|qr| QrInfo {
                base64: qr.image.data_url.clone(),
                url: qr.code.clone(),
                attempts: self.attempts,
                timestamp: qr.at_ms,
                expires_at: qr.expires_at_ms,
            }),
            phone_number: if ready { self.phone.clone() } else { None },
            since: format_rfc3339(self.since),
            last_error: self.last_error.clone(),
            pairing_code: self
                .pairing
                .as_ref()
                .zip(self.pairing_phone.as_ref())
                .filter(|_| self.state == SessionState::QrRequired)
                .map(|(pairing, phone)| PairingCode {
                    code: crate::qr::display_code(&pairing.code),
                    phone: phone.clone(),
                    attempts: self.attempts,
                    expires_at: pairing.expires_at_ms,
                }),
            // The actor adds what the bridge found in the page.
            whatsapp: None,
        }
    }

    fn recommended_action(&self) -> String {
        match self.state {
            SessionState::Init => "POST /connect to open WhatsApp Web".into(),
            SessionState::Connecting => "Wait: WhatsApp Web is loading".into(),
            SessionState::QrRequired if self.pairing.is_some() => {
                "Type the pairing code on the phone: WhatsApp > Linked devices > Link with phone number"
                    .into()
            }
            SessionState::QrRequired => "Scan the QR with WhatsApp > Linked devices".into(),
            SessionState::Authenticated => "Wait: WhatsApp is loading the chats".into(),
            SessionState::Ready => "None: the session can send messages".into(),
            SessionState::Disconnected => match self.last_error.as_ref().map(|e| e.code) {
                Some(ErrorCode::LoggedOut) => {
                    "POST /connect and scan the new QR (the device was unlinked)".into()
                }
                Some(ErrorCode::QrAttemptsExhausted) => "POST /connect to get new QR codes".into(),
                _ => "POST /connect to reconnect".into(),
            },
            SessionState::Error => match &self.last_error {
                Some(e) => e.hint.clone(),
                None => "POST /connect to retry".into(),
            },
        }
    }
}
