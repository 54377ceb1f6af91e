//! Sliding-window limits for logins: attempts per client IP, failures per account.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many tracked keys, expired ones are swept on the next write.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug)]
pub struct SlidingWindow {
    max: u32,
    window: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SlidingWindow {
    pub fn new(max: u32, window: Duration) -> Self {
        Self { max, window, hits: Mutex::new(HashMap::new()) }
    }

    /// `Err(retry_after_secs)` when `key` already used its `max` hits in the window.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    pub fn record(&self, key: &str) {
        self.record_at(key, Instant::now());
    }

    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // A poisoned map only holds timestamps: keep using it.
        self.hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut hits = self.lock();
        let Some(times) = hits.get_mut(key) else { return Ok(()) };
        expire(times, now, self.window);
        if times.len() < self.max as usize {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        let free_at = oldest + self.window;
        Err(free_at.saturating_duration_since(now).as_secs().max(1))
    }

    fn record_at(&self, key: &str, now: Instant) {
        let mut hits = self.lock();
        if hits.len() > SWEEP_ABOVE {
            hits.retain(|_, times| {
                expire(times, now, self.window);
                !times.is_empty()
            });
        }
        let times = hits.entry(key.to_owned()).or_default();
        expire(times, now, self.window);
        times.push_back(now);
    }
}

fn expire(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_applies_per_key_and_frees_up_after_the_window() {
        let limit = SlidingWindow::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        limit.record_at("a", t0);
        limit.record_at("a", t0 + Duration::from_secs(10));
        assert_eq!(limit.check_at("a", t0 + Duration::from_secs(20)), Err(40));
        assert_eq!(limit.check_at("b", t0), Ok(()));
        assert_eq!(limit.check_at("a", t0 + Duration::from_secs(61)), Ok(()));
        limit.clear("a");
        assert_eq!(limit.check_at("a", t0 + Duration::from_secs(20)), Ok(()));
    }
}
