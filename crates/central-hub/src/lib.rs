//! central-hub: the authenticated gateway in front of the session-manager.
//!
//! JWT logins against users in a SQL store, admin and client routes proxied to the
//! session-manager through a typed client, a status fan-out from its event stream (also served as
//! socket.io events), health and metrics. See `docs/architecture.md` and `docs/contracts.md`.

pub mod auth;
pub mod campaigns;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod feed;
pub mod inbound;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod request_context;
pub mod routes;
pub mod socketio;
pub mod sse;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod users_cli;
pub mod webhooks;

use std::io::Write;

pub use startup::{Application, StartupError};

/// Runs the server until SIGINT/SIGTERM: logs the effective config, prints generated admin
/// credentials once, then the `central-hub listening on http://ADDR` line on stdout.
pub async fn run(config: config::Config) -> Result<(), StartupError> {
    client::install_crypto_provider();
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
    // Listening for the signals before saying where it listens: whoever starts it may stop it at once.
    let stop = service_kit::shutdown_signal();
    let _ = writeln!(stdout, "central-hub listening on http://{}", app.local_addr());
    let _ = stdout.flush();
    drop(stdout);
    app.run_until_stopped(stop).await
}
