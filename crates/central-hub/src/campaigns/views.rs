//! What the API answers about a campaign: its settings, recipients per state, send rate,
//! estimated end, and the pause reason with what to do about it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::pacer::{HOUR_MS, Pace, format_clock};
use super::store::Campaign;
use super::{CampaignState, RECIPIENT_STATES, now_ms};
use crate::db::{DbError, Store};

/// Recipients per state, every state present.
pub fn full_counts(counts: Option<&BTreeMap<String, i64>>) -> BTreeMap<&'static str, i64> {
    RECIPIENT_STATES
        .iter()
        .map(|state| (*state, counts.and_then(|c| c.get(*state)).copied().unwrap_or(0)))
        .collect()
}

/// The campaign as JSON, with `counts` and, when `rate_per_hour` is known, the estimate.
pub fn summary(
    c: &Campaign,
    counts: Option<&BTreeMap<String, i64>>,
    rate_per_hour: Option<i64>,
    fastest: &Pace,
) -> Value {
    let counts = full_counts(counts);
    let remaining = counts["pending"] + counts["sending"];
    let done = counts["sent"] + counts["failed"] + counts["skipped"];
    let pace = c.pace.within(fastest);
    // What it really did in the last hour when it has been sending, else what the pace allows.
    let rate = rate_per_hour.filter(|r| *r > 0).map_or_else(|| pace.hourly_rate(), |r| r as f64);
    let estimated_end = match c.state {
        CampaignState::Running | CampaignState::Paused if remaining > 0 && rate.is_finite() && rate > 0.0 => {
            let ms = (remaining as f64 / rate * HOUR_MS as f64) as i64;
            jiff::Timestamp::from_millisecond(now_ms().saturating_add(ms)).ok().map(|t| t.to_string())
        }
        _ => None,
    };
    json!({
        "id": c.id,
        "name": c.name,
        "cliente_id": c.cliente_id,
        "instance": c.instance,
        "template": c.template,
        "state": c.state,
        "pause_reason": c.pause_reason,
        "pause_detail": c.pause_detail,
        "hint": c.pause_reason.map(|r| r.hint()),
        "pace": {
            "min_delay_ms": c.pace.min_delay_ms,
            "max_delay_ms": c.pace.max_delay_ms,
            "max_per_hour": c.pace.max_per_hour,
            "max_per_day": c.pace.max_per_day,
        },
        "effective_pace": {
            "min_delay_ms": pace.min_delay_ms,
            "max_delay_ms": pace.max_delay_ms,
            "max_per_hour": pace.max_per_hour,
            "max_per_day": pace.max_per_day,
        },
        "time_zone": c.time_zone,
        "window": { "start": format_clock(c.window_start_min), "end": format_clock(c.window_end_min) },
        "total": c.total,
        "counts": counts,
        "progress": if c.total > 0 { done as f64 / c.total as f64 } else { 1.0 },
        "rate_per_hour": rate_per_hour,
        "estimated_end": estimated_end,
        "consecutive_failures": c.consecutive_failures,
        "last_error": c.last_error,
        "created_by": c.created_by,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "started_at": c.started_at,
        "finished_at": c.finished_at,
    })
}

/// One campaign's full summary (counts and the last hour's rate read now).
pub async fn detail(store: &Store, c: &Campaign, fastest: &Pace) -> Result<Value, DbError> {
    let counts = store.recipient_counts(&[c.id]).await?;
    let rate = store.campaign_sent_since(c.id, now_ms() - HOUR_MS).await?;
    Ok(summary(c, counts.get(&c.id), Some(rate), fastest))
}

/// Summaries of many campaigns with one count query (no rate).
pub async fn list(store: &Store, campaigns: &[Campaign], fastest: &Pace) -> Result<Vec<Value>, DbError> {
    let ids: Vec<i64> = campaigns.iter().map(|c| c.id).collect();
    let counts = store.recipient_counts(&ids).await?;
    Ok(campaigns.iter().map(|c| summary(c, counts.get(&c.id), None, fastest)).collect())
}
