//! The hub's OpenAPI 3.1 document, generated from the routes (`routes::api`): each handler's
//! `#[utoipa::path]`, plus what every operation shares: the bearer scheme (a JWT from
//! `POST /auth/login`) and the error answers of the authentication extractor and of a bug.

use axum::body::Bytes;
use service_kit::openapi::add_common_responses;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};

/// The name of the security scheme the protected operations require.
pub const BEARER: &str = "bearer";

/// The document the hub serves at `/api/openapi.json`.
pub fn document() -> OpenApi {
    let mut doc = crate::routes::api().into_openapi();
    doc.info = InfoBuilder::new()
        .title("central-hub")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The authenticated gateway of the WhatsApp session: logins, the session's admin and client \
             routes, campaigns and opt-outs. Every non-2xx answer is an `ErrorBody` with a stable `code` \
             (docs/contracts.md).",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("The `token` of `POST /auth/login`"))
                .build(),
        ),
    );
    let protected =
        |op: &utoipa::openapi::path::Operation| op.security.as_ref().is_some_and(|s| !s.is_empty());
    add_common_responses(
        &mut doc,
        protected,
        &[
            (401, "UNAUTHORIZED: no, bad or expired token"),
            (403, "FORBIDDEN: the role or the clienteId is not the caller's, or the account is disabled"),
            (503, "DATABASE_ERROR: the user store failed"),
        ],
    );
    add_common_responses(&mut doc, |_| true, &[(500, "INTERNAL_ERROR: a bug, reported with the request id")]);
    doc
}

/// [`document`] as JSON.
pub fn json() -> Bytes {
    // A tree of strings, numbers and string-keyed maps: serde_json cannot fail on it.
    Bytes::from(serde_json::to_vec(&document()).expect("the OpenAPI document serializes to JSON"))
}
