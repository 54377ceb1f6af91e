//! Router tests that need no browser: the session stays in INIT.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::Application;
use crate::config::Config;

async fn app(extra: &[&str]) -> (Application, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec![
        "session-manager".to_owned(),
        "--port".into(),
        "0".into(),
        "--auto-connect".into(),
        "never".into(),
        "--data-dir".into(),
        dir.path().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let config = <Config as clap::Parser>::try_parse_from(args).expect("config");
    (Application::build(config).await.expect("app builds"), dir)
}

async fn call(app: &Application, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.router().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

fn post_json(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request")
}

#[tokio::test]
async fn health_and_status_answer_without_a_browser() {
    let (app, _dir) = app(&[]).await;
    let (status, _, body) = call(&app, get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["service"], "session-manager");
    let (status, _, body) = call(&app, get("/status")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "INIT");
    assert_eq!(body["session"], "admin");
    assert!(body.get("qr").is_none());
}

#[tokio::test]
async fn no_qr_is_404_with_the_state() {
    let (app, _dir) = app(&[]).await;
    for path in ["/qr", "/qr-code", "/qr?format=ascii"] {
        let (status, _, body) = call(&app, get(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["code"], "NO_QR");
        assert_eq!(body["detail"]["state"], "INIT");
    }
}

#[tokio::test]
async fn send_validates_the_body_before_the_state() {
    let (app, _dir) = app(&[]).await;
    let (status, _, body) = call(&app, post_json("/send", r#"{"to":"abc","message":"hi"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert_eq!(body["detail"]["field"], "to");
    let (status, _, body) = call(&app, post_json("/send", "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "VALIDATION_ERROR");
    let (status, _, body) = call(&app, post_json("/send", r#"{"to":"5491123456789"}"#)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")));
    let (status, _, body) = call(&app, post_json("/send", r#"{"to":"5491123456789","message":"hi"}"#)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "SESSION_NOT_READY");
    assert_eq!(body["detail"]["state"], "INIT");
}

#[tokio::test]
async fn a_wrong_method_gets_a_405_error_body_naming_the_allowed_ones() {
    let (app, _dir) = app(&[]).await;
    let request = Request::delete("/status").body(Body::empty()).expect("request");
    let (status, headers, body) = call(&app, request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
    assert_eq!(body["detail"]["path"], "/status");
    assert!(headers["allow"].to_str().expect("ascii").contains("GET"), "{headers:?}");
}

#[tokio::test]
async fn request_ids_are_kept_and_put_in_error_bodies() {
    let (app, _dir) = app(&[]).await;
    let request =
        Request::get("/nope").header("x-request-id", "abc-123").body(Body::empty()).expect("request");
    let (status, headers, body) = call(&app, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["request_id"], "abc-123");
    assert_eq!(headers["x-request-id"], "abc-123");
    let (_, headers, _) = call(&app, get("/health")).await;
    assert!(!headers["x-request-id"].is_empty());
}

#[tokio::test]
async fn with_a_token_every_route_but_health_needs_it() {
    let (app, _dir) = app(&["--token", "t0ken"]).await;
    assert_eq!(call(&app, get("/health")).await.0, StatusCode::OK);
    let (status, _, body) = call(&app, get("/status")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "UNAUTHORIZED");
    let ok =
        Request::get("/status").header("authorization", "Bearer t0ken").body(Body::empty()).expect("req");
    assert_eq!(call(&app, ok).await.0, StatusCode::OK);
}

#[tokio::test]
async fn disconnect_accepts_an_empty_body_and_rejects_a_bad_one() {
    let (app, _dir) = app(&[]).await;
    let empty = Request::post("/disconnect").body(Body::empty()).expect("request");
    let (status, _, body) = call(&app, empty).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"], "Disconnected");
    let (status, _, body) = call(&app, post_json("/disconnect", r#"{"logout":"yes"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let (app, _dir) = app(&[]).await;
    let big = format!(r#"{{"to":"5491123456789","message":"{}"}}"#, "x".repeat(super::BODY_LIMIT_BYTES + 10));
    let (status, _, body) = call(&app, post_json("/send", &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let (app, _dir) = app(&[]).await;
    let response = app.router().oneshot(get("/metrics")).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(response.into_body().collect().await.expect("b").to_bytes().to_vec())
        .expect("utf8");
    assert!(text.contains("session_manager_state{state=\"INIT\"} 1"));
}
