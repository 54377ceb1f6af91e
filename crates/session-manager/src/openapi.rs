//! The manager's OpenAPI 3.1 document, generated from the routes (`routes::api`): each handler's
//! `#[utoipa::path]`, plus what every operation shares: the bearer scheme (SESSION_MANAGER_TOKEN)
//! and the answers of the middleware (Host check, token) and of a bug.

use axum::body::Bytes;
use service_kit::openapi::add_common_responses;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};

/// The name of the security scheme the protected operations require.
pub const BEARER: &str = "bearer";

/// The document the manager serves at `/openapi.json`.
pub fn document() -> OpenApi {
    let mut doc = crate::routes::api().into_openapi();
    doc.info = InfoBuilder::new()
        .title("session-manager")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Holds the one WhatsApp Web session in a headless Chromium. Every non-2xx answer is an \
             `ErrorBody` with a stable `code` (docs/contracts.md).",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("SESSION_MANAGER_TOKEN"))
                .build(),
        ),
    );
    // Required (not optional like /status's): the token middleware answers 401 without it.
    let protected = |op: &utoipa::openapi::path::Operation| {
        op.security.as_ref().is_some_and(|list| !list.is_empty() && !list.iter().any(is_anonymous))
    };
    add_common_responses(&mut doc, protected, &[(401, "UNAUTHORIZED: no or wrong SESSION_MANAGER_TOKEN")]);
    add_common_responses(
        &mut doc,
        |_| true,
        &[
            (421, "HOST_NOT_ALLOWED: the Host header is not one SESSION_MANAGER_ALLOWED_HOSTS lists"),
            (500, "INTERNAL_ERROR: a bug, reported with the request id"),
        ],
    );
    doc
}

/// An empty security requirement: the operation may also be called without a token.
fn is_anonymous(requirement: &utoipa::openapi::security::SecurityRequirement) -> bool {
    requirement == &utoipa::openapi::security::SecurityRequirement::default()
}

/// [`document`] as JSON.
pub fn json() -> Bytes {
    // A tree of strings, numbers and string-keyed maps: serde_json cannot fail on it.
    Bytes::from(serde_json::to_vec(&document()).expect("the OpenAPI document serializes to JSON"))
}
