//! Campaigns: a CRM's personalised message sent to many recipients through the session, exactly
//! once, at a pace WhatsApp tolerates. The recipients table is the queue (`store`, `queue`), the
//! pacer is the session's (`pacer`), the dispatcher follows the session's status (`dispatcher`).
//! See docs/contracts.md ("Campaigns") and docs/operations.md ("Campaign pacing").

pub mod csv;
pub mod dispatcher;
pub mod events;
pub mod intake;
pub mod optout_list;
pub mod optouts;
pub mod pacer;
pub mod queue;
pub mod recipients;
pub mod routes;
pub mod store;
pub mod template;
pub mod views;

use serde::Serialize;

/// The most recipients one campaign may have.
pub const MAX_RECIPIENTS: usize = 100_000;

/// The largest creation body accepted (a 100,000-line CSV with a few variables fits).
pub const CREATE_BODY_LIMIT_BYTES: usize = 32 * 1024 * 1024;

/// The WhatsApp session campaigns send through (the only one for now).
pub const DEFAULT_INSTANCE: &str = shared_contracts::ADMIN_SESSION;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignState {
    Draft,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Completed => "completed",
            CampaignState::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Draft, Self::Running, Self::Paused, Self::Completed, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

pub const RECIPIENT_STATES: [&str; 5] = ["pending", "sending", "sent", "failed", "skipped"];

/// Why a campaign is paused. The dispatcher resumes by itself those it paused for the session,
/// the window or the daily cap; a user's pause and too many failures wait for a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    User,
    SessionNotReady,
    OutsideWindow,
    DailyCap,
    ConsecutiveFailures,
}

impl PauseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::User => "user",
            PauseReason::SessionNotReady => "session_not_ready",
            PauseReason::OutsideWindow => "outside_window",
            PauseReason::DailyCap => "daily_cap",
            PauseReason::ConsecutiveFailures => "consecutive_failures",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::User, Self::SessionNotReady, Self::OutsideWindow, Self::DailyCap, Self::ConsecutiveFailures]
            .into_iter()
            .find(|r| r.as_str() == raw)
    }

    /// The dispatcher lifts this pause on its own when the cause is gone.
    pub fn is_automatic(self) -> bool {
        matches!(self, PauseReason::SessionNotReady | PauseReason::OutsideWindow | PauseReason::DailyCap)
    }

    /// What a person can do about it.
    pub fn hint(self) -> &'static str {
        match self {
            PauseReason::User => "Paused by a user: POST /api/campaigns/{id}/resume continues it",
            PauseReason::SessionNotReady => {
                "The WhatsApp session is not READY: connect it (and scan the QR) from the admin page; \
                 the campaign resumes by itself when it is READY"
            }
            PauseReason::OutsideWindow => {
                "Outside the campaign's send window (in its time zone): it resumes by itself when the window opens"
            }
            PauseReason::DailyCap => {
                "The session sent its daily maximum (CAMPAIGN_MAX_PER_DAY or the campaign's max_per_day): \
                 it resumes by itself as the last 24 hours free up"
            }
            PauseReason::ConsecutiveFailures => {
                "Five sends in a row failed (see last_error): fix the cause (session, manager), then \
                 POST /api/campaigns/{id}/resume"
            }
        }
    }
}

/// Now as Unix milliseconds.
pub fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis(),
    )
    .unwrap_or(i64::MAX)
}
