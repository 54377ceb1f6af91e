//! The session actor: one task owns the browser, the tab and the state machine. Commands come in
//! over an mpsc channel, browser and page signals over another; the status goes out on a watch.
//! What the page's signals mean and how the page is asked to act is `bridge::protocol`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::Page;
use shared_contracts::{MessageText, PhoneNumber, SentMessage, SessionState, StatusBody};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::bridge::protocol::{self, PageAction, PageEvent};
use crate::bridge::{self, PageSignal};
use crate::browser::profile::{DataDir, ProfileLock};
use crate::browser::{BrowserError, BrowserHandle, LaunchSettings};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::qr;
use crate::session::{Effect, Event, Failure, Session};
use crate::telemetry::now_ms;

/// How long a polite browser close may take before the tree is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct ActorSettings {
    pub launch: LaunchSettings,
    pub url: String,
    pub page_load_timeout: Duration,
    pub send_timeout: Duration,
    pub max_qr_attempts: u32,
    pub takeover_on_conflict: bool,
}

/// What `POST /connect` learns.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOutcome {
    pub already_connected: bool,
    pub state: SessionState,
}

enum Command {
    Connect(oneshot::Sender<Result<ConnectOutcome, Error>>),
    Disconnect { logout: bool, reply: oneshot::Sender<()> },
    ClearSession(oneshot::Sender<Result<Option<PathBuf>, Error>>),
    Send { to: PhoneNumber, text: MessageText, reply: oneshot::Sender<Result<SentMessage, Error>> },
    Shutdown(oneshot::Sender<()>),
}

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

/// The HTTP side's handle on the session.
#[derive(Clone)]
pub struct SessionHandle {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<StatusBody>,
    pub metrics: Arc<Metrics>,
    pub profile: PathBuf,
}

impl SessionHandle {
    /// Starts the actor. It owns the lock (and so the profile) until it stops.
    pub fn spawn(settings: ActorSettings, data: DataDir, lock: ProfileLock) -> Self {
        let session = Session::new(settings.max_qr_attempts, settings.takeover_on_conflict);
        let (status_tx, status) = watch::channel(session.status());
        let (commands, command_rx) = mpsc::channel(64);
        let (signal_tx, signal_rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(Metrics::default());
        let profile = data.profile();
        let actor = Actor {
            session,
            status_tx,
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
            metrics: metrics.clone(),
            launched_at: None,
        };
        tokio::spawn(actor.run(command_rx, signal_rx));
        Self { commands, status, metrics, profile }
    }

    /// The current status (from memory, never a browser call).
    pub fn status(&self) -> StatusBody {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<StatusBody> {
        self.status.clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| Error::ActorGone)?;
        rx.await.map_err(|_| Error::ActorGone)
    }

    pub async fn connect(&self) -> Result<ConnectOutcome, Error> {
        self.ask(Command::Connect).await?
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

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

struct Actor {
    session: Session,
    status_tx: watch::Sender<StatusBody>,
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
}

impl Actor {
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
            Command::Connect(reply) => {
                let already_connected = self.session.state().is_live();
                self.dispatch(Event::Connect).await;
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

    async fn signal(&mut self, signal: Signal) {
        if signal.generation != self.generation {
            return;
        }
        let event = match signal.kind {
            SignalKind::ProcessExited(status) => {
                Event::Crashed { reason: format!("Chromium exited ({status})") }
            }
            SignalKind::CdpClosed => Event::Crashed { reason: "the DevTools connection closed".into() },
            SignalKind::Page(signal) => match self.page_event(protocol::translate(signal)) {
                Some(event) => event,
                None => return,
            },
        };
        self.dispatch(event).await;
    }

    fn page_event(&mut self, event: PageEvent) -> Option<Event> {
        match event {
            PageEvent::Loaded { version } => {
                self.load_deadline = None;
                tracing::info!(version, since_launch_ms = self.since_launch_ms(), "WhatsApp Web loaded");
                None
            }
            PageEvent::Qr { code } => match qr::data_url(&code) {
                Ok(data_url) => {
                    tracing::debug!(since_launch_ms = self.since_launch_ms(), "QR received");
                    Some(Event::QrReceived { code, data_url, at_ms: now_ms() })
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not render the QR");
                    None
                }
            },
            PageEvent::Session(event) => Some(event),
            PageEvent::Nothing => None,
        }
    }

    /// Applies an event and carries out its effects; effects may yield further events.
    async fn dispatch(&mut self, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let effects = self.session.apply(event);
            self.publish();
            for effect in effects {
                if let Some(next) = self.effect(effect).await {
                    queue.push_back(next);
                }
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let status = self.session.status();
        self.status_tx.send_if_modified(|current| {
            let changed = *current != status;
            if changed {
                *current = status;
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
            Effect::Takeover => self.page_action(PageAction::Takeover).await,
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

    fn since_launch_ms(&self) -> u64 {
        self.launched_at.map_or(0, |at| at.elapsed().as_millis() as u64)
    }

    async fn launch(&mut self) -> Result<(), BrowserError> {
        self.close_browser().await;
        self.launched_at = Some(std::time::Instant::now());
        self.generation += 1;
        let generation = self.generation;
        self.data.reclaim_profile(None).await?;
        let exit_tx = self.signal_tx.clone();
        let cdp_tx = self.signal_tx.clone();
        let browser = BrowserHandle::launch(
            &self.settings.launch,
            &self.data.profile(),
            move |status| {
                let _ = exit_tx.send(Signal { generation, kind: SignalKind::ProcessExited(status) });
            },
            move || {
                let _ = cdp_tx.send(Signal { generation, kind: SignalKind::CdpClosed });
            },
        )
        .await?;
        Metrics::inc(&self.metrics.browser_starts);
        self.lock.record_browser(u32::try_from(browser.pid()).ok());
        let page_tx = self.signal_tx.clone();
        let opened = bridge::open_whatsapp(
            &browser.browser,
            &self.settings.url,
            self.settings.launch.request_timeout,
            self.settings.page_load_timeout,
            move |signal| {
                let _ = page_tx.send(Signal { generation, kind: SignalKind::Page(signal) });
            },
        )
        .await;
        self.browser = Some(browser);
        match opened {
            Ok(page) => {
                tracing::debug!(since_launch_ms = self.since_launch_ms(), "WhatsApp Web opening");
                self.page = Some(page);
                self.load_deadline = Some(Instant::now() + self.settings.page_load_timeout);
                Ok(())
            }
            Err(e) => {
                self.close_browser().await;
                Err(e)
            }
        }
    }

    async fn close_browser(&mut self) {
        self.generation += 1;
        self.page = None;
        self.load_deadline = None;
        if let Some(browser) = self.browser.take() {
            let tail = browser.stderr_tail();
            if !tail.is_empty() {
                tracing::debug!(stderr_tail = %tail, "Chromium stderr before close");
            }
            browser.shutdown(CLOSE_GRACE).await;
            self.lock.record_browser(None);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
