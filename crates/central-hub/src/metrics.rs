//! Prometheus counters, rendered as text at `GET /metrics`.
//!
//! The request counter is bumped by every request, so the hub's own routes with their method and
//! the usual statuses are pre-registered atomics ([`KNOWN_ROUTES`] x [`KNOWN_STATUSES`]): no lock
//! and no allocation per request. Anything else (an unmatched path, an unusual status) goes to a
//! locked map, capped at [`MAX_REQUEST_SERIES`] series.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use shared_contracts::ErrorCode;

/// The hub's routes (templates, as axum matched them) with their method: their counters are atomics.
/// A route missing here still counts, in the locked map.
pub const KNOWN_ROUTES: &[(&str, &str)] = &[
    ("/api/admin/whatsapp/status", "GET"),
    ("/api/whatsapp/{cliente_id}/status", "GET"),
    ("/health", "GET"),
    ("/api/health", "GET"),
    ("/metrics", "GET"),
    ("/auth/login", "POST"),
    ("/api/auth/login", "POST"),
    ("/api/whatsapp/{cliente_id}/qr-code", "GET"),
    ("/api/whatsapp/{cliente_id}/send", "POST"),
    ("/", "GET"),
    ("/admin", "GET"),
    ("/admin/", "GET"),
    ("/admin/assets/{name}", "GET"),
    ("/api/admin/whatsapp/connect", "POST"),
    ("/api/admin/whatsapp/disconnect", "POST"),
    ("/api/admin/whatsapp/clear-session", "POST"),
    ("/api/admin/whatsapp/events", "GET"),
];

/// The statuses the hub answers, pre-registered for every known route.
pub const KNOWN_STATUSES: &[u16] =
    &[200, 201, 202, 204, 304, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 502, 503, 504];

/// At most this many (route, method, status) series in the locked map; later new ones are counted in one overflow series.
pub const MAX_REQUEST_SERIES: usize = 500;

/// The method as a label: the standard ones by name, any other (a client can send any token) as
/// `other`, so made-up methods cannot create series.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

#[derive(Debug)]
pub struct Metrics {
    /// `KNOWN_ROUTES.len() * KNOWN_STATUSES.len()` counters, route-major.
    known_requests: Box<[AtomicU64]>,
    /// (route template, method, status) -> count, for the requests outside the known ones.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    upstream_errors: Mutex<BTreeMap<&'static str, u64>>,
    login_failures: Mutex<BTreeMap<&'static str, u64>>,
    manager_requests: AtomicU64,
    stream_connected: AtomicBool,
    status_from_cache: AtomicU64,
    /// The inbound follower's counters.
    pub inbound: crate::inbound::metrics::InboundMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            known_requests: (0..KNOWN_ROUTES.len() * KNOWN_STATUSES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            requests: Mutex::default(),
            upstream_errors: Mutex::default(),
            login_failures: Mutex::default(),
            manager_requests: AtomicU64::new(0),
            stream_connected: AtomicBool::new(false),
            status_from_cache: AtomicU64::new(0),
            inbound: crate::inbound::metrics::InboundMetrics::default(),
        }
    }
}

/// The index of a known (route, method, status) counter.
fn known_index(route: &str, method: &str, status: u16) -> Option<usize> {
    let r = KNOWN_ROUTES.iter().position(|&(known, m)| known == route && m == method)?;
    let s = KNOWN_STATUSES.iter().position(|&known| known == status)?;
    Some(r * KNOWN_STATUSES.len() + s)
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *map.entry(key).or_default() += 1;
}

impl Metrics {
    /// `route` is a route template (or `unmatched`) and `method` a [`method_label`]: both bounded
    /// sets; the series count is capped anyway.
    pub fn request(&self, route: &str, method: &str, status: u16) {
        if let Some(i) = known_index(route, method, status) {
            self.known_requests[i].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut map = self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (route.to_owned(), method.to_owned(), status);
        let key = if map.len() >= MAX_REQUEST_SERIES && !map.contains_key(&key) {
            ("overflow".to_owned(), "other".to_owned(), 0)
        } else {
            key
        };
        *map.entry(key).or_default() += 1;
    }

    pub fn upstream_error(&self, code: ErrorCode) {
        bump(&self.upstream_errors, code.as_str());
    }

    /// `reason`: `bad_password`, `unknown_user`, `disabled`, `rate_limited`.
    pub fn login_failure(&self, reason: &'static str) {
        bump(&self.login_failures, reason);
    }

    pub fn manager_request(&self) {
        self.manager_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent to the session-manager so far (each retry counts).
    pub fn manager_requests(&self) -> u64 {
        self.manager_requests.load(Ordering::Relaxed)
    }

    pub fn status_from_cache(&self) {
        self.status_from_cache.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_stream_connected(&self, connected: bool) {
        self.stream_connected.store(connected, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP central_hub_http_requests_total HTTP requests by route, method and status."
        );
        let _ = writeln!(out, "# TYPE central_hub_http_requests_total counter");
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (i, counter) in self.known_requests.iter().enumerate() {
            let n = counter.load(Ordering::Relaxed);
            if n > 0 {
                let (route, method) = KNOWN_ROUTES[i / KNOWN_STATUSES.len()];
                let status = KNOWN_STATUSES[i % KNOWN_STATUSES.len()];
                *requests.entry((route.to_owned(), method.to_owned(), status)).or_default() += n;
            }
        }
        for ((route, method, status), n) in &requests {
            let _ = writeln!(
                out,
                "central_hub_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        let _ =
            writeln!(out, "# HELP central_hub_upstream_errors_total Failed session-manager calls by code.");
        let _ = writeln!(out, "# TYPE central_hub_upstream_errors_total counter");
        for (code, n) in self.upstream_errors.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "central_hub_upstream_errors_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP central_hub_login_failures_total Refused logins by reason.");
        let _ = writeln!(out, "# TYPE central_hub_login_failures_total counter");
        for (reason, n) in self.login_failures.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "central_hub_login_failures_total{{reason=\"{reason}\"}} {n}");
        }
        let _ =
            writeln!(out, "# HELP central_hub_manager_requests_total Requests sent to the session-manager.");
        let _ = writeln!(out, "# TYPE central_hub_manager_requests_total counter");
        let _ = writeln!(
            out,
            "central_hub_manager_requests_total {}",
            self.manager_requests.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP central_hub_status_from_cache_total Status answers served from the event stream."
        );
        let _ = writeln!(out, "# TYPE central_hub_status_from_cache_total counter");
        let _ = writeln!(
            out,
            "central_hub_status_from_cache_total {}",
            self.status_from_cache.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP central_hub_manager_stream_connected 1 while the session-manager event stream is live."
        );
        let _ = writeln!(out, "# TYPE central_hub_manager_stream_connected gauge");
        let _ = writeln!(
            out,
            "central_hub_manager_stream_connected {}",
            u8::from(self.stream_connected.load(Ordering::Relaxed))
        );
        self.inbound.render(&mut out);
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_series_are_capped() {
        let m = Metrics::default();
        for i in 0..(MAX_REQUEST_SERIES + 100) {
            m.request(&format!("/r{i}"), "GET", 200);
        }
        let series = m.render().lines().filter(|l| l.starts_with("central_hub_http_requests_total{")).count();
        assert_eq!(series, MAX_REQUEST_SERIES + 1, "the cap plus one overflow series");
        assert_eq!(method_label(&axum::http::Method::from_bytes(b"FOO").unwrap()), "other");
    }

    #[test]
    fn counters_render_in_prometheus_text() {
        let m = Metrics::default();
        m.request("/health", "GET", 200);
        m.request("/health", "GET", 200);
        m.upstream_error(ErrorCode::SessionManagerUnreachable);
        m.login_failure("bad_password");
        m.set_stream_connected(true);
        let text = m.render();
        assert!(
            text.contains(
                "central_hub_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 2"
            )
        );
        assert!(text.contains("central_hub_upstream_errors_total{code=\"SESSION_MANAGER_UNREACHABLE\"} 1"));
        assert!(text.contains("central_hub_login_failures_total{reason=\"bad_password\"} 1"));
        assert!(text.contains("central_hub_manager_stream_connected 1"));
    }

    #[test]
    fn known_and_other_requests_render_together_in_order() {
        let m = Metrics::default();
        for _ in 0..3 {
            m.request("/api/admin/whatsapp/status", "GET", 200);
        }
        m.request("/api/admin/whatsapp/status", "GET", 418);
        m.request("unmatched", "GET", 404);
        m.request("/health", "POST", 405);
        let text = m.render();
        let series: Vec<&str> =
            text.lines().filter(|l| l.starts_with("central_hub_http_requests_total{")).collect();
        assert_eq!(
            series,
            [
                "central_hub_http_requests_total{route=\"/api/admin/whatsapp/status\",method=\"GET\",status=\"200\"} 3",
                "central_hub_http_requests_total{route=\"/api/admin/whatsapp/status\",method=\"GET\",status=\"418\"} 1",
                "central_hub_http_requests_total{route=\"/health\",method=\"POST\",status=\"405\"} 1",
                "central_hub_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
            ]
        );
        assert_eq!(m.requests.lock().unwrap().len(), 3, "the known series took no map entry");
    }
}
