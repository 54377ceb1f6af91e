//! Argon2id password hashes. Hashing is CPU-heavy: callers in async code use the `*_blocking`
//! wrappers, which run it on the blocking pool.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use rand::distr::{Alphanumeric, SampleString};

/// The shortest password the hub lets anyone set.
pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password has {0} characters: at least {MIN_PASSWORD_CHARS} are required")]
    TooShort(usize),
    #[error("the password could not be hashed: {0}")]
    Hash(String),
    #[error("the password check did not finish: {0}")]
    Join(String),
}

pub fn hash(password: &str) -> Result<String, PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort(chars));
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// `false` for a wrong password and for a hash this build cannot read.
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

pub async fn hash_blocking(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| PasswordError::Join(e.to_string()))?
}

pub async fn verify_blocking(password: String, hash: String) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || verify(&password, &hash))
        .await
        .map_err(|e| PasswordError::Join(e.to_string()))
}

/// A strong random password (24 alphanumerics, about 142 bits) for generated accounts.
pub fn generate() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_only_its_own_password() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn short_passwords_are_refused_and_generated_ones_are_long() {
        assert!(matches!(hash("short"), Err(PasswordError::TooShort(5))));
        let generated = generate();
        assert_eq!(generated.len(), 24);
        assert_ne!(generated, generate());
    }
}
