//! The dispatcher: one task per hub that sends running campaigns through the session, one message
//! at a time, when the session's pacer allows, only while the session is READY (it follows the
//! hub's status feed: pauses every running campaign when the session leaves READY and resumes them
//! when it is back). Each send carries the Idempotency-Key `campaign:<id>:recipient:<id>`; a
//! recipient is held with a lease, so a hub that dies mid-send leaves it to be sent again with the
//! same key, and the manager's journal answers instead of sending twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared_contracts::{ClienteId, ErrorCode, SendRequest, SessionState};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::events::CampaignEvents;
use super::pacer::{DAY_MS, Decision, Pace, Pacer, SendWindow, WaitReason};
use super::queue::Claimed;
use super::store::Campaign;
use super::{CampaignState, PauseReason, now_ms};
use crate::client::{ClientError, SessionManagerClient};
use crate::config::DispatchSettings;
use crate::db::{AuditEntry, Backend, DbError, Store};
use crate::feed::StatusFeed;
use crate::inbound::OutgoingMessage;

/// Transient failures are retried this many times (so a recipient is tried at most 4 times).
pub const MAX_RETRIES: i64 = 3;
/// This many failed sends in a row pause the campaign.
pub const MAX_CONSECUTIVE_FAILURES: i64 = 5;
/// With nothing to do, the dispatcher looks again this often (campaigns started on another hub,
/// windows that open).
const IDLE: Duration = Duration::from_secs(1);
/// The session must be out of READY this long before campaigns are paused (a hub that just
/// started has not heard from the manager yet).
const NOT_READY_GRACE: Duration = Duration::from_secs(3);

/// What routes use to talk to the dispatcher.
#[derive(Clone)]
pub struct CampaignRuntime {
    pub settings: DispatchSettings,
    pub events: CampaignEvents,
    /// Wakes the dispatcher (a campaign was started or resumed).
    pub nudge: Arc<Notify>,
}

pub struct Dispatcher {
    store: Store,
    manager: SessionManagerClient,
    feed: StatusFeed,
    runtime: CampaignRuntime,
    owner: String,
    pacer: Pacer,
    not_ready_since: Option<Instant>,
}

/// How a failed send is handled.
enum Failure {
    /// The recipient cannot receive it (unknown number, invalid): failed, not the session's fault.
    Recipient,
    /// Failed for good, counted against the campaign.
    Final,
    /// Back in the queue at this time without using an attempt (rate limit, session not ready).
    Later(i64),
    /// Retried with back-off while attempts remain.
    Transient,
}

fn classify(error: &ClientError, now: i64) -> Failure {
    match error.code() {
        ErrorCode::NumberNotOnWhatsapp | ErrorCode::ValidationError => Failure::Recipient,
        ErrorCode::IdempotencyKeyReused => Failure::Final,
        ErrorCode::RateLimited => {
            let secs = i64::try_from(error.retry_after().unwrap_or(60)).unwrap_or(60);
            Failure::Later(now + secs * 1_000)
        }
        ErrorCode::SessionNotReady => Failure::Later(now + 2_000),
        _ => Failure::Transient,
    }
}

impl Dispatcher {
    pub fn spawn(
        store: Store,
        manager: SessionManagerClient,
        feed: StatusFeed,
        runtime: CampaignRuntime,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        let owner = format!("hub-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let dispatcher =
            Dispatcher { store, manager, feed, runtime, owner, pacer: Pacer::new(), not_ready_since: None };
        tokio::spawn(dispatcher.run(cancel))
    }

    async fn run(mut self, cancel: CancellationToken) {
        if self.store.backend() == Backend::Sqlite {
            // SQLite serves one hub: the leases of its previous run are nobody's now.
            match self.store.expire_leases().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    recipients = n,
                    "resending the campaign messages a previous run left in flight (same idempotency keys)"
                ),
                Err(e) => {
                    tracing::error!(error.message = %e, "could not take over the previous run's leases")
                }
            }
        }
        tracing::info!(owner = %self.owner, "campaign dispatcher started");
        let mut status = self.feed.subscribe();
        loop {
            let wait = match self.tick().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error.message = %e, "campaign dispatcher: database failure, retrying in 2 s");
                    Duration::from_secs(2)
                }
            };
            if wait.is_zero() {
                if cancel.is_cancelled() {
                    break;
                }
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                () = self.runtime.nudge.notified() => {}
                changed = status.changed() => if changed.is_err() { tokio::time::sleep(wait).await },
            }
        }
        tracing::info!("campaign dispatcher stopped");
    }

    /// The session's state as the feed last saw it (`None`: the hub is not hearing from the manager).
    fn session_state(&self) -> Option<SessionState> {
        self.feed.live_status().map(|s| s.body.state)
    }

    /// One round: follow the session, lift pauses whose cause is gone, send at most one message.
    /// Returns how long to wait before the next round.
    async fn tick(&mut self) -> Result<Duration, DbError> {
        let state = self.session_state();
        if state != Some(SessionState::Ready) {
            let since = *self.not_ready_since.get_or_insert_with(Instant::now);
            if since.elapsed() < NOT_READY_GRACE {
                return Ok(NOT_READY_GRACE.saturating_sub(since.elapsed()));
            }
            let detail = match state {
                Some(s) => format!("the session is {}", s.as_str()),
                None => "the hub is not receiving the session-manager's status".to_owned(),
            };
            for c in self.store.campaigns_in_state(CampaignState::Running).await? {
                self.pause(&c, PauseReason::SessionNotReady, detail.clone()).await?;
            }
            return Ok(IDLE);
        }
        self.not_ready_since = None;
        let now = now_ms();
        self.refresh_history(now).await?;
        for c in self.store.campaigns_in_state(CampaignState::Paused).await? {
            let Some(reason) = c.pause_reason.filter(|r| r.is_automatic()) else { continue };
            let lifted = match reason {
                PauseReason::SessionNotReady => true,
                PauseReason::OutsideWindow | PauseReason::DailyCap => {
                    let (pace, window) = self.limits(&c);
                    window.as_ref().is_ok_and(|w| {
                        !matches!(
                            self.pacer.decide(now, &pace, w),
                            Decision::Wait { reason: WaitReason::OutsideWindow | WaitReason::DailyCap, .. }
                        )
                    })
                }
                _ => false,
            };
            if lifted {
                self.resume(&c, reason).await?;
            }
        }
        let mut wait = IDLE;
        for c in self.store.campaigns_in_state(CampaignState::Running).await? {
            if c.instance != super::DEFAULT_INSTANCE {
                continue;
            }
            let (pace, window) = self.limits(&c);
            let window = match window {
                Ok(w) => w,
                Err(reason) => {
                    tracing::error!(campaign = c.id, %reason, "campaign has an unusable send window");
                    continue;
                }
            };
            match self.pacer.decide(now, &pace, &window) {
                Decision::Wait { reason: WaitReason::OutsideWindow, until_ms } => {
                    let detail = format!("the window opens at {}", rfc3339(until_ms));
                    self.pause(&c, PauseReason::OutsideWindow, detail).await?;
                }
                Decision::Wait { reason: WaitReason::DailyCap, until_ms } => {
                    let detail = format!("the next send fits at {}", rfc3339(until_ms));
                    self.pause(&c, PauseReason::DailyCap, detail).await?;
                }
                Decision::Wait { until_ms, .. } => wait = wait.min(ms(until_ms - now)),
                Decision::Now => {
                    let lease = i64::try_from(self.runtime.settings.lease.as_millis()).unwrap_or(i64::MAX);
                    match self.store.claim_recipient(c.id, &self.owner, now, lease).await? {
                        Some(claimed) => {
                            self.send(&c, claimed).await?;
                            return Ok(Duration::ZERO);
                        }
                        None => {
                            if let Some(done) = self.store.complete_if_done(c.id).await? {
                                self.audit(&done, "campaign.complete", "ok", None).await;
                                self.runtime.events.changed(c.id);
                            } else if let Some(due) = self.store.next_due_ms(c.id).await? {
                                wait = wait.min(ms(due - now).max(Duration::from_millis(50)));
                            }
                        }
                    }
                }
            }
        }
        Ok(wait)
    }

    /// The pacer counts every hub's sends: reloaded from the database when a cap applies.
    async fn refresh_history(&mut self, now: i64) -> Result<(), DbError> {
        let fastest = self.runtime.settings.fastest;
        if fastest.max_per_hour > 0 || fastest.max_per_day > 0 || fastest.min_delay_ms > 0 {
            let sends = self.store.sends_since(now - DAY_MS).await?;
            self.pacer.set_history(sends);
        }
        Ok(())
    }

    fn limits(&self, c: &Campaign) -> (Pace, Result<SendWindow, String>) {
        let pace = c.pace.within(&self.runtime.settings.fastest);
        (pace, SendWindow::new(&c.time_zone, c.window_start_min, c.window_end_min))
    }

    async fn send(&mut self, c: &Campaign, claimed: Claimed) -> Result<(), DbError> {
        let key = claimed.idempotency_key();
        let request = SendRequest {
            cliente_id: ClienteId::try_from(c.cliente_id).ok(),
            to: claimed.phone.clone(),
            message: claimed.rendered.clone(),
        };
        let result = self.manager.send_message(&request, Some(&key)).await;
        let now = now_ms();
        let failure = match result {
            Ok((answer, replayed)) => {
                self.pacer.record_send(now, rand::random::<f64>());
                let sent = OutgoingMessage {
                    instance: &c.instance,
                    whatsapp_id: &answer.data.message_id,
                    phone: claimed.phone.as_str(),
                    cliente_id: c.cliente_id,
                    campaign_id: Some(c.id),
                    text: claimed.rendered.as_str(),
                    timestamp_ms: answer.data.timestamp,
                };
                if !self.store.mark_sent(&claimed, &self.owner, &sent, now).await? {
                    tracing::warn!(key = %key, "the lease was taken over before the send was recorded");
                }
                if replayed.is_some() {
                    tracing::info!(key = %key, "the manager answered from its journal: not sent twice");
                }
                if c.consecutive_failures > 0 {
                    // Ends the run of failures (the round reads the campaign again).
                    self.store.note_send_outcome(c.id, None).await?;
                }
                self.runtime.events.changed(c.id);
                return Ok(());
            }
            Err(e) => e,
        };
        let code = failure.code().as_str();
        let detail = failure.to_string();
        tracing::warn!(key = %key, code, error.message = %detail, attempt = claimed.attempts, "campaign send failed");
        let kind = classify(&failure, now);
        let refund = matches!(kind, Failure::Later(_));
        let (retry_at, counted, stored_code, stored_detail) = match kind {
            Failure::Recipient => (None, false, code, detail.clone()),
            Failure::Final => (None, true, code, detail.clone()),
            Failure::Later(at) => {
                if failure.code() == ErrorCode::RateLimited {
                    self.pacer.hold(at);
                }
                (Some(at), false, code, detail.clone())
            }
            Failure::Transient if claimed.attempts <= MAX_RETRIES => {
                let base = i64::try_from(self.runtime.settings.retry_base.as_millis()).unwrap_or(2_000);
                let backoff = base.saturating_mul(1 << (claimed.attempts - 1).clamp(0, 10));
                (Some(now + backoff), true, code, detail.clone())
            }
            Failure::Transient => {
                let why = format!("{code} after {} attempts: {detail}", claimed.attempts);
                (None, true, "ATTEMPTS_EXHAUSTED", why)
            }
        };
        self.store.mark_unsent(&claimed, &self.owner, stored_code, &stored_detail, retry_at, refund).await?;
        if counted {
            let run = self.store.note_send_outcome(c.id, Some(&format!("{code}: {detail}"))).await?;
            if run >= MAX_CONSECUTIVE_FAILURES {
                let why = format!("{run} sends in a row failed; the last: {code}: {detail}");
                self.pause(c, PauseReason::ConsecutiveFailures, why).await?;
            }
        }
        self.runtime.events.changed(c.id);
        Ok(())
    }

    async fn pause(&self, c: &Campaign, reason: PauseReason, detail: String) -> Result<(), DbError> {
        let from = [CampaignState::Running];
        let paused = self
            .store
            .transition_campaign(c.id, &from, CampaignState::Paused, Some((reason, Some(detail.clone()))))
            .await?;
        if let Some(paused) = paused {
            tracing::info!(campaign = c.id, reason = reason.as_str(), %detail, "campaign paused");
            self.audit(&paused, "campaign.pause", "ok", Some(format!("{}: {detail}", reason.as_str()))).await;
            self.runtime.events.changed(c.id);
        }
        Ok(())
    }

    async fn resume(&self, c: &Campaign, reason: PauseReason) -> Result<(), DbError> {
        let resumed = self.store.resume_automatic(c.id, reason).await?;
        if let Some(resumed) = resumed {
            tracing::info!(campaign = c.id, after = reason.as_str(), "campaign resumed");
            self.audit(&resumed, "campaign.resume", "ok", Some(format!("{} is over", reason.as_str()))).await;
            self.runtime.events.changed(c.id);
        }
        Ok(())
    }

    async fn audit(&self, c: &Campaign, action: &str, result: &str, detail: Option<String>) {
        let entry = AuditEntry {
            actor_user_id: None,
            actor_email: "central-hub dispatcher".to_owned(),
            action: action.to_owned(),
            target: Some(format!("campaign:{}", c.id)),
            result: result.to_owned(),
            detail,
        };
        if let Err(e) = self.store.record_audit(entry).await {
            tracing::error!(error.message = %e, action, campaign = c.id, "could not write the audit log");
        }
    }
}

fn ms(value: i64) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or(0))
}

fn rfc3339(at_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(at_ms).map(|t| t.to_string()).unwrap_or_default()
}
