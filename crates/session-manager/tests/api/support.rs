//! What the manager's end-to-end tests need beyond the `e2e` harness: the manager's environment
//! against an in-process simulator, its API (JSON, bytes, headers), status polling, and the
//! Chromium processes of one test. Process spawning, waiting and `/proc` scans are the harness's.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use e2e::{JsonClient, Service, TEST_MANAGER_TOKEN, assert_no_chromium_using, chromium_pids_using};
use serde_json::Value;
use tokio::sync::{Semaphore, SemaphorePermit};
use wa_sim::{SimConfig, SimHandle};

/// Each test runs a Chromium; on 2 cores shared with other suites, two at a time keeps clocks honest.
static BROWSERS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(2));

/// The phone number the simulator links.
pub const PHONE: &str = "5491100000000";

/// Upper bound for a state to be reached (a deadline, not a timing assertion: the machine is busy).
pub const SHORT: Duration = Duration::from_secs(40);

/// A simulator with test clocks.
pub fn sim(qr_rotate_ms: u64) -> SimConfig {
    SimConfig { qr_rotate_ms, load_delay_ms: 100, ..SimConfig::default() }
}

/// One test's world: a simulator, a data directory, and the managers started on it.
pub struct Env {
    pub sim: SimHandle,
    /// Kills any Chromium left on `dir` when the test ends, even by a panic (before `dir` is removed).
    _reaper: e2e::ChromiumReaper,
    pub dir: tempfile::TempDir,
    sim_api: JsonClient,
    _permit: SemaphorePermit<'static>,
}

impl Env {
    pub async fn new(sim: SimConfig) -> Result<Self> {
        let permit = BROWSERS.acquire().await.context("semaphore")?;
        let sim = wa_sim::spawn(SimConfig { port: 0, ..sim }).await.context("start wa-sim")?;
        let sim_api = JsonClient::new(sim.url())?;
        let dir = tempfile::tempdir().context("tempdir")?;
        let reaper = e2e::ChromiumReaper::new(dir.path());
        Ok(Self { sim, _reaper: reaper, dir, sim_api, _permit: permit })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the real binary on port 0 against the simulator; `env` adds or overrides variables.
    pub async fn manager(&self, env: &[(&str, &str)]) -> Result<Manager> {
        let data_dir = self.data_dir().display().to_string();
        let sim_url = self.sim.url();
        // The browser: CHROMIUM_PATH of the test run (to run the suite on another one), else the
        // manager's own choice (`auto`: the headless shell when installed).
        let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "auto".into());
        let mut vars = vec![
            ("SESSION_MANAGER_HOST", "127.0.0.1"),
            ("SESSION_MANAGER_PORT", "0"),
            ("SESSION_MANAGER_DATA_DIR", data_dir.as_str()),
            ("WHATSAPP_WEB_URL", sim_url.as_str()),
            ("CHROMIUM_PATH", chromium.as_str()),
            ("LOG_FORMAT", "text"),
        ];
        vars.extend_from_slice(env);
        let service = Service::start("session-manager", &[], &vars).await?;
        Manager::new(service)
    }

    pub async fn sim_get(&self, path: &str) -> Result<Value> {
        let (code, body) = self.sim_api.get(path).await?;
        if code != 200 {
            bail!("simulator GET {path} answered {code}: {body}");
        }
        Ok(body)
    }

    /// `POST path` on the simulator's control API; its HTTP status.
    pub async fn sim_post(&self, path: &str) -> Result<u16> {
        Ok(self.sim_api.post(path, None).await?.0)
    }

    /// `POST path` with a JSON body on the simulator's control API; its status and answer.
    pub async fn sim_post_json(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.sim_api.post(path, Some(body)).await
    }

    /// `PUT /__sim/config` with `patch`, which must be accepted.
    pub async fn sim_config(&self, patch: &Value) -> Result<()> {
        let (code, body) = self.sim_api.put("/__sim/config", patch).await?;
        if code != 200 {
            bail!("simulator PUT /__sim/config answered {code}: {body}");
        }
        Ok(())
    }

    /// Chromium processes of this test (their command line names its directory).
    pub fn chromium_pids(&self) -> Vec<i32> {
        chromium_pids_using(self.dir.path())
    }

    /// The Chromium browser process (not a renderer or helper) of this test.
    pub fn chromium_main_pid(&self) -> Option<i32> {
        self.chromium_pids().into_iter().find(|pid| cmdline(*pid).is_some_and(|c| !c.contains("--type=")))
    }

    /// The renderers of web pages (not Chromium's own WebUI) of this test.
    pub fn page_renderer_pids(&self) -> Vec<i32> {
        self.chromium_pids()
            .into_iter()
            .filter(|pid| {
                cmdline(*pid)
                    .is_some_and(|c| c.contains("--type=renderer") && !c.contains("--top-chrome-webui"))
            })
            .collect()
    }

    /// Stops `manager` with SIGTERM (it must exit cleanly), checks that no Chromium of this test
    /// is left, then stops the simulator.
    pub async fn finish(self, manager: Manager) -> Result<()> {
        let status = manager.terminate().await?;
        assert!(status.success(), "session-manager exited with {status} after SIGTERM");
        self.stop().await
    }

    /// Checks that no Chromium of this test is left, then stops the simulator.
    pub async fn stop(self) -> Result<()> {
        assert_no_chromium_using(self.dir.path(), Duration::from_secs(15)).await;
        self.sim.shutdown().await;
        Ok(())
    }
}

/// The command line of `pid`, arguments separated by spaces.
fn cmdline(pid: i32) -> Option<String> {
    std::fs::read(format!("/proc/{pid}/cmdline")).ok().map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
}

/// A running `session-manager`. Dropped while a test panics, it prints the tail of its log.
pub struct Manager {
    service: Option<Service>,
    api: JsonClient,
    http: reqwest::Client,
    pub url: String,
}

impl Manager {
    fn new(service: Service) -> Result<Self> {
        let url = service.url().to_owned();
        let api = JsonClient::new(url.clone())?.with_bearer(TEST_MANAGER_TOKEN);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {TEST_MANAGER_TOKEN}").parse()?);
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).default_headers(headers).build()?;
        Ok(Self { service: Some(service), api, http, url })
    }

    fn service(&self) -> &Service {
        self.service.as_ref().expect("the service runs until terminate() consumes the manager")
    }

    pub fn pid(&self) -> Option<i32> {
        self.service().pid()
    }

    /// The port of its HTTP API.
    pub fn port(&self) -> u16 {
        self.service().port()
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.api.get(path).await
    }

    /// `GET path` for non-JSON answers (`/qr` PNG, `/metrics` text).
    pub async fn get_bytes(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        let response = self.http.get(format!("{}{path}", self.url)).send().await?;
        Ok((response.status().as_u16(), response.bytes().await?.to_vec()))
    }

    pub async fn metrics(&self) -> Result<String> {
        let (code, bytes) = self.get_bytes("/metrics").await?;
        if code != 200 {
            bail!("/metrics answered {code}");
        }
        Ok(String::from_utf8(bytes)?)
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        self.api.post(path, body.as_ref()).await
    }

    /// `POST path` with extra headers; the status, the headers and the JSON body.
    pub async fn post_with_headers(
        &self,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, reqwest::header::HeaderMap, Value)> {
        let mut request = self.http.post(format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        Ok((status, headers, response.json().await.unwrap_or(Value::Null)))
    }

    /// `POST /connect`, which must be accepted.
    pub async fn connect(&self) -> Result<Value> {
        let (code, body) = self.post("/connect", None).await?;
        if code != 200 {
            bail!("/connect answered {code}: {body}");
        }
        Ok(body)
    }

    pub async fn status(&self) -> Result<Value> {
        let (code, body) = self.get("/status").await?;
        if code != 200 {
            bail!("/status answered {code}: {body}");
        }
        Ok(body)
    }

    /// Waits until `/status` satisfies `check` and returns that status; panics at the deadline.
    pub async fn wait_status(&self, what: &str, within: Duration, check: impl Fn(&Value) -> bool) -> Value {
        e2e::wait_until(what, within, || async { self.status().await.ok().filter(|s| check(s)) }).await
    }

    pub async fn wait_state(&self, state: &str, within: Duration) -> Value {
        self.wait_status(&format!("state {state}"), within, |s| s["state"] == state).await
    }

    /// SIGTERM, then the exit status (the harness kills the group if it does not exit).
    pub async fn terminate(mut self) -> Result<ExitStatus> {
        self.service.take().context("already stopped")?.stop().await
    }

    /// The last lines of the manager's log, without the request lines of status polling.
    pub fn log_tail(&self) -> String {
        let text = self.service.as_ref().map(Service::stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("path=/status")).collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- session-manager log (tail) ---\n{}\n---", self.log_tail());
        }
    }
}

/// The newest modification time of the files in `dir`.
pub fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()?.metadata().ok()?.modified().ok()).max()
}

/// The TCP ports `pid` listens on (IPv4 and IPv6): its socket inodes (`/proc/<pid>/fd`) matched
/// with the LISTEN entries of `/proc/net/tcp{,6}`.
pub fn listening_tcp_ports(pid: i32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            if *state == "0A" && inodes.iter().any(|i| i == inode) {
                let port = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
                ports.extend(port);
            }
        }
    }
    ports.sort_unstable();
    ports
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

/// The command line of `pid` as its arguments.
pub fn cmdline_args(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
        .unwrap_or_default()
}
