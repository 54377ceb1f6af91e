//! The session's pacer: when the one WhatsApp account may send its next campaign message.
//!
//! Every running campaign shares it (the account is the rate-limited resource, not the campaign):
//! a random delay between two messages, hourly and daily caps over the last 60 minutes and 24
//! hours, the campaign's send window in its IANA time zone, and a hold after `RATE_LIMITED`. It is
//! pure: the caller passes the time (Unix milliseconds) and the random fraction, so tests run on
//! an injected clock.

use std::collections::VecDeque;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// How fast a campaign (or the operator's limit) lets the session send. Caps of 0 mean none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
    pub max_per_hour: u32,
    pub max_per_day: u32,
}

impl Pace {
    /// The defaults, chosen against bans: 8–20 s apart, 200 an hour, 1,000 a day.
    pub const DEFAULT: Pace =
        Pace { min_delay_ms: 8_000, max_delay_ms: 20_000, max_per_hour: 200, max_per_day: 1_000 };

    /// The pace a campaign asking for `self` gets under the operator's fastest allowed: the
    /// longer delays, the lower caps.
    pub fn within(&self, fastest: &Pace) -> Pace {
        let cap = |asked: u32, limit: u32| match (asked, limit) {
            (0, limit) => limit,
            (asked, 0) => asked,
            (asked, limit) => asked.min(limit),
        };
        let min_delay_ms = self.min_delay_ms.max(fastest.min_delay_ms);
        Pace {
            min_delay_ms,
            max_delay_ms: self.max_delay_ms.max(fastest.max_delay_ms).max(min_delay_ms),
            max_per_hour: cap(self.max_per_hour, fastest.max_per_hour),
            max_per_day: cap(self.max_per_day, fastest.max_per_day),
        }
    }

    /// Asks for nothing faster than `fastest`, or says which limit it breaks.
    pub fn check_against(&self, fastest: &Pace) -> Result<(), String> {
        if self.min_delay_ms > self.max_delay_ms {
            return Err(format!(
                "min_delay_ms ({}) is greater than max_delay_ms ({})",
                self.min_delay_ms, self.max_delay_ms
            ));
        }
        if self.min_delay_ms < fastest.min_delay_ms {
            return Err(format!(
                "min_delay_ms {} is below the operator's {} (CAMPAIGN_MIN_DELAY_MS)",
                self.min_delay_ms, fastest.min_delay_ms
            ));
        }
        let over = |asked: u32, limit: u32| limit != 0 && (asked == 0 || asked > limit);
        if over(self.max_per_hour, fastest.max_per_hour) {
            return Err(format!(
                "max_per_hour {} is above the operator's {} (CAMPAIGN_MAX_PER_HOUR)",
                self.max_per_hour, fastest.max_per_hour
            ));
        }
        if over(self.max_per_day, fastest.max_per_day) {
            return Err(format!(
                "max_per_day {} is above the operator's {} (CAMPAIGN_MAX_PER_DAY)",
                self.max_per_day, fastest.max_per_day
            ));
        }
        Ok(())
    }

    /// Messages an hour this pace allows at most (for estimates).
    pub fn hourly_rate(&self) -> f64 {
        let mean_delay = (self.min_delay_ms + self.max_delay_ms) as f64 / 2.0;
        let mut rate = if mean_delay > 0.0 { HOUR_MS as f64 / mean_delay } else { f64::INFINITY };
        if self.max_per_hour > 0 {
            rate = rate.min(f64::from(self.max_per_hour));
        }
        if self.max_per_day > 0 {
            rate = rate.min(f64::from(self.max_per_day) / 24.0);
        }
        rate
    }
}

/// The hours of the day a campaign may send, in its time zone: `[start, end)` in minutes after
/// local midnight; `end` may be 1440 (24:00); `start > end` spans midnight.
#[derive(Clone, Debug)]
pub struct SendWindow {
    tz: TimeZone,
    pub start_min: u32,
    pub end_min: u32,
}

/// `HH:MM` (00:00 to 24:00) as minutes after midnight.
pub fn parse_clock(raw: &str) -> Result<u32, String> {
    let bad = || format!("{raw:?} is not a time of day as HH:MM (00:00 to 24:00)");
    let (h, m) = raw.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Minutes after midnight as `HH:MM`.
pub fn format_clock(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

impl SendWindow {
    pub fn new(time_zone: &str, start_min: u32, end_min: u32) -> Result<Self, String> {
        let tz = TimeZone::get(time_zone).map_err(|e| {
            format!("{time_zone:?} is not an IANA time zone (e.g. America/Argentina/Buenos_Aires): {e}")
        })?;
        if start_min >= 1440 || end_min > 1440 || start_min == end_min {
            return Err(format!(
                "the send window {}–{} is empty or out of the day",
                format_clock(start_min),
                format_clock(end_min)
            ));
        }
        Ok(Self { tz, start_min, end_min })
    }

    /// Minutes after local midnight at `now_ms`, and that local time.
    fn local(&self, now_ms: i64) -> Option<(u32, jiff::ZonedDateTime)> {
        let zoned = Timestamp::from_millisecond(now_ms).ok()?.to_zoned_datetime(self.tz.clone());
        let minute = u32::try_from(i32::from(zoned.hour()) * 60 + i32::from(zoned.minute())).ok()?;
        Some((minute, zoned))
    }

    fn open_at_minute(&self, minute: u32) -> bool {
        if self.start_min < self.end_min {
            minute >= self.start_min && minute < self.end_min
        } else {
            minute >= self.start_min || minute < self.end_min
        }
    }

    pub fn contains(&self, now_ms: i64) -> bool {
        self.local(now_ms).is_none_or(|(minute, _)| self.open_at_minute(minute))
    }

    /// When the window opens next (`now_ms` itself when it is open).
    pub fn next_open_ms(&self, now_ms: i64) -> i64 {
        let Some((minute, zoned)) = self.local(now_ms) else { return now_ms };
        if self.open_at_minute(minute) {
            return now_ms;
        }
        let at_start = |day: &jiff::ZonedDateTime| {
            let (h, m) = ((self.start_min / 60) as i8, (self.start_min % 60) as i8);
            day.with().hour(h).minute(m).second(0).subsec_nanosecond(0).build().ok()
        };
        let today = at_start(&zoned).map(|z| z.timestamp().as_millisecond());
        match today {
            Some(ms) if ms > now_ms => ms,
            _ => zoned
                .tomorrow()
                .ok()
                .and_then(|t| at_start(&t))
                .map_or(now_ms + HOUR_MS, |z| z.timestamp().as_millisecond()),
        }
    }
}

/// Why the next message must wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    Delay,
    HourlyCap,
    DailyCap,
    OutsideWindow,
    RateLimited,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Now,
    Wait { until_ms: i64, reason: WaitReason },
}

/// The session's recent sends and the delay drawn after the last one.
#[derive(Debug, Default)]
pub struct Pacer {
    /// Send times (ms) of the last 24 hours, oldest first.
    sends: VecDeque<i64>,
    /// Where in `[min_delay, max_delay]` the delay after the last send falls (0.0 to 1.0).
    delay_fraction: f64,
    /// No send before this (a `RATE_LIMITED` answer's `Retry-After`).
    hold_until_ms: i64,
}

impl Pacer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the history with the sends the database knows (every hub's, on PostgreSQL).
    pub fn set_history(&mut self, mut sends: Vec<i64>) {
        sends.sort_unstable();
        self.sends = sends.into();
    }

    /// A message went out at `at_ms`; `fraction` (0.0 to 1.0) draws the delay before the next one.
    pub fn record_send(&mut self, at_ms: i64, fraction: f64) {
        self.sends.push_back(at_ms);
        while self.sends.front().is_some_and(|&t| t <= at_ms - DAY_MS) {
            self.sends.pop_front();
        }
        self.delay_fraction = fraction.clamp(0.0, 1.0);
    }

    /// The session may not send before `until_ms` (the manager said `RATE_LIMITED`).
    pub fn hold(&mut self, until_ms: i64) {
        self.hold_until_ms = self.hold_until_ms.max(until_ms);
    }

    /// Sends in the 60 minutes and the 24 hours before `now_ms`.
    pub fn counts(&self, now_ms: i64) -> (usize, usize) {
        let hour = self.sends.iter().filter(|&&t| t > now_ms - HOUR_MS).count();
        let day = self.sends.iter().filter(|&&t| t > now_ms - DAY_MS).count();
        (hour, day)
    }

    /// May a message of a campaign with `pace` and `window` go now? Else until when, and why
    /// (the latest of every limit that holds it back).
    pub fn decide(&self, now_ms: i64, pace: &Pace, window: &SendWindow) -> Decision {
        let mut wait: Option<(i64, WaitReason)> = None;
        let mut hold = |until_ms: i64, reason: WaitReason| {
            if until_ms > now_ms && wait.is_none_or(|(current, _)| until_ms > current) {
                wait = Some((until_ms, reason));
            }
        };
        hold(window.next_open_ms(now_ms), WaitReason::OutsideWindow);
        hold(self.hold_until_ms, WaitReason::RateLimited);
        if let Some(&last) = self.sends.back() {
            let span = pace.max_delay_ms.saturating_sub(pace.min_delay_ms) as f64;
            let delay = pace.min_delay_ms as f64 + span * self.delay_fraction;
            hold(last + delay as i64, WaitReason::Delay);
        }
        for (cap, period, reason) in [
            (pace.max_per_hour, HOUR_MS, WaitReason::HourlyCap),
            (pace.max_per_day, DAY_MS, WaitReason::DailyCap),
        ] {
            if cap == 0 {
                continue;
            }
            let recent: Vec<i64> = self.sends.iter().copied().filter(|&t| t > now_ms - period).collect();
            if recent.len() >= cap as usize {
                // The send that has to leave the period before one more fits.
                let freeing = recent[recent.len() - cap as usize];
                hold(freeing + period, reason);
            }
        }
        match wait {
            None => Decision::Now,
            Some((until_ms, reason)) => Decision::Wait { until_ms, reason },
        }
    }
}

#[cfg(test)]
#[path = "pacer_tests.rs"]
mod tests;
