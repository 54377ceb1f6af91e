//! The hub's admin web page in a real headless Chromium, against the real hub, manager and the
//! WhatsApp Web simulator: log in, connect, see the QR (and its rotation) appear by itself, scan,
//! see the green indicator with the phone number, send a test message, disconnect, see the
//! session-manager-unreachable banner come and go, clear the session through its confirmation.
//! Screenshots of the main states go to `target/screenshots/admin-*.png`.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
use chromiumoxide::cdp::browser_protocol::emulation::{
    ClearDeviceMetricsOverrideParams, SetDeviceMetricsOverrideParams,
};
use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::page::{Page, ScreenshotParams};
use e2e::{
    ADMIN_EMAIL, ADMIN_PASSWORD, CDP_TIMEOUT, Stack, StackOptions, TestBrowser, assert_no_chromium_using,
    eval, wait_until,
};
use futures_util::FutureExt;
use serde_json::Value;
use wa_sim::SimConfig;

/// Installed before the page's own scripts: records every Content-Security-Policy violation and
/// marks the document, so a reload (which would drop the mark) is noticed.
const OBSERVER: &str = r#"
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
window.__loadedAt = Math.random();
"#;

/// The phone the simulator links (`SimConfig::default().phone`), as the hub reports it.
const PHONE: &str = "+5491100000000";

fn screenshot_dir() -> PathBuf {
    // target/<profile>/deps/<test binary> -> target/screenshots
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let target = exe.ancestors().nth(3).expect("test binaries live in target/<profile>/deps");
    target.join("screenshots")
}

async fn screenshot(page: &Page, name: &str) {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("target/screenshots can be created");
    let path = dir.join(format!("admin-{name}.png"));
    let params = ScreenshotParams::builder().full_page(true).build();
    tokio::time::timeout(CDP_TIMEOUT, page.save_screenshot(params, &path))
        .await
        .expect("the screenshot did not time out")
        .expect("the screenshot is saved");
    eprintln!("screenshot: {}", path.display());
}

/// Evaluates `js` and returns it as a string ("" for null).
async fn text(page: &Page, js: &str) -> String {
    match eval(page, js).await.expect("the page evaluates the expression") {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Whether the element with `id` is rendered (not `hidden`, not inside a hidden ancestor). Panics
/// when the page has no such element or cannot be read, so "not shown" never means "not there".
async fn shown(page: &Page, id: &str) -> bool {
    let js = format!(
        "(() => {{ const e = document.getElementById('{id}'); return e ? e.checkVisibility() : null; }})()"
    );
    match eval(page, &js).await {
        Ok(Value::Bool(visible)) => visible,
        Ok(other) => panic!("the page has no element #{id} (got {other})"),
        Err(e) => panic!("reading whether #{id} is shown: {e:#}"),
    }
}

/// The text of the element with `id` when it is rendered, read in one evaluation.
async fn shown_text(page: &Page, id: &str) -> Option<String> {
    let js = format!(
        "(() => {{ const e = document.getElementById('{id}'); \
         return e && e.checkVisibility() && e.textContent ? e.textContent : null; }})()"
    );
    match eval(page, &js).await.ok()? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

async fn indicator(page: &Page) -> (String, String) {
    let tone = text(page, "document.getElementById('indicator').dataset.tone").await;
    let label = text(page, "document.getElementById('state-label').textContent").await;
    (tone, label)
}

/// Waits until the indicator shows `tone` with a label containing `label`.
async fn wait_for_indicator(page: &Page, tone: &str, label: &str, within: Duration) {
    let what = format!("the indicator to show {tone} / {label:?}");
    wait_until(&what, within, || async {
        let (t, l) = indicator(page).await;
        (t == tone && l.contains(label)).then_some(())
    })
    .await;
}

async fn click(page: &Page, selector: &str) {
    let element = tokio::time::timeout(CDP_TIMEOUT, page.find_element(selector))
        .await
        .expect("finding the element did not time out")
        .unwrap_or_else(|e| panic!("the page has {selector}: {e}"));
    tokio::time::timeout(CDP_TIMEOUT, element.click())
        .await
        .expect("the click did not time out")
        .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
}

/// Focuses `selector` by clicking it and types `input` with key events, as a user would.
async fn type_into(page: &Page, selector: &str, input: &str) {
    click(page, selector).await;
    let element = page.find_element(selector).await.expect("the element is still there");
    tokio::time::timeout(CDP_TIMEOUT, element.type_str(input))
        .await
        .expect("typing did not time out")
        .unwrap_or_else(|e| panic!("typing into {selector}: {e}"));
}

/// Starts the stack and Chromium, runs `scenario`, then, whatever it did (a panic included), closes
/// Chromium, checks that none of it is left and stops the stack; on a failure the services' logs are
/// printed before the panic goes on.
async fn in_page(options: StackOptions, scenario: impl AsyncFnOnce(&mut Stack, &TestBrowser)) {
    let mut stack = Stack::start(options).await.expect("the stack starts");
    let profile = tempfile::tempdir().expect("a profile directory");
    let browser = TestBrowser::launch(profile.path()).await.expect("Chromium starts");

    let outcome = AssertUnwindSafe(scenario(&mut stack, &browser)).catch_unwind().await;

    browser.close().await;
    assert_no_chromium_using(profile.path(), Duration::from_secs(10)).await;
    match outcome {
        Ok(()) => stack.stop().await.expect("the stack stops and leaves no Chromium"),
        Err(panic) => {
            eprintln!("hub stderr:\n{}", stack.hub.stderr());
            if let Some(manager) = &stack.manager {
                eprintln!("manager stderr:\n{}", manager.stderr());
            }
            let _ = stack.stop().await;
            std::panic::resume_unwind(panic);
        }
    }
}

/// Opens the hub's page and waits for its script to start.
async fn open_page(browser: &TestBrowser, hub: &str) -> Page {
    let page = browser.open_with_init_script(&format!("{hub}/"), OBSERVER).await.expect("the page opens");
    wait_until("the page's script to start", Duration::from_secs(10), || async {
        (text(&page, "document.body.dataset.ready").await == "true").then_some(())
    })
    .await;
    page
}

/// Logs the admin in through the form and waits for the dashboard.
async fn log_in_as_admin(page: &Page) {
    type_into(page, "#login-email", ADMIN_EMAIL).await;
    type_into(page, "#login-password", ADMIN_PASSWORD).await;
    click(page, "#login-submit").await;
    wait_until("the dashboard after login", Duration::from_secs(15), || async {
        shown(page, "dashboard").await.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_runs_the_whatsapp_session_from_the_hubs_page() {
    let options = StackOptions {
        // First code 9 s, then 3 s each: long enough to look at, short enough to see a rotation.
        sim: SimConfig { qr_rotate_ms: 3_000, load_delay_ms: 100, ..SimConfig::default() },
        ..StackOptions::default()
    };
    in_page(options, scenario).await;
}

async fn scenario(stack: &mut Stack, browser: &TestBrowser) {
    let hub = stack.hub.url().to_owned();
    let sim = stack.sim_client().expect("a simulator client");
    let page = open_page(browser, &hub).await;

    // Spanish by default, the login form first.
    assert_eq!(text(&page, "document.documentElement.lang").await, "es");
    assert!(shown(&page, "login-view").await, "the login form is shown");
    assert!(!shown(&page, "dashboard").await, "nothing else before logging in");
    assert_eq!(text(&page, "document.getElementById('login-heading').textContent").await, "Iniciar sesión");
    screenshot(&page, "login").await;

    // A wrong password shows the hub's error with its hint, in the form.
    type_into(&page, "#login-email", ADMIN_EMAIL).await;
    type_into(&page, "#login-password", "not the password").await;
    let password = page.find_element("#login-password").await.expect("the password field");
    password.press_key("Enter").await.expect("Enter submits the form");
    let error = wait_until("the wrong-password error", Duration::from_secs(10), || async {
        shown_text(&page, "login-error").await
    })
    .await;
    assert!(error.contains("Qué hacer"), "the error shows its hint: {error}");

    // Logging in with the keyboard: the password field is focused again after the error.
    let focused = text(&page, "document.activeElement.id").await;
    assert_eq!(focused, "login-password", "the password field has the focus after an error");
    eval(&page, "document.getElementById('login-password').value = ''").await.expect("clear the field");
    password.type_str(ADMIN_PASSWORD).await.expect("typing the password");
    password.press_key("Enter").await.expect("Enter submits the form");
    wait_until("the dashboard after login", Duration::from_secs(15), || async {
        shown(&page, "dashboard").await.then_some(())
    })
    .await;
    assert!(!shown(&page, "login-view").await);
    let token = text(&page, "sessionStorage.getItem('central-hub.token') || ''").await;
    assert!(token.len() > 20, "the JWT is kept in the tab's session storage");
    wait_for_indicator(&page, "disconnected", "Desconectado", Duration::from_secs(10)).await;
    assert!(!shown(&page, "qr-card").await, "no QR while disconnected");
    assert!(shown(&page, "send-not-ready").await, "sending is explained as unavailable");
    let loaded_at = eval(&page, "window.__loadedAt").await.expect("the mark");

    // Connect: the QR appears by itself, with its countdown, attempt number and text alternative.
    click(&page, "#connect").await;
    wait_for_indicator(&page, "waiting", "Esperando escaneo", Duration::from_secs(30)).await;
    wait_until("the QR image", Duration::from_secs(10), || async {
        let src = text(&page, "document.getElementById('qr-image').getAttribute('src') || ''").await;
        (shown(&page, "qr-image").await && src.starts_with("data:image/png;base64,")).then_some(())
    })
    .await;
    let alt = text(&page, "document.getElementById('qr-image').alt").await;
    assert!(alt.contains("Código QR") && alt.contains("Dispositivos vinculados"), "QR alt text: {alt}");
    let countdown = text(&page, "document.getElementById('qr-countdown').textContent").await;
    let seconds =
        |text: &str| -> Option<u64> { text.strip_prefix("Caduca en ")?.strip_suffix(" s")?.parse().ok() };
    let first = seconds(&countdown).unwrap_or_else(|| panic!("countdown: {countdown}"));
    wait_until("the countdown to tick", Duration::from_secs(3), || async {
        let now = text(&page, "document.getElementById('qr-countdown').textContent").await;
        seconds(&now).is_some_and(|s| s < first).then_some(())
    })
    .await;
    assert_eq!(text(&page, "document.getElementById('qr-attempt').textContent").await, "Intento 1");
    let shown_qr = text(&page, "document.getElementById('qr-image').src").await;
    let (_, sim_state) = sim.get("/__sim/state").await.expect("the simulator's state");
    assert_eq!(
        e2e::decode_qr_data_url(&shown_qr).expect("the page's QR image decodes"),
        sim_state["qr"].as_str().expect("the simulator shows a QR"),
        "the page's QR image encodes what WhatsApp Web draws"
    );
    screenshot(&page, "qr").await;
    phone_screenshot(&page, "qr-phone").await;

    // WhatsApp rotates the code: the page shows the new one by itself.
    wait_until("a rotated QR code on the page", Duration::from_secs(20), || async {
        let attempt = text(&page, "document.getElementById('qr-attempt').textContent").await;
        let n: u32 = attempt.strip_prefix("Intento ")?.parse().ok()?;
        (n >= 2).then_some(())
    })
    .await;
    let second_qr = text(&page, "document.getElementById('qr-image').src").await;
    assert_ne!(second_qr, shown_qr, "the rotated QR is a new image");

    // The phone scans: green with the phone number, without a reload (the figure is printed, not judged).
    let scanned_at = Instant::now();
    let (status, body) = sim.post("/__sim/scan", None).await.expect("the scan request");
    assert_eq!(status, 200, "scan: {body}");
    wait_until("READY in the hub", Duration::from_secs(30), || async {
        let (status, body) = e2e::get_with_token(&hub, "/api/admin/whatsapp/status", &token).await.ok()?;
        (status == 200 && body["state"] == "READY").then_some(())
    })
    .await;
    let hub_ready_after = scanned_at.elapsed();
    wait_for_indicator(&page, "connected", &format!("Conectado ({PHONE})"), Duration::from_secs(30)).await;
    eprintln!(
        "figures: scan -> hub READY {hub_ready_after:?}; scan -> page green {:?}",
        scanned_at.elapsed()
    );
    assert_eq!(eval(&page, "window.__loadedAt").await.expect("the mark"), loaded_at, "no reload happened");
    assert!(!shown(&page, "qr-card").await, "the QR is gone once connected");

    // A test message, confirmed on the page and received by "WhatsApp".
    type_into(&page, "#send-to", "+54 9 11 2345-6789").await;
    // Key events cannot type "á": accented text arrives as an input method inserts it.
    click(&page, "#send-message").await;
    let insert = InsertTextParams::new("Hola desde la página de administración");
    tokio::time::timeout(CDP_TIMEOUT, page.execute(insert))
        .await
        .expect("inserting text did not time out")
        .expect("inserting the message text");
    click(&page, "#send-submit").await;
    let confirmation = wait_until("the send confirmation", Duration::from_secs(20), || async {
        shown_text(&page, "send-result").await
    })
    .await;
    assert!(confirmation.contains("Mensaje enviado a 5491123456789"), "confirmation: {confirmation}");
    let (_, received) = sim.get("/__sim/messages").await.expect("the simulator's messages");
    let received = received.as_array().expect("a list of messages");
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["to"], "5491123456789");
    assert_eq!(received[0]["text"], "Hola desde la página de administración");
    screenshot(&page, "connected").await;
    phone_screenshot(&page, "connected-phone").await;

    // Disconnect.
    click(&page, "#disconnect").await;
    wait_for_indicator(&page, "disconnected", "Desconectado", Duration::from_secs(20)).await;
    assert!(shown(&page, "send-not-ready").await, "sending is unavailable again");

    // The manager stops: the banner says so; it comes back: the banner goes away by itself.
    assert!(!shown(&page, "banner-unreachable").await);
    stack.stop_manager().await.expect("the manager stops");
    wait_until("the unreachable banner", Duration::from_secs(15), || async {
        shown(&page, "banner-unreachable").await.then_some(())
    })
    .await;
    let banner = text(&page, "document.getElementById('banner-unreachable').textContent").await;
    assert!(banner.contains("SESSION_MANAGER_URL"), "the banner says what to check: {banner}");
    assert!(banner.contains(&stack.manager_url()), "the banner names the manager's URL: {banner}");
    screenshot(&page, "unreachable").await;
    stack.start_manager().await.expect("the manager starts again");
    wait_until("the unreachable banner to clear", Duration::from_secs(20), || async {
        (!shown(&page, "banner-unreachable").await).then_some(())
    })
    .await;
    wait_until("the live stream to be back", Duration::from_secs(30), || async {
        (text(&page, "document.getElementById('live').dataset.live").await == "true").then_some(())
    })
    .await;

    // Clearing the session asks first; cancelling does nothing, confirming clears it.
    click(&page, "#clear-session").await;
    wait_until("the confirmation dialog", Duration::from_secs(5), || async {
        (eval(&page, "document.getElementById('confirm-clear').open").await.ok() == Some(Value::Bool(true)))
            .then_some(())
    })
    .await;
    screenshot(&page, "confirm-clear").await;
    click(&page, "#confirm-clear button[value=cancel]").await;
    // The dialog's close handler gives the focus back to the button, after it would have started
    // the action: nothing is busy and nothing was announced.
    wait_until("the focus back on the clear button", Duration::from_secs(5), || async {
        (text(&page, "document.activeElement.id").await == "clear-session").then_some(())
    })
    .await;
    assert_eq!(
        text(&page, "document.getElementById('clear-session').getAttribute('aria-busy')").await,
        "false"
    );
    assert!(!shown(&page, "notice").await, "cancelling does not clear the session");
    click(&page, "#clear-session").await;
    click(&page, "#confirm-clear button[value=confirm]").await;
    let notice = wait_until("the session-cleared notice", Duration::from_secs(20), || async {
        shown_text(&page, "notice").await
    })
    .await;
    assert!(notice.starts_with("Sesión borrada"), "notice: {notice}");
    wait_for_indicator(&page, "disconnected", "Desconectado", Duration::from_secs(10)).await;
    // The backup still holds a working login: the page says so, and where it is.
    let warning = shown_text(&page, "backup-warning").await.expect("the backup warning is shown");
    assert!(warning.contains("inicio de sesión válido"), "warning: {warning}");
    assert!(warning.contains("backups/admin-"), "the warning names the backup: {warning}");

    // English is one switch away.
    eval(&page, "(() => { const s = document.getElementById('lang'); s.value = 'en'; s.dispatchEvent(new Event('change')); })()")
        .await
        .expect("switching the language");
    wait_for_indicator(&page, "disconnected", "Disconnected", Duration::from_secs(2)).await;
    assert_eq!(text(&page, "document.getElementById('connect').textContent").await, "Connect WhatsApp");
    assert_eq!(text(&page, "document.documentElement.lang").await, "en");
    let warning = shown_text(&page, "backup-warning").await.expect("the backup warning is shown");
    assert!(warning.contains("holds a working login"), "warning: {warning}");

    let violations = eval(&page, "window.__cspViolations").await.expect("the CSP record");
    assert_eq!(violations, Value::Array(vec![]), "the page works under the hub's CSP");
}

/// A full-page screenshot at a phone's viewport (390 x 844), checking nothing overflows sideways.
async fn phone_screenshot(page: &Page, name: &str) {
    let phone = SetDeviceMetricsOverrideParams::new(390, 844, 3.0, true);
    tokio::time::timeout(CDP_TIMEOUT, page.execute(phone))
        .await
        .expect("emulating a phone did not time out")
        .expect("emulating a phone");
    let overflow = wait_until("the phone layout", Duration::from_secs(5), || async {
        let width = eval(page, "window.innerWidth").await.ok()?;
        let scroll = eval(page, "document.documentElement.scrollWidth").await.ok()?;
        (width == 390).then_some(scroll)
    })
    .await;
    assert!(overflow.as_i64().is_some_and(|w| w <= 390), "nothing overflows a phone's width: {overflow}");
    screenshot(page, name).await;
    tokio::time::timeout(CDP_TIMEOUT, page.execute(ClearDeviceMetricsOverrideParams::default()))
        .await
        .expect("restoring the viewport did not time out")
        .context("restoring the viewport")
        .expect("the viewport is restored");
}

/// Linking by phone number from the page: the build line, "Vincular con número de teléfono", the
/// code shown next to the QR, and the green indicator once the phone accepted the code.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_links_the_account_by_phone_number_from_the_page() {
    in_page(StackOptions::default(), pairing_scenario).await;
}

async fn pairing_scenario(stack: &mut Stack, browser: &TestBrowser) {
    let hub = stack.hub.url().to_owned();
    let sim = stack.sim_client().expect("a simulator client");
    let page = open_page(browser, &hub).await;
    log_in_as_admin(&page).await;
    let label = text(&page, "document.getElementById('pairing-submit').textContent").await;
    assert_eq!(label, "Vincular con número de teléfono");

    type_into(&page, "#pairing-phone", "+54 9 11 5555-0000").await;
    click(&page, "#pairing-submit").await;
    let code = wait_until("the pairing code on the page", Duration::from_secs(30), || async {
        shown_text(&page, "pairing-code").await.filter(|code| code.len() == 9)
    })
    .await;
    assert!(shown(&page, "qr-card").await, "the code is shown next to the QR");
    let build = shown_text(&page, "wa-build").await.expect("the build line");
    assert_eq!(build, format!("WhatsApp Web build {}: compatible", wa_sim::WA_VERSION));
    let (_, state) = sim.get("/__sim/state").await.expect("the simulator's state");
    assert_eq!(
        state["pairing_code"].as_str(),
        Some(code.replace('-', "").as_str()),
        "the page shows the phone's code"
    );
    screenshot(&page, "pairing").await;

    let (status, body) =
        sim.post("/__sim/pair", Some(&serde_json::json!({"code": code}))).await.expect("pair");
    assert_eq!(status, 200, "pair: {body}");
    wait_for_indicator(&page, "connected", "Conectado (+5491155550000)", Duration::from_secs(30)).await;
    assert!(!shown(&page, "pairing-box").await, "the code is gone once linked");
}

/// A campaign from the page's "Campañas" section: a CSV with a bad phone shows the line's error
/// and stores nothing; a 4-row CSV (one number not on WhatsApp) is previewed, created, started from
/// the page, and the page shows it completed while the simulator received the 3 rendered texts
/// once each; the failed recipient comes down as CSV; a second campaign is cancelled as a draft.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_runs_a_campaign_from_the_page() {
    let options = StackOptions {
        sim: SimConfig {
            qr_rotate_ms: 3_000,
            load_delay_ms: 100,
            unknown_numbers: vec![UNKNOWN.into()],
            ..SimConfig::default()
        },
        manager_env: vec![("SEND_RATE_PER_MINUTE", "100000".into())],
        hub_env: e2e::campaign_zero_pace_env(),
        ..StackOptions::default()
    };
    in_page(options, campaign_scenario).await;
}

/// The campaign's number that is not on WhatsApp.
const UNKNOWN: &str = "5491100000004";

/// Chooses `path` in the file input `selector`, as the file dialog does.
async fn choose_file(page: &Page, selector: &str, path: &std::path::Path) {
    let input = page.find_element(selector).await.unwrap_or_else(|e| panic!("the page has {selector}: {e}"));
    let params = SetFileInputFilesParams::builder()
        .file(path.display().to_string())
        .backend_node_id(input.backend_node_id)
        .build()
        .expect("the file input parameters");
    tokio::time::timeout(CDP_TIMEOUT, page.execute(params))
        .await
        .expect("choosing the file did not time out")
        .expect("the file is chosen");
}

/// Clears the field `id` and types `input` into it.
async fn replace_text(page: &Page, id: &str, input: &str) {
    eval(page, &format!("document.getElementById('{id}').value = ''")).await.expect("clearing the field");
    type_into(page, &format!("#{id}"), input).await;
}

async fn campaign_scenario(stack: &mut Stack, browser: &TestBrowser) {
    let hub = stack.hub.url().to_owned();
    let sim = stack.sim_client().expect("a simulator client");
    let page = open_page(browser, &hub).await;
    log_in_as_admin(&page).await;
    let token = text(&page, "sessionStorage.getItem('central-hub.token') || ''").await;
    assert!(shown(&page, "campaign-empty").await, "no campaigns yet, and the page says so");

    // Link the session from the page.
    click(&page, "#connect").await;
    wait_for_indicator(&page, "waiting", "Esperando escaneo", Duration::from_secs(30)).await;
    let (status, body) = sim.post("/__sim/scan", None).await.expect("the scan request");
    assert_eq!(status, 200, "scan: {body}");
    wait_for_indicator(&page, "connected", "Conectado", Duration::from_secs(30)).await;

    // The form: name, template (its variables listed), a window open all day.
    let files = tempfile::tempdir().expect("a directory for the CSV files");
    type_into(&page, "#campaign-name", "Promo marzo").await;
    type_into(&page, "#campaign-template", "Hola {{nombre}}, novedades").await;
    let vars = shown_text(&page, "campaign-vars").await.expect("the variables are shown");
    assert!(vars.contains("{{nombre}}"), "the template's variables: {vars}");
    replace_text(&page, "campaign-window-start", "00:00").await;
    replace_text(&page, "campaign-window-end", "24:00").await;
    replace_text(&page, "campaign-time-zone", "UTC").await;

    // A bad phone on line 3: the error names the line, and nothing is created.
    let bad = files.path().join("bad.csv");
    std::fs::write(&bad, "phone;nombre\n5491100000001;Ana\nno-es-un-numero;Beto\n").expect("bad.csv");
    choose_file(&page, "#campaign-csv", &bad).await;
    // The preview moves the button down: click it once the preview is drawn, as a user would.
    wait_until("the bad CSV's preview", Duration::from_secs(5), || async {
        let rows = eval(&page, "document.querySelectorAll('#campaign-csv-preview tr').length").await.ok()?;
        (rows == 3).then_some(())
    })
    .await;
    click(&page, "#campaign-submit").await;
    let errors = wait_until("the line errors", Duration::from_secs(15), || async {
        shown_text(&page, "campaign-errors").await
    })
    .await;
    assert!(errors.contains("Errores en el CSV: 1;"), "the error count is shown: {errors}");
    assert!(errors.contains("Línea 3 (no-es-un-numero)"), "the bad line is named: {errors}");
    assert!(!errors.contains("Línea 2"), "the good line is not: {errors}");
    let (status, list) = e2e::get_with_token(&hub, "/api/campaigns", &token).await.expect("the list");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["campaigns"], serde_json::json!([]), "nothing was created");

    // Four good rows: previewed, created, started from the page, completed.
    let good = files.path().join("good.csv");
    let csv = format!(
        "phone;nombre\n5491100000001;Ana\n5491100000002;Beto\n5491100000003;Carla\n{UNKNOWN};Dario\n"
    );
    std::fs::write(&good, csv).expect("good.csv");
    choose_file(&page, "#campaign-csv", &good).await;
    let preview = wait_until("the CSV preview", Duration::from_secs(5), || async {
        let rows = eval(&page, "document.querySelectorAll('#campaign-csv-preview tr').length").await.ok()?;
        (rows == 5).then_some(shown_text(&page, "campaign-render-text").await)
    })
    .await;
    assert_eq!(preview.as_deref(), Some("Hola Ana, novedades"), "the first row rendered");
    click(&page, "#campaign-submit").await;
    wait_until("the created campaign's detail", Duration::from_secs(15), || async {
        // Listed too (the list above the detail is filled by the next poll).
        let state = shown_text(&page, "campaign-detail-state").await?;
        let listed = eval(&page, "document.querySelectorAll('#campaign-list li').length").await.ok()?;
        (state == "Borrador" && listed == 1 && shown(&page, "campaign-start").await).then_some(())
    })
    .await;
    assert!(!shown(&page, "campaign-errors").await, "the earlier errors are gone");
    click(&page, "#campaign-start").await;
    wait_until("the campaign completed on the page", Duration::from_secs(60), || async {
        let state = shown_text(&page, "campaign-detail-state").await?;
        let line = text(&page, "document.querySelector('#campaign-list .campaign-line')?.textContent").await;
        (state == "Completada" && line.starts_with("4 de 4")).then_some(())
    })
    .await;
    let sent = text(&page, "document.querySelector('#campaign-counts [data-count=sent]').textContent").await;
    assert_eq!(sent, "3", "the detail counts three sent");
    let failed =
        text(&page, "document.querySelector('#campaign-counts [data-count=failed]').textContent").await;
    assert_eq!(failed, "1", "and one failed");
    assert!(!shown(&page, "campaign-start").await && !shown(&page, "campaign-cancel").await);
    let (_, messages) = sim.get("/__sim/messages").await.expect("the simulator's messages");
    let mut texts: Vec<(String, String)> = messages
        .as_array()
        .expect("a list of messages")
        .iter()
        .map(|m| (m["to"].as_str().unwrap_or_default().into(), m["text"].as_str().unwrap_or_default().into()))
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            ("5491100000001", "Hola Ana, novedades"),
            ("5491100000002", "Hola Beto, novedades"),
            ("5491100000003", "Hola Carla, novedades")
        ]
        .map(|(to, text)| (to.to_owned(), text.to_owned())),
        "the simulator received each rendered text once"
    );
    screenshot(&page, "campaign").await;

    // The failed recipients as CSV: the page fetches it with the token and saves it through a Blob
    // URL; the Blob handed to the download is read back.
    eval(
        &page,
        "(() => { window.__downloads = []; const create = URL.createObjectURL; \
         URL.createObjectURL = (blob) => { blob.text().then((t) => window.__downloads.push(t)); return create(blob); }; })()",
    )
    .await
    .expect("observing the Blob URLs");
    click(&page, "#campaign-download").await;
    let downloaded = wait_until("the failed recipients' CSV", Duration::from_secs(10), || async {
        Some(text(&page, "window.__downloads[0] || ''").await).filter(|t| !t.is_empty())
    })
    .await;
    assert!(
        downloaded.contains(UNKNOWN) && downloaded.contains("NUMBER_NOT_ON_WHATSAPP"),
        "the CSV names the failed number and why: {downloaded}"
    );
    assert!(!downloaded.contains("5491100000001"), "only the failed ones: {downloaded}");

    // A draft cancelled from the page: its actions are gone and nothing more is sent.
    type_into(&page, "#campaign-name", "Borrador").await;
    type_into(&page, "#campaign-template", "Hola {{nombre}}, otra vez").await;
    choose_file(&page, "#campaign-csv", &good).await;
    wait_until("the second CSV's preview", Duration::from_secs(5), || async {
        let rows = eval(&page, "document.querySelectorAll('#campaign-csv-preview tr').length").await.ok()?;
        (rows == 5).then_some(())
    })
    .await;
    click(&page, "#campaign-submit").await;
    wait_until("the second campaign's detail", Duration::from_secs(15), || async {
        let name = shown_text(&page, "campaign-detail-name").await?;
        let listed = eval(&page, "document.querySelectorAll('#campaign-list li').length").await.ok()?;
        (name.ends_with("Borrador") && listed == 2 && shown(&page, "campaign-cancel").await).then_some(())
    })
    .await;
    click(&page, "#campaign-cancel").await;
    wait_until("the campaign cancelled on the page", Duration::from_secs(15), || async {
        let state = shown_text(&page, "campaign-detail-state").await?;
        (state == "Cancelada" && !shown(&page, "campaign-cancel").await).then_some(())
    })
    .await;
    let skipped =
        text(&page, "document.querySelector('#campaign-counts [data-count=skipped]').textContent").await;
    assert_eq!(skipped, "4", "a cancelled draft's recipients are skipped");
    let (_, messages) = sim.get("/__sim/messages").await.expect("the simulator's messages");
    assert_eq!(messages.as_array().map(Vec::len), Some(3), "the cancelled campaign sent nothing");
    phone_screenshot(&page, "campaign-phone").await;

    let violations = eval(&page, "window.__cspViolations").await.expect("the CSP record");
    assert_eq!(violations, Value::Array(vec![]), "the page works under the hub's CSP");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_manages_webhooks_from_the_page() {
    let options = StackOptions {
        // Deliveries to a receiver that is down die within a second.
        hub_env: vec![
            ("WEBHOOK_MAX_AGE_SECONDS", "1".into()),
            ("WEBHOOK_RETRY_BASE_MS", "100".into()),
            ("WEBHOOK_RETRY_MAX_MS", "300".into()),
        ],
        ..StackOptions::default()
    };
    in_page(options, webhooks_scenario).await;
}

async fn webhooks_scenario(stack: &mut Stack, browser: &TestBrowser) {
    let hub = stack.hub.url().to_owned();
    let page = open_page(browser, &hub).await;
    log_in_as_admin(&page).await;
    let token = text(&page, "sessionStorage.getItem('central-hub.token') || ''").await;
    assert!(shown(&page, "webhook-empty").await, "no webhooks yet, and the page says so");

    // A receiver that is down: a port just bound and released.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        format!("http://{}/hooks", listener.local_addr().expect("its address"))
    };
    type_into(&page, "#webhook-url", &down).await;
    eval(&page, "document.getElementById('webhook-event-session.status').click()")
        .await
        .expect("the checkbox");
    click(&page, "#webhook-submit").await;
    let secret = wait_until("the secret, shown once", Duration::from_secs(15), || async {
        shown_text(&page, "webhook-secret-value").await.filter(|s| s.starts_with("whsec_"))
    })
    .await;
    wait_until("the webhook in the list", Duration::from_secs(10), || async {
        let listed = text(&page, "document.querySelector('#webhook-list li')?.textContent || ''").await;
        (listed.contains(&down) && listed.contains("session.status")).then_some(())
    })
    .await;
    let (status, list) = e2e::get_with_token(&hub, "/api/webhooks", &token).await.expect("the list");
    assert_eq!(status, 200, "{list}");
    assert!(!list.to_string().contains(&secret), "the secret is never shown again: {list}");
    click(&page, "#webhook-secret-hide").await;
    assert!(!shown(&page, "webhook-secret").await, "the secret is gone from the page once stored");

    // Connecting changes the session's state: session.status events, which the receiver that is
    // down never takes: dead within a second, each with its Replay button.
    click(&page, "#connect").await;
    wait_until("a dead delivery with its Replay button", Duration::from_secs(30), || async {
        let n = eval(
            &page,
            "document.querySelectorAll('#webhook-delivery-rows tr[data-state=dead] button').length",
        )
        .await
        .ok()?;
        (n.as_u64() >= Some(1)).then_some(())
    })
    .await;
    let row =
        text(&page, "document.querySelector('#webhook-delivery-rows tr[data-state=dead]').textContent").await;
    assert!(row.contains("session.status") && row.contains("Abandonada"), "the dead delivery: {row}");
    screenshot(&page, "webhooks").await;
    // The rows are redrawn at each poll: clicked in the page, where finding and clicking are one step.
    eval(&page, "document.querySelector('#webhook-delivery-rows tr[data-state=dead] button').click()")
        .await
        .expect("clicking Replay");
    let notice = wait_until("the replay's notice", Duration::from_secs(10), || async {
        shown_text(&page, "notice").await.filter(|n| n.contains("en cola de nuevo"))
    })
    .await;
    assert!(notice.contains("session.status:"), "the notice names the event: {notice}");

    // Delete (confirmed): the list is empty again.
    // Clicked once the replay's request is over (the buttons are disabled while it runs), with the
    // confirmation answered yes.
    wait_until("the delete button, enabled, clicked", Duration::from_secs(10), || async {
        let js = "(() => { const b = document.querySelector('#webhook-list li .button-danger'); \
                  if (!b || b.disabled) return false; window.confirm = () => true; b.click(); return true; })()";
        (eval(&page, js).await.ok()? == Value::Bool(true)).then_some(())
    })
    .await;
    wait_until("the empty list after the delete", Duration::from_secs(10), || async {
        shown(&page, "webhook-empty").await.then_some(())
    })
    .await;
    let (_, list) = e2e::get_with_token(&hub, "/api/webhooks", &token).await.expect("the list");
    assert_eq!(list["webhooks"], serde_json::json!([]), "{list}");
}
