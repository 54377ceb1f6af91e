//! The typed client of the session-manager's HTTP API: one method per endpoint.
//!
//! Every failure names the manager's URL and says what to do: nothing listening there (502
//! `SESSION_MANAGER_UNREACHABLE`, fix `SESSION_MANAGER_URL`), too slow (504
//! `SESSION_MANAGER_TIMEOUT`), an answer that is not the contract (502 `SESSION_MANAGER_ERROR`),
//! or the manager's own `ErrorBody`, passed on with its status and code (see `error.rs`). How a
//! call is sent and its answer read is `transport.rs`.

mod error;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use shared_contracts::{
    CLIENTE_ID_HEADER, ClearSessionResponse, ClienteId, ConnectRequest, ConnectResponse, DisconnectRequest,
    DisconnectResponse, IDEMPOTENCY_KEY_HEADER, IdempotencyKey, QrInfo, SendRequest, SendResponse,
    StatusBody,
};

pub use error::{ClientError, ClientErrorKind};

use crate::config::Config;
use crate::metrics::Metrics;

/// Set by the manager on a send answered from its idempotency journal (not sent again).
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// reqwest is built without a default TLS provider: install ring once (a second call is a no-op).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The hub's handle on the session-manager. Cheap to clone.
#[derive(Clone)]
pub struct SessionManagerClient {
    http: reqwest::Client,
    /// For `/events`: no read timeout (the stream is idle between changes); the feed bounds reads itself.
    stream_http: reqwest::Client,
    base_url: Arc<str>,
    token: Option<Arc<str>>,
    connect_timeout: Duration,
    read_timeout: Duration,
    get_retries: u32,
    metrics: Arc<Metrics>,
}

impl SessionManagerClient {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        install_crypto_provider();
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(config.connect_timeout)
                .user_agent(concat!("central-hub/", env!("CARGO_PKG_VERSION")))
                .pool_idle_timeout(Duration::from_secs(60))
        };
        Ok(Self {
            http: builder().read_timeout(config.read_timeout).build()?,
            stream_http: builder().build()?,
            base_url: config.session_manager_url.as_str().into(),
            token: Some(config.session_manager_token.as_str().into()),
            connect_timeout: config.connect_timeout,
            read_timeout: config.read_timeout,
            get_retries: config.get_retries,
            metrics,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub async fn status(&self) -> Result<StatusBody, ClientError> {
        self.get("/status", None).await
    }

    /// One `GET /status` without retries, for `/health` (it must answer fast).
    pub async fn status_once(&self) -> Result<StatusBody, ClientError> {
        let endpoint = "GET /status";
        let result = self.send(self.request(Method::GET, "/status"), endpoint).await;
        self.finish(result, endpoint).await
    }

    pub async fn qr_code(&self, cliente_id: Option<ClienteId>) -> Result<QrInfo, ClientError> {
        self.get("/qr-code", cliente_id).await
    }

    pub async fn connect(&self, body: &ConnectRequest) -> Result<ConnectResponse, ClientError> {
        self.post("/connect", body).await
    }

    pub async fn disconnect(&self, body: &DisconnectRequest) -> Result<DisconnectResponse, ClientError> {
        self.post("/disconnect", body).await
    }

    pub async fn clear_session(&self) -> Result<ClearSessionResponse, ClientError> {
        self.post("/clear-session", &json!({})).await
    }

    /// Sends; also returns the manager's `Idempotent-Replayed` header when it set one.
    pub async fn send_message(
        &self,
        body: &SendRequest,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<(SendResponse, Option<axum::http::HeaderValue>), ClientError> {
        let endpoint = "POST /send";
        let mut request = self.request(Method::POST, "/send").json(body);
        if let Some(id) = body.cliente_id {
            request = request.header(CLIENTE_ID_HEADER, id.get());
        }
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_KEY_HEADER, key.as_str());
        }
        let result = self.send(request, endpoint).await;
        let replayed = result
            .as_ref()
            .ok()
            .and_then(|r| r.headers().get(IDEMPOTENT_REPLAYED_HEADER))
            .and_then(|v| axum::http::HeaderValue::from_bytes(v.as_bytes()).ok());
        let answer = self.finish(result, endpoint).await?;
        Ok((answer, replayed))
    }

    /// Opens `GET /events` with `Last-Event-ID: <last_event_id>` (the manager replays its journaled
    /// inbound events after it); the caller reads the SSE body.
    pub async fn open_events(&self, last_event_id: u64) -> Result<reqwest::Response, ClientError> {
        let endpoint = "GET /events";
        let request = self
            .decorate(self.stream_http.get(format!("{}/events", self.base_url)))
            .header("last-event-id", last_event_id);
        let response = match tokio::time::timeout(self.read_timeout, request.send()).await {
            Ok(result) => result.map_err(|e| self.transport_error(&e, endpoint))?,
            Err(_) => return Err(self.timeout(endpoint, "answer", self.read_timeout)),
        };
        if !response.status().is_success() {
            let result: Result<Value, ClientError> = self.finish(Ok(response), endpoint).await;
            return Err(result.err().unwrap_or_else(|| {
                self.error(
                    endpoint,
                    ClientErrorKind::Protocol { status: None, cause: "unexpected status".into() },
                )
            }));
        }
        Ok(response)
    }
}
