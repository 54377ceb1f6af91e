//! The session state machine of ARCHITECTURE.md as a plain type: `apply(event, now) -> transition`,
//! no I/O, no clock and no logging.
//!
//! The actor feeds it what the browser and the HTTP side report, with the time, logs the state
//! change it returns and carries out the effects; the status every client sees is derived from it
//! (`status.rs`).

mod pairing;
mod status;

use std::time::Duration;

use shared_contracts::{ErrorCode, LastError, SessionState};
use time::OffsetDateTime;

use crate::qr::QrImage;
use crate::telemetry::format_rfc3339;

pub use pairing::PAIRING_CODE_REFRESH;
use pairing::Pairing;
pub use status::Snapshot;

/// How long WhatsApp shows the first code of a batch, and each next one (docs/whatsapp-bridge.md).
const FIRST_QR_LIFETIME_MS: i64 = 60_000;
const NEXT_QR_LIFETIME_MS: i64 = 20_000;

/// Consecutive crashes recovered automatically before giving up with ERROR BROWSER_CRASHED.
pub const MAX_CRASH_RESTARTS: u32 = 5;
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A failure that ends a connect attempt (launch, page load, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    pub hint: String,
}

/// Something that happened, from the HTTP side or the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `POST /connect`, or boot with a saved session.
    Connect,
    /// The session cannot go on: Chromium did not start, WhatsApp Web did not load, or the page
    /// failed a step it must do (read the QR, take the session back).
    LaunchFailed(Failure),
    /// The page shows a (new) login QR; `image` is its PNG rendering.
    QrReceived { code: String, image: QrImage, at_ms: i64 },
    /// WhatsApp's raw socket state (`UNPAIRED`, `PAIRING`, `CONNECTED`, `CONFLICT`, ...).
    WaState(String),
    /// Logged in and synced: sending is possible. `phone` is digits.
    Ready { phone: String },
    /// The device was unlinked from the phone.
    LoggedOut,
    /// `POST /disconnect`.
    Disconnect { logout: bool },
    /// Chromium or the page crashed or went away.
    Crashed { reason: String },
    /// The back-off after a crash has elapsed.
    ReconnectDue,
    /// `POST /clear-session`.
    ClearSession,
    /// `POST /connect {"pairing_phone"}`: link by typing a code on that phone instead of scanning.
    PairingRequested { phone: String },
    /// The page gave a pairing code (8 characters).
    PairingCode { code: String, at_ms: i64 },
    /// The current pairing code is due for a refresh.
    PairingCodeDue,
}

/// What the actor must do after a transition, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    LaunchBrowser,
    /// Unlink this device through the page (before the browser is closed).
    UnlinkDevice,
    CloseBrowser,
    /// Delete the profile (after the browser is closed): the next connect shows a QR.
    WipeProfile,
    /// Move the profile aside as a timestamped backup (after the browser is closed).
    BackupProfile,
    /// Ask the page for a new batch of QR codes.
    RefreshQr,
    /// Take the session back from another browser.
    Takeover,
    ScheduleReconnect(Duration),
    /// Note that the profile holds a login (AUTO_CONNECT=saved uses it).
    RememberLogin {
        phone: String,
    },
    /// A new QR was generated (a metric).
    CountQr,
    /// Ask the page for a pairing code for `phone`.
    RequestPairingCode {
        phone: String,
    },
    /// Raise `PairingCodeDue` after this long.
    SchedulePairingRefresh(Duration),
}

/// A state entered (possibly the same one again), and why: the actor logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub from: SessionState,
    pub to: SessionState,
    pub reason: String,
}

/// What one event did: the state change, if any, and the effects to carry out, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transition {
    pub change: Option<Change>,
    pub effects: Vec<Effect>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Qr {
    code: String,
    image: QrImage,
    at_ms: i64,
    expires_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Session {
    state: SessionState,
    since: OffsetDateTime,
    qr: Option<Qr>,
    attempts: u32,
    phone: Option<String>,
    last_error: Option<LastError>,
    crashes: u32,
    reconnect_pending: bool,
    max_qr_attempts: u32,
    takeover_on_conflict: bool,
    /// The time of the event being applied.
    now: OffsetDateTime,
    /// The change made by the event being applied.
    change: Option<Change>,
    /// Set while this connect links with a pairing code: the number it is for.
    pairing_phone: Option<String>,
    /// A code was asked for and has not arrived yet.
    pairing_requested: bool,
    pairing: Option<Pairing>,
    pairing_refresh: Duration,
}

impl Session {
    /// A session in INIT since `now`.
    pub fn new(max_qr_attempts: u32, takeover_on_conflict: bool, now: OffsetDateTime) -> Self {
        Self {
            state: SessionState::Init,
            since: now,
            qr: None,
            attempts: 0,
            phone: None,
            last_error: None,
            crashes: 0,
            reconnect_pending: false,
            max_qr_attempts,
            takeover_on_conflict,
            now,
            change: None,
            pairing_phone: None,
            pairing_requested: false,
            pairing: None,
            pairing_refresh: PAIRING_CODE_REFRESH,
        }
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    pub fn last_error(&self) -> Option<&LastError> {
        self.last_error.as_ref()
    }

    /// Applies one event that happened at `now`: the state change it made and the effects to carry
    /// out, in order.
    pub fn apply(&mut self, event: Event, now: OffsetDateTime) -> Transition {
        self.now = now;
        let effects = self.step(event);
        Transition { change: self.change.take(), effects }
    }

    fn step(&mut self, event: Event) -> Vec<Effect> {
        use SessionState as S;
        let live = self.state.is_live();
        match event {
            Event::Connect => match self.state {
                S::Init | S::Disconnected | S::Error => {
                    self.attempts = 0;
                    self.pairing_phone = None;
                    self.pairing_requested = false;
                    self.crashes = 0;
                    self.reconnect_pending = false;
                    self.enter(S::Connecting, "connect requested");
                    vec![Effect::LaunchBrowser]
                }
                _ => vec![],
            },
            Event::LaunchFailed(failure) if live => {
                self.fail(S::Error, failure);
                vec![Effect::CloseBrowser]
            }
            Event::QrReceived { code, image, at_ms } => {
                if !matches!(self.state, S::Connecting | S::QrRequired) {
                    return vec![];
                }
                if self.qr.as_ref().is_some_and(|qr| qr.code == code) {
                    return vec![];
                }
                if let Some(phone) = self.pairing_phone.clone() {
                    return self.qr_while_pairing(phone, Qr { code, image, at_ms, expires_at_ms: at_ms });
                }
                if self.attempts >= self.max_qr_attempts {
                    return self.qr_exhausted();
                }
                self.attempts += 1;
                let lifetime = if self.attempts == 1 { FIRST_QR_LIFETIME_MS } else { NEXT_QR_LIFETIME_MS };
                self.qr = Some(Qr { code, image, at_ms, expires_at_ms: at_ms + lifetime });
                let reason = format!("QR code {} of at most {}", self.attempts, self.max_qr_attempts);
                self.enter(S::QrRequired, &reason);
                vec![Effect::CountQr]
            }
            Event::WaState(wa_state) => self.apply_wa_state(&wa_state),
            Event::Ready { phone }
                if matches!(self.state, S::Connecting | S::QrRequired | S::Authenticated) =>
            {
                let phone = format!("+{}", phone.trim_start_matches('+'));
                self.phone = Some(phone.clone());
                self.crashes = 0;
                // Recovered: an earlier crash or failure is no longer the session's story.
                self.last_error = None;
                self.enter(S::Ready, "chats loaded, sending possible");
                vec![Effect::RememberLogin { phone }]
            }
            Event::LoggedOut if live => {
                self.fail(
                    S::Disconnected,
                    Failure {
                        code: ErrorCode::LoggedOut,
                        message: "The device was unlinked from the phone (logged out)".into(),
                        hint: "POST /connect and scan the new QR to link again".into(),
                    },
                );
                vec![Effect::CloseBrowser, Effect::WipeProfile]
            }
            Event::Disconnect { logout } => {
                if live {
                    let reason =
                        if logout { "disconnect with logout requested" } else { "disconnect requested" };
                    self.enter(S::Disconnected, reason);
                }
                match (live, logout) {
                    (true, true) => vec![Effect::UnlinkDevice, Effect::CloseBrowser, Effect::WipeProfile],
                    (true, false) => vec![Effect::CloseBrowser],
                    (false, true) => vec![Effect::WipeProfile],
                    (false, false) => vec![],
                }
            }
            Event::Crashed { reason } if live && !self.reconnect_pending => {
                self.crashes += 1;
                if self.crashes > MAX_CRASH_RESTARTS {
                    self.fail(
                        S::Error,
                        Failure {
                            code: ErrorCode::BrowserCrashed,
                            message: format!(
                                "Chromium crashed {} times in a row (last: {reason})",
                                self.crashes
                            ),
                            hint: "Check the logs and memory of the host, then POST /connect".into(),
                        },
                    );
                    return vec![Effect::CloseBrowser];
                }
                let delay = backoff(self.crashes);
                self.last_error = Some(self.last_error_now(Failure {
                    code: ErrorCode::BrowserCrashed,
                    message: format!("Chromium or the page crashed: {reason}"),
                    hint: "Nothing to do: the session reconnects on its own".into(),
                }));
                self.attempts = 0;
                self.reconnect_pending = true;
                let why = format!("browser crashed ({reason}); reconnecting in {} ms", delay.as_millis());
                self.enter(S::Connecting, &why);
                vec![Effect::CloseBrowser, Effect::ScheduleReconnect(delay)]
            }
            Event::ReconnectDue if self.state == S::Connecting && self.reconnect_pending => {
                self.reconnect_pending = false;
                vec![Effect::LaunchBrowser]
            }
            Event::PairingRequested { phone } if matches!(self.state, S::Connecting | S::QrRequired) => {
                self.pairing_requested(phone)
            }
            Event::PairingCode { code, at_ms }
                if self.pairing_phone.is_some() && matches!(self.state, S::Connecting | S::QrRequired) =>
            {
                self.pairing_code(code, at_ms)
            }
            Event::PairingCodeDue if self.state == S::QrRequired && !self.pairing_requested => {
                self.pairing_code_due()
            }
            Event::ClearSession => {
                self.phone = None;
                self.pairing_phone = None;
                self.last_error = None;
                self.attempts = 0;
                self.crashes = 0;
                self.reconnect_pending = false;
                self.enter(S::Init, "session cleared");
                vec![Effect::CloseBrowser, Effect::BackupProfile]
            }
            _ => vec![],
        }
    }

    fn apply_wa_state(&mut self, wa_state: &str) -> Vec<Effect> {
        use SessionState as S;
        match (wa_state, self.state) {
            ("UNPAIRED_IDLE", S::Connecting | S::QrRequired) => {
                if self.attempts < self.max_qr_attempts {
                    vec![Effect::RefreshQr]
                } else {
                    self.qr_exhausted()
                }
            }
            ("PAIRING", S::Connecting | S::QrRequired) => {
                self.enter(S::Authenticated, "phone scanned the QR");
                vec![]
            }
            ("CONNECTED", S::QrRequired) => {
                self.enter(S::Authenticated, "phone scanned the QR");
                vec![]
            }
            ("CONNECTED", S::Connecting) => {
                self.enter(S::Authenticated, "saved session accepted");
                vec![]
            }
            ("CONFLICT", state) if state.is_live() => {
                if self.takeover_on_conflict {
                    return vec![Effect::Takeover];
                }
                self.fail(
                    S::Error,
                    Failure {
                        code: ErrorCode::Conflict,
                        message: "WhatsApp Web was opened in another browser (conflict)".into(),
                        hint: "Close the other WhatsApp Web, or set TAKEOVER_ON_CONFLICT=true, then POST /connect"
                            .into(),
                    },
                );
                vec![Effect::CloseBrowser]
            }
            ("TOS_BLOCK" | "SMB_TOS_BLOCK" | "PROXYBLOCK" | "DEPRECATED_VERSION", state)
                if state.is_live() =>
            {
                self.fail(
                    S::Error,
                    Failure {
                        code: ErrorCode::ConnectionError,
                        message: format!("WhatsApp Web refused the session: socket state {wa_state}"),
                        hint: "Check the account and the network from this host, then POST /connect".into(),
                    },
                );
                vec![Effect::CloseBrowser]
            }
            _ => vec![],
        }
    }

    fn qr_exhausted(&mut self) -> Vec<Effect> {
        let failure = Failure {
            code: ErrorCode::QrAttemptsExhausted,
            message: format!("The QR was shown {} times without being scanned", self.attempts),
            hint: "POST /connect to get new QR codes (MAX_QR_ATTEMPTS sets how many)".into(),
        };
        self.fail(SessionState::Disconnected, failure);
        vec![Effect::CloseBrowser]
    }

    fn fail(&mut self, to: SessionState, failure: Failure) {
        let reason = format!("{}: {}", failure.code, failure.message);
        self.last_error = Some(self.last_error_now(failure));
        self.reconnect_pending = false;
        self.enter(to, &reason);
    }

    fn enter(&mut self, to: SessionState, reason: &str) {
        let from = self.state;
        self.change = Some(Change { from, to, reason: reason.to_owned() });
        if from != to {
            self.since = self.now;
        }
        self.state = to;
        if to != SessionState::QrRequired {
            self.qr = None;
            self.pairing = None;
        }
        if !to.is_live() || to == SessionState::Ready {
            self.pairing_phone = None;
        }
        // A request in flight belongs to the page it was made to: a relaunch asks again.
        if to != SessionState::QrRequired {
            self.pairing_requested = false;
        }
        if to != SessionState::Ready {
            self.phone = None;
        }
    }

    fn last_error_now(&self, failure: Failure) -> LastError {
        LastError {
            code: failure.code,
            message: failure.message,
            hint: failure.hint,
            at: format_rfc3339(self.now),
        }
    }
}

/// 0.5 s, 1 s, 2 s, ... capped at 30 s.
pub fn backoff(crashes: u32) -> Duration {
    let factor = 2u32.saturating_pow(crashes.saturating_sub(1));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests;
