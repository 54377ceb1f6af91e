//! Token buckets for what must not run away: sends (SEND_RATE_PER_MINUTE) and connects that start
//! the browser (CONNECT_RATE_PER_MINUTE). Over the limit: 429 RATE_LIMITED with `Retry-After`.

use std::sync::Mutex;
use std::time::Instant;

use crate::error::Error;

/// `per_minute` actions in a burst, refilled evenly over a minute.
pub struct RateLimiter {
    /// What is limited, for the error ("sends", "connects").
    what: &'static str,
    /// The setting that raises the limit, for the hint.
    setting: &'static str,
    per_minute: u32,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(what: &'static str, setting: &'static str, per_minute: u32) -> Self {
        Self { what, setting, per_minute, state: Mutex::new((f64::from(per_minute), Instant::now())) }
    }

    /// Takes one token, or says how long to wait for the next.
    pub fn try_acquire(&self) -> Result<(), Error> {
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let mut guard = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (tokens, last) = &mut *guard;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * per_sec).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let retry_after_secs = ((1.0 - *tokens) / per_sec).ceil().max(1.0) as u64;
        Err(Error::RateLimited {
            what: self.what,
            setting: self.setting,
            per_minute: self.per_minute,
            retry_after_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_asks_to_wait_naming_the_limit() {
        let limiter = RateLimiter::new("connects", "CONNECT_RATE_PER_MINUTE", 2);
        assert!(limiter.try_acquire().is_ok());
        assert!(limiter.try_acquire().is_ok());
        match limiter.try_acquire() {
            Err(e @ Error::RateLimited { retry_after_secs, .. }) => {
                assert!((1..=30).contains(&retry_after_secs), "{retry_after_secs}");
                assert!(e.to_string().contains("connects"), "{e}");
                assert!(e.hint().contains("CONNECT_RATE_PER_MINUTE"), "{}", e.hint());
            }
            other => panic!("expected a 429, got {other:?}"),
        }
    }
}
