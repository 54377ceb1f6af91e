//! End-to-end test harness: a real Chromium driven over CDP, waiting with deadlines, process checks
//! and a JSON client for the services' HTTP APIs.
//!
//! - [`TestBrowser`] launches Debian's Chromium through chromiumoxide on a profile directory with the
//!   project's flag list and a desktop user agent, and shuts it down (close, wait, kill as fallback).
//! - [`chromium_pids_using`] finds Chromium processes whose command line names a directory, so a test
//!   can assert it left none behind (it never looks for other tests' profiles).
//! - [`wait_until`] polls a condition until a deadline and panics naming what it waited for.
//! - [`JsonClient`] calls a JSON HTTP API and gives back `(status, body)`.
//! - [`Service`] starts one of the workspace's binaries and reads the URL it listens on.
//! - [`Stack`] runs the whole gateway (simulator, manager, hub) for one test.
//! - [`nginx`] runs the shipped nginx site on loopback ports with a self-signed certificate.
//! - [`socketio::SocketIoClient`] is the npm socket.io client, run by node, for the hub's socket.io.
//! - [`WebhookReceiver`] is a real HTTP server recording the hub's webhook requests and checking
//!   their signature.
//! - [`decode_qr_png`] and [`decode_qr_data_url`] read a QR image back to the string it encodes.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod nginx;
mod qr;
mod reaper;
mod receiver;
mod service;
pub mod socketio;
mod sse;
mod stack;

pub use qr::{decode_qr_data_url, decode_qr_png};
pub use reaper::{ChromiumReaper, descendants, kill_process_tree};
pub use receiver::{Received, WebhookReceiver};
pub use service::{Service, TEST_MANAGER_TOKEN, binary_path};
pub use sse::{SseEvent, SseStream};
pub use stack::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Stack, StackOptions, TEST_JWT_SECRET, campaign_zero_pace_env, free_port,
    get_with_token, post_with_token,
};

use anyhow::{Context, bail};
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::page::Page;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::task::JoinHandle;

/// A normal desktop Chrome user agent (the simulator, like WhatsApp, refuses `HeadlessChrome`).
pub const DESKTOP_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

/// Deadline for one CDP call (launch, new page, evaluate, close).
pub const CDP_TIMEOUT: Duration = Duration::from_secs(20);

/// How often [`wait_until`] re-checks its condition.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// The Chromium binary: `CHROMIUM_PATH`, else Debian's `/usr/bin/chromium`.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM_PATH").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// One headless Chromium on one profile directory, with its CDP handler polled in a task.
pub struct TestBrowser {
    browser: Browser,
    handler: JoinHandle<()>,
    profile: PathBuf,
    /// Kills this Chromium (every process on the profile) if the test ends without `close`.
    _reaper: ChromiumReaper,
}

impl TestBrowser {
    /// Launches Chromium on `profile` with the desktop user agent.
    pub async fn launch(profile: &Path) -> anyhow::Result<Self> {
        Self::launch_with_user_agent(profile, Some(DESKTOP_UA)).await
    }

    /// Launches Chromium on `profile`; `None` keeps Chromium's own (`HeadlessChrome`) user agent.
    pub async fn launch_with_user_agent(profile: &Path, user_agent: Option<&str>) -> anyhow::Result<Self> {
        // chromiumoxide adds the leading `--` itself.
        let mut args: Vec<String> = [
            "disable-background-networking",
            "disable-component-update",
            "disable-sync",
            "no-first-run",
            "disable-gpu",
            "disable-dev-shm-usage",
            "lang=en-US",
        ]
        .map(String::from)
        .to_vec();
        if let Some(ua) = user_agent {
            args.push(format!("user-agent={ua}"));
        }
        let mut builder = BrowserConfig::builder()
            .chrome_executable(chromium_path())
            .user_data_dir(profile)
            .new_headless_mode()
            .disable_default_args()
            .args(args)
            .viewport(None)
            .window_size(1280, 900)
            .launch_timeout(CDP_TIMEOUT)
            .request_timeout(CDP_TIMEOUT);
        if nix::unistd::geteuid().is_root() {
            builder = builder.no_sandbox();
        }
        let config = builder.build().map_err(|e| anyhow::anyhow!("invalid browser config: {e}"))?;
        let (browser, mut handler) = tokio::time::timeout(CDP_TIMEOUT, Browser::launch(config))
            .await
            .context("Chromium did not start within the CDP timeout")?
            .with_context(|| format!("launching {} on {}", chromium_path().display(), profile.display()))?;
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if let Err(e) = event {
                    eprintln!("cdp handler error (continuing): {e}");
                }
            }
        });
        Ok(TestBrowser {
            browser,
            handler,
            profile: profile.to_owned(),
            _reaper: ChromiumReaper::new(profile),
        })
    }

    /// Opens a new tab on `url` and waits for it to load.
    pub async fn open(&self, url: &str) -> anyhow::Result<Page> {
        let page = tokio::time::timeout(CDP_TIMEOUT, self.browser.new_page(url))
            .await
            .with_context(|| format!("opening {url} timed out"))?
            .with_context(|| format!("opening {url}"))?;
        Ok(page)
    }

    /// Opens a blank tab, installs `script` to run at the start of every document it loads
    /// (`Page.addScriptToEvaluateOnNewDocument`), then navigates to `url`.
    pub async fn open_with_init_script(&self, url: &str, script: &str) -> anyhow::Result<Page> {
        let page = self.open("about:blank").await?;
        tokio::time::timeout(CDP_TIMEOUT, page.add_init_script(script))
            .await
            .context("installing the init script timed out")?
            .context("installing the init script")?;
        tokio::time::timeout(CDP_TIMEOUT, page.goto(url))
            .await
            .with_context(|| format!("navigating to {url} timed out"))?
            .with_context(|| format!("navigating to {url}"))?;
        Ok(page)
    }

    pub fn profile(&self) -> &Path {
        &self.profile
    }

    /// Closes the browser (CDP `Browser.close`, which lets it flush the profile), waits for the
    /// process to exit, kills it if it did not, and stops the handler task.
    pub async fn close(mut self) {
        let closed = matches!(tokio::time::timeout(CDP_TIMEOUT, self.browser.close()).await, Ok(Ok(_)));
        let exited =
            closed && matches!(tokio::time::timeout(CDP_TIMEOUT, self.browser.wait()).await, Ok(Ok(_)));
        if !exited {
            eprintln!("Chromium on {} did not close cleanly; killing it", self.profile.display());
            let _ = self.browser.kill().await;
            let _ = tokio::time::timeout(CDP_TIMEOUT, self.browser.wait()).await;
        }
        self.handler.abort();
    }
}

/// Evaluates a JavaScript expression in `page` (promises awaited) and returns its JSON value
/// (`null` for `undefined`).
pub async fn eval(page: &Page, expression: &str) -> anyhow::Result<Value> {
    let result = tokio::time::timeout(CDP_TIMEOUT, page.evaluate_expression(expression))
        .await
        .with_context(|| format!("evaluating `{expression}` timed out"))?
        .with_context(|| format!("evaluating `{expression}`"))?;
    Ok(result.value().cloned().unwrap_or(Value::Null))
}

/// Pids of the Chromium processes whose command line contains `dir` (scans `/proc/*/cmdline`), and
/// of all their descendants: the headless shell's children do not name the profile.
pub fn chromium_pids_using(dir: &Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let roots: Vec<i32> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmdline.contains("chrom") && cmdline.contains(&needle)
        })
        .collect();
    descendants_of(&roots)
}

/// `roots` and every live (not zombie) process whose parent chain in `/proc/<pid>/stat` leads to
/// one of them, sorted.
pub fn descendants_of(roots: &[i32]) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    // (pid, ppid) of live processes; fields after the last ')' of the command name: state, ppid.
    let live: Vec<(i32, i32)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse().ok()?;
            (state != "Z" && state != "X").then_some((pid, ppid))
        })
        .collect();
    let mut found: Vec<i32> = roots.iter().copied().filter(|r| live.iter().any(|(p, _)| p == r)).collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (pid, ppid) in &live {
            if *ppid == parent && !found.contains(pid) {
                found.push(*pid);
            }
        }
        i += 1;
    }
    found.sort_unstable();
    found
}

/// `Pss` of `pid` from `/proc/<pid>/smaps_rollup`, in bytes.
pub fn pss_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kib: u64 = text.lines().find(|l| l.starts_with("Pss:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Waits (polling) until no Chromium process uses `dir`; panics with their pids otherwise.
pub async fn assert_no_chromium_using(dir: &Path, within: Duration) {
    let what = format!("no Chromium process using {}", dir.display());
    wait_until(&what, within, || async { chromium_pids_using(dir).is_empty().then_some(()) }).await;
}

/// Polls `check` every 25 ms until it returns `Some`, and returns that value. Panics after `within`,
/// naming `what` was awaited.
pub async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// A JSON HTTP client bound to a base URL, for the services' APIs and the simulator's control API.
#[derive(Clone)]
pub struct JsonClient {
    base: String,
    http: reqwest::Client,
    bearer: Option<String>,
}

impl JsonClient {
    /// A client for `base` (e.g. `http://127.0.0.1:3100`), each request bounded by 10 s.
    pub fn new(base: impl Into<String>) -> anyhow::Result<Self> {
        // reqwest is built without a default TLS crypto provider; plain HTTP still needs one set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        Ok(JsonClient { base: base.into(), http, bearer: None })
    }

    /// The same client sending `Authorization: Bearer <token>` (e.g. [`TEST_MANAGER_TOKEN`] for
    /// the session-manager).
    pub fn with_bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    /// `GET path` -> `(status, JSON body)`.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.send(self.http.get(self.url(path))).await
    }

    /// `POST path` with an optional JSON body.
    pub async fn post(&self, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.post(self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, mut request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if text.is_empty() {
            return Ok((status, Value::Null));
        }
        match serde_json::from_str(&text) {
            Ok(json) => Ok((status, json)),
            Err(_) => bail!("answer {status} is not JSON: {text}"),
        }
    }
}
