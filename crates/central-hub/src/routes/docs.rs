//! `GET /api/openapi.json`: the hub's OpenAPI 3.1 document (built by `crate::openapi` from the
//! same registration as the router).

use axum::Extension;
use axum::body::Bytes;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The document as JSON. `startup::app` adds it as an extension: the document is built from the
/// routes, this one included, so this module cannot build it itself without an import cycle.
#[derive(Clone)]
pub struct OpenApiJson(pub Bytes);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This document: every route, its parameters, bodies and error answers (no authentication).
#[utoipa::path(get, path = "/api/openapi.json", tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
async fn openapi_json(Extension(document): Extension<OpenApiJson>) -> Response {
    super::json_response(document.0)
}
