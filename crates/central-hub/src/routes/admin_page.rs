//! The admin web page, embedded in the binary: `/` and `/admin/` serve the page, `/admin/assets/*`
//! its JavaScript modules (the entry `app.js` and what it imports), stylesheet and icon. Plain HTML, CSS and JavaScript modules: nothing
//! to build and nothing else to install. Every asset carries an `ETag` and `Cache-Control: no-cache`,
//! so a browser revalidates (a cheap 304) and never runs a script older than the page.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// An asset of `assets/admin/`, embedded under its file name.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("../../assets/admin/", $name)),
        }
    };
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

/// Everything under `/admin/assets/`: the entry module `app.js`, the modules it imports (one job
/// each, named in their first line), the labels, the stylesheet and the icon.
const ASSETS: [Asset; 18] = [
    asset!("app.js", JAVASCRIPT),
    asset!("i18n.js", JAVASCRIPT),
    asset!("state.js", JAVASCRIPT),
    asset!("api.js", JAVASCRIPT),
    asset!("live.js", JAVASCRIPT),
    asset!("session.js", JAVASCRIPT),
    asset!("banners.js", JAVASCRIPT),
    asset!("section-status.js", JAVASCRIPT),
    asset!("section-qr.js", JAVASCRIPT),
    asset!("section-actions.js", JAVASCRIPT),
    asset!("section-pairing.js", JAVASCRIPT),
    asset!("section-send.js", JAVASCRIPT),
    asset!("section-inbox.js", JAVASCRIPT),
    asset!("section-campaigns.js", JAVASCRIPT),
    asset!("campaign-form.js", JAVASCRIPT),
    asset!("section-webhooks.js", JAVASCRIPT),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// Revalidate on every use: the ETag makes that a 304 without a body.
const CACHE_CONTROL: &str = "no-cache";

/// The ETags, computed once (`DefaultHasher::new()` has fixed keys: stable within a build).
static ETAGS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    std::iter::once(&INDEX)
        .chain(ASSETS.iter())
        .map(|asset| {
            let mut hasher = DefaultHasher::new();
            asset.body.hash(&mut hasher);
            (asset.name, format!("\"{:016x}\"", hasher.finish()))
        })
        .collect()
});

pub fn router<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(root))
        .routes(routes!(admin))
        .routes(routes!(admin_slash))
        .routes(routes!(asset))
}

/// The admin page.
#[utoipa::path(get, path = "/", tag = "admin page", responses(
    (status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
    (status = 304, description = "Not modified (If-None-Match)"),
))]
async fn root(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// The admin page.
#[utoipa::path(get, path = "/admin", tag = "admin page", responses(
    (status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
    (status = 304, description = "Not modified (If-None-Match)"),
))]
async fn admin(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// The admin page.
#[utoipa::path(get, path = "/admin/", tag = "admin page", responses(
    (status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
    (status = 304, description = "Not modified (If-None-Match)"),
))]
async fn admin_slash(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// A script, style sheet or icon of the admin page.
#[utoipa::path(get, path = "/admin/assets/{name}", tag = "admin page",
    params(("name" = String, Path, description = "A file name, e.g. `app.js`")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript; charset=utf-8"),
            (String = "text/css; charset=utf-8"),
            (String = "image/svg+xml"),
        )),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "NOT_FOUND: no such file", body = shared_contracts::ErrorBody),
    ))]
async fn asset(Path(name): Path<String>, uri: Uri, headers: HeaderMap) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .map(|asset| serve(asset, &headers))
        .ok_or_else(|| ApiError::NotFound { method: "GET".into(), path: uri.path().to_owned() })
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = ETAGS.iter().find(|(name, _)| *name == asset.name).map(|(_, etag)| etag.as_str());
    let fresh = etag.is_some_and(|etag| {
        request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|candidates| candidates.split(',').any(|c| c.trim() == etag || c.trim() == "*"))
    });
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
    if let Some(value) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
        headers.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::get(path);
        if let Some(etag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let response = axum::Router::from(router::<()>())
            .oneshot(request.body(Body::empty()).expect("a valid request"))
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("the body").to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_with_their_content_types() {
        for (path, content_type, needle) in [
            ("/", "text/html; charset=utf-8", "<script type=\"module\" src=\"/admin/assets/app.js\">"),
            ("/admin/", "text/html; charset=utf-8", "Conectar WhatsApp"),
            ("/admin/assets/app.js", "text/javascript; charset=utf-8", "import {"),
            ("/admin/assets/i18n.js", "text/javascript; charset=utf-8", "Esperando escaneo"),
            ("/admin/assets/style.css", "text/css; charset=utf-8", ".indicator"),
            ("/admin/assets/icon.svg", "image/svg+xml", "<svg"),
        ] {
            let (status, headers, body) = get(path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{path}");
            assert!(headers.contains_key(header::ETAG), "{path}");
            assert!(body.contains(needle), "{path} lacks {needle}");
        }
    }

    #[tokio::test]
    async fn a_known_etag_gets_304_and_an_unknown_asset_404() {
        let (_, headers, _) = get("/admin/assets/app.js", None).await;
        let etag = headers[header::ETAG].to_str().expect("ascii").to_owned();
        let (status, headers, body) = get("/admin/assets/app.js", Some(&etag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(headers[header::ETAG], etag.as_str());
        assert!(body.is_empty());
        let (status, _, _) = get("/admin/assets/app.js", Some("\"other\"")).await;
        assert_eq!(status, StatusCode::OK);

        let (status, _, body) = get("/admin/assets/secret.toml", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("NOT_FOUND"), "{body}");
    }

    fn asset_named(name: &str) -> &'static Asset {
        ASSETS.iter().find(|asset| asset.name == name).unwrap_or_else(|| panic!("{name} is embedded"))
    }

    fn modules() -> impl Iterator<Item = &'static Asset> {
        ASSETS.iter().filter(|asset| asset.content_type == JAVASCRIPT)
    }

    /// The `./name.js` files a module imports (`import ... from "./name.js";`).
    fn imports(module: &Asset) -> Vec<&'static str> {
        module
            .body
            .lines()
            .filter(|line| line.starts_with("import "))
            .filter_map(|line| line.split(" from \"./").nth(1)?.split('"').next())
            .collect()
    }

    #[test]
    fn every_module_is_embedded_reached_from_the_entry_and_says_what_it_is_for() {
        let mut reached = BTreeSet::from(["app.js"]);
        let mut queue = vec!["app.js"];
        while let Some(name) = queue.pop() {
            let module = asset_named(name);
            for import in imports(module) {
                assert!(
                    modules().any(|asset| asset.name == import),
                    "{name} imports ./{import}, which is not in ASSETS (so the page would get a 404)"
                );
                if reached.insert(import) {
                    queue.push(import);
                }
            }
        }
        assert!(reached.len() >= 10, "the entry reaches {reached:?}");
        for module in modules() {
            assert!(reached.contains(module.name), "{} is embedded but nothing imports it", module.name);
            assert!(module.body.starts_with("// "), "{} starts with a comment saying its job", module.name);
        }
    }

    #[tokio::test]
    async fn every_module_is_served_as_javascript() {
        for module in modules() {
            let (status, headers, body) = get(&format!("/admin/assets/{}", module.name), None).await;
            assert_eq!(status, StatusCode::OK, "{}", module.name);
            assert_eq!(headers[header::CONTENT_TYPE], JAVASCRIPT, "{}", module.name);
            assert_eq!(body, module.body, "{}", module.name);
        }
    }

    /// The quoted keys of one language table in i18n.js (`    "key": "text",` lines).
    fn table_keys(table: &str) -> BTreeSet<&str> {
        table
            .lines()
            .filter_map(|line| line.strip_prefix("    \"")?.split_once("\": ").map(|(key, _)| key))
            .collect()
    }

    #[test]
    fn both_languages_have_every_label_the_page_uses() {
        let i18n = asset_named("i18n.js").body;
        let (es, en) = i18n.split_once("\n  en: {").expect("an `en` table after the `es` one");
        let (es, en) = (table_keys(es), table_keys(en));
        assert!(es.len() > 40, "parsed only {} Spanish labels", es.len());
        assert_eq!(es, en, "the es and en tables must have the same keys");

        let mut used = BTreeSet::new();
        for attribute in ["data-i18n=\"", "data-i18n-placeholder=\""] {
            for part in INDEX.body.split(attribute).skip(1) {
                used.insert(part.split('"').next().unwrap_or_default());
            }
        }
        // Every string literal of the modules shaped like a label key (`group.name`, lowercase).
        let groups: BTreeSet<&str> = es.iter().filter_map(|key| key.split('.').next()).collect();
        for module in modules().filter(|asset| asset.name != "i18n.js") {
            for literal in module.body.split('"') {
                let shaped = literal.contains('.')
                    && literal.chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_');
                if shaped && literal.split('.').next().is_some_and(|group| groups.contains(group)) {
                    used.insert(literal);
                }
            }
        }
        assert!(
            used.contains("qr.expires_in") && used.contains("send.sent"),
            "labels of the sections are seen"
        );
        let missing: Vec<_> = used.iter().filter(|key| !es.contains(*key)).collect();
        assert!(missing.is_empty(), "labels used but not defined: {missing:?}");
        for label in
            ["Conectar WhatsApp", "Desconectado", "Conectando...", "Esperando escaneo", "Conectado ("]
        {
            assert!(i18n.contains(label), "the Spanish labels include {label}");
        }
    }
}
