//! The request layer: request id (kept or created, echoed back, forwarded upstream), one log line
//! per request with user, route, status and latency (at DEBUG for probes and successful status
//! polls, which arrive thousands of times a second; at INFO or WARN for everything else), and the
//! request counters.
//!
//! The route, path and counters cost no allocation per request: the route is axum's shared
//! `MatchedPath`, the path stays in the request's `Uri` (a reference count) and is formatted only if
//! a log line is written at the level enabled, and the counters are atomics (`metrics.rs`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use service_kit::RequestContext;

use crate::metrics::Metrics;

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

pub async fn observe(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let context = RequestContext::from_headers(request.headers());
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let uri = request.uri().clone();

    let mut response = context.clone().scope(next.run(request)).await;

    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_millis() as u64;
    let (request_id, user) = (&context.request_id, context.user.get().map_or("-", String::as_str));
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let path = uri.path();
    metrics.request(route, crate::metrics::method_label(&method), status);
    if is_probe(route) || (is_status_poll(route) && method == Method::GET && status < 400) {
        tracing::debug!(%request_id, %method, %path, %route, status, latency_ms, user, "request");
    } else if status >= 500 {
        tracing::warn!(%request_id, %method, %path, %route, status, latency_ms, user, "request");
    } else {
        tracing::info!(%request_id, %method, %path, %route, status, latency_ms, user, "request");
    }
    context.stamp(&mut response);
    response
}
