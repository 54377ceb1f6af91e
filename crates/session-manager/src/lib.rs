//! session-manager
