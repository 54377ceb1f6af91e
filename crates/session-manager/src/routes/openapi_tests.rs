//! The OpenAPI document against the router it is generated with: the same operations, each one
//! reaching a handler, and the document served at `/openapi.json` without the token.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use service_kit::openapi::{concrete_path, documented_operations, routed_operations};

use super::tests::{TOKEN, app, call};

#[tokio::test]
async fn every_routed_operation_is_documented_and_every_documented_one_is_routed() {
    let (app, _dir) = app(&[]).await;
    let routed = routed_operations(&format!("{:?}", app.router())).unwrap();
    let documented = documented_operations(&crate::openapi::document());
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but missing from the document (register them with routes! and #[utoipa::path]): \
         {undocumented:?}; documented but not routed: {unrouted:?}"
    );
    assert!(routed.contains(&("POST".to_owned(), "/send".to_owned())));
    assert!(routed.len() >= 11, "only {} operations found: {routed:?}", routed.len());
}

#[tokio::test]
async fn each_documented_operation_reaches_a_handler() {
    let (app, _dir) = app(&[]).await;
    for (method, path) in documented_operations(&crate::openapi::document()) {
        // No path has parameters today; any added later gets a plain value.
        let uri = concrete_path(&path, |_| "1".to_owned());
        let request = Request::builder()
            .method(method.as_str())
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(app.router(), request).await.unwrap();
        let status = response.status();
        // The event stream never ends: its status says enough.
        if path != "/events" {
            let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
            let body = String::from_utf8_lossy(&body);
            assert!(
                !(status == StatusCode::NOT_FOUND && body.contains(r#""code":"NOT_FOUND""#)),
                "{method} {path}: the router has no such route: {body}"
            );
        }
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: the router refuses the method");
    }
}

#[tokio::test]
async fn the_document_is_served_without_the_token() {
    let (app, _dir) = app(&[]).await;
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let (status, _, doc) = call(&app, request).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    let send = &doc["paths"]["/send"]["post"];
    assert_eq!(send["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(
        send["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert_eq!(doc["paths"]["/status"]["get"]["security"], serde_json::json!([{}, {"bearer": []}]));
    assert_eq!(doc["components"]["schemas"]["SendRequest"]["example"]["to"], "5491123456789");
}
