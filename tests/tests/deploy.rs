//! The deploy files, exercised for real: the nginx site in a real nginx on loopback ports, the
//! systemd units through `systemd-analyze verify`, and the README's start command.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::nginx::{RunningNginx, https_client, nginx_command, nginx_site, replace_exact, repo_root};
use e2e::{Stack, StackOptions, binary_path, free_port, wait_until};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

#[test]
fn nginx_accepts_the_site_config() {
    let dir = tempfile::tempdir().unwrap();
    let site = nginx_site(dir.path(), free_port());
    let output = nginx_command(&site, dir.path()).arg("-t").output().expect("nginx runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "nginx -t failed: {stderr}");
    assert!(stderr.contains("syntax is ok") && stderr.contains("test is successful"), "{stderr}");
}

#[test]
fn the_site_config_never_routes_to_the_session_manager() {
    let site = std::fs::read_to_string(repo_root().join("deploy/nginx/leadmaster.conf")).unwrap();
    let directives: Vec<&str> =
        site.lines().map(|line| line.split('#').next().unwrap_or_default().trim()).collect();
    let upstreams: Vec<&&str> =
        directives.iter().filter(|line| line.starts_with("server 127.0.0.1:")).collect();
    assert_eq!(upstreams, [&"server 127.0.0.1:3012;"], "the only upstream is the hub");
    assert!(!directives.iter().any(|line| line.contains(":3001")), "no directive names the manager's port");
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread")]
async fn https_through_nginx_reaches_hub_manager_chromium_and_simulator_but_never_the_manager_api() {
    let stack = Stack::start(StackOptions::default()).await.expect("the stack starts");
    let dir = tempfile::tempdir().unwrap();
    let site = nginx_site(dir.path(), stack.hub.port());
    let mut nginx = RunningNginx::start(&site, dir.path());
    let base = format!("https://localhost:{}", site.https_port);
    let client = https_client(&site.cert_pem);
    let error_log = dir.path().join("error.log");
    for attempt in 0.. {
        let error = match client.get(format!("{base}/health")).send().await {
            Ok(_) => break,
            Err(error) => error,
        };
        let exited = nginx.0.try_wait().unwrap();
        assert!(
            exited.is_none() && attempt < 300,
            "nginx is not answering over HTTPS on {base} (exit: {exited:?}): {error:?}; error.log: {}",
            std::fs::read_to_string(&error_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Through nginx, anyone gets liveness only; the checks are for admins (below) and loopback.
    let (status, health) = json_of(client.get(format!("{base}/health")).send().await.unwrap()).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")), "{health}");
    assert!(health.get("checks").is_none(), "no internals for anonymous callers through nginx: {health}");

    let login = json!({"email": e2e::ADMIN_EMAIL, "password": e2e::ADMIN_PASSWORD});
    let (status, body) =
        json_of(client.post(format!("{base}/auth/login")).json(&login).send().await.unwrap()).await;
    assert_eq!(status, 200, "login through nginx: {body}");
    let token = body["token"].as_str().expect("a token").to_owned();
    let (status, health) =
        json_of(client.get(format!("{base}/api/health")).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["checks"]["session_manager"]["ok"], true, "an admin gets the checks: {health}");

    let response =
        client.post(format!("{base}/api/admin/whatsapp/connect")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let qr = wait_until("a QR in the status read through nginx", Duration::from_secs(30), || async {
        let response =
            client.get(format!("{base}/api/admin/whatsapp/status")).bearer_auth(&token).send().await.ok()?;
        let (_, body) = json_of(response).await;
        (body["state"] == "QR_REQUIRED").then(|| body["qr"].clone())
    })
    .await;
    assert!(qr["base64"].as_str().unwrap_or_default().starts_with("data:image/png;base64,"), "{qr}");

    // The event stream is not buffered: its first event arrives while the stream stays open.
    let mut events =
        client.get(format!("{base}/api/admin/whatsapp/events")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), events.chunk())
        .await
        .expect("an event arrives through nginx without buffering")
        .unwrap()
        .unwrap_or_default();
    assert!(String::from_utf8_lossy(&first).contains("QR_REQUIRED"), "{}", String::from_utf8_lossy(&first));
    drop(events);

    // The manager's own API is not reachable through nginx: the legacy prefix is answered by the
    // hub (its JSON error body), and the manager's paths fall to the static root.
    let (status, body) = json_of(
        client.get(format!("{base}/session-manager/status")).bearer_auth(&token).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "NOT_FOUND", "answered by the hub, not the manager: {body}");
    for path in ["/status", "/connect", "/qr", "/send"] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        let text = response.text().await.unwrap();
        assert!(text.contains("SPA-INDEX"), "{path} is served by the static root, not the manager: {text}");
    }
    let response = client.get(format!("{base}/some/client/route")).send().await.unwrap();
    assert!(response.text().await.unwrap().contains("SPA-INDEX"), "SPA routes fall back to index.html");

    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = plain.get(format!("http://127.0.0.1:{}/api/x", site.http_port)).send().await.unwrap();
    assert_eq!(response.status(), 301, "HTTP redirects to HTTPS");
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("https://") && location.ends_with("/api/x"), "{location}");

    stack.stop().await.expect("the stack stops and leaves no Chromium");
}

/// A 64-character manager token for services a test starts on its own.
const TEST_MANAGER_TOKEN: &str = "deploy-test-token-0123456789abcdef0123456789abcdef0123456789abcd";

/// The hub alone (no manager behind it: the answers tested here never reach one).
async fn hub_alone(dir: &Path, extra: &[(&str, &str)]) -> e2e::Service {
    let database_url = format!("sqlite://{}", dir.join("hub.db").display());
    let manager_url = format!("http://127.0.0.1:{}", free_port());
    let mut envs = vec![
        ("CENTRAL_HUB_HOST", "127.0.0.1"),
        ("CENTRAL_HUB_PORT", "0"),
        ("SESSION_MANAGER_URL", manager_url.as_str()),
        ("SESSION_MANAGER_TOKEN", TEST_MANAGER_TOKEN),
        ("DATABASE_URL", database_url.as_str()),
        ("JWT_SECRET", e2e::TEST_JWT_SECRET),
    ];
    envs.extend_from_slice(extra);
    e2e::Service::start("central-hub", &[], &envs).await.expect("the hub starts")
}

/// `openssl s_client` against nginx with one TLS 1.2 cipher: Ok(negotiated line) or Err(output).
fn tls12_handshake(port: u16, cipher: &str) -> Result<String, String> {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost", "-tls1_2"])
        // SECLEVEL=0: the client offers even a weak cipher, so a refusal is the server's.
        .args(["-cipher", &format!("{cipher}@SECLEVEL=0")])
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let negotiated = stdout.lines().find(|line| line.contains("Cipher is ")).map(str::to_owned);
    match negotiated {
        Some(line) if output.status.success() && !line.contains("(NONE)") => Ok(line),
        _ => Err(format!("{stdout}{}", String::from_utf8_lossy(&output.stderr))),
    }
}

async fn wait_for_nginx(client: &reqwest::Client, base: &str, nginx: &mut RunningNginx, dir: &Path) {
    for attempt in 0.. {
        let error = match client.get(format!("{base}/some/spa/route")).send().await {
            Ok(_) => return,
            Err(error) => error,
        };
        let exited = nginx.0.try_wait().unwrap();
        assert!(
            exited.is_none() && attempt < 300,
            "nginx is not answering over HTTPS on {base} (exit: {exited:?}): {error:?}; error.log: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_refuses_weak_tls_sends_each_security_header_once_and_limits_logins() {
    let dir = tempfile::tempdir().unwrap();
    let hub =
        hub_alone(dir.path(), &[("ADMIN_EMAIL", e2e::ADMIN_EMAIL), ("ADMIN_PASSWORD", e2e::ADMIN_PASSWORD)])
            .await;
    let site = nginx_site(dir.path(), hub.port());
    let mut nginx = RunningNginx::start(&site, dir.path());
    let base = format!("https://localhost:{}", site.https_port);
    let client = https_client(&site.cert_pem);
    wait_for_nginx(&client, &base, &mut nginx, dir.path()).await;

    // TLS: forward-secret AEAD only.
    let modern = tls12_handshake(site.https_port, "ECDHE-RSA-AES128-GCM-SHA256");
    assert!(modern.is_ok(), "an ECDHE-GCM TLS 1.2 handshake works: {modern:?}");
    for weak in ["AES128-SHA", "ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256", "AES256-SHA256"] {
        let refused = tls12_handshake(site.https_port, weak);
        assert!(refused.is_err(), "nginx negotiated the weak TLS 1.2 cipher {weak}: {refused:?}");
    }

    // Each security header once: on an answer of the hub (proxied) and on one of nginx (static).
    let once = ["strict-transport-security", "x-content-type-options", "x-frame-options", "referrer-policy"];
    for path in ["/api/admin/whatsapp/status", "/health", "/some/spa/route"] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        for name in once {
            let values: Vec<_> = response.headers().get_all(name).iter().collect();
            assert_eq!(values.len(), 1, "{path}: {name} sent {} times: {values:?}", values.len());
        }
    }

    // Logins: the burst reaches the hub (401, wrong password), then nginx answers 429 itself.
    let mut reached_hub = 0;
    let limited = loop {
        assert!(reached_hub < 40, "nginx never limited {reached_hub} logins from one address");
        let login = json!({"email": format!("nobody{reached_hub}@example.com"), "password": "wrong"});
        let response = client.post(format!("{base}/auth/login")).json(&login).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").cloned();
        let headers = response.headers().clone();
        let (status, body) = json_of(response).await;
        if status == 429 {
            break (retry_after, headers, body);
        }
        assert_eq!(status, 401, "a wrong password reaches the hub: {body}");
        reached_hub += 1;
    };
    let (retry_after, headers, body) = limited;
    assert!(reached_hub >= 11, "the burst of 10 (+1) reaches the hub first: only {reached_hub} did");
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    assert_eq!(body["detail"]["limited_by"], "nginx", "limited by nginx, before the hub: {body}");
    assert!(body["hint"].as_str().is_some_and(|h| !h.is_empty()), "{body}");
    assert!(retry_after.is_some(), "429 says when to retry");
    for name in once {
        assert_eq!(headers.get_all(name).iter().count(), 1, "nginx's own 429 sends {name} once");
    }
    let alias = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "other@example.com", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(alias.status(), 429, "/api/auth/login shares the limit");
    // Another client (its address given by a proxy on this machine, which nginx trusts) is not
    // limited by the first one's attempts, and the right password still logs in from it.
    let (status, body) = json_of(
        client
            .post(format!("{base}/auth/login"))
            .header("X-Forwarded-For", "203.0.113.50")
            .json(&json!({"email": e2e::ADMIN_EMAIL, "password": e2e::ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "another address logs in: {body}");

    drop(nginx);
    hub.stop().await.expect("the hub stops");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_first_admin_command_shows_a_password_that_logs_in() {
    let readme = std::fs::read_to_string(repo_root().join("deploy/README.md")).unwrap();
    let prefix = "journalctl -u central-hub -o cat";
    let command = readme
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(prefix) && line.contains("grep"))
        .expect("deploy/README.md shows the command that finds the first admin's password");
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_alone(dir.path(), &[]).await;
    // The journal of the first start: stdout and stderr in one stream, where a log line may land
    // between the credentials' lines.
    let stdout = hub.stdout();
    let (first, rest) = stdout.split_first().expect("the hub printed something");
    let journal =
        [vec![first.clone()], hub.stderr().lines().map(str::to_owned).collect(), rest.to_vec()].concat();
    let journal_file = dir.path().join("journal.txt");
    std::fs::write(&journal_file, journal.join("\n") + "\n").unwrap();
    let runnable = command.replacen(prefix, &format!("cat {}", journal_file.display()), 1);
    let output = Command::new("bash").arg("-c").arg(&runnable).output().unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    let field =
        |name: &str| shown.lines().find_map(|l| l.trim().strip_prefix(name)).map(|v| v.trim().to_owned());
    let (Some(email), Some(password)) = (field("email:"), field("password:")) else {
        panic!("`{command}` shows no email and password; it printed: {shown}; journal: {journal:#?}")
    };
    let (status, body) = e2e::JsonClient::new(hub.url())
        .unwrap()
        .post("/auth/login", Some(&json!({"email": email, "password": password})))
        .await
        .unwrap();
    assert_eq!(status, 200, "the credentials the documented command shows log in: {body}");
    hub.stop().await.expect("the hub stops");
}

/// deploy/README.md's troubleshooting row for a corrupt session, step by step through the hub:
/// clear-session moves the profile aside and returns to INIT (no QR yet); connect shows a new QR.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_clear_session_flow_backs_up_returns_to_init_and_connect_shows_a_new_qr() {
    let readme = std::fs::read_to_string(repo_root().join("deploy/README.md")).unwrap();
    let row = readme
        .lines()
        .find(|line| line.contains("POST /api/admin/whatsapp/clear-session"))
        .expect("deploy/README.md documents clear-session");
    assert!(row.contains("`INIT`") && row.contains("connect"), "the row says INIT, then connect: {row}");

    let stack = Stack::start(StackOptions::default()).await.expect("the stack starts");
    let token = stack.admin_token().await.unwrap();
    let hub = stack.hub.url().to_owned();
    let status_of = |body: &Value| body["state"].as_str().unwrap_or_default().to_owned();
    let (status, body) =
        e2e::post_with_token(&hub, "/api/admin/whatsapp/connect", &token, None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    wait_until("QR_REQUIRED", Duration::from_secs(30), || async {
        let (_, body) = e2e::get_with_token(&hub, "/api/admin/whatsapp/status", &token).await.ok()?;
        (status_of(&body) == "QR_REQUIRED").then_some(())
    })
    .await;
    let (status, _) = stack.sim_client().unwrap().post("/__sim/scan", None).await.unwrap();
    assert_eq!(status, 200);
    wait_until("READY", Duration::from_secs(30), || async {
        let (_, body) = e2e::get_with_token(&hub, "/api/admin/whatsapp/status", &token).await.ok()?;
        (status_of(&body) == "READY").then_some(())
    })
    .await;

    let (status, body) =
        e2e::post_with_token(&hub, "/api/admin/whatsapp/clear-session", &token, None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "INIT", "{body}");
    let backup = body["backup"].as_str().unwrap_or_else(|| panic!("the answer names the backup: {body}"));
    assert!(Path::new(backup).is_dir(), "the old profile is kept at {backup}");
    let (_, now) = e2e::get_with_token(&hub, "/api/admin/whatsapp/status", &token).await.unwrap();
    assert_eq!(now["state"], "INIT", "clear-session alone shows no QR: {now}");
    assert!(now.get("qr").is_none_or(Value::is_null), "{now}");

    let (status, body) =
        e2e::post_with_token(&hub, "/api/admin/whatsapp/connect", &token, None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let qr = wait_until("a new QR after connect", Duration::from_secs(30), || async {
        let (_, body) = e2e::get_with_token(&hub, "/api/admin/whatsapp/status", &token).await.ok()?;
        (status_of(&body) == "QR_REQUIRED").then(|| body["qr"].clone())
    })
    .await;
    assert!(qr["base64"].as_str().unwrap_or_default().starts_with("data:image/png;base64,"), "{qr}");
    stack.stop().await.expect("the stack stops and leaves no Chromium");
}

#[test]
fn the_systemd_units_verify() {
    let output = Command::new("systemd-analyze").arg("--version").output().unwrap_or_else(|error| {
        panic!(
            "systemd-analyze cannot run ({error}): install Debian's `systemd` package \
             (scripts/test and .ci/run do) so the units are verified"
        )
    });
    assert!(output.status.success(), "systemd-analyze --version: {output:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for name in ["session-manager", "central-hub"] {
        let unit =
            std::fs::read_to_string(repo_root().join(format!("deploy/systemd/{name}.service"))).unwrap();
        // ExecStart must name an existing executable for verify: the one this test run built.
        let unit = replace_exact(
            &unit,
            &format!("ExecStart=/opt/leadmaster/bin/{name}"),
            &format!("ExecStart={}", binary_path(name).display()),
        );
        let path = dir.path().join(format!("{name}.service"));
        std::fs::write(&path, unit).unwrap();
        units.push(path);
    }
    let output = Command::new("systemd-analyze").arg("verify").args(&units).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Older systemd (Debian 12 has 252) does not know the restart back-off keys of 254+, and says so.
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|line| {
            !line.contains("Unknown key 'RestartSteps'") && !line.contains("Unknown key 'RestartMaxDelaySec'")
        })
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert!(output.status.success() && problems.is_empty(), "systemd-analyze verify: {stderr}");
    for unit in &units {
        let text = std::fs::read_to_string(unit).unwrap();
        assert!(text.contains("EnvironmentFile=/etc/leadmaster/leadmaster.env"), "one shared env file");
    }
}

/// Splits a unit's `Environment=` value the way systemd does: whitespace-separated assignments,
/// each optionally in double quotes.
fn unit_assignments(value: &str) -> Vec<(String, String)> {
    let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .map(|w| {
            let (key, value) = w.split_once('=').expect("an Environment= assignment is KEY=VALUE");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// An environment file as systemd reads it: `KEY=VALUE` lines, `#`/`;` comments, optional quotes.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with(';'))
        .map(|line| {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            (key.trim().to_owned(), value.to_owned())
        })
        .collect()
}

/// The values of every `key=` line of a unit file, in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    unit.lines().filter_map(|line| line.trim().strip_prefix(prefix.as_str())).collect()
}

/// The file a path variable names: a directory as is, an SQLite URL's file (None for PostgreSQL).
fn written_path(name: &str, value: &str) -> Option<String> {
    if name == "DATABASE_URL" {
        let rest = value.strip_prefix("sqlite:")?.trim_start_matches("//");
        return Some(rest.split('?').next().unwrap_or(rest).to_owned());
    }
    Some(value.to_owned())
}

#[test]
fn each_units_effective_environment_points_at_absolute_paths_it_may_write() {
    let readme = std::fs::read_to_string(repo_root().join("deploy/README.md")).unwrap();
    assert!(
        readme.contains("deploy/leadmaster.env.example /etc/leadmaster/leadmaster.env"),
        "the install steps copy the example to the units' EnvironmentFile"
    );
    // What each service writes, by the variables naming it.
    let writes: [(&str, &[&str]); 2] =
        [("session-manager", &["SESSION_MANAGER_DATA_DIR"]), ("central-hub", &["DATABASE_URL"])];
    let example = std::fs::read_to_string(repo_root().join("deploy/leadmaster.env.example")).unwrap();
    for (name, _) in environment_file(&example) {
        assert!(
            !name.ends_with("_DIR") || writes.iter().any(|(_, vars)| vars.contains(&name.as_str())),
            "{name} names a directory: add it to this test's table of what each unit writes"
        );
    }
    for (unit_name, written) in writes {
        let unit =
            std::fs::read_to_string(repo_root().join(format!("deploy/systemd/{unit_name}.service"))).unwrap();
        // systemd: Environment= lines in order, then each EnvironmentFile= in order, overriding.
        let mut environment: Vec<(String, String)> = Vec::new();
        let mut set = |pairs: Vec<(String, String)>| {
            for (key, value) in pairs {
                environment.retain(|(k, _)| *k != key);
                environment.push((key, value));
            }
        };
        for value in unit_values(&unit, "Environment") {
            set(unit_assignments(value));
        }
        let files = unit_values(&unit, "EnvironmentFile");
        assert_eq!(files, ["/etc/leadmaster/leadmaster.env"], "{unit_name}: the one shared env file");
        set(environment_file(&example));
        let value_of = |name: &str| environment.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());

        let mut writable: Vec<PathBuf> = unit_values(&unit, "ReadWritePaths")
            .iter()
            .flat_map(|v| v.split_whitespace())
            .map(|p| PathBuf::from(p.trim_start_matches('-')))
            .collect();
        writable.extend(
            unit_values(&unit, "StateDirectory")
                .iter()
                .flat_map(|v| v.split_whitespace())
                .map(|d| Path::new("/var/lib").join(d)),
        );
        assert!(!writable.is_empty(), "{unit_name} declares where it may write");
        for name in written {
            let value = value_of(name).unwrap_or_else(|| panic!("{unit_name}: {name} is set"));
            let Some(path) = written_path(name, value) else { continue };
            let path = Path::new(&path);
            assert!(path.is_absolute(), "{unit_name}: effective {name}={value} is not absolute");
            assert!(
                writable.iter().any(|dir| path.starts_with(dir)),
                "{unit_name}: effective {name}={value} is outside its writable paths {writable:?}"
            );
        }
        // Every other path the unit's environment names is absolute too.
        for (name, value) in &environment {
            // CHROMIUM_PATH=auto is a keyword (the manager picks the installed browser), not a path.
            let keyword = name == "CHROMIUM_PATH" && value == "auto";
            if !keyword && (name.ends_with("_DIR") || name.ends_with("_PATH") || name.ends_with("_FILE")) {
                assert!(Path::new(value).is_absolute(), "{unit_name}: effective {name}={value} is relative");
            }
        }
    }
}

#[test]
fn the_documented_secret_commands_fill_both_secrets_of_the_env_file() {
    let readme = std::fs::read_to_string(repo_root().join("deploy/README.md")).unwrap();
    let commands: Vec<&str> = readme
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("sed -i") && line.ends_with("/etc/leadmaster/leadmaster.env"))
        .collect();
    assert_eq!(commands.len(), 2, "deploy/README.md shows how to generate both secrets: {commands:?}");
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("leadmaster.env");
    let example = std::fs::read_to_string(repo_root().join("deploy/leadmaster.env.example")).unwrap();
    std::fs::write(&env_file, &example).unwrap();
    for command in &commands {
        let command = command.replace("/etc/leadmaster/leadmaster.env", &env_file.display().to_string());
        let output = Command::new("bash").arg("-c").arg(&command).output().unwrap();
        assert!(output.status.success(), "`{command}`: {}", String::from_utf8_lossy(&output.stderr));
    }
    let filled = environment_file(&std::fs::read_to_string(&env_file).unwrap());
    let value =
        |name: &str| filled.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    assert!(value("JWT_SECRET").len() >= 32, "JWT_SECRET is at least 32 bytes: {:?}", value("JWT_SECRET"));
    let token = value("SESSION_MANAGER_TOKEN");
    assert!(
        token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "the manager token: {token:?}"
    );
    let others = |pairs: &[(String, String)]| -> Vec<(String, String)> {
        pairs.iter().filter(|(k, _)| k != "JWT_SECRET" && k != "SESSION_MANAGER_TOKEN").cloned().collect()
    };
    assert_eq!(others(&filled), others(&environment_file(&example)), "nothing else in the file changed");
}

/// Kills a whole process group when a test fails half-way, so no service outlives it.
struct KillGroupOnDrop(Pid);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_start_command_brings_up_the_demo_and_ctrl_c_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (manager_port, hub_port, sim_port) = (free_port(), free_port(), free_port());
    let data = dir.path().join("data");
    // The shipped example, on free ports: its deployed /var/lib/leadmaster paths, empty JWT_SECRET and
    // SESSION_MANAGER_TOKEN are scripts/run's to replace with local ones.
    let example = std::fs::read_to_string(repo_root().join("deploy/leadmaster.env.example")).unwrap();
    let env =
        replace_exact(&example, "SESSION_MANAGER_PORT=3001", &format!("SESSION_MANAGER_PORT={manager_port}"));
    let env = replace_exact(&env, "CENTRAL_HUB_PORT=3012", &format!("CENTRAL_HUB_PORT={hub_port}"));
    let env = replace_exact(
        &env,
        "SESSION_MANAGER_URL=http://127.0.0.1:3001",
        &format!("SESSION_MANAGER_URL=http://127.0.0.1:{manager_port}"),
    );
    let env = replace_exact(&env, "AUTO_CONNECT=saved", "AUTO_CONNECT=never");
    let env_file = dir.path().join("leadmaster.env");
    std::fs::write(&env_file, format!("{env}\nWA_SIM_PORT={sim_port}\n")).unwrap();
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(repo_root().join("scripts/run"))
        .arg("--demo")
        .current_dir(repo_root())
        .env("LEADMASTER_ENV", &env_file)
        .env("LEADMASTER_DATA_DIR", &data)
        .env_remove("JWT_SECRET")
        .env_remove("SESSION_MANAGER_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    // As from a person's shell: without the CARGO_* variables cargo sets for this test process (a
    // nested `cargo build` would see e.g. CARGO_MANIFEST_DIR change, re-run ring's build script and
    // rebuild the services). The user's own CARGO_HOME and CARGO_TARGET_DIR stay.
    let set_by_cargo =
        |name: &str| name.starts_with("CARGO_") && !matches!(name, "CARGO_HOME" | "CARGO_TARGET_DIR");
    for (name, _) in std::env::vars().filter(|(name, _)| set_by_cargo(name)) {
        command.env_remove(name);
    }
    // Its own process group, as a terminal would run it, so Ctrl-C can be sent to the whole group.
    command.as_std_mut().process_group(0);
    let mut run = command.spawn().expect("scripts/run starts");
    let group = Pid::from_raw(i32::try_from(run.id().expect("a pid")).unwrap());
    let _cleanup = KillGroupOnDrop(group);
    let stdout = run.stdout.take().unwrap();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = lines_tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(line) = lines_rx.recv().await {
            let done = line.contains("Ctrl-C stops everything");
            printed.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "scripts/run --demo printed: {printed:#?}");
    let field = |name: &str| {
        printed.iter().find_map(|line| line.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let email = field("email:").unwrap_or_else(|| panic!("the first admin's email is printed: {printed:#?}"));
    let password =
        field("password:").unwrap_or_else(|| panic!("the first admin's password is printed: {printed:#?}"));
    assert!(
        printed.iter().any(|line| line.contains(&format!("http://127.0.0.1:{hub_port}/"))),
        "{printed:#?}"
    );

    // Local state in the data dir, not the deployed /var/lib/leadmaster; secrets generated once, 0600.
    use std::os::unix::fs::PermissionsExt;
    assert!(data.join("session-manager").is_dir(), "the manager's data is in {}", data.display());
    assert!(data.join("central-hub.db").is_file(), "the SQLite database is in {}", data.display());
    for secret in ["jwt-secret", "session-manager-token"] {
        let mode = std::fs::metadata(data.join(secret)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{secret} is readable by its owner only");
    }
    let token = std::fs::read_to_string(data.join("session-manager-token")).unwrap();
    assert!(
        token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "a generated token: {token:?}"
    );
    // The manager requires it (and the hub, which connects below, has it).
    let manager = e2e::JsonClient::new(format!("http://127.0.0.1:{manager_port}")).unwrap();
    let (status, body) = manager.post("/connect", None).await.unwrap();
    assert_eq!(status, 401, "the manager refuses a caller without the generated token: {body}");

    // The whole flow, without a phone: login, connect, QR, scan in the simulator, READY.
    let hub = format!("http://127.0.0.1:{hub_port}");
    let (status, body) = e2e::JsonClient::new(&hub)
        .unwrap()
        .post("/auth/login", Some(&json!({"email": email, "password": password})))
        .await
        .unwrap();
    assert_eq!(status, 200, "the printed credentials log in: {body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (status, _) = e2e::post_with_token(&hub, "/api/admin/whatsapp/connect", &token, None).await.unwrap();
    assert_eq!(status, 200);
    let sim = e2e::JsonClient::new(format!("http://127.0.0.1:{sim_port}")).unwrap();
    wait_until("the demo's simulator to accept a scan", Duration::from_secs(30), || async {
        let (status, _) = sim.post("/__sim/scan", None).await.ok()?;
        (status == 200).then_some(())
    })
    .await;
    wait_until("READY through the demo's hub", Duration::from_secs(30), || async {
        let (_, body) = e2e::get_with_token(&hub, "/api/admin/whatsapp/status", &token).await.ok()?;
        (body["state"] == "READY").then_some(())
    })
    .await;

    // Ctrl-C: SIGINT to the whole foreground group.
    killpg(group, Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(40), run.wait())
        .await
        .expect("scripts/run exits after Ctrl-C")
        .unwrap();
    assert!(status.code().is_some(), "scripts/run exited by itself, not killed: {status}");
    e2e::assert_no_chromium_using(&data, Duration::from_secs(10)).await;
    for port in [manager_port, hub_port, sim_port] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} is closed after Ctrl-C"
        );
    }
}
