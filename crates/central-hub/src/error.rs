//! The hub's one HTTP error type, rendered as `shared_contracts::ErrorBody`, and the extractors
//! that turn axum's plain-text rejections into it.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared_contracts::{ErrorBody, ErrorCode};

use crate::client::ClientError;
use crate::db::DbError;
use crate::request_context;

/// Largest request body accepted (a send is at most 4096 characters of text): the router's limit,
/// and the one a 413 names.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Everything a hub handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Validation { message: String, detail: Value },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    Unauthorized { message: String, hint: &'static str },
    #[error("{message}")]
    Forbidden { message: String, hint: &'static str },
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("{message}: retry in {retry_after_secs} s")]
    RateLimited { message: String, scope: &'static str, retry_after_secs: u64 },
    #[error("{message}")]
    LoginBusy { message: String, retry_after_secs: u64 },
    #[error(transparent)]
    Upstream(#[from] ClientError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("internal error: {0}")]
    Internal(String),
    /// An answer with its own code, detail and hint (campaigns).
    #[error("{message}")]
    Coded { code: ErrorCode, message: String, detail: Value, hint: String },
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation { message: message.into(), detail: json!({}) }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Validation { .. } => ErrorCode::ValidationError,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::Unauthorized { .. } => ErrorCode::Unauthorized,
            ApiError::Forbidden { .. } => ErrorCode::Forbidden,
            ApiError::NotFound { .. } => ErrorCode::NotFound,
            ApiError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::LoginBusy { .. } => ErrorCode::LoginBusy,
            ApiError::Upstream(e) => e.code(),
            ApiError::Database(_) => ErrorCode::DatabaseError,
            ApiError::Internal(_) => ErrorCode::InternalError,
            ApiError::Coded { code, .. } => *code,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Upstream(e) => e.status(),
            other => {
                StatusCode::from_u16(other.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    pub(crate) fn hint(&self) -> String {
        match self {
            ApiError::Validation { .. } => "Fix the request as the error says and send it again".into(),
            ApiError::PayloadTooLarge { .. } => "Send a smaller body".into(),
            ApiError::Unauthorized { hint, .. } | ApiError::Forbidden { hint, .. } => (*hint).into(),
            ApiError::NotFound { .. } | ApiError::MethodNotAllowed { .. } => {
                "See ARCHITECTURE.md for the hub's routes".into()
            }
            ApiError::RateLimited { .. } => "Wait for the time in Retry-After, then try again".into(),
            ApiError::LoginBusy { .. } => {
                "The hub is checking many passwords at once: wait for the time in Retry-After, then log in again"
                    .into()
            }
            ApiError::Upstream(e) => e.hint(),
            ApiError::Database(_) => {
                "Check that the database in DATABASE_URL is reachable and has free space; see the hub's logs"
                    .into()
            }
            ApiError::Internal(_) => "This is a bug: report it with the request_id".into(),
            ApiError::Coded { hint, .. } => hint.clone(),
        }
    }

    fn detail(&self) -> Value {
        match self {
            ApiError::Validation { detail, .. } => detail.clone(),
            ApiError::PayloadTooLarge { limit } => json!({ "limit_bytes": limit }),
            ApiError::RateLimited { scope, retry_after_secs, .. } => {
                json!({ "scope": scope, "retry_after_secs": retry_after_secs })
            }
            ApiError::LoginBusy { retry_after_secs, .. } => json!({ "retry_after_secs": retry_after_secs }),
            ApiError::Upstream(e) => e.detail(),
            ApiError::Database(e) => json!({ "step": e.step() }),
            ApiError::Coded { detail, .. } => detail.clone(),
            _ => json!({}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            // The cause is logged, not shown: it may name tables or hosts.
            ApiError::Database(e) => {
                tracing::error!(error.message = %e, "database failure");
                format!("the user database failed while trying to {}", e.step())
            }
            ApiError::Internal(cause) => {
                tracing::error!(error.message = %cause, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            success: false,
            error: message,
            code: self.code(),
            detail: self.detail(),
            hint: self.hint(),
            request_id: request_context::current_request_id(),
            timestamp: crate::clock::now_rfc3339(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized { .. } => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited { retry_after_secs, .. } | ApiError::LoginBusy { retry_after_secs, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Upstream(e) => {
                if let Some(secs) = e.retry_after() {
                    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
            }
            _ => {}
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge { limit: BODY_LIMIT_BYTES };
        }
        // A value the newtypes refused (`to`, `message`, `email`...): their reason, naming the field.
        if let Some(field) = shared_contracts::field_error(&rejection) {
            return ApiError::Validation { message: field.message, detail: json!({ "field": field.field }) };
        }
        let reason = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "the body must be JSON with `Content-Type: application/json`".to_owned()
            }
            other => format!("the body is not valid JSON for this route: {}", other.body_text()),
        };
        ApiError::Validation { message: reason, detail: json!({ "body": "invalid" }) }
    }
}

/// `axum::Json` whose rejections are [`ApiError`]s (400 VALIDATION_ERROR as JSON, never plain text).
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// `axum::extract::Query` whose rejections are [`ApiError`]s: a 400 VALIDATION_ERROR as JSON naming
/// the parameter (`?per_page=9223372036854775808` was a plain-text 400 before).
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri).map(|query| Self(query.0)).map_err(query_rejected)
    }
}

/// axum says `Failed to deserialize query string: per_page: number too large to fit in target type`.
fn query_rejected(rejection: QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let reason = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
    let detail = match reason.split_once(": ") {
        Some((field, _)) if !field.is_empty() && !field.contains(' ') => json!({ "field": field }),
        _ => json!({ "query": "invalid" }),
    };
    ApiError::Validation { message: format!("the query string is not valid: {reason}"), detail }
}

/// An optional JSON body: an empty body is `T::default()`, anything else must parse.
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit: BODY_LIMIT_BYTES }
            } else {
                ApiError::validation(format!("the body could not be read: {}", rejection.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        shared_contracts::from_json_slice(&bytes).map(Self).map_err(|(e, field)| match field {
            Some(field) => {
                ApiError::Validation { message: field.message, detail: json!({ "field": field.field }) }
            }
            None => ApiError::validation(format!("the body is not valid JSON for this route: {e}")),
        })
    }
}
