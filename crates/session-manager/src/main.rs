//! session-manager binary: parse the configuration, set up logs, run.

use clap::Parser;
use session_manager::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    session_manager::telemetry::init();
    match session_manager::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "session-manager failed");
            eprintln!("session-manager: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
