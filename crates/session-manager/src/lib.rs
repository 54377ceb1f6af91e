//! session-manager: holds one WhatsApp Web session in a headless Chromium driven over CDP.
//!
//! `Application::build` locks the data directory, starts the session actor and binds the HTTP
//! listener; `run` serves until SIGTERM/SIGINT and closes the browser on the way out.

pub mod actor;
pub mod bridge;
pub mod browser;
pub mod config;
pub mod error;
pub mod idempotency;
pub mod inbound;
pub mod metrics;
pub mod probe;
pub mod qr;
pub mod routes;
pub mod session;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use service_kit::ServeOptions;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::actor::{ActorSettings, SessionHandle};
use crate::browser::profile::{DataDir, ProfileLock};
use crate::browser::{BrowserError, LaunchSettings};
use crate::config::{AutoConnect, Config};
use crate::idempotency::Idempotency;
use crate::inbound::Inbound;
use crate::metrics::Metrics;
use crate::routes::{AppState, RateLimiter};

/// The accept loop's timeouts: a connection has 10 s to send a request's headers and may stay idle
/// that long between requests (against connections that hold a worker and a socket forever), 30 s
/// for a body once its headers are in; in-flight requests get 10 s to finish at shutdown.
pub const SERVE_OPTIONS: ServeOptions = ServeOptions {
    header_read_timeout: Duration::from_secs(10),
    body_read_timeout: Duration::from_secs(30),
    drain_limit: Duration::from_secs(10),
};

/// Why the manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Browser(#[from] BrowserError),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("could not open the idempotency journal: {0}")]
    Journal(crate::error::Error),
    #[error(
        "could not open the inbound journal in {dir}: {source} (check that the data directory is writable, \
         or move a damaged inbound.jsonl aside)"
    )]
    InboundJournal { dir: String, source: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// A manager ready to serve: the data directory locked, the actor running, the port bound.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    auto_connect: bool,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        tracing::info!(config = %config.summary(), "session-manager starting");
        let data =
            DataDir::open(&config.data_dir)?.with_backup_retention(config.session_backup_retention as usize);
        let (lock, recorded_browser) = ProfileLock::acquire(&data)?;
        // A browser left by a crashed manager still holds our profile: end it now.
        data.reclaim_profile(recorded_browser).await?;
        let idempotency =
            Idempotency::open(&config.data_dir, config.idempotency_ttl()).map_err(StartError::Journal)?;
        let auto_connect = match config.auto_connect {
            AutoConnect::Always => true,
            AutoConnect::Never => false,
            AutoConnect::Saved => data.has_saved_login(),
        };

        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Bind { addr: addr.clone(), source })?;

        let settings = ActorSettings {
            launch: LaunchSettings {
                chromium_path: config.chromium_executable(),
                launch_timeout: config.launch_timeout(),
                request_timeout: Duration::from_secs(30),
            },
            url: config.whatsapp_web_url.clone(),
            page_load_timeout: config.page_load_timeout(),
            send_timeout: config.send_timeout(),
            max_qr_attempts: config.max_qr_attempts,
            takeover_on_conflict: config.takeover_on_conflict,
            pairing_refresh: config.pairing_code_refresh(),
        };
        let metrics = Arc::new(Metrics::default());
        let inbound = Inbound::open(
            &config.data_dir,
            config.inbound_limits(),
            shared_contracts::ADMIN_SESSION,
            metrics.clone(),
        )
        .map_err(|source| StartError::InboundJournal {
            dir: config.data_dir.display().to_string(),
            source,
        })?;
        let session = SessionHandle::spawn(settings, data, lock, metrics, inbound.start());
        let (shutdown_tx, shutting_down) = watch::channel(false);
        let state = AppState {
            session,
            token: Arc::from(config.token()),
            allowed_hosts: config.host_names().into(),
            backup_retention: config.session_backup_retention,
            idempotency: Arc::new(idempotency),
            inbound,
            send_limiter: Arc::new(RateLimiter::new(
                "sends",
                "SEND_RATE_PER_MINUTE",
                config.send_rate_per_minute,
            )),
            connect_limiter: Arc::new(RateLimiter::new(
                "connects",
                "CONNECT_RATE_PER_MINUTE",
                config.connect_rate_per_minute,
            )),
            shutting_down,
        };
        Ok(Self { listener, state, shutdown_tx, auto_connect })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, StartError> {
        self.listener.local_addr().map_err(StartError::Serve)
    }

    pub fn session(&self) -> &SessionHandle {
        &self.state.session
    }

    /// The inbound journal (incoming messages and acks served on `/events`).
    pub fn inbound(&self) -> &Arc<Inbound> {
        &self.state.inbound
    }

    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// Serves until `shutdown` completes, then closes the browser (reaped) and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let session = self.state.session.clone();
        if self.auto_connect {
            let session = session.clone();
            tokio::spawn(async move {
                tracing::info!("connecting at start-up (AUTO_CONNECT)");
                if let Err(e) = session.connect(None).await {
                    tracing::error!(error = %e, "connect at start-up failed");
                }
            });
        }
        let app = routes::router(self.state.clone());
        let shutdown_tx = self.shutdown_tx;
        service_kit::serve(self.listener, app, SERVE_OPTIONS, async move {
            shutdown.await;
            tracing::info!("shutting down: no new requests");
            let _ = shutdown_tx.send(true);
        })
        .await;
        session.shutdown().await;
        tracing::info!("session-manager stopped");
        Ok(())
    }
}

/// Builds the application, prints the listening line, serves until SIGTERM/SIGINT.
pub async fn run(config: Config) -> Result<(), StartError> {
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    // Listening for the signals before saying where it listens: whoever starts it may stop it at once.
    let stop = service_kit::shutdown_signal();
    println!("session-manager listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    app.run_until(stop).await
}
