//! The whole gateway for one test: the simulator (in process), the real `session-manager` and
//! `central-hub` binaries, a temporary data directory, and an admin account.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use wa_sim::{SimConfig, SimHandle};

use crate::{JsonClient, Service, assert_no_chromium_using};

/// The admin account every stack is created with.
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
/// A JWT secret of the required length, for tests only.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// A free TCP port on 127.0.0.1 (bound then released: for a service that must come back on the
/// same port after a restart).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0 gives a free port")
}

/// The hub's campaign settings of the tests: no delay, no caps, quick retries (never with a real
/// account: see the pacing in docs/operations.md).
pub fn campaign_zero_pace_env() -> Vec<(&'static str, String)> {
    vec![
        ("CAMPAIGN_MIN_DELAY_MS", "0".into()),
        ("CAMPAIGN_MAX_DELAY_MS", "0".into()),
        ("CAMPAIGN_MAX_PER_HOUR", "0".into()),
        ("CAMPAIGN_MAX_PER_DAY", "0".into()),
        ("CAMPAIGN_RETRY_BASE_MS", "100".into()),
    ]
}

/// Options of [`Stack::start`].
pub struct StackOptions {
    /// The simulator's configuration (its `port` is ignored: always a free one).
    pub sim: SimConfig,
    /// A fixed manager port (to restart it on the same URL); `None`: any free port.
    pub manager_port: Option<u16>,
    /// Variables added to (or overriding) the manager's environment.
    pub manager_env: Vec<(&'static str, String)>,
    /// Variables added to (or overriding) the hub's environment.
    pub hub_env: Vec<(&'static str, String)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            sim: SimConfig { qr_rotate_ms: 2_000, load_delay_ms: 100, ..SimConfig::default() },
            manager_port: None,
            manager_env: Vec::new(),
            hub_env: Vec::new(),
        }
    }
}

/// Simulator + manager + hub, wired together on loopback.
pub struct Stack {
    pub sim: SimHandle,
    pub manager: Option<Service>,
    pub hub: Service,
    manager_port: u16,
    manager_env: Vec<(&'static str, String)>,
    /// The hub's whole environment, to start it again the same way.
    hub_env: Vec<(&'static str, String)>,
    /// Kills any Chromium left on `dir` when the stack is dropped (declared before `dir`: it runs
    /// before the directory is removed).
    _reaper: crate::ChromiumReaper,
    dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Stack> {
        let dir = tempfile::tempdir()?;
        let reaper = crate::ChromiumReaper::new(dir.path());
        let sim = wa_sim::spawn(SimConfig { port: 0, ..options.sim }).await?;
        let manager_port = options.manager_port.unwrap_or_else(free_port);
        let manager_env = options.manager_env;
        let manager =
            start_manager(manager_port, &dir.path().join("session-manager"), &sim.url(), &manager_env)
                .await?;
        let manager_url = format!("http://127.0.0.1:{manager_port}");
        let database_url = format!("sqlite://{}", dir.path().join("hub.db").display());
        let mut hub_env: Vec<(&'static str, String)> = vec![
            ("CENTRAL_HUB_HOST", "127.0.0.1".into()),
            ("CENTRAL_HUB_PORT", "0".into()),
            ("SESSION_MANAGER_URL", manager_url),
            ("DATABASE_URL", database_url),
            ("JWT_SECRET", TEST_JWT_SECRET.into()),
            ("ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
        ];
        hub_env.extend(options.hub_env);
        let hub = start_hub(&hub_env).await?;
        Ok(Stack {
            sim,
            manager: Some(manager),
            hub,
            manager_port,
            manager_env,
            hub_env,
            _reaper: reaper,
            dir,
        })
    }

    /// Starts the manager again, on the same port and data directory.
    pub async fn start_manager(&mut self) -> anyhow::Result<()> {
        if self.manager.is_some() {
            bail!("the manager is already running");
        }
        self.manager = Some(
            start_manager(self.manager_port, &self.manager_data_dir(), &self.sim.url(), &self.manager_env)
                .await?,
        );
        Ok(())
    }

    /// Stops the hub with SIGTERM (it must exit cleanly). Until [`Stack::start_hub`], `hub` is
    /// the stopped process.
    pub async fn stop_hub(&mut self) -> anyhow::Result<()> {
        let status = self.hub.terminate().await?;
        if !status.success() {
            bail!("central-hub exited with {status} after SIGTERM");
        }
        Ok(())
    }

    /// Starts the hub again with the same environment and database (on another port: read
    /// `hub.url()` again).
    pub async fn start_hub(&mut self) -> anyhow::Result<()> {
        self.hub = start_hub(&self.hub_env).await?;
        Ok(())
    }

    /// Connects the session through the hub as `token`'s admin and scans the QR in the
    /// simulator: the session is READY.
    pub async fn connect_and_scan(&self, token: &str) {
        let hub = self.hub.url().to_owned();
        let (status, body) = post_with_token(&hub, "/api/admin/whatsapp/connect", token, None)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        assert_eq!(status, 200, "connect: {body}");
        self.wait_for_state(token, "QR_REQUIRED").await;
        let (status, body) = self
            .sim_client()
            .expect("a simulator client")
            .post("/__sim/scan", None)
            .await
            .unwrap_or_else(|e| panic!("scan: {e}"));
        assert_eq!(status, 200, "scan: {body}");
        self.wait_for_state(token, "READY").await;
    }

    /// Waits (30 s at most) until the hub reports the session in `state`.
    pub async fn wait_for_state(&self, token: &str, state: &str) {
        let hub = self.hub.url().to_owned();
        crate::wait_until(state, Duration::from_secs(30), || async {
            let (_, body) = get_with_token(&hub, "/api/admin/whatsapp/status", token).await.ok()?;
            (body["state"] == state).then_some(())
        })
        .await;
    }

    /// The manager's URL (fixed for the stack's life).
    pub fn manager_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.manager_port)
    }

    /// Stops the manager with SIGTERM (its Chromium with it).
    pub async fn stop_manager(&mut self) -> anyhow::Result<()> {
        let manager = self.manager.take().context("the manager is not running")?;
        let status = manager.stop().await?;
        if !status.success() {
            bail!("session-manager exited with {status} after SIGTERM");
        }
        Ok(())
    }

    /// The manager's data directory (its Chromium profile lives below it).
    pub fn manager_data_dir(&self) -> PathBuf {
        self.dir.path().join("session-manager")
    }

    /// A JSON client on the hub.
    pub fn hub_client(&self) -> anyhow::Result<JsonClient> {
        JsonClient::new(self.hub.url())
    }

    /// A JSON client on the simulator's control API.
    pub fn sim_client(&self) -> anyhow::Result<JsonClient> {
        JsonClient::new(self.sim.url())
    }

    /// Logs the admin in and returns the bearer token.
    pub async fn admin_token(&self) -> anyhow::Result<String> {
        let (status, body) = self
            .hub_client()?
            .post("/auth/login", Some(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})))
            .await?;
        if status != 200 {
            bail!("admin login answered {status}: {body}");
        }
        body["token"].as_str().map(str::to_owned).context("login answer has a token")
    }

    /// Stops hub, manager and simulator; fails if a Chromium of this stack is still running.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if self.manager.is_some() {
            self.stop_manager().await?;
        }
        let data_dir = self.manager_data_dir();
        let Stack { sim, hub, .. } = self;
        let status = hub.stop().await?;
        if !status.success() {
            bail!("central-hub exited with {status} after SIGTERM");
        }
        assert_no_chromium_using(&data_dir, Duration::from_secs(10)).await;
        sim.shutdown().await;
        Ok(())
    }
}

/// Starts the real `central-hub` with exactly `env`.
async fn start_hub(env: &[(&'static str, String)]) -> anyhow::Result<Service> {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Service::start("central-hub", &[], &env).await
}

/// Starts the real `session-manager` on `port`, against the simulator at `sim_url`; `extra` adds or
/// overrides variables.
async fn start_manager(
    port: u16,
    data_dir: &std::path::Path,
    sim_url: &str,
    extra: &[(&'static str, String)],
) -> anyhow::Result<Service> {
    let port = port.to_string();
    let data_dir = data_dir.to_string_lossy();
    // The test run's CHROMIUM_PATH (to run the suite on another browser), else the manager's own
    // choice (the headless shell where installed).
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "auto".into());
    let mut env: Vec<(&str, &str)> = vec![
        ("SESSION_MANAGER_HOST", "127.0.0.1"),
        ("SESSION_MANAGER_PORT", &port),
        ("SESSION_MANAGER_DATA_DIR", &data_dir),
        ("WHATSAPP_WEB_URL", sim_url),
        ("AUTO_CONNECT", "never"),
        ("CHROMIUM_PATH", &chromium),
        // QR codes for far longer than any deadline of a test: a slow machine never runs out of them.
        ("MAX_QR_ATTEMPTS", "1000"),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
    Service::start("session-manager", &[], &env).await
}

/// Reads `GET path` on the hub with a bearer token.
pub async fn get_with_token(base: &str, path: &str, token: &str) -> anyhow::Result<(u16, Value)> {
    request_with_token(reqwest::Method::GET, base, path, token, None).await
}

/// `POST path` on the hub with a bearer token and an optional JSON body.
pub async fn post_with_token(
    base: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    request_with_token(reqwest::Method::POST, base, path, token, body).await
}

async fn request_with_token(
    method: reqwest::Method,
    base: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(40)).build()?;
    let mut request = client.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).with_context(|| format!("{status} {text}"))?
    };
    Ok((status, json))
}
