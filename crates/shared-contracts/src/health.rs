//! Health bodies.

use serde::{Deserialize, Serialize};

use crate::{SessionState, WhatsappInventory};

/// `GET /health` of the session-manager (never touches the browser).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthBody {
    /// `ok`.
    pub status: String,
    pub service: String,
    /// RFC 3339.
    pub timestamp: String,
    /// The WhatsApp Web build of the last page loaded and its inventory (absent before the first load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsappInventory>,
}

/// `GET /health` of the central-hub: `status` is `ok` or `degraded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HubHealth {
    pub status: String,
    pub service: String,
    pub timestamp: String,
    pub checks: HubChecks,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HubChecks {
    pub database: DatabaseCheck,
    pub session_manager: ManagerCheck,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatabaseCheck {
    pub ok: bool,
    /// `sqlite` or `postgres`.
    pub backend: String,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManagerCheck {
    pub ok: bool,
    /// The `SESSION_MANAGER_URL` the hub uses, so a wrong port is visible at a glance.
    pub url: String,
    pub latency_ms: Option<u64>,
    pub state: Option<SessionState>,
    /// Which step failed and why (`connection refused at http://127.0.0.1:3011 ...`).
    pub error: Option<String>,
    /// `WhatsApp Web build X: compatible` / `incompatible (missing: ...)`, once the manager loaded a page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<String>,
}
