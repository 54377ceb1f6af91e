//! One test per row of the state table of ARCHITECTURE.md.

use std::sync::Arc;

use shared_contracts::ErrorCode;

use super::*;

/// The time every event of these tests happens at, unless a test says otherwise.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_764_000_000).expect("a valid time")
}

/// `apply` at [`t0`], keeping the effects.
trait EffectsOf {
    fn effects_of(&mut self, event: Event) -> Vec<Effect>;
}

impl EffectsOf for Session {
    fn effects_of(&mut self, event: Event) -> Vec<Effect> {
        self.apply(event, t0()).effects
    }
}

fn session() -> Session {
    Session::new(3, true, t0())
}

fn qr(s: &mut Session, code: &str) -> Vec<Effect> {
    let image = QrImage { png: Arc::from(code.as_bytes()), data_url: format!("data:{code}") };
    s.effects_of(Event::QrReceived { code: code.into(), image, at_ms: 1_000 })
}

fn wa(s: &mut Session, state: &str) -> Vec<Effect> {
    s.effects_of(Event::WaState(state.into()))
}

/// A session in QR_REQUIRED showing its first code.
fn showing_qr() -> Session {
    let mut s = session();
    s.effects_of(Event::Connect);
    qr(&mut s, "2@a");
    s
}

fn ready() -> Session {
    let mut s = showing_qr();
    wa(&mut s, "PAIRING");
    s.effects_of(Event::Ready { phone: "5491100000000".into() });
    assert_eq!(s.state(), SessionState::Ready);
    s
}

fn error_code(s: &Session) -> Option<ErrorCode> {
    s.last_error().map(|e| e.code)
}

#[test]
fn connect_from_init_disconnected_or_error_launches_the_browser() {
    let mut s = session();
    assert_eq!(s.effects_of(Event::Connect), vec![Effect::LaunchBrowser]);
    assert_eq!(s.state(), SessionState::Connecting);

    let mut s = ready();
    s.effects_of(Event::Disconnect { logout: false });
    assert_eq!(s.effects_of(Event::Connect), vec![Effect::LaunchBrowser]);

    let mut s = session();
    s.effects_of(Event::Connect);
    s.effects_of(Event::LaunchFailed(Failure {
        code: ErrorCode::BrowserLaunchFailed,
        message: "m".into(),
        hint: "h".into(),
    }));
    assert_eq!(s.state(), SessionState::Error);
    assert_eq!(s.effects_of(Event::Connect), vec![Effect::LaunchBrowser]);
    assert_eq!(s.state(), SessionState::Connecting);
}

#[test]
fn connect_while_live_changes_nothing() {
    for mut s in [showing_qr(), ready()] {
        let before = s.state();
        assert!(s.effects_of(Event::Connect).is_empty());
        assert_eq!(s.state(), before);
    }
    let mut s = session();
    s.effects_of(Event::Connect);
    assert!(s.effects_of(Event::Connect).is_empty());
}

#[test]
fn the_first_qr_requires_a_scan_with_one_attempt() {
    let s = showing_qr();
    let status = s.status();
    assert_eq!(status.state, SessionState::QrRequired);
    let info = status.qr.expect("qr in QR_REQUIRED");
    assert_eq!(info.url, "2@a");
    assert_eq!(info.base64, "data:2@a");
    assert_eq!(info.attempts, 1);
    assert_eq!(info.expires_at - info.timestamp, 60_000);
    assert_eq!(status.recommended_action, "Scan the QR with WhatsApp > Linked devices");
}

#[test]
fn a_rotated_qr_raises_attempts_and_the_same_code_twice_does_not() {
    let mut s = showing_qr();
    assert!(qr(&mut s, "2@a").is_empty());
    assert_eq!(qr(&mut s, "2@b"), vec![Effect::CountQr]);
    let info = s.status().qr.expect("qr");
    assert_eq!((info.url.as_str(), info.attempts), ("2@b", 2));
    assert_eq!(info.expires_at - info.timestamp, 20_000);
}

#[test]
fn exhausted_attempts_disconnect_and_close_the_browser() {
    let mut s = showing_qr();
    qr(&mut s, "2@b");
    qr(&mut s, "2@c");
    assert_eq!(qr(&mut s, "2@d"), vec![Effect::CloseBrowser]);
    assert_eq!(s.state(), SessionState::Disconnected);
    assert_eq!(error_code(&s), Some(ErrorCode::QrAttemptsExhausted));
    assert!(s.status().qr.is_none());
}

#[test]
fn idle_codes_are_refreshed_only_while_attempts_remain() {
    let mut s = showing_qr();
    assert_eq!(wa(&mut s, "UNPAIRED_IDLE"), vec![Effect::RefreshQr]);
    qr(&mut s, "2@b");
    qr(&mut s, "2@c");
    assert_eq!(wa(&mut s, "UNPAIRED_IDLE"), vec![Effect::CloseBrowser]);
    assert_eq!(s.state(), SessionState::Disconnected);
    assert_eq!(error_code(&s), Some(ErrorCode::QrAttemptsExhausted));
}

#[test]
fn a_scan_authenticates_and_ready_carries_the_phone() {
    let mut s = showing_qr();
    wa(&mut s, "PAIRING");
    assert_eq!(s.state(), SessionState::Authenticated);
    assert!(s.status().qr.is_none());
    let effects = s.effects_of(Event::Ready { phone: "5491100000000".into() });
    assert_eq!(effects, vec![Effect::RememberLogin { phone: "+5491100000000".into() }]);
    let status = s.status();
    assert!(status.connected && status.can_send_messages);
    assert_eq!(status.phone_number.as_deref(), Some("+5491100000000"));
}

#[test]
fn a_saved_session_goes_from_connecting_to_ready_without_a_qr() {
    let mut s = session();
    s.effects_of(Event::Connect);
    wa(&mut s, "CONNECTED");
    assert_eq!(s.state(), SessionState::Authenticated);
    s.effects_of(Event::Ready { phone: "549".into() });
    assert_eq!(s.state(), SessionState::Ready);
}

#[test]
fn disconnect_keeps_the_profile_and_disconnect_with_logout_unlinks_and_wipes() {
    let mut s = ready();
    assert_eq!(s.effects_of(Event::Disconnect { logout: false }), vec![Effect::CloseBrowser]);
    assert_eq!(s.state(), SessionState::Disconnected);
    assert!(s.status().phone_number.is_none());

    let mut s = ready();
    assert_eq!(
        s.effects_of(Event::Disconnect { logout: true }),
        vec![Effect::UnlinkDevice, Effect::CloseBrowser, Effect::WipeProfile]
    );
    let mut idle = session();
    assert!(idle.effects_of(Event::Disconnect { logout: false }).is_empty());
    assert_eq!(idle.state(), SessionState::Init);
}

#[test]
fn logout_from_the_phone_disconnects_and_wipes_the_profile() {
    let mut s = ready();
    assert_eq!(s.effects_of(Event::LoggedOut), vec![Effect::CloseBrowser, Effect::WipeProfile]);
    assert_eq!(s.state(), SessionState::Disconnected);
    assert_eq!(error_code(&s), Some(ErrorCode::LoggedOut));
    assert!(s.status().recommended_action.contains("new QR"));
}

#[test]
fn conflict_is_taken_over_when_configured_else_an_error() {
    let mut s = ready();
    assert_eq!(wa(&mut s, "CONFLICT"), vec![Effect::Takeover]);
    assert_eq!(s.state(), SessionState::Ready);

    let mut s = Session::new(3, false, t0());
    s.effects_of(Event::Connect);
    wa(&mut s, "CONNECTED");
    s.effects_of(Event::Ready { phone: "549".into() });
    assert_eq!(wa(&mut s, "CONFLICT"), vec![Effect::CloseBrowser]);
    assert_eq!(s.state(), SessionState::Error);
    assert_eq!(error_code(&s), Some(ErrorCode::Conflict));
}

#[test]
fn a_crash_reconnects_with_exponential_back_off() {
    let mut s = ready();
    let effects = s.effects_of(Event::Crashed { reason: "browser exited".into() });
    assert_eq!(effects, vec![Effect::CloseBrowser, Effect::ScheduleReconnect(Duration::from_millis(500))]);
    assert_eq!(s.state(), SessionState::Connecting);
    assert_eq!(error_code(&s), Some(ErrorCode::BrowserCrashed));
    // A second report of the same crash (handler end after process exit) is ignored.
    assert!(s.effects_of(Event::Crashed { reason: "cdp closed".into() }).is_empty());
    assert_eq!(s.effects_of(Event::ReconnectDue), vec![Effect::LaunchBrowser]);
    assert!(s.effects_of(Event::ReconnectDue).is_empty());
    let effects = s.effects_of(Event::Crashed { reason: "again".into() });
    assert_eq!(effects[1], Effect::ScheduleReconnect(Duration::from_secs(1)));
    s.effects_of(Event::ReconnectDue);
    // Back to READY from the profile, no QR; the crash counter resets.
    wa(&mut s, "CONNECTED");
    s.effects_of(Event::Ready { phone: "549".into() });
    assert_eq!(s.state(), SessionState::Ready);
    assert_eq!(error_code(&s), None, "READY clears the crash's last_error");
    assert!(s.status().last_error.is_none());
    let effects = s.effects_of(Event::Crashed { reason: "third".into() });
    assert_eq!(effects[1], Effect::ScheduleReconnect(Duration::from_millis(500)));
}

#[test]
fn too_many_crashes_in_a_row_end_in_error() {
    let mut s = ready();
    for _ in 0..MAX_CRASH_RESTARTS {
        s.effects_of(Event::Crashed { reason: "x".into() });
        s.effects_of(Event::ReconnectDue);
    }
    assert_eq!(s.effects_of(Event::Crashed { reason: "x".into() }), vec![Effect::CloseBrowser]);
    assert_eq!(s.state(), SessionState::Error);
    assert_eq!(error_code(&s), Some(ErrorCode::BrowserCrashed));
}

#[test]
fn back_off_doubles_and_is_capped() {
    assert_eq!(backoff(1), Duration::from_millis(500));
    assert_eq!(backoff(3), Duration::from_secs(2));
    assert_eq!(backoff(40), Duration::from_secs(30));
}

#[test]
fn disconnect_during_the_back_off_cancels_the_reconnect() {
    let mut s = ready();
    s.effects_of(Event::Crashed { reason: "x".into() });
    s.effects_of(Event::Disconnect { logout: false });
    assert_eq!(s.state(), SessionState::Disconnected);
    assert!(s.effects_of(Event::ReconnectDue).is_empty());
}

#[test]
fn clear_session_returns_to_init_from_any_state_and_backs_up_the_profile() {
    for mut s in [session(), showing_qr(), ready()] {
        assert_eq!(s.effects_of(Event::ClearSession), vec![Effect::CloseBrowser, Effect::BackupProfile]);
        assert_eq!(s.state(), SessionState::Init);
        assert!(s.last_error().is_none());
    }
}

#[test]
fn launch_failures_end_in_error_with_their_specific_code() {
    let mut s = session();
    s.effects_of(Event::Connect);
    let failure = Failure {
        code: ErrorCode::BrowserLaunchFailed,
        message: "Chromium not found at /nope".into(),
        hint: "install chromium or set CHROMIUM_PATH".into(),
    };
    assert_eq!(s.effects_of(Event::LaunchFailed(failure)), vec![Effect::CloseBrowser]);
    let status = s.status();
    assert_eq!(status.state, SessionState::Error);
    let err = status.last_error.expect("last_error");
    assert_eq!(err.code, ErrorCode::BrowserLaunchFailed);
    assert!(err.message.contains("/nope"));
    assert!(status.recommended_action.contains("CHROMIUM_PATH"));
}

#[test]
fn blocked_accounts_end_in_error() {
    let mut s = showing_qr();
    assert_eq!(wa(&mut s, "TOS_BLOCK"), vec![Effect::CloseBrowser]);
    assert_eq!(s.state(), SessionState::Error);
    assert_eq!(error_code(&s), Some(ErrorCode::ConnectionError));
}

#[test]
fn events_that_do_not_apply_to_the_state_are_ignored() {
    let mut s = session();
    assert!(qr(&mut s, "2@a").is_empty());
    assert!(s.effects_of(Event::LoggedOut).is_empty());
    assert!(s.effects_of(Event::Crashed { reason: "x".into() }).is_empty());
    assert!(s.effects_of(Event::Ready { phone: "1".into() }).is_empty());
    assert_eq!(s.state(), SessionState::Init);
    let mut r = ready();
    assert!(qr(&mut r, "2@z").is_empty());
    assert_eq!(r.state(), SessionState::Ready);
}

#[test]
fn a_transition_names_the_change_and_its_time_is_the_events() {
    let mut s = session();
    let t1 = t0() + time::Duration::seconds(90);
    let transition = s.apply(Event::Connect, t1);
    let change =
        Change { from: SessionState::Init, to: SessionState::Connecting, reason: "connect requested".into() };
    assert_eq!(transition, Transition { change: Some(change), effects: vec![Effect::LaunchBrowser] });
    assert_eq!(s.status().since, format_rfc3339(t1));

    let t2 = t1 + time::Duration::seconds(30);
    assert_eq!(s.apply(Event::Connect, t2), Transition::default(), "ignored: no change, no effect");
    assert_eq!(s.status().since, format_rfc3339(t1));
    let failure = Failure { code: ErrorCode::PageLoadFailed, message: "m".into(), hint: "h".into() };
    let transition = s.apply(Event::LaunchFailed(failure), t2);
    assert_eq!(transition.change.map(|c| c.to), Some(SessionState::Error));
    assert_eq!(s.status().since, format_rfc3339(t2));
    assert_eq!(s.last_error().map(|e| e.at.clone()), Some(format_rfc3339(t2)));
}

#[test]
fn the_snapshot_carries_the_png_of_the_qr_shown_and_nothing_else() {
    let s = showing_qr();
    let snapshot = s.snapshot();
    assert_eq!(snapshot.qr_png.as_deref(), Some(&b"2@a"[..]));
    assert_eq!(snapshot.status, s.status());
    assert_eq!(ready().snapshot().qr_png, None);
}

#[test]
fn a_pairing_request_while_a_qr_shows_asks_for_a_code_and_the_code_is_in_the_status() {
    let mut s = showing_qr();
    let effects = s.effects_of(Event::PairingRequested { phone: "5491122223333".into() });
    assert_eq!(effects, vec![Effect::RequestPairingCode { phone: "5491122223333".into() }]);
    let effects = s.effects_of(Event::PairingCode { code: "ABCDEFGH".into(), at_ms: 1_000 });
    assert_eq!(effects, vec![Effect::CountQr, Effect::SchedulePairingRefresh(PAIRING_CODE_REFRESH)]);
    let status = s.status();
    assert_eq!(status.state, SessionState::QrRequired);
    let code = status.pairing_code.expect("pairing code in the status");
    assert_eq!((code.code.as_str(), code.phone.as_str(), code.attempts), ("ABCD-EFGH", "5491122223333", 1));
    assert_eq!(code.expires_at, 1_000 + 180_000);
    assert!(status.qr.is_some(), "the QR stays next to the code");
    assert!(status.recommended_action.contains("pairing code"));
}

#[test]
fn a_pairing_request_while_connecting_waits_for_the_login_screen() {
    let mut s = session();
    s.effects_of(Event::Connect);
    assert_eq!(s.effects_of(Event::PairingRequested { phone: "54911".into() }), vec![]);
    assert_eq!(qr(&mut s, "2@a"), vec![Effect::RequestPairingCode { phone: "54911".into() }]);
    // The QR rotates while the code is on its way: no second request, and QRs are not counted.
    assert_eq!(qr(&mut s, "2@b"), vec![]);
    s.effects_of(Event::PairingCode { code: "ABCDEFGH".into(), at_ms: 1_000 });
    assert_eq!(s.status().pairing_code.expect("code").attempts, 1);
}

#[test]
fn pairing_codes_are_refreshed_until_the_attempt_limit_then_the_session_stops() {
    let mut s = showing_qr();
    s.effects_of(Event::PairingRequested { phone: "54911".into() });
    for n in 1..=3 {
        s.effects_of(Event::PairingCode { code: format!("CODE000{n}"), at_ms: 1_000 });
        assert_eq!(s.status().pairing_code.expect("code").attempts, n);
        assert_eq!(
            s.effects_of(Event::PairingCodeDue),
            vec![Effect::RequestPairingCode { phone: "54911".into() }]
        );
    }
    assert_eq!(
        s.effects_of(Event::PairingCode { code: "CODE0004".into(), at_ms: 1_000 }),
        vec![Effect::CloseBrowser]
    );
    assert_eq!(s.state(), SessionState::Disconnected);
    assert_eq!(error_code(&s), Some(ErrorCode::QrAttemptsExhausted));
    assert!(s.status().pairing_code.is_none());
}

#[test]
fn the_pairing_code_goes_away_once_the_phone_links() {
    let mut s = showing_qr();
    s.effects_of(Event::PairingRequested { phone: "54911".into() });
    s.effects_of(Event::PairingCode { code: "ABCDEFGH".into(), at_ms: 1_000 });
    wa(&mut s, "PAIRING");
    assert_eq!(s.state(), SessionState::Authenticated);
    assert!(s.status().pairing_code.is_none());
    s.effects_of(Event::Ready { phone: "54911".into() });
    assert_eq!(s.effects_of(Event::PairingCodeDue), vec![]);
    assert!(s.pairing_phone().is_none());
}

#[test]
fn after_a_crash_the_relaunched_page_is_asked_for_a_pairing_code_again() {
    let mut s = showing_qr();
    s.effects_of(Event::PairingRequested { phone: "54911".into() });
    s.effects_of(Event::Crashed { reason: "gone".into() });
    assert_eq!(s.state(), SessionState::Connecting);
    s.effects_of(Event::ReconnectDue);
    assert_eq!(qr(&mut s, "2@new"), vec![Effect::RequestPairingCode { phone: "54911".into() }]);
}
