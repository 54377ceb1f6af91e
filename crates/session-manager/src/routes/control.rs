//! `/connect`, `/disconnect`, `/clear-session`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use shared_contracts::{
    ADMIN_SESSION, ClearSessionResponse, ConnectRequest, ConnectResponse, DisconnectRequest,
    DisconnectResponse, ErrorBody, PhoneNumber, ProfileBackup,
};

use super::AppState;
use crate::error::Error;

/// Connects that would start the browser count against CONNECT_RATE_PER_MINUTE; a connect while
/// the session is live changes nothing and is free. The body is optional:
/// `{"pairing_phone":"<number>"}` links by a code typed on that phone instead of the QR.
#[utoipa::path(post, path = "/connect", tag = "session", security(("bearer" = [])),
    request_body(content = Option<ConnectRequest>, description = "Optional"),
    responses(
        (status = 200, description = "Connecting, or already connected", body = ConnectResponse),
        (status = 400, description = "VALIDATION_ERROR: not the body expected", body = ErrorBody),
        (status = 409, description = "PAIRING_UNAVAILABLE or PROFILE_LOCKED", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: CONNECT_RATE_PER_MINUTE (see Retry-After)", body = ErrorBody),
        (status = 503, description = "BROWSER_CRASHED, PAGE_LOAD_FAILED, CONNECTION_ERROR or WHATSAPP_INCOMPATIBLE", body = ErrorBody),
    ))]
pub async fn connect(State(state): State<AppState>, body: Bytes) -> Result<Json<ConnectResponse>, Error> {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        ConnectRequest::default()
    } else {
        serde_json::from_slice::<ConnectRequest>(&body).map_err(|e| Error::Validation {
            message: format!("the connect body is not {{\"pairing_phone\": \"<number>\"}}: {e}"),
            detail: serde_json::json!({ "body": "invalid" }),
        })?
    };
    let pairing = match &request.pairing_phone {
        Some(raw) => Some(PhoneNumber::parse(raw).map_err(|reason| Error::Validation {
            message: format!("pairing_phone {raw:?} is not a phone number: {reason}"),
            detail: serde_json::json!({ "field": "pairing_phone" }),
        })?),
        None => None,
    };
    if !state.session.status().state.is_live() {
        state.connect_limiter.try_acquire()?;
    }
    let outcome = state.session.connect(pairing).await?;
    let message = if outcome.already_connected {
        format!("Already connected (state {})", outcome.state)
    } else {
        format!("Connecting to WhatsApp Web (state {})", outcome.state)
    };
    Ok(Json(ConnectResponse {
        success: true,
        message,
        session: ADMIN_SESSION.to_owned(),
        state: outcome.state,
        already_connected: outcome.already_connected,
    }))
}

/// The body is optional: empty means `{"logout": false}`.
#[utoipa::path(post, path = "/disconnect", tag = "session", security(("bearer" = [])),
    request_body(content = Option<DisconnectRequest>, description = "Optional"),
    responses(
        (status = 200, description = "Disconnected", body = DisconnectResponse),
        (status = 400, description = "VALIDATION_ERROR: not the body expected", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
    ))]
pub async fn disconnect(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<DisconnectResponse>, Error> {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        DisconnectRequest::default()
    } else {
        serde_json::from_slice::<DisconnectRequest>(&body).map_err(|e| Error::Validation {
            message: format!("the disconnect body is not {{\"logout\": true|false}}: {e}"),
            detail: serde_json::json!({ "body": "invalid" }),
        })?
    };
    state.session.disconnect(request.logout).await?;
    let message = if request.logout { "Disconnected and unlinked" } else { "Disconnected" };
    Ok(Json(DisconnectResponse { success: true, message: message.into() }))
}

/// Stops the session and moves its profile aside (the next connect shows a QR).
#[utoipa::path(post, path = "/clear-session", tag = "session", security(("bearer" = [])),
    responses(
        (status = 200, description = "Cleared", body = ClearSessionResponse),
        (status = 409, description = "PROFILE_LOCKED", body = ErrorBody),
    ))]
pub async fn clear_session(State(state): State<AppState>) -> Result<Json<ClearSessionResponse>, Error> {
    let backup = state.session.clear_session().await?;
    let retention = state.backup_retention;
    let message = match (&backup, retention) {
        (Some(path), _) => format!(
            "Session cleared; the previous profile was moved to {}. It still holds the linked device's \
             WhatsApp login",
            path.display()
        ),
        (None, 0) => {
            "Session cleared; the previous profile was deleted (SESSION_BACKUP_RETENTION=0 keeps no \
                      backup)"
                .to_owned()
        }
        (None, _) => "Session cleared (there was no profile to back up)".to_owned(),
    };
    let backup_details = backup.as_ref().map(|path| ProfileBackup {
        path: path.display().to_string(),
        contains_login: true,
        warning: format!(
            "This backup holds a working login of the linked device: whoever copies it can use the WhatsApp \
             account until the device is removed on the phone (WhatsApp > Linked devices). It is readable by \
             the session-manager's user only; delete it once you do not need it. The newest {retention} \
             backups are kept (SESSION_BACKUP_RETENTION; 0 keeps none)."
        ),
        retention,
    });
    Ok(Json(ClearSessionResponse {
        success: true,
        message,
        state: state.session.status().state,
        backup: backup.map(|p| p.display().to_string()),
        backup_details,
    }))
}
