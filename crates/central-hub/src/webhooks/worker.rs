//! The delivery worker: claims due deliveries with a lease, POSTs each event's JSON, signed, with
//! a 10 s timeout, up to `WEBHOOK_CONCURRENCY` at once (to all endpoints together: deliveries to
//! one endpoint are not ordered), and records the outcomes of the attempts that finished together
//! in one transaction. A 2xx is delivered; anything else is retried after an exponential back-off
//! with full jitter until `WEBHOOK_MAX_AGE_SECONDS` has passed since the delivery was queued, then
//! the delivery is dead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::CONTENT_TYPE;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::outbox::{Claimed, Finished, Outcome};
use super::sign::{EVENT_HEADER, ID_HEADER, SIGNATURE_HEADER, signature_header};
use super::{WebhookRuntime, target};
use crate::campaigns::now_ms;
use crate::config::WebhookSettings;
use crate::db::{Backend, Store};

/// Each request's limit, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery is this hub's before another may take it (longer than a request).
const LEASE: Duration = Duration::from_secs(60);
/// With nothing due, the queue is looked at again this often (deliveries queued by another hub).
const IDLE: Duration = Duration::from_secs(1);
/// The most characters of a receiver's answer kept as the error.
const ANSWER_SNIPPET: usize = 200;

/// The two HTTP clients: an admin's webhooks (and every webhook with WEBHOOK_ALLOW_PRIVATE) may
/// reach any address; clients' webhooks resolve through the public-only resolver.
#[derive(Clone)]
pub struct Senders {
    open: reqwest::Client,
    public_only: reqwest::Client,
    allow_private: bool,
}

impl Senders {
    pub fn new(settings: &WebhookSettings) -> Result<Self, reqwest::Error> {
        crate::client::install_crypto_provider();
        let builder = || {
            reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(settings.concurrency)
                .user_agent(concat!("central-hub-webhooks/", env!("CARGO_PKG_VERSION")))
        };
        Ok(Self {
            open: builder().build()?,
            public_only: builder().dns_resolver(Arc::new(target::PublicOnlyResolver)).build()?,
            allow_private: settings.allow_private,
        })
    }

    /// One attempt: the 2xx status, or the status (if any) and why it failed.
    async fn attempt(&self, c: &Claimed) -> Result<u16, (Option<u16>, String)> {
        let url = target::parse_url(&c.url).map_err(|e| (None, e.to_string()))?;
        let client = if self.allow_private || c.owner.is_none() {
            &self.open
        } else {
            target::ensure_public(&url).await.map_err(|e| (None, format!("refused: {e}")))?;
            &self.public_only
        };
        let body = serde_json::to_vec(&c.event.webhook_body()).map_err(|e| (None, e.to_string()))?;
        let now = jiff::Timestamp::now().as_second();
        let response = client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(ID_HEADER, c.event.event_id.as_str())
            .header(EVENT_HEADER, c.event.kind.as_str())
            .header(SIGNATURE_HEADER, signature_header(&c.secret, now, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| (None, error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let answer = response.text().await.unwrap_or_default();
        let snippet: String = answer.chars().take(ANSWER_SNIPPET).collect();
        Err((Some(status.as_u16()), format!("the receiver answered {status}: {snippet}")))
    }
}

/// An error with its causes (reqwest's own text names only the first step).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The wait before the retry after `attempts` attempts: uniform in [0, min(max, base * 2^(attempts-1))].
pub fn backoff(settings: &WebhookSettings, attempts: i64) -> Duration {
    let exponent = u32::try_from((attempts - 1).clamp(0, 30)).unwrap_or(30);
    let ceiling = settings.retry_base.saturating_mul(2u32.saturating_pow(exponent)).min(settings.retry_max);
    ceiling.mul_f64(rand::random::<f64>())
}

/// What an attempt's result means for the delivery.
fn outcome(settings: &WebhookSettings, c: &Claimed, result: Result<u16, (Option<u16>, String)>) -> Outcome {
    match result {
        Ok(status) => Outcome::Delivered { status },
        Err((status, error)) => {
            let now = now_ms();
            let at_ms =
                now + i64::try_from(backoff(settings, c.attempts).as_millis()).unwrap_or(i64::MAX / 2);
            let max_age = i64::try_from(settings.max_age.as_millis()).unwrap_or(i64::MAX / 2);
            if at_ms - c.created_ms > max_age {
                let error = format!(
                    "gave up after {} attempts in {} s: {error}",
                    c.attempts,
                    (now - c.created_ms) / 1_000
                );
                tracing::warn!(webhook = c.webhook_id, delivery = c.id, event_id = %c.event.event_id, %error, "webhook delivery is dead");
                Outcome::Dead { status, error }
            } else {
                Outcome::Retry { status, error, at_ms }
            }
        }
    }
}

pub async fn run(
    store: Store,
    runtime: WebhookRuntime,
    senders: Senders,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    if store.backend() == Backend::Sqlite {
        // SQLite serves one hub: what its previous run held is nobody's now.
        match store.expire_delivery_leases(now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                deliveries = n,
                "re-sending the webhook deliveries a previous run left in flight"
            ),
            Err(e) => {
                tracing::error!(error.message = %e, "could not take over the previous run's webhook deliveries")
            }
        }
    }
    let owner = format!("hub-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let settings = runtime.settings.clone();
    let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(60_000);
    let mut inflight: JoinSet<Finished> = JoinSet::new();
    let mut claims: u64 = 0;
    let mut depth_at = Instant::now() - IDLE;
    loop {
        if depth_at.elapsed() >= IDLE {
            depth_at = Instant::now();
            if let Ok(depth) = store.pending_deliveries().await {
                runtime.metrics.set_queue_depth(depth);
            }
        }
        let free = settings.concurrency.saturating_sub(inflight.len());
        if free > 0 && !cancel.is_cancelled() {
            claims += 1;
            let token: Arc<str> = format!("{owner}-{claims}").into();
            let limit = i64::try_from(free).unwrap_or(1);
            match store.claim_deliveries(&token, now_ms(), lease_ms, limit).await {
                Ok(claimed) => {
                    for c in claimed {
                        let (senders, settings, token) = (senders.clone(), settings.clone(), token.clone());
                        inflight.spawn(async move {
                            let result = senders.attempt(&c).await;
                            Finished { token, id: c.id, outcome: outcome(&settings, &c, result) }
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(error.message = %e, "webhook worker: database failure, retrying in 2 s");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    }
                }
            }
        }
        if inflight.is_empty() {
            let wait = match store.next_delivery_due_ms().await {
                Ok(Some(due)) => Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0)).min(IDLE),
                Ok(None) | Err(_) => IDLE,
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            }
            continue;
        }
        let slots = inflight.len() < settings.concurrency;
        tokio::select! {
            () = cancel.cancelled() => break,
            () = wake.notified(), if slots => {}
            () = tokio::time::sleep(Duration::from_millis(250)), if slots => {}
            Some(first) = inflight.join_next() => {
                let mut finished = Vec::new();
                let mut keep = |joined: Result<Finished, tokio::task::JoinError>| match joined {
                    Ok(f) => finished.push(f),
                    Err(e) => tracing::error!(error.message = %e, "a webhook attempt panicked; its lease will expire"),
                };
                keep(first);
                while let Some(joined) = inflight.try_join_next() {
                    keep(joined);
                }
                runtime.metrics.count(&finished);
                if let Err(e) = store.record_outcomes(&finished, now_ms()).await {
                    tracing::error!(error.message = %e, "could not record webhook outcomes: they will be sent again");
                }
            }
        }
    }
    tracing::info!(
        in_flight = inflight.len(),
        "webhook worker stopped (deliveries in flight will be sent again)"
    );
}
