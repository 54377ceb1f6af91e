//! What one socket may say (`authenticate`, `subscribe-session`, `request-qr`) and what it is
//! answered; and the periodic re-check that ends the sockets of disabled users or stale tokens.
//!
//! A socket proves who it is with `authenticate {token}`, checked exactly as a bearer header is
//! (signature, expiry, user enabled, credential version: `auth::extractor::authenticate_token`);
//! a refused token gets `connection-error` and is disconnected. Each later event checks the token
//! again (from the auth cache: no store read within `AUTH_CACHE_TTL_MS`). Subscribers join the
//! session's room; admins also its QR room (a `client` user never gets a QR).

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use shared_contracts::{ADMIN_SESSION, ErrorCode, Role};
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};

use super::events::{
    AUTHENTICATE, AUTHENTICATED, AuthenticateBody, Authenticated, CONNECTION_ERROR, ConnectionError,
    InstanceBody, QR_CODE, QR_ROOM, QrCode, REQUEST_QR, SESSION_ROOM, SESSION_STATUS, SUBSCRIBE_SESSION,
    SessionStatus, parse,
};
use crate::auth::extractor::authenticate_token;
use crate::db::User;
use crate::error::ApiError;
use crate::state::AppState;

/// Who a socket authenticated as, kept in its extensions.
#[derive(Clone)]
struct Session {
    token: Arc<str>,
}

/// Registers the socket's event handlers (the namespace's connect handler).
pub fn register(s: &SocketRef, state: &AppState) {
    let st = state.clone();
    s.on(AUTHENTICATE, move |s: SocketRef, TryData(data): TryData<Value>| {
        let st = st.clone();
        async move { authenticate(&s, &st, data.unwrap_or_default()).await }
    });
    let st = state.clone();
    s.on(SUBSCRIBE_SESSION, move |s: SocketRef, TryData(data): TryData<Value>| {
        let st = st.clone();
        async move { subscribe(&s, &st, data.unwrap_or_default()).await }
    });
    let st = state.clone();
    s.on(REQUEST_QR, move |s: SocketRef, TryData(data): TryData<Value>| {
        let st = st.clone();
        async move { request_qr(&s, &st, data.unwrap_or_default()).await }
    });
    s.on_fallback(async |s: SocketRef, socketioxide::extract::Event(event): socketioxide::extract::Event| {
        let error = ApiError::Coded {
            code: ErrorCode::NotFound,
            message: format!("the hub has no socket.io event `{event}`"),
            detail: json!({ "event": event }),
            hint: format!("Send one of `{AUTHENTICATE}`, `{SUBSCRIBE_SESSION}`, `{REQUEST_QR}`"),
        };
        send_error(&s, &error);
    });
}

async fn authenticate(s: &SocketRef, state: &AppState, data: Value) {
    let checked = match parse::<AuthenticateBody>(AUTHENTICATE, "token", data) {
        Ok(body) => authenticate_token(&body.token, state).await.map(|user| (body.token, user)),
        Err(e) => Err(e),
    };
    match checked {
        Ok((token, user)) => {
            if user.role != Role::Admin {
                // A socket that re-authenticates as a client loses the QR it may have had.
                s.leave(QR_ROOM);
            }
            tracing::info!(socket = %s.id, user = %user.email, "socket.io client authenticated");
            s.extensions.insert(Session { token: token.into() });
            emit(s, AUTHENTICATED, &Authenticated { success: true });
        }
        Err(e) => {
            emit(s, AUTHENTICATED, &Authenticated { success: false });
            refuse(s.clone(), &e);
        }
    }
}

async fn subscribe(s: &SocketRef, state: &AppState, data: Value) {
    let Some(user) = checked_user(s, state).await else { return };
    if let Err(e) = parse::<InstanceBody>(SUBSCRIBE_SESSION, "instance_id", data).and_then(known_instance) {
        return send_error(s, &e);
    }
    s.join(SESSION_ROOM);
    let admin = user.role == Role::Admin;
    if admin {
        s.join(QR_ROOM);
    }
    // The current status once; the fan-out sends every change from now on.
    let Some(current) = state.feed.live_status() else {
        return emit(s, CONNECTION_ERROR, &ConnectionError::feed_down());
    };
    emit(s, SESSION_STATUS, &SessionStatus::of(&current.body));
    if let Some(qr) = QrCode::of(&current.body).filter(|_| admin) {
        emit(s, QR_CODE, &qr);
    }
}

async fn request_qr(s: &SocketRef, state: &AppState, data: Value) {
    let Some(user) = checked_user(s, state).await else { return };
    if let Err(e) = parse::<InstanceBody>(REQUEST_QR, "instance_id", data).and_then(known_instance) {
        return send_error(s, &e);
    }
    if user.role != Role::Admin {
        let e = ApiError::Forbidden {
            message: format!(
                "the QR links the company's WhatsApp account and is shown to administrators only ({} is a client)",
                user.email
            ),
            hint: "An administrator links the WhatsApp session; session-status tells you when it is connected",
        };
        return send_error(s, &e);
    }
    let Some(current) = state.feed.live_status() else {
        return emit(s, CONNECTION_ERROR, &ConnectionError::feed_down());
    };
    match QrCode::of(&current.body) {
        Some(qr) => emit(s, QR_CODE, &qr),
        None => send_error(
            s,
            &ApiError::Coded {
                code: ErrorCode::NoQr,
                message: format!("the session shows no QR in state {}", current.body.state),
                detail: json!({ "state": current.body.state }),
                hint: "Start a connect (POST /api/admin/whatsapp/connect); qr-code follows when the QR shows"
                    .into(),
            },
        ),
    }
}

/// `admin` is the one session.
fn known_instance(body: InstanceBody) -> Result<(), ApiError> {
    if body.instance_id == ADMIN_SESSION {
        return Ok(());
    }
    Err(ApiError::Coded {
        code: ErrorCode::NotFound,
        message: format!("no session {:?}: the hub has one WhatsApp session", body.instance_id),
        detail: json!({ "field": "instance_id", "value": body.instance_id }),
        hint: format!("Use instance_id \"{ADMIN_SESSION}\""),
    })
}

/// The socket's user, with its token checked again. Not authenticated yet: a `connection-error`
/// (the socket stays, it may authenticate); a token no longer good: refused and disconnected.
async fn checked_user(s: &SocketRef, state: &AppState) -> Option<Arc<User>> {
    let Some(session) = s.extensions.get::<Session>() else {
        let e = ApiError::Unauthorized {
            message: "this socket has not authenticated".into(),
            hint: "Send `authenticate` with {\"token\": \"<JWT from POST /auth/login>\"} first",
        };
        send_error(s, &e);
        return None;
    };
    match authenticate_token(&session.token, state).await {
        Ok(user) => Some(user),
        Err(e) => {
            refuse(s.clone(), &e);
            None
        }
    }
}

/// Every authenticated socket's token checked again (run periodically): a user disabled, or whose
/// password changed, or whose token expired since, is disconnected; one no longer admin leaves the
/// QR room.
pub async fn recheck_all(io: &SocketIo, state: &AppState) {
    for s in io.sockets() {
        let Some(session) = s.extensions.get::<Session>() else { continue };
        match authenticate_token(&session.token, state).await {
            Ok(user) if user.role != Role::Admin => s.leave(QR_ROOM),
            Ok(_) => {}
            Err(e) => refuse(s, &e),
        }
    }
}

/// `connection-error`, then the socket is disconnected.
fn refuse(s: SocketRef, e: &ApiError) {
    tracing::info!(socket = %s.id, code = %e.code(), error.message = %e, "socket.io client refused");
    s.extensions.remove::<Session>();
    send_error(&s, e);
    if let Err(e) = s.disconnect() {
        tracing::debug!(error.message = %e, "could not disconnect a refused socket.io client");
    }
}

fn send_error(s: &SocketRef, e: &ApiError) {
    emit(s, CONNECTION_ERROR, &ConnectionError::from(e));
}

fn emit<T: Serialize + ?Sized>(s: &SocketRef, event: &str, data: &T) {
    if let Err(e) = s.emit(event, data) {
        // The socket closed or its buffer is full (a client that does not read).
        tracing::debug!(socket = %s.id, event, error.message = %e, "could not emit to a socket.io client");
    }
}
