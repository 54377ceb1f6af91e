//! WhatsApp Web drift, through the real binary and the simulator: every required internal missing
//! in turn gives WHATSAPP_INCOMPATIBLE naming it, an optional one only switches its feature off, the
//! ADV secret and the LID `from` work through each of their locations, the pairing-code login, and
//! `session-manager probe`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::{TEST_MANAGER_TOKEN, assert_no_chromium_using};
use serde_json::{Value, json};

use crate::support::{Env, PHONE, SHORT, sim};

/// The page-load deadline of these tests: an incompatible build must be reported before it.
const PAGE_LOAD_SECS: &str = "20";

/// The module each required internal lives in, and the internal the bridge names when it is gone.
const REQUIRED: [(&[&str], &str); 17] = [
    (&["WAWebSocketModel"], "Socket"),
    (&["WAWebStreamModel"], "Stream"),
    (&["WAWebConnModel"], "Conn"),
    (&["WAWebCmd"], "Cmd"),
    (&["WAWebUserPrefsInfoStore"], "noiseKey"),
    (&["WAWebSignalStoreApi"], "identityKey"),
    (&["WAWebUserPrefsMultiDevice", "WAWebAdvSignatureApi"], "advSecret"),
    (&["WAWebCompanionRegClientUtils"], "platform"),
    (&["WABase64"], "base64"),
    (&["WAWebWidFactory"], "createWid"),
    (&["WAWebQueryExistsJob"], "queryWidExists"),
    (&["WAWebCollections"], "Chat"),
    (&["WAWebFindChatAction"], "findChat"),
    (&["WAWebMsgKey"], "MsgKey"),
    (&["WAWebUserPrefsMeUser"], "mePn"),
    (&["WAWebGetEphemeralFieldsMsgActionsUtils"], "ephemeralFields"),
    (&["WAWebSendMsgChatAction"], "addAndSendMsgToChat"),
];

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn location<'a>(status: &'a Value, internal: &str) -> Option<&'a str> {
    status["whatsapp"]["internals"]
        .as_array()?
        .iter()
        .find(|i| i["name"] == internal)
        .and_then(|i| i["location"].as_str())
}

#[tokio::test]
async fn each_required_module_missing_in_turn_is_whatsapp_incompatible_naming_it() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env
        .manager(&[("PAGE_LOAD_TIMEOUT_SECS", PAGE_LOAD_SECS), ("CONNECT_RATE_PER_MINUTE", "1000")])
        .await?;
    for (modules, internal) in REQUIRED {
        env.sim_config(&json!({ "without_modules": modules })).await?;
        manager.connect().await?;
        let status = manager
            .wait_status(&format!("ERROR without {modules:?}"), SHORT, |s| s["state"] == "ERROR")
            .await;
        // Not PAGE_LOAD_FAILED: the build was recognised as incompatible before the deadline.
        assert_eq!(status["last_error"]["code"], "WHATSAPP_INCOMPATIBLE", "{modules:?}: {status}");
        let message = status["last_error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(internal) && message.contains(wa_sim::WA_VERSION), "{modules:?}: {message}");
        assert_eq!(status["whatsapp"]["compatible"], false);
        assert!(strings(&status["whatsapp"]["missing_required"]).contains(&internal.to_owned()), "{status}");
        let (code, health) = manager.get("/health").await?;
        assert_eq!(code, 200);
        let summary = health["whatsapp"]["summary"].as_str().unwrap_or_default();
        assert!(
            summary
                .starts_with(&format!("WhatsApp Web build {}: incompatible (missing: ", wa_sim::WA_VERSION))
                && summary.contains(internal),
            "{summary}"
        );
        assert!(env.chromium_main_pid().is_none() || status["state"] == "ERROR");
    }
    env.finish(manager).await
}

#[tokio::test]
async fn an_optional_module_missing_leaves_the_session_working_and_its_feature_off() -> Result<()> {
    let env =
        Env::new(wa_sim::SimConfig { without_modules: vec!["WAWebAltDeviceLinkingApi".into()], ..sim(2000) })
            .await?;
    let manager = env.manager(&[]).await?;
    manager.connect().await?;
    let status = manager.wait_state("QR_REQUIRED", SHORT).await;
    assert_eq!(status["whatsapp"]["compatible"], true);
    assert_eq!(strings(&status["whatsapp"]["features_disabled"]), ["pairing"]);
    let (_, health) = manager.get("/health").await?;
    assert_eq!(
        health["whatsapp"]["summary"],
        format!("WhatsApp Web build {}: compatible (disabled: pairing)", wa_sim::WA_VERSION)
    );
    // The disabled feature says so when asked for.
    let (code, body) = manager.post("/connect", Some(json!({"pairing_phone": "5491155550000"}))).await?;
    assert_eq!((code, body["code"].as_str()), (409, Some("PAIRING_UNAVAILABLE")), "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("WAWebAltDeviceLinkingApi"), "{body}");
    assert_eq!(env.sim_post("/__sim/scan").await?, 200);
    manager.wait_state("READY", SHORT).await;
    let (code, _) = manager.post("/send", Some(json!({"to": "5491122223333", "message": "hola"}))).await?;
    assert_eq!(code, 200);
    env.finish(manager).await
}

#[tokio::test]
async fn the_adv_secret_is_read_from_either_of_its_locations() -> Result<()> {
    let cases = [
        (vec![], "WAWebUserPrefsMultiDevice.getADVSecretKey"),
        (vec!["WAWebUserPrefsMultiDevice".to_owned()], "WAWebAdvSignatureApi.getADVSecretKey"),
    ];
    for (without_modules, expected) in cases {
        // No `data-ref` in the page: the QR string the manager shows is the one the bridge built.
        let env = Env::new(wa_sim::SimConfig { without_modules, qr_data_ref: false, ..sim(5000) }).await?;
        let manager = env.manager(&[]).await?;
        manager.connect().await?;
        let status = manager.wait_state("QR_REQUIRED", SHORT).await;
        assert_eq!(location(&status, "advSecret"), Some(expected), "{}", status["whatsapp"]);
        let drawn = env.sim_get("/__sim/state").await?["qr"].clone();
        assert_eq!(status["qr"]["url"], drawn, "the bridge's QR string is the one the page draws");
        assert_eq!(env.sim_post("/__sim/scan").await?, 200);
        manager.wait_state("READY", SHORT).await;
        env.finish(manager).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_lid_chat_is_written_from_the_lid_user_through_either_of_its_locations() -> Result<()> {
    const LID_CONTACT: &str = "5491155556666";
    const PN_CONTACT: &str = "5491122223333";
    let my_lid = format!("20{}@lid", PHONE.chars().rev().collect::<String>());
    let cases = [
        (vec![], "WAWebUserPrefsMeUser.getMaybeMeLidUser"),
        (vec!["WAWebUserPrefsMeUser.getMaybeMeLidUser".to_owned()], "WAWebApiContact.getCurrentLid"),
    ];
    for (without_modules, expected) in cases {
        let env = Env::new(wa_sim::SimConfig {
            without_modules,
            lid_numbers: vec![LID_CONTACT.into()],
            ..sim(2000)
        })
        .await?;
        let manager = env.manager(&[]).await?;
        manager.connect().await?;
        manager.wait_state("QR_REQUIRED", SHORT).await;
        assert_eq!(env.sim_post("/__sim/scan").await?, 200);
        let status = manager.wait_state("READY", SHORT).await;
        assert_eq!(location(&status, "meLid"), Some(expected));
        for to in [LID_CONTACT, PN_CONTACT] {
            let (code, body) = manager.post("/send", Some(json!({"to": to, "message": "hola"}))).await?;
            assert_eq!(code, 200, "{body}");
        }
        let messages = env.sim_get("/__sim/messages").await?;
        let sent = |to: &str| messages.as_array().and_then(|m| m.iter().find(|m| m["to"] == to)).cloned();
        let lid = sent(LID_CONTACT).context("the LID chat's message")?;
        assert_eq!(lid["from"], my_lid.as_str(), "{lid}");
        assert!(lid["chat"].as_str().is_some_and(|c| c.ends_with("@lid")), "{lid}");
        let pn = sent(PN_CONTACT).context("the phone-number chat's message")?;
        assert_eq!(pn["from"], format!("{PHONE}@c.us"), "{pn}");
        assert_eq!(pn["chat"], format!("{PN_CONTACT}@c.us"));
        env.finish(manager).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_pairing_code_links_the_phone_and_is_refreshed_until_it_is_typed() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let manager = env.manager(&[("PAIRING_CODE_REFRESH_SECS", "2"), ("MAX_QR_ATTEMPTS", "50")]).await?;
    let (code, body) = manager.post("/connect", Some(json!({"pairing_phone": "12"}))).await?;
    assert_eq!((code, body["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{body}");
    let (code, body) = manager.post("/connect", Some(json!({"pairing_phone": "+54 9 11 5555-0000"}))).await?;
    assert_eq!(code, 200, "{body}");
    let first = manager.wait_status("a pairing code", SHORT, |s| s["pairing_code"]["code"].is_string()).await;
    let pairing = &first["pairing_code"];
    let shown = pairing["code"].as_str().context("code")?.to_owned();
    assert!(
        shown.len() == 9
            && shown.as_bytes()[4] == b'-'
            && shown.chars().filter(|c| *c != '-').all(|c| c.is_ascii_alphanumeric()),
        "{shown}"
    );
    assert_eq!(pairing["phone"], "5491155550000");
    assert!(pairing["expires_at"].as_i64() > Some(0));
    assert_eq!(first["state"], "QR_REQUIRED");
    // A credential like the QR: not in the status without the token.
    let anonymous: Value = reqwest::get(format!("{}/status", manager.url)).await?.json().await?;
    assert!(anonymous.get("pairing_code").is_none() && anonymous.get("qr").is_none(), "{anonymous}");
    // Refreshed while unpaired: the page shows the new code.
    let second = manager
        .wait_status("a refreshed pairing code", SHORT, |s| {
            s["pairing_code"]["code"].as_str().is_some_and(|c| c != shown)
        })
        .await;
    assert!(second["pairing_code"]["attempts"].as_u64() >= Some(2));
    let current = env.sim_get("/__sim/state").await?["pairing_code"].as_str().context("sim code")?.to_owned();
    // A wrong code is refused by the phone.
    let (code, body) = env.sim_post_json("/__sim/pair", &json!({"code": "ZZZZ-ZZZZ"})).await?;
    assert_eq!((code, body["code"].as_str()), (422, Some("wrong_pairing_code")), "{body}");
    let (code, body) = env.sim_post_json("/__sim/pair", &json!({"code": current})).await?;
    assert_eq!(code, 200, "{body}");
    let ready = manager.wait_state("READY", SHORT).await;
    assert_eq!(ready["phone_number"], "+5491155550000");
    assert!(ready.get("pairing_code").is_none());
    env.finish(manager).await
}

/// Runs `session-manager probe` (extra `args`) against the simulator; its exit code and output.
fn probe(env: &Env, args: &[&str]) -> Result<(i32, String, String)> {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "auto".into());
    let output = Command::new(env!("CARGO_BIN_EXE_session-manager"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", env.dir.path())
        .env("WHATSAPP_WEB_URL", env.sim.url())
        .env("CHROMIUM_PATH", chromium)
        .env("PAGE_LOAD_TIMEOUT_SECS", PAGE_LOAD_SECS)
        .env("SESSION_MANAGER_TOKEN", TEST_MANAGER_TOKEN)
        .arg("probe")
        .args(args)
        .output()
        .context("run session-manager probe")?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr)))
}

/// What the probe left in its temporary directory (it must remove its profile).
fn leftovers(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.dir.path())
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned())).collect())
        .unwrap_or_default()
}

// Multi-threaded: the probe process blocks its thread while the in-process simulator serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_prints_the_inventory_and_fails_naming_a_missing_module() -> Result<()> {
    let env = Env::new(sim(2000)).await?;
    let (code, stdout, stderr) = tokio::task::block_in_place(|| probe(&env, &[]))?;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.starts_with(&format!("WhatsApp Web build {}: compatible", wa_sim::WA_VERSION)),
        "{stdout}"
    );
    assert!(
        stdout.contains("advSecret") && stdout.contains("WAWebUserPrefsMultiDevice.getADVSecretKey"),
        "{stdout}"
    );
    assert!(!stdout.contains("MISSING"), "{stdout}");
    assert_eq!(leftovers(&env), Vec::<String>::new(), "the throw-away profile is removed");
    assert_no_chromium_using(env.dir.path(), Duration::from_secs(5)).await;

    env.sim_config(&json!({"without_modules": ["WAWebCmd"]})).await?;
    let (code, stdout, stderr) = tokio::task::block_in_place(|| probe(&env, &["--json"]))?;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    let inventory: Value = serde_json::from_str(&stdout).context("probe --json prints JSON")?;
    assert_eq!(inventory["compatible"], false);
    assert_eq!(strings(&inventory["missing_required"]), ["Cmd"]);
    assert!(
        inventory["summary"].as_str().is_some_and(|s| s.ends_with("incompatible (missing: Cmd)")),
        "{inventory}"
    );
    let (code, stdout, _) = tokio::task::block_in_place(|| probe(&env, &[]))?;
    assert_eq!(code, 1);
    assert!(stdout.contains("MISSING (tried WAWebCmd.Cmd)"), "{stdout}");
    assert_eq!(leftovers(&env), Vec::<String>::new());
    env.stop().await
}
