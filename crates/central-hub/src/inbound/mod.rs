//! The inbound path, hub side: what WhatsApp sends back (incoming messages, acks of our messages),
//! as the session-manager journals it and serves it on its `GET /events` (`event: inbound`,
//! `id: <seq>`).
//!
//! The status feed (`crate::feed`) keeps the hub's one connection to that stream and hands each
//! inbound event to the [`follower`], which applies it in one transaction ([`apply`]): the message
//! or ack stored (deduplicated by WhatsApp id and by sequence), attribution, campaign recipients'
//! `delivered_at`/`read_at`/`replied_at`, opt-out keywords, the `hub_event` for the webhooks and
//! the stream position, all or nothing. Outgoing messages are recorded by the senders
//! ([`outgoing`]). `GET /api/messages` lists them ([`routes`]). See docs/contracts.md ("Messages").

pub mod apply;
pub mod follower;
pub mod metrics;
pub mod outgoing;
pub mod routes;

use shared_contracts::AckLevel;

pub use follower::InboundSink;
pub use outgoing::OutgoingMessage;

/// The opt-out keywords when `OPT_OUT_KEYWORDS` is not set.
pub const DEFAULT_OPT_OUT_KEYWORDS: &str = "BAJA,STOP,CANCELAR";

/// The longest keyword accepted (a keyword is a whole message, not a phrase inside one).
pub const MAX_KEYWORD_CHARS: usize = 64;

/// The texts that opt a number out: an incoming text equal to one of them once trimmed and
/// lower-cased (Unicode) puts its sender on the opt-out list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptOutKeywords(Vec<String>);

impl OptOutKeywords {
    /// Parses `OPT_OUT_KEYWORDS` (comma separated); every refusal names the variable and the entry.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut keywords: Vec<String> = Vec::new();
        for (i, entry) in raw.split(',').enumerate() {
            let keyword = fold(entry);
            if keyword.is_empty() {
                return Err(format!(
                    "OPT_OUT_KEYWORDS {raw:?}: entry {} is empty; give comma-separated words like \
                     {DEFAULT_OPT_OUT_KEYWORDS}",
                    i + 1
                ));
            }
            if keyword.chars().count() > MAX_KEYWORD_CHARS {
                return Err(format!(
                    "OPT_OUT_KEYWORDS: entry {} is longer than {MAX_KEYWORD_CHARS} characters",
                    i + 1
                ));
            }
            if !keywords.contains(&keyword) {
                keywords.push(keyword);
            }
        }
        Ok(Self(keywords))
    }

    /// The keyword `text` is, if it is one.
    pub fn matches(&self, text: &str) -> Option<&str> {
        let folded = fold(text);
        self.0.iter().find(|k| **k == folded).map(String::as_str)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl Default for OptOutKeywords {
    fn default() -> Self {
        Self::parse(DEFAULT_OPT_OUT_KEYWORDS).unwrap_or_else(|_| Self(Vec::new()))
    }
}

/// Trimmed and lower-cased (Unicode).
fn fold(text: &str) -> String {
    text.trim().to_lowercase()
}

/// WhatsApp's number of an ack level (-1 error .. 4 played): the order acks are raised in.
pub fn ack_rank(level: AckLevel) -> i64 {
    match level {
        AckLevel::Error => -1,
        AckLevel::Pending => 0,
        AckLevel::Sent => 1,
        AckLevel::Delivered => 2,
        AckLevel::Read => 3,
        AckLevel::Played => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_match_trimmed_and_case_folded_whole_texts() {
        let keywords = OptOutKeywords::default();
        assert_eq!(keywords.matches("  Baja "), Some("baja"));
        assert_eq!(keywords.matches("STOP\n"), Some("stop"));
        assert_eq!(keywords.matches("baja por favor"), None);
        let custom = OptOutKeywords::parse("Désabonner, ÁLTO").unwrap();
        assert_eq!(custom.matches("désabonner"), Some("désabonner"));
        assert_eq!(custom.matches(" álto"), Some("álto"));
        let err = OptOutKeywords::parse("BAJA,,STOP").unwrap_err();
        assert!(err.contains("entry 2 is empty"), "{err}");
        assert!(OptOutKeywords::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn ranks_follow_whatsapp_numbers() {
        for n in -1..=4 {
            assert_eq!(ack_rank(AckLevel::from_wa(n).unwrap()), n);
        }
    }
}
