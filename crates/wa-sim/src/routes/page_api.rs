//! What the simulated page calls on its own server: its event stream, state reports, login checks,
//! number lookups and sent messages. Not for tests (they use the control API).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::parse_json;
use crate::error::SimError;
use crate::state::{AppState, PageCommand, PageReport, RecordedMessage};

/// How often an idle event stream carries a comment, so a closed browser is noticed quickly.
const KEEP_ALIVE: Duration = Duration::from_secs(1);

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/__sim/api/events", get(events))
        .route("/__sim/api/report", post(report))
        .route("/__sim/api/login", post(check_login))
        .route("/__sim/api/logout", post(logout))
        .route("/__sim/api/messages", post(record_message))
        .route("/__sim/api/exists", get(exists))
        .route("/__sim/api/history", post(history))
}

#[derive(Deserialize)]
struct PageQuery {
    page: String,
}

async fn events(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::unbounded_channel();
    // The receiver is alive: this send cannot fail.
    let _ = tx.send(PageCommand::Hello);
    let connection = state.connect_page(&query.page, tx);
    tracing::debug!(page = %query.page, "page connected");
    Sse::new(PageEvents { rx, state, page: query.page, connection })
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// One page's command stream; forgets the page when the connection goes away.
struct PageEvents {
    rx: mpsc::UnboundedReceiver<PageCommand>,
    state: AppState,
    page: String,
    connection: u64,
}

impl Stream for PageEvents {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|command| {
            command.map(|c| Ok(Event::default().data(serde_json::to_string(&c).unwrap_or_default())))
        })
    }
}

impl Drop for PageEvents {
    fn drop(&mut self) {
        tracing::debug!(page = %self.page, "page disconnected");
        self.state.disconnect_page(&self.page, self.connection);
    }
}

async fn report(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, SimError> {
    let report: PageReport = parse_json(&body, false)?;
    let synced = report.synced;
    state.record_report(report)?;
    if synced {
        state.flush_acks();
    }
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize, Default)]
struct TokenBody {
    token: String,
}

async fn check_login(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, SimError> {
    let body: TokenBody = parse_json(&body, false)?;
    let phone = state.login_phone(&body.token);
    Ok(Json(json!({"valid": phone.is_some(), "phone": phone})))
}

async fn logout(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, SimError> {
    let body: TokenBody = parse_json(&body, false)?;
    let revoked = state.revoke_login(&body.token);
    Ok(Json(json!({"ok": true, "revoked": revoked})))
}

#[derive(Deserialize, Default)]
struct MessageBody {
    token: String,
    to: String,
    text: String,
    id: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    chat: Option<String>,
}

async fn record_message(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, SimError> {
    let body: MessageBody = parse_json(&body, false)?;
    if state.login_phone(&body.token).is_none() {
        return Err(SimError::InvalidLogin);
    }
    if body.to.is_empty() || !body.to.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SimError::BadRequest(format!("`to` must be digits, got {:?}", body.to)));
    }
    let timestamp = now_ms();
    let message = RecordedMessage {
        to: body.to,
        text: body.text,
        id: body.id,
        timestamp,
        from: body.from,
        chat: body.chat,
        ack: crate::chats::ACK_SENT,
    };
    tracing::info!(to = %message.to, id = %message.id, from = ?message.from, "message recorded");
    let id = message.id.clone();
    state.record_message(message);
    state.track_sent(&id);
    state.schedule_acks(&id);
    tokio::time::sleep(Duration::from_millis(state.send_latency_ms())).await;
    Ok(Json(json!({"ok": true, "timestamp": timestamp})))
}

/// The messages a page loads at login (`isNewMsg: false`).
async fn history(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, SimError> {
    let body: TokenBody = parse_json(&body, false)?;
    if state.login_phone(&body.token).is_none() {
        return Err(SimError::InvalidLogin);
    }
    Ok(Json(json!({"messages": state.history()})))
}

#[derive(Deserialize)]
struct ExistsQuery {
    user: String,
}

async fn exists(State(state): State<AppState>, Query(query): Query<ExistsQuery>) -> Json<Value> {
    Json(json!({"exists": !state.is_unknown_number(&query.user), "lid": state.is_lid_number(&query.user)}))
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
