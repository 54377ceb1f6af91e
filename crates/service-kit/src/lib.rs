//! service-kit: the HTTP plumbing the three services share, written once so it cannot drift.
//!
//! - [`telemetry`]: the log subscriber (plain text on stderr, colours only at a terminal, JSON
//!   with `LOG_FORMAT=json`, level from `RUST_LOG`).
//! - [`request`]: the request id (the caller's `x-request-id` kept when it is short printable
//!   ASCII, else a new one), carried in a task-local so error bodies and upstream calls can read it.
//! - [`server`]: the HTTP/1 accept loop with header-read and body-read timeouts and a bounded
//!   drain at stop, and the SIGINT/SIGTERM future that starts the stop.
//! - [`openapi`] (feature `openapi`): the responses every operation shares, and the route lists the
//!   route-coverage tests compare.
//!
//! Each service keeps its own request log line (its fields are its own) and calls these pieces
//! from its one middleware, so nothing here adds a layer or an allocation per request.

#[cfg(feature = "openapi")]
pub mod openapi;
pub mod request;
pub mod server;
pub mod telemetry;

pub use request::{RequestContext, current_request_id, set_current_user};
pub use server::{ServeOptions, serve, shutdown_signal};
