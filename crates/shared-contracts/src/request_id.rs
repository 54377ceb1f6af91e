//! `RequestId`: the `x-request-id` that ties a request's logs, error body and the manager call
//! together.

use serde::Deserialize;

use crate::newtype::string_newtype;

/// The longest request id kept from a caller, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A request id: 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters, no spaces (it ends up in
/// logs, so nothing that could forge a log line). A caller's id that is not one is replaced by a
/// fresh one, never refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct RequestId(String);

string_newtype!(RequestId, parse(&str));

impl RequestId {
    /// The one rule for a caller's request id, also applied without allocating by the services'
    /// request middleware (`service-kit`).
    pub fn is_acceptable(raw: &str) -> bool {
        !raw.is_empty() && raw.len() <= MAX_REQUEST_ID_LEN && raw.bytes().all(|b| b.is_ascii_graphic())
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        if !Self::is_acceptable(raw) {
            return Err(format!(
                "a request id must be 1 to {MAX_REQUEST_ID_LEN} visible ASCII characters without spaces"
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_short_visible_request_ids_are_kept() {
        assert_eq!(RequestId::parse("req-abc-1").unwrap().as_str(), "req-abc-1");
        assert!(RequestId::parse(&"x".repeat(MAX_REQUEST_ID_LEN)).is_ok());
        for bad in ["", "a b", "a\nb", "ñ", &"x".repeat(MAX_REQUEST_ID_LEN + 1)] {
            assert!(RequestId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_request_id_round_trips_through_json() {
        let id: RequestId = serde_json::from_value(json!("7f1c")).unwrap();
        assert_eq!(serde_json::to_value(&id).unwrap(), json!("7f1c"));
        assert!(serde_json::from_value::<RequestId>(json!("a b")).is_err());
    }
}
