//! Admin routes on the one WhatsApp session: status (from the event stream's cache), connect,
//! disconnect, clear-session, and the live event stream for the admin page. Every action is
//! written to the audit log with its result.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::json;
use shared_contracts::{
    ClearSessionResponse, ConnectRequest, ConnectResponse, DisconnectRequest, DisconnectResponse, ErrorBody,
    StatusBody,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AdminUser;
use crate::db::{AuditEntry, User};
use crate::error::{ApiError, OptionalJson};
use crate::feed::FeedSnapshot;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(connect))
        .routes(routes!(disconnect))
        .routes(routes!(clear_session))
        .routes(routes!(events))
}

/// The session's status, with its QR while one is shown.
#[utoipa::path(get, path = "/api/admin/whatsapp/status", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "The session's status", body = StatusBody),
        (status = 502, description = "SESSION_MANAGER_UNREACHABLE or SESSION_MANAGER_ERROR", body = ErrorBody),
        (status = 504, description = "SESSION_MANAGER_TIMEOUT", body = ErrorBody),
    ))]
async fn status(State(state): State<AppState>, AdminUser(_): AdminUser) -> Result<Response, ApiError> {
    Ok(super::json_response(super::current_status_json(&state, true, None).await?))
}

/// Starts the session. The body is optional: `{"pairing_phone":"<digits>"}` links with a code
/// typed on that phone.
#[utoipa::path(post, path = "/api/admin/whatsapp/connect", tag = "admin", security(("bearer" = [])),
    request_body(content = Option<ConnectRequest>, description = "Optional"),
    responses(
        (status = 200, description = "Connecting, or already connected", body = ConnectResponse),
        (status = 400, description = "VALIDATION_ERROR: not the body expected", body = ErrorBody),
        (status = 409, description = "PAIRING_UNAVAILABLE or PROFILE_LOCKED (from the session-manager)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many connects (see Retry-After)", body = ErrorBody),
        (status = 503, description = "The browser or the page failed (from the session-manager)", body = ErrorBody),
        (status = 502, description = "SESSION_MANAGER_UNREACHABLE or SESSION_MANAGER_ERROR", body = ErrorBody),
        (status = 504, description = "SESSION_MANAGER_TIMEOUT", body = ErrorBody),
    ))]
async fn connect(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    OptionalJson(body): OptionalJson<ConnectRequest>,
) -> Result<Response, ApiError> {
    let result = state.manager.connect(&body).await;
    let detail = body.pairing_phone.as_ref().map(|phone| json!({ "pairing_phone": phone }).to_string());
    audited(&state, &admin, "whatsapp.connect", detail, result).await
}

/// Stops the session; `{"logout": true}` also unlinks the device. The body is optional.
#[utoipa::path(post, path = "/api/admin/whatsapp/disconnect", tag = "admin", security(("bearer" = [])),
    request_body(content = Option<DisconnectRequest>, description = "Optional"),
    responses(
        (status = 200, description = "Disconnected", body = DisconnectResponse),
        (status = 400, description = "VALIDATION_ERROR: not the body expected", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
        (status = 502, description = "SESSION_MANAGER_UNREACHABLE or SESSION_MANAGER_ERROR", body = ErrorBody),
        (status = 504, description = "SESSION_MANAGER_TIMEOUT", body = ErrorBody),
    ))]
async fn disconnect(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    OptionalJson(body): OptionalJson<DisconnectRequest>,
) -> Result<Response, ApiError> {
    let result = state.manager.disconnect(&body).await;
    let detail = Some(json!({ "logout": body.logout }).to_string());
    audited(&state, &admin, "whatsapp.disconnect", detail, result).await
}

/// Stops the session and moves its profile aside (the next connect shows a QR).
#[utoipa::path(post, path = "/api/admin/whatsapp/clear-session", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Cleared", body = ClearSessionResponse),
        (status = 409, description = "PROFILE_LOCKED (from the session-manager)", body = ErrorBody),
        (status = 502, description = "SESSION_MANAGER_UNREACHABLE or SESSION_MANAGER_ERROR", body = ErrorBody),
        (status = 504, description = "SESSION_MANAGER_TIMEOUT", body = ErrorBody),
    ))]
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
#[utoipa::path(get, path = "/api/admin/whatsapp/events", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Server-Sent Events: `upstream` then `status` (a StatusBody) on every change", content_type = "text/event-stream", body = String)))]
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
