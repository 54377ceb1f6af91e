//! The real hub binary killed (SIGKILL) with 50 webhook deliveries in flight: after a restart on
//! the same database every one arrives, and a repeat carries the same event id and body.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use central_hub::db::{HubEventKind, NewHubEvent, Store};
use serde_json::json;

use crate::binary::{Running, hub_command};
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET, dead_url, http_client, status_and_json};
use crate::receiver::Receiver;

fn start_hub(db: &str, manager: &str) -> (Running, String) {
    let mut command = hub_command(db, manager);
    command
        .env("JWT_SECRET", JWT_SECRET)
        .env("ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("WEBHOOK_RETRY_BASE_MS", "100")
        .env("WEBHOOK_RETRY_MAX_MS", "500");
    let mut hub = Running::start(command);
    let url = hub.wait_listening();
    (hub, url)
}

#[tokio::test]
async fn deliveries_in_flight_when_the_hub_is_killed_all_arrive_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/hub.db", dir.path().display());
    let manager = dead_url().await;
    let receiver = Receiver::start().await;
    // The receiver holds every request: the hub is killed while all 50 wait for an answer.
    receiver.delay(Duration::from_secs(30));

    let (mut hub, url) = start_hub(&db, &manager);
    let http = http_client();
    let login = http
        .post(format!("{url}/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}));
    let (status, body) = status_and_json(login.send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let create = http
        .post(format!("{url}/api/webhooks"))
        .bearer_auth(&token)
        .json(&json!({"url": receiver.url, "events": ["message.received"]}));
    let (status, created) = status_and_json(create.send().await.unwrap()).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();

    // Another process writes the events into the hub's database (as a producer would); the
    // running hub's fan-out finds them at its next poll.
    let store = Store::connect(&db).await.unwrap();
    let ids: BTreeSet<String> = (0..50).map(|i| format!("message.received:KILL{i:02}")).collect();
    for id in &ids {
        let event = NewHubEvent {
            event_id: id.clone(),
            kind: HubEventKind::MessageReceived,
            cliente_id: None,
            instance: "admin".into(),
            data: json!({"message_id": id, "text": "hola"}),
        };
        assert!(store.record_hub_event(&event).await.unwrap());
    }
    store.close().await;
    receiver.wait("the 50 deliveries in flight", Duration::from_secs(20), |r| r.len() >= 50).await;

    hub.child.kill().expect("SIGKILL the hub");
    hub.child.wait().expect("the hub is gone");
    let before_restart = receiver.received();
    receiver.delay(Duration::ZERO);

    let (hub, _) = start_hub(&db, &manager);
    let accepted_all = |r: &[crate::receiver::Received]| {
        r[before_restart.len()..].iter().map(|r| r.event_id()).collect::<BTreeSet<_>>() == ids
    };
    receiver.wait("all 50 after the restart", Duration::from_secs(30), accepted_all).await;
    drop(hub);

    let mut bodies: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for request in receiver.received() {
        assert!(ids.contains(&request.event_id()), "an unknown event id {}", request.event_id());
        assert!(request.signature_is_valid(&secret));
        assert_eq!(request.json()["id"], request.event_id(), "the header names the body's event");
        bodies.entry(request.event_id()).or_default().insert(request.body.to_vec());
    }
    assert_eq!(bodies.len(), 50, "none lost");
    assert!(bodies.values().all(|b| b.len() == 1), "a repeat is the same body with the same event id");
}
