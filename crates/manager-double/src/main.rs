//! `manager-double`: the session-manager contract double of the hub's tests, as a process, for
//! `scripts/bench-central-hub`. Not a session-manager: it answers the HTTP contract from memory.
//!
//! `MANAGER_DOUBLE_PORT` (default 0), `MANAGER_DOUBLE_MODE` (`normal` or `no-events`: no `/events`,
//! so the hub must ask `/status` for every poll), `MANAGER_DOUBLE_STATE` (`ready`, the default, or
//! `qr`: QR_REQUIRED with a QR data URL of `MANAGER_DOUBLE_QR_BYTES`, default 6000, like a real
//! PNG's). Prints `manager-double listening on http://ADDR`;
//! `GET /__double/counts` answers the requests received per route.

use std::io::Write;

use manager_double::{ManagerDouble, Mode};
use shared_contracts::SessionState;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let port = match std::env::var("MANAGER_DOUBLE_PORT").map(|p| p.parse::<u16>()) {
        Err(_) => 0,
        Ok(Ok(port)) => port,
        Ok(Err(e)) => {
            eprintln!("manager-double: MANAGER_DOUBLE_PORT is not a port: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mode = match std::env::var("MANAGER_DOUBLE_MODE").as_deref() {
        Ok("no-events") => Mode::NoEvents,
        _ => Mode::Normal,
    };
    let double = ManagerDouble::spawn_on(mode, port).await;
    if std::env::var("MANAGER_DOUBLE_STATE").as_deref() == Ok("qr") {
        let size = std::env::var("MANAGER_DOUBLE_QR_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(6000);
        let mut status = manager_double::status_in(SessionState::QrRequired);
        if let Some(qr) = status.qr.as_mut() {
            qr.base64 = format!("data:image/png;base64,{}", "A".repeat(size));
        }
        double.set_status(status);
    } else {
        double.set_state(SessionState::Ready);
    }
    println!("manager-double listening on {}", double.url);
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
