//! HS256 login tokens: `sub`, `role`, `cliente_id`, `cv` (the account's credential version), `iat`, `exp`. Only HS256 is accepted, so a
//! token with `alg: none` or another algorithm is rejected before its claims are read.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use shared_contracts::{ClienteId, Role};

use crate::db::User;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id, as a string (RFC 7519).
    pub sub: String,
    pub role: Role,
    pub cliente_id: Option<ClienteId>,
    /// The account's credential version when the token was issued; a token whose `cv` is no longer
    /// the account's (password changed, account disabled) is refused. Missing in tokens of older
    /// builds: read as 0, which no account has, so those log in again.
    #[serde(default)]
    pub cv: i64,
    pub iat: u64,
    pub exp: u64,
}

/// Why a token was refused, in words a caller can act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature is not valid for this hub")]
    BadSignature,
    #[error("the token is not signed with HS256")]
    WrongAlgorithm,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token could not be signed: {0}")]
    Signing(String),
}

/// The signing keys, built once from `JWT_SECRET`.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// Issues a token for `user`; returns it with its expiry (Unix seconds).
    pub fn issue(&self, user: &User) -> Result<(String, u64), TokenError> {
        let iat = jsonwebtoken::get_current_timestamp();
        let exp = iat + self.ttl.as_secs();
        let claims = Claims {
            sub: user.id.to_string(),
            role: user.role,
            cliente_id: user.cliente_id,
            cv: user.credential_version,
            iat,
            exp,
        };
        self.sign(&claims).map(|token| (token, exp))
    }

    /// Signs arbitrary claims (tests use it for expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::WrongAlgorithm,
                _ => TokenError::Malformed,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn keys() -> JwtKeys {
        JwtKeys::new(&[7; 32], Duration::from_secs(60))
    }

    fn claims(exp_offset: i64) -> Claims {
        let now = jsonwebtoken::get_current_timestamp();
        Claims {
            sub: "1".into(),
            role: Role::Admin,
            cliente_id: None,
            cv: 1,
            iat: now,
            exp: now.saturating_add_signed(exp_offset),
        }
    }

    #[test]
    fn a_signed_token_verifies_to_its_claims() {
        let c = claims(60);
        assert_eq!(keys().verify(&keys().sign(&c).unwrap()).unwrap(), c);
    }

    #[test]
    fn expired_foreign_and_unsigned_tokens_are_refused() {
        assert_eq!(keys().verify(&keys().sign(&claims(-3600)).unwrap()), Err(TokenError::Expired));
        let other = JwtKeys::new(&[8; 32], Duration::from_secs(60));
        assert_eq!(keys().verify(&other.sign(&claims(60)).unwrap()), Err(TokenError::BadSignature));
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(60)).unwrap());
        let none = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#));
        assert!(keys().verify(&none).is_err());
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(60),
            &EncodingKey::from_secret(&[7; 32]),
        )
        .unwrap();
        assert_eq!(keys().verify(&hs512), Err(TokenError::WrongAlgorithm));
    }
}
