//! The webhook counters of `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::outbox::{Finished, Outcome};

#[derive(Debug, Default)]
pub struct WebhookMetrics {
    delivered: AtomicU64,
    failed: AtomicU64,
    dead: AtomicU64,
    queue_depth: AtomicI64,
}

impl WebhookMetrics {
    /// Counts finished attempts: delivered, failed (to be retried) or dead.
    pub fn count(&self, finished: &[Finished]) {
        for f in finished {
            let counter = match f.outcome {
                Outcome::Delivered { .. } => &self.delivered,
                Outcome::Retry { .. } => &self.failed,
                Outcome::Dead { .. } => &self.dead,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn set_queue_depth(&self, depth: i64) {
        self.queue_depth.store(depth, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP central_hub_webhook_deliveries_total Webhook delivery attempts by outcome."
        );
        let _ = writeln!(out, "# TYPE central_hub_webhook_deliveries_total counter");
        for (outcome, counter) in [("ok", &self.delivered), ("failed", &self.failed), ("dead", &self.dead)] {
            let _ = writeln!(
                out,
                "central_hub_webhook_deliveries_total{{outcome=\"{outcome}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP central_hub_webhook_queue_depth Pending webhook deliveries (read every second)."
        );
        let _ = writeln!(out, "# TYPE central_hub_webhook_queue_depth gauge");
        let _ = writeln!(out, "central_hub_webhook_queue_depth {}", self.queue_depth.load(Ordering::Relaxed));
        out
    }
}
