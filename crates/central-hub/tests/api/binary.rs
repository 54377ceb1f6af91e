//! The real `central-hub` binary: refusal without a JWT secret, the first admin's credentials
//! printed once, the listening line, SIGTERM, and the `users` subcommands.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{JWT_SECRET, dead_url, http_client, status_and_json};

const BIN: &str = env!("CARGO_BIN_EXE_central-hub");

fn hub_command(database_url: &str, manager_url: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CENTRAL_HUB_PORT", "0")
        .env("DATABASE_URL", database_url)
        .env("SESSION_MANAGER_URL", manager_url)
        .env("SESSION_MANAGER_TOKEN", crate::manager_double::MANAGER_TOKEN)
        .env("RUST_LOG", "warn");
    command
}

/// A running hub whose stdout lines arrive on a channel; killed on drop.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(mut command: Command) -> Self {
        let mut child =
            command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn central-hub");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, seen: Vec::new() }
    }

    /// Reads stdout until the listening line; returns the URL.
    fn wait_listening(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no `central-hub listening on` line within 20 s; stdout so far: {:?}", self.seen)
            });
            self.seen.push(line.clone());
            if let Some(url) = line.strip_prefix("central-hub listening on ") {
                return url.to_owned();
            }
        }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "central-hub did not stop within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_binary_refuses_to_start_without_a_long_enough_jwt_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/hub.db", dir.path().display());
    for (secret, expected) in
        [(None, "JWT_SECRET is not set"), (Some("too-short"), "JWT_SECRET is 9 bytes long")]
    {
        let mut command = hub_command(&db, "http://127.0.0.1:9");
        if let Some(secret) = secret {
            command.env("JWT_SECRET", secret);
        }
        let output = command.output().expect("run central-hub");
        assert!(!output.status.success(), "{secret:?} must be refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected) && stderr.contains("32 bytes"), "{stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
    }
}

#[test]
fn the_binary_refuses_to_start_without_a_long_enough_session_manager_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/hub.db", dir.path().display());
    for (token, expected) in [(None, "SESSION_MANAGER_TOKEN is not set"), (Some("a"), "is 1 characters long")]
    {
        let mut command = hub_command(&db, "http://127.0.0.1:9");
        command.env("JWT_SECRET", JWT_SECRET).env_remove("SESSION_MANAGER_TOKEN");
        if let Some(token) = token {
            command.env("SESSION_MANAGER_TOKEN", token);
        }
        let output = command.output().expect("run central-hub");
        assert!(!output.status.success(), "{token:?} must be refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected) && stderr.contains("openssl rand -hex 32"), "{stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
    }
}

#[tokio::test]
async fn the_binary_prints_generated_admin_credentials_once_and_they_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/hub.db", dir.path().display());
    let manager = dead_url().await;
    let start = || {
        let mut command = hub_command(&db, &manager);
        command.env("JWT_SECRET", JWT_SECRET);
        Running::start(command)
    };

    let mut first = start();
    let url = first.wait_listening();
    let password = first
        .seen
        .iter()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no generated password printed: {:?}", first.seen))
        .to_owned();
    assert!(first.seen.iter().any(|l| l.contains("admin@localhost")), "{:?}", first.seen);
    assert!(password.len() >= 20, "a strong password: {password}");

    let http = http_client();
    let login = http
        .post(format!("{url}/auth/login"))
        .json(&json!({"email": "admin@localhost", "password": password}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(login).await;
    assert_eq!(status, 200, "{body}");
    let (status, health) = status_and_json(http.get(format!("{url}/health")).send().await.unwrap()).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("degraded")), "{health}");
    assert_eq!(health["checks"]["session_manager"]["url"], manager);
    assert!(first.terminate().success(), "SIGTERM stops the hub cleanly");

    let mut second = start();
    second.wait_listening();
    assert!(
        !second.seen.iter().any(|l| l.contains("password")),
        "credentials are printed only when the admin is created: {:?}",
        second.seen
    );
    drop(second);

    let list = hub_command(&db, &manager).args(["users", "list"]).output().unwrap();
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success() && listing.contains("admin@localhost"), "{listing}");
    let add = hub_command(&db, &manager)
        .args(["users", "add", "--email", "c9@test.io", "--role", "client", "--cliente-id", "9"])
        .env("NEW_USER_PASSWORD", "client password 9")
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    assert!(
        !String::from_utf8_lossy(&add.stdout).contains("client password 9"),
        "a given password is not echoed"
    );
}
