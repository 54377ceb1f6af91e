//! The inbound path up to the manager's event stream, end to end: the simulator delivers messages
//! and acks in the page, the real bridge reports them, the real `session-manager` binary journals
//! them and serves them on `/events`, also across a restart.

use std::path::Path;
use std::time::Duration;

use e2e::{
    ChromiumReaper, JsonClient, Service, SseEvent, SseStream, TEST_MANAGER_TOKEN, free_port, wait_until,
};
use serde_json::{Value, json};
use wa_sim::{SimConfig, SimHandle};

const CUSTOMER: &str = "34600111222";
/// A number whose chat the simulator addresses by LID.
const LID_CUSTOMER: &str = "34611222333";
const EVENT_WAIT: Duration = Duration::from_secs(15);

async fn start_manager(port: u16, data_dir: &Path, sim: &SimHandle) -> Service {
    let port = port.to_string();
    let data_dir = data_dir.to_string_lossy();
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "auto".into());
    let sim_url = sim.url();
    let env = [
        ("SESSION_MANAGER_HOST", "127.0.0.1"),
        ("SESSION_MANAGER_PORT", port.as_str()),
        ("SESSION_MANAGER_DATA_DIR", &*data_dir),
        ("WHATSAPP_WEB_URL", sim_url.as_str()),
        // A restart with the saved login comes back to READY on its own.
        ("AUTO_CONNECT", "saved"),
        ("CHROMIUM_PATH", chromium.as_str()),
        ("MAX_QR_ATTEMPTS", "1000"),
    ];
    Service::start("session-manager", &[], &env).await.expect("the manager starts")
}

fn manager_client(manager: &Service) -> JsonClient {
    JsonClient::new(manager.url()).expect("client").with_bearer(TEST_MANAGER_TOKEN)
}

async fn wait_for_state(manager: &JsonClient, state: &str) {
    wait_until(&format!("the manager in {state}"), Duration::from_secs(40), || async {
        let (_, body) = manager.get("/status").await.ok()?;
        (body["state"] == state).then_some(())
    })
    .await;
}

/// Connects and scans: the manager is READY.
async fn link(manager: &JsonClient, sim: &JsonClient) {
    let (status, body) = manager.post("/connect", None).await.expect("connect");
    assert_eq!(status, 200, "connect: {body}");
    wait_for_state(manager, "QR_REQUIRED").await;
    let (status, body) = sim.post("/__sim/scan", None).await.expect("scan");
    assert_eq!(status, 200, "scan: {body}");
    wait_for_state(manager, "READY").await;
}

fn is_inbound_for(id: &str) -> impl FnMut(&SseEvent) -> bool + '_ {
    move |e| e.event == "inbound" && e.data["message_id"] == id
}

async fn events(manager: &Service, headers: &[(&str, &str)]) -> SseStream {
    SseStream::open(&format!("{}/events", manager.url()), TEST_MANAGER_TOKEN, headers)
        .await
        .expect("/events opens")
}

async fn deliver(sim: &JsonClient, body: Value) -> String {
    let (status, answer) = sim.post("/__sim/incoming", Some(&body)).await.expect("incoming");
    assert_eq!(status, 200, "incoming {body}: {answer}");
    answer["message_id"].as_str().expect("a message id").to_owned()
}

async fn send(manager: &JsonClient, text: &str) -> String {
    let (status, body) =
        manager.post("/send", Some(&json!({"to": CUSTOMER, "message": text}))).await.expect("send");
    assert_eq!(status, 200, "send: {body}");
    body["data"]["message_id"].as_str().expect("data.message_id").to_owned()
}

async fn ack_event(stream: &mut SseStream, id: &str, level: &str) -> SseEvent {
    stream
        .next_matching(&format!("the {level} ack of {id}"), EVENT_WAIT, |e| {
            e.event == "inbound" && e.data["message_id"] == id && e.data["ack"] == level
        })
        .await
        .expect("the ack arrives")
}

#[tokio::test(flavor = "multi_thread")]
async fn incoming_messages_and_acks_reach_the_event_stream_and_history_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = ChromiumReaper::new(dir.path());
    let sim_config = SimConfig {
        port: 0,
        qr_rotate_ms: 2_000,
        load_delay_ms: 100,
        lid_numbers: vec![LID_CUSTOMER.into()],
        ack_delivered_ms: Some(200),
        ack_read_ms: Some(400),
        ..SimConfig::default()
    };
    let sim = wa_sim::spawn(sim_config).await.unwrap();
    let sim_client = JsonClient::new(sim.url()).unwrap();
    let manager = start_manager(free_port(), &dir.path().join("manager"), &sim).await;
    let client = manager_client(&manager);
    link(&client, &sim_client).await;
    // Everything journaled since the start: history reported during the login would show up here.
    let mut stream = events(&manager, &[("Last-Event-ID", "0")]).await;

    // The page loaded the history at login (isNewMsg false): listed by the simulator, never reported.
    let history: Vec<String> =
        wait_until("the history loaded in the page", Duration::from_secs(10), || async {
            let (_, list) = sim_client.get("/__sim/incoming").await.ok()?;
            let ids: Vec<String> = list
                .as_array()?
                .iter()
                .filter(|m| m["new"] == false)
                .filter_map(|m| m["message_id"].as_str().map(str::to_owned))
                .collect();
            (ids.len() == 3).then_some(ids)
        })
        .await;

    let text_id = deliver(&sim_client, json!({"from": CUSTOMER, "text": "Hola, quiero info"})).await;
    let first =
        stream.next_matching("the first inbound event", EVENT_WAIT, |e| e.event == "inbound").await.unwrap();
    assert_eq!(
        first.data["message_id"],
        text_id.as_str(),
        "the first inbound event is the new message, not history ({history:?}): {first:?}"
    );
    assert_eq!(first.data["type"], "message");
    assert_eq!(first.data["from"], CUSTOMER);
    assert_eq!(first.data["chat"], format!("{CUSTOMER}@c.us"));
    assert_eq!(first.data["message_type"], "chat");
    assert_eq!(first.data["text"], "Hola, quiero info");
    assert_eq!(first.data["session"], "admin");
    assert_eq!(first.id.as_deref(), Some(first.data["seq"].to_string().as_str()), "id: is the sequence");

    let image = deliver(&sim_client, json!({"from": CUSTOMER, "type": "image"})).await;
    let event = stream.next_matching("the image", EVENT_WAIT, is_inbound_for(&image)).await.unwrap();
    assert_eq!(event.data["message_type"], "image");
    assert!(event.data.get("text").is_none(), "an image without caption has no text: {event:?}");
    let captioned =
        deliver(&sim_client, json!({"from": CUSTOMER, "type": "image", "caption": "mi factura"})).await;
    let event =
        stream.next_matching("the captioned image", EVENT_WAIT, is_inbound_for(&captioned)).await.unwrap();
    assert_eq!(event.data["text"], "mi factura");

    let from_lid = deliver(&sim_client, json!({"from": LID_CUSTOMER, "text": "desde un chat LID"})).await;
    let event =
        stream.next_matching("the LID chat's message", EVENT_WAIT, is_inbound_for(&from_lid)).await.unwrap();
    assert_eq!(event.data["from"], LID_CUSTOMER, "the phone number behind the LID: {event:?}");
    assert!(event.data["chat"].as_str().unwrap_or_default().ends_with("@lid"), "{event:?}");

    // A send gets sent, delivered and read, with the id POST /send answered.
    let sent = send(&client, "Gracias por escribir").await;
    let mut seqs = Vec::new();
    for level in ["sent", "delivered", "read"] {
        let event = ack_event(&mut stream, &sent, level).await;
        assert_eq!(event.data["to"], CUSTOMER);
        seqs.push(event.data["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "acks in order: {seqs:?}");
    let (_, recorded) = sim_client.get("/__sim/messages").await.unwrap();
    assert_eq!(recorded[0]["ack"], 3, "the simulator has it read: {recorded}");

    // Nothing of the history came through, before or after.
    let rest = stream.drain();
    assert!(!rest.iter().any(|e| history.iter().any(|id| e.data["message_id"] == id.as_str())), "{rest:?}");

    let (status, body) = sim_client
        .post("/__sim/ack", Some(&json!({"message_id": "true_x@c.us_NOPE", "ack": "read"})))
        .await
        .unwrap();
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_message")), "{body}");
    let (status, body) = client.get("/events?since=abc").await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert_eq!(body["detail"]["field"], "since");

    drop(stream);
    let dir_path = dir.path().join("manager");
    assert!(manager.stop().await.unwrap().success());
    e2e::assert_no_chromium_using(&dir_path, Duration::from_secs(10)).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_manager_replays_its_journal_and_still_reports_acks_of_earlier_sends() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = ChromiumReaper::new(dir.path());
    // Acks move only when the test says so.
    let sim_config = SimConfig {
        port: 0,
        qr_rotate_ms: 2_000,
        load_delay_ms: 100,
        ack_delivered_ms: None,
        ack_read_ms: None,
        ..SimConfig::default()
    };
    let sim = wa_sim::spawn(sim_config).await.unwrap();
    let sim_client = JsonClient::new(sim.url()).unwrap();
    let data_dir = dir.path().join("manager");
    let port = free_port();
    let manager = start_manager(port, &data_dir, &sim).await;
    let client = manager_client(&manager);
    link(&client, &sim_client).await;
    let mut stream = events(&manager, &[]).await;

    let before = deliver(&sim_client, json!({"from": CUSTOMER, "text": "antes del reinicio"})).await;
    let message = stream.next_matching("the message", EVENT_WAIT, is_inbound_for(&before)).await.unwrap();
    let sent = send(&client, "respuesta antes del reinicio").await;
    let sent_ack = ack_event(&mut stream, &sent, "sent").await;
    drop(stream);
    assert!(manager.stop().await.unwrap().success(), "the manager stops on SIGTERM");

    // Delivered while the manager is down: WhatsApp hands the receipt over at the next login.
    let (status, body) =
        sim_client.post("/__sim/ack", Some(&json!({"message_id": sent, "ack": "delivered"}))).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pages"], 0, "no page open: pending");

    let manager = start_manager(port, &data_dir, &sim).await;
    let client = manager_client(&manager);
    wait_for_state(&client, "READY").await;
    let mut replay = events(&manager, &[("Last-Event-ID", "0")]).await;
    let first =
        replay.next_matching("the replayed message", EVENT_WAIT, |e| e.event == "inbound").await.unwrap();
    assert_eq!(first.data, message.data, "the journal survived the restart");
    let second =
        replay.next_matching("the replayed ack", EVENT_WAIT, |e| e.event == "inbound").await.unwrap();
    assert_eq!(second.data, sent_ack.data);
    let delivered = ack_event(&mut replay, &sent, "delivered").await;
    assert!(delivered.data["seq"].as_u64() > sent_ack.data["seq"].as_u64(), "sequences go on: {delivered:?}");

    let (status, body) =
        sim_client.post("/__sim/ack", Some(&json!({"message_id": sent, "ack": "read"}))).await.unwrap();
    assert_eq!((status, &body["pages"]), (200, &json!(1)), "{body}");
    let read = ack_event(&mut replay, &sent, "read").await;

    // Resuming after the first event gives the rest, from the next sequence on, without repeats.
    let after = message.data["seq"].to_string();
    let mut resumed = events(&manager, &[("Last-Event-ID", after.as_str())]).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let event = resumed
            .next_matching("the events after the first", EVENT_WAIT, |e| e.event == "inbound")
            .await
            .unwrap();
        got.push(event.data["seq"].as_u64().unwrap());
    }
    let expected: Vec<u64> =
        [&sent_ack, &delivered, &read].iter().map(|e| e.data["seq"].as_u64().unwrap()).collect();
    assert_eq!(got, expected);
    let again = replay.drain();
    assert!(
        !again.iter().any(|e| e.data["message_id"] == before.as_str()),
        "the message reloaded as history is not new: {again:?}"
    );

    drop((replay, resumed));
    assert!(manager.stop().await.unwrap().success());
    e2e::assert_no_chromium_using(&data_dir, Duration::from_secs(10)).await;
    sim.shutdown().await;
}

/// Messages the page took while the manager could not journal them (issue #12): the manager is
/// frozen (SIGSTOP, so it cannot read the page's reports: the loss is certain, not a race), the
/// simulator delivers to the page, then the manager and its Chromium are SIGKILLed. After the
/// restart the page loads those messages as history; they are past the watermark, so reported once.
#[tokio::test(flavor = "multi_thread")]
async fn messages_the_page_took_before_a_kill_are_reported_after_the_restart_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = ChromiumReaper::new(dir.path());
    let sim_config = SimConfig { port: 0, qr_rotate_ms: 2_000, load_delay_ms: 100, ..SimConfig::default() };
    let sim = wa_sim::spawn(sim_config).await.unwrap();
    let sim_client = JsonClient::new(sim.url()).unwrap();
    let data_dir = dir.path().join("manager");
    let port = free_port();
    let manager = start_manager(port, &data_dir, &sim).await;
    let client = manager_client(&manager);
    link(&client, &sim_client).await;
    let mut stream = events(&manager, &[]).await;
    let mut journaled = Vec::new();
    for text in ["uno", "dos"] {
        let id = deliver(&sim_client, json!({"from": CUSTOMER, "text": text})).await;
        stream.next_matching("a journaled message", EVENT_WAIT, is_inbound_for(&id)).await.unwrap();
        journaled.push(id);
    }
    drop(stream);

    let pid = manager.pid().expect("the manager runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGSTOP)
        .expect("the manager freezes");
    let mut lost = Vec::new();
    for text in ["tres", "cuatro"] {
        lost.push(deliver(&sim_client, json!({"from": CUSTOMER, "text": text})).await);
    }
    // Dropping the service SIGKILLs the manager and every process it started (Chromium included).
    drop(manager);
    e2e::assert_no_chromium_using(&data_dir, Duration::from_secs(10)).await;

    let manager = start_manager(port, &data_dir, &sim).await;
    let client = manager_client(&manager);
    // A SIGKILLed Chromium may not have flushed the saved login to its profile: then the manager
    // asks for a QR again, and the phone links it (the journal and the watermark are untouched).
    let state = wait_until("the manager READY or asking for a QR", Duration::from_secs(40), || async {
        let (_, body) = client.get("/status").await.ok()?;
        ["READY", "QR_REQUIRED"].contains(&body["state"].as_str()?).then(|| body["state"].clone())
    })
    .await;
    if state == "QR_REQUIRED" {
        let (status, body) = sim_client.post("/__sim/scan", None).await.expect("scan");
        assert_eq!(status, 200, "scan: {body}");
    }
    wait_for_state(&client, "READY").await;
    let (_, list) = sim_client.get("/__sim/incoming").await.unwrap();
    let old_history: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter(|m| m["new"] == false)
        .filter_map(|m| m["message_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(old_history.len(), 3, "the history made at the first login: {list}");

    let mut replay = events(&manager, &[("Last-Event-ID", "0")]).await;
    let mut got = Vec::new();
    while got.len() < 4 {
        let event = replay
            .next_matching("every message, the lost ones included", EVENT_WAIT, |e| e.event == "inbound")
            .await
            .unwrap();
        got.push(event.data["message_id"].as_str().unwrap_or_default().to_owned());
    }
    let expected: Vec<String> = journaled.iter().chain(&lost).cloned().collect();
    assert_eq!(got, expected, "each message once, in order");

    // A new message after the catch-up proves the stream is live: anything else before it would be
    // a repeat or old history.
    let after = deliver(&sim_client, json!({"from": CUSTOMER, "text": "cinco"})).await;
    let next =
        replay.next_matching("the next inbound event", EVENT_WAIT, |e| e.event == "inbound").await.unwrap();
    assert_eq!(next.data["message_id"], after.as_str(), "no repeat and no old history: {next:?}");
    assert!(
        !replay.drain().iter().any(|e| old_history.iter().any(|id| e.data["message_id"] == id.as_str())),
        "history older than the watermark is not reported"
    );

    drop(replay);
    assert!(manager.stop().await.unwrap().success());
    e2e::assert_no_chromium_using(&data_dir, Duration::from_secs(10)).await;
    sim.shutdown().await;
}
