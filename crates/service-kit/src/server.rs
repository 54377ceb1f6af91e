//! The accept loop every service runs (axum's `serve` sets no header-read timeout: hyper needs a
//! timer for it), and the stop signal.
//!
//! A connection must send a request's headers within `header_read_timeout` (and a kept-alive one
//! waiting for its next request is closed after it), and a body within `body_read_timeout` once its
//! headers are in: a client that opens connections and sends half a request cannot hold them (and
//! the service's memory) open. At the stop, accepting ends and open connections get `drain_limit`
//! to finish their requests.
//!
//! Connections may be upgraded (`Connection: upgrade`, e.g. to a WebSocket): the handler takes the
//! raw connection with `hyper::upgrade::on` and owns it from then on (a stop no longer waits for it;
//! whoever upgraded closes it at the stop).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// The timeouts of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// A request's headers must arrive within this time; an idle kept-alive connection is closed after it.
    pub header_read_timeout: Duration,
    /// A request body must arrive within this time once its headers are in.
    pub body_read_timeout: Duration,
    /// How long a stop waits for open connections to finish before it returns anyway.
    pub drain_limit: Duration,
}

/// A failed `accept` (out of file descriptors and the like) pauses the loop this long rather than spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves HTTP/1 connections on `listener` until `signal` resolves, then stops accepting and lets
/// open connections finish (bounded by `options.drain_limit`). Each request carries the peer's
/// address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    signal: impl Future<Output = ()> + Send + 'static,
) {
    // Each connection task holds a clone of `open`: the drain ends when the last one is dropped.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let (stopping, stop_seen) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout).keep_alive(true);
    tokio::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error.message = %e, "could not accept a connection");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let body_read_timeout = options.body_read_timeout;
        let service = hyper::service::service_fn(move |request: axum::http::Request<Incoming>| {
            let mut request =
                request.map(|body| axum::body::Body::new(TimeoutBody::new(body_read_timeout, body)));
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(request)
        });
        let connection = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let (open, mut stop_seen) = (open.clone(), stop_seen.clone());
        tokio::spawn(async move {
            tokio::pin!(connection);
            let stop = async move {
                // Only the moment matters, not the value (the guard must not live across an await).
                let _ = stop_seen.wait_for(|stopping| *stopping).await.map(drop);
            };
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = stop => {
                    // Finish the request in flight, then close instead of keeping the connection alive.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error.message = %e, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open);
    let _ = stopping.send(true);
    if tokio::time::timeout(options.drain_limit, all_closed.recv()).await.is_err() {
        tracing::warn!(
            "some connections were still open {} s after the stop: closing them",
            options.drain_limit.as_secs()
        );
    }
}

/// Resolves at the first SIGINT or SIGTERM (logging which). The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives right after a service printed
/// its listening line (and before its serve loop polls the future) still stops it gracefully. If a
/// signal cannot be listened for, that is logged and the other still works.
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn received(listener: std::io::Result<Signal>, name: &'static str) {
        match listener {
            Ok(mut listener) => {
                listener.recv().await;
            }
            Err(e) => {
                tracing::error!(error.message = %e, "cannot listen for {name}");
                std::future::pending::<()>().await;
            }
        }
    }
    let interrupt = received(signal(SignalKind::interrupt()), "SIGINT");
    let terminate = received(signal(SignalKind::terminate()), "SIGTERM");
    async move {
        tokio::select! {
            () = interrupt => tracing::info!("SIGINT received: stopping"),
            () = terminate => tracing::info!("SIGTERM received: stopping"),
        }
    }
}

/// Resolves at Ctrl-C (systems without Unix signals).
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received: stopping");
        } else {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    use super::*;

    const OPTIONS: ServeOptions = ServeOptions {
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        drain_limit: Duration::from_secs(2),
    };

    async fn start(router: Router) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, OPTIONS, async move {
            let _ = stopped.await;
        }));
        (addr, stop, task)
    }

    /// Reads until the server closes the connection (or 5 s pass) and returns what came.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut seen = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut seen)).await;
        String::from_utf8_lossy(&seen).into_owned()
    }

    #[tokio::test]
    async fn requests_are_served_with_the_peer_address() {
        let router = Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let (addr, stop, task) = start(router).await;
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.expect("sent");
        let answer = read_to_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("127.0.0.1"), "{answer}");
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").expect("no panic");
    }

    #[tokio::test]
    async fn a_connection_that_never_finishes_its_headers_is_closed() {
        let (addr, _stop, _task) = start(Router::new().route("/", get(|| async { "hi" }))).await;
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.expect("sent half");
        let started = Instant::now();
        let answer = read_to_close(&mut stream).await;
        assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());
        assert!(!answer.contains("200 OK"), "{answer}");
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_cut_off() {
        let router = Router::new().route("/echo", axum::routing::post(|body: String| async move { body }));
        let (addr, _stop, _task) = start(router).await;
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
            .await
            .expect("sent part of the body");
        let started = Instant::now();
        let answer = read_to_close(&mut stream).await;
        assert!(started.elapsed() < Duration::from_secs(4), "answered after {:?}", started.elapsed());
        assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn an_upgraded_connection_belongs_to_the_handler() {
        // What a WebSocket handshake does: 101, then the raw connection (here an echo).
        let router = Router::new().route(
            "/echo",
            get(|mut request: axum::extract::Request| async move {
                let on_upgrade = hyper::upgrade::on(&mut request);
                tokio::spawn(async move {
                    let Ok(upgraded) = on_upgrade.await else { return };
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 5];
                    if io.read_exact(&mut buf).await.is_ok() {
                        let _ = io.write_all(&buf).await;
                    }
                });
                axum::http::Response::builder()
                    .status(101)
                    .header("connection", "upgrade")
                    .header("upgrade", "echo")
                    .body(axum::body::Body::empty())
                    .expect("a valid response")
            }),
        );
        let (addr, stop, task) = start(router).await;
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream
            .write_all(b"GET /echo HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
            .await
            .expect("sent");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut byte))
                .await
                .expect("the 101 arrives within 5 s")
                .expect("the connection stays open");
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        stream.write_all(b"hello").await.expect("sent on the upgraded connection");
        let mut echoed = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .expect("the echo arrives within 5 s")
            .expect("echoed");
        assert_eq!(&echoed, b"hello");
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").expect("no panic");
    }

    #[tokio::test]
    async fn a_stop_lets_the_request_in_flight_finish_and_refuses_new_connections() {
        let (entered_tx, entered_rx) = oneshot::channel::<()>();
        let entered = std::sync::Mutex::new(Some(entered_tx));
        let entered = std::sync::Arc::new(entered);
        let router = Router::new().route(
            "/slow",
            get(move || {
                let entered = entered.clone();
                async move {
                    if let Some(tx) = entered.lock().expect("not poisoned").take() {
                        let _ = tx.send(());
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }
            }),
        );
        let (addr, stop, task) = start(router).await;
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("sent");
        entered_rx.await.expect("the handler started");
        let _ = stop.send(());
        let answer = read_to_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"), "{answer}");
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").expect("no panic");
        assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed after the stop");
    }
}
