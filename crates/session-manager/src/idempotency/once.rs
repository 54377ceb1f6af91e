//! Running a send at most once per key: the first request runs it (journaling `pending` through its
//! [`Ticket`], then the answer or the key released), the others get its answer as a replay.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use super::{Answer, Claim, Idempotency, Scope, Settled, unix_secs};
use crate::error::Error;

/// Handed to a send: it journals `pending` right before the page is asked (nothing without a key).
pub struct Ticket(Option<(Arc<Idempotency>, Scope)>);

impl Ticket {
    /// A send without an `Idempotency-Key`.
    pub fn untracked() -> Self {
        Ticket(None)
    }

    /// Journals that the send is about to be handed to the page.
    pub async fn pending(&self) {
        if let Some((store, scope)) = &self.0 {
            store.pending(scope).await;
        }
    }
}

impl Idempotency {
    /// Runs `send` at most once for `scope`: the first request runs it, the others (later, or
    /// waiting meanwhile) get its answer, `true` meaning replayed. A send refused before the page
    /// was asked (`Err`) is not remembered.
    ///
    /// The send runs in its own task: a caller that goes away mid-send (a hub killed, a timeout)
    /// must not cancel it half-way, or the page sends while the key is left unanswered and the
    /// caller's retry with the same key sends a second time.
    pub async fn once<F, Fut>(
        self: &Arc<Self>,
        scope: Scope,
        fingerprint: &str,
        send: F,
    ) -> Result<(Answer, bool), Error>
    where
        F: FnOnce(Ticket) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Answer, Error>> + Send + 'static,
    {
        let cell = match self.claim(&scope, fingerprint) {
            Claim::Cell(cell) => cell,
            Claim::Reused => return Err(Error::IdempotencyKeyReused { key: scope.key }),
        };
        let ran = Arc::new(AtomicBool::new(false));
        let job = {
            let (store, cell, scope, ran) = (self.clone(), cell.clone(), scope.clone(), ran.clone());
            tokio::spawn(async move {
                cell.get_or_try_init(|| {
                    ran.store(true, Ordering::Relaxed);
                    store.settle(&scope, send)
                })
                .await
                .cloned()
            })
        };
        let result = job.await.unwrap_or(Err(Error::ActorGone));
        match result {
            Ok(Settled { answer, .. }) => Ok((answer, !ran.load(Ordering::Relaxed))),
            Err(e) => {
                self.forget_unanswered(&scope, cell);
                Err(e)
            }
        }
    }

    /// Runs the send and journals its outcome: the answer, or the key released.
    async fn settle<F, Fut>(self: &Arc<Self>, scope: &Scope, send: F) -> Result<Settled, Error>
    where
        F: FnOnce(Ticket) -> Fut,
        Fut: Future<Output = Result<Answer, Error>>,
    {
        match send(Ticket(Some((self.clone(), scope.clone())))).await {
            Ok(answer) => {
                let settled = Settled { answer, at: unix_secs(SystemTime::now()) };
                self.answered(scope, &settled).await;
                Ok(settled)
            }
            Err(e) => {
                self.released(scope).await;
                Err(e)
            }
        }
    }
}
