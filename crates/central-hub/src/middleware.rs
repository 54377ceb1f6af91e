//! The request layer: request id (kept or created, echoed back, forwarded upstream), one log line
//! per request with user, route, status and latency (at DEBUG for probes and successful status
//! polls, which arrive thousands of times a second; at INFO or WARN for everything else), and the
//! request counters.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use service_kit::RequestContext;

use crate::state::AppState;

/// Health checks and metrics scrapes: polled constantly, logged at DEBUG whatever they answer.
fn is_probe(route: &str) -> bool {
    matches!(route, "/health" | "/api/health" | "/metrics")
}

/// The status polls of the admin page and of client apps (every second or so per open page, and
/// served from memory): a success is logged at DEBUG, so the INFO log keeps the requests that do
/// something. Their failures, and every other request, stay at INFO (5xx at WARN).
fn is_status_poll(route: &str) -> bool {
    matches!(route, "/api/admin/whatsapp/status" | "/api/whatsapp/{cliente_id}/status")
}

pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let context = RequestContext::from_headers(request.headers());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();

    let mut response = context.clone().scope(next.run(request)).await;

    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_millis() as u64;
    let (request_id, user) = (&context.request_id, context.user.get().map_or("-", String::as_str));
    state.metrics.request(&route, crate::metrics::method_label(&method), status);
    if is_probe(&route) || (is_status_poll(&route) && method == Method::GET && status < 400) {
        tracing::debug!(%request_id, %method, %path, %route, status, latency_ms, user, "request");
    } else if status >= 500 {
        tracing::warn!(%request_id, %method, %path, %route, status, latency_ms, user, "request");
    } else {
        tracing::info!(%request_id, %method, %path, %route, status, latency_ms, user, "request");
    }
    context.stamp(&mut response);
    response
}
