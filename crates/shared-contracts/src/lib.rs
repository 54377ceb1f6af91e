//! The wire format of the gateway, as described in `docs/contracts.md`.
//!
//! One definition of every body that crosses a process border, used by the session-manager,
//! the central-hub and the end-to-end tests. Field names are the contract the seeds' frontend
//! already relies on, so they are kept as they are (including `alreadyConnected`).
//! Domain logic does not live here: only types, their serde shape, and parsing newtypes
//! that both sides must agree on (a phone number valid for the hub is valid for the manager).
//! The newtypes deserialize through their `parse`, so a body that parses is valid: each service
//! validates a value once, in its JSON extractor, and handles typed values after it.

mod cliente_id;
mod email;
mod error;
mod field_error;
mod health;
mod hub;
mod idempotency_key;
mod inbound;
mod message_text;
mod newtype;
mod phone_number;
mod request_id;
mod session;
mod whatsapp;

pub use cliente_id::ClienteId;
pub use email::{Email, MAX_EMAIL_LEN};
pub use error::{ErrorBody, ErrorCode};
pub use field_error::{FieldError, field_error, from_json_slice};
pub use health::{DatabaseCheck, HealthBody, HubChecks, HubHealth, ManagerCheck};
pub use hub::{LoginRequest, LoginResponse, Role, UserInfo};
pub use idempotency_key::{IdempotencyKey, MAX_IDEMPOTENCY_KEY_LEN};
pub use inbound::{AckLevel, INBOUND_EVENT_NAME, InboundEvent, InboundKind, IncomingMessage, MessageAck};
pub use message_text::{MAX_MESSAGE_CHARS, MessageText};
pub use phone_number::PhoneNumber;
pub use request_id::{MAX_REQUEST_ID_LEN, RequestId};
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
