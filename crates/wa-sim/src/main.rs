//! `wa-sim`: serves the WhatsApp Web simulator until SIGINT/SIGTERM.

use std::net::IpAddr;

use clap::Parser;
use wa_sim::SimConfig;

/// A simulator of WhatsApp Web's internal page surface, for tests and demos.
#[derive(Debug, Parser)]
#[command(name = "wa-sim", version)]
struct Cli {
    /// Port to listen on (0 picks a free one). Keep it fixed: the browser keeps the login per origin.
    #[arg(long, env = "WA_SIM_PORT", default_value_t = 3100)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "WA_SIM_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Lifetime of each QR ref after the first (the first lives three times as long).
    #[arg(long, default_value_t = 20_000)]
    qr_rotate_ms: u64,
    /// Delay before the page defines `window.require` and `Debug.VERSION`.
    #[arg(long, default_value_t = 300)]
    load_delay_ms: u64,
    /// QR refs per batch before the page goes UNPAIRED_IDLE.
    #[arg(long, default_value_t = 6)]
    max_refs: u32,
    /// Delay before a sent message's result resolves in the page.
    #[arg(long, default_value_t = 0)]
    send_latency_ms: u64,
    /// Numbers (digits, comma-separated) that are not on WhatsApp.
    #[arg(long, value_delimiter = ',')]
    unknown_numbers: Vec<String>,
    /// Prefix the QR string with `https://wa.me/settings/linked_devices#`.
    #[arg(long)]
    qr_prefix: bool,
    /// The phone number that scans the QR.
    #[arg(long, default_value = "5491100000000")]
    phone: String,
    /// Serve the real page to HeadlessChrome user agents too.
    #[arg(long)]
    allow_headless_ua: bool,
    /// Leave a module (`WAWebAdvSignatureApi`) or one member (`WAWebUserPrefsMeUser.getMaybeMeLidUser`)
    /// out of the page, as a WhatsApp build that moved it would (repeatable).
    #[arg(long = "without-module", value_name = "NAME")]
    without_modules: Vec<String>,
    /// Numbers (digits, comma-separated) whose chats are LID-addressed.
    #[arg(long, value_delimiter = ',')]
    lid_numbers: Vec<String>,
    /// Do not put the QR string in the container's `data-ref` attribute.
    #[arg(long)]
    no_qr_data_ref: bool,
    /// Milliseconds after a send before its ack becomes `delivered`, or `off` (only `POST /__sim/ack`).
    #[arg(long, env = "WA_SIM_ACK_DELIVERED_MS", default_value = "300", value_parser = delay_or_off)]
    ack_delivered_ms: Delay,
    /// Milliseconds after a send before its ack becomes `read`, or `off` (only `POST /__sim/ack`).
    #[arg(long, env = "WA_SIM_ACK_READ_MS", default_value = "800", value_parser = delay_or_off)]
    ack_read_ms: Delay,
    /// Incoming messages loaded as history (not new) at every login.
    #[arg(long, default_value_t = 3)]
    history_messages: u32,
}

/// A delay in milliseconds, or `None` for `off`.
#[derive(Debug, Clone, Copy)]
struct Delay(Option<u64>);

fn delay_or_off(text: &str) -> Result<Delay, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(Delay(None));
    }
    text.parse()
        .map(|ms| Delay(Some(ms)))
        .map_err(|_| format!("expected milliseconds or `off`, got {text:?}"))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    service_kit::telemetry::init("info");
    let cli = Cli::parse();
    let config = SimConfig {
        port: cli.port,
        qr_rotate_ms: cli.qr_rotate_ms,
        load_delay_ms: cli.load_delay_ms,
        max_refs: cli.max_refs,
        send_latency_ms: cli.send_latency_ms,
        unknown_numbers: cli.unknown_numbers.into_iter().filter(|n| !n.is_empty()).collect(),
        qr_prefix: cli.qr_prefix,
        phone: cli.phone,
        allow_headless_ua: cli.allow_headless_ua,
        without_modules: cli.without_modules,
        lid_numbers: cli.lid_numbers.into_iter().filter(|n| !n.is_empty()).collect(),
        qr_data_ref: !cli.no_qr_data_ref,
        ack_delivered_ms: cli.ack_delivered_ms.0,
        ack_read_ms: cli.ack_read_ms.0,
        history_messages: cli.history_messages,
    };
    wa_sim::run(config, cli.host).await
}
