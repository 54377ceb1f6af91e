//! `PhoneNumber`: a recipient in international format, normalized to digits at the border.

use serde::Deserialize;

use crate::newtype::string_newtype;

/// A recipient number in international format, digits only (`5491123456789`).
///
/// Accepts what CRMs send: an optional leading `+`, and spaces, dashes, dots or parentheses
/// between digits. Rejects letters, too few or too many digits (E.164 allows 15), and a leading 0
/// (a national number without its country code). Deserializes from such a string (a JSON body
/// with a bad number is refused by the extractor, naming the field); serializes to the digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String")]
pub struct PhoneNumber(String);

string_newtype!(PhoneNumber, parse(&str));

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn a_phone_number_deserializes_normalized_and_serializes_as_its_digits() {
        let phone: PhoneNumber = serde_json::from_value(json!("+54 9 11 2345-6789")).unwrap();
        assert_eq!(phone.as_str(), "5491123456789");
        assert_eq!(serde_json::to_value(&phone).unwrap(), json!("5491123456789"));
        let again: PhoneNumber = serde_json::from_value(serde_json::to_value(&phone).unwrap()).unwrap();
        assert_eq!(again, phone);
        let err = serde_json::from_value::<PhoneNumber>(json!("abc")).unwrap_err().to_string();
        assert!(err.contains("contains 'a'"), "{err}");
        assert!(
            serde_json::from_value::<PhoneNumber>(json!(5491123456789_u64)).is_err(),
            "a number is not a string"
        );
    }
}
