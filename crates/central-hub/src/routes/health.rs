//! `GET /health` (no auth) and `GET /metrics`.
//!
//! `/health` answers 200 with `status: "ok"` when the database and the session-manager answer, 200
//! with `"degraded"` when only the session-manager is down (logins and the admin page still work),
//! and 503 with `"degraded"` when the database is down (nobody can be authenticated, so a load
//! balancer should stop sending traffic here).

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use shared_contracts::{DatabaseCheck, HubChecks, HubHealth, ManagerCheck};

use crate::state::AppState;

/// `/health` must answer quickly even when a dependency hangs.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/metrics", get(metrics))
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let (database, session_manager) = tokio::join!(check_database(&state), check_manager(&state));
    let db_ok = database.ok;
    let status = if db_ok && session_manager.ok { "ok" } else { "degraded" };
    let body = HubHealth {
        status: status.to_owned(),
        service: "central-hub".to_owned(),
        timestamp: crate::now_rfc3339(),
        checks: HubChecks { database, session_manager },
    };
    let code = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
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
        },
        Err(error) => ManagerCheck { ok: false, url, latency_ms: None, state: None, error: Some(error) },
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}
