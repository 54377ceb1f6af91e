//! Building the application: store, first admin, manager client, status feed, router, socket.io,
//! listener.
//! `Application::build` binds (port 0 works) so tests and the binary start the hub the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use service_kit::ServeOptions;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::auth::rate_limit::TokenBucket;
use crate::auth::{JwtKeys, UserCache, password};
use crate::campaigns::dispatcher::{CampaignRuntime, Dispatcher};
use crate::campaigns::events::CampaignEvents;
use crate::client::SessionManagerClient;
use crate::config::Config;
use crate::db::{AuditEntry, DbError, NewUser, Store};
use crate::error::BODY_LIMIT_BYTES;
use crate::feed::StatusFeed;
use crate::inbound::InboundSink;
use crate::metrics::Metrics;
use crate::state::{AppState, LoginLimits, SharedState};
use crate::webhooks::WebhookRuntime;

/// Email of the admin created when no user exists and `ADMIN_EMAIL` is unset.
pub const GENERATED_ADMIN_EMAIL: &str = "admin@localhost";

/// The only Content-Security-Policy the hub serves: its own scripts, styles and images only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("could not create the first admin {email}: {reason}")]
    FirstAdmin { email: String, reason: String },
    #[error("could not build the HTTP client for the session-manager: {0}")]
    Client(#[from] reqwest::Error),
    #[error("could not listen on {addr}: {source} (is another process using CENTRAL_HUB_PORT?)")]
    Bind { addr: String, source: std::io::Error },
}

/// Credentials generated for the first admin, to be shown once.
#[derive(Debug, Clone)]
pub struct GeneratedAdmin {
    pub email: String,
    pub password: String,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    feed_task: JoinHandle<()>,
    socketio_task: JoinHandle<()>,
    inbound_task: JoinHandle<()>,
    dispatcher_task: JoinHandle<()>,
    webhook_tasks: Vec<JoinHandle<()>>,
    generated_admin: Option<GeneratedAdmin>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let store = Store::connect(&config.database_url).await?;
        let generated_admin = ensure_first_admin(&store, &config).await?;
        let metrics = Arc::new(Metrics::default());
        let manager = SessionManagerClient::new(&config, metrics.clone())?;
        probe_manager(&manager).await;
        let shutdown = CancellationToken::new();
        let campaigns = CampaignRuntime {
            settings: config.campaign.clone(),
            events: CampaignEvents::default(),
            nudge: Arc::new(tokio::sync::Notify::new()),
        };
        let webhooks = WebhookRuntime::new(config.webhooks.clone());
        let (inbound, inbound_task) = InboundSink::spawn(
            store.clone(),
            config.opt_out_keywords.clone(),
            metrics.clone(),
            campaigns.events.clone(),
            webhooks.clone(),
            shutdown.clone(),
        );
        let (feed, feed_task) =
            StatusFeed::spawn(manager.clone(), inbound, metrics.clone(), shutdown.clone());
        let dispatcher_task = Dispatcher::spawn(
            store.clone(),
            manager.clone(),
            feed.clone(),
            campaigns.clone(),
            shutdown.clone(),
        );
        let webhook_tasks = webhooks.spawn(&store, &feed, &campaigns.events, &shutdown)?;

        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartupError::Bind { addr: addr.clone(), source })?;
        let state = AppState::new(SharedState {
            jwt: Arc::new(JwtKeys::new(config.jwt_secret.as_bytes(), config.jwt_ttl)),
            login_limits: Arc::new(LoginLimits::from_config(&config)),
            verify_gate: password::VerifyGate::per_core(),
            send_budget: Arc::new(TokenBucket::new(config.hub_send_rate_per_minute)),
            users: Arc::new(UserCache::new(config.auth_cache_ttl)),
            config: Arc::new(config),
            store,
            manager,
            feed,
            metrics,
            shutdown,
            campaigns,
            webhooks,
        });
        let (socketio_layer, _io, socketio_task) = crate::socketio::start(&state);
        let router = app(state.clone()).layer(socketio_layer);
        Ok(Self {
            listener,
            router,
            state,
            feed_task,
            socketio_task,
            inbound_task,
            dispatcher_task,
            webhook_tasks,
            generated_admin,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound TcpListener always has a local address.
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Set when this start created the first admin with a generated password.
    pub fn generated_admin(&self) -> Option<&GeneratedAdmin> {
        self.generated_admin.as_ref()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains: event streams end, in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let cancel = self.state.shutdown.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: draining requests");
            cancel.cancel();
        };
        service_kit::serve(self.listener, self.router, SERVE_OPTIONS, signal).await;
        self.state.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.feed_task).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.socketio_task).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inbound_task).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.dispatcher_task).await;
        for task in self.webhook_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.state.store.close().await;
        Ok(())
    }
}

/// The accept loop's timeouts. A request's headers must arrive within 15 s (and a kept-alive
/// connection waiting for its next request is closed after it), a body within 30 s once its headers
/// are in; a stop waits up to 8 s for open connections to finish.
pub const SERVE_OPTIONS: ServeOptions = ServeOptions {
    header_read_timeout: Duration::from_secs(15),
    body_read_timeout: Duration::from_secs(30),
    drain_limit: Duration::from_secs(8),
};

/// The router with every layer: request context and log, security headers, body limit.
pub fn app(state: AppState) -> Router {
    let headers = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::CACHE_CONTROL, "no-store"),
    ];
    let document = crate::routes::docs::OpenApiJson(crate::openapi::json());
    let mut router = crate::routes::router()
        .layer(axum::Extension(document))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), crate::middleware::observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES));
    for (name, value) in headers {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    router.with_state(state)
}

/// Creates the first admin when the store has no user: from `ADMIN_EMAIL`/`ADMIN_PASSWORD`, or
/// `admin@localhost` with a generated password that the caller shows once.
async fn ensure_first_admin(store: &Store, config: &Config) -> Result<Option<GeneratedAdmin>, StartupError> {
    if store.count_users().await? > 0 {
        if config.admin_email.is_some() {
            tracing::info!(
                "ADMIN_EMAIL/ADMIN_PASSWORD ignored: users exist (use `central-hub users` to manage them)"
            );
        }
        return Ok(None);
    }
    let (email, password, generated) = match (&config.admin_email, &config.admin_password) {
        (Some(email), Some(password)) => (email.clone(), password.clone(), false),
        _ => (GENERATED_ADMIN_EMAIL.to_owned(), password::generate(), true),
    };
    let failed = |reason: String| StartupError::FirstAdmin { email: email.clone(), reason };
    let parsed = shared_contracts::Email::parse(&email)
        .map_err(|reason| failed(format!("ADMIN_EMAIL is not an email address: {reason}")))?;
    let hash = password::hash_blocking(password.clone())
        .await
        .map_err(|e| failed(format!("ADMIN_PASSWORD: {e}")))?;
    let user = store
        .create_user(NewUser {
            email: parsed,
            password_hash: hash,
            role: shared_contracts::Role::Admin,
            cliente_id: None,
        })
        .await?;
    store
        .record_audit(AuditEntry {
            actor_user_id: None,
            actor_email: "central-hub".into(),
            action: "user.bootstrap-admin".into(),
            target: Some(user.email.to_string()),
            result: "ok".into(),
            detail: Some(
                if generated { "generated password" } else { "from ADMIN_EMAIL/ADMIN_PASSWORD" }.into(),
            ),
        })
        .await?;
    tracing::info!(email = %user.email, generated, "created the first admin");
    Ok(generated.then_some(GeneratedAdmin { email: user.email.into(), password }))
}

/// Says loudly, at start, when the session-manager cannot be reached (the hub still starts).
async fn probe_manager(manager: &SessionManagerClient) {
    match tokio::time::timeout(Duration::from_secs(5), manager.status_once()).await {
        Ok(Ok(status)) => {
            tracing::info!(url = manager.base_url(), state = %status.state, "session-manager reachable");
        }
        Ok(Err(e)) => tracing::error!(
            url = manager.base_url(),
            error.message = %e,
            hint = %e.hint(),
            "session-manager NOT reachable: starting degraded (WhatsApp routes answer 502/504 until it is)"
        ),
        Err(_) => tracing::error!(
            url = manager.base_url(),
            "session-manager did not answer GET /status within 5 s: starting degraded; check SESSION_MANAGER_URL"
        ),
    }
}
