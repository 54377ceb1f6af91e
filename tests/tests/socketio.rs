//! The hub's socket.io events seen by the real npm `socket.io-client` (run by node): against the
//! hub directly and through the shipped nginx over HTTPS, with the real manager, Chromium and the
//! WhatsApp Web simulator behind it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

use std::time::Duration;

use e2e::nginx::{RunningNginx, https_client, nginx_site};
use e2e::socketio::SocketIoClient;
use e2e::{Stack, StackOptions, binary_path, post_with_token};
use serde_json::{Value, json};
use wa_sim::SimConfig;

const CLIENT_EMAIL: &str = "client51@example.com";
const CLIENT_PASSWORD: &str = "a client password of some length";
/// Generous: the machine runs several Chromium tests at once.
const WITHIN: Duration = Duration::from_secs(60);

/// A stack whose QR stays the same for a minute (so the QR read over HTTP is the one the socket
/// got) and whose database the test can reach with the hub's CLI.
async fn stack(db_dir: &tempfile::TempDir) -> (Stack, String) {
    let database_url = format!("sqlite://{}", db_dir.path().join("hub.db").display());
    let options = StackOptions {
        sim: SimConfig { qr_rotate_ms: 60_000, load_delay_ms: 100, ..SimConfig::default() },
        hub_env: vec![("DATABASE_URL", database_url.clone())],
        ..StackOptions::default()
    };
    (Stack::start(options).await.expect("the stack starts"), database_url)
}

/// `central-hub users ...` on the stack's database.
fn hub_cli(database_url: &str, args: &[&str]) {
    let output = std::process::Command::new(binary_path("central-hub"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LEADMASTER_TEST_RUN", std::env::var_os("LEADMASTER_TEST_RUN").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("DATABASE_URL", database_url)
        .env("NEW_USER_PASSWORD", CLIENT_PASSWORD)
        .args(args)
        .output()
        .expect("the hub binary runs");
    assert!(output.status.success(), "central-hub {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

async fn login(hub: &str, email: &str, password: &str) -> String {
    let client = e2e::JsonClient::new(hub).unwrap();
    let (status, body) =
        client.post("/auth/login", Some(&json!({"email": email, "password": password}))).await.unwrap();
    assert_eq!(status, 200, "login of {email}: {body}");
    body["token"].as_str().expect("a token").to_owned()
}

/// Connects, authenticates and subscribes to the `admin` session; returns once the first
/// `session-status` arrived.
async fn subscribed(url: &str, transport: &str, token: &str, env: &[(&str, &str)]) -> SocketIoClient {
    let mut socket =
        SocketIoClient::connect(url, transport, env).await.expect("the socket.io client connects");
    socket.emit("authenticate", json!({"token": token})).await.unwrap();
    let authenticated = socket.wait_for("authenticated", WITHIN, |_| true).await;
    assert_eq!(authenticated, json!({"success": true}));
    socket.emit("subscribe-session", json!({"instance_id": "admin"})).await.unwrap();
    socket.wait_for("session-status", WITHIN, |_| true).await;
    socket
}

fn has_status(status: &'static str) -> impl Fn(&Value) -> bool {
    move |data| data["status"] == status
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_gets_each_qr_and_the_connected_status_and_a_client_only_the_status() {
    let db_dir = tempfile::tempdir().unwrap();
    let (stack, database_url) = stack(&db_dir).await;
    let hub = stack.hub.url().to_owned();
    hub_cli(
        &database_url,
        &["users", "add", "--email", CLIENT_EMAIL, "--role", "client", "--cliente-id", "51"],
    );
    let admin_token = stack.admin_token().await.unwrap();
    let client_token = login(&hub, CLIENT_EMAIL, CLIENT_PASSWORD).await;

    // Both transports: the admin over WebSocket, the client over HTTP long-polling.
    let mut admin = subscribed(&hub, "websocket", &admin_token, &[]).await;
    let mut client = subscribed(&hub, "polling", &client_token, &[]).await;
    let first = admin.received("session-status")[0].clone();
    assert_eq!(first["status"], "init", "a fresh manager is INIT: {first}");
    assert_eq!((first["state"].as_str(), &first["connectedAt"]), (Some("INIT"), &Value::Null));

    let (status, body) =
        post_with_token(&hub, "/api/admin/whatsapp/connect", &admin_token, None).await.unwrap();
    assert_eq!(status, 200, "connect: {body}");
    admin.wait_for("session-status", WITHIN, has_status("qr_required")).await;
    let qr = admin.wait_for("qr-code", WITHIN, |_| true).await;
    let png = qr["qr"].as_str().expect("qr is a string");
    assert!(png.starts_with("data:image/png;base64,"), "{qr}");
    assert!(qr["expiresAt"].as_i64().is_some_and(|ms| ms > 0), "{qr}");
    let (_, http) = e2e::get_with_token(&hub, "/api/admin/whatsapp/status", &admin_token).await.unwrap();
    let raw = http["qr"]["url"].as_str().expect("the HTTP status shows the QR");
    assert_eq!(e2e::decode_qr_data_url(png).expect("the PNG decodes"), raw, "the PNG encodes the raw QR");

    // `request-qr` answers the current QR again.
    admin.emit("request-qr", json!({"instance_id": "admin"})).await.unwrap();
    admin.wait_for("qr-code", WITHIN, |_| admin.received("qr-code").len() >= 2).await;
    assert_eq!(admin.received("qr-code")[1]["qr"], qr["qr"]);

    client.wait_for("session-status", WITHIN, has_status("qr_required")).await;
    client.emit("request-qr", json!({"instance_id": "admin"})).await.unwrap();
    let refused = client.wait_for("connection-error", WITHIN, |_| true).await;
    assert_eq!(refused["error"], "FORBIDDEN", "{refused}");

    let (status, body) = stack.sim_client().unwrap().post("/__sim/scan", None).await.unwrap();
    assert_eq!(status, 200, "scan: {body}");
    let connected = admin.wait_for("session-status", WITHIN, has_status("connected")).await;
    assert_eq!(connected["state"], "READY", "{connected}");
    assert!(connected["phoneNumber"].as_str().unwrap_or_default().contains("5491100000000"), "{connected}");
    assert!(connected["connectedAt"].as_str().is_some_and(|at| at.contains('T')), "{connected}");
    assert!(admin.received("session-status").iter().any(has_status("connecting")), "{:?}", admin.events());
    client.wait_for("session-status", WITHIN, has_status("connected")).await;
    // The QR went out before `connected` on the same ordered broadcasts: a client that got
    // `connected` would have got the QR already, had it been sent to it.
    assert_eq!(client.received("qr-code"), Vec::<Value>::new(), "a client never receives a QR");

    let (status, body) =
        post_with_token(&hub, "/api/admin/whatsapp/disconnect", &admin_token, None).await.unwrap();
    assert_eq!(status, 200, "disconnect: {body}");
    admin.wait_for("session-status", WITHIN, has_status("disconnected")).await;
    client.wait_for("session-status", WITHIN, has_status("disconnected")).await;
    assert_eq!(client.received("qr-code"), Vec::<Value>::new());

    admin.close().await.unwrap();
    client.close().await.unwrap();
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_unknown_sessions_and_disabled_users_are_refused_with_the_http_apis_codes() {
    let db_dir = tempfile::tempdir().unwrap();
    let (stack, database_url) = stack(&db_dir).await;
    let hub = stack.hub.url().to_owned();

    // Before authenticating: refused, but the socket may still authenticate.
    let mut socket = SocketIoClient::connect(&hub, "websocket", &[]).await.unwrap();
    socket.emit("subscribe-session", json!({"instance_id": "admin"})).await.unwrap();
    let early = socket.wait_for("connection-error", WITHIN, |_| true).await;
    assert_eq!(early["error"], "UNAUTHORIZED", "{early}");
    assert!(early["message"].as_str().unwrap_or_default().contains("authenticate"), "{early}");
    socket.emit("authenticate", json!({"token": "not.a.jwt"})).await.unwrap();
    assert_eq!(socket.wait_for("authenticated", WITHIN, |_| true).await, json!({"success": false}));
    socket.wait_for("connection-error", WITHIN, |_| socket.received("connection-error").len() >= 2).await;
    assert_eq!(socket.received("connection-error")[1]["error"], "UNAUTHORIZED");
    let reason = socket.wait_for("disconnect", WITHIN, |_| true).await;
    assert_eq!(reason, "io server disconnect", "the server closed the socket");
    assert_eq!(socket.received("session-status"), Vec::<Value>::new());
    socket.close().await.unwrap();

    // An unknown session and a payload without its field.
    let admin_token = stack.admin_token().await.unwrap();
    let mut socket = subscribed(&hub, "websocket", &admin_token, &[]).await;
    socket.emit("subscribe-session", json!({"instance_id": "acme-01"})).await.unwrap();
    let unknown = socket.wait_for("connection-error", WITHIN, |_| true).await;
    assert_eq!(unknown["error"], "NOT_FOUND", "{unknown}");
    socket.emit("request-qr", json!({"instance": "admin"})).await.unwrap();
    let invalid = socket.wait_for("connection-error", WITHIN, |e| e["error"] == "VALIDATION_ERROR").await;
    assert!(invalid["message"].as_str().unwrap_or_default().contains("instance_id"), "{invalid}");
    socket.close().await.unwrap();

    // A client whose account is disabled while subscribed is disconnected (FORBIDDEN, as over HTTP).
    hub_cli(
        &database_url,
        &["users", "add", "--email", CLIENT_EMAIL, "--role", "client", "--cliente-id", "51"],
    );
    let client_token = login(&hub, CLIENT_EMAIL, CLIENT_PASSWORD).await;
    let client = subscribed(&hub, "websocket", &client_token, &[]).await;
    hub_cli(&database_url, &["users", "disable", "--email", CLIENT_EMAIL]);
    let disabled = client.wait_for("connection-error", WITHIN, |_| true).await;
    assert_eq!(disabled["error"], "FORBIDDEN", "{disabled}");
    assert_eq!(client.wait_for("disconnect", WITHIN, |_| true).await, "io server disconnect");
    client.close().await.unwrap();
    stack.stop().await.expect("the stack stops");
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_io_through_the_shipped_nginx_over_https_upgrades_to_a_websocket() {
    let db_dir = tempfile::tempdir().unwrap();
    let (stack, _) = stack(&db_dir).await;
    let dir = tempfile::tempdir().unwrap();
    let site = nginx_site(dir.path(), stack.hub.port());
    let _nginx = RunningNginx::start(&site, dir.path());
    let base = format!("https://localhost:{}", site.https_port);
    let https = https_client(&site.cert_pem);
    e2e::wait_until("nginx answering over HTTPS", WITHIN, || async {
        https.get(format!("{base}/health")).send().await.ok().filter(|r| r.status() == 200)
    })
    .await;
    let token = stack.admin_token().await.unwrap();
    let ca = site.cert_path.display().to_string();
    let trust = [("NODE_EXTRA_CA_CERTS", ca.as_str())];

    let mut websocket = subscribed(&base, "websocket", &token, &trust).await;
    let connect = websocket.received("connect")[0].clone();
    assert_eq!(connect["transport"], "websocket", "upgraded through nginx: {connect}");
    let polling = subscribed(&base, "polling", &token, &trust).await;

    let hub = stack.hub.url().to_owned();
    let (status, body) = post_with_token(&hub, "/api/admin/whatsapp/connect", &token, None).await.unwrap();
    assert_eq!(status, 200, "connect: {body}");
    let qr = websocket.wait_for("qr-code", WITHIN, |_| true).await;
    let raw = e2e::decode_qr_data_url(qr["qr"].as_str().expect("qr")).expect("the PNG decodes");
    assert!(!raw.is_empty());
    assert_eq!(polling.wait_for("qr-code", WITHIN, |_| true).await, qr, "long-polling through nginx too");
    let (status, body) = stack.sim_client().unwrap().post("/__sim/scan", None).await.unwrap();
    assert_eq!(status, 200, "scan: {body}");
    websocket.wait_for("session-status", WITHIN, has_status("connected")).await;
    polling.wait_for("session-status", WITHIN, has_status("connected")).await;
    websocket.emit("request-qr", json!({"instance_id": "admin"})).await.unwrap();
    let no_qr = websocket.wait_for("connection-error", WITHIN, |_| true).await;
    assert_eq!(no_qr["error"], "NO_QR", "{no_qr}");

    websocket.close().await.unwrap();
    polling.close().await.unwrap();
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_get_each_rotated_qr_then_qr_expired_when_the_attempts_run_out() {
    let db_dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", db_dir.path().join("hub.db").display());
    let options = StackOptions {
        sim: SimConfig { qr_rotate_ms: 1_000, load_delay_ms: 100, ..SimConfig::default() },
        manager_env: vec![("MAX_QR_ATTEMPTS", "2".to_owned())],
        hub_env: vec![("DATABASE_URL", database_url.clone())],
        ..StackOptions::default()
    };
    let stack = Stack::start(options).await.expect("the stack starts");
    let hub = stack.hub.url().to_owned();
    hub_cli(
        &database_url,
        &["users", "add", "--email", CLIENT_EMAIL, "--role", "client", "--cliente-id", "51"],
    );
    let token = stack.admin_token().await.unwrap();
    let client_token = login(&hub, CLIENT_EMAIL, CLIENT_PASSWORD).await;
    let admin = subscribed(&hub, "websocket", &token, &[]).await;
    let client = subscribed(&hub, "websocket", &client_token, &[]).await;

    let (status, body) = post_with_token(&hub, "/api/admin/whatsapp/connect", &token, None).await.unwrap();
    assert_eq!(status, 200, "connect: {body}");
    let expired = admin.wait_for("qr-expired", WITHIN, |_| true).await;
    let message = expired["message"].as_str().unwrap_or_default();
    assert!(message.contains("connect"), "the message says what to do: {expired}");
    let qrs = admin.received("qr-code");
    assert_eq!(qrs.len(), 2, "one qr-code per QR shown (MAX_QR_ATTEMPTS=2): {qrs:?}");
    assert_ne!(qrs[0]["qr"], qrs[1]["qr"], "the rotation is a new QR");
    admin.wait_for("session-status", WITHIN, has_status("disconnected")).await;
    client.wait_for("session-status", WITHIN, has_status("disconnected")).await;
    assert_eq!(client.received("qr-code"), Vec::<Value>::new(), "a client never receives a QR");
    assert_eq!(client.received("qr-expired"), Vec::<Value>::new());

    admin.close().await.unwrap();
    client.close().await.unwrap();
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}
