//! Configuration: command-line flags, each also readable from the environment variable of
//! ARCHITECTURE.md, validated once into a [`Config`].

use std::fmt;
use std::time::Duration;

use clap::Args;

use crate::campaigns::pacer::{Pace, SendWindow};
use crate::inbound::OptOutKeywords;

pub mod webhooks;

pub use webhooks::{WebhookArgs, WebhookSettings};

/// The shortest JWT secret the hub accepts, in bytes (HS256 wants at least the hash size).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The shortest SESSION_MANAGER_TOKEN accepted (the session-manager refuses shorter ones too).
pub const MIN_MANAGER_TOKEN_CHARS: usize = 32;

/// Where the users live when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/central-hub.db";

/// Flags of `central-hub serve` (and of `central-hub` alone).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CENTRAL_HUB_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "CENTRAL_HUB_PORT", default_value_t = 3012)]
    pub port: u16,
    /// Where users and the audit log live: `sqlite://path.db` or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// Base URL of the session-manager.
    #[arg(long, env = "SESSION_MANAGER_URL", default_value = "http://127.0.0.1:3001")]
    pub session_manager_url: String,
    /// Bearer token sent to the session-manager (required, at least 32 characters, the same value
    /// the session-manager is started with).
    #[arg(long, env = "SESSION_MANAGER_TOKEN", hide_env_values = true)]
    pub session_manager_token: Option<String>,
    /// Connect timeout towards the session-manager, in milliseconds.
    #[arg(long, env = "SESSION_MANAGER_CONNECT_TIMEOUT_MS", default_value_t = 5_000)]
    pub session_manager_connect_timeout_ms: u64,
    /// Read timeout towards the session-manager, in milliseconds.
    #[arg(long, env = "SESSION_MANAGER_TIMEOUT_MS", default_value_t = 30_000)]
    pub session_manager_timeout_ms: u64,
    /// How many times an idempotent GET to the session-manager is retried on a connection failure.
    #[arg(long, env = "SESSION_MANAGER_RETRIES", default_value_t = 2)]
    pub session_manager_retries: u32,
    /// HS256 secret for the tokens: at least 32 bytes.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Lifetime of a login token, in seconds.
    #[arg(long, env = "JWT_TTL_SECONDS", default_value_t = 8 * 3600)]
    pub jwt_ttl_seconds: u64,
    /// Email of the first admin, created when no user exists.
    #[arg(long, env = "ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of the first admin, created when no user exists.
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Login attempts allowed per client IP within the login window.
    #[arg(long, env = "LOGIN_MAX_ATTEMPTS_PER_IP", default_value_t = 30)]
    pub login_max_attempts_per_ip: u32,
    /// Failed logins on one account from one address before each further attempt from there waits
    /// a doubling delay (2 s, 4 s, ... up to the login window). Other addresses are not slowed.
    #[arg(long, env = "LOGIN_MAX_FAILURES_PER_ACCOUNT", default_value_t = 5)]
    pub login_max_failures_per_account: u32,
    /// The login rate-limit window, in seconds.
    #[arg(long, env = "LOGIN_WINDOW_SECONDS", default_value_t = 300)]
    pub login_window_seconds: u64,
    /// How long a user's row (enabled, role, client id) is reused by authenticated requests before
    /// it is read from the database again, in milliseconds. A disabled user is refused at the
    /// latest this long after the change; 0 reads the database on every request.
    #[arg(long, env = "AUTH_CACHE_TTL_MS", default_value_t = 2_000)]
    pub auth_cache_ttl_ms: u64,
    /// Take the client IP from `X-Real-IP` / `X-Forwarded-For` (only behind a trusted proxy like nginx).
    #[arg(long, env = "TRUST_PROXY_HEADERS", default_value_t = false)]
    pub trust_proxy_headers: bool,
    /// Sends each caller (a client's cliente_id, an admin's account) may make per minute through
    /// the hub, so one tenant cannot use up the session's whole send budget; 0 disables it.
    #[arg(long, env = "HUB_SEND_RATE_PER_MINUTE", default_value_t = 30)]
    pub hub_send_rate_per_minute: u32,
    /// The shortest delay between two campaign messages of the session, in milliseconds (the
    /// fastest a campaign may ask for). Below 8000, messages to non-contacts in bursts risk a ban.
    #[arg(long, env = "CAMPAIGN_MIN_DELAY_MS", default_value_t = 8_000)]
    pub campaign_min_delay_ms: u64,
    /// The upper end of the random delay between two campaign messages, in milliseconds.
    #[arg(long, env = "CAMPAIGN_MAX_DELAY_MS", default_value_t = 20_000)]
    pub campaign_max_delay_ms: u64,
    /// The most campaign messages the session sends in any 60 minutes (0: no cap, tests only).
    #[arg(long, env = "CAMPAIGN_MAX_PER_HOUR", default_value_t = 200)]
    pub campaign_max_per_hour: u32,
    /// The most campaign messages the session sends in any 24 hours (0: no cap, tests only).
    #[arg(long, env = "CAMPAIGN_MAX_PER_DAY", default_value_t = 1_000)]
    pub campaign_max_per_day: u32,
    /// How long a hub holds a recipient it is sending before another hub may take it over, in
    /// seconds; longer than SESSION_MANAGER_TIMEOUT_MS.
    #[arg(long, env = "CAMPAIGN_LEASE_SECONDS", default_value_t = 90)]
    pub campaign_lease_seconds: u64,
    /// The first back-off after a transient send failure, in milliseconds (doubled at each retry).
    #[arg(long, env = "CAMPAIGN_RETRY_BASE_MS", default_value_t = 2_000)]
    pub campaign_retry_base_ms: u64,
    /// The IANA time zone of a campaign's send window when the campaign names none.
    #[arg(long, env = "CAMPAIGN_DEFAULT_TIME_ZONE", default_value = "America/Argentina/Buenos_Aires")]
    pub campaign_default_time_zone: String,
    /// Comma-separated words that opt the sender out of campaigns when an incoming message is
    /// exactly one of them (trimmed, any case): for the client its last message came from, or for
    /// every client when none wrote to it.
    #[arg(long, env = "OPT_OUT_KEYWORDS", default_value = crate::inbound::DEFAULT_OPT_OUT_KEYWORDS)]
    pub opt_out_keywords: String,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
}

/// The validated configuration the hub runs with.
#[derive(Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// Without a trailing slash, exactly as it appears in errors and `/health`.
    pub session_manager_url: String,
    pub session_manager_token: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub get_retries: u32,
    pub database_url: String,
    pub jwt_secret: String,
    pub jwt_ttl: Duration,
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    pub login_max_attempts_per_ip: u32,
    pub login_max_failures_per_account: u32,
    pub login_window: Duration,
    pub auth_cache_ttl: Duration,
    pub trust_proxy_headers: bool,
    pub hub_send_rate_per_minute: u32,
    pub campaign: DispatchSettings,
    pub opt_out_keywords: OptOutKeywords,
    pub webhooks: WebhookSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "JWT_SECRET is not set: the hub signs login tokens with it and refuses to start without one. \
         Set JWT_SECRET to a random string of at least {MIN_JWT_SECRET_BYTES} bytes \
         (e.g. `openssl rand -base64 48`)"
    )]
    MissingJwtSecret,
    #[error(
        "JWT_SECRET is {0} bytes long: at least {MIN_JWT_SECRET_BYTES} bytes are required so tokens cannot be \
         brute-forced. Set JWT_SECRET to a longer random string (e.g. `openssl rand -base64 48`)"
    )]
    ShortJwtSecret(usize),
    #[error(
        "SESSION_MANAGER_TOKEN is not set: the hub authenticates to the session-manager with it and refuses \
         to start without one. Generate one with `openssl rand -hex 32` and set SESSION_MANAGER_TOKEN to it in \
         the environment file both services read (deploy/leadmaster.env)"
    )]
    MissingManagerToken,
    #[error(
        "SESSION_MANAGER_TOKEN is {0} characters long: at least {MIN_MANAGER_TOKEN_CHARS} are required. \
         Generate one with `openssl rand -hex 32` (in deploy/leadmaster.env, shared with the session-manager)"
    )]
    ShortManagerToken(usize),
    #[error("SESSION_MANAGER_URL {url:?} is not a valid http(s) URL: {reason}")]
    BadManagerUrl { url: String, reason: String },
    #[error("ADMIN_EMAIL and ADMIN_PASSWORD must be set together (only {0} is set)")]
    HalfAdmin(&'static str),
    #[error("{name} must be greater than 0")]
    Zero { name: &'static str },
    #[error("{0}")]
    Campaign(String),
    #[error("{0}")]
    OptOutKeywords(String),
    #[error("{0}")]
    Webhook(String),
}

impl Config {
    /// Validates the flags; every refusal says which variable to fix and how.
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let campaign = campaign_settings(&args)?;
        let opt_out_keywords =
            OptOutKeywords::parse(&args.opt_out_keywords).map_err(ConfigError::OptOutKeywords)?;
        let webhooks = WebhookSettings::from_args(&args.webhooks)?;
        let jwt_secret = match args.jwt_secret {
            None => return Err(ConfigError::MissingJwtSecret),
            Some(s) if s.is_empty() => return Err(ConfigError::MissingJwtSecret),
            Some(s) if s.len() < MIN_JWT_SECRET_BYTES => return Err(ConfigError::ShortJwtSecret(s.len())),
            Some(s) => s,
        };
        let session_manager_url = normalize_manager_url(&args.session_manager_url)?;
        let session_manager_token = match args.session_manager_token.as_deref().map(str::trim) {
            None | Some("") => return Err(ConfigError::MissingManagerToken),
            Some(t) if t.chars().count() < MIN_MANAGER_TOKEN_CHARS => {
                return Err(ConfigError::ShortManagerToken(t.chars().count()));
            }
            Some(t) => t.to_owned(),
        };
        match (&args.admin_email, &args.admin_password) {
            (Some(_), None) => return Err(ConfigError::HalfAdmin("ADMIN_EMAIL")),
            (None, Some(_)) => return Err(ConfigError::HalfAdmin("ADMIN_PASSWORD")),
            _ => {}
        }
        for (name, value) in [
            ("SESSION_MANAGER_CONNECT_TIMEOUT_MS", args.session_manager_connect_timeout_ms),
            ("SESSION_MANAGER_TIMEOUT_MS", args.session_manager_timeout_ms),
            ("JWT_TTL_SECONDS", args.jwt_ttl_seconds),
            ("LOGIN_WINDOW_SECONDS", args.login_window_seconds),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { name });
            }
        }
        Ok(Self {
            campaign,
            opt_out_keywords,
            webhooks,
            host: args.host,
            port: args.port,
            session_manager_url,
            session_manager_token,
            connect_timeout: Duration::from_millis(args.session_manager_connect_timeout_ms),
            read_timeout: Duration::from_millis(args.session_manager_timeout_ms),
            get_retries: args.session_manager_retries,
            database_url: args.database_url,
            jwt_secret,
            jwt_ttl: Duration::from_secs(args.jwt_ttl_seconds),
            admin_email: args.admin_email,
            admin_password: args.admin_password,
            login_max_attempts_per_ip: args.login_max_attempts_per_ip,
            login_max_failures_per_account: args.login_max_failures_per_account,
            login_window: Duration::from_secs(args.login_window_seconds),
            auth_cache_ttl: Duration::from_millis(args.auth_cache_ttl_ms),
            trust_proxy_headers: args.trust_proxy_headers,
            hub_send_rate_per_minute: args.hub_send_rate_per_minute,
        })
    }
}

/// The CAMPAIGN_* variables, checked against each other and the manager's timeout.
fn campaign_settings(args: &ServeArgs) -> Result<DispatchSettings, ConfigError> {
    if args.campaign_min_delay_ms > args.campaign_max_delay_ms {
        return Err(ConfigError::Campaign(format!(
            "CAMPAIGN_MIN_DELAY_MS ({}) is greater than CAMPAIGN_MAX_DELAY_MS ({})",
            args.campaign_min_delay_ms, args.campaign_max_delay_ms
        )));
    }
    if args.campaign_lease_seconds.saturating_mul(1_000) <= args.session_manager_timeout_ms {
        return Err(ConfigError::Campaign(format!(
            "CAMPAIGN_LEASE_SECONDS ({}) must be longer than SESSION_MANAGER_TIMEOUT_MS ({} ms): a send still \
             waiting for the manager would be taken over by another hub",
            args.campaign_lease_seconds, args.session_manager_timeout_ms
        )));
    }
    SendWindow::new(&args.campaign_default_time_zone, 0, 1440)
        .map_err(|e| ConfigError::Campaign(format!("CAMPAIGN_DEFAULT_TIME_ZONE: {e}")))?;
    Ok(DispatchSettings {
        fastest: Pace {
            min_delay_ms: args.campaign_min_delay_ms,
            max_delay_ms: args.campaign_max_delay_ms,
            max_per_hour: args.campaign_max_per_hour,
            max_per_day: args.campaign_max_per_day,
        },
        lease: Duration::from_secs(args.campaign_lease_seconds),
        retry_base: Duration::from_millis(args.campaign_retry_base_ms),
        default_time_zone: args.campaign_default_time_zone.clone(),
    })
}

fn normalize_manager_url(raw: &str) -> Result<String, ConfigError> {
    let bad = |reason: String| ConfigError::BadManagerUrl { url: raw.to_owned(), reason };
    let parsed = reqwest::Url::parse(raw.trim()).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!("scheme {:?} is not http or https", parsed.scheme())));
    }
    if parsed.host_str().is_none() {
        return Err(bad("it has no host".to_owned()));
    }
    Ok(raw.trim().trim_end_matches('/').to_owned())
}

/// Hides a secret but shows that it is set and how long it is.
fn mask(secret: Option<&str>) -> String {
    match secret {
        None => "<unset>".to_owned(),
        Some(s) => format!("<set, {} bytes>", s.len()),
    }
}

/// Hides the password of a database URL (`postgres://user:***@host/db`).
pub fn mask_database_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, which this one has.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The effective configuration, secrets masked: safe to log.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &format_args!("{}:{}", self.host, self.port))
            .field("session_manager_url", &self.session_manager_url)
            .field("session_manager_token", &mask(Some(&self.session_manager_token)))
            .field("connect_timeout_ms", &self.connect_timeout.as_millis())
            .field("read_timeout_ms", &self.read_timeout.as_millis())
            .field("get_retries", &self.get_retries)
            .field("database_url", &mask_database_url(&self.database_url))
            .field("jwt_secret", &mask(Some(&self.jwt_secret)))
            .field("jwt_ttl_s", &self.jwt_ttl.as_secs())
            .field("admin_email", &self.admin_email)
            .field("admin_password", &mask(self.admin_password.as_deref()))
            .field("login_max_attempts_per_ip", &self.login_max_attempts_per_ip)
            .field("login_max_failures_per_account", &self.login_max_failures_per_account)
            .field("login_window_s", &self.login_window.as_secs())
            .field("auth_cache_ttl_ms", &self.auth_cache_ttl.as_millis())
            .field("trust_proxy_headers", &self.trust_proxy_headers)
            .field("hub_send_rate_per_minute", &self.hub_send_rate_per_minute)
            .field("campaign", &self.campaign)
            .field("opt_out_keywords", &self.opt_out_keywords.as_slice())
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

/// The operator's settings for the dispatcher.
#[derive(Clone, Debug)]
pub struct DispatchSettings {
    /// The fastest pace any campaign may have (CAMPAIGN_* variables).
    pub fastest: Pace,
    /// How long a claimed recipient stays this hub's before another may take it over.
    pub lease: Duration,
    /// First back-off of a transient failure, doubled at each retry.
    pub retry_base: Duration,
    /// The IANA zone of a campaign that names none.
    pub default_time_zone: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// Parses `extra` as the command line, ignoring the environment (the developer's shell may set
    /// JWT_SECRET, DATABASE_URL...): only what the test passes counts.
    fn args(extra: &[&str]) -> ServeArgs {
        use clap::{CommandFactory, FromArgMatches};
        let mut argv = vec!["central-hub"];
        argv.extend_from_slice(extra);
        let matches = Cli::command().mut_args(|arg| arg.env(None)).get_matches_from(argv);
        Cli::from_arg_matches(&matches).expect("arguments parse").serve
    }

    #[test]
    fn a_missing_or_short_jwt_secret_is_refused_with_the_reason() {
        let err = Config::from_args(args(&[])).unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET is not set"), "{err}");
        let err = Config::from_args(args(&["--jwt-secret", "short"])).unwrap_err();
        assert!(err.to_string().contains("5 bytes long"), "{err}");
    }

    #[test]
    fn a_missing_or_short_manager_token_is_refused_with_how_to_make_one() {
        let secret = "s".repeat(40);
        for extra in [&[][..], &["--session-manager-token", " "][..]] {
            let err = Config::from_args(args(&[&["--jwt-secret", &secret][..], extra].concat())).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("SESSION_MANAGER_TOKEN is not set"), "{text}");
            assert!(text.contains("openssl rand -hex 32"), "{text}");
        }
        let err =
            Config::from_args(args(&["--jwt-secret", &secret, "--session-manager-token", "a"])).unwrap_err();
        assert!(err.to_string().contains("1 characters long"), "{err}");
        let token = "t".repeat(32);
        let config =
            Config::from_args(args(&["--jwt-secret", &secret, "--session-manager-token", &token])).unwrap();
        assert_eq!(config.session_manager_token, token);
    }

    #[test]
    fn secrets_never_appear_in_the_printed_config() {
        let secret = "s".repeat(40);
        let token = "m".repeat(48);
        let config = Config::from_args(args(&[
            "--session-manager-token",
            &token,
            "--jwt-secret",
            &secret,
            "--session-manager-url",
            "http://127.0.0.1:3001/",
            "--database-url",
            "postgres://hub:hunter2@db/hub",
        ]))
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains(&secret) && !printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains(&token), "{printed}");
        assert!(printed.contains("<set, 40 bytes>"), "{printed}");
        assert_eq!(config.session_manager_url, "http://127.0.0.1:3001");
    }

    #[test]
    fn opt_out_keywords_are_validated_at_start() {
        let secret = "s".repeat(40);
        let token = "t".repeat(32);
        let base = ["--jwt-secret", &secret, "--session-manager-token", &token];
        let config = Config::from_args(args(&base)).unwrap();
        assert_eq!(config.opt_out_keywords.as_slice(), ["baja", "stop", "cancelar"]);
        let err = Config::from_args(args(&[&base[..], &["--opt-out-keywords", "BAJA, ,STOP"]].concat()))
            .unwrap_err();
        assert!(err.to_string().contains("OPT_OUT_KEYWORDS") && err.to_string().contains("entry 2"), "{err}");
    }

    #[test]
    fn a_manager_url_that_is_not_http_is_refused() {
        let secret = "s".repeat(40);
        let err =
            Config::from_args(args(&["--jwt-secret", &secret, "--session-manager-url", "127.0.0.1:3001"]))
                .unwrap_err();
        assert!(err.to_string().contains("SESSION_MANAGER_URL"), "{err}");
    }
}
