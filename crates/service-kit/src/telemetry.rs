//! The log subscriber of every service: human-readable lines on stderr (colours only when stderr
//! is a terminal, so journald, pipes and files get plain text), JSON lines with `LOG_FORMAT=json`,
//! the level from `RUST_LOG` or the service's default filter.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default_filter` applies when `RUST_LOG` is unset or invalid.
/// A second call (tests building several apps in one process) keeps the first subscriber.
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json_requested(std::env::var("LOG_FORMAT").ok().as_deref()) {
        builder.json().try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

/// `LOG_FORMAT=json` (any case) asks for JSON lines; anything else means text.
fn json_requested(log_format: Option<&str>) -> bool {
    log_format.is_some_and(|v| v.trim().eq_ignore_ascii_case("json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_log_format_json_selects_json() {
        assert!(json_requested(Some("json")));
        assert!(json_requested(Some("JSON")));
        assert!(!json_requested(Some("text")));
        assert!(!json_requested(Some("")));
        assert!(!json_requested(None));
    }
}
