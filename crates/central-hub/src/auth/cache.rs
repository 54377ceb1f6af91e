//! A short-lived in-memory copy of the users that protected routes look up on every request.
//!
//! A token proves who the caller is; whether the account is still enabled, and its role and
//! client id, come from the store. Polling routes are called thousands of times a second, so
//! each user's row is kept here for `AUTH_CACHE_TTL_MS` (default 2 s) before it is read again.
//! That is the bound on how long a change made elsewhere (`central-hub users disable` in another
//! process, an edit in the database) takes to reach a running hub: a disabled user is refused at
//! the latest one TTL after the change. `AUTH_CACHE_TTL_MS=0` reads the store on every request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::db::User;

/// Above this many cached users, expired entries are swept on the next insert.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug)]
pub struct UserCache {
    ttl: Duration,
    entries: RwLock<HashMap<i64, Entry>>,
}

#[derive(Debug)]
struct Entry {
    user: Arc<User>,
    read_at: Instant,
}

impl UserCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: RwLock::new(HashMap::new()) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The user read from the store less than one TTL ago, if any.
    pub fn get(&self, id: i64) -> Option<Arc<User>> {
        self.get_at(id, Instant::now())
    }

    /// Remembers `user` as read from the store now (a no-op when the TTL is 0).
    pub fn insert(&self, user: Arc<User>) {
        self.insert_at(user, Instant::now());
    }

    fn get_at(&self, id: i64, now: Instant) -> Option<Arc<User>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = entries.get(&id)?;
        (now.saturating_duration_since(entry.read_at) < self.ttl).then(|| entry.user.clone())
    }

    fn insert_at(&self, user: Arc<User>, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.write();
        if entries.len() > SWEEP_ABOVE {
            let ttl = self.ttl;
            entries.retain(|_, e| now.saturating_duration_since(e.read_at) < ttl);
        }
        entries.insert(user.id, Entry { user, read_at: now });
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<i64, Entry>> {
        // A poisoned map only holds copies of rows: keep using it.
        self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner())
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

    #[test]
    fn an_entry_is_served_for_one_ttl_then_read_again() {
        let cache = UserCache::new(Duration::from_secs(2));
        let t0 = Instant::now();
        cache.insert_at(user(1), t0);
        assert_eq!(cache.get_at(1, t0 + Duration::from_millis(1999)).map(|u| u.id), Some(1));
        assert!(cache.get_at(1, t0 + Duration::from_secs(2)).is_none(), "expired after one TTL");
        assert!(cache.get_at(2, t0).is_none());
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = UserCache::new(Duration::ZERO);
        let t0 = Instant::now();
        cache.insert_at(user(1), t0);
        assert!(cache.get_at(1, t0).is_none());
    }
}
