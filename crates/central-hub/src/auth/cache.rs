//! The tokens protected routes have already verified, each with the user it names, kept for a
//! short while so a poll costs a hash lookup instead of a signature check and a store read.
//!
//! A token proves who the caller is; whether the account is still enabled, its role, client id and
//! credential version come from the store. Polling routes are called thousands of times a second,
//! so once a token has been verified it is kept here, with the user's row as read then, until the
//! earlier of `AUTH_CACHE_TTL_MS` (default 2 s) after that read and the token's own `exp`. That TTL
//! is the bound on how long a change made elsewhere (`central-hub users disable` or `passwd` in
//! another process, an edit in the database) takes to reach a running hub: the row is read again
//! after it, so a disabled account or a token issued before a password change is refused at the
//! latest one TTL after the change. `AUTH_CACHE_TTL_MS=0` verifies and reads on every request.
//!
//! Only tokens whose signature verified are stored (a forged or garbage token never gets in), at
//! most [`MAX_TOKENS`] at a time: beyond that, expired entries are swept and, if it is still full,
//! a new token is served uncached (correct, just slower) until room is made.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::db::User;

/// The most tokens kept at once (each a few hundred bytes plus a copy of its user's row).
pub const MAX_TOKENS: usize = 10_000;

#[derive(Debug)]
pub struct UserCache {
    ttl: Duration,
    capacity: usize,
    entries: RwLock<HashMap<Box<str>, Entry>>,
}

/// A verified token: its credential version, the user's row as read from the store, and until
/// when both may be reused.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The token's `cv` claim, to compare with the row's credential version.
    pub cv: i64,
    pub user: Arc<User>,
    valid_until: Instant,
}

impl UserCache {
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, MAX_TOKENS)
    }

    pub fn with_capacity(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, entries: RwLock::new(HashMap::new()) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The cached verification of `token`, if it is still within its TTL and before its `exp`.
    pub fn get(&self, token: &str) -> Option<Entry> {
        self.get_at(token, Instant::now())
    }

    /// Remembers `token` (whose signature verified, with claims `cv` and `exp`, in Unix seconds)
    /// and `user`, read from the store just now. A no-op when the TTL is 0.
    pub fn insert(&self, token: &str, cv: i64, exp: u64, user: Arc<User>) {
        let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.insert_at(token, cv, exp, user, Instant::now(), unix_now);
    }

    fn get_at(&self, token: &str, now: Instant) -> Option<Entry> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(token).filter(|entry| now < entry.valid_until).cloned()
    }

    fn insert_at(&self, token: &str, cv: i64, exp: u64, user: Arc<User>, now: Instant, unix_now: Duration) {
        // Never past the token's own expiry (exact, without the leeway verification allows).
        let until_exp = Duration::from_secs(exp).saturating_sub(unix_now);
        let lifetime = self.ttl.min(until_exp);
        if lifetime.is_zero() {
            return;
        }
        let entry = Entry { cv, user, valid_until: now + lifetime };
        // A poisoned map only holds copies of rows: keep using it.
        let mut entries = self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(token) {
            entries.retain(|_, e| now < e.valid_until);
            if entries.len() >= self.capacity {
                return;
            }
        }
        entries.insert(token.into(), entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_contracts::Role;

    fn user(id: i64) -> Arc<User> {
        Arc::new(User {
            id,
            email: shared_contracts::Email::parse(&format!("u{id}@x.io")).unwrap(),
            password_hash: String::new(),
            role: Role::Admin,
            cliente_id: None,
            credential_version: 1,
            disabled_at: None,
            created_at: String::new(),
            updated_at: String::new(),
        })
    }

    const UNIX_NOW: Duration = Duration::from_secs(1_800_000_000);
    const FAR_EXP: u64 = 1_800_000_000 + 3600;

    #[test]
    fn a_token_is_served_for_one_ttl_then_verified_and_read_again() {
        let cache = UserCache::new(Duration::from_secs(2));
        let t0 = Instant::now();
        cache.insert_at("tok-a", 3, FAR_EXP, user(1), t0, UNIX_NOW);
        let hit = cache.get_at("tok-a", t0 + Duration::from_millis(1999)).expect("within the TTL");
        assert_eq!((hit.user.id, hit.cv), (1, 3));
        assert!(cache.get_at("tok-a", t0 + Duration::from_secs(2)).is_none(), "expired after one TTL");
        assert!(cache.get_at("tok-b", t0).is_none(), "another token of the same user is not this one");
    }

    #[test]
    fn a_token_is_never_served_past_its_exp() {
        let cache = UserCache::new(Duration::from_secs(60));
        let t0 = Instant::now();
        // Expires 1 s from now: kept 1 s, not the 60 s TTL.
        cache.insert_at("tok", 1, UNIX_NOW.as_secs() + 1, user(1), t0, UNIX_NOW);
        assert!(cache.get_at("tok", t0 + Duration::from_millis(999)).is_some());
        assert!(cache.get_at("tok", t0 + Duration::from_secs(1)).is_none(), "past exp");
        // Already expired (verification's leeway let it through): not kept at all.
        cache.insert_at("old", 1, UNIX_NOW.as_secs() - 2, user(1), t0, UNIX_NOW);
        assert!(cache.get_at("old", t0).is_none());
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = UserCache::new(Duration::ZERO);
        let t0 = Instant::now();
        cache.insert_at("tok", 1, FAR_EXP, user(1), t0, UNIX_NOW);
        assert!(cache.get_at("tok", t0).is_none());
    }

    #[test]
    fn the_cache_is_bounded_and_sweeps_expired_tokens_first() {
        let cache = UserCache::with_capacity(Duration::from_secs(2), 3);
        let t0 = Instant::now();
        for i in 0..3 {
            cache.insert_at(&format!("tok-{i}"), 1, FAR_EXP, user(i), t0, UNIX_NOW);
        }
        cache.insert_at("tok-3", 1, FAR_EXP, user(3), t0, UNIX_NOW);
        assert_eq!(cache.len(), 3, "full of live tokens: the new one is not kept");
        assert!(cache.get_at("tok-3", t0).is_none());
        assert!(cache.get_at("tok-0", t0).is_some(), "the live ones stay");
        let later = t0 + Duration::from_secs(3);
        cache.insert_at("tok-4", 1, FAR_EXP, user(4), later, UNIX_NOW + Duration::from_secs(3));
        assert_eq!(cache.len(), 1, "the expired ones were swept to make room");
        assert!(cache.get_at("tok-4", later).is_some());
    }
}
