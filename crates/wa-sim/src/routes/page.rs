//! `GET /`: the simulated WhatsApp Web page, or the refusal page for headless browsers.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::config::PageConfig;
use crate::state::AppState;

const PAGE_SCRIPT: &str = include_str!("../../assets/page.js");
const PAGE_STYLE: &str = include_str!("../../assets/page.css");

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/", get(page))
}

async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if user_agent.contains("HeadlessChrome") && !state.config().allow_headless_ua {
        return Html(REFUSAL_PAGE).into_response();
    }
    let config = serde_json::to_string(&PageConfig::from_config(state.config(), state.without_modules()))
        .unwrap_or_else(|_| "{}".to_owned())
        // The JSON sits inside a <script>: never let it close the element.
        .replace("</", "<\\/");
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>WhatsApp</title>\
         <style>{PAGE_STYLE}</style></head>\n<body><div id=\"app\"></div>\n\
         <script>window.__SIM_CONFIG = {config};</script>\n<script>{PAGE_SCRIPT}</script>\n</body></html>\n"
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

const REFUSAL_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>WhatsApp</title></head><body><div class=\"landing-wrapper\"><h1>WhatsApp works with Google Chrome 60+</h1>\
<p>To use WhatsApp, update Chrome or use Mozilla Firefox, Safari, Microsoft Edge or Opera.</p></div></body></html>\n";
