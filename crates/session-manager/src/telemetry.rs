//! The manager's logs (`service-kit`'s subscriber with the manager's default filter) and the
//! clock as its bodies and files write it.

/// Without RUST_LOG: our info, and chromiumoxide's errors only. Its handler warns "WS Invalid
/// message" for every CDP event that Chromium (newer than the crate's protocol) sends and it does
/// not know: harmless, and otherwise a line per event.
const DEFAULT_FILTER: &str = "info,chromiumoxide=error,tungstenite=warn";

/// Installs the global subscriber. `RUST_LOG` overrides the default filter.
pub fn init() {
    service_kit::telemetry::init(DEFAULT_FILTER);
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
