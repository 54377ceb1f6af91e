//! Admin routes on the one WhatsApp session: status (from the event stream's cache), connect,
//! disconnect, clear-session, and the live event stream for the admin page. Every action is
//! written to the audit log with its result.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::json;
use shared_contracts::{ConnectRequest, DisconnectRequest};

use crate::auth::AdminUser;
use crate::db::{AuditEntry, User};
use crate::error::{ApiError, OptionalJson};
use crate::feed::FeedSnapshot;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/whatsapp/status", get(status))
        .route("/api/admin/whatsapp/connect", post(connect))
        .route("/api/admin/whatsapp/disconnect", post(disconnect))
        .route("/api/admin/whatsapp/clear-session", post(clear_session))
        .route("/api/admin/whatsapp/events", get(events))
}

async fn status(State(state): State<AppState>, AdminUser(_): AdminUser) -> Result<Response, ApiError> {
    Ok(super::json_response(super::current_status_json(&state, true, None).await?))
}

/// The body is optional: `{"pairing_phone":"<digits>"}` links with a code typed on that phone.
async fn connect(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    OptionalJson(body): OptionalJson<ConnectRequest>,
) -> Result<Response, ApiError> {
    let result = state.manager.connect(&body).await;
    let detail = body.pairing_phone.as_ref().map(|phone| json!({ "pairing_phone": phone }).to_string());
    audited(&state, &admin, "whatsapp.connect", detail, result).await
}

async fn disconnect(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    OptionalJson(body): OptionalJson<DisconnectRequest>,
) -> Result<Response, ApiError> {
    let result = state.manager.disconnect(&body).await;
    let detail = Some(json!({ "logout": body.logout }).to_string());
    audited(&state, &admin, "whatsapp.disconnect", detail, result).await
}

async fn clear_session(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
) -> Result<Response, ApiError> {
    let result = state.manager.clear_session().await;
    audited(&state, &admin, "whatsapp.clear-session", None, result).await
}

/// Records the action and its outcome, then answers with the manager's body or error.
async fn audited<T: serde::Serialize>(
    state: &AppState,
    admin: &User,
    action: &str,
    detail: Option<String>,
    result: Result<T, crate::client::ClientError>,
) -> Result<Response, ApiError> {
    let entry = AuditEntry {
        actor_user_id: Some(admin.id),
        actor_email: admin.email.to_string(),
        action: action.to_owned(),
        target: Some(shared_contracts::ADMIN_SESSION.to_owned()),
        result: match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code().as_str().to_owned(),
        },
        detail: match (&result, detail) {
            (Err(e), _) => Some(e.to_string()),
            (Ok(_), detail) => detail,
        },
    };
    // The action already happened: a failed audit write is logged loudly but does not hide its result.
    if let Err(e) = state.store.record_audit(entry).await {
        tracing::error!(error.message = %e, action, admin = %admin.email, "could not write the audit log");
    }
    tracing::info!(action, admin = %admin.email, ok = result.is_ok(), "admin action");
    Ok(Json(result?).into_response())
}

/// Server-Sent Events, on subscribe and on every change: `upstream` (`{"connected":bool,"url"}`,
/// the hub's own subscription to the manager) then, while it is connected, `status` (a full StatusBody).
async fn events(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut rx = state.feed.subscribe();
    rx.mark_changed();
    let url = state.manager.base_url().to_owned();
    let shutdown = state.shutdown.clone();
    let snapshots = stream::unfold(rx, move |mut rx| {
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                () = shutdown.cancelled() => None,
                changed = rx.changed() => {
                    changed.ok()?;
                    let snapshot = rx.borrow_and_update().clone();
                    Some((snapshot, rx))
                }
            }
        }
    });
    let events = snapshots.flat_map(move |snapshot: FeedSnapshot| {
        let mut out = vec![Event::default().event("upstream").json_data(json!({
            "connected": snapshot.live,
            "url": url,
        }))];
        // A status from a dead stream is stale: the `upstream` event says so, and the next live
        // status follows when the stream is back.
        if let (true, Some(status)) = (snapshot.live, &snapshot.status) {
            out.push(Ok(Event::default().event("status").data(status.json_str())));
        }
        stream::iter(out.into_iter().filter_map(Result::ok).map(Ok))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
