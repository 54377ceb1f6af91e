//! `session-manager probe`: opens WHATSAPP_WEB_URL in Chromium with a throw-away profile, waits for
//! the bridge's inventory (the build and where each internal was found) and prints it. Never logs
//! in; the browser is reaped and the profile deleted before it returns.

use std::path::PathBuf;
use std::time::Duration;

use shared_contracts::WhatsappInventory;
use tokio::sync::mpsc;

use crate::bridge::{self, BridgeEvent, PageSignal};
use crate::browser::{BrowserHandle, LaunchSettings};
use crate::config::Config;

/// How long the browser may take to close politely before its tree is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Why a probe gave no inventory.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("could not create the throw-away profile {path}: {source}")]
    Profile { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Browser(#[from] crate::browser::BrowserError),
    #[error("WhatsApp Web at {url} did not show its modules within {secs} s (PAGE_LOAD_TIMEOUT_SECS)")]
    NoModules { url: String, secs: u64 },
    #[error("the page went away before the bridge reported ({0})")]
    PageGone(String),
}

/// A temporary directory removed when dropped.
struct TempProfile(PathBuf);

impl TempProfile {
    fn create() -> Result<Self, ProbeError> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let path = std::env::temp_dir().join(format!("session-manager-probe-{}-{nanos}", std::process::id()));
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).map_err(|source| ProbeError::Profile { path: path.clone(), source })?;
        Ok(TempProfile(path))
    }
}

impl Drop for TempProfile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "could not remove the probe's profile");
        }
    }
}

/// Runs the probe; the browser is closed and the profile removed whatever the outcome.
pub async fn probe(config: &Config) -> Result<WhatsappInventory, ProbeError> {
    let profile = TempProfile::create()?;
    let settings = LaunchSettings {
        chromium_path: config.chromium_executable(),
        launch_timeout: config.launch_timeout(),
        request_timeout: Duration::from_secs(30),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<PageSignal, String>>();
    let (exit_tx, cdp_tx, page_tx) = (tx.clone(), tx.clone(), tx);
    let browser = BrowserHandle::launch(
        &settings,
        &profile.0,
        move |status| {
            let _ = exit_tx.send(Err(format!("Chromium exited ({status})")));
        },
        move || {
            let _ = cdp_tx.send(Err("the DevTools connection closed".into()));
        },
    )
    .await?;
    let url = config.whatsapp_web_url.clone();
    let timeout = config.page_load_timeout();
    let outcome = async {
        let _page =
            bridge::open_whatsapp(&browser.browser, &url, settings.request_timeout, timeout, move |signal| {
                let _ = page_tx.send(Ok(signal));
            })
            .await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, rx.recv()).await;
            match next {
                Err(_) => return Err(ProbeError::NoModules { url: url.clone(), secs: timeout.as_secs() }),
                Ok(None) => return Err(ProbeError::PageGone("no more signals".into())),
                Ok(Some(Err(reason))) => return Err(ProbeError::PageGone(reason)),
                Ok(Some(Ok(PageSignal::Bridge(BridgeEvent::Inventory { build, internals })))) => {
                    return Ok(WhatsappInventory::new(build, internals));
                }
                Ok(Some(Ok(PageSignal::TargetCrashed))) => {
                    return Err(ProbeError::PageGone("the page crashed".into()));
                }
                Ok(Some(Ok(PageSignal::TargetDestroyed))) => {
                    return Err(ProbeError::PageGone("the tab was closed".into()));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }
    .await;
    browser.shutdown(CLOSE_GRACE).await;
    drop(profile);
    outcome
}

/// The inventory as a table: one line per internal, the missing ones marked.
pub fn table(inventory: &WhatsappInventory) -> String {
    let mut out = format!("{}\n\n", inventory.summary);
    out.push_str(&format!("{:<20} {:<9} {:<9} {}\n", "INTERNAL", "GROUP", "NEEDED", "LOCATION"));
    for internal in &inventory.internals {
        let needed = if internal.required { "required" } else { "optional" };
        let location = match &internal.location {
            Some(location) => location.clone(),
            None => format!("MISSING (tried {})", internal.tried.join(", ")),
        };
        out.push_str(&format!("{:<20} {:<9} {:<9} {location}\n", internal.name, internal.group, needed));
    }
    out
}

/// Runs the probe and prints it; the process exit code: 0 compatible, 1 incompatible, 2 no answer.
pub async fn run(config: &Config, json: bool) -> u8 {
    match probe(config).await {
        Ok(inventory) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&inventory).unwrap_or_default());
            } else {
                print!("{}", table(&inventory));
            }
            if inventory.compatible { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("session-manager probe: {e}");
            2
        }
    }
}
