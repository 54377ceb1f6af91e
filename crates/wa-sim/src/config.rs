//! The simulator's knobs: fixed at start, except the ones `PUT /__sim/config` may change.

use serde::{Deserialize, Serialize};

/// The WhatsApp Web build string the page reports in `Debug.VERSION`.
pub const WA_VERSION: &str = "2.3000.1017054665-sim";

/// How the simulator behaves. `Default` gives WhatsApp's own clock (a 60 s first code, then 20 s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Port to bind on 127.0.0.1 (`spawn`); 0 picks a free one.
    pub port: u16,
    /// Lifetime of each QR ref after the first; the first lives three times as long.
    pub qr_rotate_ms: u64,
    /// Delay between the page's script starting and `window.require` / `Debug` being defined.
    pub load_delay_ms: u64,
    /// Refs per batch before `Socket.state` becomes `UNPAIRED_IDLE`.
    pub max_refs: u32,
    /// Delay between the server recording a sent message and the page's send result resolving.
    pub send_latency_ms: u64,
    /// Digits of numbers that `queryWidExists` reports as not on WhatsApp.
    pub unknown_numbers: Vec<String>,
    /// Draw `https://wa.me/settings/linked_devices#` in front of the QR string, as WhatsApp does since 2026.
    pub qr_prefix: bool,
    /// The phone number that scans the QR when `POST /__sim/scan` names none.
    pub phone: String,
    /// Serve the real page to `HeadlessChrome` user agents instead of the refusal page.
    pub allow_headless_ua: bool,
    /// Modules (`WAWebAdvSignatureApi`) or single members (`WAWebUserPrefsMeUser.getMaybeMeLidUser`)
    /// the page leaves out, as a WhatsApp build that moved or dropped them would.
    pub without_modules: Vec<String>,
    /// Digits of numbers whose chat WhatsApp addresses by LID (`queryWidExists` answers a `@lid` wid).
    pub lid_numbers: Vec<String>,
    /// Set `data-ref` on the QR's container (WhatsApp does); off, a bridge must build the string itself.
    pub qr_data_ref: bool,
    /// Delay after a send before its ack becomes `delivered` (2); `None`: only `POST /__sim/ack`.
    pub ack_delivered_ms: Option<u64>,
    /// Delay after a send before its ack becomes `read` (3); `None`: only `POST /__sim/ack`.
    pub ack_read_ms: Option<u64>,
    /// Incoming messages (from other numbers) loaded at login as history (`isNewMsg: false`).
    pub history_messages: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            port: 3100,
            qr_rotate_ms: 20_000,
            load_delay_ms: 300,
            max_refs: 6,
            send_latency_ms: 0,
            unknown_numbers: Vec::new(),
            qr_prefix: false,
            phone: "5491100000000".to_owned(),
            allow_headless_ua: false,
            without_modules: Vec::new(),
            lid_numbers: Vec::new(),
            qr_data_ref: true,
            ack_delivered_ms: Some(300),
            ack_read_ms: Some(800),
            history_messages: 3,
        }
    }
}

/// What the page's script needs from the config (injected into the HTML as JSON).
#[derive(Debug, Serialize)]
pub(crate) struct PageConfig {
    pub qr_rotate_ms: u64,
    pub load_delay_ms: u64,
    pub max_refs: u32,
    pub qr_prefix: bool,
    pub version: &'static str,
    pub without_modules: Vec<String>,
    pub qr_data_ref: bool,
}

impl PageConfig {
    pub(crate) fn from_config(config: &SimConfig, without_modules: Vec<String>) -> Self {
        PageConfig {
            qr_rotate_ms: config.qr_rotate_ms,
            load_delay_ms: config.load_delay_ms,
            max_refs: config.max_refs,
            qr_prefix: config.qr_prefix,
            version: WA_VERSION,
            without_modules,
            qr_data_ref: config.qr_data_ref,
        }
    }
}

/// The knobs `PUT /__sim/config` may change while pages are open; absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    pub unknown_numbers: Option<Vec<String>>,
    pub send_latency_ms: Option<u64>,
    pub lid_numbers: Option<Vec<String>>,
    /// For pages loaded from now on.
    pub without_modules: Option<Vec<String>>,
    /// For messages sent from now on; `null` turns the automatic `delivered` off.
    #[serde(default, deserialize_with = "present")]
    pub ack_delivered_ms: Option<Option<u64>>,
    /// For messages sent from now on; `null` turns the automatic `read` off.
    #[serde(default, deserialize_with = "present")]
    pub ack_read_ms: Option<Option<u64>>,
}

/// A field that is present (even as `null`) is `Some`: `null` means "off", absent "unchanged".
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(deserializer).map(Some)
}

/// The delays of the automatic acks after a send: `(delivered, read)`, each off when `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AckDelays {
    pub delivered_ms: Option<u64>,
    pub read_ms: Option<u64>,
}
