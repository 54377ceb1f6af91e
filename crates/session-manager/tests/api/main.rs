//! End-to-end tests of the real `session-manager` binary, with Debian's Chromium, against an
//! in-process WhatsApp Web simulator (`wa_sim::spawn`).

mod drift;
mod support;

use anyhow::{Context, Result};
use e2e::{decode_qr_data_url, decode_qr_png, wait_until};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use support::{Env, Manager, PHONE, SHORT, sim};

/// Connects and waits for READY by scanning the first QR.
async fn link(env: &Env, manager: &Manager) -> Result<Value> {
    manager.connect().await?;
    manager.wait_state("QR_REQUIRED", SHORT).await;
    assert_eq!(env.sim_post("/__sim/scan").await?, 200, "the simulator refused the scan");
    Ok(manager.wait_state("READY", SHORT).await)
}

/// A simulator (QR every 2 s), a manager with `env` added, and a session linked (READY).
async fn linked(env: &[(&str, &str)]) -> Result<(Env, Manager)> {
    let world = Env::new(sim(2000)).await?;
    let manager = world.manager(env).await?;
    link(&world, &manager).await?;
    Ok((world, manager))
}

/// Waits until the page's storage (the WhatsApp login, written at the link) is on disk: Chromium
/// commits it a few seconds after the write, and a crash before that loses it (the next start shows
/// a QR, correctly). Call it right after READY with the current time.
async fn wait_login_on_disk(env: &Env, linked_at: std::time::SystemTime) {
    let storage = env.data_dir().join("sessions/admin/Default/Local Storage/leveldb");
    wait_until("the login committed to the profile", SHORT, || async {
        support::newest_mtime(&storage).is_some_and(|t| t > linked_at).then_some(())
    })
    .await;
}

#[tokio::test]
async fn connect_shows_a_rotating_qr_and_a_scan_makes_the_session_ready_to_send() -> Result<()> {
    let env = Env::new(wa_sim::SimConfig { qr_prefix: true, ..sim(400) }).await?;
    // 1,000 codes at 400 ms: the attempts outlast any deadline of the test on a slow machine.
    let manager = env.manager(&[("MAX_QR_ATTEMPTS", "1000")]).await?;
    assert_eq!(manager.status().await?["state"], "INIT");

    let body = manager.connect().await?;
    assert_eq!(body["alreadyConnected"], false);
    assert_eq!(body["session"], "admin");

    let status = manager.wait_state("QR_REQUIRED", SHORT).await;
    let qr = &status["qr"];
    let url = qr["url"].as_str().context("qr.url")?.to_owned();
    assert!(url.starts_with("https://wa.me/settings/linked_devices#2@"), "{url}");
    assert_eq!(decode_qr_data_url(qr["base64"].as_str().context("qr.base64")?)?, url);
    assert!(qr["attempts"].as_u64() >= Some(1));
    assert!(qr["expires_at"].as_i64() > qr["timestamp"].as_i64());

    // The manager shows what the page draws (the simulator's current QR).
    wait_until("the manager's QR equals the simulator's", SHORT, || async {
        let ours = manager.status().await.ok()?["qr"]["url"].clone();
        let theirs = env.sim_get("/__sim/state").await.ok()?["qr"].clone();
        (ours.is_string() && ours == theirs).then_some(())
    })
    .await;

    let (code, png) = manager.get_bytes("/qr").await?;
    assert_eq!(code, 200);
    assert!(decode_qr_png(&png)?.starts_with("https://wa.me/settings/linked_devices#2@"));
    let (code, qr_code) = manager.get("/qr-code").await?;
    assert_eq!(code, 200);
    assert!(qr_code["url"].is_string());

    // Rotation: a new code and one more attempt.
    let rotated = manager
        .wait_status("a rotated QR", SHORT, |s| {
            s["qr"]["attempts"].as_u64() >= Some(2) && s["qr"]["url"] != url
        })
        .await;
    assert_eq!(
        decode_qr_data_url(rotated["qr"]["base64"].as_str().context("base64")?)?,
        rotated["qr"]["url"]
    );

    let again = manager.connect().await?;
    assert_eq!(again["alreadyConnected"], true);

    assert_eq!(env.sim_post("/__sim/scan").await?, 200);
    let ready = manager.wait_state("READY", SHORT).await;
    assert_eq!(ready["phone_number"], format!("+{PHONE}"));
    assert_eq!(ready["connected"], true);
    assert_eq!(ready["can_send_messages"], true);
    assert!(ready.get("qr").is_none());
    let (code, _) = manager.get("/qr").await?;
    assert_eq!(code, 404);

    let (code, sent) = manager
        .post("/send", Some(json!({"cliente_id": 51, "to": "+54 9 11 2345-6789", "message": "hola"})))
        .await?;
    assert_eq!(code, 200, "{sent}");
    assert_eq!(sent["success"], true);
    assert_eq!(sent["data"]["to"], "5491123456789");
    let messages = env.sim_get("/__sim/messages").await?;
    let messages = messages.as_array().context("messages")?;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["to"], "5491123456789");
    assert_eq!(messages[0]["text"], "hola");

    let metrics = manager.metrics().await?;
    assert!(metrics.contains("session_manager_state{state=\"READY\"} 1"), "{metrics}");
    assert!(metrics.contains("session_manager_sends_ok_total 1"));
    assert!(!metrics.contains("session_manager_chromium_pss_bytes 0\n"), "PSS measured");

    env.finish(manager).await
}

#[tokio::test]
async fn a_restart_on_the_same_data_dir_returns_to_ready_without_a_qr_and_keeps_idempotency_keys()
-> Result<()> {
    let (env, manager) = linked(&[]).await?;
    let key = [("Idempotency-Key", "campaign-7-contact-1")];
    let order = Some(json!({"to": "5491123456789", "message": "hola antes del reinicio"}));
    let (code, _, first) = manager.post_with_headers("/send", order.clone(), &key).await?;
    assert_eq!(code, 200, "{first}");
    assert!(manager.terminate().await?.success());
    assert_eq!(env.chromium_pids(), Vec::<i32>::new(), "Chromium left after SIGTERM");

    // AUTO_CONNECT=saved (the default) reconnects at start from the saved login.
    let manager = env.manager(&[]).await?;
    let states = std::sync::Mutex::new(Vec::new());
    let status = manager
        .wait_status("READY after the restart", SHORT, |s| {
            states.lock().expect("states").push(s["state"].as_str().unwrap_or("").to_owned());
            s["state"] == "READY"
        })
        .await;
    assert_eq!(status["phone_number"], format!("+{PHONE}"));
    let states = states.into_inner().expect("states");
    assert!(!states.iter().any(|s| s == "QR_REQUIRED"), "a QR was shown on restart: {states:?}");

    // The CRM retries the same send after the restart: the first answer, not a second message.
    let (code, headers, again) = manager.post_with_headers("/send", order, &key).await?;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["data"]["message_id"], first["data"]["message_id"]);
    assert_eq!(headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let messages = env.sim_get("/__sim/messages").await?;
    assert_eq!(messages.as_array().map(Vec::len), Some(1), "{messages}");
    env.finish(manager).await
}

#[tokio::test]
async fn a_killed_chromium_is_relaunched_and_the_session_is_ready_again_without_a_qr() -> Result<()> {
    let (env, manager) = linked(&[]).await?;
    wait_login_on_disk(&env, std::time::SystemTime::now()).await;
    let first = env.chromium_main_pid().context("the Chromium of the session")?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::Signal::SIGKILL)?;

    let noticed = manager.wait_status("the crash noticed", SHORT, |s| s["state"] != "READY").await;
    assert_eq!(noticed["last_error"]["code"], "BROWSER_CRASHED", "{noticed}");
    let status = manager.wait_state("READY", SHORT).await;
    assert_eq!(status["phone_number"], format!("+{PHONE}"));
    // Recovered: the crash is no longer the session's last error.
    assert!(status["last_error"].is_null(), "READY after a crash keeps last_error: {status}");
    let second = env.chromium_main_pid().context("a new Chromium")?;
    assert_ne!(first, second);
    let metrics = manager.metrics().await?;
    assert!(metrics.contains("session_manager_reconnects_total 1"), "{metrics}");
    assert!(
        metrics.contains("session_manager_qr_generated_total 1\n"),
        "only the first link showed a QR: {metrics}"
    );
    env.finish(manager).await
}

#[tokio::test]
async fn a_crashed_page_is_noticed_and_the_session_is_ready_again_without_a_qr() -> Result<()> {
    let (env, manager) = linked(&[]).await?;
    wait_login_on_disk(&env, std::time::SystemTime::now()).await;
    let browser = env.chromium_main_pid().context("the Chromium of the session")?;
    // The manager drives one tab: its renderer is the only one for web content.
    let renderers = env.page_renderer_pids();
    let [renderer] = renderers[..] else {
        panic!("expected the WhatsApp tab's renderer alone, found {renderers:?}");
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(renderer), nix::sys::signal::Signal::SIGKILL)?;

    let noticed = manager.wait_status("the page crash noticed", SHORT, |s| s["state"] != "READY").await;
    assert_eq!(noticed["state"], "CONNECTING", "{noticed}");
    assert_eq!(noticed["last_error"]["code"], "BROWSER_CRASHED", "{noticed}");
    let status = manager.wait_state("READY", SHORT).await;
    assert_eq!(status["phone_number"], format!("+{PHONE}"));
    assert_ne!(env.chromium_main_pid(), Some(browser), "the browser was restarted");
    let metrics = manager.metrics().await?;
    assert!(metrics.contains("session_manager_reconnects_total 1"), "{metrics}");
    assert!(metrics.contains("session_manager_browser_starts_total 2"), "{metrics}");
    assert!(metrics.contains("session_manager_qr_generated_total 1\n"), "no QR after the crash: {metrics}");
    env.finish(manager).await
}

#[tokio::test]
async fn a_conflict_is_taken_over_by_default_and_the_session_stays_usable() -> Result<()> {
    let (env, manager) = linked(&[]).await?;
    assert_eq!(env.sim_post("/__sim/conflict").await?, 200);
    // The page reports its state after it handled the command, so "CONNECTED" alone may still be the
    // state from before the conflict: the proof that the session came back is a send that goes
    // through. A send refused while the page is in CONFLICT is delivered nowhere (the simulator records
    // only sent messages), so retrying until one is accepted still proves exactly one delivery.
    // Without the takeover the simulator's page would stay in CONFLICT (see the next test).
    wait_until("a send accepted after the takeover", SHORT, || async {
        let (code, _) =
            manager.post("/send", Some(json!({"to": "5491123456789", "message": "after"}))).await.ok()?;
        (code == 200).then_some(())
    })
    .await;
    let status = manager.wait_state("READY", SHORT).await;
    assert_eq!(status["last_error"], Value::Null);
    let state = env.sim_get("/__sim/state").await?;
    assert_eq!(state["socket_state"], "CONNECTED", "{state}");
    let messages = env.sim_get("/__sim/messages").await?;
    assert_eq!(messages.as_array().map(Vec::len), Some(1), "{messages}");
    env.finish(manager).await
}

#[tokio::test]
async fn without_takeover_a_conflict_is_an_error_with_a_hint_and_the_browser_closes() -> Result<()> {
    let (env, manager) = linked(&[("TAKEOVER_ON_CONFLICT", "false")]).await?;
    assert_eq!(env.sim_post("/__sim/conflict").await?, 200);
    let status = manager.wait_state("ERROR", SHORT).await;
    let error = &status["last_error"];
    assert_eq!(error["code"], "CONFLICT", "{status}");
    assert!(error["message"].as_str().unwrap_or("").contains("another browser"), "{error}");
    assert!(error["hint"].as_str().unwrap_or("").contains("TAKEOVER_ON_CONFLICT"), "{error}");
    assert_eq!(status["recommended_action"], error["hint"]);
    assert_eq!(status["can_send_messages"], false);
    e2e::assert_no_chromium_using(env.dir.path(), SHORT).await;
    let (code, body) = manager.post("/send", Some(json!({"to": "5491123456789", "message": "x"}))).await?;
    assert_eq!((code, body["code"].as_str()), (409, Some("SESSION_NOT_READY")), "{body}");
    env.finish(manager).await
}

#[tokio::test]
async fn disconnect_with_logout_unlinks_the_device_and_the_next_connect_shows_a_qr() -> Result<()> {
    let (env, manager) = linked(&[]).await?;
    let (code, body) = manager.post("/disconnect", Some(json!({"logout": true}))).await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["success"], true);
    let status = manager.status().await?;
    assert_eq!(status["state"], "DISCONNECTED", "{status}");
    assert_eq!(status["connected"], false);
    e2e::assert_no_chromium_using(env.dir.path(), SHORT).await;
    // The phone no longer lists the device: a logout from the phone finds nothing to unlink.
    assert_eq!(env.sim_post("/__sim/logout").await?, 409, "the device is still linked at the simulator");

    manager.connect().await?;
    let status = manager.wait_state("QR_REQUIRED", SHORT).await;
    assert_eq!(status["qr"]["attempts"], 1);
    env.finish(manager).await
}

#[tokio::test]
async fn unscanned_qr_codes_run_out_and_the_browser_is_closed() -> Result<()> {
    let env = Env::new(sim(300)).await?;
    let manager = env.manager(&[("MAX_QR_ATTEMPTS", "2")]).await?;
    manager.connect().await?;
    let status = manager.wait_state("DISCONNECTED", SHORT).await;
    assert_eq!(status["last_error"]["code"], "QR_ATTEMPTS_EXHAUSTED");
    assert!(status.get("qr").is_none());
    e2e::assert_no_chromium_using(env.dir.path(), SHORT).await;
    let (code, body) = manager.get("/qr").await?;
    assert_eq!((code, body["code"].as_str()), (404, Some("NO_QR")));
    assert_eq!(body["detail"]["state"], "DISCONNECTED");
    env.finish(manager).await
}

#[tokio::test]
async fn a_logout_from_the_phone_disconnects_and_the_next_connect_shows_a_qr() -> Result<()> {
    let (env, manager) = linked(&[]).await?;
    assert_eq!(env.sim_post("/__sim/logout").await?, 200);
    let status = manager.wait_state("DISCONNECTED", SHORT).await;
    assert_eq!(status["last_error"]["code"], "LOGGED_OUT");
    manager.connect().await?;
    let status = manager.wait_state("QR_REQUIRED", SHORT).await;
    assert_eq!(status["qr"]["attempts"], 1);
    env.finish(manager).await
}

#[tokio::test]
async fn clear_session_backs_up_the_profile_and_the_next_connect_shows_a_fresh_qr() -> Result<()> {
    let (env, manager) = linked(&[]).await?;
    let (code, body) = manager.post("/clear-session", None).await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"], "INIT");
    let backup = body["backup"].as_str().context("a backup path")?;
    assert!(std::path::Path::new(backup).is_dir(), "{backup}");
    assert!(backup.starts_with(&env.data_dir().display().to_string()));
    assert_eq!(manager.status().await?["state"], "INIT");
    manager.connect().await?;
    manager.wait_state("QR_REQUIRED", SHORT).await;
    env.finish(manager).await
}

#[tokio::test]
async fn a_sigkilled_manager_takes_its_chromium_with_it() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[]).await?;
    manager.connect().await?;
    manager.wait_state("QR_REQUIRED", SHORT).await;
    let browser = env.chromium_main_pid().context("Chromium runs for the session")?;

    // SIGKILL: the manager gets no chance to close its browser (which leads its own process
    // group); the parent-death signal ends it, and its children follow. No new manager is started.
    nix::sys::signal::kill(Pid::from_raw(manager.pid().context("the manager's pid")?), Signal::SIGKILL)?;
    e2e::assert_no_chromium_using(env.dir.path(), SHORT).await;
    assert!(!support::alive(browser), "Chromium {browser} outlived its killed manager");
    drop(manager);
    env.stop().await
}

/// Kills a process group we started, should the test fail before the manager does it.
struct KillGroupOnDrop(i32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

#[tokio::test]
async fn a_chromium_left_on_the_profile_is_removed_by_the_next_start() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    // A browser on our profile that no manager of ours started (an older release, a child that
    // escaped): started by hand, in its own process group, without a parent-death signal.
    let profile = env.data_dir().join("sessions/admin");
    std::fs::create_dir_all(&profile)?;
    let mut stray = std::process::Command::new(e2e::chromium_path())
        .args(["--headless=new", "--no-first-run", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()?;
    let stray_pid = i32::try_from(stray.id())?;
    let _cleanup = KillGroupOnDrop(stray_pid);
    wait_until("the stray Chromium to run on the profile", SHORT, || async {
        env.chromium_pids().contains(&stray_pid).then_some(())
    })
    .await;

    let manager = env.manager(&[]).await?;
    // The manager found the browser on its profile at start and ended it.
    let reaped = wait_until("the stray Chromium to be killed", SHORT, || {
        let exited = stray.try_wait().ok().flatten();
        async move { exited }
    })
    .await;
    assert!(!reaped.success(), "the stray Chromium was killed, not closed: {reaped}");
    e2e::assert_no_chromium_using(env.dir.path(), SHORT).await;
    assert_eq!(manager.status().await?["state"], "INIT");
    manager.connect().await?;
    manager.wait_state("QR_REQUIRED", SHORT).await;
    env.finish(manager).await
}

#[tokio::test]
async fn a_ready_session_leaves_no_devtools_port_for_other_local_users() -> Result<()> {
    let (env, manager) = linked(&[]).await?;
    let browsers = env.chromium_pids();
    assert!(!browsers.is_empty(), "Chromium runs for the session");
    for pid in &browsers {
        // Neither a TCP listener (a DevTools port, on any address) nor the flag that would open one.
        assert_eq!(support::listening_tcp_ports(*pid), Vec::<u16>::new(), "Chromium {pid} listens");
        let args = support::cmdline_args(*pid);
        assert!(!args.iter().any(|a| a.starts_with("--remote-debugging-port")), "{args:?}");
    }
    let main = env.chromium_main_pid().context("the browser process")?;
    assert!(support::cmdline_args(main).iter().any(|a| a == "--remote-debugging-pipe"));
    assert!(
        !env.data_dir().join("sessions/admin/DevToolsActivePort").exists(),
        "Chromium announced a DevTools port in its profile"
    );
    // The manager listens on its API port only: the relay to the pipe closed once attached.
    let manager_pid = manager.pid().context("the manager's pid")?;
    assert_eq!(support::listening_tcp_ports(manager_pid), vec![manager.port()]);
    // And the session works through the pipe.
    let (code, body) =
        manager.post("/send", Some(json!({ "to": "5491123456789", "message": "through the pipe" }))).await?;
    assert_eq!(code, 200, "{body}");
    env.finish(manager).await
}

#[tokio::test]
async fn a_second_manager_on_the_same_data_dir_is_refused_with_a_clear_message() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let first = env.manager(&[]).await?;
    let first_pid = first.pid().context("pid")?;
    let second = env.manager(&[]).await;
    let message = format!("{:#}", second.err().context("the second manager must not start")?);
    assert!(message.contains(&env.data_dir().display().to_string()), "{message}");
    assert!(message.contains(&first_pid.to_string()), "{message}");
    assert_eq!(first.status().await?["state"], "INIT");
    env.finish(first).await
}

#[tokio::test]
async fn a_wrong_chromium_path_is_an_error_naming_the_path() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[("CHROMIUM_PATH", "/nonexistent/bin/chromium")]).await?;
    let (code, body) = manager.post("/connect", None).await?;
    assert_eq!(code, 500, "{body}");
    assert_eq!(body["code"], "BROWSER_LAUNCH_FAILED");
    assert!(body["error"].as_str().unwrap_or("").contains("/nonexistent/bin/chromium"), "{body}");
    assert!(body["hint"].as_str().unwrap_or("").contains("CHROMIUM_PATH"), "{body}");
    assert!(body["request_id"].is_string());
    let status = manager.status().await?;
    assert_eq!(status["state"], "ERROR");
    assert_eq!(status["last_error"]["code"], "BROWSER_LAUNCH_FAILED");
    assert!(status["last_error"]["message"].as_str().unwrap_or("").contains("/nonexistent/bin/chromium"));
    env.finish(manager).await
}

#[tokio::test]
async fn connects_that_would_start_the_browser_are_rate_limited_with_retry_after() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    // A missing Chromium makes every connect fail at once (ERROR), so each one starts over.
    let manager = env
        .manager(&[("CHROMIUM_PATH", "/nonexistent/bin/chromium"), ("CONNECT_RATE_PER_MINUTE", "2")])
        .await?;
    for _ in 0..2 {
        let (code, body) = manager.post("/connect", None).await?;
        assert_eq!((code, body["code"].as_str()), (500, Some("BROWSER_LAUNCH_FAILED")), "{body}");
    }
    let (code, headers, body) = manager.post_with_headers("/connect", None, &[]).await?;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["code"], "RATE_LIMITED");
    assert!(body["error"].as_str().unwrap_or("").contains("connect"), "{body}");
    assert!(body["hint"].as_str().unwrap_or("").contains("CONNECT_RATE_PER_MINUTE"), "{body}");
    let retry_after: u64 = headers
        .get("retry-after")
        .context("Retry-After")?
        .to_str()?
        .parse()
        .context("Retry-After is whole seconds")?;
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(body["detail"]["retry_after_secs"], retry_after);
    // The refused connect changed nothing.
    assert_eq!(manager.status().await?["last_error"]["code"], "BROWSER_LAUNCH_FAILED");
    env.finish(manager).await
}

#[tokio::test]
async fn sends_are_validated_refused_when_not_ready_and_never_repeated_for_one_key() -> Result<()> {
    let unknown = "5491199999999";
    let env = Env::new(wa_sim::SimConfig { unknown_numbers: vec![unknown.into()], ..sim(2000) }).await?;
    let manager = env.manager(&[]).await?;
    let message = |to: &str| Some(json!({"to": to, "message": "hola"}));

    let (code, body) = manager.post("/send", message("5491123456789")).await?;
    assert_eq!((code, body["code"].as_str()), (409, Some("SESSION_NOT_READY")));
    assert_eq!(body["detail"]["state"], "INIT");

    link(&env, &manager).await?;
    let (code, body) = manager.post("/send", message("12ab")).await?;
    assert_eq!((code, body["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{body}");
    let (code, body) = manager.post("/send", message(unknown)).await?;
    assert_eq!((code, body["code"].as_str()), (422, Some("NUMBER_NOT_ON_WHATSAPP")), "{body}");

    let key = [("Idempotency-Key", "order-51-1")];
    let (first_code, _, first) = manager.post_with_headers("/send", message("5491123456789"), &key).await?;
    let (second_code, headers, second) =
        manager.post_with_headers("/send", message("5491123456789"), &key).await?;
    assert_eq!((first_code, second_code), (200, 200), "{first} {second}");
    assert_eq!(first["data"]["message_id"], second["data"]["message_id"]);
    assert_eq!(headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let messages = env.sim_get("/__sim/messages").await?;
    assert_eq!(messages.as_array().map(Vec::len), Some(1), "{messages}");
    env.finish(manager).await
}

#[tokio::test]
async fn sigterm_stops_the_manager_and_leaves_no_chromium() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[("AUTO_CONNECT", "always")]).await?;
    manager.wait_state("QR_REQUIRED", SHORT).await;
    assert!(!env.chromium_pids().is_empty(), "Chromium runs while a QR is shown");
    assert!(manager.terminate().await?.success());
    assert_eq!(env.chromium_pids(), Vec::<i32>::new(), "Chromium left right after the manager exited");
    env.stop().await
}

/// The `data:` payloads of the complete `status` events in an SSE text.
fn status_events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|block| block.lines().any(|l| l == "event: status"))
        .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect()
}

#[tokio::test]
async fn the_event_stream_sends_the_status_on_subscribe_and_every_change_including_qr_rotation() -> Result<()>
{
    let env = Env::new(sim(400)).await?;
    // 1,000 codes at 400 ms: the attempts outlast any deadline of the test on a slow machine.
    let manager = env.manager(&[("MAX_QR_ATTEMPTS", "1000")]).await?;
    let http = reqwest::Client::new();
    let mut response =
        http.get(format!("{}/events", manager.url)).bearer_auth(e2e::TEST_MANAGER_TOKEN).send().await?;
    assert_eq!(response.status().as_u16(), 200);
    manager.connect().await?;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + SHORT;
    let qr_events = loop {
        let events = status_events(&seen);
        let qrs: Vec<Value> =
            events.iter().filter(|e| e["qr"].is_object()).map(|e| e["qr"].clone()).collect();
        if qrs.len() >= 2 {
            break (events, qrs);
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .with_context(|| format!("no second QR event within {SHORT:?}: {seen}"))??;
        seen.push_str(&String::from_utf8_lossy(&chunk.context("the stream ended")?));
    };
    let (events, qrs) = qr_events;
    assert_eq!(events[0]["state"], "INIT", "the first event is the current status: {seen}");
    assert!(events.iter().any(|e| e["state"] == "CONNECTING"), "{seen}");
    assert_eq!(qrs[0]["attempts"], 1);
    assert_eq!(qrs[1]["attempts"], 2);
    assert_ne!(qrs[0]["url"], qrs[1]["url"], "the rotation brings a new code");
    assert_eq!(decode_qr_data_url(qrs[1]["base64"].as_str().context("base64")?)?, qrs[1]["url"]);
    drop(response);
    env.finish(manager).await
}

#[tokio::test]
async fn a_page_that_never_exposes_whatsapps_modules_is_page_load_failed_after_page_load_timeout_secs()
-> Result<()> {
    let env = Env::new(sim(2000)).await?;
    // A page that loads (the simulator's JSON state) but never defines WhatsApp Web's modules.
    let blank = format!("{}/__sim/state", env.sim.url());
    let manager = env.manager(&[("WHATSAPP_WEB_URL", &blank), ("PAGE_LOAD_TIMEOUT_SECS", "2")]).await?;
    let (code, body) = manager.post("/connect", None).await?;
    assert!(code == 200 || body["code"] == "PAGE_LOAD_FAILED", "connect: {code} {body}");
    let status = manager.wait_state("ERROR", SHORT).await;
    let error = &status["last_error"];
    assert_eq!(error["code"], "PAGE_LOAD_FAILED", "{status}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains(&blank) && message.contains("2 s"), "names the URL and the timeout: {status}");
    assert!(error["hint"].as_str().is_some_and(|h| h.contains("WHATSAPP_WEB_URL")), "{status}");
    env.finish(manager).await
}

/// The browser's processes as the test sees them, independently of the manager's code: every
/// descendant of the manager (its only child is the browser).
fn browser_tree(manager: &Manager) -> Vec<i32> {
    let Some(manager_pid) = manager.pid() else { return Vec::new() };
    e2e::descendants_of(&[manager_pid]).into_iter().filter(|pid| *pid != manager_pid).collect()
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until none of `pids` is a live process.
async fn wait_gone(what: &str, pids: &[i32]) {
    wait_until(what, SHORT, || async { e2e::descendants_of(pids).is_empty().then_some(()) }).await;
}

/// READY on `chromium`: the PSS metric is within 10% of a sum over every descendant of the
/// manager, and neither a crash (SIGKILL of the browser) nor a stop (`/disconnect`) leaves any.
async fn footprint_is_counted_whole_and_nothing_outlives_a_crash_or_a_stop(
    chromium: &str,
    headless_shell: bool,
) -> Result<()> {
    let (env, manager) = linked(&[("CHROMIUM_PATH", chromium)]).await?;
    wait_login_on_disk(&env, std::time::SystemTime::now()).await;
    let browser = env.chromium_main_pid().context("the Chromium of the session")?;
    let exe = std::fs::read_link(format!("/proc/{browser}/exe"))?;
    assert_eq!(exe.to_string_lossy().contains("headless-shell"), headless_shell, "{}", exe.display());
    let tree = browser_tree(&manager);
    assert!(tree.contains(&browser) && tree.len() >= 2, "the browser and its renderer at least: {tree:?}");

    let (metric_bytes, sum) =
        wait_until("the PSS metric within 10% of the descendants' sum", SHORT, || async {
            let reported = metric(&manager.metrics().await.ok()?, "session_manager_chromium_pss_bytes")?;
            let sum: u64 = browser_tree(&manager).into_iter().filter_map(e2e::pss_bytes).sum();
            (reported.abs_diff(sum) * 10 <= sum).then_some((reported, sum))
        })
        .await;
    eprintln!(
        "{chromium}: metric {} MiB, descendants {} MiB in {}",
        metric_bytes >> 20,
        sum >> 20,
        tree.len()
    );

    nix::sys::signal::kill(Pid::from_raw(browser), Signal::SIGKILL)?;
    wait_gone("no process of the killed browser left", &tree).await;
    manager.wait_status("the crash noticed", SHORT, |s| s["state"] != "READY").await;
    manager.wait_state("READY", SHORT).await;

    let relaunched = browser_tree(&manager);
    assert!(!relaunched.is_empty() && relaunched.iter().all(|pid| !tree.contains(pid)), "{relaunched:?}");
    let (code, body) = manager.post("/disconnect", Some(json!({}))).await?;
    assert_eq!(code, 200, "{body}");
    wait_gone("no process of the stopped browser left", &relaunched).await;
    assert_eq!(browser_tree(&manager), Vec::<i32>::new());
    env.finish(manager).await
}

#[tokio::test]
async fn a_chromium_that_never_starts_is_browser_launch_failed_after_browser_launch_timeout_secs()
-> Result<()> {
    let env = Env::new(sim(2000)).await?;
    // An executable that runs but never becomes a browser: one process whose command line names
    // the test's directory (argv[0] is the script's path), so the harness finds it whatever happens.
    let fake = env.dir.path().join("fake-chromium");
    std::fs::write(&fake, "#!/bin/bash\nexec -a \"$0\" sleep 300\n")?;
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let fake_path = fake.display().to_string();
    let manager = env.manager(&[("CHROMIUM_PATH", &fake_path), ("BROWSER_LAUNCH_TIMEOUT_SECS", "2")]).await?;
    let (code, body) = manager.post("/connect", None).await?;
    assert!(code == 200 || body["code"] == "BROWSER_LAUNCH_FAILED", "connect: {code} {body}");
    let status = manager.wait_state("ERROR", SHORT).await;
    assert_eq!(status["last_error"]["code"], "BROWSER_LAUNCH_FAILED", "{status}");
    let message = status["last_error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("2 s"), "names the timeout: {status}");
    let manager_pid = manager.pid().context("pid")?;
    e2e::wait_until("the stuck launch killed", SHORT, || async {
        e2e::descendants(manager_pid).is_empty().then_some(())
    })
    .await;
    env.finish(manager).await
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_caller_and_their_message_and_the_qr_needs_the_token() -> Result<()>
{
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[]).await?;
    manager.connect().await?;
    manager.wait_state("QR_REQUIRED", SHORT).await;
    // Operators' `curl /status | jq .state` works without the token, but never shows the login QR.
    let anonymous = reqwest::get(format!("{}/status", manager.url)).await?;
    assert_eq!(anonymous.status().as_u16(), 200);
    let anonymous: Value = anonymous.json().await?;
    assert_eq!(anonymous["state"], "QR_REQUIRED");
    assert!(anonymous.get("qr").is_none(), "{anonymous}");
    assert!(manager.status().await?["qr"]["url"].is_string(), "with the token, the QR is there");
    assert_eq!(env.sim_post("/__sim/scan").await?, 200);
    manager.wait_state("READY", SHORT).await;

    let send = |cliente_id: u64, to: &str, text: &str| {
        Some(json!({"cliente_id": cliente_id, "to": to, "message": text}))
    };
    let key = [("Idempotency-Key", "order-1")];
    // Two tenants with the same key: both messages are delivered.
    let (a_code, _, a) =
        manager.post_with_headers("/send", send(1, "5491100000001", "para uno"), &key).await?;
    let (b_code, b_headers, b) =
        manager.post_with_headers("/send", send(2, "5491100000002", "para dos"), &key).await?;
    assert_eq!((a_code, b_code), (200, 200), "{a} {b}");
    assert_ne!(a["data"]["message_id"], b["data"]["message_id"]);
    assert_eq!(b["data"]["to"], "5491100000002", "tenant 2 gets its own answer: {b}");
    assert!(b_headers.get("idempotent-replayed").is_none());
    // The same tenant, the same key, another message: refused, not replayed.
    let (code, _, body) = manager.post_with_headers("/send", send(1, "5491100000009", "otro"), &key).await?;
    assert_eq!((code, body["code"].as_str()), (422, Some("IDEMPOTENCY_KEY_REUSED")), "{body}");

    // Concurrent duplicates: one delivery, every other answer marked replayed.
    let burst = [("Idempotency-Key", "burst-1")];
    let answers = futures_util::future::join_all(
        (0..5).map(|_| manager.post_with_headers("/send", send(3, "5491100000003", "una vez"), &burst)),
    )
    .await;
    let mut replayed = 0;
    let mut ids = std::collections::BTreeSet::new();
    for answer in answers {
        let (code, headers, body) = answer?;
        assert_eq!(code, 200, "{body}");
        ids.insert(body["data"]["message_id"].to_string());
        replayed += usize::from(headers.get("idempotent-replayed").is_some_and(|v| v == "true"));
    }
    assert_eq!((ids.len(), replayed), (1, 4), "{ids:?}");
    let messages = env.sim_get("/__sim/messages").await?;
    let texts: Vec<&str> =
        messages.as_array().context("messages")?.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(messages.as_array().map(Vec::len), Some(3), "{messages}");
    for text in ["para uno", "para dos", "una vez"] {
        assert_eq!(texts.iter().filter(|t| **t == text).count(), 1, "{text}: {messages}");
    }
    env.finish(manager).await
}

#[tokio::test]
async fn the_headless_shell_is_the_default_and_its_footprint_is_counted_whole() -> Result<()> {
    footprint_is_counted_whole_and_nothing_outlives_a_crash_or_a_stop("auto", true).await
}

#[tokio::test]
async fn chromium_is_the_fallback_and_its_footprint_is_counted_whole() -> Result<()> {
    footprint_is_counted_whole_and_nothing_outlives_a_crash_or_a_stop("/usr/bin/chromium", false).await
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_or_idles_is_closed() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[("AUTO_CONNECT", "never")]).await?;
    let addr = manager.url.trim_start_matches("http://").to_owned();
    // A partial header, then silence; a connection that never sends anything; an idle keep-alive.
    let mut partial = tokio::net::TcpStream::connect(&addr).await?;
    partial.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await?;
    let silent = tokio::net::TcpStream::connect(&addr).await?;
    let mut idle = tokio::net::TcpStream::connect(&addr).await?;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await?;
    for (what, mut stream) in [("partial header", partial), ("silent", silent), ("idle keep-alive", idle)] {
        // Read until the server closes (an answer to the complete request comes first): EOF well
        // before 75 s.
        let mut seen = Vec::new();
        let closed =
            tokio::time::timeout(std::time::Duration::from_secs(45), stream.read_to_end(&mut seen)).await;
        assert!(closed.is_ok(), "{what}: still open after 45 s");
        if what == "idle keep-alive" {
            assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"), "{what}: {seen:?}");
        }
    }
    env.finish(manager).await
}

/// A `CHROMIUM_PATH` wrapper that kills itself with SIGSEGV on its first `crashes` starts (a
/// Chromium crashing at start, as seen on a loaded machine) and then runs the real Chromium; it
/// counts its starts in `<script>.count`.
fn crashing_chromium(dir: &std::path::Path, crashes: u32) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("chromium-crashing");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat \"$0.count\" 2>/dev/null || echo 0)\necho $((n + 1)) > \"$0.count\"\n\
             if [ \"$n\" -lt {crashes} ]; then kill -SEGV $$; fi\nexec /usr/bin/chromium \"$@\"\n"
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(script)
}

fn starts(script: &std::path::Path) -> u32 {
    let count = std::fs::read_to_string(script.with_extension("count")).unwrap_or_default();
    count.trim().parse().unwrap_or(0)
}

#[tokio::test]
async fn a_chromium_that_crashes_at_start_is_launched_once_more() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let tools = tempfile::tempdir()?;
    let script = crashing_chromium(tools.path(), 1)?;
    let manager = env.manager(&[("CHROMIUM_PATH", script.to_str().context("path")?)]).await?;
    let (code, body) = manager.post("/connect", None).await?;
    assert_eq!(code, 200, "{body}");
    manager.wait_state("QR_REQUIRED", std::time::Duration::from_secs(30)).await;
    assert_eq!(starts(&script), 2, "one crash, one real start");
    env.finish(manager).await
}

#[tokio::test]
async fn a_chromium_that_crashes_at_every_start_is_an_error_after_one_more_try() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let tools = tempfile::tempdir()?;
    let script = crashing_chromium(tools.path(), u32::MAX)?;
    let manager = env.manager(&[("CHROMIUM_PATH", script.to_str().context("path")?)]).await?;
    let (code, body) = manager.post("/connect", None).await?;
    assert_eq!((code, body["code"].as_str()), (500, Some("BROWSER_LAUNCH_FAILED")), "{body}");
    assert!(body["detail"]["exit"].as_str().unwrap_or("").contains("SIGSEGV"), "{body}");
    assert_eq!(starts(&script), 2, "launched twice, then the error");
    env.finish(manager).await
}
