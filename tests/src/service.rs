//! The workspace's own binaries started as real processes for a test.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::reaper;

/// The SESSION_MANAGER_TOKEN the manager and the hub of a test share (tests only).
pub const TEST_MANAGER_TOKEN: &str = "test-manager-token-0123456789abcdef0123";

/// How long a binary may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a binary may take to exit after SIGTERM before its process group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The path of a workspace binary built next to this test (`target/<profile>/<name>`).
///
/// The test command builds them first (`cargo build --workspace --bins`, see `scripts/test`).
pub fn binary_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    // target/<profile>/deps/<test binary>
    let profile_dir =
        exe.parent().and_then(Path::parent).expect("test binaries live in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// A running service binary in its own process group, with an explicit environment. Dropped without
/// [`Service::stop`], it is killed with every process it started (Chromium's own group included), so
/// a failing test leaves nothing running; a terminating signal does the same (see `reaper`).
pub struct Service {
    name: String,
    child: Option<Child>,
    url: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr_path: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Service {
    /// Starts `name` with `args` and `envs`, and waits for its `<name> listening on <url>` line.
    /// `session-manager` and `central-hub` get `SESSION_MANAGER_TOKEN=`[`TEST_MANAGER_TOKEN`]
    /// (both require it) unless `envs` sets it.
    pub async fn start(name: &str, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Service> {
        let log_dir = tempfile::tempdir()?;
        let stderr_path = log_dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut command = Command::new(binary_path(name));
        // An explicit environment: the caller's shell (JWT_SECRET, DATABASE_URL, CHROMIUM_PATH...)
        // never reaches the service; only what it needs to run and what the test passes.
        command.env_clear();
        // LEADMASTER_TEST_RUN marks the processes of one `scripts/test` run (it stops what is left).
        for inherited in ["PATH", "HOME", "LEADMASTER_TEST_RUN"] {
            if let Some(value) = std::env::var_os(inherited) {
                command.env(inherited, value);
            }
        }
        command
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info,chromiumoxide=error".into()))
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .kill_on_drop(true);
        if matches!(name, "session-manager" | "central-hub")
            && !envs.iter().any(|(key, _)| *key == "SESSION_MANAGER_TOKEN")
        {
            command.env("SESSION_MANAGER_TOKEN", TEST_MANAGER_TOKEN);
        }
        let mut child = command.spawn().with_context(|| format!("starting {name}"))?;
        if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
            reaper::register_pid(pid);
        }
        let stdout = child.stdout.take().context("stdout is piped")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (url_tx, url_rx) = tokio::sync::oneshot::channel();
        let prefix = format!("{name} listening on ");
        let collected = lines.clone();
        let wanted = prefix.clone();
        tokio::spawn(async move {
            let mut url_tx = Some(url_tx);
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Some(url) = line.strip_prefix(&wanted)
                    && let Some(tx) = url_tx.take()
                {
                    let _ = tx.send(url.trim().to_owned());
                }
                collected.lock().expect("stdout lines lock").push(line);
            }
        });
        let mut service = Service {
            name: name.to_owned(),
            child: Some(child),
            url: String::new(),
            stdout: lines,
            stderr_path,
            _log_dir: log_dir,
        };
        match tokio::time::timeout(START_TIMEOUT, url_rx).await {
            Ok(Ok(url)) => {
                service.url = url;
                Ok(service)
            }
            _ => bail!(
                "{name} did not print `{prefix}<url>` within {START_TIMEOUT:?}; stdout: {:?}; stderr: {}",
                service.stdout(),
                service.stderr()
            ),
        }
    }

    /// The base URL the service printed, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port the service listens on.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).unwrap_or(0)
    }

    /// Everything printed on stdout so far, one entry per line.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout lines lock").clone()
    }

    /// Everything logged on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(Child::id).and_then(|pid| i32::try_from(pid).ok())
    }

    /// SIGTERM, then waits for a graceful exit; kills it and its descendants if it takes longer.
    pub async fn stop(mut self) -> anyhow::Result<ExitStatus> {
        self.terminate().await
    }

    /// [`Service::stop`] in place, for a holder that starts another process in its stead.
    pub async fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("the service was already stopped")?;
        let pid = child.id().and_then(|pid| i32::try_from(pid).ok());
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let outcome = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await;
        if let Some(pid) = pid {
            if outcome.is_err() {
                reaper::kill_process_tree(pid);
            }
            reaper::forget_pid(pid);
        }
        match outcome {
            Ok(status) => Ok(status?),
            Err(_) => {
                let _ = child.wait().await;
                bail!(
                    "{} did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr: {}",
                    self.name,
                    self.stderr()
                )
            }
        }
    }
}

impl Drop for Service {
    /// Not stopped (a failing test, a panic): the service, its descendants and the process groups
    /// they lead (Chromium's among them) are killed.
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id).and_then(|pid| i32::try_from(pid).ok()) {
            reaper::kill_process_tree(pid);
            reaper::forget_pid(pid);
        }
    }
}
