//! Every failure of the simulator's HTTP API, rendered as one JSON shape.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failed request to the control API or the page API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("no page shows a QR code to scan")]
    NoQrPage,
    #[error("no device is logged in")]
    NotLoggedIn,
    #[error("no page is CONNECTED")]
    NoConnectedPage,
    #[error("page `{0}` is not connected to the event stream")]
    UnknownPage(String),
    #[error("the login token is not valid (logged out or never scanned)")]
    InvalidLogin,
    #[error("no page shows this pairing code (wrong, expired, or the page is not waiting for one)")]
    WrongPairingCode,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("no sent message has the id `{0}`")]
    UnknownMessage(String),
    #[error("no route {0}")]
    NotFound(String),
    #[error("could not render the QR image: {0}")]
    QrRender(String),
}

impl SimError {
    /// A stable snake_case code for tests to match on.
    pub fn code(&self) -> &'static str {
        match self {
            SimError::NoQrPage => "no_qr_page",
            SimError::NotLoggedIn => "not_logged_in",
            SimError::NoConnectedPage => "no_connected_page",
            SimError::UnknownPage(_) => "unknown_page",
            SimError::InvalidLogin => "invalid_login",
            SimError::WrongPairingCode => "wrong_pairing_code",
            SimError::BadRequest(_) => "bad_request",
            SimError::UnknownMessage(_) => "unknown_message",
            SimError::NotFound(_) => "not_found",
            SimError::QrRender(_) => "qr_render_failed",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            SimError::NoQrPage
            | SimError::NotLoggedIn
            | SimError::NoConnectedPage
            | SimError::UnknownPage(_)
            | SimError::InvalidLogin => StatusCode::CONFLICT,
            SimError::BadRequest(_) | SimError::QrRender(_) => StatusCode::BAD_REQUEST,
            SimError::WrongPairingCode => StatusCode::UNPROCESSABLE_ENTITY,
            SimError::NotFound(_) | SimError::UnknownMessage(_) => StatusCode::NOT_FOUND,
        }
    }

    fn hint(&self) -> &'static str {
        match self {
            SimError::NoQrPage => "open the simulator's page in a browser and wait until it shows a QR code",
            SimError::NotLoggedIn => "scan a QR code first (POST /__sim/scan)",
            SimError::NoConnectedPage => "scan a QR code and wait until the page is CONNECTED",
            SimError::UnknownPage(_) => "reload the page so it opens /__sim/api/events again",
            SimError::InvalidLogin => "the page must show a QR code and be scanned again",
            SimError::WrongPairingCode => {
                "type the code the linking page shows now (GET /__sim/state has it)"
            }
            SimError::BadRequest(_) => "send the JSON body the simulator's README describes",
            SimError::UnknownMessage(_) => {
                "use a `message_id` POST /send answered (GET /__sim/messages lists them)"
            }
            SimError::NotFound(_) => "see the control API in crates/wa-sim/README.md",
            SimError::QrRender(_) => "pass a shorter `data` (at most about 2900 bytes)",
        }
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let body =
            json!({"success": false, "error": self.to_string(), "code": self.code(), "hint": self.hint()});
        (self.status(), Json(body)).into_response()
    }
}
