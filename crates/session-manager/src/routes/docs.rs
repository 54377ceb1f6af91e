//! `GET /openapi.json`: the manager's OpenAPI 3.1 document (built by `crate::openapi` from the same
//! registration as the router; no token needed: it holds no secret).

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The document as JSON. `crate::app` adds it as an extension: the document is built from the
/// routes, this one included, so this module cannot build it itself without an import cycle.
#[derive(Clone)]
pub struct OpenApiJson(pub Bytes);

/// This document: every route, its parameters, bodies and error answers.
#[utoipa::path(get, path = "/openapi.json", tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json(Extension(document): Extension<OpenApiJson>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], document.0).into_response()
}
