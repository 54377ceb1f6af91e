//! `/status`, `/qr`, `/qr-code`, all from memory (`/events` is `events.rs`).

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared_contracts::{ErrorBody, QrInfo, StatusBody};

use super::{AppState, Authorized};
use crate::error::Error;
use crate::qr;
use crate::session::Snapshot;

/// The full status with the token; without it, the same minus the QR and the pairing code (they are the login).
#[utoipa::path(get, path = "/status", tag = "session", security((), ("bearer" = [])),
    responses((status = 200, description = "The session's status", body = StatusBody)))]
pub async fn status(
    State(state): State<AppState>,
    authorized: Option<Extension<Authorized>>,
) -> Json<StatusBody> {
    let mut status = state.session.status();
    if !authorized.is_some_and(|Extension(Authorized(yes))| yes) {
        status.qr = None;
        status.pairing_code = None;
    }
    Json(status)
}

fn current_qr(state: &AppState) -> Result<QrInfo, Error> {
    let status = state.session.status();
    status.qr.ok_or(Error::NoQr { state: status.state })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QrQuery {
    /// `png` (default) or `ascii`.
    #[serde(default)]
    format: Option<String>,
}

/// The QR as the PNG rendered when it arrived, or drawn as text (`?format=ascii`).
#[utoipa::path(get, path = "/qr", tag = "session", security(("bearer" = [])), params(QrQuery),
    responses(
        (status = 200, description = "The QR", content(
            (Vec<u8> = "image/png"),
            (String = "text/plain; charset=utf-8"),
        )),
        (status = 400, description = "VALIDATION_ERROR: unknown format", body = ErrorBody),
        (status = 404, description = "NO_QR: no QR in the current state", body = ErrorBody),
    ))]
pub async fn qr(State(state): State<AppState>, Query(query): Query<QrQuery>) -> Result<Response, Error> {
    let Snapshot { status, qr_png } = state.session.snapshot();
    let (Some(info), Some(png)) = (status.qr, qr_png) else {
        return Err(Error::NoQr { state: status.state });
    };
    match query.format.as_deref() {
        None | Some("png") => Ok((
            [(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")],
            Bytes::from_owner(png),
        )
            .into_response()),
        Some("ascii") => {
            let text = qr::ascii(&info.url)?;
            Ok((
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
                text,
            )
                .into_response())
        }
        Some(other) => Err(Error::validation(format!("format={other} is not supported: use png or ascii"))),
    }
}

/// The QR as a data-URL PNG with its raw string.
#[utoipa::path(get, path = "/qr-code", tag = "session", security(("bearer" = [])),
    responses(
        (status = 200, description = "The QR", body = QrInfo),
        (status = 404, description = "NO_QR: no QR in the current state", body = ErrorBody),
    ))]
pub async fn qr_code(State(state): State<AppState>) -> Result<Json<QrInfo>, Error> {
    current_qr(&state).map(Json)
}
