//! Regression tests for what schemathesis (`tests/tests/openapi_fuzz.rs`) found, each reproducing
//! the input it generated.

use crate::helpers::{hub_as_admin, status_and_json};
use shared_contracts::SessionState;

/// A query value axum's `Query` refused was a plain-text 400: now a JSON VALIDATION_ERROR naming
/// the parameter, like every other bad input.
#[tokio::test]
async fn a_query_parameter_out_of_range_is_a_json_validation_error_naming_it() {
    let (_manager, app, token) = hub_as_admin(SessionState::Init).await;
    for (method, path, field) in [
        (reqwest::Method::GET, "/api/opt-outs?cliente_id=9223372036854775808", "cliente_id"),
        (reqwest::Method::DELETE, "/api/opt-outs/0?cliente_id=9223372036854775808", "cliente_id"),
        (reqwest::Method::GET, "/api/campaigns/0/recipients?per_page=9223372036854775808", "per_page"),
        (reqwest::Method::GET, "/api/campaigns/0/recipients?page=x", "page"),
    ] {
        let response = app
            .http
            .request(method.clone(), format!("{}{path}", app.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{method} {path}: the error body is JSON"
        );
        let (status, body) = status_and_json(response).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{method} {path}: {body}"
        );
        assert_eq!(body["detail"]["field"], field, "{method} {path}: {body}");
    }
    app.stop().await;
}
