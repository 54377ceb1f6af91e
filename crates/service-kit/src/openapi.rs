//! OpenAPI plumbing both services share (feature `openapi`): the `ErrorBody` responses every
//! operation can give (answered by middleware, not by the handler), and the two lists the route
//! coverage tests compare: the operations an axum `Router` really routes, and those a document lists.
//!
//! axum's `Router` has no API listing its routes, but its `Debug` output names every route's path
//! and, per route, the `Allow` value its method router builds. [`routed_operations`] reads that, so a
//! test sees a `.route(...)` added behind the document's back; it fails loudly (never silently
//! passes) if a newer axum prints something it does not understand.

use std::collections::BTreeSet;

use shared_contracts::ErrorBody;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

/// One operation: upper-case method and path as axum writes it (`/api/campaigns/{id}`).
pub type MethodPath = (String, String);

/// A response whose body is the shared `ErrorBody`.
pub fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorBody::name()))).build(),
        )
        .build()
        .into()
}

/// Adds `responses` (status, description) to every operation `applies` to that does not list that
/// status yet, and the `ErrorBody` schema they refer to.
pub fn add_common_responses(
    doc: &mut OpenApi,
    applies: impl Fn(&Operation) -> bool,
    responses: &[(u16, &str)],
) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    let mut nested = Vec::new();
    <ErrorBody as ToSchema>::schemas(&mut nested);
    components.schemas.extend(nested);
    for item in doc.paths.paths.values_mut() {
        for (_, operation) in operations_mut(item) {
            if !applies(operation) {
                continue;
            }
            for (status, description) in responses {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(description));
            }
        }
    }
}

/// The operations of a path item with their upper-case method.
pub fn operations_mut(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("PUT", item.put.as_mut()),
        ("POST", item.post.as_mut()),
        ("DELETE", item.delete.as_mut()),
        ("OPTIONS", item.options.as_mut()),
        ("HEAD", item.head.as_mut()),
        ("PATCH", item.patch.as_mut()),
        ("TRACE", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|operation| (method, operation)))
    .collect()
}

/// Every (method, path) the document lists.
pub fn documented_operations(doc: &OpenApi) -> BTreeSet<MethodPath> {
    let mut doc = doc.clone();
    let mut out = BTreeSet::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, _) in operations_mut(item) {
            out.insert((method.to_owned(), path.clone()));
        }
    }
    out
}

/// Every (method, path) `router_debug` (`format!("{router:?}")` of an axum 0.8 `Router`) routes,
/// without the HEAD axum adds to each GET and without the fallbacks.
pub fn routed_operations(router_debug: &str) -> Result<BTreeSet<MethodPath>, String> {
    // The fallbacks live in `fallback_router`, after the routes.
    let routes = router_debug
        .split_once("fallback_router:")
        .map(|(routes, _)| routes)
        .ok_or("no `fallback_router:` in the Router's Debug output (has axum's format changed?)")?;
    let mut paths: Vec<(u64, String)> = Vec::new();
    let mut methods: Vec<(u64, Vec<String>)> = Vec::new();
    let mut rest = routes;
    while let Some(start) = rest.find("RouteId(") {
        rest = &rest[start + "RouteId(".len()..];
        let (id, after) = rest.split_once("): ").ok_or("RouteId without `): `")?;
        let id: u64 = id.parse().map_err(|_| format!("RouteId({id}) is not a number"))?;
        if let Some(quoted) = after.strip_prefix('"') {
            let (path, _) = quoted.split_once('"').ok_or("unterminated path")?;
            paths.push((id, path.to_owned()));
            continue;
        }
        // An endpoint: its method router's `allow_header: Bytes(b"GET,HEAD")` comes before the next route.
        let end = after.find("RouteId(").unwrap_or(after.len());
        let endpoint = &after[..end];
        let allow = endpoint
            .split_once("allow_header: Bytes(b\"")
            .and_then(|(_, value)| value.split_once('"'))
            .map(|(value, _)| value)
            .ok_or_else(|| {
                format!("route {id} has no method list (a service or `any` route cannot be documented): {endpoint}")
            })?;
        let list = allow.split(',').filter(|m| *m != "HEAD" || !allow.contains("GET")).map(str::to_owned);
        methods.push((id, list.collect()));
    }
    if paths.is_empty() {
        return Err("no route found in the Router's Debug output (has axum's format changed?)".into());
    }
    let mut out = BTreeSet::new();
    for (id, path) in paths {
        let (_, list) = methods
            .iter()
            .find(|(other, _)| *other == id)
            .ok_or_else(|| format!("no methods found for route {path}"))?;
        out.extend(list.iter().map(|method| (method.clone(), path.clone())));
    }
    Ok(out)
}

/// `path` with each `{param}` replaced by `value(param)`: a concrete URL to request an operation at.
pub fn concrete_path(path: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else { break };
        out.push_str(&rest[..start]);
        out.push_str(&value(&rest[start + 1..start + end]));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::{delete, get};

    #[test]
    fn the_routes_of_a_router_are_read_from_it() {
        let router: Router = Router::new()
            .route("/a", get(|| async {}).post(|| async {}))
            .route("/b/{id}", delete(|| async {}))
            .fallback(|| async {})
            .layer(tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            ));
        let found = routed_operations(&format!("{router:?}")).unwrap();
        let expected: BTreeSet<MethodPath> = [("GET", "/a"), ("POST", "/a"), ("DELETE", "/b/{id}")]
            .into_iter()
            .map(|(m, p)| (m.to_owned(), p.to_owned()))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn parameters_are_filled_in() {
        let path = concrete_path("/api/campaigns/{id}/{action}", |name| format!("<{name}>"));
        assert_eq!(path, "/api/campaigns/<id>/<action>");
        assert_eq!(concrete_path("/health", |_| unreachable!()), "/health");
    }

    #[test]
    fn a_route_without_a_method_list_is_refused() {
        let router: Router = Router::new().route_service(
            "/svc",
            tower::service_fn(|_| async {
                Ok::<_, std::convert::Infallible>(axum::response::Response::new(axum::body::Body::empty()))
            }),
        );
        let error = routed_operations(&format!("{router:?}")).unwrap_err();
        assert!(error.contains("cannot be documented"), "{error}");
    }
}
