//! The control API tests and demos drive the simulator with: scan, logout, conflict, messages, state, config.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_json;
use crate::chats::IncomingRecord;
use crate::config::ConfigPatch;
use crate::error::SimError;
use crate::state::{AppState, PageCommand, RecordedMessage};

/// How long `POST /__sim/scan` waits for a page to report a QR it may have just drawn.
const SCAN_GRACE: Duration = Duration::from_millis(500);

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/__sim/scan", post(scan))
        .route("/__sim/pair", post(pair))
        .route("/__sim/logout", post(logout))
        .route("/__sim/conflict", post(conflict))
        .route("/__sim/messages", get(messages))
        .route("/__sim/state", get(sim_state))
        .route("/__sim/config", put(patch_config))
        .route("/__sim/incoming", post(incoming).get(list_incoming))
        .route("/__sim/ack", post(ack))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    phone: Option<String>,
}

/// The phone scans the QR of the page that showed one last.
async fn scan(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, SimError> {
    let body: ScanBody = parse_json(&body, true)?;
    let phone = body.phone.unwrap_or_else(|| state.config().phone.clone());
    if phone.is_empty() || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SimError::BadRequest(format!("`phone` must be digits, got {phone:?}")));
    }
    let token = uuid::Uuid::new_v4().to_string();
    let deadline = tokio::time::Instant::now() + SCAN_GRACE;
    loop {
        let next_report = state.next_report();
        let command = PageCommand::Scan { token: token.clone(), phone: phone.clone() };
        if state.send_to_latest_in("UNPAIRED", command) {
            break;
        }
        if tokio::time::timeout_at(deadline, next_report).await.is_err() {
            return Err(SimError::NoQrPage);
        }
    }
    tracing::info!(%phone, "QR scanned");
    state.add_login(token, phone);
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PairBody {
    code: String,
}

/// The phone's user types the pairing code a page shows: that page logs in as the number the code
/// was asked for. Any other code is refused.
async fn pair(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, SimError> {
    let body: PairBody = parse_json(&body, false)?;
    let token = uuid::Uuid::new_v4().to_string();
    let command_token = token.clone();
    let phone = state
        .send_to_pairing(&body.code, move |phone| PageCommand::Pair { token: command_token, phone })
        .ok_or(SimError::WrongPairingCode)?;
    tracing::info!(%phone, "pairing code accepted");
    state.add_login(token, phone.clone());
    Ok(Json(json!({"ok": true, "phone": phone})))
}

/// The phone unlinks every device: logins are revoked and open pages log out.
async fn logout(State(state): State<AppState>) -> Result<Json<Value>, SimError> {
    if state.revoke_all_logins() == 0 {
        return Err(SimError::NotLoggedIn);
    }
    let pages = state.broadcast(&PageCommand::Logout);
    tracing::info!(pages, "device logged out from the phone");
    Ok(Json(json!({"ok": true})))
}

/// WhatsApp Web is opened in another browser: every CONNECTED page goes CONFLICT.
async fn conflict(State(state): State<AppState>) -> Result<Json<Value>, SimError> {
    if state.send_to_all_in("CONNECTED", &PageCommand::Conflict) == 0 {
        return Err(SimError::NoConnectedPage);
    }
    Ok(Json(json!({"ok": true})))
}

async fn messages(State(state): State<AppState>) -> Json<Vec<RecordedMessage>> {
    Json(state.messages())
}

async fn sim_state(State(state): State<AppState>) -> Json<Value> {
    let (report, pages) = state.latest_report();
    let report = report.unwrap_or_default();
    Json(json!({
        "socket_state": report.socket_state,
        "ref": report.qr_ref,
        "qr": report.qr,
        "phone": report.phone,
        "pairing_code": report.pairing_code,
        "pairing_phone": report.pairing_phone,
        "pages": pages,
    }))
}

async fn patch_config(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, SimError> {
    let patch: ConfigPatch = parse_json(&body, false)?;
    let (unknown_numbers, send_latency_ms) = state.patch_config(patch);
    Ok(Json(json!({"unknown_numbers": unknown_numbers, "send_latency_ms": send_latency_ms})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IncomingBody {
    from: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default, rename = "type")]
    message_type: Option<String>,
    #[serde(default)]
    caption: Option<String>,
}

/// Someone writes to the logged-in number: the synced pages get a new message (text for `chat`,
/// else only the type and the caption, if any).
async fn incoming(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, SimError> {
    let body: IncomingBody = parse_json(&body, false)?;
    if body.from.is_empty() || !body.from.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SimError::BadRequest(format!("`from` must be digits, got {:?}", body.from)));
    }
    let message_type = body.message_type.unwrap_or_else(|| "chat".to_owned());
    if message_type.is_empty() || !message_type.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(SimError::BadRequest(format!(
            "`type` must be a WhatsApp type (chat, image, ...), got {message_type:?}"
        )));
    }
    if message_type == "chat" && body.text.as_deref().is_none_or(str::is_empty) {
        return Err(SimError::BadRequest("a `chat` message needs a non-empty `text`".to_owned()));
    }
    let record = state.deliver_incoming(&body.from, &message_type, body.text, body.caption)?;
    tracing::info!(id = %record.message_id, from = %record.from, message_type, "incoming message delivered");
    Ok(Json(json!({"ok": true, "message_id": record.message_id, "chat": record.chat})))
}

async fn list_incoming(State(state): State<AppState>) -> Json<Vec<IncomingRecord>> {
    Json(state.incoming())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    message_id: String,
    ack: String,
}

/// Sets the ack of a sent message: `error`, `pending`, `sent`, `delivered`, `read`, `played`.
async fn ack(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, SimError> {
    let body: AckBody = parse_json(&body, false)?;
    let levels = ["error", "pending", "sent", "delivered", "read", "played"];
    let level = levels.iter().position(|l| *l == body.ack).ok_or_else(|| {
        SimError::BadRequest(format!("`ack` must be one of {}, got {:?}", levels.join(", "), body.ack))
    })?;
    let level = i64::try_from(level).unwrap_or(0) - 1;
    let pages = state.set_ack(&body.message_id, level, false)?;
    Ok(Json(json!({"ok": true, "message_id": body.message_id, "ack": body.ack, "pages": pages})))
}
