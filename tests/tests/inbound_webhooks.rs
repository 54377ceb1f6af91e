//! Issue #12 end to end: a message the simulator delivers in the page goes through the real bridge,
//! `session-manager`'s journal and the real `central-hub` to a signed webhook received by a real
//! HTTP server; so do the acks of a message sent through the hub's API. The ignored
//! `bench_incoming_message_to_webhook` prints the latency figures (`scripts/bench-inbound`).

// Test code: a panic with its message is how a test reports failure.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use e2e::{Stack, StackOptions, WebhookReceiver, post_with_token};
use serde_json::{Value, json};
use wa_sim::SimConfig;

const CUSTOMER: &str = "5491166660000";
/// From the simulator's answer to the webhook request: the promise.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(1);

/// A READY stack and the admin's token; the simulator acks sent messages after 100 / 300 ms.
async fn ready_stack() -> (Stack, String) {
    let sim = SimConfig {
        qr_rotate_ms: 2_000,
        load_delay_ms: 100,
        ack_delivered_ms: Some(100),
        ack_read_ms: Some(300),
        ..SimConfig::default()
    };
    let stack =
        Stack::start(StackOptions { sim, ..StackOptions::default() }).await.expect("the stack starts");
    let token = stack.admin_token().await.expect("the admin logs in");
    stack.connect_and_scan(&token).await;
    (stack, token)
}

/// Creates an admin webhook for `events` pointing at `receiver`; returns its secret.
async fn create_webhook(stack: &Stack, token: &str, receiver: &WebhookReceiver, events: &[&str]) -> String {
    let body = json!({"url": receiver.url, "events": events});
    let (status, created) =
        post_with_token(stack.hub.url(), "/api/webhooks", token, Some(&body)).await.unwrap();
    assert_eq!(status, 201, "POST /api/webhooks {body}: {created}");
    created["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("the 201 answer has the secret: {created}"))
        .to_owned()
}

/// `POST /__sim/incoming`: the simulator's answer (with the WhatsApp `message_id`).
async fn deliver(stack: &Stack, from: &str, text: &str) -> Value {
    let body = json!({"from": from, "text": text});
    let (status, answer) = stack.sim_client().unwrap().post("/__sim/incoming", Some(&body)).await.unwrap();
    assert_eq!(status, 200, "incoming {body}: {answer}");
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incoming_message_and_the_acks_of_a_sent_one_reach_a_signed_webhook() {
    let (stack, token) = ready_stack().await;
    let receiver = WebhookReceiver::start().await.unwrap();
    let secret = create_webhook(&stack, &token, &receiver, &["message.received", "message.ack"]).await;

    let answer = deliver(&stack, CUSTOMER, "Hola, ¿tienen stock?").await;
    let answered = Instant::now();
    let message_id = answer["message_id"].as_str().unwrap().to_owned();
    let hook = receiver
        .wait_for("the message.received webhook", DELIVERY_DEADLINE, |r| {
            r.json()["event"] == "message.received" && r.json()["data"]["message_id"] == message_id.as_str()
        })
        .await;
    assert!(hook.at.duration_since(answered) <= DELIVERY_DEADLINE, "received after the deadline");
    let event = hook.json();
    assert!(event["data"]["from"].as_str().unwrap_or_default().contains(CUSTOMER), "{event}");
    assert_eq!(event["data"]["text"], "Hola, ¿tienen stock?", "{event}");
    assert_eq!(hook.header("x-webhook-id"), event["id"].as_str().unwrap(), "{event}");
    assert_eq!(hook.header("x-webhook-event"), "message.received");
    assert!(
        hook.signature_is_valid(&secret),
        "signature {:?} with the 201's secret",
        hook.header("x-webhook-signature")
    );
    assert!(!hook.signature_is_valid("another secret"), "a wrong secret must not verify");

    let body = json!({"to": CUSTOMER, "message": "Sí, quedan tres"});
    let (status, sent) =
        post_with_token(stack.hub.url(), "/api/whatsapp/51/send", &token, Some(&body)).await.unwrap();
    assert_eq!(status, 200, "{sent}");
    let sent_id = sent["data"]["message_id"].as_str().unwrap().to_owned();
    for level in ["delivered", "read"] {
        let hook = receiver
            .wait_for(&format!("message.ack {level} of {sent_id}"), Duration::from_secs(10), |r| {
                let e = r.json();
                e["event"] == "message.ack"
                    && e["data"]["message_id"] == sent_id.as_str()
                    && e["data"]["ack"] == level
            })
            .await;
        assert!(hook.signature_is_valid(&secret), "the ack's signature");
        assert_eq!(hook.json()["cliente_id"], 51, "the sender's client: {}", hook.json());
    }
    drop(receiver);
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}

/// p-th percentile (nearest rank) of sorted `values`.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// `N` (default 200) messages, one at a time: from just before `POST /__sim/incoming` to the
/// receiver having the webhook request. Prints p50/p99/max; asserts nothing about time.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: scripts/bench-inbound runs it and prints the figures"]
async fn bench_incoming_message_to_webhook() {
    let n: usize = std::env::var("N").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let (stack, token) = ready_stack().await;
    let receiver = WebhookReceiver::start().await.unwrap();
    create_webhook(&stack, &token, &receiver, &["message.received"]).await;
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let message_id =
            deliver(&stack, CUSTOMER, &format!("bench {i}")).await["message_id"].as_str().unwrap().to_owned();
        let hook = receiver
            .wait_for(&format!("message {i}"), Duration::from_secs(30), |r| {
                r.json()["data"]["message_id"] == message_id.as_str()
            })
            .await;
        latencies.push(hook.at.duration_since(start));
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "inbound message -> webhook, {n} messages one at a time: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 99)),
        ms(latencies[n - 1]),
    );
    drop(receiver);
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}
