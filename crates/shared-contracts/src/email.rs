//! `Email`: a user's login name, normalized so that `Admin@X` and `admin@x` are one account.

use serde::Deserialize;

use crate::newtype::string_newtype;

/// The longest address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// An email address, trimmed and in lower case. The check is of shape only (something `@`
/// something, no blanks or control characters): the real proof of an address is that its owner
/// can log in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String")]
pub struct Email(String);

string_newtype!(Email, parse(&str));

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("the email is empty".to_owned());
        }
        if email.chars().any(char::is_control) {
            // Refused so no stored or shown email holds one (logs escape them anyway).
            return Err("the email contains a control character (a line break, tab or escape)".to_owned());
        }
        if email.chars().any(char::is_whitespace) {
            return Err(format!("{email:?} is not an email address: it contains a space"));
        }
        if email.len() > MAX_EMAIL_LEN {
            return Err(format!("the email has {} bytes: at most {MAX_EMAIL_LEN} are accepted", email.len()));
        }
        match email.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(Self(email)),
            _ => Err(format!("{email:?} is not an email address (expected name@domain)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(Email::parse(" Admin@Example.COM ").unwrap().as_str(), "admin@example.com");
        assert_eq!(Email::parse("admin@localhost").unwrap().as_str(), "admin@localhost");
    }

    #[test]
    fn each_malformed_email_is_refused_with_its_reason() {
        assert_eq!(Email::parse("  ").unwrap_err(), "the email is empty");
        assert!(Email::parse("a@b\n").is_ok(), "a trailing line break is trimmed");
        assert!(Email::parse("a\u{1b}@b").unwrap_err().contains("control character"));
        assert!(Email::parse("a b@c").unwrap_err().contains("space"));
        assert!(Email::parse("nobody").unwrap_err().contains("not an email address"));
        assert!(Email::parse("@x.io").unwrap_err().contains("not an email address"));
        assert!(Email::parse("a@").unwrap_err().contains("not an email address"));
        let long = format!("{}@x.io", "a".repeat(MAX_EMAIL_LEN));
        assert!(Email::parse(&long).unwrap_err().contains("at most 254"));
    }

    #[test]
    fn an_email_round_trips_through_json_normalized() {
        let email: Email = serde_json::from_value(json!("C@X.io")).unwrap();
        assert_eq!(serde_json::to_value(&email).unwrap(), json!("c@x.io"));
        assert!(serde_json::from_value::<Email>(json!("bob")).is_err());
    }
}
