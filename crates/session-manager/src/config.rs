//! The manager's configuration: command-line flags, each also read from the environment variable
//! named in ARCHITECTURE.md, with defaults that work on a laptop.

use std::net::IpAddr;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// When the manager opens the browser on its own at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutoConnect {
    /// Only when the profile holds a saved login (a restart comes back to READY with no QR).
    Saved,
    /// Always (shows a QR when there is no saved login).
    Always,
    /// Never: wait for `POST /connect`.
    Never,
}

/// Debian's Chromium: the fallback of `CHROMIUM_PATH=auto`.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// What `CHROMIUM_PATH=auto` tries, in order: Debian's headless shell (the binary itself, not the
/// `/usr/bin` wrapper script, which would stay as one more process), then Chromium.
pub const AUTO_BROWSERS: [&str; 3] =
    ["/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium-headless-shell", CHROMIUM];

/// Holds one WhatsApp Web session in a headless Chromium driven over CDP.
#[derive(Debug, Clone, Parser)]
#[command(name = "session-manager", version, about)]
pub struct Config {
    /// Address to bind. Anything but loopback requires SESSION_MANAGER_TOKEN.
    #[arg(long, env = "SESSION_MANAGER_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to bind (0 = any free port; the chosen one is printed).
    #[arg(long, env = "SESSION_MANAGER_PORT", default_value_t = 3001)]
    pub port: u16,

    /// Directory for the lock file, the browser profile and its backups.
    #[arg(long, env = "SESSION_MANAGER_DATA_DIR", default_value = "./data/session-manager")]
    pub data_dir: PathBuf,

    /// The WhatsApp Web page to open (a wa-sim URL in tests and demos).
    #[arg(long, env = "WHATSAPP_WEB_URL", default_value = "https://web.whatsapp.com")]
    pub whatsapp_web_url: String,

    /// The browser executable, or `auto`: Debian's `chromium-headless-shell` when installed (about
    /// half the memory), else `/usr/bin/chromium` (run with `--headless=new`). A path whose file name
    /// contains `headless-shell` is run as the headless shell, any other as Chromium.
    #[arg(long, env = "CHROMIUM_PATH", default_value = "auto")]
    pub chromium_path: String,

    /// QR codes shown for one connect before giving up (DISCONNECTED, QR_ATTEMPTS_EXHAUSTED).
    #[arg(long, env = "MAX_QR_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_qr_attempts: u32,

    /// Open the browser at start-up: saved (only with a saved login), always, never.
    #[arg(long, env = "AUTO_CONNECT", value_enum, default_value_t = AutoConnect::Saved)]
    pub auto_connect: AutoConnect,

    /// Bearer token required on every route but /health (required when not bound to loopback).
    #[arg(long, env = "SESSION_MANAGER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Take the session back when WhatsApp Web is opened elsewhere (else ERROR CONFLICT).
    #[arg(long, env = "TAKEOVER_ON_CONFLICT", default_value_t = true, action = clap::ArgAction::Set)]
    pub takeover_on_conflict: bool,

    /// Seconds Chromium may take to start and print its DevTools address.
    #[arg(long, env = "BROWSER_LAUNCH_TIMEOUT_SECS", default_value_t = 20)]
    pub launch_timeout_secs: u64,

    /// Seconds WhatsApp Web may take to load and expose its modules.
    #[arg(long, env = "PAGE_LOAD_TIMEOUT_SECS", default_value_t = 60)]
    pub page_load_timeout_secs: u64,

    /// Seconds a send may take before answering 504 SEND_TIMEOUT.
    #[arg(long, env = "SEND_TIMEOUT_SECS", default_value_t = 30)]
    pub send_timeout_secs: u64,

    /// Sends accepted per minute (a burst of this many, refilled evenly); more get 429.
    #[arg(long, env = "SEND_RATE_PER_MINUTE", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub send_rate_per_minute: u32,

    /// Connects that start the browser accepted per minute (a burst of this many, refilled evenly);
    /// more get 429. A `/connect` while the session is already live is free (it changes nothing).
    #[arg(long, env = "CONNECT_RATE_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_rate_per_minute: u32,
}

impl Config {
    /// Checks what clap cannot: a non-loopback bind needs a token.
    pub fn validate(&self) -> Result<(), String> {
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err("SESSION_MANAGER_TOKEN is set but empty: unset it or give a secret".to_owned());
        }
        if !self.binds_loopback() && self.token.is_none() {
            return Err(format!(
                "SESSION_MANAGER_HOST={} is not a loopback address: set SESSION_MANAGER_TOKEN (the hub sends it \
                 as a bearer token) or bind 127.0.0.1",
                self.host
            ));
        }
        if !(self.whatsapp_web_url.starts_with("http://") || self.whatsapp_web_url.starts_with("https://")) {
            return Err(format!("WHATSAPP_WEB_URL={} is not an http(s) URL", self.whatsapp_web_url));
        }
        Ok(())
    }

    pub fn binds_loopback(&self) -> bool {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.host.eq_ignore_ascii_case("localhost"),
        }
    }

    /// The browser to run: `CHROMIUM_PATH`, or for `auto` the first of [`AUTO_BROWSERS`] installed.
    pub fn chromium_executable(&self) -> PathBuf {
        if self.chromium_path != "auto" {
            return PathBuf::from(&self.chromium_path);
        }
        let installed = AUTO_BROWSERS.iter().map(PathBuf::from).find(|p| p.is_file());
        // Nothing installed: the error names Chromium's path and says what to install.
        installed.unwrap_or_else(|| PathBuf::from(CHROMIUM))
    }

    pub fn launch_timeout(&self) -> Duration {
        Duration::from_secs(self.launch_timeout_secs)
    }

    pub fn page_load_timeout(&self) -> Duration {
        Duration::from_secs(self.page_load_timeout_secs)
    }

    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.send_timeout_secs)
    }

    /// The effective configuration as one log line, the token masked.
    pub fn summary(&self) -> String {
        let token = match &self.token {
            Some(_) => "set (masked)",
            None => "unset",
        };
        format!(
            "host={} port={} data_dir={} whatsapp_web_url={} chromium_path={} max_qr_attempts={} \
             auto_connect={:?} token={token} takeover_on_conflict={} launch_timeout={}s page_load_timeout={}s \
             send_timeout={}s send_rate_per_minute={} connect_rate_per_minute={}",
            self.host,
            self.port,
            self.data_dir.display(),
            self.whatsapp_web_url,
            self.chromium_executable().display(),
            self.max_qr_attempts,
            self.auto_connect,
            self.takeover_on_conflict,
            self.launch_timeout_secs,
            self.page_load_timeout_secs,
            self.send_timeout_secs,
            self.send_rate_per_minute,
            self.connect_rate_per_minute,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `args` as the command line, ignoring the environment (the developer's shell may set
    /// CHROMIUM_PATH, SESSION_MANAGER_PORT...): only what the test passes counts.
    fn try_parse(args: &[&str]) -> Result<Config, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let mut all = vec!["session-manager"];
        all.extend_from_slice(args);
        let command = Config::command().mut_args(|arg| arg.env(None));
        Config::from_arg_matches(&command.try_get_matches_from(all)?)
    }

    fn parse(args: &[&str]) -> Config {
        try_parse(args).expect("arguments parse")
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(&[]);
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 3001);
        assert_eq!(c.data_dir, PathBuf::from("./data/session-manager"));
        assert_eq!(c.whatsapp_web_url, "https://web.whatsapp.com");
        // The test run's CHROMIUM_PATH (set to run the suite on another browser) is read by clap too.
        let expected = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "auto".into());
        assert_eq!(c.chromium_path, expected);
        assert_eq!(c.max_qr_attempts, 5);
        assert_eq!(c.auto_connect, AutoConnect::Saved);
        assert!(c.takeover_on_conflict);
        assert_eq!((c.send_rate_per_minute, c.connect_rate_per_minute), (60, 10));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn auto_prefers_the_installed_headless_shell_and_a_path_is_taken_as_given() {
        let auto = parse(&["--chromium-path", "auto"]).chromium_executable();
        let expected = AUTO_BROWSERS.iter().find(|p| Path::new(p).is_file()).copied().unwrap_or(CHROMIUM);
        assert_eq!(auto, PathBuf::from(expected));
        if Path::new(AUTO_BROWSERS[0]).is_file() {
            assert!(auto.ends_with("chromium-headless-shell"), "{}", auto.display());
        }
        assert_eq!(
            parse(&["--chromium-path", "/opt/c/chrome"]).chromium_executable(),
            PathBuf::from("/opt/c/chrome")
        );
    }

    #[test]
    fn a_public_bind_without_a_token_is_refused() {
        let err = parse(&["--host", "0.0.0.0"]).validate().unwrap_err();
        assert!(err.contains("SESSION_MANAGER_TOKEN"), "{err}");
        assert!(parse(&["--host", "0.0.0.0", "--token", "s3cret"]).validate().is_ok());
        assert!(parse(&["--host", "localhost"]).validate().is_ok());
        assert!(parse(&["--host", "::1"]).validate().is_ok());
    }

    #[test]
    fn the_summary_masks_the_token() {
        let s = parse(&["--token", "very-secret-value"]).summary();
        assert!(!s.contains("very-secret-value"), "{s}");
        assert!(s.contains("token=set (masked)"));
    }

    #[test]
    fn auto_connect_and_takeover_parse_from_words() {
        let c = parse(&["--auto-connect", "never", "--takeover-on-conflict", "false"]);
        assert_eq!(c.auto_connect, AutoConnect::Never);
        assert!(!c.takeover_on_conflict);
        assert!(try_parse(&["--max-qr-attempts", "0"]).is_err());
    }
}
