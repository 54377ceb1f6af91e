//! Starting the hub in-process on 127.0.0.1:0 with a temporary SQLite file (or a given database).

#![allow(dead_code)]

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use central_hub::Application;
use central_hub::auth::password;
use central_hub::config::{Config, ServeArgs};
use central_hub::db::{NewUser, User};
use central_hub::state::AppState;
use manager_double::{ManagerDouble, Mode};
use serde_json::{Value, json};
use shared_contracts::{ClienteId, Email, Role, SessionState};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_EMAIL: &str = "admin@test.io";
pub const ADMIN_PASSWORD: &str = "admin password 1";
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        central_hub::telemetry::init();
    }
});

/// A plain HTTP client for tests (reqwest is built without a default TLS provider).
pub fn http_client() -> reqwest::Client {
    central_hub::client::install_crypto_provider();
    reqwest::Client::new()
}

pub fn serve_args(manager_url: &str, database_url: &str) -> ServeArgs {
    ServeArgs {
        host: "127.0.0.1".into(),
        port: 0,
        database_url: database_url.into(),
        session_manager_url: manager_url.into(),
        session_manager_token: Some(manager_double::MANAGER_TOKEN.into()),
        session_manager_connect_timeout_ms: 2_000,
        session_manager_timeout_ms: 5_000,
        session_manager_retries: 2,
        jwt_secret: Some(JWT_SECRET.into()),
        jwt_ttl_seconds: 3600,
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        login_max_attempts_per_ip: 1000,
        login_max_failures_per_account: 5,
        login_window_seconds: 300,
        auth_cache_ttl_ms: 2_000,
        trust_proxy_headers: false,
        hub_send_rate_per_minute: 30,
        campaign_min_delay_ms: 8_000,
        campaign_max_delay_ms: 20_000,
        campaign_max_per_hour: 200,
        campaign_max_per_day: 1_000,
        campaign_lease_seconds: 90,
        campaign_retry_base_ms: 2_000,
        campaign_default_time_zone: "America/Argentina/Buenos_Aires".into(),
        opt_out_keywords: central_hub::inbound::DEFAULT_OPT_OUT_KEYWORDS.into(),
        webhooks: central_hub::config::WebhookArgs::default(),
    }
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub database_url: String,
    _dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), String>>>,
}

/// A hub with default test settings in front of `manager_url`.
pub async fn spawn_app(manager_url: &str) -> TestApp {
    spawn_app_with(manager_url, |_| {}).await
}

/// A hub whose flags `tweak` adjusts first (timeouts, limits, database).
/// A manager double in `state`, a hub in front of it and an admin's token: most tests' start.
pub async fn hub_as_admin(state: SessionState) -> (ManagerDouble, TestApp, String) {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    manager.set_state(state);
    let app = spawn_app(&manager.url).await;
    let token = app.admin_token().await;
    (manager, app, token)
}

pub async fn spawn_app_with(manager_url: &str, tweak: impl FnOnce(&mut ServeArgs)) -> TestApp {
    LazyLock::force(&TRACING);
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}/data/hub.db", dir.path().display());
    let mut args = serve_args(manager_url, &sqlite);
    tweak(&mut args);
    let database_url = args.database_url.clone();
    let config = Config::from_args(args).expect("valid test config");
    let app = Application::build(config).await.expect("the hub starts");
    let url = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run_until_stopped(async move {
            let _ = stopped.await;
        })
        .await
        .map_err(|e| e.to_string())
    });
    TestApp { url, http: http_client(), state, database_url, _dir: dir, stop: Some(stop), task: Some(task) }
}

impl TestApp {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the hub drains and stops within 10 s")
                .expect("the server task does not panic")
                .unwrap_or_else(|e| panic!("the hub's server failed: {e}"));
        }
    }

    pub async fn add_user(&self, email: &str, password: &str, role: Role, cliente_id: Option<u64>) -> User {
        let password_hash = password::hash(password).expect("hash");
        self.state
            .store
            .create_user(NewUser {
                email: email.parse().expect("an email"),
                password_hash,
                role,
                cliente_id: cliente_id.map(|id| ClienteId::try_from(id).expect("a positive cliente_id")),
            })
            .await
            .expect("create user")
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/auth/login", self.url))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login request")
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), 200, "login of {email}");
        let body: Value = response.json().await.expect("login body");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn admin_token(&self) -> String {
        self.token(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("POST")
    }

    /// Waits until the hub's subscription to the manager's event stream is live.
    pub async fn wait_for_live_stream(&self) {
        let feed = self.state.feed.clone();
        wait_until("the hub subscribes to the manager's /events", || feed.live_status().is_some()).await;
    }
}

/// Status and JSON body of a response.
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body expected, got {text:?}"));
    (status, body)
}

/// Polls `condition` every 20 ms for up to 10 s.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A URL where nothing listens (a port just bound and released).
pub async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// A test's email literal as the store takes it.
pub fn email(raw: &str) -> Email {
    Email::parse(raw).expect("an email")
}
