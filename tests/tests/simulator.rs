//! The WhatsApp Web simulator in a real headless Chromium: the internal surface the production bridge
//! reads (modules, events, QR, login, persistence, logout, conflict, sending) behaves as the contract
//! in the common brief says.

// Test code: a panic with its message is how a failure is reported.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use chromiumoxide::page::Page;
use e2e::{JsonClient, TestBrowser, assert_no_chromium_using, eval, wait_until};
use serde_json::{Value, json};
use tempfile::TempDir;
use wa_sim::{SimConfig, SimHandle};

/// Deadline for anything the page does on its own clock in these tests.
const WITHIN: Duration = Duration::from_secs(15);

/// Installed before the page's own script: traps the assignment of `window.require` (as wa-js's
/// loader does) to subscribe to every event from the start, and records them in `window.__events`
/// (mirrored in sessionStorage, so events of a document that navigated away are kept).
const RECORDER: &str = r#"
(() => {
  window.__events = JSON.parse(sessionStorage.getItem('__events') || '[]');
  const push = (event) => {
    event.t = performance.now();
    event.doc = location.search;
    window.__events.push(event);
    sessionStorage.setItem('__events', JSON.stringify(window.__events));
  };
  const compose = async (require, ref) => {
    const noise = await require('WAWebUserPrefsInfoStore').waNoiseInfo.get();
    const reg = await require('WAWebSignalStoreApi').waSignalStore.getRegistrationInfo();
    const adv = await require('WAWebAdvSignatureApi').getADVSecretKey();
    const b64 = require('WABase64');
    return [ref, b64.encodeB64(noise.staticKeyPair.pubKey), b64.encodeB64(reg.identityKeyPair.pubKey),
      adv, require('WAWebCompanionRegClientUtils').DEVICE_PLATFORM].join(',');
  };
  let req;
  const Conn = () => req('WAWebConnModel').Conn;
  const install = (require) => {
    const { Socket } = require('WAWebSocketModel');
    const { Cmd } = require('WAWebCmd');
    const { Stream } = require('WAWebStreamModel');
    const progress = require('WAWebOfflineHandler').OfflineMessageHandler;
    push({ type: 'initial', value: Socket.state, ref: Conn().ref });
    Socket.on('change:state', (_m, v) => push({ type: 'state', value: v }));
    Socket.on('change:hasSynced', (_m, v) => push({ type: 'hasSynced', value: v }));
    Stream.on('change:mode', (_m, v) => push({ type: 'mode', value: v }));
    Cmd.on('logout', () => push({ type: 'logout' }));
    Cmd.on('offline_progress_update', () =>
      push({ type: 'progress', value: progress.getOfflineDeliveryProgress() }));
    Conn().on('change:ref', (_m, v) => {
      const holder = document.querySelector('div[data-ref]');
      const event = { type: 'ref', value: v, dom: holder && holder.getAttribute('data-ref') };
      push(event);
      compose(require, v).then((composed) => { event.composed = composed; push({ type: 'composed', value: composed }); });
    });
  };
  Object.defineProperty(window, 'require', {
    configurable: true,
    get() { return req; },
    set(value) { req = value; install(value); },
  });
})();
"#;

struct Fixture {
    sim: SimHandle,
    control: JsonClient,
    profile: TempDir,
}

impl Fixture {
    async fn start(config: SimConfig) -> Self {
        let sim = wa_sim::spawn(SimConfig { port: 0, ..config }).await.expect("start wa-sim");
        let control = JsonClient::new(sim.url()).expect("http client");
        Fixture { sim, control, profile: tempfile::tempdir().expect("temp profile dir") }
    }

    fn profile(&self) -> &Path {
        self.profile.path()
    }

    async fn launch(&self) -> TestBrowser {
        TestBrowser::launch(self.profile()).await.expect("launch Chromium")
    }

    /// Opens the simulator's page with the event recorder installed.
    async fn open_recorded(&self, browser: &TestBrowser) -> Page {
        browser.open_with_init_script(&format!("{}/", self.sim.url()), RECORDER).await.expect("open the page")
    }

    /// Closes the browser and the simulator, and checks no Chromium of this profile is left.
    async fn finish(self, browser: TestBrowser) {
        browser.close().await;
        assert_no_chromium_using(self.profile(), Duration::from_secs(10)).await;
        self.sim.shutdown().await;
    }
}

/// Evaluates `expression` until it returns something other than null/false (errors count as not yet,
/// e.g. while the page navigates).
async fn wait_for_js(page: &Page, what: &str, expression: &str) -> Value {
    wait_until(what, WITHIN, || async {
        match eval(page, expression).await {
            Ok(Value::Null | Value::Bool(false)) | Err(_) => None,
            Ok(value) => Some(value),
        }
    })
    .await
}

async fn events(page: &Page) -> Vec<Value> {
    match eval(page, "window.__events").await.expect("read window.__events") {
        Value::Array(events) => events,
        other => panic!("window.__events is not an array: {other}"),
    }
}

fn values_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).map(|e| &e["value"]).collect()
}

/// Scans the QR the page shows and waits until the page has synced.
async fn scan_and_sync(fixture: &Fixture, page: &Page, phone: Option<&str>) {
    wait_for_js(page, "a QR code in the page", "document.querySelector('div[data-ref]') !== null").await;
    let body = phone.map(|p| json!({"phone": p}));
    let (status, answer) =
        fixture.control.post("/__sim/scan", body.as_ref()).await.expect("POST /__sim/scan");
    assert_eq!(status, 200, "scan refused: {answer}");
    wait_for_js(
        page,
        "Socket.hasSynced after the scan",
        "window.require('WAWebSocketModel').Socket.hasSynced",
    )
    .await;
}

/// Reads `data-ref` and the canvas in one synchronous step, and decodes the canvas's QR.
async fn canvas_qr(page: &Page) -> (String, String) {
    let js = "(() => { const h = document.querySelector('div[data-ref]'); \
              return {ref: h.getAttribute('data-ref'), png: h.querySelector('canvas[aria-label^=\"Scan\"]').toDataURL()}; })()";
    let drawn = eval(page, js).await.expect("read the QR canvas");
    let decoded =
        e2e::decode_qr_data_url(drawn["png"].as_str().expect("png")).expect("the canvas QR decodes");
    (drawn["ref"].as_str().expect("data-ref").to_owned(), decoded)
}

#[tokio::test]
async fn modules_are_absent_before_the_load_delay_and_present_after_it() {
    let load_delay_ms = 3000;
    let fixture = Fixture::start(SimConfig { load_delay_ms, ..SimConfig::default() }).await;
    let browser = fixture.launch().await;
    // What the page exposes once its own script has run (DOMContentLoaded follows the inline script
    // at the end of the body), recorded by the page itself: an order of events, not a clock reading.
    let record = "document.addEventListener('DOMContentLoaded', () => { window.__atDomReady = \
                  {require: typeof window.require, debug: typeof window.Debug, started: !!window.__SIM_CONFIG}; });";
    let page = browser
        .open_with_init_script(&format!("{}/", fixture.sim.url()), record)
        .await
        .expect("open the page");

    let early = eval(&page, "window.__atDomReady").await.expect("evaluate");
    assert_eq!(early["started"], true, "the page's script ran: {early}");
    assert_eq!((early["require"].as_str(), early["debug"].as_str()), (Some("undefined"), Some("undefined")));

    wait_for_js(&page, "window.require", "typeof window.require === 'function'").await;
    let version = eval(&page, "window.Debug.VERSION").await.unwrap();
    let version = version.as_str().expect("Debug.VERSION is a string");
    assert!(version.starts_with("2.3000.") && version.ends_with("-sim"), "{version}");
    let names = eval(&page, "Object.keys(window.require('__debug').modulesMap)").await.unwrap();
    for module in [
        "WAWebSocketModel",
        "WAWebConnModel",
        "WAWebCmd",
        "WAWebOfflineHandler",
        "WAWebStreamModel",
        "WAWebUserPrefsInfoStore",
        "WAWebSignalStoreApi",
        "WAWebAdvSignatureApi",
        "WAWebCompanionRegClientUtils",
        "WABase64",
        "WAWebUserPrefsMeUser",
        "WAWebWidFactory",
        "WAWebQueryExistsJob",
        "WAWebCollections",
        "WAWebFindChatAction",
        "WAWebMsgKey",
        "WAWebGetEphemeralFieldsMsgActionsUtils",
        "WAWebSendMsgChatAction",
    ] {
        assert!(names.as_array().unwrap().iter().any(|n| n == module), "{module} missing from {names}");
        let present = eval(&page, &format!("window.require('{module}') != null")).await.unwrap();
        assert_eq!(present, json!(true), "require('{module}')");
    }
    let error =
        eval(&page, "(() => { try { window.require('WAWebNope'); } catch (e) { return e.message; } })()")
            .await
            .unwrap();
    assert_eq!(error, json!("Requiring unknown module \"WAWebNope\""));
    fixture.finish(browser).await;
}

#[tokio::test]
async fn refs_rotate_on_the_clock_then_idle_until_refresh_qr() {
    let (rotate, max_refs) = (300.0, 3);
    let config = SimConfig { qr_rotate_ms: 300, max_refs, load_delay_ms: 100, ..SimConfig::default() };
    let fixture = Fixture::start(config).await;
    let browser = fixture.launch().await;
    let page = fixture.open_recorded(&browser).await;

    wait_for_js(
        &page,
        "UNPAIRED_IDLE",
        "window.__events.some(e => e.type === 'state' && e.value === 'UNPAIRED_IDLE')",
    )
    .await;
    let recorded = events(&page).await;
    let refs: Vec<&Value> = recorded.iter().filter(|e| e["type"] == "ref").collect();
    assert_eq!(refs.len(), max_refs as usize, "one batch has max_refs refs: {recorded:?}");
    assert_eq!(values_of(&recorded, "state"), [&json!("UNPAIRED"), &json!("UNPAIRED_IDLE")]);
    for (i, pair) in refs.windows(2).enumerate() {
        let lived = pair[1]["t"].as_f64().unwrap() - pair[0]["t"].as_f64().unwrap();
        let lifetime = if i == 0 { 3.0 * rotate } else { rotate };
        assert!(lived >= lifetime - 5.0, "ref {i} lived {lived} ms, less than {lifetime} ms");
    }
    for event in &refs {
        let value = event["value"].as_str().unwrap();
        assert!(value.starts_with("2@"), "{value}");
        assert!(
            event["dom"].as_str().unwrap().starts_with(&format!("{value},")),
            "DOM set before change:ref"
        );
    }
    let last_ref = refs.last().unwrap()["value"].clone();
    assert_eq!(eval(&page, "window.require('WAWebConnModel').Conn.ref").await.unwrap(), last_ref);

    // The composed string (built from the modules in the change:ref listener) equals data-ref.
    wait_for_js(
        &page,
        "composed QR strings",
        &format!("window.__events.filter(e => e.composed).length >= {max_refs}"),
    )
    .await;
    for event in events(&page).await.iter().filter(|e| e["type"] == "ref") {
        assert_eq!(event["composed"], event["dom"], "composed QR differs from data-ref");
        assert_eq!(event["composed"].as_str().unwrap().split(',').count(), 5);
    }
    let (data_ref, decoded) = canvas_qr(&page).await;
    assert_eq!(decoded, data_ref);

    // Idle: no new ref for more than twice the rotation (page clock), then refreshQR restarts.
    let idle = recorded.iter().find(|e| e["type"] == "state" && e["value"] == "UNPAIRED_IDLE");
    let idle_since = idle.expect("UNPAIRED_IDLE recorded")["t"].as_f64().unwrap();
    wait_for_js(
        &page,
        "two rotations of idle time",
        &format!("performance.now() > {}", idle_since + 2.5 * rotate),
    )
    .await;
    assert_eq!(events(&page).await.iter().filter(|e| e["type"] == "ref").count(), max_refs as usize);
    eval(&page, "window.__events.push({type: 'refresh'}); window.require('WAWebCmd').Cmd.refreshQR(); true")
        .await
        .unwrap();
    wait_for_js(
        &page,
        "a new ref and UNPAIRED after refreshQR",
        "(() => { const i = window.__events.findIndex(e => e.type === 'refresh'); const after = window.__events.slice(i); \
         return after.some(e => e.type === 'ref') && after.some(e => e.type === 'state' && e.value === 'UNPAIRED'); })()",
    )
    .await;
    let new_ref = eval(&page, "window.require('WAWebConnModel').Conn.ref").await.unwrap();
    assert_ne!(new_ref, last_ref);
    fixture.finish(browser).await;
}

#[tokio::test]
async fn the_canvas_qr_decodes_to_data_ref_with_the_wa_me_prefix() {
    let config = SimConfig { qr_prefix: true, load_delay_ms: 100, ..SimConfig::default() };
    let fixture = Fixture::start(config).await;
    let browser = fixture.launch().await;
    let page = fixture.open_recorded(&browser).await;
    wait_for_js(&page, "a QR code", "window.__events.some(e => e.type === 'ref')").await;
    let (data_ref, decoded) = canvas_qr(&page).await;
    assert_eq!(decoded, data_ref);
    let conn_ref = eval(&page, "window.require('WAWebConnModel').Conn.ref").await.unwrap();
    let expected_start = format!("https://wa.me/settings/linked_devices#{},", conn_ref.as_str().unwrap());
    assert!(data_ref.starts_with(&expected_start), "{data_ref}");
    let (_, state) = fixture.control.get("/__sim/state").await.unwrap();
    assert_eq!(state["qr"], json!(data_ref));
    assert_eq!(state["socket_state"], "UNPAIRED");
    fixture.finish(browser).await;
}

#[tokio::test]
async fn a_scan_pairs_connects_syncs_and_names_the_phone() {
    let fixture = Fixture::start(SimConfig { load_delay_ms: 100, ..SimConfig::default() }).await;
    let browser = fixture.launch().await;
    let page = fixture.open_recorded(&browser).await;
    wait_for_js(
        &page,
        "UNPAIRED",
        "window.require && window.require('WAWebSocketModel').Socket.state === 'UNPAIRED'",
    )
    .await;
    let me = "window.require('WAWebUserPrefsMeUser').getMaybeMePnUser()";
    assert_eq!(eval(&page, me).await.unwrap(), Value::Null);

    scan_and_sync(&fixture, &page, Some("5491155555555")).await;
    let recorded = events(&page).await;
    assert_eq!(
        values_of(&recorded, "state"),
        [&json!("UNPAIRED"), &json!("PAIRING"), &json!("CONNECTED")],
        "{recorded:?}"
    );
    let progress: Vec<f64> = values_of(&recorded, "progress").iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress goes up: {progress:?}");
    assert_eq!(progress.last(), Some(&100.0));
    let position =
        |kind: &str, value: Value| recorded.iter().position(|e| e["type"] == kind && e["value"] == value);
    assert!(
        position("progress", json!(100)) < position("hasSynced", json!(true)),
        "synced after progress 100"
    );
    assert_eq!(values_of(&recorded, "mode").last(), Some(&&json!("MAIN")));
    assert_eq!(eval(&page, "document.querySelector('#pane-side') !== null").await.unwrap(), json!(true));
    assert_eq!(
        eval(
            &page,
            &format!(
                "(() => {{ const w = {me}; return {{user: w.user, server: w.server, s: w._serialized}}; }})()"
            )
        )
        .await
        .unwrap(),
        json!({"user": "5491155555555", "server": "c.us", "s": "5491155555555@c.us"})
    );
    let (_, state) = fixture.control.get("/__sim/state").await.unwrap();
    assert_eq!(
        (state["socket_state"].as_str(), state["phone"].as_str()),
        (Some("CONNECTED"), Some("5491155555555"))
    );
    assert_eq!(state["pages"], 1);
    fixture.finish(browser).await;
}

#[tokio::test]
async fn a_relaunched_browser_on_the_same_profile_comes_back_connected_without_a_qr() {
    let fixture = Fixture::start(SimConfig { load_delay_ms: 100, ..SimConfig::default() }).await;
    let browser = fixture.launch().await;
    let page = fixture.open_recorded(&browser).await;
    scan_and_sync(&fixture, &page, None).await;
    browser.close().await;
    assert_no_chromium_using(fixture.profile(), Duration::from_secs(10)).await;

    let browser = fixture.launch().await;
    let page = fixture.open_recorded(&browser).await;
    wait_for_js(
        &page,
        "hasSynced after the relaunch",
        "window.__events.some(e => e.type === 'hasSynced' && e.value)",
    )
    .await;
    let recorded = events(&page).await;
    assert_eq!(recorded[0]["type"], "initial");
    assert_eq!(recorded[0]["value"], "OPENING");
    assert!(recorded.iter().all(|e| e["type"] != "ref"), "a ref after relaunch: {recorded:?}");
    assert_eq!(values_of(&recorded, "state"), [&json!("CONNECTED")]);
    let qr =
        eval(&page, "[window.require('WAWebConnModel').Conn.ref, document.querySelector('div[data-ref]')]")
            .await
            .unwrap();
    assert_eq!(qr, json!([null, null]));
    let me =
        eval(&page, "window.require('WAWebUserPrefsMeUser').getMaybeMePnUser()._serialized").await.unwrap();
    assert_eq!(me, json!("5491100000000@c.us"));
    fixture.finish(browser).await;
}

#[tokio::test]
async fn conflict_is_taken_over_and_a_phone_logout_wipes_the_login() {
    let fixture = Fixture::start(SimConfig { load_delay_ms: 100, ..SimConfig::default() }).await;
    let browser = fixture.launch().await;
    let page = fixture.open_recorded(&browser).await;
    scan_and_sync(&fixture, &page, None).await;

    let (status, _) = fixture.control.post("/__sim/conflict", None).await.unwrap();
    assert_eq!(status, 200);
    let socket_and_mode =
        "[window.require('WAWebSocketModel').Socket.state, window.require('WAWebStreamModel').Stream.mode]";
    wait_for_js(&page, "CONFLICT", "window.require('WAWebSocketModel').Socket.state === 'CONFLICT'").await;
    assert_eq!(eval(&page, socket_and_mode).await.unwrap(), json!(["CONFLICT", "CONFLICT"]));
    eval(&page, "window.require('WAWebSocketModel').Socket.takeover(); true").await.unwrap();
    wait_for_js(
        &page,
        "CONNECTED after takeover",
        "window.require('WAWebSocketModel').Socket.state === 'CONNECTED'",
    )
    .await;

    let (status, _) = fixture.control.post("/__sim/logout", None).await.unwrap();
    assert_eq!(status, 200);
    wait_for_js(
        &page,
        "a QR on /?post_logout=1",
        "location.search === '?post_logout=1' && document.querySelector('div[data-ref] canvas') !== null",
    )
    .await;
    let recorded = events(&page).await;
    let logout_at = recorded.iter().position(|e| e["type"] == "logout").expect("Cmd emitted logout");
    assert_eq!(recorded[logout_at]["doc"], "", "logout emitted by the logged-in document");
    assert_eq!(eval(&page, "localStorage.getItem('wa-sim:login')").await.unwrap(), Value::Null);
    let (status, answer) = fixture.control.post("/__sim/logout", None).await.unwrap();
    assert_eq!((status, answer["code"].as_str()), (409, Some("not_logged_in")));

    browser.close().await;
    let browser = fixture.launch().await;
    let page = fixture.open_recorded(&browser).await;
    wait_for_js(&page, "a QR after relaunch", "window.__events.some(e => e.type === 'ref')").await;
    assert!(values_of(&events(&page).await, "state").contains(&&json!("UNPAIRED")));
    fixture.finish(browser).await;
}

#[tokio::test]
async fn a_message_sent_through_the_modules_reaches_the_simulator() {
    let config = SimConfig {
        load_delay_ms: 100,
        unknown_numbers: vec!["5491100000099".into()],
        ..SimConfig::default()
    };
    let fixture = Fixture::start(config).await;
    let browser = fixture.launch().await;
    let page = fixture.open_recorded(&browser).await;
    scan_and_sync(&fixture, &page, None).await;

    let send = r#"(async () => {
      const r = window.require;
      const widFactory = r('WAWebWidFactory');
      const query = r('WAWebQueryExistsJob');
      const unknown = await query.queryWidExists(widFactory.createWid('5491100000099@c.us'));
      const found = await query.queryWidExists(widFactory.createWid('5491123456789@c.us'));
      const wid = found.wid;
      const shape = [wid.isLid(), wid.isGroup(), wid.toString()];
      const chat = r('WAWebCollections').Chat.get(wid)
        || (await r('WAWebFindChatAction').findOrCreateLatestChat(wid)).chat;
      const me = r('WAWebUserPrefsMeUser').getMaybeMePnUser();
      const MsgKey = r('WAWebMsgKey');
      const id = new MsgKey({ from: me, to: chat.id, id: await MsgKey.newId(), participant: undefined, selfDir: 'out' });
      const message = { id, body: 'hola desde e2e', type: 'chat', t: Math.floor(Date.now() / 1000), from: me,
        to: chat.id, self: 'out', local: true, isNewMsg: true, ack: 0,
        ...r('WAWebGetEphemeralFieldsMsgActionsUtils').getEphemeralFields(chat) };
      const [stored, sent] = r('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, message);
      await stored;
      const result = await sent;
      return { unknown, found: wid._serialized, shape, result: result.messageSendResult, id: id._serialized,
               inMsg: !!r('WAWebCollections').Msg.get(id._serialized) };
    })()"#;
    let outcome = eval(&page, send).await.expect("send through the modules");
    assert_eq!(outcome["unknown"], Value::Null);
    assert_eq!(outcome["found"], "5491123456789@c.us");
    assert_eq!(outcome["shape"], json!([false, false, "5491123456789@c.us"]));
    assert_eq!(outcome["result"], "OK");
    assert_eq!(outcome["inMsg"], true);
    let (status, messages) = fixture.control.get("/__sim/messages").await.unwrap();
    assert_eq!(status, 200);
    let messages = messages.as_array().expect("a list of messages");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["to"], "5491123456789");
    assert_eq!(messages[0]["text"], "hola desde e2e");
    assert_eq!(messages[0]["id"], outcome["id"]);
    fixture.finish(browser).await;
}

#[tokio::test]
async fn a_headless_chrome_user_agent_gets_the_refusal_page() {
    let fixture = Fixture::start(SimConfig { load_delay_ms: 0, ..SimConfig::default() }).await;
    let browser =
        TestBrowser::launch_with_user_agent(fixture.profile(), None).await.expect("launch Chromium");
    let page = browser.open(&format!("{}/", fixture.sim.url())).await.expect("open the page");
    let ua = eval(&page, "navigator.userAgent").await.unwrap();
    assert!(ua.as_str().unwrap().contains("HeadlessChrome"), "{ua}");
    let text = wait_for_js(&page, "the refusal text", "document.body && document.body.innerText").await;
    assert!(text.as_str().unwrap().contains("WhatsApp works with Google Chrome 60+"), "{text}");
    assert_eq!(eval(&page, "typeof window.require").await.unwrap(), json!("undefined"));
    let (_, state) = fixture.control.get("/__sim/state").await.unwrap();
    assert_eq!(state["pages"], 0);
    fixture.finish(browser).await;
}
