//! Linking with a phone number: the pairing-code part of the state machine. A code is asked for
//! once the page shows its login screen, shown next to the QR, refreshed every `pairing_refresh`,
//! and counted against the attempt limit (the QR rotations are not, in this mode).

use std::time::Duration;

use shared_contracts::SessionState;

use super::{Effect, FIRST_QR_LIFETIME_MS, NEXT_QR_LIFETIME_MS, Qr, Session};

/// How long a pairing code is used before a fresh one is asked for (whatsapp-web.js: 180 s).
pub const PAIRING_CODE_REFRESH: Duration = Duration::from_secs(180);

/// The pairing code shown, in the page's form (8 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pairing {
    pub(super) code: String,
    pub(super) expires_at_ms: i64,
}

impl Session {
    /// How long each pairing code is used before a fresh one is asked for.
    pub fn with_pairing_refresh(mut self, refresh: Duration) -> Self {
        self.pairing_refresh = refresh;
        self
    }

    /// Whether this connect links with a pairing code.
    pub fn pairing_phone(&self) -> Option<&str> {
        self.pairing_phone.as_deref()
    }

    /// A (new) QR while linking by code: shown next to the code, not counted; the first login
    /// screen is when the code is asked for. `qr.expires_at_ms` holds its arrival time.
    pub(super) fn qr_while_pairing(&mut self, phone: String, mut qr: Qr) -> Vec<Effect> {
        let lifetime = if self.qr.is_none() { FIRST_QR_LIFETIME_MS } else { NEXT_QR_LIFETIME_MS };
        qr.expires_at_ms = qr.at_ms + lifetime;
        self.qr = Some(qr);
        self.enter(SessionState::QrRequired, "QR shown while linking with a pairing code");
        if self.pairing.is_none() && !self.pairing_requested {
            self.pairing_requested = true;
            return vec![Effect::RequestPairingCode { phone }];
        }
        vec![]
    }

    /// `POST /connect {"pairing_phone"}` while connecting or showing a QR.
    pub(super) fn pairing_requested(&mut self, phone: String) -> Vec<Effect> {
        self.pairing_phone = Some(phone.clone());
        self.pairing = None;
        self.attempts = 0;
        self.pairing_requested = self.state == SessionState::QrRequired;
        if self.pairing_requested { vec![Effect::RequestPairingCode { phone }] } else { vec![] }
    }

    /// The page gave a code: shown until the next refresh, counted against the attempt limit.
    pub(super) fn pairing_code(&mut self, code: String, at_ms: i64) -> Vec<Effect> {
        self.pairing_requested = false;
        if self.attempts >= self.max_qr_attempts {
            return self.qr_exhausted();
        }
        self.attempts += 1;
        let lifetime = i64::try_from(self.pairing_refresh.as_millis()).unwrap_or(i64::MAX);
        self.pairing = Some(Pairing { code, expires_at_ms: at_ms.saturating_add(lifetime) });
        let reason = format!("pairing code {} of at most {}", self.attempts, self.max_qr_attempts);
        self.enter(SessionState::QrRequired, &reason);
        vec![Effect::CountQr, Effect::SchedulePairingRefresh(self.pairing_refresh)]
    }

    /// The code's time is up while still unpaired: ask for a fresh one.
    pub(super) fn pairing_code_due(&mut self) -> Vec<Effect> {
        match self.pairing_phone.clone() {
            Some(phone) => {
                self.pairing_requested = true;
                vec![Effect::RequestPairingCode { phone }]
            }
            None => vec![],
        }
    }
}
