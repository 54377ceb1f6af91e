//! The manager's configuration: command-line flags, each also read from the environment variable
//! named in ARCHITECTURE.md, with defaults that work on a laptop.

#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The shortest SESSION_MANAGER_TOKEN accepted.
pub const MIN_TOKEN_CHARS: usize = 32;

/// `Host` header value or host name without port or IPv6 brackets, lowercase: `[::1]:3001` -> `::1`.
pub fn bare_host(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

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

/// What the binary runs besides serving the API.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Open WHATSAPP_WEB_URL in Chromium with a throw-away profile, wait for WhatsApp's modules and
    /// print what the bridge finds (the build, each internal and where it was found). Never logs in
    /// and leaves nothing behind. Exits 0 when compatible, 1 when a required internal is missing,
    /// 2 when the page could not be probed.
    Probe {
        /// Print the inventory as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Holds one WhatsApp Web session in a headless Chromium driven over CDP.
#[derive(Debug, Clone, Parser)]
#[command(name = "session-manager", version, about)]
pub struct Config {
    /// Address to bind (loopback unless the hub runs on another host).
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

    /// Bearer token required on every route but /health and a QR-less /status (required, at
    /// least 32 characters; the hub sends the same value).
    #[arg(long, env = "SESSION_MANAGER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Host names the manager answers (comma-separated, any port), against DNS rebinding.
    /// Default: 127.0.0.1, localhost, [::1]. The bind host is always allowed.
    #[arg(long, env = "SESSION_MANAGER_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Hours an answered Idempotency-Key is remembered (a retry within it is replayed).
    #[arg(long, env = "IDEMPOTENCY_TTL_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..))]
    pub idempotency_ttl_hours: u64,

    /// Days the inbound journal (incoming messages, acks: `/events` replays) keeps an event.
    #[arg(long, env = "INBOUND_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub inbound_retention_days: u64,

    /// Largest size of the inbound journal in bytes; past it the oldest events are dropped (to 3/4).
    #[arg(long, env = "INBOUND_JOURNAL_MAX_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(65_536..))]
    pub inbound_journal_max_bytes: u64,

    /// Clear-session backups kept (each holds a live linked-device login); 0 keeps none.
    #[arg(long, env = "SESSION_BACKUP_RETENTION", default_value_t = 3)]
    pub session_backup_retention: u32,

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
    #[arg(long, env = "PAIRING_CODE_REFRESH_SECS", default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..))]
    pub pairing_code_refresh_secs: u64,

    /// What to run: nothing serves the API; `probe` checks WHATSAPP_WEB_URL and exits.
    #[command(subcommand)]
    pub command: Option<Command>,

    #[arg(long, env = "CONNECT_RATE_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_rate_per_minute: u32,
}

impl Config {
    /// Checks what clap cannot: a token of at least [`MIN_TOKEN_CHARS`] characters.
    pub fn validate(&self) -> Result<(), String> {
        match self.token.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(
                    "SESSION_MANAGER_TOKEN is not set: the manager refuses to start without it (every route but \
                     /health and a QR-less /status needs it). Generate one with `openssl rand -hex 32` and set \
                     SESSION_MANAGER_TOKEN to it in the environment file both services read \
                     (deploy/leadmaster.env): the hub sends the same value"
                        .to_owned(),
                );
            }
            Some(t) if t.chars().count() < MIN_TOKEN_CHARS => {
                return Err(format!(
                    "SESSION_MANAGER_TOKEN is {} characters long: at least {MIN_TOKEN_CHARS} are required. \
                     Generate one with `openssl rand -hex 32` (in deploy/leadmaster.env, shared with the hub)",
                    t.chars().count()
                ));
            }
            Some(_) => {}
        }
        if let Some(bad) = self.allowed_hosts.iter().find(|h| h.trim().is_empty() || h.contains('/')) {
            return Err(format!(
                "SESSION_MANAGER_ALLOWED_HOSTS has the entry {bad:?}: give host names or addresses, comma-separated"
            ));
        }
        if !(self.whatsapp_web_url.starts_with("http://") || self.whatsapp_web_url.starts_with("https://")) {
            return Err(format!("WHATSAPP_WEB_URL={} is not an http(s) URL", self.whatsapp_web_url));
        }
        Ok(())
    }

    /// How long a pairing code is used before a fresh one is asked for.
    pub fn pairing_code_refresh(&self) -> Duration {
        Duration::from_secs(self.pairing_code_refresh_secs)
    }

    /// The token, trimmed (call after [`Config::validate`]).
    pub fn token(&self) -> &str {
        self.token.as_deref().map(str::trim).unwrap_or_default()
    }

    /// The host names (lowercase, without port or brackets) the manager answers.
    pub fn host_names(&self) -> Vec<String> {
        let mut names: Vec<String> = if self.allowed_hosts.is_empty() {
            ["127.0.0.1", "localhost", "::1"].map(str::to_owned).to_vec()
        } else {
            self.allowed_hosts.iter().map(|h| bare_host(h.trim())).collect()
        };
        names.push(bare_host(&self.host));
        names.sort();
        names.dedup();
        names
    }

    pub fn idempotency_ttl(&self) -> Duration {
        Duration::from_secs(self.idempotency_ttl_hours * 3600)
    }

    /// What the inbound journal may hold.
    pub fn inbound_limits(&self) -> crate::inbound::Limits {
        crate::inbound::Limits {
            retention: Duration::from_secs(self.inbound_retention_days * 86_400),
            max_bytes: self.inbound_journal_max_bytes,
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
             send_timeout={}s send_rate_per_minute={} connect_rate_per_minute={} allowed_hosts={} \
             idempotency_ttl={}h session_backup_retention={} inbound_retention={}d inbound_journal_max_bytes={}",
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
            self.host_names().join(","),
            self.idempotency_ttl_hours,
            self.session_backup_retention,
            self.inbound_retention_days,
            self.inbound_journal_max_bytes,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    /// Parses `args` as the command line, ignoring the environment (the developer's shell may set
    /// CHROMIUM_PATH, SESSION_MANAGER_PORT...): only what the test passes counts.
    fn try_parse(args: &[&str]) -> Result<Config, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let mut all = vec!["session-manager"];
        all.extend_from_slice(args);
        let command = Config::command().mut_args(|arg| arg.env(None));
        Config::from_arg_matches(&command.try_get_matches_from(all)?)
    }

    /// Parses `args` with a valid token.
    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["--token", TOKEN];
        all.extend_from_slice(args);
        try_parse(&all).expect("arguments parse")
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(&[]);
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 3001);
        assert_eq!(c.data_dir, PathBuf::from("./data/session-manager"));
        assert_eq!(c.whatsapp_web_url, "https://web.whatsapp.com");
        assert_eq!(c.chromium_path, "auto");
        assert_eq!(c.max_qr_attempts, 5);
        assert_eq!(c.auto_connect, AutoConnect::Saved);
        assert!(c.takeover_on_conflict);
        assert_eq!((c.send_rate_per_minute, c.connect_rate_per_minute), (60, 10));
        assert_eq!(c.idempotency_ttl(), Duration::from_secs(24 * 3600));
        assert_eq!(c.session_backup_retention, 3);
        assert_eq!(c.host_names(), ["127.0.0.1", "::1", "localhost"]);
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
    fn the_token_is_mandatory_and_long() {
        let bare = |args: &[&str]| try_parse(args).expect("arguments parse");
        for args in [&[][..], &["--token", "  "][..]] {
            let err = bare(args).validate().unwrap_err();
            assert!(err.contains("SESSION_MANAGER_TOKEN is not set"), "{err}");
            assert!(err.contains("openssl rand -hex 32"), "{err}");
        }
        let err = bare(&["--token", "a"]).validate().unwrap_err();
        assert!(err.contains("1 characters long") && err.contains("at least 32"), "{err}");
        assert!(bare(&["--token", &"x".repeat(31)]).validate().is_err());
        assert!(bare(&["--token", &"x".repeat(32)]).validate().is_ok());
    }

    #[test]
    fn allowed_hosts_replace_the_loopback_names_and_keep_the_bind_host() {
        let c = parse(&["--host", "10.0.0.5", "--allowed-hosts", "manager.internal,[fd00::1]:3001"]);
        assert_eq!(c.host_names(), ["10.0.0.5", "fd00::1", "manager.internal"]);
        assert_eq!(bare_host("LocalHost:3001"), "localhost");
        assert_eq!(bare_host("[::1]:80"), "::1");
        assert_eq!(bare_host("::1"), "::1");
    }

    #[test]
    fn the_summary_masks_the_token() {
        let s = parse(&[]).summary();
        assert!(!s.contains(TOKEN), "{s}");
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
