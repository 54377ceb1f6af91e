//! The OpenAPI document against the router it is generated with: the same operations, each one
//! reaching a handler on the served hub, and the document served at `/api/openapi.json`.

use serde_json::Value;
use service_kit::openapi::{concrete_path, documented_operations, routed_operations};

use crate::helpers::{spawn_app, status_and_json};
use manager_double::{ManagerDouble, Mode};

/// A value for each path parameter that reaches the handler (an existing asset, an action).
fn example_value(name: &str) -> String {
    match name {
        "name" => "app.js",
        "action" => "start",
        "phone" => "5491123456789",
        _ => "1",
    }
    .to_owned()
}

#[test]
fn every_routed_operation_is_documented_and_every_documented_one_is_routed() {
    let router = central_hub::routes::router();
    let routed = routed_operations(&format!("{router:?}")).unwrap();
    let documented = documented_operations(&central_hub::openapi::document());
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but missing from the document (register them with routes! and #[utoipa::path]): \
         {undocumented:?}; documented but not routed: {unrouted:?}"
    );
    assert!(routed.contains(&("POST".to_owned(), "/api/whatsapp/{cliente_id}/send".to_owned())));
    assert!(routed.len() >= 25, "only {} operations found: {routed:?}", routed.len());
}

#[tokio::test]
async fn each_documented_operation_reaches_a_handler_on_the_served_hub() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;
    let token = app.admin_token().await;
    for (method, path) in documented_operations(&central_hub::openapi::document()) {
        let url = format!("{}{}", app.url, concrete_path(&path, example_value));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app.http.request(method.clone(), &url).bearer_auth(&token).send().await.unwrap();
        let status = response.status().as_u16();
        // Event streams never end: their status says enough.
        let body = if response.headers().get("content-type").is_some_and(|v| v == "text/event-stream") {
            String::new()
        } else {
            response.text().await.unwrap()
        };
        assert_ne!(status, 405, "{method} {path}: the router refuses the documented method: {body}");
        assert!(
            !(status == 404 && body.contains("no route for")),
            "{method} {path}: the router has no such route: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_document_is_served_as_openapi_3_1_with_the_bearer_scheme_and_the_error_body() {
    let manager = ManagerDouble::spawn(Mode::Normal).await;
    let app = spawn_app(&manager.url).await;
    let (status, doc) = status_and_json(app.get("/api/openapi.json", None).await).await;
    assert_eq!(status, 200, "{doc}");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let send = &doc["paths"]["/api/whatsapp/{cliente_id}/send"]["post"];
    assert_eq!(send["security"], serde_json::json!([{"bearer": []}]));
    for code in ["400", "401", "403", "409", "429"] {
        assert_eq!(
            send["responses"][code]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "the send's {code} answer"
        );
    }
    assert_eq!(doc["paths"]["/health"]["get"]["security"], Value::Null, "/health needs no token");
    let example = &doc["components"]["schemas"]["ErrorBody"]["example"];
    assert_eq!(example["code"], "SESSION_NOT_READY", "the contract test's example: {example}");
    assert_eq!(doc["components"]["schemas"]["StatusBody"]["example"]["state"], "QR_REQUIRED");
    app.stop().await;
}
