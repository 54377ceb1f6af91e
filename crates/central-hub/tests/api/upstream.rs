//! How the hub reports a session-manager that is absent, stuck, or answering errors.

use std::sync::Arc;

use central_hub::client::SessionManagerClient;
use central_hub::config::Config;
use central_hub::metrics::Metrics;
use serde_json::json;
use shared_contracts::{ErrorCode, SessionState};

use crate::helpers::{
    dead_url, hub_as_admin, serve_args, spawn_app, spawn_app_with, status_and_json, wait_until,
};
use manager_double::{ManagerDouble, Mode, RATE_LIMIT_ME};

#[tokio::test]
async fn a_manager_where_nothing_listens_is_named_in_health_and_in_a_502() {
    let url = dead_url().await;
    let app = spawn_app(&url).await;

    let (status, health) = status_and_json(app.get("/health", None).await).await;
    assert_eq!(status, 200, "the database is fine, so /health answers 200: {health}");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["checks"]["database"]["ok"], true);
    let manager = &health["checks"]["session_manager"];
    assert_eq!(manager["ok"], false);
    assert_eq!(manager["url"], url);
    let error = manager["error"].as_str().unwrap();
    assert!(error.contains(&url) && error.contains("connection refused"), "{error}");
    assert!(error.contains("SESSION_MANAGER_URL"), "{error}");

    let token = app.admin_token().await;
    let (status, body) = status_and_json(app.get("/api/admin/whatsapp/status", Some(&token)).await).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "SESSION_MANAGER_UNREACHABLE");
    assert_eq!(body["detail"]["url"], url);
    let message = body["error"].as_str().unwrap();
    assert!(message.contains(&url) && message.contains("connection refused"), "{message}");
    assert!(body["hint"].as_str().unwrap().contains("SESSION_MANAGER_URL"), "{body}");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");

    let (status, body) =
        status_and_json(app.post("/api/admin/whatsapp/connect", Some(&token), json!({})).await).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("SESSION_MANAGER_UNREACHABLE")), "{body}");
    let audit = app.state.store.recent_audit(1).await.unwrap();
    assert_eq!(audit[0].action, "whatsapp.connect");
    assert_eq!(audit[0].result, "SESSION_MANAGER_UNREACHABLE", "failed actions are audited too");

    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("central_hub_upstream_errors_total{code=\"SESSION_MANAGER_UNREACHABLE\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("central_hub_manager_stream_connected 0"), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn a_manager_that_never_answers_gives_a_504_naming_url_and_timeout() {
    let manager = ManagerDouble::spawn(Mode::Hang).await;
    let app = spawn_app_with(&manager.url, |args| args.session_manager_timeout_ms = 300).await;
    let token = app.admin_token().await;

    let (status, body) =
        status_and_json(app.post("/api/admin/whatsapp/connect", Some(&token), json!({})).await).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["code"], "SESSION_MANAGER_TIMEOUT");
    assert_eq!(body["detail"]["url"], manager.url);
    assert_eq!(body["detail"]["timeout_ms"], 300);
    let message = body["error"].as_str().unwrap();
    assert!(message.contains(&manager.url) && message.contains("300 ms"), "{message}");

    let (status, body) = status_and_json(app.get("/api/admin/whatsapp/status", Some(&token)).await).await;
    assert_eq!((status, body["code"].as_str()), (504, Some("SESSION_MANAGER_TIMEOUT")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_manager_error_is_passed_on_with_its_status_and_code() {
    let (manager, app, token) = hub_as_admin(SessionState::QrRequired).await;

    let send = json!({"to": "5491123456789", "message": "hola"});
    let (status, body) = status_and_json(app.post("/api/whatsapp/51/send", Some(&token), send).await).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "SESSION_NOT_READY");
    assert_eq!(body["detail"]["state"], "QR_REQUIRED");
    assert_eq!(body["detail"]["url"], manager.url);
    assert!(body["error"].as_str().unwrap().contains("not ready"), "{body}");
    assert_eq!(body["hint"], "double hint for SESSION_NOT_READY");

    manager.set_state(SessionState::Ready);
    let limited = json!({"to": "5491123456789", "message": RATE_LIMIT_ME});
    let response = app.post("/api/whatsapp/51/send", Some(&token), limited).await;
    assert_eq!(response.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("7"));
    let (status, body) = status_and_json(response).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("RATE_LIMITED")), "{body}");

    let (status, body) = status_and_json(app.get("/api/whatsapp/51/qr-code", Some(&token)).await).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NO_QR")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn an_answer_that_is_not_the_contract_is_a_502_session_manager_error() {
    let manager = ManagerDouble::spawn(Mode::Garbage).await;
    let app = spawn_app(&manager.url).await;
    let token = app.admin_token().await;
    let (status, body) = status_and_json(app.get("/api/admin/whatsapp/status", Some(&token)).await).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("SESSION_MANAGER_ERROR")), "{body}");
    assert_eq!(body["detail"]["url"], manager.url);
    let (status, health) = status_and_json(app.get("/health", None).await).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("degraded")), "{health}");
    app.stop().await;
}

/// A client of `url` that retries idempotent GETs `retries` times, with its own request counter.
fn client_with_retries(url: &str, retries: u32) -> (SessionManagerClient, Arc<Metrics>) {
    let mut args = serve_args(url, "sqlite::memory:");
    args.session_manager_retries = retries;
    let config = Config::from_args(args).unwrap();
    let metrics = Arc::new(Metrics::default());
    (SessionManagerClient::new(&config, metrics.clone()).unwrap(), metrics)
}

#[tokio::test]
async fn gets_are_retried_with_back_off_on_a_connection_failure_and_posts_never() {
    let url = dead_url().await;
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();

    // Nothing listens: a POST is tried exactly once (it might not be idempotent)...
    let (client, metrics) = client_with_retries(&url, 2);
    let err = client.connect(&Default::default()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::SessionManagerUnreachable, "{err}");
    assert_eq!(metrics.manager_requests(), 1, "a POST is never retried");
    // ...and a GET 1 + 2 times.
    let err = client.status().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::SessionManagerUnreachable, "{err}");
    assert_eq!(metrics.manager_requests(), 1 + 3, "a GET is tried 1 + SESSION_MANAGER_RETRIES times");

    // The retries back off between attempts: a manager that comes up while a GET is backing off is
    // reached by a later retry (without the pauses, every attempt would fail before it listens).
    let (client, metrics) = client_with_retries(&url, 6);
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.status().await }
    });
    let counter = metrics.clone();
    wait_until("the first attempt failed and a retry started", || counter.manager_requests() >= 2).await;
    let manager = ManagerDouble::spawn_on(Mode::Normal, port).await;
    manager.set_state(SessionState::Ready);
    let status = pending.await.unwrap().expect("a retry reaches the manager once it listens");
    assert_eq!(status.state, SessionState::Ready);
    assert!(metrics.manager_requests() >= 2, "it took more than one attempt");
    assert_eq!(manager.count("GET /status"), 1, "only the successful attempt reached the manager");

    // The POST that failed before the manager came up was not replayed: only this one arrives.
    client.connect(&Default::default()).await.expect("the manager is up");
    assert_eq!(manager.count("POST /connect"), 1);
    manager.stop().await;
}
