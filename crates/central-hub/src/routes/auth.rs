//! `POST /auth/login` (alias `/api/auth/login`).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use shared_contracts::{Email, ErrorBody, LoginRequest, LoginResponse};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, AppJson};
use crate::state::AppState;

/// Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0M7n+XgbbU9tGXLLOPRzYZ/WOMKMqUnt0/0NR0X6lbA";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(api_login))
}

fn wrong_credentials() -> ApiError {
    ApiError::Unauthorized {
        message: "email or password is wrong".into(),
        hint: "Check the email and password; `central-hub users passwd` sets a new password",
    }
}

/// Logs in with email and password; answers a JWT.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body(content = LoginRequest, example = json!({"email": "admin@example.com", "password": "correct horse battery staple"})),
    responses(
        (status = 200, description = "Logged in: the bearer token for the other routes", body = LoginResponse),
        (status = 400, description = "VALIDATION_ERROR: email or password missing, or not JSON", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED: email or password is wrong", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: the account is disabled", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many attempts (see Retry-After)", body = ErrorBody),
        (status = 503, description = "LOGIN_BUSY (see Retry-After) or DATABASE_ERROR", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    AppJson(body): AppJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let ip = client_ip(&headers, peer, state.config.trust_proxy_headers);
    // The email is parsed once, here. Blank or holding a control character is a 400; any other
    // string that is not an address belongs to no account, so it is answered as an unknown email
    // (401, after the same limits and the same cost), exactly as before the type existed.
    let typed = body.email.trim().to_lowercase();
    if typed.is_empty() || body.password.is_empty() {
        return Err(ApiError::validation("email and password are required"));
    }
    if typed.chars().any(char::is_control) {
        // Logged with Debug escaping anyway; refused so no stored or shown email holds one.
        return Err(ApiError::Validation {
            message: "the email contains a control character (a line break, tab or escape)".into(),
            detail: serde_json::json!({ "field": "email" }),
        });
    }
    let email = Email::parse(&typed).ok();
    let limits = &state.login_limits;
    // Every attempt counts against its address when it starts, before the password is checked.
    if let Err(retry_after_secs) = limits.per_ip.try_acquire(&ip) {
        state.metrics.login_failure("rate_limited");
        tracing::warn!(ip = ?ip, email = ?typed, "login rate limited: too many attempts from this address");
        return Err(ApiError::RateLimited {
            message: "too many login attempts from this client address".into(),
            scope: "client address",
            retry_after_secs,
        });
    }
    let reservation = match limits.per_account_address.reserve(&format!("{typed}\n{ip}")) {
        Ok(reservation) => reservation,
        Err(retry_after_secs) => {
            state.metrics.login_failure("rate_limited");
            tracing::warn!(ip = ?ip, email = ?typed, "login rate limited: failed attempts on this account");
            return Err(ApiError::RateLimited {
                message: "too many failed logins on this account from this client address".into(),
                scope: "account and client address",
                retry_after_secs,
            });
        }
    };

    let user = match &email {
        Some(email) => state.store.find_user_by_email(email).await?,
        None => None,
    };
    // An unknown email costs a verify too (against a dummy hash), through the same gate.
    let hash = user.as_ref().map_or_else(|| DUMMY_HASH.to_owned(), |u| u.password_hash.clone());
    let ok = match state.verify_gate.verify(body.password, hash).await {
        Ok(result) => result.map_err(|e| ApiError::Internal(e.to_string()))?,
        Err(busy) => {
            state.metrics.login_failure("busy");
            tracing::warn!(ip = ?ip, error.message = %busy, "login refused: password checks saturated");
            return Err(ApiError::LoginBusy {
                message: format!("the hub is busy checking passwords ({busy})"),
                retry_after_secs: 1,
            });
        }
    };
    let user = match user {
        Some(user) if ok => user,
        found => {
            reservation.failed();
            state.metrics.login_failure(if found.is_some() { "bad_password" } else { "unknown_user" });
            tracing::info!(ip = ?ip, email = ?typed, "login refused: wrong email or password");
            return Err(wrong_credentials());
        }
    };
    reservation.succeeded();
    crate::request_context::set_current_user(user.email.to_string());
    if user.is_disabled() {
        state.metrics.login_failure("disabled");
        return Err(ApiError::Forbidden {
            message: format!("the account {} is disabled", user.email),
            hint: "Ask an admin to re-enable the account",
        });
    }
    let (token, exp) = state.jwt.issue(&user).map_err(|e| ApiError::Internal(e.to_string()))?;
    let expires_at = OffsetDateTime::from_unix_timestamp(exp as i64)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(|| ApiError::Internal(format!("token expiry {exp} is not a valid time")))?;
    tracing::info!(ip = ?ip, email = ?user.email.as_str(), role = user.role.as_str(), "login");
    Ok(Json(LoginResponse { token, expires_at, user: user.info() }))
}

/// `/auth/login` under `/api`.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body(content = LoginRequest, example = json!({"email": "admin@example.com", "password": "correct horse battery staple"})),
    responses(
        (status = 200, description = "Logged in: the bearer token for the other routes", body = LoginResponse),
        (status = 400, description = "VALIDATION_ERROR: email or password missing, or not JSON", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED: email or password is wrong", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: the account is disabled", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many attempts (see Retry-After)", body = ErrorBody),
        (status = 503, description = "LOGIN_BUSY (see Retry-After) or DATABASE_ERROR", body = ErrorBody),
    ))]
async fn api_login(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: AppJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    login(state, peer, headers, body).await
}

/// The caller's address; behind a trusted proxy (nginx), the one it reports: `X-Real-IP`, else the
/// right-most `X-Forwarded-For` entry (the one the proxy appended; earlier ones are the client's word).
pub(crate) fn client_ip(headers: &HeaderMap, peer: SocketAddr, trust_proxy: bool) -> String {
    if trust_proxy {
        let forwarded = headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit(',').next())
            })
            .map(str::trim)
            .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
        if let Some(ip) = forwarded {
            return ip.to_owned();
        }
    }
    peer.ip().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password;

    #[test]
    fn the_dummy_hash_is_a_valid_argon2_hash() {
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!password::verify("anything", DUMMY_HASH));
    }

    #[test]
    fn proxy_headers_count_only_when_trusted() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().unwrap());
        assert_eq!(client_ip(&headers, peer, false), "127.0.0.1");
        assert_eq!(client_ip(&headers, peer, true), "198.51.100.7");
        headers.insert("x-real-ip", "203.0.113.4".parse().unwrap());
        assert_eq!(client_ip(&headers, peer, true), "203.0.113.4", "X-Real-IP (set by nginx) first");
        headers.insert("x-real-ip", "not an address".parse().unwrap());
        assert_eq!(client_ip(&headers, peer, true), "127.0.0.1", "a value that is no address is ignored");
    }
}
