//! The hub's routes, one module per resource.

pub mod admin;
pub mod admin_page;
pub mod auth;
pub mod docs;
pub mod health;
pub mod whatsapp;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};

use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::feed::{with_cliente_id, without_qr};
use crate::state::AppState;

/// Every route of the hub, each registered with its `#[utoipa::path]` operation through
/// `routes!`: the router and the OpenAPI document (`crate::openapi`) come from this one
/// registration. A route added with a plain `.route(...)` is missing from the document, and the
/// route-coverage test (`tests/api/openapi.rs`) fails.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(admin::router())
        .merge(admin_page::router())
        .merge(whatsapp::router())
        .merge(crate::campaigns::routes::router())
        .merge(crate::inbound::routes::router())
        .merge(crate::webhooks::routes::router())
        .merge(docs::router())
}

/// [`api`]'s routes, with the JSON 404 and 405 answers.
pub fn router() -> Router<AppState> {
    Router::from(api()).fallback(not_found).method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound { method: method.to_string(), path: uri.path().to_owned() }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed { method: method.to_string(), path: uri.path().to_owned() }
}

/// The session's status as JSON, with its QR only when `with_qr` (admins) and, for a client route,
/// its `cliente_id`: from the event stream's cache when the stream is live (the JSON serialized when
/// it arrived, reference-counted `Bytes`, composed once per `cliente_id`: no per-poll
/// serialization), else asked of the manager.
pub(crate) async fn current_status_json(
    state: &AppState,
    with_qr: bool,
    cliente_id: Option<u64>,
) -> Result<Bytes, ApiError> {
    if let Some(status) = state.feed.live_status() {
        state.metrics.status_from_cache();
        return Ok(match cliente_id {
            Some(id) => status.for_cliente(with_qr, id),
            None if with_qr => status.json.clone(),
            None => status.public_json.clone(),
        });
    }
    let body = state.manager.status().await?;
    let body = if with_qr { body } else { without_qr(&body) };
    let json = serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(match cliente_id {
        Some(id) => Bytes::from(with_cliente_id(&json, id)),
        None => Bytes::from(json),
    })
}

pub(crate) fn json_response(body: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.into()).into_response()
}
