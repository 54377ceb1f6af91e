//! Counters for `/metrics` (Prometheus text format), updated by the session actor and the routes.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use shared_contracts::SessionState;

#[derive(Debug, Default)]
pub struct Metrics {
    pub qr_generated: AtomicU64,
    pub sends_ok: AtomicU64,
    pub sends_failed: AtomicU64,
    pub reconnects: AtomicU64,
    pub browser_starts: AtomicU64,
    /// Inbound events (incoming messages, acks) journaled.
    pub inbound_events_written: AtomicU64,
    /// Inbound events the page reported again (same message, kind and ack level): not journaled.
    pub inbound_duplicates: AtomicU64,
    /// The inbound journal's size (a gauge).
    pub inbound_journal_bytes: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text. `chromium_pss_bytes` and `manager_rss_bytes` are measured by the caller.
    pub fn render(&self, state: SessionState, chromium_pss_bytes: u64, manager_rss_bytes: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP session_manager_state 1 for the current session state.\n");
        out.push_str("# TYPE session_manager_state gauge\n");
        for s in SessionState::ALL {
            let _ =
                writeln!(out, "session_manager_state{{state=\"{}\"}} {}", s.as_str(), u8::from(s == state));
        }
        let counters = [
            ("session_manager_qr_generated_total", "QR codes shown.", &self.qr_generated),
            ("session_manager_sends_ok_total", "Messages sent.", &self.sends_ok),
            ("session_manager_sends_failed_total", "Sends that failed or timed out.", &self.sends_failed),
            ("session_manager_reconnects_total", "Reconnects after a browser crash.", &self.reconnects),
            ("session_manager_browser_starts_total", "Chromium launches.", &self.browser_starts),
            (
                "session_manager_inbound_events_total",
                "Inbound events (incoming messages, acks) journaled.",
                &self.inbound_events_written,
            ),
            (
                "session_manager_inbound_duplicates_total",
                "Inbound events reported again by the page, not journaled twice.",
                &self.inbound_duplicates,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "session_manager_chromium_pss_bytes",
                "Proportional set size of the Chromium tree.",
                chromium_pss_bytes,
            ),
            ("session_manager_rss_bytes", "Resident set size of the session-manager.", manager_rss_bytes),
            (
                "session_manager_inbound_journal_bytes",
                "Size of the inbound journal file.",
                self.inbound_journal_bytes.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_has_every_series_and_marks_the_current_state() {
        let m = Metrics::default();
        Metrics::inc(&m.sends_ok);
        Metrics::inc(&m.sends_ok);
        let text = m.render(SessionState::Ready, 1234, 99);
        assert!(text.contains("session_manager_state{state=\"READY\"} 1"));
        assert!(text.contains("session_manager_state{state=\"INIT\"} 0"));
        assert!(text.contains("session_manager_sends_ok_total 2"));
        assert!(text.contains("session_manager_chromium_pss_bytes 1234"));
        assert!(text.contains("# TYPE session_manager_qr_generated_total counter"));
        m.inbound_journal_bytes.store(512, Ordering::Relaxed);
        let text = m.render(SessionState::Ready, 1, 1);
        assert!(text.contains("session_manager_inbound_journal_bytes 512"), "{text}");
        assert!(text.contains("session_manager_inbound_events_total 0"), "{text}");
    }
}
