//! A Server-Sent Events reader for the tests: follows a stream in a background task and hands
//! each event over, so a test awaits the one it wants with a deadline.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `event:` (`message` when absent).
    pub event: String,
    pub id: Option<String>,
    /// `data:` parsed as JSON (`Value::String` when it is not JSON).
    pub data: Value,
}

/// An open stream; dropping it closes the connection.
pub struct SseStream {
    events: mpsc::UnboundedReceiver<SseEvent>,
    task: JoinHandle<()>,
}

impl Drop for SseStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SseStream {
    /// Opens `url` with a bearer token and extra headers; fails unless it answers 200.
    pub async fn open(url: &str, token: &str, headers: &[(&str, &str)]) -> anyhow::Result<SseStream> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
        let mut request = client.get(url).bearer_auth(token).header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send().await.with_context(|| format!("GET {url}"))?;
        if response.status() != 200 {
            let status = response.status();
            bail!("GET {url} answered {status}: {}", response.text().await.unwrap_or_default());
        }
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if let Some(event) = parse_block(&block)
                        && tx.send(event).is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(SseStream { events, task })
    }

    /// The next event for which `wanted` holds (the others are skipped), within `within`.
    pub async fn next_matching(
        &mut self,
        what: &str,
        within: Duration,
        mut wanted: impl FnMut(&SseEvent) -> bool,
    ) -> anyhow::Result<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => bail!("timed out after {within:?} waiting for {what}"),
                Ok(None) => bail!("the stream ended while waiting for {what}"),
                Ok(Some(event)) if wanted(&event) => return Ok(event),
                Ok(Some(_)) => {}
            }
        }
    }

    /// Every event received so far without waiting.
    pub fn drain(&mut self) -> Vec<SseEvent> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }
}

/// One event block (lines up to a blank line); `None` for a comment-only block (keep-alive).
fn parse_block(block: &str) -> Option<SseEvent> {
    let (mut event, mut id, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        let (field, value) =
            line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "event" => event = Some(value.to_owned()),
            "id" => id = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if event.is_none() && data.is_empty() {
        return None;
    }
    let data = data.join("\n");
    let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
    Some(SseEvent { event: event.unwrap_or_else(|| "message".into()), id, data })
}
