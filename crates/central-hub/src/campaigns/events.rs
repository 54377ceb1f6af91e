//! Which campaigns changed: the dispatcher and the routes announce a campaign's id after each
//! send or state change; the page's event stream (`GET /api/campaigns/events`) gathers the ids of
//! a short interval and sends each changed campaign's summary once.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::broadcast;

/// The stream sends at most one batch per interval, however fast campaigns progress.
pub const COALESCE: Duration = Duration::from_millis(300);

#[derive(Clone)]
pub struct CampaignEvents {
    tx: broadcast::Sender<i64>,
}

impl Default for CampaignEvents {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self { tx }
    }
}

impl CampaignEvents {
    /// Announces that campaign `id` changed (nobody listening is fine).
    pub fn changed(&self, id: i64) {
        let _ = self.tx.send(id);
    }

    pub fn subscribe(&self) -> Changes {
        Changes { rx: self.tx.subscribe() }
    }
}

/// One listener's view of the changes.
pub struct Changes {
    rx: broadcast::Receiver<i64>,
}

/// What [`Changes::next_batch`] gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    /// These campaigns changed.
    Ids(BTreeSet<i64>),
    /// The listener fell behind: anything may have changed.
    All,
    Closed,
}

impl Changes {
    /// Waits for a change, then gathers the ones of the next [`COALESCE`] interval.
    pub async fn next_batch(&mut self) -> Batch {
        let mut ids = BTreeSet::new();
        match self.rx.recv().await {
            Ok(id) => {
                ids.insert(id);
            }
            Err(broadcast::error::RecvError::Lagged(_)) => return Batch::All,
            Err(broadcast::error::RecvError::Closed) => return Batch::Closed,
        }
        let deadline = tokio::time::Instant::now() + COALESCE;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Batch::Ids(ids),
                Ok(Ok(id)) => {
                    ids.insert(id);
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => return Batch::All,
                Ok(Err(broadcast::error::RecvError::Closed)) => return Batch::Ids(ids),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_of_one_interval_come_as_one_batch() {
        let events = CampaignEvents::default();
        let mut changes = events.subscribe();
        for id in [3, 1, 3, 2] {
            events.changed(id);
        }
        assert_eq!(changes.next_batch().await, Batch::Ids([1, 2, 3].into()));
        for _ in 0..2_000 {
            events.changed(9);
        }
        assert_eq!(changes.next_batch().await, Batch::All, "a listener that fell behind reloads everything");
    }
}
