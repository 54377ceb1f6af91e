//! Campaigns end to end: the real hub dispatching through the real manager, a real Chromium and
//! the WhatsApp Web simulator, at zero pace (the test setting). What the simulator received is the
//! truth: every recipient exactly once, whatever happens to the hub.

// Test code: a panic with its message is how a test reports failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Service, Stack, StackOptions, TEST_JWT_SECRET, get_with_token,
    post_with_token, wait_until,
};
use serde_json::{Value, json};
use wa_sim::SimConfig;

/// The hub's test setting (no delay, no caps, quick retries) on `database_url`.
fn zero_pace_env(database_url: &str) -> Vec<(&'static str, String)> {
    let mut env = e2e::campaign_zero_pace_env();
    env.push(("DATABASE_URL", database_url.to_owned()));
    env
}

/// A stack whose session is READY (connected and scanned), and the admin's token.
async fn ready_stack(sim: SimConfig, database_url: &str) -> (Stack, String) {
    let stack = Stack::start(StackOptions {
        sim: SimConfig { qr_rotate_ms: 2_000, load_delay_ms: 100, ..sim },
        // The manager's own send limit must not be what paces the campaign.
        manager_env: vec![("SEND_RATE_PER_MINUTE", "100000".into())],
        hub_env: zero_pace_env(database_url),
        ..StackOptions::default()
    })
    .await
    .expect("the stack starts");
    let token = stack.admin_token().await.expect("the admin logs in");
    stack.connect_and_scan(&token).await;
    (stack, token)
}

fn phone(i: usize) -> String {
    format!("54911{i:08}")
}

/// Creates and starts a campaign of `n` recipients; returns its id.
async fn start_campaign(hub: &str, token: &str, n: usize) -> i64 {
    let mut csv = String::from("phone,nombre\n");
    for i in 0..n {
        csv.push_str(&format!("{},Persona {i}\n", phone(i)));
    }
    let body = json!({
        "name": "e2e", "cliente_id": 51, "template": "Hola {{nombre}}, novedades", "csv": csv,
        "time_zone": "UTC", "window": {"start": "00:00", "end": "24:00"},
    });
    let (status, created) = post_with_token(hub, "/api/campaigns", token, Some(&body)).await.unwrap();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (status, started) =
        post_with_token(hub, &format!("/api/campaigns/{id}/start"), token, None).await.unwrap();
    assert_eq!(status, 200, "{started}");
    id
}

async fn campaign(hub: &str, token: &str, id: i64) -> Option<Value> {
    let (status, body) = get_with_token(hub, &format!("/api/campaigns/{id}"), token).await.ok()?;
    (status == 200).then_some(body)
}

/// How many times the simulator received each text.
async fn received(stack: &Stack) -> BTreeMap<String, usize> {
    let (_, messages) = stack.sim_client().unwrap().get("/__sim/messages").await.unwrap();
    let mut counts = BTreeMap::new();
    for m in messages.as_array().expect("a list of messages") {
        *counts.entry(m["text"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    counts
}

fn assert_each_once(counts: &BTreeMap<String, usize>, n: usize, skip: &[usize]) {
    for i in (0..n).filter(|i| !skip.contains(i)) {
        let text = format!("Hola Persona {i}, novedades");
        assert_eq!(counts.get(&text).copied(), Some(1), "{text:?} was received exactly once");
    }
    assert_eq!(counts.len(), n - skip.len(), "nothing else was received");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_300_recipient_campaign_completes_with_each_text_once_and_unknown_numbers_failed() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = [3, 150, 299];
    let sim =
        SimConfig { unknown_numbers: unknown.iter().map(|i| phone(*i)).collect(), ..SimConfig::default() };
    let (stack, token) = ready_stack(sim, &format!("sqlite://{}/hub.db", dir.path().display())).await;
    let hub = stack.hub.url().to_owned();
    let id = start_campaign(&hub, &token, 300).await;
    let done = wait_until("the campaign completes", Duration::from_secs(240), || async {
        let c = campaign(&hub, &token, id).await?;
        (c["state"] == "completed").then_some(c)
    })
    .await;
    assert_eq!(done["counts"]["sent"], 297, "{done}");
    assert_eq!(done["counts"]["failed"], 3, "{done}");
    assert_each_once(&received(&stack).await, 300, &unknown);
    let (_, failed) =
        get_with_token(&hub, &format!("/api/campaigns/{id}/recipients?state=failed"), &token).await.unwrap();
    let failed = failed["recipients"].as_array().unwrap();
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|r| r["error_code"] == "NUMBER_NOT_ON_WHATSAPP"), "{failed:?}");
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_killed_five_times_mid_campaign_still_sends_each_recipient_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/hub.db", dir.path().display());
    // Each send takes 20 ms in the page: kills land between a send and the write of its result.
    let sim = SimConfig { send_latency_ms: 20, ..SimConfig::default() };
    let (mut stack, token) = ready_stack(sim, &database_url).await;
    let id = start_campaign(stack.hub.url(), &token, 300).await;
    let manager_url = stack.manager_url();
    let mut env: Vec<(&str, String)> = vec![
        ("CENTRAL_HUB_HOST", "127.0.0.1".into()),
        ("CENTRAL_HUB_PORT", "0".into()),
        ("SESSION_MANAGER_URL", manager_url),
        ("JWT_SECRET", TEST_JWT_SECRET.into()),
        ("ADMIN_EMAIL", ADMIN_EMAIL.into()),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
    ];
    env.extend(zero_pace_env(&database_url));
    let mut sent_before_kill = 0;
    for kill in 0..5 {
        // A moment that varies: after a few more messages than last time, plus a pseudo-random few.
        let target = sent_before_kill + 15 + (kill * 7 + 3) % 11;
        let hub = stack.hub.url().to_owned();
        sent_before_kill = wait_until("more messages before the kill", Duration::from_secs(120), || async {
            let n: usize = received(&stack).await.values().sum();
            (n >= target).then_some(n)
        })
        .await;
        let pid = stack.hub.pid().expect("the hub runs");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
        let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        stack.hub = Service::start("central-hub", &[], &envs).await.expect("the hub restarts");
        assert_ne!(stack.hub.url(), hub, "a new process");
    }
    let token = stack.admin_token().await.unwrap();
    let hub = stack.hub.url().to_owned();
    let done = wait_until("the campaign completes after the kills", Duration::from_secs(240), || async {
        let c = campaign(&hub, &token, id).await?;
        (c["state"] == "completed").then_some(c)
    })
    .await;
    assert_eq!(done["counts"]["sent"], 300, "{done}");
    assert_each_once(&received(&stack).await, 300, &[]);
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_mid_campaign_pauses_it_and_a_new_scan_resumes_it_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (stack, token) = ready_stack(
        SimConfig { send_latency_ms: 30, ..SimConfig::default() },
        &format!("sqlite://{}/hub.db", dir.path().display()),
    )
    .await;
    let hub = stack.hub.url().to_owned();
    let id = start_campaign(&hub, &token, 300).await;
    wait_until("a first few messages", Duration::from_secs(60), || async {
        (received(&stack).await.len() >= 10).then_some(())
    })
    .await;
    let (status, body) = stack.sim_client().unwrap().post("/__sim/logout", None).await.unwrap();
    assert_eq!(status, 200, "logout: {body}");
    let paused = wait_until("the campaign pauses for the session", Duration::from_secs(60), || async {
        let c = campaign(&hub, &token, id).await?;
        (c["state"] == "paused").then_some(c)
    })
    .await;
    assert_eq!(paused["pause_reason"], "session_not_ready", "{paused}");
    assert!(paused["counts"]["pending"].as_i64().unwrap() > 0, "{paused}");
    stack.connect_and_scan(&token).await;
    let done = wait_until("the campaign completes after the new scan", Duration::from_secs(240), || async {
        let c = campaign(&hub, &token, id).await?;
        (c["state"] == "completed").then_some(c)
    })
    .await;
    // A message in flight as the session went away is failed with the page's answer or the cause
    // (the manager's journal keeps it for its key; it may have reached the phone): none is lost
    // silently, none is sent twice.
    let (sent, failed) =
        (done["counts"]["sent"].as_u64().unwrap(), done["counts"]["failed"].as_u64().unwrap());
    assert_eq!(sent + failed, 300, "{done}");
    assert!(failed <= 2, "only what was in flight at the logout may fail: {done}");
    let counts = received(&stack).await;
    assert!(counts.values().all(|n| *n == 1), "no text twice: {counts:?}");
    assert!(counts.len() as u64 >= sent, "every sent recipient was received");
    let (_, failures) =
        get_with_token(&hub, &format!("/api/campaigns/{id}/recipients?state=failed"), &token).await.unwrap();
    for r in failures["recipients"].as_array().unwrap() {
        assert!(r["error_code"].as_str().is_some_and(|c| !c.is_empty()), "a failure says why: {r}");
    }
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}
