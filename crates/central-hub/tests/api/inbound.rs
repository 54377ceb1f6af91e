//! The inbound stream against the manager double: incoming messages injected in the double's
//! journal reach the hub's `message` table exactly once (replays, restarts of either side, a
//! database failure), a gap is reported, and each stored message records one `hub_event`. What
//! the events do (attribution, acks, campaigns, opt-outs) is in `inbound_effects.rs`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use central_hub::db::{HubEvent, HubEventKind};
use central_hub::inbound::metrics::Outcome;
use manager_double::{InboundJournal, ManagerDouble, Mode};
use serde_json::{Value, json};
use shared_contracts::SessionState;

use crate::binary::{Running, hub_command};
use crate::helpers::{JWT_SECRET, TestApp, http_client, hub_as_admin, status_and_json, wait_until};

/// `GET /api/messages?<query>` as `token`: the status and body.
pub(crate) async fn messages(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    status_and_json(app.get(&format!("/api/messages?{query}"), Some(token)).await).await
}

/// Polls `GET /api/messages?<query>` until it lists `n` messages (10 s at most); returns them.
pub(crate) async fn wait_for_messages(app: &TestApp, token: &str, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = messages(app, token, query).await;
        assert_eq!(status, 200, "{body}");
        let list = body["messages"].as_array().cloned().unwrap_or_default();
        if list.len() == n {
            return list;
        }
        assert!(Instant::now() < deadline, "never {n} messages for {query:?}: {body}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Waits until the hub stored the stream up to `seq`.
pub(crate) async fn wait_for_position(app: &TestApp, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.store.inbound_position("admin").await.unwrap() < seq {
        assert!(Instant::now() < deadline, "the hub never applied event {seq}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The hub events recorded about messages (incoming and acks): the webhooks' `session.status` and
/// `campaign.*` events, recorded beside them, are not this module's.
pub(crate) async fn message_events(app: &TestApp) -> Vec<HubEvent> {
    let all = app.state.store.hub_events_after(0, 10_000).await.unwrap();
    all.into_iter()
        .filter(|e| matches!(e.kind, HubEventKind::MessageReceived | HubEventKind::MessageAck))
        .collect()
}

/// The hub events recorded about WhatsApp message `id`.
pub(crate) async fn events_about(app: &TestApp, id: &str) -> Vec<HubEvent> {
    let all = app.state.store.hub_events_after(0, 10_000).await.unwrap();
    all.into_iter().filter(|e| e.data["message_id"] == id).collect()
}

#[tokio::test]
async fn an_incoming_message_is_stored_once_whatever_is_replayed() {
    let (double, app, token) = hub_as_admin(SessionState::Ready).await;
    app.wait_for_live_stream().await;
    let first = double.inbound().text("5491100000001", "hola, ¿qué tal?");
    let listed = wait_for_messages(&app, &token, "direction=in", 1).await;
    assert_eq!(listed[0]["text"], "hola, ¿qué tal?");
    assert_eq!(listed[0]["phone"], "5491100000001");
    assert_eq!(listed[0]["direction"], "in");
    assert_eq!(listed[0]["cliente_id"], Value::Null, "nobody wrote to that phone: admins only");

    // The manager restarts with the same journal and replays it all (as if the hub's position
    // were older): nothing is stored twice.
    let journal: InboundJournal = double.inbound().clone();
    let port = double.addr.port();
    double.stop().await;
    journal.replay_everything(true);
    let double = ManagerDouble::spawn_with(Mode::Normal, port, journal.clone()).await;
    double.set_state(SessionState::Ready);
    let metrics = app.state.metrics.clone();
    wait_until("the replayed event is seen as a duplicate", || {
        metrics.inbound.count(Outcome::Duplicate) >= 1
    })
    .await;
    // The same message journaled again under a new sequence (a manager that lost its journal).
    let again = journal.append(first.kind.clone());
    wait_for_position(&app, again.seq).await;
    let listed = wait_for_messages(&app, &token, "direction=in", 1).await;
    assert_eq!(listed.len(), 1);
    let id = whatsapp_id(&first);
    let events = events_about(&app, &id).await;
    assert_eq!(events.len(), 1, "one hub_event for the message: {events:?}");
    assert_eq!(events[0].kind, HubEventKind::MessageReceived);
    assert_eq!(events[0].data["text"], "hola, ¿qué tal?");
    assert_eq!(events[0].cliente_id, None);
    app.stop().await;
}

/// The WhatsApp id of an injected event.
fn whatsapp_id(event: &shared_contracts::InboundEvent) -> String {
    match &event.kind {
        shared_contracts::InboundKind::Message(m) => m.message_id.clone(),
        shared_contracts::InboundKind::Ack(a) => a.message_id.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_messages_that_arrive_while_the_hub_binary_is_down_are_stored_once_after_it_starts() {
    let double = ManagerDouble::spawn(Mode::Normal).await;
    double.set_state(SessionState::Ready);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/hub.db", dir.path().display());
    let start = || {
        let mut command = hub_command(&db, &double.url);
        command
            .env("JWT_SECRET", JWT_SECRET)
            .env("ADMIN_EMAIL", "admin@test.io")
            .env("ADMIN_PASSWORD", "admin password 1");
        Running::start(command)
    };
    let http = http_client();
    let token_of = |url: String| {
        let http = http.clone();
        async move {
            let login = http
                .post(format!("{url}/auth/login"))
                .json(&json!({"email": "admin@test.io", "password": "admin password 1"}))
                .send()
                .await
                .unwrap();
            let (status, body) = status_and_json(login).await;
            assert_eq!(status, 200, "{body}");
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let list = |url: String, token: String| {
        let http = http.clone();
        async move {
            let response = http
                .get(format!("{url}/api/messages?direction=in&limit=200"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let (status, body) = status_and_json(response).await;
            assert_eq!(status, 200, "{body}");
            body["messages"].as_array().cloned().unwrap()
        }
    };

    let mut hub = tokio::task::block_in_place(start);
    let url = tokio::task::block_in_place(|| hub.wait_listening());
    let token = token_of(url.clone()).await;
    double.inbound().text("5491100000100", "antes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while list(url.clone(), token.clone()).await.len() != 1 {
        assert!(Instant::now() < deadline, "the first message is never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tokio::task::block_in_place(|| hub.terminate()).success(), "SIGTERM stops the hub");

    for i in 0..20 {
        double.inbound().text(&format!("54911000002{i:02}"), &format!("mensaje {i}"));
    }
    let mut hub = tokio::task::block_in_place(start);
    let url = tokio::task::block_in_place(|| hub.wait_listening());
    let token = token_of(url.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let stored = loop {
        let stored = list(url.clone(), token.clone()).await;
        if stored.len() >= 21 {
            break stored;
        }
        assert!(Instant::now() < deadline, "only {} of 21 messages stored", stored.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(stored.len(), 21, "each message once");
    let ids: BTreeSet<&str> = stored.iter().map(|m| m["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 21, "no WhatsApp id twice");
    let texts: BTreeSet<&str> = stored.iter().map(|m| m["text"].as_str().unwrap()).collect();
    for i in 0..20 {
        assert!(texts.contains(format!("mensaje {i}").as_str()), "mensaje {i} is stored: {texts:?}");
    }
    assert!(tokio::task::block_in_place(|| hub.terminate()).success());
}

#[tokio::test]
async fn events_the_manager_dropped_are_reported_as_a_gap_and_the_rest_is_stored() {
    let double = ManagerDouble::spawn(Mode::Normal).await;
    double.set_state(SessionState::Ready);
    for i in 0..3 {
        double.inbound().text("5491100000031", &format!("viejo {i}"));
    }
    double.inbound().forget_through(2);
    let app = crate::helpers::spawn_app(&double.url).await;
    let admin = app.admin_token().await;
    let listed = wait_for_messages(&app, &admin, "direction=in", 1).await;
    assert_eq!(listed[0]["text"], "viejo 2", "what the manager still had is stored");
    let metrics = app.state.metrics.clone();
    wait_until("the gap is counted", || metrics.render().contains("central_hub_inbound_gaps_total 1")).await;
    app.stop().await;
}

#[tokio::test]
async fn a_database_failure_is_retried_and_no_event_is_skipped() {
    use sqlx::Connection;
    crate::store::with_postgres_schema(|url| async move {
        let double = ManagerDouble::spawn(Mode::Normal).await;
        double.set_state(SessionState::Ready);
        let app = crate::helpers::spawn_app_with(&double.url, |args| args.database_url = url.clone()).await;
        app.wait_for_live_stream().await;
        let admin = app.admin_token().await;
        let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("alter table message rename to message_away").execute(&mut db).await.unwrap();
        double.inbound().text("5491100000041", "primero");
        let second = double.inbound().text("5491100000042", "segundo");
        let metrics = app.state.metrics.clone();
        let failures = || {
            metrics.render().lines().any(|l| {
                l.strip_prefix("central_hub_inbound_apply_failures_total ")
                    .is_some_and(|n| n.parse::<u64>().unwrap() >= 2)
            })
        };
        wait_until("the follower fails and retries", failures).await;
        assert_eq!(app.state.store.inbound_position("admin").await.unwrap(), 0, "nothing advanced");
        sqlx::raw_sql("alter table message_away rename to message").execute(&mut db).await.unwrap();
        wait_for_position(&app, second.seq).await;
        let listed = wait_for_messages(&app, &admin, "direction=in", 2).await;
        let texts: Vec<&str> = listed.iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["segundo", "primero"], "both stored once, in order");
        assert_eq!(message_events(&app).await.len(), 2);
        app.stop().await;
    })
    .await;
}
