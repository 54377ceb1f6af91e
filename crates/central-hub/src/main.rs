use std::process::ExitCode;

use central_hub::cli::{Cli, Command};
use central_hub::config::Config;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    central_hub::telemetry::init();
    let result = match cli.command {
        Some(Command::Users(args)) => central_hub::users_cli::run(args).await.map_err(|e| e.to_string()),
        Some(Command::Serve(args)) => serve(*args).await,
        None => serve(cli.serve).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("central-hub: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: central_hub::config::ServeArgs) -> Result<(), String> {
    let config = Config::from_args(args).map_err(|e| e.to_string())?;
    central_hub::run(config).await.map_err(|e| e.to_string())
}
