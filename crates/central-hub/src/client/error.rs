//! `ClientError`: what went wrong calling the session-manager, always naming its URL and the
//! endpoint, with the code, status, hint and detail the hub answers with.

use axum::http::StatusCode;
use serde_json::{Value, json};
use shared_contracts::{ErrorBody, ErrorCode};

/// The phase of a [`ClientErrorKind::Timeout`] in which the TCP connection was never completed.
pub(super) const CONNECT_PHASE: &str = "accept the connection";

/// A failed call to the session-manager: where (`url`, `endpoint` such as `POST /send`) and what.
#[derive(Debug)]
pub struct ClientError {
    pub url: String,
    pub endpoint: String,
    pub kind: ClientErrorKind,
}

#[derive(Debug)]
pub enum ClientErrorKind {
    /// Nothing accepted the connection (502 `SESSION_MANAGER_UNREACHABLE`).
    Unreachable { cause: String },
    /// The connection or the answer took too long (504 `SESSION_MANAGER_TIMEOUT`).
    Timeout { phase: &'static str, timeout_ms: u128 },
    /// The manager's own error body, passed on with its status and code.
    Upstream { status: u16, body: Box<ErrorBody>, retry_after: Option<u64> },
    /// An answer that is not the contract (502 `SESSION_MANAGER_ERROR`).
    Protocol { status: Option<u16>, cause: String },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { url, endpoint, kind } = self;
        match kind {
            ClientErrorKind::Unreachable { cause } => {
                write!(f, "the session-manager at {url} is unreachable ({endpoint}): {cause}")
            }
            ClientErrorKind::Timeout { phase, timeout_ms } => {
                write!(f, "the session-manager at {url} did not {phase} within {timeout_ms} ms ({endpoint})")
            }
            ClientErrorKind::Upstream { body, .. } => f.write_str(&body.error),
            ClientErrorKind::Protocol { cause, .. } => write!(
                f,
                "the session-manager at {url} answered {endpoint} with something that is not its API: {cause}"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    pub fn new(url: &str, endpoint: &str, kind: ClientErrorKind) -> Self {
        Self { url: url.to_owned(), endpoint: endpoint.to_owned(), kind }
    }

    pub fn code(&self) -> ErrorCode {
        match &self.kind {
            ClientErrorKind::Unreachable { .. } => ErrorCode::SessionManagerUnreachable,
            ClientErrorKind::Timeout { .. } => ErrorCode::SessionManagerTimeout,
            ClientErrorKind::Upstream { body, .. } => body.code,
            ClientErrorKind::Protocol { .. } => ErrorCode::SessionManagerError,
        }
    }

    pub fn status(&self) -> StatusCode {
        let status = match &self.kind {
            ClientErrorKind::Upstream { status, .. } => *status,
            _ => self.code().http_status(),
        };
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)
    }

    /// The manager's `Retry-After` (seconds), passed on with its 429.
    pub fn retry_after(&self) -> Option<u64> {
        match &self.kind {
            ClientErrorKind::Upstream { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn hint(&self) -> String {
        let url = &self.url;
        match &self.kind {
            ClientErrorKind::Unreachable { .. } => format!(
                "Start the session-manager, or set SESSION_MANAGER_URL (now {url}) to the address it listens \
                 on (its SESSION_MANAGER_HOST/SESSION_MANAGER_PORT)"
            ),
            ClientErrorKind::Timeout { phase: CONNECT_PHASE, .. } => format!(
                "Nothing at {url} completed the connection: the session-manager may be stopped (SIGSTOP), \
                 overloaded, or SESSION_MANAGER_URL may point at a host that drops packets; check that it runs \
                 and its /health; SESSION_MANAGER_CONNECT_TIMEOUT_MS raises the limit"
            ),
            ClientErrorKind::Timeout { .. } => format!(
                "The session-manager at {url} accepted the connection but is slow or stuck: check its logs \
                 and /health; SESSION_MANAGER_TIMEOUT_MS raises the limit"
            ),
            ClientErrorKind::Upstream { body, .. } => body.hint.clone(),
            ClientErrorKind::Protocol { .. } => format!(
                "SESSION_MANAGER_URL ({url}) may point at another service, or the hub and manager versions differ"
            ),
        }
    }

    /// `detail` of the error body: always names the manager URL and the endpoint.
    pub fn detail(&self) -> Value {
        let mut detail = match &self.kind {
            ClientErrorKind::Unreachable { cause } => json!({ "cause": cause }),
            ClientErrorKind::Timeout { phase, timeout_ms } => {
                json!({ "phase": phase, "timeout_ms": timeout_ms })
            }
            ClientErrorKind::Upstream { body, .. } => match &body.detail {
                Value::Object(map) => Value::Object(map.clone()),
                Value::Null => json!({}),
                other => json!({ "upstream_detail": other }),
            },
            ClientErrorKind::Protocol { status, cause } => json!({ "status": status, "cause": cause }),
        };
        detail["endpoint"] = json!(self.endpoint);
        detail["url"] = json!(self.url);
        detail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_names_the_url_and_endpoint_in_its_detail() {
        let kinds = [
            ClientErrorKind::Unreachable { cause: "connection refused".into() },
            ClientErrorKind::Timeout { phase: CONNECT_PHASE, timeout_ms: 2000 },
            ClientErrorKind::Protocol { status: Some(200), cause: "not JSON".into() },
        ];
        for kind in kinds {
            let e = ClientError::new("http://127.0.0.1:3001", "GET /status", kind);
            assert_eq!(e.detail()["url"], "http://127.0.0.1:3001", "{e}");
            assert_eq!(e.detail()["endpoint"], "GET /status", "{e}");
            assert!(e.to_string().contains("http://127.0.0.1:3001"), "{e}");
            assert!(e.hint().contains("127.0.0.1:3001"), "{}", e.hint());
        }
        let timeout = ClientError::new("u", "e", ClientErrorKind::Timeout { phase: "answer", timeout_ms: 5 });
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(timeout.hint().contains("SESSION_MANAGER_TIMEOUT_MS"));
    }

    #[test]
    fn an_upstream_error_keeps_the_managers_status_code_detail_and_retry_after() {
        let body = ErrorBody {
            success: false,
            error: "too many sends".into(),
            code: ErrorCode::RateLimited,
            detail: json!({ "retry_after_secs": 7 }),
            hint: "wait".into(),
            request_id: None,
            timestamp: "2024-02-25T15:55:43Z".into(),
        };
        let kind = ClientErrorKind::Upstream { status: 429, body: Box::new(body), retry_after: Some(7) };
        let e = ClientError::new("http://m", "POST /send", kind);
        assert_eq!(
            (e.status(), e.code(), e.retry_after()),
            (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited, Some(7))
        );
        assert_eq!(e.detail(), json!({ "retry_after_secs": 7, "endpoint": "POST /send", "url": "http://m" }));
        assert_eq!(e.to_string(), "too many sends");
    }
}
