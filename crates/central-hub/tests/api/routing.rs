//! Admin and client routes through to the manager double, the status fan-out, and HTTP hygiene.

use std::collections::VecDeque;
use std::time::Duration;

use central_hub::sse::{SseEvent, SseParser};
use futures_util::StreamExt;
use serde_json::{Value, json};
use shared_contracts::{ClienteId, Role, SessionState};

use crate::helpers::{hub_as_admin, spawn_app, spawn_app_with, status_and_json, wait_until};
use manager_double::{MANAGER_TOKEN, ManagerDouble, Mode};

#[tokio::test]
async fn admin_actions_reach_the_manager_and_are_audited() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;
    let token = app.admin_token().await;

    let (status, body) =
        status_and_json(app.post("/api/admin/whatsapp/connect", Some(&token), json!({})).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["state"].as_str(), body["alreadyConnected"].as_bool()),
        (Some("CONNECTING"), Some(false))
    );
    assert_eq!(manager.count("POST /connect"), 1);

    let logout = app.post("/api/admin/whatsapp/disconnect", Some(&token), json!({"logout": true})).await;
    assert_eq!(logout.status(), 200);
    let no_body = app.http.post(format!("{}/api/admin/whatsapp/disconnect", app.url)).bearer_auth(&token);
    assert_eq!(no_body.send().await.unwrap().status(), 200, "the disconnect body is optional");
    assert_eq!(manager.disconnect_bodies(), vec![json!({"logout": true}), json!({"logout": false})]);

    let (status, body) =
        status_and_json(app.post("/api/admin/whatsapp/clear-session", Some(&token), json!({})).await).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("INIT")), "{body}");

    let audit = app.state.store.recent_audit(10).await.unwrap();
    let actions: Vec<(&str, &str, &str)> =
        audit.iter().map(|r| (r.action.as_str(), r.actor_email.as_str(), r.result.as_str())).collect();
    assert_eq!(
        &actions[..4],
        [
            ("whatsapp.clear-session", "admin@test.io", "ok"),
            ("whatsapp.disconnect", "admin@test.io", "ok"),
            ("whatsapp.disconnect", "admin@test.io", "ok"),
            ("whatsapp.connect", "admin@test.io", "ok"),
        ]
    );
    assert!(audit[0].request_id.is_some(), "audit entries carry the request id");
    app.stop().await;
}

#[tokio::test]
async fn a_send_is_validated_then_forwarded_with_its_keys() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    manager.set_state(SessionState::Ready);
    let app = spawn_app(&manager.url).await;
    app.add_user("c51@test.io", "client password 51", Role::Client, Some(51)).await;
    let token = app.token("c51@test.io", "client password 51").await;

    for (body, field) in [
        (json!({"to": "abc", "message": "hola"}), "to"),
        (json!({"to": "0111234567", "message": "hola"}), "to"),
        (json!({"to": "5491123456789", "message": "   "}), "message"),
        (json!({"to": "5491123456789", "message": "x".repeat(4097)}), "message"),
    ] {
        let (status, reply) =
            status_and_json(app.post("/api/whatsapp/51/send", Some(&token), body).await).await;
        assert_eq!((status, reply["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{reply}");
        assert_eq!(reply["detail"]["field"], field);
    }
    let (status, reply) =
        status_and_json(app.post("/api/whatsapp/51/send", Some(&token), json!({"to": "549"})).await).await;
    assert_eq!((status, reply["code"].as_str()), (400, Some("VALIDATION_ERROR")), "missing field: {reply}");
    assert_eq!(manager.count("POST /send"), 0, "invalid sends never reach the manager");

    let response = app
        .http
        .post(format!("{}/api/whatsapp/51/send", app.url))
        .bearer_auth(&token)
        .header("idempotency-key", "order-1234")
        .header("x-request-id", "req-abc-1")
        .json(&json!({"to": "+54 9 11 2345-6789", "message": "hola"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-abc-1");
    let (status, reply) = status_and_json(response).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply["data"]["message_id"].as_str().unwrap().contains("3EB0DOUBLE"), "{reply}");
    let sends = manager.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].body.to.as_str(), "5491123456789", "the number is normalized before forwarding");
    assert_eq!(sends[0].body.cliente_id.map(ClienteId::get), Some(51));
    assert_eq!(sends[0].idempotency_key.as_deref(), Some("order-1234"));
    assert_eq!(sends[0].request_id.as_deref(), Some("req-abc-1"));
    assert_eq!(sends[0].cliente_id_header.as_deref(), Some("51"));
    assert_eq!(
        sends[0].authorization.as_deref(),
        Some(format!("Bearer {MANAGER_TOKEN}").as_str()),
        "SESSION_MANAGER_TOKEN is sent as a bearer token"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bad_idempotency_key_or_a_numeric_phone_is_refused_by_the_hub_naming_the_field() {
    let (manager, app, token) = hub_as_admin(SessionState::Ready).await;
    for key in ["   ", &"k".repeat(201), "clé"] {
        let response = app
            .http
            .post(format!("{}/api/whatsapp/51/send", app.url))
            .bearer_auth(&token)
            .header("idempotency-key", key.as_bytes())
            .json(&json!({"to": "5491123456789", "message": "hola"}))
            .send()
            .await
            .unwrap();
        let (status, reply) = status_and_json(response).await;
        assert_eq!((status, reply["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{key:?}: {reply}");
        assert_eq!(reply["detail"]["field"], "Idempotency-Key", "{reply}");
        assert!(reply["error"].as_str().unwrap().contains("1 to 200 visible ASCII"), "{reply}");
    }
    let (status, reply) = status_and_json(
        app.post("/api/whatsapp/51/send", Some(&token), json!({"to": 5491123456789_u64, "message": "hola"}))
            .await,
    )
    .await;
    assert_eq!(
        (status, reply["detail"]["field"].as_str()),
        (400, Some("to")),
        "a number is not a phone string: {reply}"
    );
    assert_eq!(manager.count("POST /send"), 0, "refused sends never reach the manager");
    app.stop().await;
}

#[tokio::test]
async fn a_hub_with_another_token_than_the_managers_sends_nothing() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    manager.set_state(SessionState::Ready);
    let wrong = "w".repeat(40);
    let app = spawn_app_with(&manager.url, |args| args.session_manager_token = Some(wrong.clone())).await;
    let token = app.admin_token().await;
    let send = json!({"to": "5491123456789", "message": "hola"});
    let response = app.post("/api/whatsapp/3/send", Some(&token), send).await;
    assert_ne!(response.status(), 200);
    assert!(manager.sends().is_empty(), "the manager refused the hub's token");
    app.stop().await;
}

#[tokio::test]
async fn two_hundred_pollers_cost_the_manager_almost_nothing_while_the_stream_is_live() {
    let (manager, app, token) = hub_as_admin(SessionState::QrRequired).await;
    app.wait_for_live_stream().await;
    let before = manager.total();

    let polls = (0..200).map(|_| {
        let request = app.http.get(format!("{}/api/admin/whatsapp/status", app.url)).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    });
    let answers = futures_util::future::join_all(polls).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["state"], "QR_REQUIRED");
    }
    let cost = manager.total() - before;
    assert!(cost <= 5, "200 polls cost the manager {cost} requests");

    // A change on the manager reaches pollers through the stream.
    manager.set_state(SessionState::Ready);
    let feed = app.state.feed.clone();
    wait_until("the hub sees READY", || {
        feed.live_status().is_some_and(|s| s.body.state == SessionState::Ready)
    })
    .await;
    let (_, body) = status_and_json(app.get("/api/admin/whatsapp/status", Some(&token)).await).await;
    assert_eq!((body["state"].as_str(), body["connected"].as_bool()), (Some("READY"), Some(true)));
    app.stop().await;
}

#[tokio::test]
async fn the_hub_resubscribes_when_the_manager_comes_back() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    manager.set_state(SessionState::QrRequired);
    let port = manager.addr.port();
    let app = spawn_app(&manager.url).await;
    let token = app.admin_token().await;
    app.wait_for_live_stream().await;

    manager.stop().await;
    let feed = app.state.feed.clone();
    wait_until("the hub notices the stream is gone", || feed.live_status().is_none()).await;
    let (status, body) = status_and_json(app.get("/api/admin/whatsapp/status", Some(&token)).await).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("SESSION_MANAGER_UNREACHABLE")), "{body}");

    let back = ManagerDouble::spawn_on(Mode::Normal, port).await;
    back.set_state(SessionState::Ready);
    wait_until("the hub resubscribes and sees READY", || {
        feed.live_status().is_some_and(|s| s.body.state == SessionState::Ready)
    })
    .await;
    assert_eq!(back.count("GET /events"), 1);
    let (status, body) = status_and_json(app.get("/api/admin/whatsapp/status", Some(&token)).await).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("READY")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn without_a_live_stream_status_is_asked_directly() {
    let manager = ManagerDouble::spawn(Mode::NoEvents).await;
    manager.set_state(SessionState::Ready);
    let app = spawn_app(&manager.url).await;
    let token = app.admin_token().await;
    let before = manager.count("GET /status");
    let (status, body) = status_and_json(app.get("/api/admin/whatsapp/status", Some(&token)).await).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("READY")), "{body}");
    assert_eq!(manager.count("GET /status"), before + 1, "answered by a direct GET /status");
    app.stop().await;
}

/// Reads SSE events from `body` until one named `name` satisfies `accept` (events completed by
/// earlier chunks wait in `pending`).
async fn next_event(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
    parser: &mut SseParser,
    pending: &mut VecDeque<SseEvent>,
    name: &str,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(event) = pending.pop_front() {
            if event.name == name {
                let value: Value = serde_json::from_str(&event.data).unwrap();
                if accept(&value) {
                    return value;
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("no `{name}` event within 10 s"))
            .expect("the stream stays open")
            .unwrap();
        pending.extend(parser.push(&chunk));
    }
}

#[tokio::test]
async fn the_admin_event_stream_relays_status_changes() {
    let (manager, app, token) = hub_as_admin(SessionState::Connecting).await;
    app.wait_for_live_stream().await;

    let response = app.get("/api/admin/whatsapp/events", Some(&token)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = response.bytes_stream();
    let (mut parser, mut pending) = (SseParser::default(), VecDeque::new());
    let upstream = next_event(&mut body, &mut parser, &mut pending, "upstream", |_| true).await;
    assert_eq!(upstream, json!({"connected": true, "url": manager.url}));
    next_event(&mut body, &mut parser, &mut pending, "status", |s| s["state"] == "CONNECTING").await;
    manager.set_state(SessionState::QrRequired);
    let status =
        next_event(&mut body, &mut parser, &mut pending, "status", |s| s["state"] == "QR_REQUIRED").await;
    assert!(status["qr"]["base64"].as_str().unwrap().starts_with("data:image/png;base64,"));
    // An open event stream must not keep the hub from stopping.
    app.stop().await;
    drop(body);
}

#[tokio::test]
async fn unknown_routes_bad_json_and_big_bodies_get_json_errors_and_security_headers() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;

    let response = app.get("/nope", None).await;
    for header in ["x-content-type-options", "x-frame-options", "referrer-policy", "content-security-policy"]
    {
        assert!(response.headers().contains_key(header), "{header} missing");
    }
    assert!(response.headers().contains_key("x-request-id"));
    let (status, body) = status_and_json(response).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");

    let bad_json = app
        .http
        .post(format!("{}/auth/login", app.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(bad_json).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{body}");

    let missing_field = app.post("/auth/login", None, json!({"email": "a@b.c"})).await;
    let (status, body) = status_and_json(missing_field).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{body}");

    let huge = json!({"email": "a@b.c", "password": "x".repeat(100_000)});
    let (status, body) = status_and_json(app.post("/auth/login", None, huge).await).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")), "{body}");

    let (status, body) =
        status_and_json(app.http.delete(format!("{}/health", app.url)).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")), "{body}");

    let (status, health) = status_and_json(app.get("/health", None).await).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")), "{health}");
    assert_eq!(health["checks"]["session_manager"]["state"], "INIT");
    assert_eq!(health["checks"]["database"]["backend"], "sqlite");

    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("route=\"unmatched\",method=\"GET\",status=\"404\""), "{metrics}");
    assert!(metrics.contains("route=\"/auth/login\",method=\"POST\",status=\"400\""), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn health_answers_503_when_the_database_is_down() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;
    let token = app.admin_token().await;
    app.state.store.close().await;
    let (status, health) = status_and_json(app.get("/health", None).await).await;
    assert_eq!((status, health["status"].as_str()), (503, Some("degraded")), "{health}");
    assert_eq!(health["checks"]["database"]["ok"], false);
    assert!(health["checks"]["database"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{health}");
    assert_eq!(health["checks"]["session_manager"]["ok"], true);
    let (status, body) = status_and_json(app.get("/api/admin/whatsapp/status", Some(&token)).await).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("DATABASE_ERROR")), "{body}");
    app.stop().await;
}
