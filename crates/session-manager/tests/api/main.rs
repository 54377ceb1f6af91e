//! End-to-end tests of the real `session-manager` binary, with Debian's Chromium, against an
//! in-process WhatsApp Web simulator (`wa_sim::spawn`).

mod support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use support::{
    Env, Manager, PHONE, SHORT, chromium_main_pid, chromium_pids, decode_data_url, decode_qr, sim,
};

/// Connects and waits for READY by scanning the first QR.
async fn link(env: &Env, manager: &Manager) -> Result<Value> {
    let (code, body) = manager.post("/connect", None, &[]).await?;
    ensure!(code == 200, "connect answered {code}: {body}");
    manager.wait_state("QR_REQUIRED", SHORT).await?;
    ensure!(env.sim_post("/__sim/scan").await? == 200, "scan refused");
    manager.wait_state("READY", SHORT).await
}

#[tokio::test]
async fn connect_shows_a_rotating_qr_and_a_scan_makes_the_session_ready_to_send() -> Result<()> {
    let env = Env::new(wa_sim::SimConfig { qr_prefix: true, ..sim(400) }).await?;
    let manager = env.manager(&[("MAX_QR_ATTEMPTS", "50")]).await?;
    assert_eq!(manager.status().await?["state"], "INIT");

    let (code, body) = manager.post("/connect", None, &[]).await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["alreadyConnected"], false);
    assert_eq!(body["session"], "admin");

    let status = manager.wait_state("QR_REQUIRED", SHORT).await?;
    let qr = &status["qr"];
    let url = qr["url"].as_str().context("qr.url")?.to_owned();
    assert!(url.starts_with("https://wa.me/settings/linked_devices#2@"), "{url}");
    assert_eq!(decode_data_url(qr["base64"].as_str().context("qr.base64")?)?, url);
    assert!(qr["attempts"].as_u64() >= Some(1));
    assert!(qr["expires_at"].as_i64() > qr["timestamp"].as_i64());

    // The manager shows what the page draws (the simulator's current QR).
    support::wait_until("manager's QR equals the simulator's", SHORT, || async {
        let ours = manager.status().await?["qr"]["url"].clone();
        let theirs = env.sim_get("/__sim/state").await?["qr"].clone();
        Ok(ours.is_string() && ours == theirs)
    })
    .await?;

    let (code, png) = manager.get_bytes("/qr").await?;
    assert_eq!(code, 200);
    assert!(decode_qr(&png)?.starts_with("https://wa.me/settings/linked_devices#2@"));
    let (code, qr_code) = manager.get("/qr-code").await?;
    assert_eq!(code, 200);
    assert!(qr_code["url"].is_string());

    // Rotation: a new code and one more attempt.
    let rotated = manager
        .wait_status("a rotated QR", SHORT, |s| {
            s["qr"]["attempts"].as_u64() >= Some(2) && s["qr"]["url"] != url
        })
        .await?;
    assert_eq!(decode_data_url(rotated["qr"]["base64"].as_str().context("base64")?)?, rotated["qr"]["url"]);

    let (code, again) = manager.post("/connect", None, &[]).await?;
    assert_eq!((code, again["alreadyConnected"].clone()), (200, json!(true)));

    assert_eq!(env.sim_post("/__sim/scan").await?, 200);
    let ready = manager.wait_state("READY", SHORT).await?;
    assert_eq!(ready["phone_number"], format!("+{PHONE}"));
    assert_eq!(ready["connected"], true);
    assert_eq!(ready["can_send_messages"], true);
    assert!(ready.get("qr").is_none());
    let (code, _) = manager.get("/qr").await?;
    assert_eq!(code, 404);

    let (code, sent) = manager
        .post("/send", Some(json!({"cliente_id": 51, "to": "+54 9 11 2345-6789", "message": "hola"})), &[])
        .await?;
    assert_eq!(code, 200, "{sent}");
    assert_eq!(sent["success"], true);
    assert_eq!(sent["data"]["to"], "5491123456789");
    let messages = env.sim_get("/__sim/messages").await?;
    let messages = messages.as_array().context("messages")?;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["to"], "5491123456789");
    assert_eq!(messages[0]["text"], "hola");

    let (_, metrics) = manager.get_bytes("/metrics").await?;
    let metrics = String::from_utf8(metrics)?;
    assert!(metrics.contains("session_manager_state{state=\"READY\"} 1"), "{metrics}");
    assert!(metrics.contains("session_manager_sends_ok_total 1"));
    assert!(!metrics.contains("session_manager_chromium_pss_bytes 0\n"), "PSS measured");

    assert!(manager.terminate().await?.success());
    env.finish().await
}

#[tokio::test]
async fn a_restart_on_the_same_data_dir_returns_to_ready_without_a_qr() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[]).await?;
    link(&env, &manager).await?;
    assert!(manager.terminate().await?.success());
    ensure!(chromium_pids(env.dir.path()).is_empty(), "Chromium left after SIGTERM");

    // AUTO_CONNECT=saved (the default) reconnects at start from the saved login.
    let manager = env.manager(&[]).await?;
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + SHORT;
    loop {
        let status = manager.status().await?;
        states.push(status["state"].as_str().unwrap_or("").to_owned());
        if status["state"] == "READY" {
            assert_eq!(status["phone_number"], format!("+{PHONE}"));
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not READY after restart: {states:?}\n{}",
            manager.log_text()
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(!states.iter().any(|s| s == "QR_REQUIRED"), "a QR was shown on restart: {states:?}");
    assert!(manager.terminate().await?.success());
    env.finish().await
}

#[tokio::test]
async fn a_killed_chromium_is_relaunched_and_the_session_is_ready_again_without_a_qr() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[]).await?;
    link(&env, &manager).await?;
    // Chromium commits the page's storage to disk a few seconds after a write: a crash right after
    // the first login loses it (the next start shows a QR, correctly). Crash once it is on disk.
    let linked_at = std::time::SystemTime::now();
    let storage = env.data_dir().join("sessions/admin/Default/Local Storage/leveldb");
    support::wait_until("the login committed to the profile", SHORT, || {
        let storage = storage.clone();
        async move { Ok(support::newest_mtime(&storage).is_some_and(|t| t > linked_at)) }
    })
    .await?;
    let first = chromium_main_pid(env.dir.path()).context("the Chromium of the session")?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::Signal::SIGKILL)?;

    manager.wait_status("the crash noticed", SHORT, |s| s["state"] != "READY").await?;
    let status = manager.wait_state("READY", SHORT).await?;
    assert_eq!(status["phone_number"], format!("+{PHONE}"));
    let second = chromium_main_pid(env.dir.path()).context("a new Chromium")?;
    assert_ne!(first, second);
    let (_, metrics) = manager.get_bytes("/metrics").await?;
    let metrics = String::from_utf8(metrics)?;
    assert!(metrics.contains("session_manager_reconnects_total 1"), "{metrics}");
    assert!(
        metrics.contains("session_manager_qr_generated_total 1\n"),
        "only the first link showed a QR: {metrics}"
    );
    assert!(manager.terminate().await?.success());
    env.finish().await
}

#[tokio::test]
async fn unscanned_qr_codes_run_out_and_the_browser_is_closed() -> Result<()> {
    let env = Env::new(sim(300)).await?;
    let manager = env.manager(&[("MAX_QR_ATTEMPTS", "2")]).await?;
    manager.post("/connect", None, &[]).await?;
    let status = manager.wait_state("DISCONNECTED", SHORT).await?;
    assert_eq!(status["last_error"]["code"], "QR_ATTEMPTS_EXHAUSTED");
    assert!(status.get("qr").is_none());
    let dir = env.dir.path().to_path_buf();
    support::wait_until("Chromium closed", Duration::from_secs(10), || {
        let dir = dir.clone();
        async move { Ok(chromium_pids(&dir).is_empty()) }
    })
    .await?;
    let (code, body) = manager.get("/qr").await?;
    assert_eq!((code, body["code"].as_str()), (404, Some("NO_QR")));
    assert_eq!(body["detail"]["state"], "DISCONNECTED");
    assert!(manager.terminate().await?.success());
    env.finish().await
}

#[tokio::test]
async fn a_logout_from_the_phone_disconnects_and_the_next_connect_shows_a_qr() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[]).await?;
    link(&env, &manager).await?;
    assert_eq!(env.sim_post("/__sim/logout").await?, 200);
    let status = manager.wait_state("DISCONNECTED", SHORT).await?;
    assert_eq!(status["last_error"]["code"], "LOGGED_OUT");
    manager.post("/connect", None, &[]).await?;
    let status = manager.wait_state("QR_REQUIRED", SHORT).await?;
    assert_eq!(status["qr"]["attempts"], 1);
    assert!(manager.terminate().await?.success());
    env.finish().await
}

#[tokio::test]
async fn clear_session_backs_up_the_profile_and_the_next_connect_shows_a_fresh_qr() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[]).await?;
    link(&env, &manager).await?;
    let (code, body) = manager.post("/clear-session", None, &[]).await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"], "INIT");
    let backup = body["backup"].as_str().context("a backup path")?;
    assert!(std::path::Path::new(backup).is_dir(), "{backup}");
    assert!(backup.starts_with(&env.data_dir().display().to_string()));
    assert_eq!(manager.status().await?["state"], "INIT");
    manager.post("/connect", None, &[]).await?;
    manager.wait_state("QR_REQUIRED", SHORT).await?;
    assert!(manager.terminate().await?.success());
    env.finish().await
}

#[tokio::test]
async fn a_second_manager_on_the_same_data_dir_is_refused_with_a_clear_message() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let first = env.manager(&[]).await?;
    let first_pid = first.child.id().context("pid")?;
    let second = env.manager(&[]).await;
    let message = format!("{:#}", second.err().context("the second manager must not start")?);
    assert!(message.contains(&env.data_dir().display().to_string()), "{message}");
    assert!(message.contains(&first_pid.to_string()), "{message}");
    assert_eq!(first.status().await?["state"], "INIT");
    assert!(first.terminate().await?.success());
    env.finish().await
}

#[tokio::test]
async fn a_wrong_chromium_path_is_an_error_naming_the_path() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[("CHROMIUM_PATH", "/nonexistent/bin/chromium")]).await?;
    let (code, body) = manager.post("/connect", None, &[]).await?;
    assert_eq!(code, 500, "{body}");
    assert_eq!(body["code"], "BROWSER_LAUNCH_FAILED");
    assert!(body["error"].as_str().unwrap_or("").contains("/nonexistent/bin/chromium"), "{body}");
    assert!(body["hint"].as_str().unwrap_or("").contains("CHROMIUM_PATH"), "{body}");
    assert!(body["request_id"].is_string());
    let status = manager.status().await?;
    assert_eq!(status["state"], "ERROR");
    assert_eq!(status["last_error"]["code"], "BROWSER_LAUNCH_FAILED");
    assert!(status["last_error"]["message"].as_str().unwrap_or("").contains("/nonexistent/bin/chromium"));
    assert!(manager.terminate().await?.success());
    env.finish().await
}

#[tokio::test]
async fn sends_are_validated_refused_when_not_ready_and_never_repeated_for_one_key() -> Result<()> {
    let unknown = "5491199999999";
    let env = Env::new(wa_sim::SimConfig { unknown_numbers: vec![unknown.into()], ..sim(2000) }).await?;
    let manager = env.manager(&[]).await?;
    let message = |to: &str| Some(json!({"to": to, "message": "hola"}));

    let (code, body) = manager.post("/send", message("5491123456789"), &[]).await?;
    assert_eq!((code, body["code"].as_str()), (409, Some("SESSION_NOT_READY")));
    assert_eq!(body["detail"]["state"], "INIT");

    link(&env, &manager).await?;
    let (code, body) = manager.post("/send", message("12ab"), &[]).await?;
    assert_eq!((code, body["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{body}");
    let (code, body) = manager.post("/send", message(unknown), &[]).await?;
    assert_eq!((code, body["code"].as_str()), (422, Some("NUMBER_NOT_ON_WHATSAPP")), "{body}");

    let key = [("Idempotency-Key", "order-51-1")];
    let (first_code, first) = manager.post("/send", message("5491123456789"), &key).await?;
    let (second_code, second) = manager.post("/send", message("5491123456789"), &key).await?;
    assert_eq!((first_code, second_code), (200, 200), "{first} {second}");
    assert_eq!(first["data"]["message_id"], second["data"]["message_id"]);
    let messages = env.sim_get("/__sim/messages").await?;
    assert_eq!(messages.as_array().map(Vec::len), Some(1), "{messages}");
    assert!(manager.terminate().await?.success());
    env.finish().await
}

#[tokio::test]
async fn sigterm_stops_the_manager_and_leaves_no_chromium() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[("AUTO_CONNECT", "always")]).await?;
    manager.wait_state("QR_REQUIRED", SHORT).await?;
    ensure!(!chromium_pids(env.dir.path()).is_empty(), "Chromium runs while a QR is shown");
    assert!(manager.terminate().await?.success());
    ensure!(chromium_pids(env.dir.path()).is_empty(), "Chromium left: {:?}", chromium_pids(env.dir.path()));
    env.finish().await
}

#[tokio::test]
async fn the_event_stream_sends_the_status_on_subscribe_and_on_change() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[]).await?;
    let mut response = env.http.get(format!("{}/events", manager.url)).send().await?;
    assert_eq!(response.status().as_u16(), 200);
    let mut seen = String::new();
    manager.post("/connect", None, &[]).await?;
    let deadline = tokio::time::Instant::now() + SHORT;
    while !seen.contains("\"QR_REQUIRED\"") {
        let chunk =
            tokio::time::timeout_at(deadline, response.chunk()).await.context("no QR_REQUIRED event")??;
        seen.push_str(&String::from_utf8_lossy(&chunk.context("stream ended")?));
    }
    assert!(seen.starts_with("event: status"), "{seen}");
    assert!(seen.contains("\"INIT\""), "the first event is the current status: {seen}");
    drop(response);
    assert!(manager.terminate().await?.success());
    env.finish().await
}
