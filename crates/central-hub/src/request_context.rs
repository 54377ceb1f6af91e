//! The per-request context (request id, authenticated user) is the one of `service-kit`, shared
//! with the session-manager; this module names it for the hub's code (error bodies, the audit
//! log, the manager client, the auth extractor).

pub use service_kit::request::{current_request_id, set_current_user};
