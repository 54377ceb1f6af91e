//! Per-request context visible anywhere inside the request's task: the request id (put in error
//! bodies and forwarded to the session-manager) and the authenticated user (for the request log).

use std::sync::{Arc, OnceLock};

#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: Arc<str>,
    /// Set by the auth extractor once the caller is known.
    pub user: Arc<OnceLock<String>>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

impl RequestContext {
    pub fn new(request_id: String) -> Self {
        Self { request_id: request_id.into(), user: Arc::new(OnceLock::new()) }
    }

    /// Runs `fut` with this context as the current one.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CONTEXT.scope(self, fut).await
    }
}

/// The id of the request being served, if any.
pub fn current_request_id() -> Option<String> {
    CONTEXT.try_with(|c| c.request_id.to_string()).ok()
}

/// Records who made the request being served (shown in the request log).
pub fn set_current_user(user: String) {
    let _ = CONTEXT.try_with(|c| c.user.set(user));
}

/// A request id received from outside is kept only if it is short printable ASCII (it ends up in logs).
pub fn accept_request_id(raw: &str) -> Option<String> {
    let ok = !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_printable_request_ids_are_kept() {
        assert_eq!(accept_request_id("abc-123").as_deref(), Some("abc-123"));
        assert!(accept_request_id("").is_none());
        assert!(accept_request_id("a b").is_none());
        assert!(accept_request_id(&"x".repeat(129)).is_none());
    }

    #[tokio::test]
    async fn the_request_id_is_visible_inside_the_scope_only() {
        assert!(current_request_id().is_none());
        let seen = RequestContext::new("r1".into()).scope(async { current_request_id() }).await;
        assert_eq!(seen.as_deref(), Some("r1"));
    }
}
