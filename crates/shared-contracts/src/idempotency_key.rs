//! `IdempotencyKey`: the `Idempotency-Key` header a sender sets so a retried send is never
//! delivered twice. One set of limits, checked by the hub and the manager alike.

use serde::Deserialize;

use crate::newtype::string_newtype;

/// The longest `Idempotency-Key` accepted, in bytes (all of them ASCII).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// An `Idempotency-Key`: surrounding blanks trimmed, then 1 to [`MAX_IDEMPOTENCY_KEY_LEN`]
/// printable ASCII characters (letters, digits, punctuation and inner spaces).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct IdempotencyKey(String);

string_newtype!(IdempotencyKey, parse(&[u8]));

impl IdempotencyKey {
    /// Parses a header value's bytes (a header may hold bytes that are not UTF-8).
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let key = raw.trim_ascii();
        let printable = key.iter().all(|b| (b' '..=b'~').contains(b));
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || !printable {
            return Err(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
            ));
        }
        // Printable ASCII is UTF-8.
        Ok(Self(String::from_utf8_lossy(key).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_trimmed_printable_ascii_of_bounded_length() {
        assert_eq!(IdempotencyKey::parse(b"order-51-1").unwrap().as_str(), "order-51-1");
        assert_eq!(
            IdempotencyKey::parse(b"  order 1 ").unwrap().as_str(),
            "order 1",
            "trimmed, inner space kept"
        );
        assert!(IdempotencyKey::parse("k".repeat(MAX_IDEMPOTENCY_KEY_LEN).as_bytes()).is_ok());
    }

    #[test]
    fn empty_long_and_non_ascii_keys_are_refused() {
        for bad in [
            &b""[..],
            b"   ",
            &[b'k'; MAX_IDEMPOTENCY_KEY_LEN + 1],
            "clé".as_bytes(),
            b"a\x01b",
            &[0xff, 0xfe],
        ] {
            let err = IdempotencyKey::parse(bad).unwrap_err();
            assert!(err.contains("1 to 200 visible ASCII"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_key_round_trips_through_json() {
        let key: IdempotencyKey = serde_json::from_value(json!("campaign-7")).unwrap();
        assert_eq!(serde_json::to_value(&key).unwrap(), json!("campaign-7"));
        assert!(serde_json::from_value::<IdempotencyKey>(json!("")).is_err());
    }
}
