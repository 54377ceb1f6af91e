//! Unit tests of the pacer on an injected clock.

use super::*;

/// Unix milliseconds of an RFC 3339 time.
fn at(rfc3339: &str) -> i64 {
    rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
}

fn always() -> SendWindow {
    SendWindow::new("UTC", 0, 1440).unwrap()
}

const BA: &str = "America/Argentina/Buenos_Aires";

#[test]
fn the_delay_after_a_send_is_drawn_between_min_and_max() {
    let pace = Pace::DEFAULT;
    let t0 = at("2026-11-25T15:00:00Z");
    for (fraction, delay) in [(0.0, 8_000), (0.5, 14_000), (1.0, 20_000)] {
        let mut pacer = Pacer::new();
        pacer.record_send(t0, fraction);
        assert_eq!(
            pacer.decide(t0 + 1, &pace, &always()),
            Decision::Wait { until_ms: t0 + delay, reason: WaitReason::Delay }
        );
        assert_eq!(pacer.decide(t0 + delay, &pace, &always()), Decision::Now);
    }
    assert_eq!(Pacer::new().decide(t0, &pace, &always()), Decision::Now, "the first send waits for nothing");
}

#[test]
fn a_zero_pace_never_waits() {
    let zero = Pace { min_delay_ms: 0, max_delay_ms: 0, max_per_hour: 0, max_per_day: 0 };
    let mut pacer = Pacer::new();
    let t0 = at("2026-11-25T15:00:00Z");
    for i in 0..5_000 {
        assert_eq!(pacer.decide(t0 + i, &zero, &always()), Decision::Now);
        pacer.record_send(t0 + i, 0.7);
    }
}

#[test]
fn the_hourly_cap_waits_until_the_oldest_send_of_the_hour_leaves_it() {
    let pace = Pace { min_delay_ms: 0, max_delay_ms: 0, max_per_hour: 200, max_per_day: 1_000 };
    let t0 = at("2026-11-25T15:00:00Z");
    let mut pacer = Pacer::new();
    for i in 0..200 {
        assert_eq!(pacer.decide(t0 + i * 1_000, &pace, &always()), Decision::Now, "send {i}");
        pacer.record_send(t0 + i * 1_000, 0.0);
    }
    let now = t0 + 200 * 1_000;
    assert_eq!(
        pacer.decide(now, &pace, &always()),
        Decision::Wait { until_ms: t0 + HOUR_MS, reason: WaitReason::HourlyCap }
    );
    assert_eq!(pacer.counts(now), (200, 200));
    assert_eq!(pacer.decide(t0 + HOUR_MS, &pace, &always()), Decision::Now);
}

#[test]
fn the_daily_cap_holds_for_the_rest_of_the_24_hours() {
    let pace = Pace { min_delay_ms: 0, max_delay_ms: 0, max_per_hour: 0, max_per_day: 1_000 };
    let t0 = at("2026-11-25T00:00:00Z");
    let mut pacer = Pacer::new();
    // 1,000 sends spread over 20 hours.
    for i in 0..1_000 {
        pacer.record_send(t0 + i * 72_000, 0.0);
    }
    let now = t0 + 21 * HOUR_MS;
    assert_eq!(
        pacer.decide(now, &pace, &always()),
        Decision::Wait { until_ms: t0 + DAY_MS, reason: WaitReason::DailyCap }
    );
    assert_eq!(pacer.decide(t0 + DAY_MS, &pace, &always()), Decision::Now);
    // History reloaded from the database counts the same.
    let mut reloaded = Pacer::new();
    reloaded.set_history((0..1_000).rev().map(|i| t0 + i * 72_000).collect());
    assert_eq!(reloaded.decide(now, &pace, &always()), pacer.decide(now, &pace, &always()));
}

#[test]
fn the_window_is_in_the_campaigns_time_zone() {
    // 09:00–20:00 in Buenos Aires (UTC-3, no DST).
    let window = SendWindow::new(BA, 9 * 60, 20 * 60).unwrap();
    let pace = Pace { min_delay_ms: 0, max_delay_ms: 0, max_per_hour: 0, max_per_day: 0 };
    let pacer = Pacer::new();
    // 11:00 UTC is 08:00 there: closed until 12:00 UTC.
    assert_eq!(
        pacer.decide(at("2026-11-25T11:00:00Z"), &pace, &window),
        Decision::Wait { until_ms: at("2026-11-25T12:00:00Z"), reason: WaitReason::OutsideWindow }
    );
    assert_eq!(pacer.decide(at("2026-11-25T12:00:00Z"), &pace, &window), Decision::Now);
    assert_eq!(pacer.decide(at("2026-11-25T22:59:59Z"), &pace, &window), Decision::Now);
    // 23:00 UTC is 20:00 there: closed until 09:00 the next day.
    assert_eq!(
        pacer.decide(at("2026-11-25T23:00:00Z"), &pace, &window),
        Decision::Wait { until_ms: at("2026-11-26T12:00:00Z"), reason: WaitReason::OutsideWindow }
    );
    // The same UTC instant is inside a Madrid window of 09:00–20:00 (UTC+1 in November).
    let madrid = SendWindow::new("Europe/Madrid", 9 * 60, 20 * 60).unwrap();
    assert!(madrid.contains(at("2026-11-25T11:00:00Z")));
}

#[test]
fn a_window_across_midnight_and_bad_windows() {
    let night = SendWindow::new("UTC", 22 * 60, 6 * 60).unwrap();
    assert!(night.contains(at("2026-11-25T23:30:00Z")));
    assert!(night.contains(at("2026-11-26T05:59:00Z")));
    assert!(!night.contains(at("2026-11-26T06:00:00Z")));
    assert_eq!(night.next_open_ms(at("2026-11-26T12:00:00Z")), at("2026-11-26T22:00:00Z"));
    assert!(SendWindow::new("Mars/Olympus", 0, 1440).unwrap_err().contains("IANA"));
    assert!(SendWindow::new("UTC", 600, 600).unwrap_err().contains("empty"));
    assert_eq!(parse_clock("24:00"), Ok(1440));
    assert_eq!(parse_clock("9:05"), Ok(545));
    assert!(parse_clock("24:01").is_err() && parse_clock("12").is_err() && parse_clock("10:60").is_err());
}

#[test]
fn rate_limited_holds_every_campaign_and_the_latest_limit_wins() {
    let pace = Pace::DEFAULT;
    let t0 = at("2026-11-25T15:00:00Z");
    let mut pacer = Pacer::new();
    pacer.record_send(t0, 0.0);
    pacer.hold(t0 + 60_000);
    assert_eq!(
        pacer.decide(t0 + 1, &pace, &always()),
        Decision::Wait { until_ms: t0 + 60_000, reason: WaitReason::RateLimited }
    );
    assert_eq!(pacer.decide(t0 + 60_000, &pace, &always()), Decision::Now);
}

#[test]
fn a_campaign_may_only_ask_for_a_slower_pace_than_the_operators() {
    let fastest = Pace::DEFAULT;
    let slower = Pace { min_delay_ms: 30_000, max_delay_ms: 60_000, max_per_hour: 50, max_per_day: 300 };
    assert_eq!(slower.check_against(&fastest), Ok(()));
    assert_eq!(slower.within(&fastest), slower);
    let faster = Pace { min_delay_ms: 1_000, ..slower };
    assert!(faster.check_against(&fastest).unwrap_err().contains("CAMPAIGN_MIN_DELAY_MS"));
    assert_eq!(faster.within(&fastest).min_delay_ms, 8_000);
    let uncapped = Pace { max_per_hour: 0, ..slower };
    assert!(uncapped.check_against(&fastest).unwrap_err().contains("CAMPAIGN_MAX_PER_HOUR"));
    // An operator without caps (the test setting) lets the campaign's own caps apply.
    let zero = Pace { min_delay_ms: 0, max_delay_ms: 0, max_per_hour: 0, max_per_day: 0 };
    assert_eq!(slower.within(&zero), slower);
    assert!((Pace::DEFAULT.hourly_rate() - 41.666).abs() < 0.01);
}
