//! Tracing set up once: human-readable logs on stderr, JSON with `LOG_FORMAT=json`.
//! The request id of the request being served is kept in a task-local so error bodies carry it.

use tracing_subscriber::EnvFilter;

/// Without RUST_LOG: our info, and chromiumoxide's errors only. Its handler warns "WS Invalid
/// message" for every CDP event that Chromium (newer than the crate's protocol) sends and it does
/// not know: harmless, and otherwise a line per event.
const DEFAULT_FILTER: &str = "info,chromiumoxide=error,tungstenite=warn";

tokio::task_local! {
    /// The `X-Request-ID` of the request this task is serving.
    pub static REQUEST_ID: String;
}

/// The request id of the current request, if this runs inside one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Installs the global subscriber. `RUST_LOG` overrides the default filter.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests building several apps in one process) keeps the first subscriber.
    // Colours only for a person at a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = if json { builder.json().try_init() } else { builder.with_ansi(ansi).try_init() };
}

/// Now as RFC 3339, the timestamp format of every body.
pub fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

pub fn format_rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Now as Unix milliseconds.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
