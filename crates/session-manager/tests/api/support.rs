//! Test support: the real `session-manager` binary against an in-process simulator, with deadlines.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, SemaphorePermit};
use wa_sim::{SimConfig, SimHandle};

/// Each test runs a Chromium; on 2 cores, a few at a time keeps clocks honest.
static BROWSERS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(3));

pub const PHONE: &str = "5491100000000";

/// One test's world: a simulator, a data directory, and the managers started on it.
pub struct Env {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    _permit: SemaphorePermit<'static>,
}

impl Env {
    pub async fn new(sim: SimConfig) -> Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let permit = BROWSERS.acquire().await.context("semaphore")?;
        let sim = wa_sim::spawn(SimConfig { port: 0, ..sim }).await.context("start wa-sim")?;
        let dir = tempfile::tempdir().context("tempdir")?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { sim, dir, http, _permit: permit })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the binary on port 0 against the simulator; `env` adds or overrides variables.
    pub async fn manager(&self, env: &[(&str, &str)]) -> Result<Manager> {
        Manager::start(&self.data_dir(), &self.sim.url(), self.http.clone(), env).await
    }

    pub async fn sim_get(&self, path: &str) -> Result<Value> {
        Ok(self.http.get(format!("{}{path}", self.sim.url())).send().await?.json().await?)
    }

    pub async fn sim_post(&self, path: &str) -> Result<u16> {
        Ok(self.http.post(format!("{}{path}", self.sim.url())).send().await?.status().as_u16())
    }

    /// Checks that no Chromium of this test is left, then stops the simulator.
    pub async fn finish(self) -> Result<()> {
        let dir = self.dir.path().to_path_buf();
        wait_until("no Chromium left on the test's data dir", Duration::from_secs(10), || {
            let dir = dir.clone();
            async move { Ok(chromium_pids(&dir).is_empty()) }
        })
        .await?;
        self.sim.shutdown().await;
        Ok(())
    }
}

/// A running `session-manager` process.
pub struct Manager {
    pub child: Child,
    pub url: String,
    pub http: reqwest::Client,
    pub log: PathBuf,
}

impl Manager {
    pub async fn start(
        data_dir: &Path,
        sim_url: &str,
        http: reqwest::Client,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let (mut child, log) = spawn(data_dir, sim_url, env)?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .with_context(|| format!("no listening line within 30 s; log:\n{}", read_log(&log)))??
            .with_context(|| format!("the manager exited before listening; log:\n{}", read_log(&log)))?;
        let url = line
            .strip_prefix("session-manager listening on ")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        Ok(Self { child, url, http, log })
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let response = self.http.get(format!("{}{path}", self.url)).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    pub async fn get_bytes(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        let response = self.http.get(format!("{}{path}", self.url)).send().await?;
        Ok((response.status().as_u16(), response.bytes().await?.to_vec()))
    }

    pub async fn post(
        &self,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        let mut request = self.http.post(format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    pub async fn status(&self) -> Result<Value> {
        let (code, body) = self.get("/status").await?;
        if code != 200 {
            bail!("/status answered {code}: {body}");
        }
        Ok(body)
    }

    /// Waits until `/status` satisfies `check`; returns that status.
    pub async fn wait_status(
        &self,
        what: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let status = self.status().await?;
            if check(&status) {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{what}: not reached within {within:?}; last status {status}\nlog:\n{}",
                    read_log(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    pub async fn wait_state(&self, state: &str, within: Duration) -> Result<Value> {
        self.wait_status(&format!("state {state}"), within, |s| s["state"] == state).await
    }

    /// SIGTERM, then waits for the exit status.
    pub async fn terminate(mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().context("pid")? as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM)?;
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .with_context(|| format!("no exit within 20 s of SIGTERM; log:\n{}", read_log(&self.log)))??;
        Ok(status)
    }

    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }
}

fn spawn(data_dir: &Path, sim_url: &str, env: &[(&str, &str)]) -> Result<(Child, PathBuf)> {
    std::fs::create_dir_all(data_dir)?;
    let log = data_dir.with_file_name(format!("manager-{}.log", uuid_like()));
    let stderr = std::fs::File::create(&log)?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_session-manager"));
    command
        .env("SESSION_MANAGER_PORT", "0")
        .env("SESSION_MANAGER_HOST", "127.0.0.1")
        .env("SESSION_MANAGER_DATA_DIR", data_dir)
        .env("WHATSAPP_WEB_URL", sim_url)
        .env("CHROMIUM_PATH", "/usr/bin/chromium")
        .env("RUST_LOG", "info,session_manager=debug,chromiumoxide=off")
        .env_remove("SESSION_MANAGER_TOKEN")
        .env_remove("LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    Ok((command.spawn().context("spawn session-manager")?, log))
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Polls `check` every 30 ms until it holds or `within` passes.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{what}: not true within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Processes whose command line contains `dir` (only this test's own Chromium can match).
pub fn chromium_pids(dir: &Path) -> Vec<i32> {
    let needle = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .is_ok_and(|c| c.contains(&needle) && c.contains("chrom"))
        })
        .collect()
}

/// The Chromium browser process (not a renderer or helper) of `dir`.
pub fn chromium_main_pid(dir: &Path) -> Option<i32> {
    chromium_pids(dir).into_iter().find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| !String::from_utf8_lossy(&c).contains("--type="))
    })
}

/// Decodes a PNG (bytes) with rqrr to its one QR's content.
pub fn decode_qr(png: &[u8]) -> Result<String> {
    let image = image::load_from_memory(png)?.to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    if grids.len() != 1 {
        bail!("expected one QR in the image, found {}", grids.len());
    }
    Ok(grids[0].decode()?.1)
}

/// Decodes a `data:image/png;base64,...` URL.
pub fn decode_data_url(url: &str) -> Result<String> {
    use base64::Engine;
    let b64 = url.strip_prefix("data:image/png;base64,").context("not a PNG data URL")?;
    decode_qr(&base64::engine::general_purpose::STANDARD.decode(b64)?)
}

pub const SHORT: Duration = Duration::from_secs(20);

/// A simulator with test clocks.
pub fn sim(qr_rotate_ms: u64) -> SimConfig {
    SimConfig { qr_rotate_ms, load_delay_ms: 100, ..SimConfig::default() }
}

/// The newest modification time of the files in `dir`.
pub fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()?.metadata().ok()?.modified().ok()).max()
}
