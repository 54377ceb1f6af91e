//! Argon2id password hashes. Hashing is CPU-heavy: callers in async code use the `*_blocking`
//! wrappers, which run it on the blocking pool.
//!
//! New hashes use OWASP's argon2id parameters, chosen here rather than left to the crate's
//! defaults: 19 MiB of memory, 2 passes, 1 lane. A stored hash carries its own parameters, so
//! hashes made with other ones still verify. Each verify holds that memory while it runs, so
//! logins verify through a [`VerifyGate`]: at most one verify per core at once, the others wait
//! briefly and are then refused (503 `LOGIN_BUSY`), which bounds the hub's memory under a login flood.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use rand::distr::{Alphanumeric, SampleString};
use tokio::sync::Semaphore;

/// Argon2id memory cost in KiB (OWASP: 19 MiB).
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// Argon2id passes (OWASP: 2).
pub const ARGON2_ITERATIONS: u32 = 2;
/// Argon2id lanes (OWASP: 1).
pub const ARGON2_LANES: u32 = 1;

/// How long a login waits for a free verify slot before it is refused with 503 `LOGIN_BUSY`.
pub const VERIFY_WAIT: Duration = Duration::from_secs(2);

fn hasher() -> Argon2<'static> {
    // The constants are valid argon2 parameters; the fallback is never taken.
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
        .unwrap_or_else(|_| Params::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Bounds how many password checks run at once (one per core by default), and gives each a
/// reused argon2 work area: a fresh 19 MiB allocation per check, on whichever blocking thread
/// runs it, is kept by the allocator in that thread's arena, and the hub's RSS grew far past
/// `slots x 19 MiB` that way.
#[derive(Debug, Clone)]
pub struct VerifyGate {
    slots: Arc<Semaphore>,
    size: usize,
    wait: Duration,
    /// At most `size` work areas: one per permit.
    memory: Arc<std::sync::Mutex<Vec<Vec<Block>>>>,
}

/// Every verify slot stayed busy for the whole wait.
#[derive(Debug, thiserror::Error)]
#[error("{slots} password checks are already running and none finished within {} ms", wait.as_millis())]
pub struct Busy {
    pub slots: usize,
    pub wait: Duration,
}

impl VerifyGate {
    pub fn new(size: usize, wait: Duration) -> Self {
        let size = size.max(1);
        Self { slots: Arc::new(Semaphore::new(size)), size, wait, memory: Arc::default() }
    }

    /// One slot per core (`std::thread::available_parallelism`), waiting up to [`VERIFY_WAIT`].
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from), VERIFY_WAIT)
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Verifies on the blocking pool once a slot is free; `Err(Busy)` when none freed up in time.
    pub async fn verify(&self, password: String, hash: String) -> Result<Result<bool, PasswordError>, Busy> {
        let permit = match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(Busy { slots: self.size, wait: self.wait }),
        };
        let memory = self.memory.clone();
        let result = tokio::task::spawn_blocking(move || {
            let take = || memory.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let mut blocks = take().unwrap_or_default();
            let ok = verify_with_memory(&password, &hash, &mut blocks);
            memory.lock().unwrap_or_else(|p| p.into_inner()).push(blocks);
            drop(permit);
            ok
        })
        .await
        .map_err(|e| PasswordError::Join(e.to_string()));
        Ok(result)
    }
}

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
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// `false` for a wrong password and for a hash this build cannot read.
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| hasher().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// [`verify`] computing in `blocks` (grown to the hash's memory cost if needed) instead of a
/// fresh allocation.
pub fn verify_with_memory(password: &str, hash: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    if blocks.len() < params.block_count() {
        blocks.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    if argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut blocks[..]).is_err() {
        return false;
    }
    // `Output` compares in constant time.
    argon2::password_hash::Output::new(&out).is_ok_and(|computed| computed == expected)
}

pub async fn hash_blocking(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| PasswordError::Join(e.to_string()))?
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
    fn new_hashes_use_the_chosen_parameters_and_old_ones_still_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.contains("$m=19456,t=2,p=1$"), "{h}");
        // A hash made with other parameters (argon2's defaults of another version, say).
        let params = Params::new(8192, 3, 2, None).unwrap();
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(&[3; 16]).unwrap();
        let old = other.hash_password(b"old password", &salt).unwrap().to_string();
        assert!(verify("old password", &old));
        assert!(!verify("other password", &old));
        let mut blocks = Vec::new();
        assert!(verify_with_memory("old password", &old, &mut blocks));
        assert!(verify_with_memory("correct horse", &h, &mut blocks), "the work area is reused");
        assert!(!verify_with_memory("wrong horse", &h, &mut blocks));
        assert!(!verify_with_memory("correct horse", "not a hash", &mut blocks));
    }

    #[tokio::test]
    async fn the_gate_refuses_when_every_slot_stays_busy() {
        let gate = VerifyGate::new(1, Duration::from_millis(50));
        let held = gate.slots.clone().acquire_owned().await.unwrap();
        let h = hash("correct horse").unwrap();
        assert!(gate.verify("correct horse".into(), h.clone()).await.is_err(), "no slot: busy");
        drop(held);
        assert!(gate.verify("correct horse".into(), h).await.unwrap().unwrap());
    }

    #[test]
    fn short_passwords_are_refused_and_generated_ones_are_long() {
        assert!(matches!(hash("short"), Err(PasswordError::TooShort(5))));
        let generated = generate();
        assert_eq!(generated.len(), 24);
        assert_ne!(generated, generate());
    }
}
