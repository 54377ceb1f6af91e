//! Issue 9's hardening, as an outsider or a curious tenant would probe the hub.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use shared_contracts::{Role, SessionState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, email, hub_as_admin, spawn_app, spawn_app_with, status_and_json,
};
use manager_double::{ManagerDouble, Mode};

/// The QR links the company's one WhatsApp account: a client sees the state, never the QR.
#[tokio::test]
async fn a_client_gets_its_status_without_the_qr_and_a_403_for_the_qr_code() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    manager.set_state(SessionState::QrRequired);
    let app = spawn_app(&manager.url).await;
    app.add_user("client7@test.io", "client password 7", Role::Client, Some(7)).await;
    let client = app.token("client7@test.io", "client password 7").await;
    let admin = app.admin_token().await;

    // Asked of the manager directly (the stream is not live yet) and from the fan-out cache.
    for source in ["direct", "cache"] {
        if source == "cache" {
            app.wait_for_live_stream().await;
        }
        let (status, body) = status_and_json(app.get("/api/whatsapp/7/status", Some(&client)).await).await;
        assert_eq!(status, 200, "{source}: {body}");
        assert_eq!(body["state"], "QR_REQUIRED", "{source}: {body}");
        assert_eq!(body["cliente_id"], 7, "{source}: {body}");
        for field in ["connected", "can_send_messages", "recommended_action", "phone_number"] {
            assert!(body.get(field).is_some(), "{source}: {field} missing in {body}");
        }
        assert!(body.get("qr").is_none(), "{source}: a client must never get the QR: {body}");
        assert!(body.get("pairing_code").is_none(), "{source}: nor the pairing code: {body}");

        let (status, body) = status_and_json(app.get("/api/whatsapp/7/status", Some(&admin)).await).await;
        assert_eq!(status, 200, "{source}: {body}");
        assert!(body["qr"]["url"].as_str().unwrap().starts_with("2@"), "{source}: admins get it: {body}");
        assert_eq!(body["pairing_code"]["code"], "ABCD-EFGH", "{source}: admins get the code too: {body}");
        assert_eq!(body["cliente_id"], 7, "{source}: {body}");
    }

    let (status, body) = status_and_json(app.get("/api/whatsapp/7/qr-code", Some(&client)).await).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    assert!(body["hint"].as_str().unwrap().contains("administrator links"), "{body}");
    assert_eq!(manager.count("GET /qr-code"), 0, "the refused QR was never fetched");
    let (status, body) = status_and_json(app.get("/api/whatsapp/7/qr-code", Some(&admin)).await).await;
    assert_eq!(status, 200, "{body}");

    // The other routes that carry the QR are admin-only.
    for path in ["/api/admin/whatsapp/status", "/api/admin/whatsapp/events"] {
        let (status, body) = status_and_json(app.get(path, Some(&client)).await).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{path}: {body}");
    }
    app.stop().await;
}

/// A hub that trusts X-Real-IP (as behind the shipped nginx), so tests can play several addresses.
async fn proxied_app(manager_url: &str, tweak: impl FnOnce(&mut central_hub::config::ServeArgs)) -> TestApp {
    spawn_app_with(manager_url, |args| {
        args.trust_proxy_headers = true;
        tweak(args);
    })
    .await
}

async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/auth/login", app.url))
        .header("x-real-ip", ip)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn parallel_guesses_get_only_the_free_checks_and_the_owner_elsewhere_still_logs_in() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = proxied_app(&manager.url, |_| {}).await;
    let passwords: Vec<String> = (0..40).map(|i| format!("guess number {i}")).collect();
    let guesses = passwords.iter().map(|p| login_from(&app, "203.0.113.66", ADMIN_EMAIL, p));
    let answers = futures_util::future::join_all(guesses).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(checked <= 5, "at most LOGIN_MAX_FAILURES_PER_ACCOUNT checks, got {checked}: {statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 401 | 429)), "{statuses:?}");

    // The attacker's address now waits a growing delay ...
    let (status, body) =
        status_and_json(login_from(&app, "203.0.113.66", ADMIN_EMAIL, ADMIN_PASSWORD).await).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("RATE_LIMITED")), "{body}");
    assert!(body["detail"]["retry_after_secs"].as_u64().unwrap() >= 1, "{body}");
    // ... while the admin from another address is not locked out.
    let (status, body) =
        status_and_json(login_from(&app, "198.51.100.7", ADMIN_EMAIL, ADMIN_PASSWORD).await).await;
    assert_eq!(status, 200, "the right admin from another address logs in: {body}");
    app.stop().await;
}

#[tokio::test]
async fn each_address_has_its_own_attempt_cap_read_from_the_right_proxy_header() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = proxied_app(&manager.url, |args| args.login_max_attempts_per_ip = 3).await;
    for i in 0..3 {
        let response = login_from(&app, "203.0.113.9", &format!("nobody{i}@test.io"), "wrong password").await;
        assert_eq!(response.status(), 401);
    }
    let (status, body) =
        status_and_json(login_from(&app, "203.0.113.9", ADMIN_EMAIL, ADMIN_PASSWORD).await).await;
    assert_eq!((status, body["detail"]["scope"].as_str()), (429, Some("client address")), "{body}");
    // X-Forwarded-For: the right-most entry is the one nginx appended; the rest is the client's word.
    let forwarded = app
        .http
        .post(format!("{}/auth/login", app.url))
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.20")
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 200, "another address (right-most X-Forwarded-For) is not capped");
    app.stop().await;
}

#[tokio::test]
async fn an_email_with_a_control_character_is_refused() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;
    for email in ["evil@test.io\nINFO forged line", "a\u{1b}[31m@test.io"] {
        let (status, body) = status_and_json(app.login(email, "whatever pass").await).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{email:?}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn made_up_methods_leave_the_metrics_small() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;
    let requests = (0..3000).map(|i| {
        let method = reqwest::Method::from_bytes(format!("X{i:04}RANDOM").as_bytes()).unwrap();
        let path = if i % 2 == 0 { format!("{}/health", app.url) } else { format!("{}/nope/{i}", app.url) };
        app.http.request(method, path).send()
    });
    let mut stream = futures_util::stream::iter(requests).buffer_unordered(32);
    while let Some(response) = stream.next().await {
        assert!(response.unwrap().status().is_client_error());
    }
    drop(stream);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let series: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("central_hub_http_requests_total{")).collect();
    assert!(series.len() <= 5, "a handful of series, got {}: {series:#?}", series.len());
    assert!(series.iter().any(|l| l.contains(r#"route="unmatched",method="other""#)), "{series:#?}");
    assert!(metrics.len() < 4096, "/metrics is {} bytes", metrics.len());
    app.stop().await;
}

#[tokio::test]
async fn the_manager_idempotency_answers_reach_the_caller() {
    let (_manager, app, token) = hub_as_admin(SessionState::Ready).await;
    let send = |message: &'static str| {
        app.http
            .post(format!("{}/api/whatsapp/7/send", app.url))
            .bearer_auth(&token)
            .header("idempotency-key", "order-1")
            .json(&json!({ "to": "5491123456789", "message": message }))
            .send()
    };
    let first = send("hello").await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none(), "a first send is not a replay");
    let again = send("hello").await.unwrap();
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let (status, body) = status_and_json(again).await;
    assert_eq!((status, body["data"]["to"].as_str()), (200, Some("5491123456789")), "{body}");
    let (status, body) = status_and_json(send("another text").await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("IDEMPOTENCY_KEY_REUSED")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn each_caller_has_its_own_send_budget() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    manager.set_state(SessionState::Ready);
    let app = spawn_app_with(&manager.url, |args| args.hub_send_rate_per_minute = 2).await;
    app.add_user("client7@test.io", "client password 7", Role::Client, Some(7)).await;
    app.add_user("client8@test.io", "client password 8", Role::Client, Some(8)).await;
    let seven = app.token("client7@test.io", "client password 7").await;
    let eight = app.token("client8@test.io", "client password 8").await;
    let body = json!({ "to": "5491123456789", "message": "hi" });
    for _ in 0..2 {
        assert_eq!(app.post("/api/whatsapp/7/send", Some(&seven), body.clone()).await.status(), 200);
    }
    let refused = app.post("/api/whatsapp/7/send", Some(&seven), body.clone()).await;
    assert!(refused.headers().get("retry-after").is_some(), "429 carries Retry-After");
    let (status, error) = status_and_json(refused).await;
    assert_eq!((status, error["code"].as_str()), (429, Some("RATE_LIMITED")), "{error}");
    assert!(error["error"].as_str().unwrap().contains("HUB_SEND_RATE_PER_MINUTE"), "{error}");
    assert_eq!(app.post("/api/whatsapp/8/send", Some(&eight), body).await.status(), 200, "another tenant");
    assert_eq!(manager.count("POST /send"), 3, "the refused send never reached the manager");
    app.stop().await;
}

#[tokio::test]
async fn a_password_change_or_disable_invalidates_issued_tokens() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app_with(&manager.url, |args| args.auth_cache_ttl_ms = 0).await;
    app.add_user("client7@test.io", "client password 7", Role::Client, Some(7)).await;
    let old = app.token("client7@test.io", "client password 7").await;
    assert_eq!(app.get("/api/whatsapp/7/status", Some(&old)).await.status(), 200);
    let hash = central_hub::auth::password::hash("new password 77").unwrap();
    assert!(app.state.store.set_password_hash(&email("client7@test.io"), &hash).await.unwrap());
    let (status, body) = status_and_json(app.get("/api/whatsapp/7/status", Some(&old)).await).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("log in again"), "{body}");

    let fresh = app.token("client7@test.io", "new password 77").await;
    assert_eq!(app.get("/api/whatsapp/7/status", Some(&fresh)).await.status(), 200);
    assert!(app.state.store.set_disabled(&email("client7@test.io"), true).await.unwrap());
    assert!(app.state.store.set_disabled(&email("client7@test.io"), false).await.unwrap());
    assert_eq!(app.get("/api/whatsapp/7/status", Some(&fresh)).await.status(), 401, "disable revokes");
    app.stop().await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;
    let token = app.admin_token().await;
    for scheme in ["BEARER", "bearer", "Bearer"] {
        let response = app
            .http
            .get(format!("{}/api/admin/whatsapp/status", app.url))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
    app.stop().await;
}

#[tokio::test]
async fn health_details_are_for_admins_and_direct_loopback_callers_only() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;
    let token = app.admin_token().await;
    let health = |path: &'static str, proxied: bool, bearer: Option<String>| {
        let mut request = app.http.get(format!("{}{path}", app.url));
        if proxied {
            request = request.header("x-forwarded-for", "203.0.113.5").header("x-real-ip", "203.0.113.5");
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for path in ["/health", "/api/health"] {
        let (status, body) = status_and_json(health(path, true, None).await.unwrap()).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["status"], "ok", "{path}: {body}");
        assert!(body.get("checks").is_none(), "{path} through a proxy shows no internals: {body}");
        assert!(!body.to_string().contains(&manager.url), "{path}: {body}");

        let (_, body) = status_and_json(health(path, true, Some(token.clone())).await.unwrap()).await;
        assert_eq!(body["checks"]["session_manager"]["url"], manager.url.as_str(), "{path} admin: {body}");
        let (_, body) = status_and_json(health(path, true, Some("forged".into())).await.unwrap()).await;
        assert!(body.get("checks").is_none(), "{path} with a bad token: {body}");
        let (_, body) = status_and_json(health(path, false, None).await.unwrap()).await;
        assert_eq!(body["checks"]["database"]["ok"], true, "{path} direct loopback: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_half_sent_request_is_closed_by_the_hub() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(b"GET /hea").await.unwrap();
    let mut buffer = Vec::new();
    // The hub closes it after its header-read timeout (15 s); 40 s is a generous deadline.
    let closed = tokio::time::timeout(Duration::from_secs(40), stream.read_to_end(&mut buffer)).await;
    assert!(closed.is_ok(), "the hub still holds a connection that sent half a request line after 40 s");
    app.stop().await;
}
