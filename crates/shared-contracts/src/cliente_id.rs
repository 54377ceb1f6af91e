//! `ClienteId`: a CRM client's id, a positive integer wherever it appears.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A CRM client's id as it appears in `/api/whatsapp/:clienteId/...`, in send bodies, tokens and
/// the user store: a positive integer. 0 is nobody's id, so a type that holds one never has it;
/// "no client" is `Option<ClienteId>::None`. On the wire it is a plain JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "u64", into = "u64")]
pub struct ClienteId(u64);

impl ClienteId {
    /// Parses the id as it appears in a URL path or on a command line.
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

impl TryFrom<u64> for ClienteId {
    type Error = String;

    fn try_from(id: u64) -> Result<Self, String> {
        if id == 0 { Err("clienteId 0 is not a positive integer".to_owned()) } else { Ok(Self(id)) }
    }
}

/// As SQL stores it (a signed integer column).
impl TryFrom<i64> for ClienteId {
    type Error = String;

    fn try_from(id: i64) -> Result<Self, String> {
        u64::try_from(id).map_err(|_| format!("clienteId {id} is not a positive integer"))?.try_into()
    }
}

impl From<ClienteId> for u64 {
    fn from(id: ClienteId) -> u64 {
        id.0
    }
}

impl std::str::FromStr for ClienteId {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        Self::parse(raw)
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
    use serde_json::json;

    #[test]
    fn cliente_ids_are_positive_integers() {
        assert_eq!(ClienteId::parse("51").unwrap().get(), 51);
        for bad in ["0", "-1", "abc", "1.5", "", "18446744073709551616"] {
            assert!(ClienteId::parse(bad).is_err(), "{bad}");
        }
        assert!(ClienteId::try_from(0_u64).is_err());
        assert!(ClienteId::try_from(-3_i64).is_err());
        assert!(ClienteId::try_from(0_i64).is_err());
        assert_eq!(ClienteId::try_from(7_i64).unwrap().get(), 7);
    }

    #[test]
    fn a_cliente_id_is_a_plain_number_on_the_wire_and_never_zero() {
        let id: ClienteId = serde_json::from_value(json!(51)).unwrap();
        assert_eq!(serde_json::to_value(id).unwrap(), json!(51));
        for bad in [json!(0), json!(-1), json!("51"), json!(1.5)] {
            assert!(serde_json::from_value::<ClienteId>(bad.clone()).is_err(), "{bad}");
        }
        let err = serde_json::from_value::<ClienteId>(json!(0)).unwrap_err().to_string();
        assert!(err.contains("not a positive integer"), "{err}");
    }
}
