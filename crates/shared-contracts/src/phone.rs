//! Newtypes validated at the border: once parsed, trusted everywhere.

use std::fmt;

/// The longest message the gateway accepts, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// A recipient number in international format, digits only (`5491123456789`).
///
/// Accepts what CRMs send: an optional leading `+`, and spaces, dashes, dots or parentheses
/// between digits. Rejects letters, too few or too many digits (E.164 allows 15), and a leading 0
/// (a national number without its country code).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        // Separators go between digits: `-5491123456789` is a negative number, not a phone number.
        if let Some(first) = body.chars().next().filter(|c| matches!(c, '-' | '.' | ')')) {
            return Err(format!(
                "phone number {raw:?} starts with {first:?}: it must start with a digit (or `+` and a digit)"
            ));
        }
        let mut digits = String::with_capacity(body.len());
        for c in body.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(format!(
                        "phone number {raw:?} contains {c:?}: use digits with the country code"
                    ));
                }
            }
        }
        if digits.len() < 8 || digits.len() > 15 {
            return Err(format!(
                "phone number {raw:?} has {} digits: expected 8 to 15 with the country code (e.g. 5491123456789)",
                digits.len()
            ));
        }
        if digits.starts_with('0') {
            return Err(format!(
                "phone number {raw:?} starts with 0: give it in international format with the country code"
            ));
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The text of a message: not blank, at most [`MAX_MESSAGE_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageText(String);

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

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A CRM client's id as it appears in `/api/whatsapp/:clienteId/...`: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClienteId(u64);

impl ClienteId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.parse::<u64>() {
            Ok(id) if id > 0 => Ok(Self(id)),
            _ => Err(format!("clienteId {raw:?} is not a positive integer")),
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ClienteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_as_crms_write_them_are_normalized_to_digits() {
        for raw in ["5491123456789", "+54 9 11 2345-6789", "+54 (9) 11.2345.6789", " 5491123456789 "] {
            assert_eq!(PhoneNumber::parse(raw).unwrap().as_str(), "5491123456789", "{raw}");
        }
    }

    #[test]
    fn bad_phone_numbers_are_rejected_with_the_reason() {
        assert!(PhoneNumber::parse("abc").unwrap_err().contains("contains"));
        assert!(PhoneNumber::parse("1234").unwrap_err().contains("4 digits"));
        assert!(PhoneNumber::parse("1234567890123456").unwrap_err().contains("16 digits"));
        assert!(PhoneNumber::parse("01123456789").unwrap_err().contains("starts with 0"));
        assert!(PhoneNumber::parse("").is_err());
        assert!(PhoneNumber::parse("+").is_err());
    }

    #[test]
    fn a_leading_minus_or_separator_is_not_a_phone_number() {
        for bad in
            ["-5491123456789", "+-5491123456789", " -5491123456789", ".5491123456789", ")5491123456789"]
        {
            let err = PhoneNumber::parse(bad).unwrap_err();
            assert!(err.contains("must start with a digit"), "{bad}: {err}");
        }
        assert_eq!(PhoneNumber::parse("(54) 9 11 2345-6789").unwrap().as_str(), "5491123456789");
    }

    #[test]
    fn messages_must_have_text_and_fit_the_limit() {
        assert!(MessageText::parse("hola".into()).is_ok());
        assert!(MessageText::parse("  \n".into()).is_err());
        assert!(MessageText::parse("x".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(MessageText::parse("x".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
        // The limit counts characters, not bytes.
        assert!(MessageText::parse("ñ".repeat(MAX_MESSAGE_CHARS)).is_ok());
    }

    #[test]
    fn cliente_ids_are_positive_integers() {
        assert_eq!(ClienteId::parse("51").unwrap().get(), 51);
        for bad in ["0", "-1", "abc", "1.5", ""] {
            assert!(ClienteId::parse(bad).is_err(), "{bad}");
        }
    }
}
