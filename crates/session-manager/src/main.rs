//! session-manager binary: parse the configuration, set up logs, run.

use clap::Parser;
use session_manager::config::{Command, Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    session_manager::telemetry::init();
    if let Some(Command::Probe { json }) = config.command {
        return std::process::ExitCode::from(session_manager::probe::run(&config, json).await);
    }
    match session_manager::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "session-manager failed");
            eprintln!("session-manager: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
