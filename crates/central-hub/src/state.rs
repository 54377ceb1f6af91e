//! The state every handler shares: one `Arc`, so the clones axum makes per request (the route's
//! service, the middleware's, each `State` extractor) cost one reference count, not one per field.

use std::ops::Deref;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::password::VerifyGate;
use crate::auth::rate_limit::{Backoff, SlidingWindow, TokenBucket};
use crate::auth::{JwtKeys, UserCache};
use crate::campaigns::dispatcher::CampaignRuntime;
use crate::client::SessionManagerClient;
use crate::config::Config;
use crate::db::Store;
use crate::feed::StatusFeed;
use crate::metrics::Metrics;
use crate::webhooks::WebhookRuntime;

#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    pub fn new(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

pub struct SharedState {
    pub config: Arc<Config>,
    pub store: Store,
    pub jwt: Arc<JwtKeys>,
    pub manager: SessionManagerClient,
    pub feed: StatusFeed,
    pub metrics: Arc<Metrics>,
    pub login_limits: Arc<LoginLimits>,
    /// Bounds the password checks running at once (memory: 19 MiB each).
    pub verify_gate: VerifyGate,
    /// `HUB_SEND_RATE_PER_MINUTE` per caller.
    pub send_budget: Arc<TokenBucket>,
    /// Tokens the auth extractor verified, with their users' rows, kept for `AUTH_CACHE_TTL_MS`.
    pub users: Arc<UserCache>,
    /// Cancelled at shutdown: ends the event streams so the server can drain.
    pub shutdown: CancellationToken,
    /// The campaign dispatcher's settings, change announcements and wake-up.
    pub campaigns: CampaignRuntime,
    /// The webhook settings, counters and wake-ups (`event_recorded` after writing a `hub_event`).
    pub webhooks: WebhookRuntime,
}

pub struct LoginLimits {
    /// Attempts per client address (`LOGIN_MAX_ATTEMPTS_PER_IP` per `LOGIN_WINDOW_SECONDS`).
    pub per_ip: SlidingWindow,
    /// Failures per account and address, with growing delays (`LOGIN_MAX_FAILURES_PER_ACCOUNT` free).
    pub per_account_address: Backoff,
}

impl LoginLimits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            per_ip: SlidingWindow::new(config.login_max_attempts_per_ip, config.login_window),
            per_account_address: Backoff::new(config.login_max_failures_per_account, config.login_window),
        }
    }
}
