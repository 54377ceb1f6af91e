//! Login limits and the per-caller send budget.
//!
//! - [`SlidingWindow`]: attempts per client address (every attempt is counted when it starts,
//!   before the password is checked, so parallel requests cannot slip past the limit).
//! - [`Backoff`]: failures per account *and* address. The first `free` failures cost nothing;
//!   after that each further attempt from that address on that account must wait a delay that
//!   doubles with every failure (2 s, 4 s, 8 s, ... up to the window). Attempts are reserved before
//!   the check, so 40 parallel guesses get `free` checks, not 40. The account itself is never
//!   locked: its owner logging in from another address is not slowed by an attacker's failures.
//! - [`TokenBucket`]: sends per caller per minute.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many tracked keys, expired ones are swept on the next write.
const SWEEP_ABOVE: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned map only holds counters and timestamps: keep using it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whole seconds until `d` has passed (at least 1, for `Retry-After`).
fn ceil_secs(d: Duration) -> u64 {
    (d.as_millis().div_ceil(1000) as u64).max(1)
}

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

    /// Counts one hit for `key`; `Err(retry_after_secs)` (and nothing counted) when it already
    /// used its `max` hits in the window.
    pub fn try_acquire(&self, key: &str) -> Result<(), u64> {
        self.try_acquire_at(key, Instant::now())
    }

    fn try_acquire_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut hits = lock(&self.hits);
        if hits.len() > SWEEP_ABOVE {
            hits.retain(|_, times| {
                expire(times, now, self.window);
                !times.is_empty()
            });
        }
        let times = hits.entry(key.to_owned()).or_default();
        expire(times, now, self.window);
        if times.len() >= self.max as usize {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(ceil_secs((oldest + self.window).saturating_duration_since(now)));
        }
        times.push_back(now);
        Ok(())
    }
}

fn expire(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
        times.pop_front();
    }
}

/// Failures per key (account and address) with exponential back-off; see the module docs.
#[derive(Debug)]
pub struct Backoff {
    free: u32,
    window: Duration,
    entries: Mutex<HashMap<String, BackoffEntry>>,
}

#[derive(Debug, Default)]
struct BackoffEntry {
    failures: u32,
    in_flight: u32,
    last_failure: Option<Instant>,
}

/// A reserved attempt: report its outcome with [`succeeded`](Self::succeeded) or
/// [`failed`](Self::failed); dropped without either, it is released and counts for nothing.
#[must_use]
pub struct Reservation<'a> {
    backoff: &'a Backoff,
    key: String,
    settled: bool,
}

impl Backoff {
    /// `free` failures before delays start; failures are forgotten `window` after the last one.
    pub fn new(free: u32, window: Duration) -> Self {
        Self { free: free.max(1), window, entries: Mutex::new(HashMap::new()) }
    }

    /// The wait imposed after `failures` failures (zero while they are within the free ones).
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let exponent = (failures - self.free + 1).min(20);
        Duration::from_secs(1u64 << exponent).min(self.window)
    }

    /// Reserves an attempt for `key`, or `Err(retry_after_secs)`.
    pub fn reserve(&self, key: &str) -> Result<Reservation<'_>, u64> {
        self.reserve_at(key, Instant::now())
    }

    fn reserve_at(&self, key: &str, now: Instant) -> Result<Reservation<'_>, u64> {
        let mut entries = lock(&self.entries);
        if entries.len() > SWEEP_ABOVE {
            let window = self.window;
            entries.retain(|_, e| {
                e.in_flight > 0 || e.last_failure.is_some_and(|t| now.duration_since(t) < window)
            });
        }
        let entry = entries.entry(key.to_owned()).or_default();
        if entry.last_failure.is_some_and(|t| now.duration_since(t) >= self.window) {
            entry.failures = 0;
            entry.last_failure = None;
        }
        if entry.failures < self.free {
            // Free attempts, but never more checks at once than failures left before the delays.
            if entry.failures + entry.in_flight >= self.free {
                return Err(1);
            }
        } else {
            let since = entry.last_failure.map_or(Duration::MAX, |t| now.duration_since(t));
            let delay = self.delay_after(entry.failures);
            if since < delay {
                return Err(ceil_secs(delay - since));
            }
            if entry.in_flight > 0 {
                return Err(1);
            }
        }
        entry.in_flight += 1;
        Ok(Reservation { backoff: self, key: key.to_owned(), settled: false })
    }

    fn settle(&self, key: &str, outcome: Option<bool>, now: Instant) {
        let mut entries = lock(&self.entries);
        let Some(entry) = entries.get_mut(key) else { return };
        entry.in_flight = entry.in_flight.saturating_sub(1);
        match outcome {
            Some(true) => {
                entries.remove(key);
            }
            Some(false) => {
                entry.failures = entry.failures.saturating_add(1);
                entry.last_failure = Some(now);
            }
            None => {
                if entry.in_flight == 0 && entry.failures == 0 {
                    entries.remove(key);
                }
            }
        }
    }
}

impl Reservation<'_> {
    /// The password was right: the key's failures are forgotten.
    pub fn succeeded(self) {
        self.finish(true, Instant::now());
    }

    /// The password was wrong (or the account unknown): one more failure, a longer delay.
    pub fn failed(self) {
        self.finish(false, Instant::now());
    }

    fn finish(mut self, ok: bool, now: Instant) {
        self.settled = true;
        self.backoff.settle(&self.key, Some(ok), now);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.backoff.settle(&self.key, None, Instant::now());
        }
    }
}

/// A token bucket per key: `per_minute` tokens, refilled evenly over a minute; 0 disables it.
#[derive(Debug)]
pub struct TokenBucket {
    per_minute: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl TokenBucket {
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Takes one token for `key`, or `Err(retry_after_secs)` until one is back.
    pub fn try_take(&self, key: &str) -> Result<(), u64> {
        self.try_take_at(key, Instant::now())
    }

    fn try_take_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let mut buckets = lock(&self.buckets);
        if buckets.len() > SWEEP_ABOVE {
            // A bucket untouched for a minute is full again: the same as no entry.
            buckets.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(60));
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((capacity, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_sec).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        Err(ceil_secs(Duration::from_secs_f64((1.0 - *tokens) / per_sec)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_attempts_as_they_start_per_key() {
        let limit = SlidingWindow::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(limit.try_acquire_at("a", t0), Ok(()));
        assert_eq!(limit.try_acquire_at("a", t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(limit.try_acquire_at("a", t0 + Duration::from_secs(20)), Err(40));
        assert_eq!(limit.try_acquire_at("b", t0), Ok(()));
        assert_eq!(limit.try_acquire_at("a", t0 + Duration::from_secs(61)), Ok(()));
    }

    #[test]
    fn failures_beyond_the_free_ones_wait_a_doubling_delay_and_success_forgets_them() {
        let b = Backoff::new(3, Duration::from_secs(300));
        let t0 = Instant::now();
        for _ in 0..3 {
            b.reserve_at("k", t0).unwrap().finish(false, t0);
        }
        assert_eq!(b.reserve_at("k", t0 + Duration::from_millis(500)).err(), Some(2), "2 s after 3 failures");
        b.reserve_at("k", t0 + Duration::from_secs(2)).unwrap().finish(false, t0 + Duration::from_secs(2));
        assert_eq!(b.reserve_at("k", t0 + Duration::from_secs(3)).err(), Some(3), "then 4 s");
        assert_eq!(
            [3, 4, 5, 8, 20].map(|n| b.delay_after(n).as_secs()),
            [2, 4, 8, 64, 300],
            "doubling, capped at the window"
        );
        assert!(b.reserve_at("other", t0).is_ok(), "another key (address) is not slowed");
        b.reserve_at("k", t0 + Duration::from_secs(6)).unwrap().finish(true, t0 + Duration::from_secs(6));
        assert!(b.reserve_at("k", t0 + Duration::from_secs(6)).is_ok(), "a success forgets the failures");
    }

    #[test]
    fn parallel_attempts_are_reserved_so_only_the_free_ones_run() {
        let b = Backoff::new(5, Duration::from_secs(300));
        let reserved: Vec<_> = (0..40).filter_map(|_| b.reserve("k").ok()).collect();
        assert_eq!(reserved.len(), 5);
        drop(reserved);
        assert!(b.reserve("k").is_ok(), "released reservations count for nothing");
    }

    #[test]
    fn a_bucket_gives_its_tokens_then_refills_over_a_minute() {
        let bucket = TokenBucket::new(2);
        let t0 = Instant::now();
        assert!(bucket.try_take_at("a", t0).is_ok());
        assert!(bucket.try_take_at("a", t0).is_ok());
        assert_eq!(bucket.try_take_at("a", t0), Err(30));
        assert!(bucket.try_take_at("b", t0).is_ok(), "per key");
        assert!(bucket.try_take_at("a", t0 + Duration::from_secs(30)).is_ok());
        assert!(TokenBucket::new(0).try_take_at("a", t0).is_ok(), "0 disables the budget");
    }
}
