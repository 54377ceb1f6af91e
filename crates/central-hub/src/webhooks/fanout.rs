//! The fan-out: reads the event log (`hub_event`) after its stored position and, in one
//! transaction per batch, queues a delivery for each webhook that wants each event and moves the
//! position. Woken by [`super::WebhookRuntime::event_recorded`] and, as a fallback, every
//! [`POLL`].
//!
//! PostgreSQL hands out `hub_event` numbers before commit, so an event may appear after a later
//! one (and a refused duplicate leaves a number unused for good). Events are fanned out as they
//! appear; the stored position stops below the oldest missing number until it shows up or
//! [`GAP_WAIT`] passes, so a restart re-reads the late ones (a delivery is unique per webhook and
//! event: reading an event twice queues it once). SQLite commits one writer at a time: no gaps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::WebhookRuntime;
use crate::campaigns::now_ms;
use crate::db::{DbError, Store};

/// Events read per transaction.
const BATCH: i64 = 500;
/// Without a wake-up, the log is read this often (events recorded by another hub).
pub const POLL: Duration = Duration::from_millis(250);
/// A missing number older than this is a rolled-back or refused insert, not a late commit.
const GAP_WAIT: Duration = Duration::from_secs(60);
/// The most missing numbers followed at once (beyond, the oldest are given up).
const MAX_GAPS: usize = 10_000;

struct Cursor {
    /// Every event up to here is fanned out (stored).
    position: i64,
    /// The highest event read.
    seen: i64,
    /// Numbers below `seen` not yet read, with when they were first missed.
    gaps: BTreeMap<i64, Instant>,
}

pub async fn run(store: Store, runtime: WebhookRuntime, wake: Arc<Notify>, cancel: CancellationToken) {
    let mut cursor: Option<Cursor> = None;
    loop {
        let wait = match pass(&store, &runtime, &mut cursor).await {
            Ok(true) => continue,
            Ok(false) => POLL,
            Err(e) => {
                tracing::error!(error.message = %e, "webhook fan-out: database failure, retrying in 2 s");
                cursor = None;
                Duration::from_secs(2)
            }
        };
        tokio::select! {
            () = cancel.cancelled() => break,
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One batch; `true` when there may be more to read at once.
async fn pass(store: &Store, runtime: &WebhookRuntime, cursor: &mut Option<Cursor>) -> Result<bool, DbError> {
    let c = match cursor {
        Some(c) => c,
        None => {
            let position = store.fanout_position().await?;
            cursor.insert(Cursor { position, seen: position, gaps: BTreeMap::new() })
        }
    };
    let gap_list: Vec<i64> = c.gaps.keys().copied().take(1_000).collect();
    let late = store.hub_events_at(&gap_list).await?;
    let fresh = store.hub_events_after(c.seen, BATCH).await?;
    if late.is_empty() && fresh.is_empty() && c.gaps.is_empty() {
        return Ok(false);
    }
    let now = Instant::now();
    for event in &late {
        c.gaps.remove(&event.seq);
    }
    for event in &fresh {
        for missing in (c.seen + 1)..event.seq {
            if c.gaps.len() < MAX_GAPS {
                c.gaps.insert(missing, now);
            }
        }
        c.seen = event.seq;
    }
    c.gaps.retain(|seq, since| {
        let keep = since.elapsed() < GAP_WAIT;
        if !keep {
            tracing::debug!(seq, "event log number never committed: skipped");
        }
        keep
    });
    let position = c.gaps.keys().next().map_or(c.seen, |first| first - 1);
    let more = i64::try_from(fresh.len()).unwrap_or(0) == BATCH;
    if late.is_empty() && fresh.is_empty() && position == c.position {
        return Ok(false);
    }
    let webhooks = store.list_webhooks(None).await?;
    let events: Vec<_> = late.into_iter().chain(fresh).collect();
    let queued = store.fan_out(&events, &webhooks, position, now_ms()).await?;
    c.position = position;
    if queued > 0 {
        runtime.deliveries_queued();
    }
    Ok(more)
}
