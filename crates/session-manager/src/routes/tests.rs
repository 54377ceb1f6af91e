//! Router tests that need no browser: the session stays in INIT.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::Application;
use crate::config::Config;

const TOKEN: &str = "test-token-0123456789-0123456789-abcdef";

pub(super) async fn app(extra: &[&str]) -> (Application, tempfile::TempDir) {
    app_in(tempfile::tempdir().expect("tempdir"), extra).await
}

/// An app on the data directory `dir`.
async fn app_in(dir: tempfile::TempDir, extra: &[&str]) -> (Application, tempfile::TempDir) {
    let data_dir = dir.path().to_owned();
    app_at(dir, &data_dir, extra).await
}

/// An app on `data_dir`, which `dir` (kept alive) contains.
async fn app_at(
    dir: tempfile::TempDir,
    data_dir: &std::path::Path,
    extra: &[&str],
) -> (Application, tempfile::TempDir) {
    let mut args = vec![
        "session-manager".to_owned(),
        "--port".into(),
        "0".into(),
        "--auto-connect".into(),
        "never".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--token".into(),
        TOKEN.into(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let config = <Config as clap::Parser>::try_parse_from(args).expect("config");
    (Application::build(config).await.expect("app builds"), dir)
}

pub(super) async fn call(
    app: &Application,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.router().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// `GET path` with the token.
pub(super) fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request")
}

/// `POST path` with the token and a JSON body.
fn post_json(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header("authorization", format!("Bearer {TOKEN}"))
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
    assert!(
        body["error"].as_str().unwrap_or_default().contains("contains 'a'"),
        "the phone's reason: {body}"
    );
    // Each value is refused by its type as the body is read, naming the field.
    for (json, field) in [
        (r#"{"to":"5491123456789","message":"  "}"#, "message"),
        (r#"{"cliente_id":0,"to":"5491123456789","message":"hi"}"#, "cliente_id"),
    ] {
        let (status, _, body) = call(&app, post_json("/send", json)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")),
            "{json}"
        );
        assert_eq!(body["detail"]["field"], field, "{body}");
    }
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
    let request = Request::get("/nope")
        .header("x-request-id", "abc-123")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let (status, headers, body) = call(&app, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["request_id"], "abc-123");
    assert_eq!(headers["x-request-id"], "abc-123");
    let (_, headers, _) = call(&app, get("/health")).await;
    assert!(!headers["x-request-id"].is_empty());
}

#[tokio::test]
async fn every_route_but_health_and_status_needs_the_token_in_any_scheme_case() {
    let (app, _dir) = app(&[]).await;
    let with = |method: &str, path: &str, authorization: Option<String>| {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.body(Body::empty()).expect("request")
    };
    let anonymous = Request::get("/health").body(Body::empty()).expect("request");
    assert_eq!(call(&app, anonymous).await.0, StatusCode::OK);
    for (method, path) in [
        ("GET", "/qr"),
        ("GET", "/qr-code"),
        ("GET", "/events"),
        ("GET", "/metrics"),
        ("POST", "/connect"),
        ("POST", "/disconnect"),
        ("POST", "/clear-session"),
        ("POST", "/send"),
        ("GET", "/nope"),
    ] {
        for authorization in [None, Some("Bearer wrong".to_owned()), Some(format!("Basic {TOKEN}"))] {
            let (status, _, body) = call(&app, with(method, path, authorization.clone())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} {authorization:?}");
            assert_eq!(body["code"], "UNAUTHORIZED");
            let hint = body["hint"].as_str().unwrap_or_default();
            assert!(
                hint.contains("SESSION_MANAGER_TOKEN") && hint.contains("deploy/leadmaster.env"),
                "{hint}"
            );
        }
    }
    for scheme in ["Bearer", "BEARER", "bearer"] {
        let (status, _, _) = call(&app, with("GET", "/metrics", Some(format!("{scheme} {TOKEN}")))).await;
        assert_eq!(status, StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn status_answers_without_the_token_for_operators() {
    let (app, _dir) = app(&[]).await;
    let anonymous = Request::get("/status").body(Body::empty()).expect("request");
    let (code, _, body) = call(&app, anonymous).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["state"], "INIT", "`curl /status | jq .state` keeps working");
}

#[tokio::test]
async fn only_the_configured_host_names_are_answered() {
    let (app, _dir) = app(&[]).await;
    let with_host =
        |host: &str| Request::get("/health").header("host", host).body(Body::empty()).expect("request");
    for host in ["127.0.0.1:3001", "localhost", "LOCALHOST:80", "[::1]:3001"] {
        assert_eq!(call(&app, with_host(host)).await.0, StatusCode::OK, "{host}");
    }
    for host in ["evil.example:3001", "127.0.0.1.evil.example", "attacker.test"] {
        let (status, _, body) = call(&app, with_host(host)).await;
        assert_eq!(status.as_u16(), 421, "{host}");
        assert_eq!(body["code"], "HOST_NOT_ALLOWED");
        assert!(body["hint"].as_str().unwrap_or_default().contains("SESSION_MANAGER_ALLOWED_HOSTS"));
    }
    let (app, _dir2) = app_with_hosts("manager.internal").await;
    assert_eq!(call(&app, with_host("manager.internal:3001")).await.0, StatusCode::OK);
    assert_eq!(call(&app, with_host("127.0.0.1:3001")).await.0, StatusCode::OK, "the bind host");
    assert_eq!(call(&app, with_host("localhost:3001")).await.0.as_u16(), 421);
}

async fn app_with_hosts(hosts: &str) -> (Application, tempfile::TempDir) {
    app(&["--allowed-hosts", hosts]).await
}

#[tokio::test]
async fn disconnect_accepts_an_empty_body_and_rejects_a_bad_one() {
    let (app, _dir) = app(&[]).await;
    let empty = Request::post("/disconnect")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
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

#[tokio::test]
async fn ten_thousand_refused_sends_do_not_evict_an_answered_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An answer given a minute ago, as the journal keeps it.
    let to = shared_contracts::PhoneNumber::parse("5491123456789").expect("phone");
    let fingerprint = crate::idempotency::fingerprint(Some(9), to.as_str(), "tu pedido salió");
    let at = crate::idempotency::unix_secs(std::time::SystemTime::now()) - 60;
    let record = serde_json::json!({
        "event": "answered", "cliente_id": 9, "key": "paid-order", "fingerprint": fingerprint, "at": at,
        "status": 200, "body": {"success": true, "message": "Message sent",
            "data": {"message_id": "3EB0FIRST", "to": "5491123456789", "timestamp": 1}},
    });
    std::fs::write(dir.path().join(crate::idempotency::JOURNAL_FILE), format!("{record}\n"))
        .expect("journal");
    let (app, _) = app_in(dir, &[]).await;
    let send = |key: String, cliente_id: u64, message: &str| {
        let body = serde_json::json!({"cliente_id": cliente_id, "to": "5491123456789", "message": message});
        let mut request = post_json("/send", &body.to_string());
        request.headers_mut().insert("idempotency-key", key.parse().expect("header"));
        request
    };
    let router = app.router();
    let mut refused = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..10_050 {
        let response = router.clone().oneshot(send(format!("other-{i}"), 9, "hola")).await.expect("response");
        *refused.entry(response.status().as_u16()).or_default() += 1;
    }
    assert_eq!(refused.values().sum::<u32>(), 10_050);
    assert!(refused.keys().all(|status| [409, 429].contains(status)), "{refused:?}");

    let (status, headers, body) = call(&app, send("paid-order".into(), 9, "tu pedido salió")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["message_id"], "3EB0FIRST", "replayed, not sent again");
    assert_eq!(headers["idempotent-replayed"], "true");
    let (status, _, body) = call(&app, send("paid-order".into(), 9, "another text")).await;
    assert_eq!(status.as_u16(), 422);
    assert_eq!(body["code"], "IDEMPOTENCY_KEY_REUSED");
    assert!(body["hint"].as_str().unwrap_or_default().contains("new Idempotency-Key"), "{body}");
    let (status, _, body) = call(&app, send("paid-order".into(), 10, "tu pedido salió")).await;
    assert_ne!(body["data"]["message_id"], "3EB0FIRST", "another tenant's key is its own: {body}");
    assert!([409, 429].contains(&status.as_u16()), "{status}");
}

#[tokio::test]
async fn three_thousand_made_up_methods_leave_the_metrics_small() {
    let (app, _dir) = app(&[]).await;
    let before = metrics_text(&app).await;
    for i in 0..3_000 {
        let method = format!("M{i}X");
        for authorization in [None, Some(format!("Bearer {TOKEN}"))] {
            let mut request = Request::builder().method(method.as_str()).uri(format!("/route-{i}"));
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response =
                app.router().oneshot(request.body(Body::empty()).expect("request")).await.expect("r");
            assert!(response.status().is_client_error(), "{method}: {}", response.status());
        }
    }
    let after = metrics_text(&app).await;
    assert_eq!(after.lines().count(), before.lines().count(), "no series per method or path");
    assert!(after.len() < 8 * 1024, "{} bytes", after.len());
    assert!(!after.contains("M2999X") && !after.contains("route-"), "{after}");
}

async fn metrics_text(app: &Application) -> String {
    let response = app.router().oneshot(get("/metrics")).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    String::from_utf8(response.into_body().collect().await.expect("b").to_bytes().to_vec()).expect("utf8")
}

#[tokio::test]
async fn the_data_dir_and_the_journal_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let _ = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data");
    std::fs::create_dir(&root).expect("a data dir made world-readable by the umask");
    assert_eq!(std::fs::metadata(&root).expect("metadata").permissions().mode() & 0o777, 0o755);
    let (_app, _dir) = app_at(dir, &root, &[]).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("sessions")), 0o700);
    assert_eq!(mode(&root.join(crate::idempotency::JOURNAL_FILE)), 0o600);
    assert_eq!(mode(&root.join("session-manager.lock")), 0o600);
}
