//! The wire format of the gateway, as described in `docs/contracts.md`.
//!
//! One definition of every body that crosses a process border, used by the session-manager,
//! the central-hub and the end-to-end tests. Field names are the contract the seeds' frontend
//! already relies on, so they are kept as they are (including `alreadyConnected`).
//! Domain logic does not live here: only types, their serde shape, and parsing newtypes
//! that both sides must agree on (a phone number valid for the hub is valid for the manager).

mod error;
mod health;
mod hub;
mod phone;
mod session;
mod whatsapp;

pub use error::{ErrorBody, ErrorCode};
pub use health::{DatabaseCheck, HealthBody, HubChecks, HubHealth, ManagerCheck};
pub use hub::{LoginRequest, LoginResponse, Role, UserInfo};
pub use phone::{ClienteId, MAX_MESSAGE_CHARS, MessageText, PhoneNumber};
pub use session::{
    ClearSessionResponse, ConnectRequest, ConnectResponse, DisconnectRequest, DisconnectResponse, LastError,
    PairingCode, ProfileBackup, QrInfo, SendRequest, SendResponse, SentMessage, SessionState, StatusBody,
};

pub use whatsapp::{InternalLocation, WhatsappInventory};

/// The name of the one session this gateway holds.
pub const ADMIN_SESSION: &str = "admin";

/// Header carrying the request id across hub and manager.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Optional metadata header naming the CRM client a request is made for.
pub const CLIENTE_ID_HEADER: &str = "x-cliente-id";

/// Header a sender sets so that a retried send is never delivered twice.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
