//! The hub's routes, one module per resource.

pub mod admin;
pub mod admin_page;
pub mod auth;
pub mod health;
pub mod whatsapp;

use axum::Router;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::feed::CachedStatus;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(admin::router())
        .merge(admin_page::router())
        .merge(whatsapp::router())
        .merge(crate::campaigns::routes::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound { method: method.to_string(), path: uri.path().to_owned() }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed { method: method.to_string(), path: uri.path().to_owned() }
}

/// A status from the event stream, answered as the JSON serialized when it arrived (no per-poll
/// serialization; the body is a reference-counted `Bytes`).
pub(crate) fn cached_status_response(status: &CachedStatus) -> Response {
    json_response(status.json.clone())
}

pub(crate) fn json_response(body: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.into()).into_response()
}
