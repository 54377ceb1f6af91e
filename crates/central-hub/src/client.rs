//! The typed client of the session-manager's HTTP API.
//!
//! Every failure names the manager's URL and says what to do: nothing listening there (502
//! `SESSION_MANAGER_UNREACHABLE`, fix `SESSION_MANAGER_URL`), too slow (504
//! `SESSION_MANAGER_TIMEOUT`), an answer that is not the contract (502 `SESSION_MANAGER_ERROR`),
//! or the manager's own `ErrorBody`, passed on with its status and code.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use reqwest::{Method, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared_contracts::{
    CLIENTE_ID_HEADER, ClearSessionResponse, ConnectRequest, ConnectResponse, DisconnectRequest,
    DisconnectResponse, ErrorBody, ErrorCode, IDEMPOTENCY_KEY_HEADER, QrInfo, REQUEST_ID_HEADER, SendRequest,
    SendResponse, StatusBody,
};

use crate::config::Config;
use crate::metrics::Metrics;

/// Set by the manager on a send answered from its idempotency journal (not sent again).
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// First pause between retries of an idempotent GET; doubled at each retry.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The phase of a [`ClientError::Timeout`] in which the TCP connection was never completed.
const CONNECT_PHASE: &str = "accept the connection";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the session-manager at {url} is unreachable ({endpoint}): {cause}")]
    Unreachable { url: String, endpoint: String, cause: String },
    #[error("the session-manager at {url} did not {phase} within {timeout_ms} ms ({endpoint})")]
    Timeout { url: String, endpoint: String, phase: &'static str, timeout_ms: u128 },
    #[error("{}", body.error)]
    Upstream { url: String, endpoint: String, status: u16, body: Box<ErrorBody>, retry_after: Option<u64> },
    #[error("the session-manager at {url} answered {endpoint} with something that is not its API: {cause}")]
    Protocol { url: String, endpoint: String, status: Option<u16>, cause: String },
}

impl ClientError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::Unreachable { .. } => ErrorCode::SessionManagerUnreachable,
            ClientError::Timeout { .. } => ErrorCode::SessionManagerTimeout,
            ClientError::Upstream { body, .. } => body.code,
            ClientError::Protocol { .. } => ErrorCode::SessionManagerError,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ClientError::Upstream { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            other => StatusCode::from_u16(other.code().http_status()).unwrap_or(StatusCode::BAD_GATEWAY),
        }
    }

    /// The manager's `Retry-After` (seconds), passed on with its 429.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ClientError::Upstream { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn url(&self) -> &str {
        match self {
            ClientError::Unreachable { url, .. }
            | ClientError::Timeout { url, .. }
            | ClientError::Upstream { url, .. }
            | ClientError::Protocol { url, .. } => url,
        }
    }

    pub fn hint(&self) -> String {
        match self {
            ClientError::Unreachable { url, .. } => format!(
                "Start the session-manager, or set SESSION_MANAGER_URL (now {url}) to the address it listens \
                 on (its SESSION_MANAGER_HOST/SESSION_MANAGER_PORT)"
            ),
            ClientError::Timeout { url, phase: CONNECT_PHASE, .. } => format!(
                "Nothing at {url} completed the connection: the session-manager may be stopped (SIGSTOP), \
                 overloaded, or SESSION_MANAGER_URL may point at a host that drops packets; check that it runs \
                 and its /health; SESSION_MANAGER_CONNECT_TIMEOUT_MS raises the limit"
            ),
            ClientError::Timeout { url, .. } => format!(
                "The session-manager at {url} accepted the connection but is slow or stuck: check its logs \
                 and /health; SESSION_MANAGER_TIMEOUT_MS raises the limit"
            ),
            ClientError::Upstream { body, .. } => body.hint.clone(),
            ClientError::Protocol { url, .. } => format!(
                "SESSION_MANAGER_URL ({url}) may point at another service, or the hub and manager versions differ"
            ),
        }
    }

    /// `detail` of the error body: always names the manager URL.
    pub fn detail(&self) -> Value {
        let mut detail = match self {
            ClientError::Unreachable { endpoint, cause, .. } => {
                json!({ "endpoint": endpoint, "cause": cause })
            }
            ClientError::Timeout { endpoint, phase, timeout_ms, .. } => {
                json!({ "endpoint": endpoint, "phase": phase, "timeout_ms": timeout_ms })
            }
            ClientError::Upstream { body, endpoint, .. } => {
                let mut d = match &body.detail {
                    Value::Object(map) => Value::Object(map.clone()),
                    Value::Null => json!({}),
                    other => json!({ "upstream_detail": other }),
                };
                d["endpoint"] = json!(endpoint);
                d
            }
            ClientError::Protocol { endpoint, status, cause, .. } => {
                json!({ "endpoint": endpoint, "status": status, "cause": cause })
            }
        };
        detail["url"] = json!(self.url());
        detail
    }
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
        crate::install_crypto_provider();
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
        let endpoint = "GET /status".to_owned();
        let result = self.send(self.request(Method::GET, "/status"), &endpoint).await;
        self.finish(result, &endpoint).await
    }

    pub async fn qr_code(&self, cliente_id: Option<u64>) -> Result<QrInfo, ClientError> {
        self.get("/qr-code", cliente_id).await
    }

    pub async fn connect(&self, body: &ConnectRequest) -> Result<ConnectResponse, ClientError> {
        self.post("/connect", body, None, None).await
    }

    pub async fn disconnect(&self, body: &DisconnectRequest) -> Result<DisconnectResponse, ClientError> {
        self.post("/disconnect", body, None, None).await
    }

    pub async fn clear_session(&self) -> Result<ClearSessionResponse, ClientError> {
        self.post("/clear-session", &json!({}), None, None).await
    }

    /// Sends; also returns the manager's `Idempotent-Replayed` header when it set one.
    pub async fn send_message(
        &self,
        body: &SendRequest,
        idempotency_key: Option<&str>,
    ) -> Result<(SendResponse, Option<axum::http::HeaderValue>), ClientError> {
        let endpoint = "POST /send".to_owned();
        let mut request = self.request(Method::POST, "/send").json(body);
        if let Some(id) = body.cliente_id {
            request = request.header(CLIENTE_ID_HEADER, id);
        }
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_KEY_HEADER, key);
        }
        let result = self.send(request, &endpoint).await;
        let replayed = result
            .as_ref()
            .ok()
            .and_then(|r| r.headers().get(IDEMPOTENT_REPLAYED_HEADER))
            .and_then(|v| axum::http::HeaderValue::from_bytes(v.as_bytes()).ok());
        let answer = self.finish(result, &endpoint).await?;
        Ok((answer, replayed))
    }

    /// Opens `GET /events`; the caller reads the SSE body.
    pub async fn open_events(&self) -> Result<reqwest::Response, ClientError> {
        let endpoint = "GET /events".to_owned();
        let request = self.decorate(self.stream_http.get(format!("{}/events", self.base_url)));
        let response = match tokio::time::timeout(self.read_timeout, request.send()).await {
            Ok(result) => result.map_err(|e| self.transport_error(&e, &endpoint))?,
            Err(_) => return Err(self.timeout(&endpoint, "answer", self.read_timeout)),
        };
        if !response.status().is_success() {
            let result: Result<Value, ClientError> = self.finish(Ok(response), &endpoint).await;
            return Err(result.err().unwrap_or_else(|| ClientError::Protocol {
                url: self.base_url.to_string(),
                endpoint,
                status: None,
                cause: "unexpected status".into(),
            }));
        }
        Ok(response)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, cliente_id: Option<u64>) -> Result<T, ClientError> {
        let endpoint = format!("GET {path}");
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 0;
        loop {
            let mut request = self.request(Method::GET, path);
            if let Some(id) = cliente_id {
                request = request.header(CLIENTE_ID_HEADER, id);
            }
            let result = self.send(request, &endpoint).await;
            // Only failures to connect are retried: the request never reached the manager.
            if matches!(result, Err(ClientError::Unreachable { .. })) && attempt < self.get_retries {
                attempt += 1;
                tracing::debug!(%endpoint, attempt, "session-manager unreachable, retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            }
            return self.finish(result, &endpoint).await;
        }
    }

    async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
        cliente_id: Option<u64>,
        idempotency_key: Option<&str>,
    ) -> Result<T, ClientError> {
        let endpoint = format!("POST {path}");
        let mut request = self.request(Method::POST, path).json(body);
        if let Some(id) = cliente_id {
            request = request.header(CLIENTE_ID_HEADER, id);
        }
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_KEY_HEADER, key);
        }
        let result = self.send(request, &endpoint).await;
        self.finish(result, &endpoint).await
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.decorate(self.http.request(method, format!("{}{path}", self.base_url)))
    }

    fn decorate(&self, mut request: RequestBuilder) -> RequestBuilder {
        let request_id =
            crate::request_context::current_request_id().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        request = request.header(REQUEST_ID_HEADER, request_id);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    async fn send(&self, request: RequestBuilder, endpoint: &str) -> Result<reqwest::Response, ClientError> {
        self.metrics.manager_request();
        request.send().await.map_err(|e| self.transport_error(&e, endpoint))
    }

    /// Turns a response into `T` or the right error; counts errors by code.
    async fn finish<T: DeserializeOwned>(
        &self,
        result: Result<reqwest::Response, ClientError>,
        endpoint: &str,
    ) -> Result<T, ClientError> {
        let result = match result {
            Ok(response) => self.read(response, endpoint).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            self.metrics.upstream_error(e.code());
            tracing::warn!(error.message = %e, code = %e.code(), "session-manager call failed");
        }
        result
    }

    async fn read<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
        endpoint: &str,
    ) -> Result<T, ClientError> {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = response.bytes().await.map_err(|e| self.transport_error(&e, endpoint))?;
        let protocol = |cause: String| ClientError::Protocol {
            url: self.base_url.to_string(),
            endpoint: endpoint.to_owned(),
            status: Some(status.as_u16()),
            cause,
        };
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| protocol(format!("HTTP {status} with a body that does not parse: {e}")));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(ClientError::Upstream {
                url: self.base_url.to_string(),
                endpoint: endpoint.to_owned(),
                status: status.as_u16(),
                body: Box::new(body),
                retry_after,
            }),
            Err(_) => {
                let snippet: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
                Err(protocol(format!("HTTP {status} without an error body: {snippet:?}")))
            }
        }
    }

    fn timeout(&self, endpoint: &str, phase: &'static str, limit: Duration) -> ClientError {
        ClientError::Timeout {
            url: self.base_url.to_string(),
            endpoint: endpoint.to_owned(),
            phase,
            timeout_ms: limit.as_millis(),
        }
    }

    fn transport_error(&self, e: &reqwest::Error, endpoint: &str) -> ClientError {
        if e.is_timeout() {
            return if e.is_connect() {
                self.timeout(endpoint, CONNECT_PHASE, self.connect_timeout)
            } else {
                self.timeout(endpoint, "answer", self.read_timeout)
            };
        }
        let cause = describe_transport_error(e);
        if e.is_connect() {
            return ClientError::Unreachable {
                url: self.base_url.to_string(),
                endpoint: endpoint.to_owned(),
                cause,
            };
        }
        ClientError::Protocol {
            url: self.base_url.to_string(),
            endpoint: endpoint.to_owned(),
            status: None,
            cause,
        }
    }
}

/// The root cause in words: "connection refused" rather than reqwest's "error sending request".
fn describe_transport_error(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused (nothing listens there)".into(),
                std::io::ErrorKind::ConnectionReset => "connection reset by the peer".into(),
                _ => io.to_string(),
            };
        }
        source = s.source();
    }
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}
