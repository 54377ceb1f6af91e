//! The DevTools relay: chromiumoxide 0.9 speaks CDP over WebSocket only, so [`Relay`] bridges it to
//! the pipe (`devtools_pipe.rs`): a WebSocket listener on 127.0.0.1 whose path holds 32 random
//! bytes that never leave this process. It accepts exactly one connection (chromiumoxide's, made
//! right after the launch) and then closes. Anything else gets nothing: a WebSocket upgrade on
//! another path is answered 404 and closed, a plain HTTP request (`/json/version`, ...) is closed
//! unanswered. deploy/README.md ("DevTools endpoint") states the residual risk.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::time::Duration;

use async_tungstenite::tokio::TokioAdapter;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::http::StatusCode;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::{WebSocketReceiver, WebSocketSender, WebSocketStream};
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::devtools_pipe::DevtoolsPipe;

/// A connection must complete its WebSocket handshake within this, or it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections handshaking at once; more are closed at once (the one we wait for is local and fast).
const MAX_PENDING_HANDSHAKES: usize = 16;

type Ws = WebSocketStream<TokioAdapter<TcpStream>>;

/// The one-shot WebSocket listener relaying to the pipe. Dropping it ends the relay (and so
/// closes the pipe to the browser).
pub struct Relay {
    url: String,
    port: u16,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on 127.0.0.1 (a free port) at a fresh secret path and relays its one connection.
    pub async fn start(pipe: DevtoolsPipe) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = listener.local_addr()?.port();
        let path = format!("/devtools/browser/{}", secret_hex()?);
        let url = format!("ws://127.0.0.1:{port}{path}");
        let task = tokio::spawn(async move {
            let Some(ws) = accept_one(listener, &path).await else { return };
            relay(ws, pipe).await;
        });
        Ok(Self { url, port, task })
    }

    /// The address to give chromiumoxide (it holds the secret: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address without its secret, for logs and errors.
    pub fn redacted_url(&self) -> String {
        format!("ws://127.0.0.1:{}/devtools/browser/<secret>", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// 32 bytes from the kernel's CSPRNG, as 64 hex digits.
fn secret_hex() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    }))
}

/// Compares without an early exit, so the answer's timing does not reveal a matching prefix.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Accepts connections until one completes the WebSocket handshake on `path`, then stops
/// listening (the listener is dropped) and abandons any other handshake.
async fn accept_one(listener: TcpListener, path: &str) -> Option<Ws> {
    let mut pending: JoinSet<Option<Ws>> = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if pending.len() < MAX_PENDING_HANDSHAKES => {
                    pending.spawn(handshake(stream, path.to_owned()));
                }
                Ok(_) => tracing::warn!("DevTools relay: too many connections at once; one refused"),
                Err(e) => {
                    tracing::warn!(error = %e, "DevTools relay: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(done) = pending.join_next(), if !pending.is_empty() => {
                if let Ok(Some(ws)) = done {
                    return Some(ws);
                }
            }
        }
    }
}

/// The WebSocket handshake of one connection; `None` if it is not a WebSocket upgrade on `path`
/// from a non-browser client (browsers always send `Origin`).
#[allow(clippy::result_large_err)] // the callback's shape is tungstenite's `Callback`
async fn handshake(stream: TcpStream, path: String) -> Option<Ws> {
    // Every CDP message is one small frame: without TCP_NODELAY, Nagle holds a frame back until the
    // previous one is acknowledged, and delayed ACKs turn each round trip of a send into ~40 ms.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "DevTools relay: TCP_NODELAY not set");
    }
    let check = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if same_secret(request.uri().path(), &path) && !request.headers().contains_key("origin") {
            return Ok(response);
        }
        let mut refusal = ErrorResponse::new(None);
        *refusal.status_mut() = StatusCode::NOT_FOUND;
        Err(refusal)
    };
    let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
    let accepted = async_tungstenite::tokio::accept_hdr_async_with_config(stream, check, Some(config));
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, accepted).await {
        Ok(Ok(ws)) => Some(ws),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "DevTools relay: a connection was refused");
            None
        }
        Err(_) => {
            tracing::warn!("DevTools relay: a connection did not complete its handshake in time");
            None
        }
    }
}

/// Copies messages both ways until either side closes.
async fn relay(ws: Ws, pipe: DevtoolsPipe) {
    let (mut sink, stream) = ws.split();
    let DevtoolsPipe { to_browser, from_browser } = pipe;
    tokio::select! {
        () = to_the_browser(stream, to_browser) => {
            tracing::debug!("DevTools relay: the client closed the connection");
        }
        () = from_the_browser(&mut sink, from_browser) => {
            tracing::debug!("DevTools relay: the browser closed its pipe");
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.close(None)).await;
        }
    }
}

async fn to_the_browser(
    mut stream: WebSocketReceiver<TokioAdapter<TcpStream>>,
    mut to_browser: pipe::Sender,
) {
    while let Some(message) = stream.next().await {
        let bytes = match &message {
            Ok(Message::Text(text)) => text.as_bytes(),
            Ok(Message::Binary(bytes)) => bytes.as_ref(),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => return,
        };
        if to_browser.write_all(bytes).await.is_err() || to_browser.write_all(b"\0").await.is_err() {
            return;
        }
    }
}

async fn from_the_browser(
    sink: &mut WebSocketSender<TokioAdapter<TcpStream>>,
    mut from_browser: BufReader<pipe::Receiver>,
) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match from_browser.read_until(0, &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buf.last() == Some(&0) {
            buf.pop();
        }
        let text = match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(error = %e, "DevTools relay: the browser sent a message that is not UTF-8");
                continue;
            }
        };
        if sink.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::super::devtools_pipe::fake::relay_and_fake_browser;
    use super::*;

    async fn raw_http(port: u16, request: &str) -> String {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer)).await;
        answer
    }

    fn upgrade(path: &str, extra: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        )
    }

    #[test]
    fn secrets_are_long_fresh_and_compared_whole() {
        let (a, b) = (secret_hex().expect("random"), secret_hex().expect("random"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret(&a, &a[..63]));
    }

    #[tokio::test]
    async fn the_relay_answers_only_its_secret_path_once_and_carries_messages_both_ways() {
        let (ours, mut browser) = relay_and_fake_browser();
        let relay = Relay::start(ours).await.expect("relay");
        let port = relay.port;
        assert!(relay.url().len() > 64 && !relay.redacted_url().contains(&relay.url()[30..]));

        // What a local process probing the port gets: nothing a DevTools client could use.
        let discovery = raw_http(port, "GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
        assert!(
            !discovery.contains("webSocketDebuggerUrl") && !discovery.starts_with("HTTP/1.1 200"),
            "{discovery}"
        );
        let list = raw_http(port, "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
        assert!(!list.contains("devtoolsFrontendUrl"), "{list}");
        let guessed = raw_http(port, &upgrade("/devtools/browser/0000", "")).await;
        assert!(guessed.starts_with("HTTP/1.1 404"), "{guessed}");
        // A web page (DNS rebinding) sends an Origin: refused even on the right path.
        let path = relay.url().trim_start_matches(&format!("ws://127.0.0.1:{port}")).to_owned();
        let from_page = raw_http(port, &upgrade(&path, "Origin: http://evil.example\r\n")).await;
        assert!(from_page.starts_with("HTTP/1.1 404"), "{from_page}");

        // The client (chromiumoxide in the manager) connects and talks to the browser through it.
        let (mut ws, _) = async_tungstenite::tokio::connect_async(relay.url()).await.expect("ws connect");
        ws.send(Message::Text(r#"{"id":1,"method":"Browser.getVersion"}"#.into())).await.expect("send");
        let mut received = Vec::new();
        browser.commands.read_until(0, &mut received).await.expect("read");
        assert_eq!(received, b"{\"id\":1,\"method\":\"Browser.getVersion\"}\0");
        browser
            .events
            .write_all(b"{\"id\":1,\"result\":{}}\0{\"method\":\"Target.x\"}\0")
            .await
            .expect("write");
        for expected in [r#"{"id":1,"result":{}}"#, r#"{"method":"Target.x"}"#] {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => assert_eq!(text.as_str(), expected),
                other => panic!("unexpected {other:?}"),
            }
        }

        // One connection only: the listener is gone once the client is attached.
        let second = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await;
        assert!(second.is_err(), "a second connection was accepted");

        // The browser exits (its end of the pipe closes): the client's connection ends.
        drop(browser);
        let end = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(end.is_ok(), "the connection stayed open after the browser closed its pipe");
    }
}
