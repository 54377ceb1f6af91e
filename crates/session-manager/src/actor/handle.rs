//! The HTTP side's handle on the session actor: the commands it sends (with their reply channels)
//! and the snapshot it reads from memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shared_contracts::{MessageText, PhoneNumber, SentMessage, SessionState, StatusBody};
use tokio::sync::{mpsc, oneshot, watch};

use super::Actor;
use crate::browser::LaunchSettings;
use crate::browser::profile::{DataDir, ProfileLock};
use crate::error::Error;
use crate::inbound::InboundSender;
use crate::metrics::Metrics;
use crate::session::Snapshot;

#[derive(Debug, Clone)]
pub struct ActorSettings {
    pub launch: LaunchSettings,
    pub url: String,
    pub page_load_timeout: Duration,
    pub send_timeout: Duration,
    pub max_qr_attempts: u32,
    pub takeover_on_conflict: bool,
    /// How long a pairing code is used before a fresh one is asked for.
    pub pairing_refresh: Duration,
}

/// What `POST /connect` learns.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOutcome {
    pub already_connected: bool,
    pub state: SessionState,
}

pub(super) enum Command {
    Connect { pairing: Option<PhoneNumber>, reply: oneshot::Sender<Result<ConnectOutcome, Error>> },
    Disconnect { logout: bool, reply: oneshot::Sender<()> },
    ClearSession(oneshot::Sender<Result<Option<PathBuf>, Error>>),
    Send { to: PhoneNumber, text: MessageText, reply: oneshot::Sender<Result<SentMessage, Error>> },
    Shutdown(oneshot::Sender<()>),
}

/// The HTTP side's handle on the session.
#[derive(Clone)]
pub struct SessionHandle {
    commands: mpsc::Sender<Command>,
    snapshot: watch::Receiver<Snapshot>,
    pub metrics: Arc<Metrics>,
    pub profile: PathBuf,
}

impl SessionHandle {
    /// Starts the actor. It owns the lock (and so the profile) until it stops; the incoming
    /// messages and acks the page reports go to `inbound`.
    pub fn spawn(
        settings: ActorSettings,
        data: DataDir,
        lock: ProfileLock,
        metrics: Arc<Metrics>,
        inbound: InboundSender,
    ) -> Self {
        let profile = data.profile();
        let (commands, snapshot) = Actor::spawn(settings, data, lock, metrics.clone(), inbound);
        Self { commands, snapshot, metrics, profile }
    }

    /// The current status (from memory, never a browser call).
    pub fn status(&self) -> StatusBody {
        self.snapshot.borrow().status.clone()
    }

    /// The current status with the PNG of the QR it shows.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// Every change of the snapshot, starting with the current one.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| Error::ActorGone)?;
        rx.await.map_err(|_| Error::ActorGone)
    }

    /// Connects; with `pairing`, links by a code typed on that phone instead of a QR.
    pub async fn connect(&self, pairing: Option<PhoneNumber>) -> Result<ConnectOutcome, Error> {
        self.ask(|reply| Command::Connect { pairing, reply }).await?
    }

    pub async fn disconnect(&self, logout: bool) -> Result<(), Error> {
        self.ask(|reply| Command::Disconnect { logout, reply }).await
    }

    pub async fn clear_session(&self) -> Result<Option<PathBuf>, Error> {
        self.ask(Command::ClearSession).await?
    }

    pub async fn send(&self, to: PhoneNumber, text: MessageText) -> Result<SentMessage, Error> {
        self.ask(|reply| Command::Send { to, text, reply }).await?
    }

    /// Closes the browser (reaped) and stops the actor.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}
