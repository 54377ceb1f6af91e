//! The simulator's HTTP surface: the page, its QR images, the page API and the control API.

mod control;
mod page;
mod page_api;
mod qr;

use axum::Router;
use axum::body::Bytes;
use axum::http::Uri;
use serde::de::DeserializeOwned;

use crate::error::SimError;
use crate::state::AppState;

/// Every route of the simulator, on `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(page::router())
        .merge(qr::router())
        .merge(page_api::router())
        .merge(control::router())
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(uri: Uri) -> SimError {
    SimError::NotFound(uri.path().to_owned())
}

/// Parses a JSON body into `T`; an empty body gives `T::default()` when `empty_ok`.
fn parse_json<T: DeserializeOwned + Default>(body: &Bytes, empty_ok: bool) -> Result<T, SimError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if empty_ok {
            Ok(T::default())
        } else {
            Err(SimError::BadRequest("the request needs a JSON body".to_owned()))
        };
    }
    serde_json::from_slice(body).map_err(|e| SimError::BadRequest(format!("invalid JSON body: {e}")))
}
