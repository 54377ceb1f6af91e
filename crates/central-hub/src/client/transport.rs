//! How the client talks HTTP: decorating a request (request id, bearer token), sending it with
//! retries where that is safe, and turning the answer or the transport failure into `T` or a
//! [`ClientError`].

use std::error::Error as _;
use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared_contracts::{CLIENTE_ID_HEADER, ClienteId, ErrorBody, REQUEST_ID_HEADER};

use super::error::CONNECT_PHASE;
use super::{ClientError, ClientErrorKind, SessionManagerClient};

/// First pause between retries of an idempotent GET; doubled at each retry.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);

impl SessionManagerClient {
    /// A GET, retried (with back-off) only when the manager could not be reached at all.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        cliente_id: Option<ClienteId>,
    ) -> Result<T, ClientError> {
        let endpoint = format!("GET {path}");
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 0;
        loop {
            let mut request = self.request(Method::GET, path);
            if let Some(id) = cliente_id {
                request = request.header(CLIENTE_ID_HEADER, id.get());
            }
            let result = self.send(request, &endpoint).await;
            // Only failures to connect are retried: the request never reached the manager.
            let unreachable =
                matches!(&result, Err(ClientError { kind: ClientErrorKind::Unreachable { .. }, .. }));
            if unreachable && attempt < self.get_retries {
                attempt += 1;
                tracing::debug!(%endpoint, attempt, "session-manager unreachable, retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            }
            return self.finish(result, &endpoint).await;
        }
    }

    /// A POST with a JSON body, never retried (it may have acted).
    pub(super) async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let endpoint = format!("POST {path}");
        let request = self.request(Method::POST, path).json(body);
        let result = self.send(request, &endpoint).await;
        self.finish(result, &endpoint).await
    }

    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.decorate(self.http.request(method, format!("{}{path}", self.base_url)))
    }

    /// Adds the request id (the current request's, or a new one) and the manager's bearer token.
    pub(super) fn decorate(&self, mut request: RequestBuilder) -> RequestBuilder {
        let request_id =
            crate::request_context::current_request_id().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        request = request.header(REQUEST_ID_HEADER, request_id);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    pub(super) async fn send(
        &self,
        request: RequestBuilder,
        endpoint: &str,
    ) -> Result<reqwest::Response, ClientError> {
        self.metrics.manager_request();
        request.send().await.map_err(|e| self.transport_error(&e, endpoint))
    }

    /// Turns a response into `T` or the right error; counts errors by code.
    pub(super) async fn finish<T: DeserializeOwned>(
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
        let protocol = |cause: String| {
            self.error(endpoint, ClientErrorKind::Protocol { status: Some(status.as_u16()), cause })
        };
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| protocol(format!("HTTP {status} with a body that does not parse: {e}")));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(self.error(
                endpoint,
                ClientErrorKind::Upstream { status: status.as_u16(), body: Box::new(body), retry_after },
            )),
            Err(_) => {
                let snippet: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
                Err(protocol(format!("HTTP {status} without an error body: {snippet:?}")))
            }
        }
    }

    pub(super) fn error(&self, endpoint: &str, kind: ClientErrorKind) -> ClientError {
        ClientError::new(&self.base_url, endpoint, kind)
    }

    pub(super) fn timeout(&self, endpoint: &str, phase: &'static str, limit: Duration) -> ClientError {
        self.error(endpoint, ClientErrorKind::Timeout { phase, timeout_ms: limit.as_millis() })
    }

    pub(super) fn transport_error(&self, e: &reqwest::Error, endpoint: &str) -> ClientError {
        if e.is_timeout() {
            return if e.is_connect() {
                self.timeout(endpoint, CONNECT_PHASE, self.connect_timeout)
            } else {
                self.timeout(endpoint, "answer", self.read_timeout)
            };
        }
        let cause = describe_transport_error(e);
        if e.is_connect() {
            return self.error(endpoint, ClientErrorKind::Unreachable { cause });
        }
        self.error(endpoint, ClientErrorKind::Protocol { status: None, cause })
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
