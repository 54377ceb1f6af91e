//! `/health` (never touches the browser) and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use shared_contracts::HealthBody;

use super::AppState;
use crate::browser::process;
use crate::telemetry::now_rfc3339;

/// Liveness, plus the WhatsApp Web build of the last page loaded and what the bridge found in it.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "The manager answers", body = HealthBody)))]
pub async fn health(State(state): State<AppState>) -> Json<HealthBody> {
    Json(HealthBody {
        status: "ok".into(),
        service: "session-manager".into(),
        timestamp: now_rfc3339(),
        whatsapp: state.session.status().whatsapp,
    })
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "health", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let profile = state.session.profile.clone();
    // /proc reads are blocking file I/O: keep them off the async workers.
    let (pss, rss) = tokio::task::spawn_blocking(move || {
        (process::tree_pss_bytes(&profile), process::own_rss_bytes().unwrap_or(0))
    })
    .await
    .unwrap_or((0, 0));
    let body = state.session.metrics.render(state.session.status().state, pss, rss);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}
