//! The inbound path end to end, hub included: the simulator delivers messages and acks in the
//! page, the real bridge and `session-manager` journal them, the real `central-hub` follows the
//! manager's stream and stores each once, whatever restarts; campaigns get their acks and
//! replies, and "baja" opts a number out.

// Test code: a panic with its message is how a test reports failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::{SseStream, Stack, StackOptions, TEST_MANAGER_TOKEN, get_with_token, post_with_token, wait_until};
use serde_json::{Value, json};
use wa_sim::SimConfig;

const CUSTOMER: &str = "5491133330000";
const WAIT: Duration = Duration::from_secs(30);

/// A READY stack (connected and scanned) at the campaigns' test pace, and the admin's token.
async fn ready_stack(sim: SimConfig, manager_env: Vec<(&'static str, String)>) -> (Stack, String) {
    let stack = Stack::start(StackOptions {
        sim: SimConfig { qr_rotate_ms: 2_000, load_delay_ms: 100, ..sim },
        manager_env,
        hub_env: e2e::campaign_zero_pace_env(),
        ..StackOptions::default()
    })
    .await
    .expect("the stack starts");
    let token = stack.admin_token().await.expect("the admin logs in");
    stack.connect_and_scan(&token).await;
    (stack, token)
}

/// `GET /api/messages?<query>` on the hub: the messages.
async fn messages(stack: &Stack, token: &str, query: &str) -> Option<Vec<Value>> {
    let (status, body) =
        get_with_token(stack.hub.url(), &format!("/api/messages?{query}"), token).await.ok()?;
    (status == 200).then(|| body["messages"].as_array().cloned().unwrap_or_default())
}

async fn deliver(stack: &Stack, from: &str, text: &str) -> String {
    let body = json!({"from": from, "text": text});
    let (status, answer) = stack.sim_client().unwrap().post("/__sim/incoming", Some(&body)).await.unwrap();
    assert_eq!(status, 200, "incoming {body}: {answer}");
    answer["message_id"].as_str().unwrap().to_owned()
}

async fn sim_ack(stack: &Stack, message_id: &str, ack: &str) {
    let body = json!({"message_id": message_id, "ack": ack});
    let (status, answer) = stack.sim_client().unwrap().post("/__sim/ack", Some(&body)).await.unwrap();
    assert_eq!(status, 200, "ack {body}: {answer}");
}

/// Waits until the outgoing message `id` has `ack` in the hub.
async fn wait_for_ack(stack: &Stack, token: &str, id: &str, ack: &str) {
    wait_until(&format!("{id} {ack} in the hub"), WAIT, || async {
        let out = messages(stack, token, "direction=out&limit=200").await?;
        out.iter().any(|m| m["message_id"] == id && m["ack"] == ack).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_and_acks_survive_a_hub_down_and_a_manager_restart_stored_once() {
    // Acks move only when the test says so; a restarted manager logs in again by itself.
    let sim = SimConfig { ack_delivered_ms: None, ack_read_ms: None, ..SimConfig::default() };
    let (mut stack, token) = ready_stack(sim, vec![("AUTO_CONNECT", "saved".into())]).await;
    let body = json!({"to": CUSTOMER, "message": "¿Le interesa la oferta?"});
    let (status, sent) =
        post_with_token(stack.hub.url(), "/api/whatsapp/51/send", &token, Some(&body)).await.unwrap();
    assert_eq!(status, 200, "{sent}");
    let sent_id = sent["data"]["message_id"].as_str().unwrap().to_owned();
    wait_for_ack(&stack, &token, &sent_id, "sent").await;

    // The hub is down while 20 messages arrive.
    stack.stop_hub().await.unwrap();
    let mut expected = BTreeSet::new();
    for i in 0..20 {
        expected.insert(deliver(&stack, &format!("54911444400{i:02}"), &format!("mensaje {i}")).await);
    }
    // The manager restarts too (once it journaled the 20: one still in the page when it stops
    // loads as history at the next login), and the message is delivered while it is down
    // (WhatsApp hands the receipt over at the next login).
    let mut journal = SseStream::open(
        &format!("{}/events", stack.manager_url()),
        TEST_MANAGER_TOKEN,
        &[("Last-Event-ID", "0")],
    )
    .await
    .unwrap();
    let mut pending = expected.clone();
    while !pending.is_empty() {
        let event = journal
            .next_matching("the 20 messages journaled", WAIT, |e| {
                e.event == "inbound" && e.data["message_id"].as_str().is_some_and(|id| pending.contains(id))
            })
            .await
            .unwrap();
        pending.remove(event.data["message_id"].as_str().unwrap());
    }
    drop(journal);
    stack.stop_manager().await.unwrap();
    sim_ack(&stack, &sent_id, "delivered").await;
    stack.start_manager().await.unwrap();
    stack.start_hub().await.unwrap();
    let token = stack.admin_token().await.unwrap();
    stack.wait_for_state(&token, "READY").await;

    let stored = wait_until("the 20 messages in the hub", WAIT, || async {
        let stored = messages(&stack, &token, "direction=in&limit=200").await?;
        (stored.len() >= 20).then_some(stored)
    })
    .await;
    let ids: Vec<String> = stored.iter().map(|m| m["message_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 20, "each once, no history: {ids:?}");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected, "exactly the 20 delivered");
    wait_for_ack(&stack, &token, &sent_id, "delivered").await;
    // After the restart, a new ack of the message sent before it still reaches the hub.
    sim_ack(&stack, &sent_id, "read").await;
    wait_for_ack(&stack, &token, &sent_id, "read").await;
    let out = messages(&stack, &token, "direction=out").await.unwrap();
    assert_eq!((out.len(), out[0]["cliente_id"].as_i64()), (1, Some(51)), "{out:?}");
    assert_eq!(
        messages(&stack, &token, "direction=in&limit=200").await.unwrap().len(),
        20,
        "still once each"
    );
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}

/// Creates and starts a campaign of client 51 to `phones`; returns its id.
async fn start_campaign(stack: &Stack, token: &str, phones: &[&str]) -> i64 {
    let mut csv = String::from("phone,nombre\n");
    for (i, phone) in phones.iter().enumerate() {
        csv.push_str(&format!("{phone},Persona {i}\n"));
    }
    let body = json!({
        "name": "inbound", "cliente_id": 51, "template": "Hola {{nombre}}, novedades", "csv": csv,
        "time_zone": "UTC", "window": {"start": "00:00", "end": "24:00"},
    });
    let hub = stack.hub.url();
    let (status, created) = post_with_token(hub, "/api/campaigns", token, Some(&body)).await.unwrap();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (status, started) =
        post_with_token(hub, &format!("/api/campaigns/{id}/start"), token, None).await.unwrap();
    assert_eq!(status, 200, "{started}");
    id
}

async fn recipients(stack: &Stack, token: &str, id: i64) -> Option<Vec<Value>> {
    let (status, body) =
        get_with_token(stack.hub.url(), &format!("/api/campaigns/{id}/recipients"), token).await.ok()?;
    (status == 200).then(|| body["recipients"].as_array().cloned().unwrap_or_default())
}

async fn wait_completed(stack: &Stack, token: &str, id: i64) -> Value {
    wait_until(&format!("campaign {id} completed"), Duration::from_secs(60), || async {
        let (_, c) = get_with_token(stack.hub.url(), &format!("/api/campaigns/{id}"), token).await.ok()?;
        (c["state"] == "completed").then_some(c)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaigns_acks_and_replies_show_in_its_recipients_and_baja_skips_the_number_next_time() {
    let sim = SimConfig { ack_delivered_ms: Some(100), ack_read_ms: Some(300), ..SimConfig::default() };
    let (stack, token) = ready_stack(sim, Vec::new()).await;
    let (ana, beto) = ("5491155550001", "5491155550002");
    let first = start_campaign(&stack, &token, &[ana, beto]).await;
    wait_completed(&stack, &token, first).await;
    wait_until("both recipients read", WAIT, || async {
        let list = recipients(&stack, &token, first).await?;
        list.iter().all(|r| r["delivered_at"].is_string() && r["read_at"].is_string()).then_some(())
    })
    .await;
    deliver(&stack, ana, "Me interesa").await;
    deliver(&stack, beto, "baja").await;
    let list = wait_until("Ana's reply in her recipient", WAIT, || async {
        let list = recipients(&stack, &token, first).await?;
        list[0]["replied_at"].is_string().then_some(list)
    })
    .await;
    assert_eq!(list[0]["phone"], ana);
    let opt_out = wait_until("Beto on the opt-out list", WAIT, || async {
        let (_, body) = get_with_token(stack.hub.url(), "/api/opt-outs", &token).await.ok()?;
        body["opt_outs"].as_array()?.iter().find(|o| o["phone"] == beto).cloned()
    })
    .await;
    assert_eq!(opt_out["cliente_id"], 51, "{opt_out}");
    assert!(opt_out["evidence"].as_str().unwrap().contains("baja"), "{opt_out}");
    let replies = messages(&stack, &token, "direction=in").await.unwrap();
    assert!(replies.iter().all(|m| m["cliente_id"] == 51 && m["campaign_id"] == first), "{replies:?}");

    let second = start_campaign(&stack, &token, &[ana, beto]).await;
    let done = wait_completed(&stack, &token, second).await;
    assert_eq!(
        (done["counts"]["sent"].as_i64(), done["counts"]["skipped"].as_i64()),
        (Some(1), Some(1)),
        "{done}"
    );
    let (_, received) = stack.sim_client().unwrap().get("/__sim/messages").await.unwrap();
    let to_beto = received
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["to"].as_str().is_some_and(|t| t.contains(beto)))
        .count();
    assert_eq!(to_beto, 1, "Beto got the first campaign only: {received}");
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}
