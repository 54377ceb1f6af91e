//! wa-sim: a simulator of the part of WhatsApp Web's page that automation reads.
//!
//! It serves a page at `/` whose script defines WhatsApp Web's internal modules (`window.require`)
//! with the same names, members and event order as the real site, draws the QR, and follows a
//! control API (`/__sim/...`) through an event stream. See `README.md` for the contract.

mod chats;
mod config;
mod error;
mod routes;
mod state;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use service_kit::ServeOptions;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use chats::{IncomingRecord, PageMessage, lid_of};
pub use config::{AckDelays, ConfigPatch, SimConfig, WA_VERSION};
pub use error::SimError;
pub use routes::router;
pub use state::{AppState, PageCommand, PageReport, RecordedMessage};

/// How long a stop waits for in-flight requests before it returns.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The accept loop's timeouts: headers within 15 s (and idle kept-alive connections closed after
/// that), a body within 30 s; a stop waits up to [`SHUTDOWN_GRACE`] for open requests.
const SERVE_OPTIONS: ServeOptions = ServeOptions {
    header_read_timeout: Duration::from_secs(15),
    body_read_timeout: Duration::from_secs(30),
    drain_limit: SHUTDOWN_GRACE,
};

/// The whole application for `config` (fresh state), e.g. for `tower::ServiceExt::oneshot`.
pub fn app(config: SimConfig) -> Router {
    router(AppState::new(config))
}

/// Serves the simulator on `listener` until `shutdown` completes, then closes the pages' event
/// streams (they would otherwise keep the graceful shutdown waiting forever).
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let state = AppState::new(config);
    let app = router(state.clone());
    service_kit::serve(listener, app, SERVE_OPTIONS, async move {
        shutdown.await;
        state.disconnect_all();
    })
    .await;
}

/// A simulator running in the current tokio runtime.
pub struct SimHandle {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Starts the simulator on `127.0.0.1:config.port` (0 picks a free port) in a background task.
pub async fn spawn(config: SimConfig) -> io::Result<SimHandle> {
    let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), config.port)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, config, async move {
        let _ = stopped.await;
    }));
    Ok(SimHandle { addr, stop, task })
}

impl SimHandle {
    /// The base URL, e.g. `http://127.0.0.1:3100`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish (up to [`SHUTDOWN_GRACE`]), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// What the `wa-sim` binary runs: binds `host:config.port`, prints the listening line, serves
/// until SIGINT or SIGTERM.
pub async fn run(config: SimConfig, host: IpAddr) -> io::Result<()> {
    let listener = TcpListener::bind(SocketAddr::new(host, config.port)).await?;
    let addr = listener.local_addr()?;
    // Listening for the signals before saying where it listens: whoever starts it may stop it at once.
    let stop = service_kit::shutdown_signal();
    tracing::info!(?config, %addr, "wa-sim starting");
    println!("wa-sim listening on http://{addr}");
    serve(listener, config, stop).await;
    Ok(())
}
