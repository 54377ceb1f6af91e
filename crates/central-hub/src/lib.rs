//! central-hub: the authenticated gateway in front of the session-manager.
//!
//! JWT logins against users in a SQL store, admin and client routes proxied to the
//! session-manager through a typed client, a status fan-out from its event stream, health and
//! metrics. See `docs/architecture.md` and `docs/contracts.md`.

pub mod auth;
pub mod campaigns;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod feed;
pub mod metrics;
pub mod middleware;
pub mod request_context;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod users_cli;

use std::io::Write;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use startup::{Application, StartupError};

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// reqwest is built without a default TLS provider: install ring once (a second call is a no-op).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs the server until SIGINT/SIGTERM: logs the effective config, prints generated admin
/// credentials once, then the `central-hub listening on http://ADDR` line on stdout.
pub async fn run(config: config::Config) -> Result<(), StartupError> {
    install_crypto_provider();
    tracing::info!(config = ?config, "effective configuration");
    let app = Application::build(config).await?;
    let mut stdout = std::io::stdout().lock();
    if let Some(admin) = app.generated_admin() {
        let _ = writeln!(stdout, "central-hub: no user existed, so an admin was created:");
        let _ = writeln!(stdout, "  email:    {}", admin.email);
        let _ = writeln!(stdout, "  password: {}", admin.password);
        let _ = writeln!(
            stdout,
            "  (shown once: store it now; change it with `central-hub users passwd --email {}`)",
            admin.email
        );
    }
    let _ = writeln!(stdout, "central-hub listening on http://{}", app.local_addr());
    let _ = stdout.flush();
    drop(stdout);
    app.run_until_stopped(shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error.message = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error.message = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
