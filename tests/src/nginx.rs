//! The shipped nginx site (`deploy/nginx/leadmaster.conf`) run for real on loopback ports with a
//! self-signed certificate, in front of a test hub: what the deploy and socket.io tests go through.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::free_port;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository root").to_path_buf()
}

pub fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("nginx is installed (scripts/test installs nginx-light)")
}

/// Replaces `from` by `to` in `text`, failing when `from` is not there (the site file changed).
pub fn replace_exact(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "deploy/nginx/leadmaster.conf no longer contains `{from}`");
    text.replace(from, to)
}

/// A self-signed certificate for `localhost` / 127.0.0.1: (certificate path, key path, PEM).
pub fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
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
    let pem = std::fs::read(&cert).expect("openssl wrote the certificate");
    (cert, key, pem)
}

/// The site file as shipped, moved to loopback test ports, a test certificate and a test web root;
/// wrapped in a minimal nginx.conf whose state lives in `dir`.
pub struct NginxSite {
    pub conf: PathBuf,
    pub https_port: u16,
    pub http_port: u16,
    /// The self-signed certificate nginx serves (trust it to connect).
    pub cert_pem: Vec<u8>,
    /// Its file.
    pub cert_path: PathBuf,
}

pub fn nginx_site(dir: &Path, hub_port: u16) -> NginxSite {
    let (cert, key, cert_pem) = self_signed_certificate(dir);
    let (https_port, http_port) = (free_port(), free_port());
    let web_root = dir.join("www");
    std::fs::create_dir_all(&web_root).expect("the web root is created");
    std::fs::write(web_root.join("index.html"), "<!doctype html><title>spa</title>SPA-INDEX")
        .expect("index.html is written");
    let site = std::fs::read_to_string(repo_root().join("deploy/nginx/leadmaster.conf"))
        .expect("the site file is readable");
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
    std::fs::write(dir.join("site.conf"), site).expect("site.conf is written");
    let user = if nix::unistd::geteuid().is_root() { "user root;" } else { "" };
    let d = dir.display();
    let conf = format!(
        "{user}\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  include /etc/nginx/mime.types;\n  \
         access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf is written");
    NginxSite { conf: dir.join("nginx.conf"), https_port, http_port, cert_pem, cert_path: cert }
}

pub fn nginx_command(site: &NginxSite, dir: &Path) -> Command {
    let mut command = Command::new(nginx_binary());
    command.arg("-c").arg(&site.conf).arg("-p").arg(dir).arg("-e").arg(dir.join("error.log"));
    command
}

/// nginx running in the foreground, in its own process group, for one test. Dropped, it is asked to
/// stop (SIGTERM: the master stops its workers), and its whole group is killed if it lingers, so no
/// worker outlives the test.
pub struct RunningNginx(pub std::process::Child);

impl RunningNginx {
    pub fn start(site: &NginxSite, dir: &Path) -> RunningNginx {
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

pub fn https_client(cert_pem: &[u8]) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem).expect("a PEM certificate")])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTPS client")
}
