//! A webhook receiver for the end-to-end tests and the inbound benchmark: a real HTTP server on
//! 127.0.0.1:0 that answers 200 to every request and records it with the instant it arrived, and
//! checks the hub's signature (`X-Webhook-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::task::JoinHandle;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request (headers and body) had arrived.
    pub at: Instant,
}

impl Received {
    /// The header's value, empty when missing or not text.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Whether `X-Webhook-Signature` is the HMAC-SHA256 of `"<t>.<body>"` keyed with `secret`.
    pub fn signature_is_valid(&self, secret: &str) -> bool {
        let mut t = None;
        let mut v1 = None;
        for part in self.header("x-webhook-signature").split(',') {
            match part.split_once('=') {
                Some(("t", value)) => t = Some(value),
                Some(("v1", value)) => v1 = Some(value),
                _ => {}
            }
        }
        let (Some(t), Some(v1)) = (t, v1) else { return false };
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else { return false };
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        expected == v1
    }
}

type Requests = Arc<Mutex<Vec<Received>>>;

/// The running receiver; stopped when dropped.
pub struct WebhookReceiver {
    /// The URL to register (`http://127.0.0.1:<port>/hooks`).
    pub url: String,
    requests: Requests,
    task: JoinHandle<()>,
}

async fn record(State(requests): State<Requests>, headers: HeaderMap, body: Bytes) -> &'static str {
    let at = Instant::now();
    requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Received { headers, body, at });
    "ok"
}

impl WebhookReceiver {
    pub async fn start() -> anyhow::Result<Self> {
        let requests = Requests::default();
        let app = axum::Router::new().fallback(record).with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hooks", listener.local_addr()?);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("webhook receiver stopped: {e}");
            }
        });
        Ok(Self { url, requests, task })
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Polls (every 2 ms) until a request satisfies `matches`, `within` at most; panics naming
    /// `what` and what did arrive otherwise.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        matches: impl Fn(&Received) -> bool,
    ) -> Received {
        let deadline = Instant::now() + within;
        loop {
            let requests = self.received();
            if let Some(found) = requests.iter().find(|r| matches(r)) {
                return found.clone();
            }
            if Instant::now() >= deadline {
                let bodies: Vec<Value> = requests.iter().map(Received::json).collect();
                panic!("the webhook receiver did not get {what} within {within:?}; it got {bodies:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
