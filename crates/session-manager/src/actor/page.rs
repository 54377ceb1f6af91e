//! What the actor does with a page event that is not an inbound one: the inventory (an incompatible
//! build fails the connect), the load deadline met, a QR rendered, an event for the state machine.

use super::Actor;
use crate::bridge::protocol::{self, PageEvent};
use crate::qr;
use crate::session::Event;
use crate::telemetry::now_ms;

impl Actor {
    pub(super) fn page_event(&mut self, event: PageEvent) -> Option<Event> {
        match event {
            PageEvent::Inventory(inventory) => {
                self.load_deadline = None;
                let failure = protocol::incompatible(&inventory);
                match &failure {
                    Some(failure) => tracing::error!(summary = %inventory.summary, "{}", failure.message),
                    None if !inventory.features_disabled.is_empty() => tracing::warn!(
                        summary = %inventory.summary,
                        disabled = ?inventory.features_disabled,
                        "WhatsApp Web build without some optional internals: these features are off"
                    ),
                    None => tracing::info!(summary = %inventory.summary, "WhatsApp Web internals found"),
                }
                self.inventory = Some(inventory);
                failure.map(Event::LaunchFailed)
            }
            PageEvent::Loaded { version } => {
                self.load_deadline = None;
                tracing::info!(version, since_launch_ms = self.since_launch_ms(), "WhatsApp Web loaded");
                None
            }
            PageEvent::Qr { code } => match qr::render(&code) {
                Ok(image) => {
                    tracing::debug!(since_launch_ms = self.since_launch_ms(), "QR received");
                    Some(Event::QrReceived { code, image, at_ms: now_ms() })
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not render the QR");
                    None
                }
            },
            PageEvent::Session(event) => Some(event),
            // Handled in `signal` before the generation check.
            PageEvent::Inbound(_) | PageEvent::Nothing => None,
        }
    }
}
