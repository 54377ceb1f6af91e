//! Webhooks through the hub's API with a real HTTP receiver: signed deliveries, retries until a
//! failing receiver recovers, dead deliveries and their replay, who sees which webhooks and
//! events, private addresses, and the session.status / campaign.* events.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use central_hub::config::ServeArgs;
use central_hub::db::{HubEventKind, NewHubEvent};
use central_hub::webhooks::store::NewWebhook;
use serde_json::{Value, json};
use shared_contracts::{ClienteId, Role, SessionState};

use crate::helpers::{TestApp, spawn_app_with, status_and_json};
use crate::receiver::Receiver;
use manager_double::{ManagerDouble, Mode};

/// Quick retries for the tests.
fn quick_retries(args: &mut ServeArgs) {
    args.webhooks.webhook_retry_base_ms = 100;
    args.webhooks.webhook_retry_max_ms = 1_000;
}

async fn hub(tweak: impl FnOnce(&mut ServeArgs)) -> (ManagerDouble, TestApp, String) {
    let double = ManagerDouble::spawn(Mode::Normal).await;
    double.set_state(SessionState::Ready);
    let app = spawn_app_with(&double.url, |args| {
        quick_retries(args);
        tweak(args);
    })
    .await;
    let token = app.admin_token().await;
    (double, app, token)
}

/// Creates a webhook; returns its id and secret.
async fn create_webhook(app: &TestApp, token: &str, url: &str, events: &[&str]) -> (i64, String) {
    let (status, body) = status_and_json(
        app.post("/api/webhooks", Some(token), json!({ "url": url, "events": events })).await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (body["id"].as_i64().unwrap(), body["secret"].as_str().unwrap().to_owned())
}

/// Records an event as a producer does (then wakes the fan-out).
async fn record(app: &TestApp, event_id: &str, kind: HubEventKind, cliente_id: Option<u64>) {
    let event = NewHubEvent {
        event_id: event_id.to_owned(),
        kind,
        cliente_id: cliente_id.map(|id| ClienteId::try_from(id).unwrap()),
        instance: "admin".into(),
        data: json!({ "message_id": event_id, "from": "5491155550000", "text": "hola" }),
    };
    assert!(app.state.store.record_hub_event(&event).await.unwrap());
    app.state.webhooks.event_recorded();
}

async fn deliveries(app: &TestApp, token: &str, webhook: i64, state: &str) -> (u16, Value) {
    status_and_json(app.get(&format!("/api/webhooks/{webhook}/deliveries?state={state}"), Some(token)).await)
        .await
}

async fn replay(app: &TestApp, token: &str, delivery: i64) -> (u16, Value) {
    status_and_json(
        app.post(&format!("/api/webhooks/deliveries/{delivery}/replay"), Some(token), json!({})).await,
    )
    .await
}

async fn delete(app: &TestApp, token: &str, webhook: i64) -> u16 {
    let url = format!("{}/api/webhooks/{webhook}", app.url);
    app.http.delete(url).bearer_auth(token).send().await.unwrap().status().as_u16()
}

/// Event ids of the requests answered 2xx, with how many times each arrived.
fn accepted_ids(receiver: &Receiver) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for r in receiver.accepted() {
        *ids.entry(r.event_id()).or_default() += 1;
    }
    ids
}

#[tokio::test]
async fn a_recorded_event_reaches_the_receiver_signed_and_the_secret_is_shown_once() {
    let (_double, app, token) = hub(|_| {}).await;
    let receiver = Receiver::start().await;
    let (id, secret) = create_webhook(&app, &token, &receiver.url, &["message.received"]).await;
    assert!(secret.starts_with("whsec_"), "{secret}");

    record(&app, "message.received:ABC", HubEventKind::MessageReceived, Some(7)).await;
    record(&app, "message.ack:ABC:read", HubEventKind::MessageAck, Some(7)).await;
    let got = receiver.wait("one delivery", Duration::from_secs(10), |r| !r.is_empty()).await;
    let request = &got[0];
    assert!(request.signature_is_valid(&secret), "signature: {}", request.header("x-webhook-signature"));
    assert!(!request.signature_is_valid("whsec_wrong"), "another secret does not verify");
    assert_eq!(request.event_id(), "message.received:ABC");
    assert_eq!(request.header("x-webhook-event"), "message.received");
    assert_eq!(request.header("content-type"), "application/json");
    let body = request.json();
    assert_eq!(
        (body["id"].as_str(), body["event"].as_str(), body["cliente_id"].as_u64(), body["instance"].as_str()),
        (Some("message.received:ABC"), Some("message.received"), Some(7), Some("admin")),
        "{body}"
    );
    assert_eq!(body["data"]["text"], "hola");
    let t: i64 = request
        .header("x-webhook-signature")
        .trim_start_matches("t=")
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((t - jiff::Timestamp::now().as_second()).abs() < 60, "t is the send time in Unix seconds");

    // The delivery is listed as delivered; the secret appears in no later answer.
    let (status, list) = deliveries(&app, &token, id, "delivered").await;
    assert_eq!(status, 200, "{list}");
    let delivered = &list["deliveries"][0];
    assert_eq!(
        (delivered["event_id"].as_str(), delivered["attempts"].as_i64(), delivered["last_status"].as_i64()),
        (Some("message.received:ABC"), Some(1), Some(200)),
        "{list}"
    );
    let (status, all) = status_and_json(app.get("/api/webhooks", Some(&token)).await).await;
    assert_eq!((status, all["webhooks"][0]["url"].as_str()), (200, Some(receiver.url.as_str())), "{all}");
    assert!(!all.to_string().contains(&secret) && !list.to_string().contains(&secret));
    assert!(
        receiver.received().iter().all(|r| r.event_id() != "message.ack:ABC:read"),
        "an unwanted kind is not sent"
    );
    let audit = app.state.store.recent_audit(10).await.unwrap();
    let created = audit.iter().find(|a| a.action == "webhook.create").expect("the creation is audited");
    assert!(!format!("{created:?}").contains(&secret), "the audit log never holds the secret");
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("central_hub_webhook_deliveries_total{outcome=\"ok\"} 1"), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn bad_urls_and_unknown_events_are_refused_naming_the_field() {
    let (_double, app, token) = hub(|_| {}).await;
    for (body, field) in [
        (json!({"url": "ftp://crm.example.com/x", "events": ["message.ack"]}), "url"),
        (json!({"url": "not a url", "events": ["message.ack"]}), "url"),
        (json!({"url": "https://crm.example.com/x", "events": ["message.sent"]}), "events"),
        (json!({"url": "https://crm.example.com/x", "events": []}), "events"),
    ] {
        let (status, answer) =
            status_and_json(app.post("/api/webhooks", Some(&token), body.clone()).await).await;
        assert_eq!((status, answer["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{body} -> {answer}");
        assert_eq!(answer["detail"]["field"], field, "{answer}");
    }
    let (status, _) = status_and_json(app.get("/api/webhooks", None).await).await;
    assert_eq!(status, 401, "the routes need a token");
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_failing_for_20_s_gets_every_event_once_it_recovers() {
    let (_double, app, token) = hub(|_| {}).await;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let (id, secret) = create_webhook(&app, &token, &receiver.url, &["message.received"]).await;
    let ids: BTreeSet<String> = (0..20).map(|i| format!("message.received:FAIL{i}")).collect();
    for event_id in &ids {
        record(&app, event_id, HubEventKind::MessageReceived, None).await;
    }
    let first = Instant::now();
    receiver.wait("the 20 first attempts", Duration::from_secs(10), |r| r.len() >= 20).await;

    // A pending delivery cannot be replayed: it is already being retried.
    let (_, pending) = deliveries(&app, &token, id, "pending").await;
    let pending_id = pending["deliveries"][0]["id"].as_i64().expect("pending deliveries are listed");
    let (status, body) = replay(&app, &token, pending_id).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("WEBHOOK_DELIVERY_PENDING")), "{body}");

    // 20 s of failures: the attempts go on (retries), none is given up.
    receiver
        .wait("20 s of failing attempts", Duration::from_secs(40), |_| {
            first.elapsed() >= Duration::from_secs(20)
        })
        .await;
    let failed = receiver.received();
    assert!(failed.len() > 40, "each event was retried: {} attempts", failed.len());
    let (_, dead) = deliveries(&app, &token, id, "dead").await;
    assert_eq!(dead["deliveries"].as_array().map(Vec::len), Some(0), "{dead}");

    receiver.answer(200);
    receiver
        .wait("every event accepted", Duration::from_secs(15), |_| accepted_ids(&receiver).len() == ids.len())
        .await;
    let accepted = accepted_ids(&receiver);
    assert_eq!(accepted.keys().cloned().collect::<BTreeSet<_>>(), ids, "none lost");
    assert!(receiver.accepted().iter().all(|r| r.signature_is_valid(&secret)));
    let (_, delivered) = deliveries(&app, &token, id, "delivered").await;
    assert_eq!(delivered["deliveries"].as_array().map(Vec::len), Some(20), "{delivered}");
    assert!(delivered["deliveries"].as_array().unwrap().iter().all(|d| d["attempts"].as_i64() > Some(1)));
    app.stop().await;
}

#[tokio::test]
async fn a_delivery_dies_after_the_max_age_and_a_replay_delivers_it() {
    let (_double, app, token) = hub(|args| {
        args.webhooks.webhook_max_age_seconds = 1;
        args.webhooks.webhook_retry_max_ms = 300;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let (id, secret) = create_webhook(&app, &token, &receiver.url, &["message.ack"]).await;
    record(&app, "message.ack:DEAD:read", HubEventKind::MessageAck, Some(3)).await;

    let deadline = Instant::now() + Duration::from_secs(15);
    let dead = loop {
        let (status, list) = deliveries(&app, &token, id, "dead").await;
        assert_eq!(status, 200, "{list}");
        if let Some(d) = list["deliveries"].as_array().and_then(|l| l.first()) {
            break d.clone();
        }
        assert!(Instant::now() < deadline, "the delivery never died: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead["last_status"], 503, "{dead}");
    let error = dead["last_error"].as_str().unwrap();
    assert!(error.contains("gave up after") && error.contains("503"), "{error}");
    assert!(receiver.accepted().is_empty());

    receiver.answer(200);
    let (status, replayed) = replay(&app, &token, dead["id"].as_i64().unwrap()).await;
    assert_eq!((status, replayed["state"].as_str()), (200, Some("pending")), "{replayed}");
    let got = receiver
        .wait("the replayed delivery", Duration::from_secs(10), |r| r.iter().any(|r| r.answered == 200))
        .await;
    let accepted = got.iter().find(|r| r.answered == 200).unwrap();
    assert_eq!(accepted.event_id(), "message.ack:DEAD:read", "the replay carries the same event id");
    assert!(accepted.signature_is_valid(&secret));
    let deadline = Instant::now() + Duration::from_secs(10);
    while deliveries(&app, &token, id, "delivered").await.1["deliveries"].as_array().is_none_or(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "the replayed delivery is never listed as delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let audit = app.state.store.recent_audit(10).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "webhook.replay"), "the replay is audited");
    app.stop().await;
}

#[tokio::test]
async fn a_client_gets_only_its_own_events_and_cannot_see_anothers_webhooks() {
    let (_double, app, admin) = hub(|args| args.webhooks.webhook_allow_private = true).await;
    app.add_user("c7@test.io", "client password 7", Role::Client, Some(7)).await;
    app.add_user("c8@test.io", "client password 8", Role::Client, Some(8)).await;
    let c7 = app.token("c7@test.io", "client password 7").await;
    let c8 = app.token("c8@test.io", "client password 8").await;
    let (client_receiver, admin_receiver) = (Receiver::start().await, Receiver::start().await);
    let all = ["message.received", "message.ack"];
    let (c7_hook, _) = create_webhook(&app, &c7, &client_receiver.url, &all).await;
    create_webhook(&app, &admin, &admin_receiver.url, &all).await;

    record(&app, "message.received:FOR7", HubEventKind::MessageReceived, Some(7)).await;
    record(&app, "message.received:FOR8", HubEventKind::MessageReceived, Some(8)).await;
    record(&app, "message.received:NOBODY", HubEventKind::MessageReceived, None).await;
    admin_receiver.wait("the three events", Duration::from_secs(10), |r| r.len() >= 3).await;
    client_receiver.wait("its event", Duration::from_secs(10), |r| !r.is_empty()).await;
    let admin_ids: BTreeSet<String> = admin_receiver.received().iter().map(|r| r.event_id()).collect();
    assert_eq!(admin_ids.len(), 3, "an admin's webhook gets every event: {admin_ids:?}");
    let client_ids: Vec<String> = client_receiver.received().iter().map(|r| r.event_id()).collect();
    assert_eq!(client_ids, ["message.received:FOR7"], "a client's webhook gets only its own events");

    let (status, listed) = status_and_json(app.get("/api/webhooks", Some(&c8)).await).await;
    assert_eq!((status, listed["webhooks"].as_array().map(Vec::len)), (200, Some(0)), "{listed}");
    let (status, listed) = status_and_json(app.get("/api/webhooks", Some(&admin)).await).await;
    assert_eq!((status, listed["webhooks"].as_array().map(Vec::len)), (200, Some(2)), "{listed}");
    assert_eq!(delete(&app, &c8, c7_hook).await, 404, "another client's webhook does not exist for c8");
    let (status, body) = deliveries(&app, &c8, c7_hook, "").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    let (_, own) = deliveries(&app, &c7, c7_hook, "delivered").await;
    let delivery = own["deliveries"][0]["id"].as_i64().expect("c7 sees its deliveries");
    let (status, _) = replay(&app, &c8, delivery).await;
    assert_eq!(status, 404, "nor can c8 replay its deliveries");
    assert_eq!(delete(&app, &c7, c7_hook).await, 204);
    let (_, listed) = status_and_json(app.get("/api/webhooks", Some(&c7)).await).await;
    assert_eq!(listed["webhooks"].as_array().map(Vec::len), Some(0), "{listed}");
    app.stop().await;
}

#[tokio::test]
async fn a_clients_private_url_is_refused_at_creation_and_at_delivery() {
    let (_double, app, admin) = hub(|_| {}).await;
    app.add_user("c7@test.io", "client password 7", Role::Client, Some(7)).await;
    let c7 = app.token("c7@test.io", "client password 7").await;
    let receiver = Receiver::start().await;
    for url in [
        receiver.url.as_str(),
        "http://localhost:9/x",
        "http://[::1]/x",
        "http://[::ffff:10.0.0.1]/x",
        "http://0.0.0.0/x",
        "http://169.254.169.254/latest",
        "http://[fd00::1]/x",
    ] {
        let body = json!({"url": url, "events": ["message.received"]});
        let (status, answer) = status_and_json(app.post("/api/webhooks", Some(&c7), body).await).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("WEBHOOK_URL_NOT_ALLOWED")),
            "{url}: {answer}"
        );
        assert_eq!(answer["detail"]["field"], "url");
    }
    // An admin's webhook may point anywhere.
    create_webhook(&app, &admin, &receiver.url, &["message.received"]).await;

    // A client's webhook whose name now resolves to a private address (stored as if DNS changed).
    let stored = app
        .state
        .store
        .create_webhook(NewWebhook {
            url: receiver.url.replace("127.0.0.1", "localhost"),
            events: vec![HubEventKind::MessageReceived],
            secret: "whsec_test".into(),
            cliente_id: Some(7),
            created_by: "c7@test.io".into(),
        })
        .await
        .unwrap();
    record(&app, "message.received:PRIVATE", HubEventKind::MessageReceived, Some(7)).await;
    receiver.wait("the admin's delivery", Duration::from_secs(10), |r| !r.is_empty()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        let (_, list) = deliveries(&app, &c7, stored.id, "pending").await;
        if let Some(error) = list["deliveries"][0]["last_error"].as_str() {
            break error.to_owned();
        }
        assert!(Instant::now() < deadline, "the refused delivery never failed: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(error.contains("refused") && error.contains("WEBHOOK_ALLOW_PRIVATE"), "{error}");
    assert_eq!(receiver.received().len(), 1, "only the admin's webhook reached the receiver");
    app.stop().await;
}

#[tokio::test]
async fn session_status_and_campaign_events_are_recorded_and_delivered() {
    let (double, app, token) = hub(|args| {
        // Slow enough that the running state outlasts the change announcements' 300 ms batching.
        args.campaign_min_delay_ms = 300;
        args.campaign_max_delay_ms = 300;
        args.campaign_max_per_hour = 0;
        args.campaign_max_per_day = 0;
    })
    .await;
    let receiver = Receiver::start().await;
    let events = ["session.status", "campaign.progress", "campaign.completed"];
    let (_, secret) = create_webhook(&app, &token, &receiver.url, &events).await;

    let mut status = manager_double::status_in(SessionState::Disconnected);
    status.since = "2026-02-01T10:00:00Z".into();
    double.set_status(status);
    receiver
        .wait("the disconnection", Duration::from_secs(10), |r| {
            r.iter().any(|r| r.event_id() == "session.status:DISCONNECTED:2026-02-01T10:00:00Z")
        })
        .await;
    let mut status = manager_double::status_in(SessionState::Ready);
    status.since = "2026-02-01T10:00:05Z".into();
    double.set_status(status);
    let got = receiver
        .wait("the return to READY", Duration::from_secs(10), |r| {
            r.iter().any(|r| r.event_id() == "session.status:READY:2026-02-01T10:00:05Z")
        })
        .await;
    let ready = got.iter().find(|r| r.event_id() == "session.status:READY:2026-02-01T10:00:05Z").unwrap();
    let body = ready.json();
    assert_eq!(
        (body["data"]["state"].as_str(), body["data"]["connected"].as_bool()),
        (Some("READY"), Some(true)),
        "{body}"
    );
    assert_eq!(body["data"]["previous_state"], "DISCONNECTED", "{body}");
    assert!(body["cliente_id"].is_null(), "the session is the admins'");
    assert!(ready.signature_is_valid(&secret));

    let csv: String = std::iter::once("phone;nombre\n".to_owned())
        .chain((0..5).map(|i| format!("54911{i:08};P{i}\n")))
        .collect();
    let campaign = json!({"name": "Promo", "cliente_id": 9, "template": "Hola {{nombre}}", "csv": csv,
                          "time_zone": "UTC", "window": {"start": "00:00", "end": "24:00"}});
    let (status, created) = status_and_json(app.post("/api/campaigns", Some(&token), campaign).await).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (status, _) =
        status_and_json(app.post(&format!("/api/campaigns/{id}/start"), Some(&token), json!({})).await).await;
    assert_eq!(status, 200);
    let completed_id = format!("campaign.completed:{id}");
    let got = receiver
        .wait("campaign.completed", Duration::from_secs(20), |r| {
            r.iter().any(|r| r.event_id() == completed_id)
        })
        .await;
    let completed: Vec<_> = got.iter().filter(|r| r.event_id() == completed_id).collect();
    let body = completed[0].json();
    assert_eq!(
        (
            body["event"].as_str(),
            body["cliente_id"].as_u64(),
            body["data"]["sent"].as_i64(),
            body["data"]["total"].as_i64()
        ),
        (Some("campaign.completed"), Some(9), Some(5), Some(5)),
        "{body}"
    );
    let progress: Vec<Value> =
        got.iter().filter(|r| r.header("x-webhook-event") == "campaign.progress").map(|r| r.json()).collect();
    assert!(progress.iter().any(|p| p["data"]["state"] == "running"), "the start is told: {progress:?}");
    assert!(progress.iter().any(|p| p["data"]["state"] == "completed"), "the end is told: {progress:?}");
    app.stop().await;
}

#[tokio::test]
async fn two_hubs_on_one_postgres_deliver_every_event_exactly_once() {
    crate::store::with_postgres_schema(|url| async move {
        let double = ManagerDouble::spawn(Mode::Normal).await;
        double.set_state(SessionState::Ready);
        let on_postgres = |args: &mut ServeArgs| {
            quick_retries(args);
            args.database_url = url.clone();
        };
        let first = spawn_app_with(&double.url, on_postgres).await;
        let second = spawn_app_with(&double.url, on_postgres).await;
        let token = first.admin_token().await;
        let receiver = Receiver::start().await;
        let (_, secret) = create_webhook(&first, &token, &receiver.url, &["message.received"]).await;
        let ids: BTreeSet<String> = (0..200).map(|i| format!("message.received:PG{i:03}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let hub = if i % 2 == 0 { &first } else { &second };
            record(hub, id, HubEventKind::MessageReceived, None).await;
        }
        receiver
            .wait("the 200 events", Duration::from_secs(30), |_| accepted_ids(&receiver).len() == ids.len())
            .await;
        let accepted = accepted_ids(&receiver);
        assert_eq!(accepted.keys().cloned().collect::<BTreeSet<_>>(), ids);
        let twice: Vec<_> = accepted.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "the two hubs' workers never claim one delivery together: {twice:?}");
        assert!(receiver.accepted().iter().all(|r| r.signature_is_valid(&secret)));
        first.stop().await;
        second.stop().await;
    })
    .await;
}
