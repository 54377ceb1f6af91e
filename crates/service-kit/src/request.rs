//! The request id and the per-request context: kept from the caller's `x-request-id` when it is
//! short printable ASCII (it ends up in logs), else a new random UUID; visible anywhere inside the
//! request's task (error bodies, audit rows, calls to another service) and echoed on the response.

use std::sync::{Arc, OnceLock};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;

/// The header carrying the request id, in and out (`shared_contracts::REQUEST_ID_HEADER` as a typed name).
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(shared_contracts::REQUEST_ID_HEADER);

/// Longest request id kept from a caller.
pub use shared_contracts::MAX_REQUEST_ID_LEN;

/// What the current request carries: its id and, once the auth step knows it, who made it.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: Arc<str>,
    /// Set by the service's auth step once the caller is known (shown in its request log).
    pub user: Arc<OnceLock<String>>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

impl RequestContext {
    pub fn new(request_id: String) -> Self {
        Self { request_id: request_id.into(), user: Arc::new(OnceLock::new()) }
    }

    /// The context of a request with these headers: the caller's request id when acceptable,
    /// else a new one.
    /// One allocation for the id, none in between (this runs on every request).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let kept = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|raw| is_acceptable_request_id(raw));
        let request_id: Arc<str> = match kept {
            Some(raw) => raw.into(),
            None => new_uuid().hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).into(),
        };
        Self { request_id, user: Arc::new(OnceLock::new()) }
    }

    /// Runs `fut` with this context as the current one.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CONTEXT.scope(self, fut).await
    }

    /// Puts the request id on `response` (replacing any the handler set).
    pub fn stamp(&self, response: &mut Response) {
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
    }
}

/// The id of the request being served, if this runs inside one.
pub fn current_request_id() -> Option<String> {
    CONTEXT.try_with(|c| c.request_id.to_string()).ok()
}

/// Records who made the request being served (a no-op outside a request, or once set).
pub fn set_current_user(user: String) {
    let _ = CONTEXT.try_with(|c| c.user.set(user));
}

/// A request id received from outside is kept only if it is short printable ASCII.
pub fn is_acceptable_request_id(raw: &str) -> bool {
    shared_contracts::RequestId::is_acceptable(raw)
}

/// A random (v4) UUID from the thread's generator: no system call per request.
fn new_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_printable_request_ids_are_kept() {
        assert!(is_acceptable_request_id("abc-123"));
        assert!(is_acceptable_request_id(&"x".repeat(128)));
        assert!(!is_acceptable_request_id(""));
        assert!(!is_acceptable_request_id("a b"));
        assert!(!is_acceptable_request_id("caf\u{e9}"));
        assert!(!is_acceptable_request_id(&"x".repeat(129)));
    }

    #[test]
    fn a_valid_incoming_id_is_kept_and_a_missing_or_bad_one_replaced_by_a_uuid() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("req-abc-1"));
        assert_eq!(&*RequestContext::from_headers(&headers).request_id, "req-abc-1");

        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("has space"));
        let replaced = RequestContext::from_headers(&headers).request_id;
        let fresh = RequestContext::from_headers(&HeaderMap::new()).request_id;
        for id in [&replaced, &fresh] {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 4, "{id}");
        }
        assert_ne!(replaced, fresh, "each request gets its own id");
    }

    #[test]
    fn stamp_puts_the_id_on_the_response() {
        let context = RequestContext::new("r-7".into());
        let mut response = Response::new(axum::body::Body::empty());
        response.headers_mut().insert(REQUEST_ID_HEADER, HeaderValue::from_static("from-handler"));
        context.stamp(&mut response);
        assert_eq!(response.headers()[REQUEST_ID_HEADER], "r-7");
    }

    #[tokio::test]
    async fn the_context_is_visible_inside_the_scope_only() {
        assert!(current_request_id().is_none());
        set_current_user("nobody@example.com".into());
        let context = RequestContext::new("r1".into());
        let user = context.user.clone();
        let seen = context
            .scope(async {
                set_current_user("admin@example.com".into());
                current_request_id()
            })
            .await;
        assert_eq!(seen.as_deref(), Some("r1"));
        assert_eq!(user.get().map(String::as_str), Some("admin@example.com"));
        assert!(current_request_id().is_none());
    }
}
