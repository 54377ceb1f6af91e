//! `GET /health` (no auth) and `GET /metrics`.
//!
//! `/health` answers 200 with `status: "ok"` when the database and the session-manager answer, 200
//! with `"degraded"` when only the session-manager is down (logins and the admin page still work),
//! and 503 with `"degraded"` when the database is down (nobody can be authenticated, so a load
//! balancer should stop sending traffic here).
//!
//! Anyone gets that liveness answer (`status`, `service`, `timestamp`). The checks (database
//! backend, the session-manager's URL, error text) are shown only to an admin (bearer token) or a
//! direct loopback caller: a peer on 127.0.0.1/::1 whose request carries no `X-Forwarded-For` /
//! `X-Real-IP`, i.e. an operator's `curl` on the host, not a visitor coming through nginx.
//! `/api/health` is the same route (operators' runbooks curl it).

use std::time::{Duration, Instant};

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared_contracts::Role;
use shared_contracts::{DatabaseCheck, HubChecks, ManagerCheck};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// `/health` must answer quickly even when a dependency hangs.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(api_health)).routes(routes!(metrics))
}

/// The health answer: `checks` only for an admin or a direct loopback caller.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "service": "central-hub", "timestamp": "2024-02-25T15:55:43Z"}))]
pub struct HealthAnswer {
    /// `ok`, or `degraded` when the database or the session-manager is down.
    pub status: String,
    pub service: String,
    /// RFC 3339.
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<HubChecks>,
}

/// A caller on this host talking to the hub directly (not relayed by a proxy).
fn is_direct_loopback(peer: SocketAddr, headers: &HeaderMap) -> bool {
    peer.ip().is_loopback() && !headers.contains_key("x-forwarded-for") && !headers.contains_key("x-real-ip")
}

/// Liveness and dependency checks (no authentication).
#[utoipa::path(get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "The database answers (`status` says whether the session-manager does too)", body = HealthAnswer),
        (status = 503, description = "The database is down", body = HealthAnswer),
    ))]
async fn health(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let detailed = is_direct_loopback(peer, &headers)
        || (headers.contains_key(header::AUTHORIZATION)
            && crate::auth::extractor::authenticate(&headers, &state)
                .await
                .is_ok_and(|user| user.role == Role::Admin));
    let (database, session_manager) = tokio::join!(check_database(&state), check_manager(&state));
    let db_ok = database.ok;
    let status = if db_ok && session_manager.ok { "ok" } else { "degraded" };
    let code = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = HealthAnswer {
        status: status.to_owned(),
        service: "central-hub".to_owned(),
        timestamp: crate::clock::now_rfc3339(),
        checks: detailed.then_some(HubChecks { database, session_manager }),
    };
    (code, Json(body)).into_response()
}

/// `/health` under `/api` (operators' runbooks curl it).
#[utoipa::path(get, path = "/api/health", tag = "health",
    responses(
        (status = 200, description = "The database answers", body = HealthAnswer),
        (status = 503, description = "The database is down", body = HealthAnswer),
    ))]
async fn api_health(state: State<AppState>, peer: ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    health(state, peer, headers).await
}

async fn check_database(state: &AppState) -> DatabaseCheck {
    let started = Instant::now();
    let result = match tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("the database did not answer within {} s", CHECK_TIMEOUT.as_secs())),
    };
    DatabaseCheck {
        ok: result.is_ok(),
        backend: state.store.backend().as_str().to_owned(),
        latency_ms: result.is_ok().then(|| started.elapsed().as_millis() as u64),
        error: result.err(),
    }
}

async fn check_manager(state: &AppState) -> ManagerCheck {
    let url = state.manager.base_url().to_owned();
    let started = Instant::now();
    let result = match tokio::time::timeout(CHECK_TIMEOUT, state.manager.status_once()).await {
        Ok(r) => r.map_err(|e| format!("{e}. {}", e.hint())),
        Err(_) => Err(format!(
            "the session-manager at {url} did not answer GET /status within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    };
    match result {
        Ok(status) => ManagerCheck {
            ok: true,
            url,
            latency_ms: Some(started.elapsed().as_millis() as u64),
            state: Some(status.state),
            error: None,
            whatsapp: status.whatsapp.map(|w| w.summary),
        },
        Err(error) => {
            ManagerCheck { ok: false, url, latency_ms: None, state: None, error: Some(error), whatsapp: None }
        }
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render() + &state.webhooks.metrics.render(),
    )
}
