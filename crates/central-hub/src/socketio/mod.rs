//! socket.io on the hub's port at `/socket.io/`, with seed 002's events (see `docs/contracts.md`):
//! `authenticate`, `subscribe-session`, `request-qr` in; `authenticated`, `session-status`,
//! `qr-code`, `qr-expired`, `connection-error` out.
//!
//! `handlers` answers each socket; `fanout` turns each change of the status feed into one broadcast
//! per room; `events` holds the payloads.

pub mod events;
pub mod fanout;
pub mod handlers;

use std::time::Duration;

use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::layer::SocketIoLayer;
use tokio::task::JoinHandle;

use crate::state::AppState;

/// Where socket.io is served (the socket.io client's default path).
pub const PATH: &str = "/socket.io";
/// How often every authenticated socket's token is checked again (disabled users, password
/// changes, expired tokens are disconnected within this).
pub const RECHECK_EVERY: Duration = Duration::from_secs(10);

/// The layer to put on the router, the handle to reach the sockets, and the task that broadcasts
/// the feed's changes and re-checks the sockets' tokens (it ends at shutdown).
pub fn start(state: &AppState) -> (SocketIoLayer, SocketIo, JoinHandle<()>) {
    let (layer, io) = SocketIo::builder().req_path(PATH).build_layer();
    let st = state.clone();
    io.ns("/", move |s: SocketRef| {
        let st = st.clone();
        async move { handlers::register(&s, &st) }
    });
    let task = tokio::spawn(run(io.clone(), state.clone()));
    (layer, io, task)
}

async fn run(io: SocketIo, state: AppState) {
    let mut feed = state.feed.subscribe();
    feed.mark_changed();
    let mut changes = fanout::Changes::default();
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            changed = feed.changed() => {
                if changed.is_err() {
                    break;
                }
                let snapshot = feed.borrow_and_update().clone();
                for emission in changes.update(&snapshot) {
                    fanout::broadcast(&io, &emission).await;
                }
            }
            _ = recheck.tick() => handlers::recheck_all(&io, &state).await,
        }
    }
    // Clients reconnect (to this hub once it is back, or to the next one).
    io.close().await;
}
