//! The Rust side of the bridge: opens WhatsApp Web in a tab with `bridge.js` injected into every
//! document, forwards what the page pushes through the CDP binding (and CDP's own crash signals),
//! and calls `window.__lm` functions with a deadline. What those events and calls mean for the
//! session (the WhatsApp page protocol) is `protocol.rs`.

pub mod protocol;

use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::inspector::{EnableParams as InspectorEnable, EventTargetCrashed};
use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use chromiumoxide::cdp::browser_protocol::target::EventTargetDestroyed;
use chromiumoxide::cdp::js_protocol::runtime::{AddBindingParams, EventBindingCalled};
use chromiumoxide::{Browser, Page};
use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use shared_contracts::InternalLocation;

use crate::browser::{BrowserError, cdp};

/// The injected script (the only code that knows WhatsApp's internals).
pub const BRIDGE_JS: &str = include_str!("bridge.js");
/// The CDP binding the page calls with one JSON event.
pub const BINDING: &str = "__lmEmit";

/// One event pushed by the page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BridgeEvent {
    /// The build and where each internal was found; sent once the modules settled, before `loaded`.
    Inventory {
        build: String,
        internals: Vec<InternalLocation>,
    },
    Loaded {
        version: String,
    },
    Qr {
        code: String,
    },
    State {
        wa_state: String,
    },
    Ready {
        phone: String,
    },
    Logout,
    Progress {
        percent: u32,
    },
    Error {
        reason: String,
        detail: Option<String>,
    },
    /// A new message someone sent (`Msg` `add`, `isNewMsg`, not `fromMe`).
    Incoming {
        id: String,
        /// Digits of the sender (the phone-number user when the page could resolve a LID).
        from: Option<String>,
        chat: String,
        message_type: String,
        text: Option<String>,
        /// Unix milliseconds (WhatsApp's `t` in seconds, times 1000).
        timestamp: i64,
        /// Loaded at login from what the page already held (`isNewMsg` false), not just received.
        #[serde(default)]
        history: bool,
    },
    /// The ack of one of our messages changed (`Msg` `change:ack`, `fromMe`).
    Ack {
        id: String,
        to: Option<String>,
        /// WhatsApp's level, -1..=4.
        ack: i64,
        timestamp: i64,
    },
}

/// What the tab reports, bridge events and CDP's own signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageSignal {
    Bridge(BridgeEvent),
    TargetCrashed,
    TargetDestroyed,
}

/// How long Chromium's own first tab may take to show up before we open one ourselves.
const FIRST_TAB_WAIT: Duration = Duration::from_secs(3);
const FIRST_TAB_POLL: Duration = Duration::from_millis(10);

/// Takes over the tab Chromium opens at start (one renderer, and no second tab to create and load);
/// opens a new one only if that tab does not show up in time.
async fn first_tab(browser: &Browser, cdp_timeout: Duration) -> Result<Page, BrowserError> {
    let deadline = tokio::time::Instant::now() + FIRST_TAB_WAIT;
    loop {
        let pages = cdp("list the tabs", cdp_timeout, browser.pages()).await?;
        if let Some(page) = pages.into_iter().next() {
            return Ok(page);
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::debug!("Chromium's first tab did not appear: opening one");
            return cdp("open a tab", cdp_timeout, browser.new_page("about:blank")).await;
        }
        tokio::time::sleep(FIRST_TAB_POLL).await;
    }
}

/// Takes a tab, installs the bridge and the listeners, and navigates to `url`. Returns once the
/// navigation is under way: the bridge reports the page's progress through the binding.
pub async fn open_whatsapp(
    browser: &Browser,
    url: &str,
    cdp_timeout: Duration,
    page_load_timeout: Duration,
    on_signal: impl Fn(PageSignal) + Send + Sync + Clone + 'static,
) -> Result<Page, BrowserError> {
    let started = std::time::Instant::now();
    let page = first_tab(browser, cdp_timeout).await?;
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "tab ready");
    // Subscribe and install before navigating, so no event is missed; the commands are independent
    // and go out together (one round trip instead of seven).
    let (mut bindings, mut crashes, mut destroyed, _, _, _) = tokio::try_join!(
        cdp("listen for bridge events", cdp_timeout, page.event_listener::<EventBindingCalled>()),
        cdp("listen for crashes", cdp_timeout, page.event_listener::<EventTargetCrashed>()),
        cdp("listen for closed tabs", cdp_timeout, browser.event_listener::<EventTargetDestroyed>()),
        cdp("enable crash reports", cdp_timeout, page.execute(InspectorEnable::default())),
        cdp("add the bridge binding", cdp_timeout, page.execute(AddBindingParams::new(BINDING))),
        cdp(
            "inject the bridge",
            cdp_timeout,
            page.execute(AddScriptToEvaluateOnNewDocumentParams::new(BRIDGE_JS)),
        ),
    )?;
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "bridge installed");

    let signal = on_signal.clone();
    tokio::spawn(async move {
        while let Some(call) = bindings.next().await {
            if call.name != BINDING {
                continue;
            }
            match serde_json::from_str::<BridgeEvent>(&call.payload) {
                Ok(event) => signal(PageSignal::Bridge(event)),
                Err(e) => tracing::warn!(payload = %call.payload, error = %e, "unreadable bridge event"),
            }
        }
    });
    let signal = on_signal.clone();
    tokio::spawn(async move {
        if crashes.next().await.is_some() {
            signal(PageSignal::TargetCrashed);
        }
    });
    let target = page.target_id().clone();
    tokio::spawn(async move {
        while let Some(event) = destroyed.next().await {
            if event.target_id == target {
                on_signal(PageSignal::TargetDestroyed);
                break;
            }
        }
    });

    // `Page.navigate` answers once the server responded (an error page is an `errorText`), not
    // at the `load` event: the bridge's `loaded` event is what counts.
    let navigated = tokio::time::timeout(page_load_timeout, page.goto(url)).await;
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, url, "navigation started");
    match navigated {
        Ok(Ok(_)) => Ok(page),
        Ok(Err(e)) => Err(BrowserError::PageLoad { url: url.to_owned(), reason: e.to_string() }),
        Err(_) => Err(BrowserError::PageLoadTimeout { url: url.to_owned(), timeout: page_load_timeout }),
    }
}

/// The answer of a `window.__lm` call: `{ok:true, ...}` or `{ok:false, reason, detail}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Answer<T> {
    pub ok: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub value: Option<T>,
}

/// Calls `window.__lm.<function>(args...)` and waits for its answer up to `timeout`.
/// `Ok(None)` means the call did not answer in time.
pub async fn call<T: DeserializeOwned>(
    page: &Page,
    function: &str,
    args: &[serde_json::Value],
    timeout: Duration,
) -> Result<Option<Answer<T>>, BrowserError> {
    let args: Vec<String> = args.iter().map(serde_json::Value::to_string).collect();
    let expression = format!(
        "(window.__lm ? window.__lm.{function}({}) : {{ok:false, reason:'bridge_missing', detail:null}})",
        args.join(",")
    );
    match tokio::time::timeout(timeout, page.evaluate_expression(expression)).await {
        Err(_) => Ok(None),
        Ok(Err(e)) => Err(BrowserError::Cdp { step: "call the bridge", reason: e.to_string() }),
        Ok(Ok(result)) => result
            .into_value::<Answer<T>>()
            .map(Some)
            .map_err(|e| BrowserError::Cdp { step: "read the bridge's answer", reason: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_of_the_contract_parse() {
        let cases = [
            (
                r#"{"type":"loaded","version":"2.3000.1-sim"}"#,
                BridgeEvent::Loaded { version: "2.3000.1-sim".into() },
            ),
            (r#"{"type":"qr","code":"2@a,b,c,d,1"}"#, BridgeEvent::Qr { code: "2@a,b,c,d,1".into() }),
            (r#"{"type":"state","wa_state":"UNPAIRED"}"#, BridgeEvent::State { wa_state: "UNPAIRED".into() }),
            (
                r#"{"type":"ready","phone":"5491100000000"}"#,
                BridgeEvent::Ready { phone: "5491100000000".into() },
            ),
            (r#"{"type":"logout"}"#, BridgeEvent::Logout),
            (r#"{"type":"progress","percent":40}"#, BridgeEvent::Progress { percent: 40 }),
            (
                r#"{"type":"ack","id":"true_1@c.us_X","to":"1","ack":2,"timestamp":5}"#,
                BridgeEvent::Ack { id: "true_1@c.us_X".into(), to: Some("1".into()), ack: 2, timestamp: 5 },
            ),
            (
                r#"{"type":"incoming","id":"false_1@c.us_Y","from":"1","chat":"1@c.us","message_type":"image","text":null,"timestamp":7}"#,
                BridgeEvent::Incoming {
                    id: "false_1@c.us_Y".into(),
                    from: Some("1".into()),
                    chat: "1@c.us".into(),
                    message_type: "image".into(),
                    text: None,
                    timestamp: 7,
                    history: false,
                },
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(serde_json::from_str::<BridgeEvent>(json).expect(json), expected);
        }
    }

    #[test]
    fn the_bridge_uses_events_not_polling_once_loaded() {
        // One interval, cleared as soon as the modules appear; everything else hangs off `on(...)`.
        assert_eq!(BRIDGE_JS.matches("setInterval(").count(), 1);
        assert!(BRIDGE_JS.contains("clearInterval(timer)"));
        for event in [
            "change:state",
            "change:ref",
            "change:hasSynced",
            "'logout'",
            "offline_progress_update",
            "'change:ack'",
            "on('add'",
        ] {
            assert!(BRIDGE_JS.contains(event), "{event}");
        }
    }
}
