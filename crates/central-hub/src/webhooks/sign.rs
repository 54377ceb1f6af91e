//! Webhook secrets and signatures: `X-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">` keyed with the webhook's secret (the scheme Stripe made familiar: the timestamp
//! is signed too, so a receiver can refuse replays of old requests).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The header names every delivery carries.
pub const ID_HEADER: &str = "x-webhook-id";
pub const EVENT_HEADER: &str = "x-webhook-event";
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";

/// A new secret: `whsec_` and 32 random bytes in hex.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex(&bytes))
}

/// The value of the signature header for `body` sent at `unix_seconds`.
pub fn signature_header(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    format!("t={unix_seconds},v1={}", hex(&hmac_sha256(secret.as_bytes(), unix_seconds, body)))
}

fn hmac_sha256(key: &[u8], unix_seconds: i64, body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_timestamp_dot_body() {
        // Python: hmac.new(b"key", b"1.x", hashlib.sha256).hexdigest()
        assert_eq!(
            signature_header("key", 1, b"x"),
            "t=1,v1=fc4913c41a7bf793267e2a384f3261c9436ec2cd097bd745e7b0d99113f510ec"
        );
        assert_ne!(signature_header("key", 2, b"x"), signature_header("key", 1, b"x"), "t is signed");
        assert_ne!(signature_header("other", 1, b"x"), signature_header("key", 1, b"x"));
    }

    #[test]
    fn secrets_are_long_random_and_distinct() {
        let (a, b) = (generate_secret(), generate_secret());
        assert!(a.starts_with("whsec_") && a.len() == 6 + 64, "{a}");
        assert_ne!(a, b);
    }
}
