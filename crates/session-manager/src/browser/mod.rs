//! Chromium: launch with an explicit flag list, the CDP connection, the profile directory and its
//! lock, and process hygiene (nothing of ours is ever left running).

mod args;
mod devtools_pipe;
mod devtools_relay;
mod launch;
pub mod process;
pub mod profile;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use shared_contracts::ErrorCode;

pub use args::chromium_args;
pub use launch::{BrowserHandle, LaunchSettings};

/// Why the browser could not be brought up or driven.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("Chromium was not found at {path}")]
    NotFound { path: PathBuf },

    #[error("Chromium at {path} could not be started: {source}")]
    Spawn { path: PathBuf, source: std::io::Error },

    #[error("Chromium did not answer on its DevTools pipe within {} s", timeout.as_secs())]
    LaunchTimeout { timeout: Duration, stderr_tail: String },

    #[error("Chromium exited at once ({status}): {stderr_tail}")]
    ExitedAtOnce { status: String, stderr_tail: String },

    #[error("connecting to Chromium's DevTools at {url} failed: {reason}")]
    Connect { url: String, reason: String },

    #[error("the browser step '{step}' failed: {reason}")]
    Cdp { step: &'static str, reason: String },

    #[error("the browser step '{step}' did not answer within {} s", timeout.as_secs())]
    CdpTimeout { step: &'static str, timeout: Duration },

    #[error("WhatsApp Web at {url} did not load: {reason}")]
    PageLoad { url: String, reason: String },

    #[error("WhatsApp Web at {url} did not load within {} s", timeout.as_secs())]
    PageLoadTimeout { url: String, timeout: Duration },

    #[error("the data directory {dir} is in use by another session-manager (pid {holder})")]
    ProfileLocked { dir: PathBuf, holder: String },

    #[error("{step} failed for {path}: {source}")]
    Io { step: &'static str, path: PathBuf, source: std::io::Error },
}

impl BrowserError {
    pub fn code(&self) -> ErrorCode {
        match self {
            BrowserError::NotFound { .. }
            | BrowserError::Spawn { .. }
            | BrowserError::LaunchTimeout { .. }
            | BrowserError::ExitedAtOnce { .. } => ErrorCode::BrowserLaunchFailed,
            BrowserError::PageLoad { .. } | BrowserError::PageLoadTimeout { .. } => ErrorCode::PageLoadFailed,
            BrowserError::ProfileLocked { .. } => ErrorCode::ProfileLocked,
            BrowserError::Connect { .. }
            | BrowserError::Cdp { .. }
            | BrowserError::CdpTimeout { .. }
            | BrowserError::Io { .. } => ErrorCode::ConnectionError,
        }
    }

    pub fn hint(&self) -> String {
        match self {
            BrowserError::NotFound { .. } => {
                "Install Chromium (apt-get install chromium-headless-shell chromium) or set CHROMIUM_PATH to its executable".into()
            }
            BrowserError::Spawn { .. } => "Check that CHROMIUM_PATH points at an executable Chromium".into(),
            BrowserError::LaunchTimeout { .. } => {
                "Check the host's load and memory, or raise BROWSER_LAUNCH_TIMEOUT_SECS".into()
            }
            BrowserError::ExitedAtOnce { .. } => {
                "Read the stderr tail in `detail`; running Chromium by hand with the same flags shows the cause"
                    .into()
            }
            BrowserError::Connect { .. } | BrowserError::Cdp { .. } | BrowserError::CdpTimeout { .. } => {
                "POST /connect to retry; if it persists, restart the session-manager".into()
            }
            BrowserError::PageLoad { .. } | BrowserError::PageLoadTimeout { .. } => {
                "Check WHATSAPP_WEB_URL and the network from this host, then POST /connect".into()
            }
            BrowserError::ProfileLocked { .. } => {
                "Stop the other session-manager, or give this one its own SESSION_MANAGER_DATA_DIR".into()
            }
            BrowserError::Io { .. } => "Check the data directory's permissions and free space".into(),
        }
    }

    pub fn detail(&self) -> Value {
        match self {
            BrowserError::NotFound { path } => json!({ "path": path }),
            BrowserError::Spawn { path, source } => json!({ "path": path, "cause": source.to_string() }),
            BrowserError::LaunchTimeout { timeout, stderr_tail } => {
                json!({ "timeout_secs": timeout.as_secs(), "stderr_tail": stderr_tail })
            }
            BrowserError::ExitedAtOnce { status, stderr_tail } => {
                json!({ "exit": status, "stderr_tail": stderr_tail })
            }
            BrowserError::Connect { url, reason } => json!({ "url": url, "cause": reason }),
            BrowserError::Cdp { step, reason } => json!({ "step": step, "cause": reason }),
            BrowserError::CdpTimeout { step, timeout } => {
                json!({ "step": step, "timeout_secs": timeout.as_secs() })
            }
            BrowserError::PageLoad { url, reason } => json!({ "url": url, "cause": reason }),
            BrowserError::PageLoadTimeout { url, timeout } => {
                json!({ "url": url, "timeout_secs": timeout.as_secs() })
            }
            BrowserError::ProfileLocked { dir, holder } => json!({ "dir": dir, "holder_pid": holder }),
            BrowserError::Io { step, path, source } => {
                json!({ "step": step, "path": path, "cause": source.to_string() })
            }
        }
    }
}

/// Runs one CDP call with a deadline, naming the step in the error.
pub async fn cdp<T, E: std::fmt::Display>(
    step: &'static str,
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, BrowserError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(BrowserError::Cdp { step, reason: e.to_string() }),
        Err(_) => Err(BrowserError::CdpTimeout { step, timeout }),
    }
}
