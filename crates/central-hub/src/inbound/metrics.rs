//! The inbound follower's counters, rendered with the hub's other metrics at `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// What applying an event came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Message,
    Ack,
    /// An ack kept until its send is stored.
    HeldAck,
    /// Already applied (a replay).
    Duplicate,
}

#[derive(Debug, Default)]
pub struct InboundMetrics {
    messages: AtomicU64,
    acks: AtomicU64,
    held_acks: AtomicU64,
    duplicates: AtomicU64,
    unreadable: AtomicU64,
    failures: AtomicU64,
    gaps: AtomicU64,
    reconnects: AtomicU64,
    last_seq: AtomicU64,
    /// Milliseconds between the manager journaling the last applied event and the hub applying it.
    lag_ms: AtomicI64,
}

impl InboundMetrics {
    pub fn applied(&self, outcome: Outcome, seq: u64, lag_ms: i64) {
        let counter = match outcome {
            Outcome::Duplicate => &self.duplicates,
            Outcome::Message => &self.messages,
            Outcome::Ack => &self.acks,
            Outcome::HeldAck => &self.held_acks,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.last_seq.fetch_max(seq, Ordering::Relaxed);
        self.lag_ms.store(lag_ms.max(0), Ordering::Relaxed);
    }

    /// An `inbound` event whose data is not an `InboundEvent`.
    pub fn unreadable(&self) {
        self.unreadable.fetch_add(1, Ordering::Relaxed);
    }

    /// An attempt to apply an event that failed (it is retried).
    pub fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The manager said events were dropped by its retention before the hub read them.
    pub fn gap(&self) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
    }

    /// The stream to the manager was opened again after it had been live.
    pub fn reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Events applied with `outcome` so far.
    pub fn count(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Message => &self.messages,
            Outcome::Ack => &self.acks,
            Outcome::HeldAck => &self.held_acks,
            Outcome::Duplicate => &self.duplicates,
        }
        .load(Ordering::Relaxed)
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Relaxed)
    }

    pub fn render(&self, out: &mut String) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP central_hub_inbound_events_total Inbound events from the session-manager by outcome."
        );
        let _ = writeln!(out, "# TYPE central_hub_inbound_events_total counter");
        for (outcome, counter) in [
            ("message", &self.messages),
            ("ack", &self.acks),
            ("held_ack", &self.held_acks),
            ("duplicate", &self.duplicates),
            ("unreadable", &self.unreadable),
        ] {
            let _ =
                writeln!(out, "central_hub_inbound_events_total{{outcome=\"{outcome}\"}} {}", load(counter));
        }
        for (name, help, counter) in [
            (
                "inbound_apply_failures_total",
                "Failed attempts to store an inbound event (retried).",
                &self.failures,
            ),
            (
                "inbound_gaps_total",
                "Gaps the session-manager reported (events dropped before the hub read them).",
                &self.gaps,
            ),
            (
                "manager_stream_reconnects_total",
                "Times the session-manager event stream was reopened.",
                &self.reconnects,
            ),
        ] {
            let _ = writeln!(out, "# HELP central_hub_{name} {help}");
            let _ = writeln!(out, "# TYPE central_hub_{name} counter");
            let _ = writeln!(out, "central_hub_{name} {}", load(counter));
        }
        let _ = writeln!(out, "# HELP central_hub_inbound_last_seq The last inbound sequence applied.");
        let _ = writeln!(out, "# TYPE central_hub_inbound_last_seq gauge");
        let _ = writeln!(out, "central_hub_inbound_last_seq {}", load(&self.last_seq));
        let _ = writeln!(
            out,
            "# HELP central_hub_inbound_lag_ms Milliseconds from the manager journaling the last event to the hub applying it."
        );
        let _ = writeln!(out, "# TYPE central_hub_inbound_lag_ms gauge");
        let _ = writeln!(out, "central_hub_inbound_lag_ms {}", self.lag_ms.load(Ordering::Relaxed));
    }
}
