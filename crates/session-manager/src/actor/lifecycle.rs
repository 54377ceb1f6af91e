//! The browser under the actor: launching Chromium, opening WhatsApp Web in its tab with every
//! browser and page signal wired to the actor's channel (tagged with the launch's generation), and
//! closing it.

use std::time::Duration;

use tokio::time::Instant;

use super::{Actor, Signal, SignalKind};
use crate::bridge;
use crate::browser::{BrowserError, BrowserHandle};
use crate::metrics::Metrics;

/// How long a polite browser close may take before the tree is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

impl Actor {
    pub(super) fn since_launch_ms(&self) -> u64 {
        self.launched_at.map_or(0, |at| at.elapsed().as_millis() as u64)
    }

    pub(super) async fn launch(&mut self) -> Result<(), BrowserError> {
        self.close_browser().await;
        self.launched_at = Some(std::time::Instant::now());
        self.generation += 1;
        let generation = self.generation;
        self.data.reclaim_profile(None).await?;
        // A Chromium killed by a signal before it answered (a crash at start, seen under heavy load)
        // is launched once more; one that exits with a status (a flag it refuses, a missing
        // library) would only fail again.
        let mut crashed_before = false;
        let browser = loop {
            let exit_tx = self.signal_tx.clone();
            let cdp_tx = self.signal_tx.clone();
            let launched = BrowserHandle::launch(
                &self.settings.launch,
                &self.data.profile(),
                move |status| {
                    let _ = exit_tx.send(Signal { generation, kind: SignalKind::ProcessExited(status) });
                },
                move || {
                    let _ = cdp_tx.send(Signal { generation, kind: SignalKind::CdpClosed });
                },
            )
            .await;
            match launched {
                Err(BrowserError::ExitedAtOnce { status, stderr_tail })
                    if !crashed_before && status.starts_with("signal") =>
                {
                    tracing::warn!(%status, %stderr_tail, "Chromium crashed at start: launching it once more");
                    crashed_before = true;
                    self.data.reclaim_profile(None).await?;
                }
                other => break other?,
            }
        };
        Metrics::inc(&self.metrics.browser_starts);
        self.lock.record_browser(u32::try_from(browser.pid()).ok());
        let page_tx = self.signal_tx.clone();
        let opened = bridge::open_whatsapp(
            &browser.browser,
            &self.settings.url,
            self.settings.launch.request_timeout,
            self.settings.page_load_timeout,
            move |signal| {
                let _ = page_tx.send(Signal { generation, kind: SignalKind::Page(signal) });
            },
        )
        .await;
        self.browser = Some(browser);
        match opened {
            Ok(page) => {
                tracing::debug!(since_launch_ms = self.since_launch_ms(), "WhatsApp Web opening");
                self.page = Some(page);
                self.load_deadline = Some(Instant::now() + self.settings.page_load_timeout);
                Ok(())
            }
            Err(e) => {
                self.close_browser().await;
                Err(e)
            }
        }
    }

    pub(super) async fn close_browser(&mut self) {
        self.generation += 1;
        self.page = None;
        self.load_deadline = None;
        self.pairing_refresh_at = None;
        if let Some(browser) = self.browser.take() {
            let tail = browser.stderr_tail();
            if !tail.is_empty() {
                tracing::debug!(stderr_tail = %tail, "Chromium stderr before close");
            }
            browser.shutdown(CLOSE_GRACE).await;
            self.lock.record_browser(None);
        }
    }
}
