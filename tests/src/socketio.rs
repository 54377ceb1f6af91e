//! A real socket.io client (the npm `socket.io-client` in `tests/socketio-client`, run by node)
//! for a test: what it sends is written to its stdin, every event it receives is kept, in order.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::reaper;

/// How long a client may take to connect (node's start included).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One event as the client received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: String,
    pub data: Value,
}

/// A connected socket.io client, in its own process group (killed with the test if it fails).
pub struct SocketIoClient {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Arc<Mutex<Vec<Received>>>,
    stderr_path: PathBuf,
    _log_dir: tempfile::TempDir,
}

/// `tests/socketio-client`, where `scripts/test` installs the npm client.
pub fn client_dir() -> PathBuf {
    crate::nginx::repo_root().join("tests/socketio-client")
}

impl SocketIoClient {
    /// Connects to `url` (the hub's or nginx's base URL) over `transport` (`websocket` or
    /// `polling`); `env` adds variables (e.g. `NODE_EXTRA_CA_CERTS` to trust a test certificate).
    pub async fn connect(url: &str, transport: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = client_dir();
        if !dir.join("node_modules/socket.io-client").is_dir() {
            bail!(
                "{} has no node_modules/socket.io-client: run `npm ci` there (scripts/test does)",
                dir.display()
            );
        }
        let log_dir = tempfile::tempdir()?;
        let stderr_path = log_dir.path().join("stderr.log");
        let mut child = Command::new("node")
            .arg(dir.join("client.mjs"))
            .args([url, transport])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&stderr_path)?))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("starting `node` (Node.js 18+ must be on PATH)")?;
        if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
            reaper::register_pid(pid);
        }
        let stdout = child.stdout.take().context("stdout is piped")?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let collected = events.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let parsed: Value =
                    serde_json::from_str(&line).unwrap_or_else(|_| json!({"event": "?", "data": line}));
                let event = parsed["event"].as_str().unwrap_or("?").to_owned();
                collected
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Received { event, data: parsed["data"].clone() });
            }
        });
        let stdin = child.stdin.take();
        let client = Self { child, stdin, events, stderr_path, _log_dir: log_dir };
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            loop {
                if let Some(outcome) = client.events().iter().find_map(|r| match r.event.as_str() {
                    "connect" => Some(Ok(())),
                    "connect_error" => Some(Err(r.data.to_string())),
                    _ => None,
                }) {
                    return outcome;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        match connected {
            Ok(Ok(())) => Ok(client),
            Ok(Err(error)) => bail!("the socket.io client could not connect to {url}: {error}"),
            Err(_) => bail!(
                "the socket.io client did not connect to {url} within {CONNECT_TIMEOUT:?}; stderr: {}",
                client.stderr()
            ),
        }
    }

    /// Emits `event` with `data`.
    pub async fn emit(&mut self, event: &str, data: Value) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("the client was closed")?;
        let line = format!("{}\n", json!({"emit": event, "data": data}));
        stdin.write_all(line.as_bytes()).await.context("writing to the socket.io client")?;
        stdin.flush().await?;
        Ok(())
    }

    /// Every event received so far, in order (the client's own `connect`/`disconnect` included).
    pub fn events(&self) -> Vec<Received> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The events named `event` received so far.
    pub fn received(&self, event: &str) -> Vec<Value> {
        self.events().into_iter().filter(|r| r.event == event).map(|r| r.data).collect()
    }

    /// Waits (up to `timeout`) for an event named `event` whose data satisfies `matches`; panics
    /// naming what it waited for and what came instead.
    pub async fn wait_for(&self, event: &str, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(data) = self.received(event).into_iter().find(|data| matches(data)) {
                return data;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no socket.io event `{event}` matching the test's condition within {timeout:?}; received: {:?}; \
                 node's stderr: {}",
                self.events(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// What node wrote on stderr.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Closes the socket (stdin closed: the script disconnects and exits) and waits for node.
    pub async fn close(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .context("the socket.io client did not exit within 10 s of closing its stdin")??;
        if !status.success() {
            bail!("the socket.io client exited with {status}; stderr: {}", self.stderr());
        }
        Ok(())
    }
}

impl Drop for SocketIoClient {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            reaper::kill_process_tree(pid);
            reaper::forget_pid(pid);
        }
    }
}
