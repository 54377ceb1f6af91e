//! The HTTP API of ARCHITECTURE.md: one file per resource, the shared state, and the middleware
//! (request id, request log, Host check, bearer token).

mod control;
pub mod docs;
mod events;
mod health;
mod limit;
mod send;
mod status;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use service_kit::RequestContext;
use tokio::sync::watch;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::actor::SessionHandle;
use crate::config::bare_host;
use crate::error::Error;
use crate::idempotency::Idempotency;
use crate::inbound::Inbound;

pub use limit::RateLimiter;

/// Largest request body accepted (a 4096-character message fits many times).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub session: SessionHandle,
    /// SESSION_MANAGER_TOKEN (mandatory).
    pub token: Arc<str>,
    /// SESSION_MANAGER_ALLOWED_HOSTS and the bind host, as `config::bare_host` gives them.
    pub allowed_hosts: Arc<[String]>,
    /// SESSION_BACKUP_RETENTION, reported with each clear-session backup.
    pub backup_retention: u32,
    pub idempotency: Arc<Idempotency>,
    /// The inbound journal `/events` replays and follows.
    pub inbound: Arc<Inbound>,
    /// SEND_RATE_PER_MINUTE.
    pub send_limiter: Arc<RateLimiter>,
    /// CONNECT_RATE_PER_MINUTE: connects that start the browser.
    pub connect_limiter: Arc<RateLimiter>,
    /// Flips to true at shutdown so event streams end and the server can stop.
    pub shutting_down: watch::Receiver<bool>,
}

/// Every route, each registered with its `#[utoipa::path]` operation through `routes!`: the router
/// and the OpenAPI document (`crate::openapi`) come from this one registration. A route added with a
/// plain `.route(...)` is missing from the document, and the route-coverage test fails.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(health::metrics))
        .routes(routes!(status::status))
        .routes(routes!(status::qr))
        .routes(routes!(status::qr_code))
        .routes(routes!(events::events))
        .routes(routes!(control::connect))
        .routes(routes!(control::disconnect))
        .routes(routes!(control::clear_session))
        .routes(routes!(send::send))
        .routes(routes!(docs::openapi_json))
}

/// [`api`]'s routes with the JSON 404/405 answers, the body limit and the middleware.
pub fn router(state: AppState) -> Router {
    Router::from(api())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .layer(middleware::from_fn(request_context))
        .with_state(state)
}

async fn not_found(request: Request) -> Error {
    Error::NotFound { method: request.method().to_string(), path: request.uri().path().to_owned() }
}

async fn method_not_allowed(request: Request) -> Error {
    Error::MethodNotAllowed { method: request.method().to_string(), path: request.uri().path().to_owned() }
}

/// Keeps or creates `X-Request-ID`, makes it available to error bodies, and logs the request.
async fn request_context(request: Request, next: Next) -> Response {
    let context = RequestContext::from_headers(request.headers());
    let cliente_id = request
        .headers()
        .get(shared_contracts::CLIENTE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "request",
        request_id = %context.request_id,
        method = %request.method(),
        path = %request.uri().path(),
        cliente_id = %cliente_id,
    );
    // Reads that pollers repeat every few seconds log at DEBUG; everything else at INFO.
    let routine = request.method() == axum::http::Method::GET
        && matches!(request.uri().path(), "/status" | "/health" | "/metrics" | "/qr-code");
    let started = Instant::now();
    let mut response = context.clone().scope(next.run(request)).instrument(span.clone()).await;
    context.stamp(&mut response);
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_millis() as u64;
    span.in_scope(|| {
        if routine && status < 400 {
            tracing::debug!(status, latency_ms, "request");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
    });
    response
}

/// Answers only the configured host names, so a page that rebinds its DNS name to 127.0.0.1 cannot
/// reach the manager from a browser on this machine. A request without `Host` (HTTP/1.0) is no
/// browser's and passes.
async fn check_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(value) = request.headers().get(header::HOST) {
        let given = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if !state.allowed_hosts.contains(&bare_host(&given)) {
            return Error::HostNotAllowed { host: given }.into_response();
        }
    }
    next.run(request).await
}

/// Whether the request carried SESSION_MANAGER_TOKEN (for `/status`, which answers either way).
#[derive(Debug, Clone, Copy)]
pub struct Authorized(pub bool);

/// Every route but `/health`, `/openapi.json` and `/status` needs `Authorization: Bearer <SESSION_MANAGER_TOKEN>`
/// (the scheme in any case); `/status` without it leaves the QR out.
async fn require_token(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, given)| constant_time_eq(given.trim().as_bytes(), state.token.as_bytes()));
    match request.uri().path() {
        "/health" | "/openapi.json" => next.run(request).await,
        "/status" => {
            request.extensions_mut().insert(Authorized(authorized));
            next.run(request).await
        }
        _ if authorized => next.run(request).await,
        _ => Error::Unauthorized.into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `Json` whose rejections are our 400 VALIDATION_ERROR (or 413) bodies.
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await.map_err(rejected)?;
        Ok(AppJson(value))
    }
}

/// A body `Json` refused: too large for [`BODY_LIMIT_BYTES`] (413), or not the JSON expected (400,
/// naming the field when a value was refused by its type).
fn rejected(rejection: JsonRejection) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::PayloadTooLarge { limit: BODY_LIMIT_BYTES };
    }
    // A value the newtypes refused (`to`, `message`, `cliente_id`): their reason, naming the field.
    if let Some(field) = shared_contracts::field_error(&rejection) {
        return Error::Validation { message: field.message, detail: json!({ "field": field.field }) };
    }
    Error::Validation { message: rejection.body_text(), detail: json!({ "body": "invalid JSON" }) }
}

#[cfg(test)]
mod openapi_tests;
#[cfg(test)]
mod tests;
