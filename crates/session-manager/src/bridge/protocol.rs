//! The WhatsApp page protocol: what the page's signals mean for the session (`translate`), the
//! calls the session makes on the page (`send`: exists → send; `perform`: logout, refreshQr,
//! takeover; `pairing_code`) with their answers, and the bridge's reason strings turned into errors
//! and failures.

use std::time::Duration;

use chromiumoxide::Page;
use serde::Deserialize;
use serde_json::json;
use shared_contracts::{
    AckLevel, ErrorCode, InboundKind, IncomingMessage, MessageAck, MessageText, PhoneNumber, SentMessage,
    WhatsappInventory,
};
use tokio::time::Instant;

use super::{BridgeEvent, PageSignal, call};
use crate::error::Error;
use crate::inbound::Offered;
use crate::session::{Event, Failure};

/// Deadline of the bridge calls that are not sends (refresh, takeover, logout).
pub const BRIDGE_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a page signal asks of the session actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageEvent {
    /// What the bridge found in the page (the build, each internal's location), before `Loaded`.
    Inventory(WhatsappInventory),
    /// WhatsApp's modules appeared: the page-load deadline is met.
    Loaded { version: String },
    /// The page shows a login QR (the string WhatsApp draws; the actor renders it).
    Qr { code: String },
    /// An event for the state machine.
    Session(Event),
    /// An incoming message (new, or history loaded at login) or an ack, for the inbound journal
    /// (not the state machine).
    Inbound(Offered),
    /// Nothing to do (progress, or an error reason the session does not act on).
    Nothing,
}

/// Translates what the tab reports into what the session does with it.
pub fn translate(signal: PageSignal) -> PageEvent {
    let event = match signal {
        PageSignal::TargetCrashed => Event::Crashed { reason: "the page crashed".into() },
        PageSignal::TargetDestroyed => Event::Crashed { reason: "the tab was closed".into() },
        PageSignal::Bridge(event) => return bridge_event(event),
    };
    PageEvent::Session(event)
}

fn bridge_event(event: BridgeEvent) -> PageEvent {
    let event = match event {
        BridgeEvent::Inventory { build, internals } => {
            return PageEvent::Inventory(WhatsappInventory::new(build, internals));
        }
        BridgeEvent::Loaded { version } => return PageEvent::Loaded { version },
        BridgeEvent::Qr { code } => return PageEvent::Qr { code },
        BridgeEvent::State { wa_state } => {
            tracing::debug!(wa_state, "WhatsApp socket state");
            Event::WaState(wa_state)
        }
        BridgeEvent::Ready { phone } => Event::Ready { phone },
        BridgeEvent::Logout => Event::LoggedOut,
        BridgeEvent::Progress { percent } => {
            tracing::debug!(percent, "WhatsApp loading chats");
            return PageEvent::Nothing;
        }
        BridgeEvent::Incoming { id, from, chat, message_type, text, timestamp, history } => {
            // A sender the page could not name is the chat's user (the LID or phone digits).
            let from = from.unwrap_or_else(|| chat.split('@').next().unwrap_or_default().to_owned());
            let message = IncomingMessage { message_id: id, from, chat, message_type, text, timestamp };
            return PageEvent::Inbound(Offered { kind: InboundKind::Message(message), history });
        }
        BridgeEvent::Ack { id, to, ack, timestamp } => {
            let Some(level) = AckLevel::from_wa(ack) else {
                tracing::warn!(id, ack, "an ack level WhatsApp did not have before: ignored");
                return PageEvent::Nothing;
            };
            return PageEvent::Inbound(Offered::from(InboundKind::Ack(MessageAck {
                message_id: id,
                to,
                ack: level,
                timestamp,
            })));
        }
        BridgeEvent::Error { reason, detail } => {
            tracing::warn!(reason, detail, "the bridge reported an error");
            let detail = detail.unwrap_or_default();
            let (message, hint) = match reason.as_str() {
                "module_missing" => (
                    format!("WhatsApp Web loaded without the modules the bridge needs ({detail})"),
                    "A new WhatsApp build: the bridge (bridge.js) needs an update",
                ),
                // Otherwise the session would wait in CONNECTING for a QR that never comes.
                "qr_unavailable" => (
                    format!("WhatsApp Web asks for a login but its QR could not be read ({detail})"),
                    "POST /connect to retry; if it repeats, POST /clear-session (a corrupt profile) \
                     or update the bridge (bridge.js) for a new WhatsApp build",
                ),
                _ => return PageEvent::Nothing,
            };
            Event::LaunchFailed(Failure { code: ErrorCode::PageLoadFailed, message, hint: hint.into() })
        }
    };
    PageEvent::Session(event)
}

/// The failure when the page loaded but WhatsApp's modules did not appear within `timeout`.
pub fn modules_did_not_appear(url: &str, timeout: Duration) -> Failure {
    Failure {
        code: ErrorCode::PageLoadFailed,
        message: format!(
            "WhatsApp Web at {url} loaded, but its modules did not appear within {} s",
            timeout.as_secs()
        ),
        hint: "Check WHATSAPP_WEB_URL; a new WhatsApp build may need a bridge update".into(),
    }
}

/// The failure that stops a session on a WhatsApp build without an internal the bridge requires.
pub fn incompatible(inventory: &WhatsappInventory) -> Option<Failure> {
    (!inventory.compatible).then(|| Failure {
        code: ErrorCode::WhatsappIncompatible,
        message: format!(
            "WhatsApp Web build {} lacks internals the bridge requires: {}",
            inventory.build,
            inventory.missing_required.join(", ")
        ),
        hint: "A new WhatsApp build moved them: run `session-manager probe` and update the location lists \
               in bridge.js (scripts/check-wa-internals compares them with whatsapp-web.js)"
            .into(),
    })
}

/// What `pairingCode` answers.
#[derive(Debug, Clone, Deserialize)]
pub struct Pairing {
    pub code: String,
}

/// Asks the page for a pairing code for `phone` (digits): the 8-character code, or the failure that
/// ends the connect (`PAIRING_UNAVAILABLE` when this WhatsApp build has no pairing internals).
pub async fn pairing_code(page: &Page, phone: &str) -> Result<String, Failure> {
    let failure = |code: ErrorCode, message: String| Failure {
        code,
        message,
        hint: "POST /connect without pairing_phone to link with the QR, or retry".into(),
    };
    match call::<Pairing>(page, "pairingCode", &[json!(phone)], BRIDGE_CALL_TIMEOUT).await {
        Ok(Some(answer)) if answer.ok => answer.value.map(|pairing| pairing.code).ok_or_else(|| {
            failure(ErrorCode::ConnectionError, "The page answered without a pairing code".into())
        }),
        Ok(Some(answer)) => {
            let reason = answer.reason.unwrap_or_default();
            let code = if reason == "feature_disabled" {
                ErrorCode::PairingUnavailable
            } else {
                ErrorCode::ConnectionError
            };
            let detail = answer.detail.unwrap_or_default();
            Err(failure(code, format!("WhatsApp Web refused a pairing code for {phone}: {reason} {detail}")))
        }
        Ok(None) => Err(failure(
            ErrorCode::ConnectionError,
            format!("The page did not give a pairing code within {BRIDGE_CALL_TIMEOUT:?}"),
        )),
        Err(e) => Err(failure(
            ErrorCode::ConnectionError,
            format!("Asking the page for a pairing code failed: {e}"),
        )),
    }
}

/// A `window.__lm` call the session makes outside sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAction {
    /// Unlink this device (best effort: the profile is wiped after it either way).
    Logout,
    /// Ask WhatsApp for a new batch of QR codes.
    RefreshQr,
    /// Take the session back from another browser.
    Takeover,
}

impl PageAction {
    /// The bridge function it calls.
    pub fn function(self) -> &'static str {
        match self {
            PageAction::Logout => "logout",
            PageAction::RefreshQr => "refreshQr",
            PageAction::Takeover => "takeover",
        }
    }

    /// The failure that ends the session when this action did not happen (`cause`), if any.
    pub fn failure(self, cause: &str) -> Option<Failure> {
        match self {
            PageAction::Logout => None,
            PageAction::RefreshQr => Some(Failure {
                code: ErrorCode::ConnectionError,
                message: format!("The QR codes ran out and asking WhatsApp Web for new ones failed: {cause}"),
                hint: "POST /connect to start again; if it repeats, the bridge (bridge.js) needs an update"
                    .into(),
            }),
            PageAction::Takeover => Some(Failure {
                code: ErrorCode::Conflict,
                message: format!(
                    "WhatsApp Web was opened in another browser and taking the session back failed: {cause}"
                ),
                hint: "Close the other WhatsApp Web, then POST /connect".into(),
            }),
        }
    }
}

/// Calls the action's function in the page; `Err` says why it did not happen.
pub async fn perform(page: &Page, action: PageAction) -> Result<(), String> {
    let function = action.function();
    let outcome = match call::<Empty>(page, function, &[], BRIDGE_CALL_TIMEOUT).await {
        Ok(Some(answer)) if answer.ok => Ok(()),
        Ok(Some(answer)) => Err(format!(
            "the page refused {function}: {} {}",
            answer.reason.unwrap_or_default(),
            answer.detail.unwrap_or_default()
        )),
        Ok(None) => Err(format!("{function} did not answer within {BRIDGE_CALL_TIMEOUT:?}")),
        Err(e) => Err(format!("{function} failed: {e}")),
    };
    match &outcome {
        Ok(()) => tracing::info!(function, "bridge call done"),
        Err(cause) => tracing::warn!(function, cause, "bridge call did not succeed"),
    }
    outcome
}

/// What `send` answers on success.
#[derive(Debug, Clone, Deserialize)]
pub struct Sent {
    pub id: String,
    pub timestamp: i64,
}

/// What `exists` answers.
#[derive(Debug, Clone, Deserialize)]
pub struct Exists {
    pub exists: bool,
}

/// Answers that carry nothing but `ok`.
#[derive(Debug, Clone, Deserialize)]
pub struct Empty {}

/// Checks the number, then sends, within `timeout` overall.
pub async fn send(
    page: &Page,
    to: &PhoneNumber,
    text: &MessageText,
    timeout: Duration,
) -> Result<SentMessage, Error> {
    let deadline = Instant::now() + timeout;
    let timed_out = || Error::SendTimeout { secs: timeout.as_secs() };
    let number = json!(to.as_str());
    let exists = call::<Exists>(page, "exists", std::slice::from_ref(&number), timeout)
        .await?
        .ok_or_else(timed_out)?;
    match (exists.ok, exists.value) {
        (true, Some(Exists { exists: false })) => {
            return Err(Error::NumberNotOnWhatsapp { number: to.as_str().to_owned() });
        }
        (true, _) => {}
        (false, _) => return Err(refused(exists.reason, exists.detail)),
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let sent =
        call::<Sent>(page, "send", &[number, json!(text.as_str())], left).await?.ok_or_else(timed_out)?;
    match (sent.ok, sent.value) {
        (true, Some(value)) => {
            Ok(SentMessage { message_id: value.id, to: to.as_str().to_owned(), timestamp: value.timestamp })
        }
        _ if sent.reason.as_deref() == Some("number_not_on_whatsapp") => {
            Err(Error::NumberNotOnWhatsapp { number: to.as_str().to_owned() })
        }
        _ => Err(refused(sent.reason, sent.detail)),
    }
}

/// The page's refusal as an error whose sentence carries the cause too (not only `detail`).
fn refused(reason: Option<String>, detail: Option<String>) -> Error {
    let code = reason.unwrap_or_else(|| "unknown".into());
    let sentence = match &detail {
        Some(cause) => format!("{code} ({cause})"),
        None => code.clone(),
    };
    Error::SendFailed { reason: sentence, detail: json!({ "reason": code, "cause": detail }) }
}

#[cfg(test)]
mod tests {
    use super::super::Answer;
    use super::*;

    fn bridge_error(reason: &str) -> PageSignal {
        PageSignal::Bridge(BridgeEvent::Error { reason: reason.into(), detail: Some("x".into()) })
    }

    #[test]
    fn answers_flatten_their_value() {
        let ok: Answer<Sent> =
            serde_json::from_str(r#"{"ok":true,"id":"true_1@c.us_X","timestamp":5}"#).expect("ok");
        assert!(ok.ok);
        assert_eq!(ok.value.expect("value").id, "true_1@c.us_X");
        let no: Answer<Sent> =
            serde_json::from_str(r#"{"ok":false,"reason":"number_not_on_whatsapp","detail":null}"#)
                .expect("no");
        assert_eq!(no.reason.as_deref(), Some("number_not_on_whatsapp"));
        assert!(no.value.is_none());
    }

    #[test]
    fn the_bridge_reasons_the_session_acts_on_fail_the_page_load() {
        for reason in ["module_missing", "qr_unavailable"] {
            match translate(bridge_error(reason)) {
                PageEvent::Session(Event::LaunchFailed(failure)) => {
                    assert_eq!(failure.code, ErrorCode::PageLoadFailed);
                    assert!(failure.message.contains("(x)"), "{}", failure.message);
                }
                other => panic!("{reason}: {other:?}"),
            }
        }
        assert_eq!(translate(bridge_error("something_new")), PageEvent::Nothing);
    }

    #[test]
    fn page_signals_become_session_events() {
        assert_eq!(
            translate(PageSignal::TargetCrashed),
            PageEvent::Session(Event::Crashed { reason: "the page crashed".into() })
        );
        assert_eq!(
            translate(PageSignal::Bridge(BridgeEvent::Ready { phone: "549".into() })),
            PageEvent::Session(Event::Ready { phone: "549".into() })
        );
        assert_eq!(translate(PageSignal::Bridge(BridgeEvent::Logout)), PageEvent::Session(Event::LoggedOut));
        assert_eq!(
            translate(PageSignal::Bridge(BridgeEvent::Qr { code: "2@a".into() })),
            PageEvent::Qr { code: "2@a".into() }
        );
    }

    #[test]
    fn incoming_messages_and_acks_go_to_the_journal() {
        let incoming = BridgeEvent::Incoming {
            id: "false_20321@lid_X".into(),
            from: None,
            chat: "20321@lid".into(),
            message_type: "image".into(),
            text: None,
            timestamp: 9,
            history: true,
        };
        match translate(PageSignal::Bridge(incoming)) {
            PageEvent::Inbound(Offered { kind: InboundKind::Message(m), history }) => {
                assert_eq!((m.from.as_str(), m.text, history), ("20321", None, true))
            }
            other => panic!("{other:?}"),
        }
        let ack = |level| BridgeEvent::Ack { id: "true_1@c.us_X".into(), to: None, ack: level, timestamp: 1 };
        match translate(PageSignal::Bridge(ack(3))) {
            PageEvent::Inbound(Offered { kind: InboundKind::Ack(a), history: false }) => {
                assert_eq!(a.ack, AckLevel::Read)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(translate(PageSignal::Bridge(ack(9))), PageEvent::Nothing);
    }

    #[test]
    fn only_the_best_effort_logout_has_no_failure() {
        assert_eq!(PageAction::Logout.failure("gone"), None);
        assert_eq!(PageAction::RefreshQr.failure("gone").map(|f| f.code), Some(ErrorCode::ConnectionError));
        assert_eq!(PageAction::Takeover.failure("gone").map(|f| f.code), Some(ErrorCode::Conflict));
    }
}
