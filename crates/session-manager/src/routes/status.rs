//! `/status`, `/qr`, `/qr-code`, all from memory (`/events` is `events.rs`).

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared_contracts::{QrInfo, StatusBody};

use super::{AppState, Authorized};
use crate::error::Error;
use crate::qr;
use crate::session::Snapshot;

/// The full status with the token; without it, the same minus the QR and the pairing code (they are the login).
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

#[derive(Debug, Deserialize)]
pub struct QrQuery {
    #[serde(default)]
    format: Option<String>,
}

/// The QR as the PNG rendered when it arrived, or drawn as text (`?format=ascii`).
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

pub async fn qr_code(State(state): State<AppState>) -> Result<Json<QrInfo>, Error> {
    current_qr(&state).map(Json)
}
