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

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use shared_contracts::Role;
use shared_contracts::{DatabaseCheck, HubChecks, HubHealth, ManagerCheck};

use crate::state::AppState;

/// `/health` must answer quickly even when a dependency hangs.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/api/health", get(health))
        .route("/metrics", get(metrics))
}

/// A caller on this host talking to the hub directly (not relayed by a proxy).
fn is_direct_loopback(peer: SocketAddr, headers: &HeaderMap) -> bool {
    peer.ip().is_loopback() && !headers.contains_key("x-forwarded-for") && !headers.contains_key("x-real-ip")
}

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
    if !detailed {
        let body =
            json!({ "status": status, "service": "central-hub", "timestamp": crate::clock::now_rfc3339() });
        return (code, Json(body)).into_response();
    }
    let body = HubHealth {
        status: status.to_owned(),
        service: "central-hub".to_owned(),
        timestamp: crate::clock::now_rfc3339(),
        checks: HubChecks { database, session_manager },
    };
    (code, Json(body)).into_response()
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

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render() + &state.webhooks.metrics.render(),
    )
}
