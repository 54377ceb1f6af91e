//! `MessageText`: the text of a message, not blank and within the gateway's limit.

use serde::Deserialize;

use crate::newtype::string_newtype;

/// The longest message the gateway accepts, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// The text of a message: not blank, at most [`MAX_MESSAGE_CHARS`] characters (not bytes). Kept
/// as written (no trimming): what the caller sent is what the recipient reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String")]
pub struct MessageText(String);

string_newtype!(MessageText, parse(String));

impl MessageText {
    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Err("message is empty".to_owned());
        }
        let chars = raw.chars().count();
        if chars > MAX_MESSAGE_CHARS {
            return Err(format!("message has {chars} characters: at most {MAX_MESSAGE_CHARS} are accepted"));
        }
        Ok(Self(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_must_have_text_and_fit_the_limit() {
        assert!(MessageText::parse("hola".into()).is_ok());
        assert_eq!(MessageText::parse("  \n".into()).unwrap_err(), "message is empty");
        assert_eq!(MessageText::parse(String::new()).unwrap_err(), "message is empty");
        assert!(MessageText::parse("x".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(
            MessageText::parse("x".repeat(MAX_MESSAGE_CHARS + 1)).unwrap_err().contains("4097 characters")
        );
        // The limit counts characters, not bytes.
        assert!(MessageText::parse("ñ".repeat(MAX_MESSAGE_CHARS)).is_ok());
    }

    #[test]
    fn a_message_round_trips_as_written() {
        let text: MessageText = serde_json::from_value(json!(" hola\nqué tal ")).unwrap();
        assert_eq!(text.as_str(), " hola\nqué tal ", "kept as written");
        assert_eq!(serde_json::to_value(&text).unwrap(), json!(" hola\nqué tal "));
        let err = serde_json::from_value::<MessageText>(json!("   ")).unwrap_err().to_string();
        assert!(err.contains("message is empty"), "{err}");
    }
}
