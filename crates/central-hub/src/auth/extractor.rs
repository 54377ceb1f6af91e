//! `AuthUser`: the caller of a protected route, from `Authorization: Bearer <jwt>`.
//!
//! The token proves who the caller is; what they may do (enabled, role, client id) is read from the
//! store. A token already verified, with the row read then, is reused from the short-lived
//! [`UserCache`](super::UserCache) (no signature check, no store read): a disabled account is
//! locked out within `AUTH_CACHE_TTL_MS` (default 2 s), even with a token that has not expired.
//! Tokens carry the account's credential version (`cv`), bumped by every password change and
//! disable: a token issued before such a change is refused within the same delay.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use shared_contracts::{ClienteId, Role};

use crate::db::User;
use crate::error::ApiError;
use crate::state::AppState;

const LOGIN_HINT: &str = "Log in with POST /auth/login and send the token as `Authorization: Bearer <token>`";

/// An authenticated, enabled user.
#[derive(Clone, Debug)]
pub struct AuthUser(pub Arc<User>);

/// An authenticated admin.
#[derive(Clone, Debug)]
pub struct AdminUser(pub Arc<User>);

impl AuthUser {
    /// Admins may act for any client; a client only for its own id.
    pub fn ensure_may_act_for(&self, cliente_id: ClienteId) -> Result<(), ApiError> {
        let user = &self.0;
        match user.role {
            Role::Admin => Ok(()),
            Role::Client if user.cliente_id == Some(cliente_id) => Ok(()),
            Role::Client => Err(ApiError::Forbidden {
                message: format!("user {} may not act for clienteId {cliente_id}", user.email),
                hint: "Use your own clienteId, or ask an admin",
            }),
        }
    }
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::Unauthorized { message: message.into(), hint: LOGIN_HINT }
}

/// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive, RFC 7235).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("this route needs a bearer token and the request has none"))?;
    header
        .to_str()
        .ok()
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <token>`"))
}

/// The enabled user the request's token names, with the token's credential version still current.
pub async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Arc<User>, ApiError> {
    authenticate_token(bearer_token(headers)?, state).await
}

/// The enabled user `token` names, with its credential version still current: the same checks
/// (and cache) for a bearer header and for a token sent another way (socket.io's `authenticate`).
pub async fn authenticate_token(token: &str, state: &AppState) -> Result<Arc<User>, ApiError> {
    let (cv, user) = match state.users.get(token) {
        Some(seen) => (seen.cv, seen.user),
        None => {
            let claims = state.jwt.verify(token).map_err(|e| unauthorized(e.to_string()))?;
            let id: i64 =
                claims.sub.parse().map_err(|_| unauthorized("the token's subject is not a user id"))?;
            let user = state
                .store
                .find_user(id)
                .await?
                .ok_or_else(|| unauthorized("the token's user no longer exists"))?;
            let user = Arc::new(user);
            // Kept with the verdict's inputs: a disabled or outdated row is refused from the cache
            // too, without a store read per request.
            state.users.insert(token, claims.cv, claims.exp, user.clone());
            (claims.cv, user)
        }
    };
    crate::request_context::set_current_user(user.email.to_string());
    if user.is_disabled() {
        return Err(ApiError::Forbidden {
            message: format!("the account {} is disabled", user.email),
            hint: "Ask an admin to re-enable the account",
        });
    }
    if cv != user.credential_version {
        // The password changed (or the account was disabled) after this token was issued.
        return Err(unauthorized(
            "the token was issued before the account's password changed or it was disabled: log in again",
        ));
    }
    Ok(user)
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(&parts.headers, state).await.map(Self)
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ApiError::Forbidden {
                message: format!("this route is for admins and {} is a {}", user.email, user.role.as_str()),
                hint: "Log in with an admin account",
            });
        }
        Ok(Self(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc "] {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer_token(&headers).ok(), Some("abc"), "{value}");
        }
        for value in ["Basic abc", "Bearer", "Bearerabc", "Bearer  "] {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            assert!(bearer_token(&headers).is_err(), "{value}");
        }
    }
}
