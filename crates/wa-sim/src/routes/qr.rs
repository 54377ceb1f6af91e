//! `GET /__sim/qr.png?data=...`: the QR code the page draws into its canvas.

use std::io::Cursor;

use axum::Router;
use axum::extract::Query;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use image::{ImageFormat, Luma};
use qrcode::QrCode;
use serde::Deserialize;

use crate::error::SimError;
use crate::state::AppState;

/// Pixels per QR module: large enough for any decoder reading the canvas back.
const MODULE_PX: u32 = 6;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/__sim/qr.png", get(qr_png))
}

#[derive(Deserialize)]
struct QrQuery {
    data: String,
}

async fn qr_png(Query(query): Query<QrQuery>) -> Result<impl IntoResponse, SimError> {
    let png = render_png(&query.data)?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], png))
}

/// Encodes `data` as a QR code PNG (black on white, with the quiet zone).
pub(crate) fn render_png(data: &str) -> Result<Vec<u8>, SimError> {
    if data.is_empty() {
        return Err(SimError::BadRequest("`data` is empty".to_owned()));
    }
    let code = QrCode::new(data.as_bytes()).map_err(|e| SimError::QrRender(e.to_string()))?;
    let image = code.render::<Luma<u8>>().module_dimensions(MODULE_PX, MODULE_PX).build();
    let mut png = Cursor::new(Vec::new());
    image.write_to(&mut png, ImageFormat::Png).map_err(|e| SimError::QrRender(e.to_string()))?;
    Ok(png.into_inner())
}
