//! The authentication matrix, with exact statuses.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use central_hub::auth::{Claims, JwtKeys};
use serde_json::json;
use shared_contracts::{Role, SessionState};

use crate::helpers::{
    ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, email, spawn_app, spawn_app_with, status_and_json,
};
use manager_double::{ManagerDouble, Mode};

const ADMIN_STATUS: &str = "/api/admin/whatsapp/status";

fn claims(sub: i64, role: Role, cliente_id: Option<u64>, exp_offset: i64) -> Claims {
    let now = jsonwebtoken::get_current_timestamp();
    Claims {
        sub: sub.to_string(),
        role,
        cliente_id: cliente_id.map(|id| shared_contracts::ClienteId::try_from(id).unwrap()),
        cv: 1,
        iat: now,
        exp: now.saturating_add_signed(exp_offset),
    }
}

async fn assert_unauthorized(response: reqwest::Response, why: &str) -> String {
    let www = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 401, "{why}: {body}");
    assert_eq!(body["code"], "UNAUTHORIZED", "{why}");
    assert_eq!(www.as_deref(), Some("Bearer"), "{why}: 401 carries WWW-Authenticate");
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn tokens_that_are_missing_forged_expired_or_unsigned_get_401() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;
    let admin = app.state.store.find_user_by_email(&email(ADMIN_EMAIL)).await.unwrap().unwrap();

    assert_unauthorized(app.get(ADMIN_STATUS, None).await, "no token").await;
    let bad_scheme = app.http.get(format!("{}{ADMIN_STATUS}", app.url)).header("authorization", "Basic x");
    assert_unauthorized(bad_scheme.send().await.unwrap(), "not a bearer token").await;

    let foreign = JwtKeys::new(b"another-secret-another-secret-000000", std::time::Duration::from_secs(60));
    let forged = foreign.sign(&claims(admin.id, Role::Admin, None, 600)).unwrap();
    let message = assert_unauthorized(app.get(ADMIN_STATUS, Some(&forged)).await, "bad signature").await;
    assert!(message.contains("signature"), "{message}");

    let expired = app.state.jwt.sign(&claims(admin.id, Role::Admin, None, -3600)).unwrap();
    let message = assert_unauthorized(app.get(ADMIN_STATUS, Some(&expired)).await, "expired").await;
    assert!(message.contains("expired"), "{message}");

    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(admin.id, Role::Admin, None, 600)).unwrap());
    let unsigned = format!("{header}.{payload}.");
    assert_unauthorized(app.get(ADMIN_STATUS, Some(&unsigned)).await, "alg none").await;

    let valid = app.admin_token().await;
    assert_eq!(app.get(ADMIN_STATUS, Some(&valid)).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn roles_client_ids_and_disabled_accounts_get_403() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    manager.set_state(SessionState::QrRequired);
    // No user cache: every request reads the store, so a disable is seen by the very next request.
    let app = spawn_app_with(&manager.url, |args| args.auth_cache_ttl_ms = 0).await;
    app.add_user("client7@test.io", "client password 7", Role::Client, Some(7)).await;
    let client = app.token("client7@test.io", "client password 7").await;
    let admin = app.admin_token().await;

    let (status, body) = status_and_json(app.get(ADMIN_STATUS, Some(&client)).await).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "client on an admin route: {body}");
    let connect = app.post("/api/admin/whatsapp/connect", Some(&client), json!({})).await;
    assert_eq!(connect.status(), 403);
    assert_eq!(manager.count("POST /connect"), 0, "a refused request never reaches the manager");

    let (status, body) = status_and_json(app.get("/api/whatsapp/8/status", Some(&client)).await).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "another client's id: {body}");
    assert_eq!(app.get("/api/whatsapp/8/qr-code", Some(&client)).await.status(), 403);
    let send =
        app.post("/api/whatsapp/8/send", Some(&client), json!({"to": "5491123456789", "message": "hi"}));
    assert_eq!(send.await.status(), 403);

    assert_eq!(app.get("/api/whatsapp/7/status", Some(&client)).await.status(), 200, "its own id");
    let (status, body) = status_and_json(app.get("/api/whatsapp/7/qr-code", Some(&client)).await).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "the QR is for admins: {body}");
    assert_eq!(app.get("/api/whatsapp/8/status", Some(&admin)).await.status(), 200, "admins act for anyone");

    for bad in ["0", "-1", "abc", "1.5"] {
        let (status, body) =
            status_and_json(app.get(&format!("/api/whatsapp/{bad}/status"), Some(&admin)).await).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "clienteId {bad}: {body}"
        );
    }

    // With AUTH_CACHE_TTL_MS=0, disabling locks the account out at once, existing token included.
    assert!(app.state.store.set_disabled(&email("client7@test.io"), true).await.unwrap());
    let (status, body) = status_and_json(app.get("/api/whatsapp/7/status", Some(&client)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "disabled with a valid token: {body}"
    );
    let (status, body) = status_and_json(app.login("client7@test.io", "client password 7").await).await;
    assert_eq!(status, 403, "a disabled user cannot log in: {body}");
    app.stop().await;
}

/// Polls `path` every 20 ms until it answers `want` (10 s at most); returns that body.
async fn status_within_deadline(app: &TestApp, path: &str, token: &str, want: u16) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = status_and_json(app.get(path, Some(token)).await).await;
        if status == want {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "{path} still answers {status}, not {want}: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_disable_reaches_a_hub_with_a_user_cache_within_its_ttl() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    manager.set_state(SessionState::Ready);

    // A long TTL shows the cache is in use: the disable is not seen yet (this is the bound the TTL puts).
    let cached = spawn_app_with(&manager.url, |args| args.auth_cache_ttl_ms = 600_000).await;
    cached.add_user("c9@test.io", "client password 9", Role::Client, Some(9)).await;
    let token = cached.token("c9@test.io", "client password 9").await;
    assert_eq!(cached.get("/api/whatsapp/9/status", Some(&token)).await.status(), 200);
    assert!(cached.state.store.set_disabled(&email("c9@test.io"), true).await.unwrap());
    assert_eq!(
        cached.get("/api/whatsapp/9/status", Some(&token)).await.status(),
        200,
        "within the TTL the cached row (enabled) is still used"
    );
    cached.stop().await;

    // A short TTL: the same disable refuses the existing token once the cached row expires.
    let app = spawn_app_with(&manager.url, |args| args.auth_cache_ttl_ms = 200).await;
    app.add_user("c9@test.io", "client password 9", Role::Client, Some(9)).await;
    let token = app.token("c9@test.io", "client password 9").await;
    assert_eq!(app.get("/api/whatsapp/9/status", Some(&token)).await.status(), 200);
    assert!(app.state.store.set_disabled(&email("c9@test.io"), true).await.unwrap());
    let body = status_within_deadline(&app, "/api/whatsapp/9/status", &token, 403).await;
    assert_eq!(body["code"], "FORBIDDEN", "{body}");
    assert!(body["error"].as_str().unwrap().contains("disabled"), "{body}");
    // Re-enabling reaches it the same way; the tokens issued before the disable stay revoked
    // (it bumped the credential version), so the user logs in again.
    assert!(app.state.store.set_disabled(&email("c9@test.io"), false).await.unwrap());
    let body = status_within_deadline(&app, "/api/whatsapp/9/status", &token, 401).await;
    assert!(body["error"].as_str().unwrap().contains("log in again"), "{body}");
    let token = app.token("c9@test.io", "client password 9").await;
    let body = status_within_deadline(&app, "/api/whatsapp/9/status", &token, 200).await;
    assert_eq!(body["state"], "READY", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_password_change_reaches_a_hub_with_a_token_cache_within_its_ttl() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    manager.set_state(SessionState::Ready);
    let new_hash = || central_hub::auth::password::hash("new password 99").unwrap();

    // A long TTL shows the token cache is in use: the verified token and the row read with it are
    // reused, so the password change is not seen yet (this is the bound the TTL puts).
    let cached = spawn_app_with(&manager.url, |args| args.auth_cache_ttl_ms = 600_000).await;
    cached.add_user("c9@test.io", "client password 9", Role::Client, Some(9)).await;
    let old = cached.token("c9@test.io", "client password 9").await;
    assert_eq!(cached.get("/api/whatsapp/9/status", Some(&old)).await.status(), 200);
    assert!(cached.state.store.set_password_hash(&email("c9@test.io"), &new_hash()).await.unwrap());
    assert_eq!(
        cached.get("/api/whatsapp/9/status", Some(&old)).await.status(),
        200,
        "within the TTL the cached verdict for this token is still used"
    );
    // A token not seen before is verified and its user read now: the new password's token works.
    let fresh = cached.token("c9@test.io", "new password 99").await;
    assert_eq!(cached.get("/api/whatsapp/9/status", Some(&fresh)).await.status(), 200);
    cached.stop().await;

    // A short TTL: the same change refuses the old token once its cache entry expires.
    let app = spawn_app_with(&manager.url, |args| args.auth_cache_ttl_ms = 200).await;
    app.add_user("c9@test.io", "client password 9", Role::Client, Some(9)).await;
    let old = app.token("c9@test.io", "client password 9").await;
    assert_eq!(app.get("/api/whatsapp/9/status", Some(&old)).await.status(), 200);
    assert!(app.state.store.set_password_hash(&email("c9@test.io"), &new_hash()).await.unwrap());
    let body = status_within_deadline(&app, "/api/whatsapp/9/status", &old, 401).await;
    assert_eq!(body["code"], "UNAUTHORIZED", "{body}");
    assert!(body["error"].as_str().unwrap().contains("log in again"), "{body}");
    let fresh = app.token("c9@test.io", "new password 99").await;
    let body = status_within_deadline(&app, "/api/whatsapp/9/status", &fresh, 200).await;
    assert_eq!(body["state"], "READY", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_cached_token_is_refused_once_it_expires_however_long_the_cache_ttl() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    manager.set_state(SessionState::Ready);
    let app = spawn_app_with(&manager.url, |args| args.auth_cache_ttl_ms = 600_000).await;
    let admin = app.state.store.find_user_by_email(&email(ADMIN_EMAIL)).await.unwrap().unwrap();
    let mut short = claims(admin.id, Role::Admin, None, 1);
    short.cv = admin.credential_version;
    let token = app.state.jwt.sign(&short).unwrap();
    assert_eq!(app.get(ADMIN_STATUS, Some(&token)).await.status(), 200, "valid, and now cached");
    // Refused after `exp` (plus the few seconds of leeway verification allows), not after the TTL.
    let body = status_within_deadline(&app, ADMIN_STATUS, &token, 401).await;
    assert!(body["error"].as_str().unwrap().contains("expired"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_login_limit_counts_the_address_nginx_reports() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app_with(&manager.url, |args| {
        args.login_max_attempts_per_ip = 1;
        args.trust_proxy_headers = true;
    })
    .await;
    let login = |headers: &[(&str, &str)]| {
        let mut request = app
            .http
            .post(format!("{}/auth/login", app.url))
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    // All requests come from 127.0.0.1 (nginx); X-Real-IP tells the users apart.
    assert_eq!(login(&[("x-real-ip", "203.0.113.1")]).await.unwrap().status(), 200);
    let (status, body) = status_and_json(login(&[("x-real-ip", "203.0.113.1")]).await.unwrap()).await;
    assert_eq!((status, body["detail"]["scope"].as_str()), (429, Some("client address")), "{body}");
    assert_eq!(login(&[("x-real-ip", "203.0.113.2")]).await.unwrap().status(), 200, "another user");
    // Without X-Real-IP, the last hop of X-Forwarded-For (the one nginx appended) counts.
    let forwarded = [("x-forwarded-for", "198.51.100.9, 203.0.113.3")];
    assert_eq!(login(&forwarded).await.unwrap().status(), 200);
    let forged = [("x-forwarded-for", "192.0.2.77, 203.0.113.3")];
    assert_eq!(login(&forged).await.unwrap().status(), 429, "a forged first hop does not evade the limit");
    app.stop().await;

    // Not trusted (the default): the headers are ignored and the peer address is the key.
    let app = spawn_app_with(&manager.url, |args| args.login_max_attempts_per_ip = 1).await;
    let first = app.http.post(format!("{}/auth/login", app.url)).header("x-real-ip", "203.0.113.5");
    let body = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
    assert_eq!(first.json(&body).send().await.unwrap().status(), 200);
    let second = app.http.post(format!("{}/auth/login", app.url)).header("x-real-ip", "203.0.113.6");
    assert_eq!(second.json(&body).send().await.unwrap().status(), 429, "X-Real-IP ignored");
    app.stop().await;
}

#[tokio::test]
async fn the_qr_is_never_served_without_a_token() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    manager.set_state(SessionState::QrRequired);
    let app = spawn_app(&manager.url).await;
    for path in ["/api/whatsapp/7/qr-code", "/api/whatsapp/7/status", "/api/admin/whatsapp/events"] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), 401, "{path}");
        let text = response.text().await.unwrap();
        assert!(!text.contains("2@double-ref"), "{path} leaked the QR: {text}");
    }
    assert_eq!(manager.count("GET /qr-code"), 0);
    app.stop().await;
}

#[tokio::test]
async fn login_answers_a_token_for_the_right_password_and_401_for_a_wrong_one() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;

    let (status, body) = status_and_json(app.login("  Admin@Test.io ", ADMIN_PASSWORD).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email"], ADMIN_EMAIL);
    assert_eq!(body["user"]["role"], "admin");
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'), "{body}");
    let token = body["token"].as_str().unwrap();
    let claims = app.state.jwt.verify(token).unwrap();
    assert_eq!(claims.role, Role::Admin);
    assert!(claims.exp > claims.iat);

    let alias = app
        .http
        .post(format!("{}/api/auth/login", app.url))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(alias.status(), 200, "the /api/auth/login alias");

    assert_unauthorized(app.login(ADMIN_EMAIL, "wrong password").await, "wrong password").await;
    assert_unauthorized(app.login("nobody@test.io", "wrong password").await, "unknown user").await;
    assert_unauthorized(app.login("not an email", "wrong password").await, "no account has a non-address")
        .await;
    let (status, body) = status_and_json(app.login("a\u{1b}@test.io", "any password").await).await;
    assert_eq!(
        (status, body["detail"]["field"].as_str()),
        (400, Some("email")),
        "a control character: {body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_are_rate_limited_with_retry_after() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app_with(&manager.url, |args| args.login_max_failures_per_account = 3).await;
    for _ in 0..3 {
        assert_eq!(app.login(ADMIN_EMAIL, "wrong password").await.status(), 401);
    }
    let response = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("RATE_LIMITED")), "{body}");
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    // Another account is not affected.
    app.add_user("other@test.io", "other password 1", Role::Admin, None).await;
    assert_eq!(app.login("other@test.io", "other password 1").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn too_many_attempts_from_one_address_are_rate_limited() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app_with(&manager.url, |args| args.login_max_attempts_per_ip = 2).await;
    assert_eq!(app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status(), 200);
    assert_eq!(app.login("x@test.io", "whatever pass").await.status(), 401);
    let response = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["detail"]["scope"], "client address");
    app.stop().await;
}
