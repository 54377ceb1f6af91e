//! The session actor: one task owns the browser, the tab and the state machine. Commands come in
//! over an mpsc channel, browser and page signals over another; the status goes out on a watch.
//! What the page's signals mean and how the page is asked to act is `bridge::protocol`; the HTTP
//! side's handle is `handle.rs`, launching and closing the browser `lifecycle.rs`.

mod handle;
mod lifecycle;
mod page;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use chromiumoxide::Page;
use shared_contracts::{PhoneNumber, SessionState, WhatsappInventory};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::bridge::PageSignal;
use crate::bridge::protocol::{self, PageAction, PageEvent};
use crate::browser::profile::{DataDir, ProfileLock};
use crate::browser::{BrowserError, BrowserHandle};
use crate::error::Error;
use crate::inbound::InboundSender;
use crate::metrics::Metrics;
use crate::session::{Change, Effect, Event, Failure, Session, Snapshot};
use crate::telemetry::now_ms;

use handle::Command;
pub use handle::{ActorSettings, ConnectOutcome, SessionHandle};

/// A browser or page signal, tagged with the browser generation it came from.
struct Signal {
    generation: u64,
    kind: SignalKind,
}

enum SignalKind {
    Page(PageSignal),
    ProcessExited(String),
    CdpClosed,
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

struct Actor {
    session: Session,
    snapshot_tx: watch::Sender<Snapshot>,
    settings: ActorSettings,
    data: DataDir,
    lock: ProfileLock,
    browser: Option<BrowserHandle>,
    page: Option<Page>,
    /// Bumped at every launch and close: signals of an older browser are ignored.
    generation: u64,
    signal_tx: mpsc::UnboundedSender<Signal>,
    reconnect_at: Option<Instant>,
    /// WhatsApp's modules must appear before this, or the connect fails with PAGE_LOAD_FAILED.
    load_deadline: Option<Instant>,
    launch_error: Option<BrowserError>,
    backup: Option<Result<Option<PathBuf>, BrowserError>>,
    metrics: Arc<Metrics>,
    /// When the current launch began (for the start-up durations logged at debug level).
    launched_at: Option<std::time::Instant>,
    /// What the bridge found in the last page loaded (kept across closes: the last build seen).
    inventory: Option<WhatsappInventory>,
    /// When to ask the page for a fresh pairing code.
    pairing_refresh_at: Option<Instant>,
    /// Incoming messages and acks, to the inbound journal's writer.
    inbound: InboundSender,
}

impl Actor {
    /// Starts the actor task; returns its command channel and the snapshot it publishes.
    fn spawn(
        settings: ActorSettings,
        data: DataDir,
        lock: ProfileLock,
        metrics: Arc<Metrics>,
        inbound: InboundSender,
    ) -> (mpsc::Sender<Command>, watch::Receiver<Snapshot>) {
        let session =
            Session::new(settings.max_qr_attempts, settings.takeover_on_conflict, OffsetDateTime::now_utc())
                .with_pairing_refresh(settings.pairing_refresh);
        let (snapshot_tx, snapshot) = watch::channel(session.snapshot());
        let (commands, command_rx) = mpsc::channel(64);
        let (signal_tx, signal_rx) = mpsc::unbounded_channel();
        let actor = Actor {
            session,
            snapshot_tx,
            settings,
            data,
            lock,
            browser: None,
            page: None,
            generation: 0,
            signal_tx,
            reconnect_at: None,
            load_deadline: None,
            launch_error: None,
            backup: None,
            metrics,
            launched_at: None,
            inventory: None,
            pairing_refresh_at: None,
            inbound,
        };
        tokio::spawn(actor.run(command_rx, signal_rx));
        (commands, snapshot)
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut signals: mpsc::UnboundedReceiver<Signal>,
    ) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        if self.command(command).await == Flow::Stop {
                            break;
                        }
                    }
                    None => {
                        self.close_browser().await;
                        break;
                    }
                },
                Some(signal) = signals.recv() => self.signal(signal).await,
                _ = sleep_until(self.pairing_refresh_at), if self.pairing_refresh_at.is_some() => {
                    self.pairing_refresh_at = None;
                    self.dispatch(Event::PairingCodeDue).await;
                }
                _ = sleep_until(self.reconnect_at), if self.reconnect_at.is_some() => {
                    self.reconnect_at = None;
                    self.dispatch(Event::ReconnectDue).await;
                }
                _ = sleep_until(self.load_deadline), if self.load_deadline.is_some() => {
                    self.load_deadline = None;
                    let failure =
                        protocol::modules_did_not_appear(&self.settings.url, self.settings.page_load_timeout);
                    self.dispatch(Event::LaunchFailed(failure)).await;
                }
            }
        }
        tracing::info!("session actor stopped");
    }

    async fn command(&mut self, command: Command) -> Flow {
        match command {
            Command::Connect { pairing, reply } => {
                let already_connected = self.session.state().is_live();
                if let Some(phone) = &pairing
                    && let Err(e) = self.pairing_possible(phone)
                {
                    let _ = reply.send(Err(e));
                    return Flow::Continue;
                }
                self.dispatch(Event::Connect).await;
                if let Some(phone) = pairing {
                    self.dispatch(Event::PairingRequested { phone: phone.as_str().to_owned() }).await;
                }
                let answer = match self.launch_error.take() {
                    Some(err) => Err(Error::Browser(err)),
                    None => Ok(ConnectOutcome { already_connected, state: self.session.state() }),
                };
                let _ = reply.send(answer);
            }
            Command::Disconnect { logout, reply } => {
                self.dispatch(Event::Disconnect { logout }).await;
                let _ = reply.send(());
            }
            Command::ClearSession(reply) => {
                self.dispatch(Event::ClearSession).await;
                let answer = match self.backup.take() {
                    Some(Err(e)) => Err(Error::Browser(e)),
                    Some(Ok(path)) => Ok(path),
                    None => Ok(None),
                };
                let _ = reply.send(answer);
            }
            Command::Send { to, text, reply } => {
                let state = self.session.state();
                match (&self.page, state) {
                    (Some(page), SessionState::Ready) => {
                        let page = page.clone();
                        let timeout = self.settings.send_timeout;
                        let metrics = self.metrics.clone();
                        tokio::spawn(async move {
                            let result = protocol::send(&page, &to, &text, timeout).await;
                            Metrics::inc(if result.is_ok() {
                                &metrics.sends_ok
                            } else {
                                &metrics.sends_failed
                            });
                            let _ = reply.send(result);
                        });
                    }
                    _ => {
                        let _ = reply.send(Err(Error::SessionNotReady { state }));
                    }
                }
            }
            Command::Shutdown(reply) => {
                self.close_browser().await;
                let _ = reply.send(());
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    async fn signal(&mut self, Signal { generation, kind }: Signal) {
        let current = generation == self.generation;
        let event = match kind {
            SignalKind::Page(page_signal) => match protocol::translate(page_signal) {
                // A message or an ack is a fact whatever browser reported it: journaled even from a
                // browser being closed. When the writer's queue is full this waits: nothing is dropped.
                PageEvent::Inbound(inbound) => {
                    if self.inbound.send(inbound).await.is_err() {
                        tracing::error!(
                            "the inbound journal writer stopped: a message or ack was not journaled"
                        );
                    }
                    return;
                }
                page_event if current => match self.page_event(page_event) {
                    Some(event) => event,
                    None => return,
                },
                _ => return,
            },
            _ if !current => return,
            SignalKind::ProcessExited(status) => {
                Event::Crashed { reason: format!("Chromium exited ({status})") }
            }
            SignalKind::CdpClosed => Event::Crashed { reason: "the DevTools connection closed".into() },
        };
        self.dispatch(event).await;
    }

    /// A pairing-code login needs a session not linked yet, and a WhatsApp build with the pairing
    /// internals (when a build was seen).
    fn pairing_possible(&self, phone: &PhoneNumber) -> Result<(), Error> {
        let state = self.session.state();
        if matches!(state, SessionState::Authenticated | SessionState::Ready) {
            return Err(Error::PairingUnavailable {
                reason: format!("the session is already linked (state {state})"),
                hint: "POST /disconnect with {\"logout\":true} first to link another phone".into(),
            });
        }
        match &self.inventory {
            Some(inventory) if !inventory.has_feature("pairing") => Err(Error::PairingUnavailable {
                reason: format!(
                    "{} has no pairing-code login (WAWebAltDeviceLinkingApi not found), asked for {}",
                    inventory.summary,
                    phone.as_str()
                ),
                hint: "Link with the QR instead; a bridge update may restore pairing codes".into(),
            }),
            _ => Ok(()),
        }
    }

    /// Applies an event and carries out its effects; effects may yield further events.
    async fn dispatch(&mut self, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let transition = self.session.apply(event, OffsetDateTime::now_utc());
            if let Some(Change { from, to, reason }) = &transition.change {
                tracing::info!(from = %from, to = %to, reason, "session state changed");
            }
            self.publish();
            for effect in transition.effects {
                if let Some(next) = self.effect(effect).await {
                    queue.push_back(next);
                }
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let mut snapshot = self.session.snapshot();
        snapshot.status.whatsapp.clone_from(&self.inventory);
        self.snapshot_tx.send_if_modified(|current| {
            let changed = *current != snapshot;
            if changed {
                *current = snapshot;
            }
            changed
        });
    }

    async fn effect(&mut self, effect: Effect) -> Option<Event> {
        match effect {
            Effect::LaunchBrowser => match self.launch().await {
                Ok(()) => None,
                Err(err) => {
                    tracing::error!(error = %err, "connect failed");
                    let failure = Failure { code: err.code(), message: err.to_string(), hint: err.hint() };
                    self.launch_error = Some(err);
                    Some(Event::LaunchFailed(failure))
                }
            },
            Effect::CloseBrowser => {
                self.close_browser().await;
                None
            }
            // Best effort: the profile is wiped after this either way.
            Effect::UnlinkDevice => self.page_action(PageAction::Logout).await,
            Effect::WipeProfile => {
                if let Err(e) = self.data.wipe_profile() {
                    tracing::error!(error = %e, "could not wipe the profile");
                }
                None
            }
            Effect::BackupProfile => {
                let backup = self.data.backup_profile();
                if let Ok(Some(path)) = &backup {
                    tracing::info!(backup = %path.display(), "profile moved aside");
                }
                self.backup = Some(backup);
                None
            }
            Effect::RefreshQr => self.page_action(PageAction::RefreshQr).await,
            Effect::Takeover => {
                let state = self.session.state();
                tracing::info!(state = %state, "WhatsApp Web was opened elsewhere: taking the session back");
                self.page_action(PageAction::Takeover).await
            }
            Effect::ScheduleReconnect(delay) => {
                Metrics::inc(&self.metrics.reconnects);
                self.reconnect_at = Some(Instant::now() + delay);
                None
            }
            Effect::RememberLogin { phone } => {
                if let Err(e) = self.data.remember_login(&phone) {
                    tracing::warn!(error = %e, "could not record the saved login");
                }
                None
            }
            Effect::CountQr => {
                Metrics::inc(&self.metrics.qr_generated);
                None
            }
            Effect::SchedulePairingRefresh(after) => {
                self.pairing_refresh_at = Some(Instant::now() + after);
                None
            }
            Effect::RequestPairingCode { phone } => {
                let outcome = match &self.page {
                    Some(page) => protocol::pairing_code(page, &phone).await,
                    None => Err(Failure {
                        code: shared_contracts::ErrorCode::ConnectionError,
                        message: "No page is open to ask for a pairing code".into(),
                        hint: "POST /connect again".into(),
                    }),
                };
                Some(match outcome {
                    Ok(code) => {
                        tracing::info!("pairing code received");
                        Event::PairingCode { code, at_ms: now_ms() }
                    }
                    Err(failure) => Event::LaunchFailed(failure),
                })
            }
        }
    }

    /// Asks the page to act; an action that did not happen may end the session.
    async fn page_action(&self, action: PageAction) -> Option<Event> {
        let outcome = match &self.page {
            Some(page) => protocol::perform(page, action).await,
            None => Err("no page is open".to_owned()),
        };
        let cause = outcome.err()?;
        action.failure(&cause).map(Event::LaunchFailed)
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
