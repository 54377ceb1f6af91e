//! The WEBHOOK_* variables: how deliveries are retried, how many run at once, and whether a
//! client's webhook may point at a private address.

use std::time::Duration;

use clap::Args;

use super::ConfigError;

pub const DEFAULT_MAX_AGE_SECONDS: u64 = 24 * 3600;
pub const DEFAULT_RETRY_BASE_MS: u64 = 1_000;
pub const DEFAULT_RETRY_MAX_MS: u64 = 10 * 60 * 1_000;
pub const DEFAULT_CONCURRENCY: usize = 64;

/// Flags of the webhook delivery (part of `central-hub serve`).
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// How long a delivery is retried before it is marked dead, in seconds (from the event's
    /// fan-out, or from its replay).
    #[arg(long, env = "WEBHOOK_MAX_AGE_SECONDS", default_value_t = DEFAULT_MAX_AGE_SECONDS)]
    pub webhook_max_age_seconds: u64,
    /// The back-off base of a failed delivery, in milliseconds: the n-th retry waits a random
    /// time between 0 and min(WEBHOOK_RETRY_MAX_MS, base * 2^(n-1)) ("full jitter").
    #[arg(long, env = "WEBHOOK_RETRY_BASE_MS", default_value_t = DEFAULT_RETRY_BASE_MS)]
    pub webhook_retry_base_ms: u64,
    /// The longest back-off between two attempts, in milliseconds.
    #[arg(long, env = "WEBHOOK_RETRY_MAX_MS", default_value_t = DEFAULT_RETRY_MAX_MS)]
    pub webhook_retry_max_ms: u64,
    /// Deliveries in flight at once (to all endpoints together).
    #[arg(long, env = "WEBHOOK_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY)]
    pub webhook_concurrency: usize,
    /// Let `client` users point webhooks at loopback, private, link-local and unique-local
    /// addresses (off: such a URL is refused at creation and such a delivery fails).
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    pub webhook_allow_private: bool,
}

impl Default for WebhookArgs {
    fn default() -> Self {
        Self {
            webhook_max_age_seconds: DEFAULT_MAX_AGE_SECONDS,
            webhook_retry_base_ms: DEFAULT_RETRY_BASE_MS,
            webhook_retry_max_ms: DEFAULT_RETRY_MAX_MS,
            webhook_concurrency: DEFAULT_CONCURRENCY,
            webhook_allow_private: false,
        }
    }
}

/// The validated webhook settings.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub max_age: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub concurrency: usize,
    pub allow_private: bool,
}

impl WebhookSettings {
    pub fn from_args(args: &WebhookArgs) -> Result<Self, ConfigError> {
        for (name, value) in [
            ("WEBHOOK_MAX_AGE_SECONDS", args.webhook_max_age_seconds),
            ("WEBHOOK_RETRY_BASE_MS", args.webhook_retry_base_ms),
            ("WEBHOOK_RETRY_MAX_MS", args.webhook_retry_max_ms),
            ("WEBHOOK_CONCURRENCY", u64::try_from(args.webhook_concurrency).unwrap_or(u64::MAX)),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { name });
            }
        }
        if args.webhook_retry_base_ms > args.webhook_retry_max_ms {
            return Err(ConfigError::Webhook(format!(
                "WEBHOOK_RETRY_BASE_MS ({}) is greater than WEBHOOK_RETRY_MAX_MS ({})",
                args.webhook_retry_base_ms, args.webhook_retry_max_ms
            )));
        }
        if args.webhook_concurrency > 1_024 {
            return Err(ConfigError::Webhook(format!(
                "WEBHOOK_CONCURRENCY ({}) is above 1024: each delivery in flight holds a connection",
                args.webhook_concurrency
            )));
        }
        Ok(Self {
            max_age: Duration::from_secs(args.webhook_max_age_seconds),
            retry_base: Duration::from_millis(args.webhook_retry_base_ms),
            retry_max: Duration::from_millis(args.webhook_retry_max_ms),
            concurrency: args.webhook_concurrency,
            allow_private: args.webhook_allow_private,
        })
    }
}
