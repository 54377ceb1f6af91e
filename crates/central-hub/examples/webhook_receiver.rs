//! A webhook receiver for benchmarks and by-hand checks: answers 200 to every POST, counts them,
//! and serves the count on `GET /count` (`{"count": N}`). With `RECEIVER_DUMP=path` the first
//! request is written there as JSON (`{"headers": {...}, "body": "..."}`: the README's signature
//! verification example reads it). Prints `webhook-receiver listening on http://ADDR`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{Value, json};

struct Shared {
    count: AtomicU64,
    dump: Option<String>,
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> &'static str {
    let n = shared.count.fetch_add(1, Ordering::Relaxed);
    if n == 0
        && let Some(path) = &shared.dump
    {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap_or_default())))
            .collect();
        let text = json!({ "headers": headers, "body": String::from_utf8_lossy(&body) }).to_string();
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("webhook-receiver: could not write {path}: {e}");
        }
    }
    "ok"
}

async fn count(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "count": shared.count.load(Ordering::Relaxed) }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let shared = Arc::new(Shared { count: AtomicU64::new(0), dump: std::env::var("RECEIVER_DUMP").ok() });
    let port = std::env::var("RECEIVER_PORT").ok().and_then(|p| p.parse::<u16>().ok()).unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("webhook-receiver listening on http://{}", listener.local_addr()?);
    let app = axum::Router::new().route("/count", get(count)).fallback(receive).with_state(shared);
    axum::serve(listener, app).await
}
