//! The state every handler shares.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::rate_limit::SlidingWindow;
use crate::auth::{JwtKeys, UserCache};
use crate::client::SessionManagerClient;
use crate::config::Config;
use crate::db::Store;
use crate::feed::StatusFeed;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub jwt: Arc<JwtKeys>,
    pub manager: SessionManagerClient,
    pub feed: StatusFeed,
    pub metrics: Arc<Metrics>,
    pub login_limits: Arc<LoginLimits>,
    /// Users read by the auth extractor, kept for `AUTH_CACHE_TTL_MS`.
    pub users: Arc<UserCache>,
    /// Cancelled at shutdown: ends the event streams so the server can drain.
    pub shutdown: CancellationToken,
}

pub struct LoginLimits {
    pub per_ip: SlidingWindow,
    pub per_account: SlidingWindow,
}

impl LoginLimits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            per_ip: SlidingWindow::new(config.login_max_attempts_per_ip, config.login_window),
            per_account: SlidingWindow::new(config.login_max_failures_per_account, config.login_window),
        }
    }
}
