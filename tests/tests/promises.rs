//! What README.md and deploy/README.md promise about the real binaries, checked on the real binaries:
//! the hub on PostgreSQL managed with its CLI, the hub's client routes in front of the real manager,
//! the manager's errors and limits passed through the hub, a hung manager, JSON logs.
//!
//! One stack serves several promises (the suite runs on 2 cores): each step names what it checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;
use std::time::Duration;

use e2e::{ADMIN_EMAIL, ADMIN_PASSWORD, Stack, StackOptions, binary_path, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use wa_sim::SimConfig;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Long enough for any answer of a healthy manager on a busy machine, short enough to wait out.
const HUB_TIMEOUT_MS: &str = "8000";
const DEADLINE: Duration = Duration::from_secs(40);
const CLIENT_EMAIL: &str = "c51@example.com";

/// A fresh PostgreSQL schema for one test, dropped when it ends.
struct Schema {
    base: String,
    name: String,
}

impl Schema {
    fn create() -> Schema {
        let base = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let name = format!("e2e_{}_{}", std::process::id(), free_suffix());
        psql(&base, &format!("create schema {name}"));
        Schema { base, name }
    }

    /// The database URL the hub uses: the schema first on the search path.
    fn url(&self) -> String {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.base, self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([&self.base, "-q", "-c", &format!("drop schema if exists {} cascade", self.name)])
            .output();
    }
}

fn free_suffix() -> u16 {
    e2e::free_port()
}

fn psql(url: &str, sql: &str) {
    let output = std::process::Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs (postgresql-client; scripts/test installs it)");
    assert!(
        output.status.success(),
        "PostgreSQL at {url} is required (set TEST_DATABASE_URL): {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `central-hub <args>` through the binary, with only the variables given (and PATH).
fn hub_cli(args: &[&str], envs: &[(&str, &str)]) -> Output {
    std::process::Command::new(binary_path("central-hub"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LEADMASTER_TEST_RUN", std::env::var_os("LEADMASTER_TEST_RUN").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("the hub binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One HTTP call: status, headers and JSON body (`null` when empty).
async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(40)).build().unwrap();
    let mut request = client.request(method, &url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, json)
}

async fn login(hub: &str, email: &str, password: &str) -> (u16, Value) {
    let (status, _, body) = call(
        reqwest::Method::POST,
        format!("{hub}/auth/login"),
        None,
        Some(&json!({"email": email, "password": password})),
        &[],
    )
    .await;
    (status, body)
}

async fn token_of(hub: &str, email: &str, password: &str) -> String {
    let (status, body) = login(hub, email, password).await;
    assert_eq!(status, 200, "{email} logs in: {body}");
    body["token"].as_str().expect("a token").to_owned()
}

async fn get(hub: &str, path: &str, token: &str) -> (u16, HeaderMap, Value) {
    call(reqwest::Method::GET, format!("{hub}{path}"), Some(token), None, &[]).await
}

async fn send(hub: &str, token: &str, text: &str, key: Option<&str>) -> (u16, HeaderMap, Value) {
    let headers: Vec<(&str, &str)> = key.map(|k| vec![("Idempotency-Key", k)]).unwrap_or_default();
    let body = json!({"to": "+54 9 11 2345-6789", "message": text});
    call(reqwest::Method::POST, format!("{hub}/api/whatsapp/51/send"), Some(token), Some(&body), &headers)
        .await
}

/// Every line a service logged with `LOG_FORMAT=json` is one JSON object.
fn assert_json_lines(service: &str, log: &str) {
    assert!(!log.trim().is_empty(), "{service} logged nothing");
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok_and(|v| v.is_object()), "{service}: a log line is not a JSON object: {line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_binaries_on_postgresql_keep_every_documented_promise_end_to_end() {
    let schema = Schema::create();
    let database_url = schema.url();
    let options = StackOptions {
        sim: SimConfig { qr_rotate_ms: 2_000, load_delay_ms: 100, ..SimConfig::default() },
        manager_env: vec![
            ("LOG_FORMAT", "json".to_owned()),
            ("SEND_TIMEOUT_SECS", "2".to_owned()),
            ("SEND_RATE_PER_MINUTE", "4".to_owned()),
        ],
        hub_env: vec![
            ("DATABASE_URL", database_url.clone()),
            ("LOG_FORMAT", "json".to_owned()),
            ("SESSION_MANAGER_TIMEOUT_MS", HUB_TIMEOUT_MS.to_owned()),
            ("SESSION_MANAGER_RETRIES", "0".to_owned()),
            ("AUTH_CACHE_TTL_MS", "0".to_owned()),
        ],
        ..StackOptions::default()
    };
    let stack = Stack::start(options).await.expect("the stack starts on PostgreSQL");
    let hub = stack.hub.url().to_owned();
    let db = [("DATABASE_URL", database_url.as_str())];

    // The hub binary created the admin in PostgreSQL; the CLI sees the same database.
    let admin = token_of(&hub, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let list = hub_cli(&["users", "list"], &db);
    assert!(list.status.success() && text(&list.stdout).contains(ADMIN_EMAIL), "{list:?}");

    // `users add`, `passwd`, `disable` and `--enable` through the binary, seen by the running hub.
    let add = hub_cli(
        &["users", "add", "--email", CLIENT_EMAIL, "--role", "client", "--cliente-id", "51"],
        &[db[0], ("NEW_USER_PASSWORD", "first client password")],
    );
    assert!(add.status.success(), "users add: {}", text(&add.stderr));
    token_of(&hub, CLIENT_EMAIL, "first client password").await;
    let passwd = hub_cli(
        &["users", "passwd", "--email", CLIENT_EMAIL],
        &[db[0], ("NEW_USER_PASSWORD", "second client password")],
    );
    assert!(passwd.status.success(), "users passwd: {}", text(&passwd.stderr));
    assert_eq!(
        login(&hub, CLIENT_EMAIL, "first client password").await.0,
        401,
        "the old password is refused"
    );
    let client = token_of(&hub, CLIENT_EMAIL, "second client password").await;
    let disable = hub_cli(&["users", "disable", "--email", CLIENT_EMAIL], &db);
    assert!(disable.status.success(), "users disable: {}", text(&disable.stderr));
    let (status, body) = login(&hub, CLIENT_EMAIL, "second client password").await;
    assert!(status == 401 || status == 403, "a disabled user cannot log in: {status} {body}");
    let (status, _, body) = get(&hub, "/api/whatsapp/51/status", &client).await;
    assert!(status == 401 || status == 403, "a disabled user's token stops working: {status} {body}");
    let enable = hub_cli(&["users", "disable", "--email", CLIENT_EMAIL, "--enable"], &db);
    assert!(enable.status.success(), "users disable --enable: {}", text(&enable.stderr));
    let client = token_of(&hub, CLIENT_EMAIL, "second client password").await;

    // The client's status route answers the real manager's state; a send before READY is the
    // manager's 409 SESSION_NOT_READY, passed through.
    let (status, _, body) = get(&hub, "/api/whatsapp/51/status", &client).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("INIT")), "{body}");
    let (status, _, body) = send(&hub, &client, "too early", None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("SESSION_NOT_READY")), "{body}");

    // Connect: the QR route answers the code the real manager shows.
    let (status, _, body) =
        call(reqwest::Method::POST, format!("{hub}/api/admin/whatsapp/connect"), Some(&admin), None, &[])
            .await;
    assert_eq!(status, 200, "connect: {body}");
    let sim = stack.sim.url();
    wait_until("the hub's QR route showing the simulator's current code", DEADLINE, || async {
        let (status, _, body) = get(&hub, "/api/whatsapp/51/qr-code", &admin).await;
        let (_, _, sim_state) =
            call(reqwest::Method::GET, format!("{sim}/__sim/state"), None, None, &[]).await;
        (status == 200 && body["url"].is_string() && body["url"] == sim_state["qr"]).then_some(())
    })
    .await;

    let (status, _, body) =
        call(reqwest::Method::POST, format!("{}/__sim/scan", stack.sim.url()), None, None, &[]).await;
    assert_eq!(status, 200, "scan: {body}");
    wait_until("READY on the client's status route", DEADLINE, || async {
        let (status, _, body) = get(&hub, "/api/whatsapp/51/status", &client).await;
        (status == 200 && body["state"] == "READY").then_some(())
    })
    .await;

    // Idempotency-Key reaches the manager: the retried send is answered again, delivered once.
    let (status, _, first) = send(&hub, &client, "una sola vez", Some("order-51-1")).await;
    assert_eq!(status, 200, "{first}");
    let (status, _, again) = send(&hub, &client, "una sola vez", Some("order-51-1")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["data"]["messageId"], first["data"]["messageId"], "the same answer: {first} / {again}");
    let (_, _, messages) =
        call(reqwest::Method::GET, format!("{}/__sim/messages", stack.sim.url()), None, None, &[]).await;
    assert_eq!(messages.as_array().map(Vec::len), Some(1), "delivered once: {messages}");

    // SEND_TIMEOUT_SECS: a send the page never confirms is 504 SEND_TIMEOUT, through the hub.
    let (status, _, body) = call(
        reqwest::Method::PUT,
        format!("{}/__sim/config", stack.sim.url()),
        None,
        Some(&json!({"send_latency_ms": 120_000})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "sim config: {body}");
    let (status, _, body) = send(&hub, &client, "never confirmed", Some("order-51-2")).await;
    assert_eq!((status, body["code"].as_str()), (504, Some("SEND_TIMEOUT")), "{body}");

    // SEND_RATE_PER_MINUTE: past the budget, 429 RATE_LIMITED with Retry-After, through the hub.
    let mut refused = None;
    for n in 3..=6 {
        let (status, headers, body) =
            send(&hub, &client, "over the budget", Some(&format!("order-51-{n}"))).await;
        if status == 429 {
            refused = Some((headers, body));
            break;
        }
        assert!(status == 200 || status == 504, "send {n}: {status} {body}");
    }
    let (headers, body) = refused.expect("a send past SEND_RATE_PER_MINUTE is refused");
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    let retry_after: u64 = headers
        .get("retry-after")
        .expect("the hub passes Retry-After on")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    // A hung manager: 504 SESSION_MANAGER_TIMEOUT naming the URL and the timeout, then back.
    let manager_pid = stack.manager.as_ref().and_then(e2e::Service::pid).expect("the manager's pid");
    kill(Pid::from_raw(manager_pid), Signal::SIGSTOP).unwrap();
    let (status, _, body) = get(&hub, "/api/whatsapp/51/qr-code", &admin).await;
    kill(Pid::from_raw(manager_pid), Signal::SIGCONT).unwrap();
    assert_eq!((status, body["code"].as_str()), (504, Some("SESSION_MANAGER_TIMEOUT")), "{body}");
    let said = body.to_string();
    assert!(
        said.contains(&stack.manager_url()) && said.contains(HUB_TIMEOUT_MS),
        "names URL and timeout: {body}"
    );
    wait_until("the manager answering again after SIGCONT", DEADLINE, || async {
        let (status, _, body) = get(&hub, "/api/whatsapp/51/status", &client).await;
        (status == 200 && body["state"] == "READY").then_some(())
    })
    .await;

    // LOG_FORMAT=json: every line of both services' logs is a JSON object.
    assert_json_lines("central-hub", &stack.hub.stderr());
    assert_json_lines("session-manager", &stack.manager.as_ref().unwrap().stderr());

    stack.stop().await.expect("the stack stops cleanly and leaves no Chromium");
    drop(schema);
}

#[test]
fn the_hub_cli_documents_itself_and_refuses_half_an_admin() {
    let help = hub_cli(&["--help"], &[]);
    assert!(help.status.success(), "{help:?}");
    let usage = text(&help.stdout);
    for word in ["users", "JWT_SECRET", "DATABASE_URL", "SESSION_MANAGER_URL"] {
        assert!(usage.contains(word), "--help mentions {word}: {usage}");
    }
    let users_help = hub_cli(&["users", "--help"], &[]);
    let usage = text(&users_help.stdout);
    for word in ["add", "list", "passwd", "disable"] {
        assert!(usage.contains(word), "users --help lists {word}: {usage}");
    }

    // ADMIN_EMAIL without ADMIN_PASSWORD: the binary refuses to start and says why.
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let half = hub_cli(
        &[],
        &[
            ("CENTRAL_HUB_PORT", "0"),
            ("DATABASE_URL", &database_url),
            ("JWT_SECRET", e2e::TEST_JWT_SECRET),
            ("SESSION_MANAGER_TOKEN", e2e::TEST_MANAGER_TOKEN),
            ("ADMIN_EMAIL", ADMIN_EMAIL),
        ],
    );
    assert!(!half.status.success(), "the hub must not start: {half:?}");
    let stderr = text(&half.stderr);
    assert!(stderr.contains("ADMIN_EMAIL") && stderr.contains("ADMIN_PASSWORD"), "{stderr}");
    assert!(!text(&half.stdout).contains("listening on"), "it never listened");
}
