//! The simulator's memory: open pages and what they show, valid logins, sent messages.
//!
//! One mutex guards it all; it is never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

use crate::chats::{Chats, PageMessage};
use crate::config::{AckDelays, ConfigPatch, SimConfig};

/// A command pushed to one page over its event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PageCommand {
    /// First event of every stream: the page may start.
    Hello,
    /// The phone scanned the QR the page shows: store this login.
    Scan { token: String, phone: String },
    /// The device was unlinked: emit `logout`, wipe the login, go to `/?post_logout=1`.
    Logout,
    /// WhatsApp was opened in another browser.
    Conflict,
    /// The phone accepted the pairing code the page shows: store this login (like a scan).
    Pair { token: String, phone: String },
    /// Someone wrote to this number: add the message to the `Msg` collection as new.
    Incoming { message: PageMessage },
    /// The ack of a sent message changed: set it on the message (fires `change:ack`).
    Ack { id: String, ack: i64 },
}

/// What a page last told the server it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageReport {
    pub page: String,
    /// Increases with every report of the page; older reports that arrive late are dropped.
    pub seq: u64,
    pub socket_state: Option<String>,
    #[serde(rename = "ref")]
    pub qr_ref: Option<String>,
    /// The full string drawn in the QR canvas (prefix included).
    pub qr: Option<String>,
    pub phone: Option<String>,
    /// The pairing code the page shows (8 characters, no dash), and the number it was asked for.
    #[serde(default)]
    pub pairing_code: Option<String>,
    #[serde(default)]
    pub pairing_phone: Option<String>,
    /// `Socket.hasSynced`: the history is loaded, new messages and acks may be pushed.
    #[serde(default)]
    pub synced: bool,
}

/// One message the page sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedMessage {
    pub to: String,
    pub text: String,
    pub id: String,
    /// Milliseconds since the Unix epoch, when the server recorded it.
    pub timestamp: i64,
    /// The serialized `from` of the message (`<phone>@c.us`, or the LID user `<lid>@lid`).
    #[serde(default)]
    pub from: Option<String>,
    /// The serialized chat id it was sent to (`<digits>@c.us` or `<lid>@lid`).
    #[serde(default)]
    pub chat: Option<String>,
    /// WhatsApp's ack level now: 1 sent, 2 delivered, 3 read, 4 played, -1 error.
    #[serde(default)]
    pub ack: i64,
}

pub(crate) struct Page {
    connection: u64,
    pub(crate) tx: mpsc::UnboundedSender<PageCommand>,
    pub(crate) report: Option<PageReport>,
    /// Order of the latest report among all pages (the most recent page answers `/__sim/state`).
    reported_at: u64,
}

#[derive(Default)]
pub(crate) struct Inner {
    unknown_numbers: Vec<String>,
    lid_numbers: Vec<String>,
    without_modules: Vec<String>,
    send_latency_ms: u64,
    pub(crate) pages: HashMap<String, Page>,
    /// Login token -> phone of every linked device.
    logins: HashMap<String, String>,
    pub(crate) messages: Vec<RecordedMessage>,
    pub(crate) chats: Chats,
    pub(crate) ack_delays: AckDelays,
    next_connection: u64,
    next_report: u64,
}

impl Inner {
    /// Pages that are CONNECTED with their history loaded: where new messages and acks go.
    pub(crate) fn synced_pages(&self) -> impl Iterator<Item = &Page> {
        self.pages.values().filter(|p| {
            p.report.as_ref().is_some_and(|r| r.synced && r.socket_state.as_deref() == Some("CONNECTED"))
        })
    }

    pub(crate) fn is_lid_number(&self, digits: &str) -> bool {
        self.lid_numbers.iter().any(|n| n == digits)
    }
}

struct Shared {
    config: SimConfig,
    inner: Mutex<Inner>,
    /// Woken on every page report, for handlers that wait for a page to reach a state.
    reported: Notify,
}

/// Cheap to clone; every handler holds one.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(config: SimConfig) -> Self {
        let inner = Inner {
            unknown_numbers: config.unknown_numbers.clone(),
            lid_numbers: config.lid_numbers.clone(),
            without_modules: config.without_modules.clone(),
            send_latency_ms: config.send_latency_ms,
            ack_delays: AckDelays { delivered_ms: config.ack_delivered_ms, read_ms: config.ack_read_ms },
            ..Inner::default()
        };
        AppState(Arc::new(Shared { config, inner: Mutex::new(inner), reported: Notify::new() }))
    }

    pub fn config(&self) -> &SimConfig {
        &self.0.config
    }

    pub(crate) fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.0.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a page's event stream; returns the connection number `disconnect_page` needs.
    pub fn connect_page(&self, page: &str, tx: mpsc::UnboundedSender<PageCommand>) -> u64 {
        let mut inner = self.inner();
        inner.next_connection += 1;
        let connection = inner.next_connection;
        let previous = inner.pages.remove(page);
        let (report, reported_at) = previous.map(|p| (p.report, p.reported_at)).unwrap_or((None, 0));
        inner.pages.insert(page.to_owned(), Page { connection, tx, report, reported_at });
        connection
    }

    /// Forgets a page whose event stream closed (unless it already reconnected).
    pub fn disconnect_page(&self, page: &str, connection: u64) {
        let mut inner = self.inner();
        if inner.pages.get(page).is_some_and(|p| p.connection == connection) {
            inner.pages.remove(page);
        }
    }

    /// Ends every page's event stream (at shutdown, so open streams do not hold the server up).
    pub fn disconnect_all(&self) {
        self.inner().pages.clear();
    }

    pub fn record_report(&self, report: PageReport) -> Result<(), crate::SimError> {
        {
            let mut inner = self.inner();
            inner.next_report += 1;
            let order = inner.next_report;
            let page = inner
                .pages
                .get_mut(&report.page)
                .ok_or_else(|| crate::SimError::UnknownPage(report.page.clone()))?;
            if page.report.as_ref().is_some_and(|old| old.seq >= report.seq) {
                return Ok(());
            }
            page.report = Some(report);
            page.reported_at = order;
        }
        self.0.reported.notify_waiters();
        Ok(())
    }

    /// A future woken by the next page report. Create it before checking, then await it.
    pub fn next_report(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.reported.notified()
    }

    /// The report of the page that reported last, and how many pages are open.
    pub fn latest_report(&self) -> (Option<PageReport>, usize) {
        let inner = self.inner();
        let latest = inner.pages.values().filter(|p| p.report.is_some()).max_by_key(|p| p.reported_at);
        (latest.and_then(|p| p.report.clone()), inner.pages.len())
    }

    /// Sends `command` to the most recently reporting page whose `Socket.state` is `state`.
    pub fn send_to_latest_in(&self, state: &str, command: PageCommand) -> bool {
        let inner = self.inner();
        let target = inner
            .pages
            .values()
            .filter(|p| p.report.as_ref().and_then(|r| r.socket_state.as_deref()) == Some(state))
            .max_by_key(|p| p.reported_at);
        target.is_some_and(|p| p.tx.send(command).is_ok())
    }

    /// Sends `command` to every page whose state is `state`; returns how many got it.
    pub fn send_to_all_in(&self, state: &str, command: &PageCommand) -> usize {
        let inner = self.inner();
        inner
            .pages
            .values()
            .filter(|p| p.report.as_ref().and_then(|r| r.socket_state.as_deref()) == Some(state))
            .filter(|p| p.tx.send(command.clone()).is_ok())
            .count()
    }

    /// Sends `command` to every open page; returns how many got it.
    pub fn broadcast(&self, command: &PageCommand) -> usize {
        self.inner().pages.values().filter(|p| p.tx.send(command.clone()).is_ok()).count()
    }

    pub fn add_login(&self, token: String, phone: String) {
        self.inner().logins.insert(token, phone);
    }

    /// The phone of a valid login token.
    pub fn login_phone(&self, token: &str) -> Option<String> {
        self.inner().logins.get(token).cloned()
    }

    pub fn revoke_login(&self, token: &str) -> bool {
        self.inner().logins.remove(token).is_some()
    }

    /// Unlinks every device; returns how many were linked.
    pub fn revoke_all_logins(&self) -> usize {
        let mut inner = self.inner();
        let count = inner.logins.len();
        inner.logins.clear();
        count
    }

    /// The modules (or `Module.member`s) the next page loaded leaves out.
    pub fn without_modules(&self) -> Vec<String> {
        self.inner().without_modules.clone()
    }

    pub fn is_lid_number(&self, digits: &str) -> bool {
        self.inner().is_lid_number(digits)
    }

    /// Sends `command` to the page showing pairing code `code` (dash and case ignored) while
    /// unpaired; returns the number the code was asked for, or `None` when no page shows it.
    pub fn send_to_pairing(&self, code: &str, make: impl FnOnce(String) -> PageCommand) -> Option<String> {
        let wanted: String = code.chars().filter(|c| *c != '-').collect::<String>().to_ascii_uppercase();
        let inner = self.inner();
        let page = inner.pages.values().filter_map(|p| p.report.as_ref().map(|r| (p, r))).find(|(_, r)| {
            matches!(r.socket_state.as_deref(), Some("UNPAIRED" | "UNPAIRED_IDLE"))
                && r.pairing_code.as_deref() == Some(wanted.as_str())
        });
        let (page, report) = page?;
        let phone = report.pairing_phone.clone()?;
        page.tx.send(make(phone.clone())).ok()?;
        Some(phone)
    }

    pub fn is_unknown_number(&self, digits: &str) -> bool {
        self.inner().unknown_numbers.iter().any(|n| n == digits)
    }

    pub fn send_latency_ms(&self) -> u64 {
        self.inner().send_latency_ms
    }

    pub fn record_message(&self, message: RecordedMessage) {
        self.inner().messages.push(message);
    }

    pub fn messages(&self) -> Vec<RecordedMessage> {
        self.inner().messages.clone()
    }

    /// Applies a config patch; returns the effective `(unknown_numbers, send_latency_ms)`.
    pub fn patch_config(&self, patch: ConfigPatch) -> (Vec<String>, u64) {
        let mut inner = self.inner();
        if let Some(numbers) = patch.unknown_numbers {
            inner.unknown_numbers = numbers;
        }
        if let Some(latency) = patch.send_latency_ms {
            inner.send_latency_ms = latency;
        }
        if let Some(numbers) = patch.lid_numbers {
            inner.lid_numbers = numbers;
        }
        if let Some(modules) = patch.without_modules {
            inner.without_modules = modules;
        }
        if let Some(delivered_ms) = patch.ack_delivered_ms {
            inner.ack_delays.delivered_ms = delivered_ms;
        }
        if let Some(read_ms) = patch.ack_read_ms {
            inner.ack_delays.read_ms = read_ms;
        }
        (inner.unknown_numbers.clone(), inner.send_latency_ms)
    }
}
