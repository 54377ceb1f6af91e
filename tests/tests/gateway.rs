//! The gateway end to end: the real hub in front of the real manager, a real Chromium, and the
//! WhatsApp Web simulator.

use std::time::Duration;

use e2e::{
    JsonClient, Service, Stack, StackOptions, TEST_JWT_SECRET, free_port, get_with_token, post_with_token,
    wait_until,
};
use serde_json::{Value, json};

async fn admin_status(hub: &str, token: &str) -> Option<Value> {
    let (status, body) = get_with_token(hub, "/api/admin/whatsapp/status", token).await.ok()?;
    (status == 200).then_some(body)
}

#[tokio::test(flavor = "multi_thread")]
async fn login_connect_scan_and_send_through_the_hub_reach_the_simulator() {
    let stack = Stack::start(StackOptions::default()).await.expect("the stack starts");
    let token = stack.admin_token().await.expect("the admin logs in");
    let hub = stack.hub.url().to_owned();

    let (status, body) = post_with_token(&hub, "/api/admin/whatsapp/connect", &token, None).await.unwrap();
    assert_eq!(status, 200, "connect: {body}");
    assert_eq!(body["success"], true);

    let qr = wait_until("a QR in the hub's admin status", Duration::from_secs(30), || async {
        let body = admin_status(&hub, &token).await?;
        (body["state"] == "QR_REQUIRED").then(|| body["qr"].clone())
    })
    .await;
    let url = qr["url"].as_str().expect("qr.url is a string");
    assert_eq!(
        e2e::decode_qr_data_url(qr["base64"].as_str().expect("qr.base64")).expect("the QR decodes"),
        url,
        "the PNG encodes qr.url"
    );
    assert_eq!(qr["attempts"], 1);

    let sim = stack.sim_client().unwrap();
    let (status, body) = sim.post("/__sim/scan", None).await.unwrap();
    assert_eq!(status, 200, "scan: {body}");
    let ready = wait_until("READY in the hub's admin status", Duration::from_secs(20), || async {
        let body = admin_status(&hub, &token).await?;
        (body["state"] == "READY").then_some(body)
    })
    .await;
    assert_eq!(ready["connected"], true);
    assert_eq!(ready["can_send_messages"], true);
    assert!(ready["phone_number"].as_str().unwrap_or_default().contains("5491100000000"), "{ready}");
    assert!(ready.get("qr").is_none_or(Value::is_null), "no QR once READY: {ready}");

    let message = json!({"to": "+54 9 11 2345-6789", "message": "Hola desde la prueba end to end"});
    let (status, body) =
        post_with_token(&hub, "/api/whatsapp/51/send", &token, Some(&message)).await.unwrap();
    assert_eq!(status, 200, "send: {body}");
    assert_eq!(body["data"]["to"], "5491123456789");
    let (_, received) = sim.get("/__sim/messages").await.unwrap();
    let received = received.as_array().expect("a list of messages");
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["to"], "5491123456789");
    assert_eq!(received[0]["text"], "Hola desde la prueba end to end");

    let (status, body) = post_with_token(&hub, "/api/admin/whatsapp/disconnect", &token, None).await.unwrap();
    assert_eq!(status, 200, "disconnect: {body}");
    wait_until("DISCONNECTED in the hub's admin status", Duration::from_secs(20), || async {
        let body = admin_status(&hub, &token).await?;
        (body["state"] == "DISCONNECTED").then_some(())
    })
    .await;
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_pointed_at_a_port_where_nothing_listens_names_the_url_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let dead_url = format!("http://127.0.0.1:{}", free_port());
    let database_url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let hub = Service::start(
        "central-hub",
        &[],
        &[
            ("CENTRAL_HUB_PORT", "0"),
            ("SESSION_MANAGER_URL", &dead_url),
            ("DATABASE_URL", &database_url),
            ("JWT_SECRET", TEST_JWT_SECRET),
            ("ADMIN_EMAIL", e2e::ADMIN_EMAIL),
            ("ADMIN_PASSWORD", e2e::ADMIN_PASSWORD),
        ],
    )
    .await
    .expect("the hub starts even though the manager is unreachable");

    let client = JsonClient::new(hub.url()).unwrap();
    let (status, health) = client.get("/health").await.unwrap();
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["checks"]["session_manager"]["ok"], false);
    assert_eq!(health["checks"]["session_manager"]["url"], dead_url.as_str());
    let error = health["checks"]["session_manager"]["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("refused"), "the health error says the connection was refused: {error}");

    let (_, login) = client
        .post("/auth/login", Some(&json!({"email": e2e::ADMIN_EMAIL, "password": e2e::ADMIN_PASSWORD})))
        .await
        .unwrap();
    let token = login["token"].as_str().expect("a token");
    let (status, body) = get_with_token(hub.url(), "/api/admin/whatsapp/status", token).await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "SESSION_MANAGER_UNREACHABLE");
    assert_eq!(body["detail"]["url"], dead_url.as_str());
    assert!(body["hint"].as_str().unwrap_or_default().contains("SESSION_MANAGER_URL"), "{body}");

    assert!(
        hub.stderr().contains(&dead_url),
        "the start-up log names the unreachable URL; stderr: {}",
        hub.stderr()
    );
    let status = hub.stop().await.unwrap();
    assert!(status.success(), "the hub exits cleanly on SIGTERM: {status}");
}

/// Linking by phone number through the hub: the admin's connect carries `pairing_phone`, the code
/// reaches the admin status (and is refreshed), the hub's health names the WhatsApp build, and the
/// code typed on the (simulated) phone brings READY as a scan does.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_links_the_account_with_a_pairing_code_through_the_hub() {
    let options = StackOptions {
        manager_env: vec![("PAIRING_CODE_REFRESH_SECS", "2".into())],
        ..StackOptions::default()
    };
    let stack = Stack::start(options).await.expect("the stack starts");
    let token = stack.admin_token().await.expect("the admin logs in");
    let hub = stack.hub.url().to_owned();

    let bad = json!({"pairing_phone": "not a phone"});
    let (status, body) =
        post_with_token(&hub, "/api/admin/whatsapp/connect", &token, Some(&bad)).await.unwrap();
    assert_eq!((status, body["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{body}");

    let body = json!({"pairing_phone": "+54 9 11 5555-0000"});
    let (status, answer) =
        post_with_token(&hub, "/api/admin/whatsapp/connect", &token, Some(&body)).await.unwrap();
    assert_eq!(status, 200, "connect: {answer}");
    let first = wait_until("a pairing code in the admin status", Duration::from_secs(30), || async {
        let body = admin_status(&hub, &token).await?;
        body["pairing_code"]["code"].as_str().map(str::to_owned)
    })
    .await;
    assert_eq!(first.len(), 9, "ABCD-EFGH: {first}");
    let refreshed = wait_until("a refreshed pairing code", Duration::from_secs(30), || async {
        let body = admin_status(&hub, &token).await?;
        body["pairing_code"]["code"].as_str().filter(|code| *code != first).map(str::to_owned)
    })
    .await;

    // The hub's health (loopback: with details) names the build the manager found.
    let (status, health) = JsonClient::new(hub.clone()).unwrap().get("/health").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        health["checks"]["session_manager"]["whatsapp"],
        format!("WhatsApp Web build {}: compatible", wa_sim::WA_VERSION),
        "{health}"
    );

    let sim = stack.sim_client().unwrap();
    let (status, _) = sim.post("/__sim/pair", Some(&json!({"code": "AAAA-AAAA"}))).await.unwrap();
    assert_eq!(status, 422, "a wrong code is refused");
    // The admin sees the code the phone expects (both refresh every 2 s: compare one moment).
    wait_until("the admin's code is the page's", Duration::from_secs(30), || async {
        let page = sim.get("/__sim/state").await.ok()?.1["pairing_code"].as_str()?.to_owned();
        let admin = admin_status(&hub, &token).await?["pairing_code"]["code"].as_str()?.replace('-', "");
        (page == admin).then_some(())
    })
    .await;
    assert_ne!(refreshed, first);
    // Typed on the phone: the code shown now (a refresh may land in between: type the new one).
    wait_until("the phone accepts the code shown", Duration::from_secs(30), || async {
        let code = admin_status(&hub, &token).await?["pairing_code"]["code"].as_str()?.to_owned();
        let (status, _) = sim.post("/__sim/pair", Some(&json!({"code": code}))).await.ok()?;
        (status == 200).then_some(())
    })
    .await;
    let ready = wait_until("READY after the pairing code", Duration::from_secs(30), || async {
        let body = admin_status(&hub, &token).await?;
        (body["state"] == "READY").then_some(body)
    })
    .await;
    assert_eq!(ready["phone_number"], "+5491155550000");
    assert!(ready.get("pairing_code").is_none(), "{ready}");
    stack.stop().await.unwrap();
}
