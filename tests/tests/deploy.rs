//! The deploy files, exercised for real: the nginx site in a real nginx on loopback ports, the
//! systemd units through `systemd-analyze verify`, and the README's start command.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::{Stack, StackOptions, binary_path, free_port, wait_until};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository root").to_path_buf()
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("nginx is installed (scripts/test installs nginx-light)")
}

/// Replaces `from` by `to` in `text`, failing when `from` is not there (the site file changed).
fn replace_exact(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "deploy/nginx/leadmaster.conf no longer contains `{from}`");
    text.replace(from, to)
}

/// A self-signed certificate for `localhost` / 127.0.0.1: (certificate path, key path, PEM).
fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // An end-entity certificate (rustls refuses a CA certificate as a server's).
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(output.status.success(), "openssl: {}", String::from_utf8_lossy(&output.stderr));
    let pem = std::fs::read(&cert).unwrap();
    (cert, key, pem)
}

/// The site file as shipped, moved to loopback test ports, a test certificate and a test web root;
/// wrapped in a minimal nginx.conf whose state lives in `dir`.
struct NginxSite {
    conf: PathBuf,
    https_port: u16,
    http_port: u16,
    cert_pem: Vec<u8>,
}

fn nginx_site(dir: &Path, hub_port: u16) -> NginxSite {
    let (cert, key, cert_pem) = self_signed_certificate(dir);
    let (https_port, http_port) = (free_port(), free_port());
    let web_root = dir.join("www");
    std::fs::create_dir_all(&web_root).unwrap();
    std::fs::write(web_root.join("index.html"), "<!doctype html><title>spa</title>SPA-INDEX").unwrap();
    let site = std::fs::read_to_string(repo_root().join("deploy/nginx/leadmaster.conf")).unwrap();
    let site =
        replace_exact(&site, "listen 443 ssl http2;", &format!("listen 127.0.0.1:{https_port} ssl http2;"));
    let site = replace_exact(&site, "listen [::]:443 ssl http2;", "");
    let site = replace_exact(&site, "listen 80;", &format!("listen 127.0.0.1:{http_port};"));
    let site = replace_exact(&site, "listen [::]:80;", "");
    let site = replace_exact(&site, "server 127.0.0.1:3012;", &format!("server 127.0.0.1:{hub_port};"));
    let site = replace_exact(
        &site,
        "/etc/letsencrypt/live/leadmaster.example.com/fullchain.pem",
        &cert.display().to_string(),
    );
    let site = replace_exact(
        &site,
        "/etc/letsencrypt/live/leadmaster.example.com/privkey.pem",
        &key.display().to_string(),
    );
    let site = replace_exact(&site, "root /var/www/leadmaster;", &format!("root {};", web_root.display()));
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let user = if nix::unistd::geteuid().is_root() { "user root;" } else { "" };
    let d = dir.display();
    let conf = format!(
        "{user}\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  include /etc/nginx/mime.types;\n  \
         access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    NginxSite { conf: dir.join("nginx.conf"), https_port, http_port, cert_pem }
}

fn nginx_command(site: &NginxSite, dir: &Path) -> Command {
    let mut command = Command::new(nginx_binary());
    command.arg("-c").arg(&site.conf).arg("-p").arg(dir).arg("-e").arg(dir.join("error.log"));
    command
}

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

/// nginx running in the foreground, in its own process group, for one test. Dropped, it is asked to
/// stop (SIGTERM: the master stops its workers), and its whole group is killed if it lingers, so no
/// worker outlives the test.
struct RunningNginx(std::process::Child);

impl RunningNginx {
    fn start(site: &NginxSite, dir: &Path) -> RunningNginx {
        let child = nginx_command(site, dir)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("nginx starts");
        RunningNginx(child)
    }
}

impl Drop for RunningNginx {
    fn drop(&mut self) {
        let group = Pid::from_raw(i32::try_from(self.0.id()).expect("pids fit in i32"));
        let _ = nix::sys::signal::kill(group, Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

fn https_client(cert_pem: &[u8]) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem).expect("a PEM certificate")])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTPS client")
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

    let (status, health) = json_of(client.get(format!("{base}/health")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["checks"]["session_manager"]["ok"], true, "{health}");

    let login = json!({"email": e2e::ADMIN_EMAIL, "password": e2e::ADMIN_PASSWORD});
    let (status, body) =
        json_of(client.post(format!("{base}/auth/login")).json(&login).send().await.unwrap()).await;
    assert_eq!(status, 200, "login through nginx: {body}");
    let token = body["token"].as_str().expect("a token").to_owned();

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

#[test]
fn the_systemd_units_verify() {
    let Ok(output) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed here: the units are not verified on this machine");
        return;
    };
    assert!(output.status.success());
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
    let env_file = dir.path().join("leadmaster.env");
    std::fs::write(
        &env_file,
        format!(
            "SESSION_MANAGER_HOST=127.0.0.1\nSESSION_MANAGER_PORT={manager_port}\n\
             SESSION_MANAGER_DATA_DIR={data}/session-manager\nAUTO_CONNECT=never\n\
             CENTRAL_HUB_HOST=127.0.0.1\nCENTRAL_HUB_PORT={hub_port}\n\
             SESSION_MANAGER_URL=http://127.0.0.1:{manager_port}\nDATABASE_URL=sqlite://{data}/central-hub.db\n\
             WA_SIM_PORT={sim_port}\nSESSION_MANAGER_TOKEN={token}\n",
            token = e2e::TEST_MANAGER_TOKEN,
            data = data.display()
        ),
    )
    .unwrap();
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(repo_root().join("scripts/run"))
        .arg("--demo")
        .current_dir(repo_root())
        .env("LEADMASTER_ENV", &env_file)
        .env("LEADMASTER_DATA_DIR", &data)
        .env_remove("JWT_SECRET")
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
