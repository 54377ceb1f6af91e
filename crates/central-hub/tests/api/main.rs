//! One test binary for the hub: in-process hubs on 127.0.0.1:0 with temporary databases, a
//! contract double of the session-manager, and the real binary.

// Test code: a panic with its message is how a test reports failure.
#![allow(clippy::unwrap_used)]

mod auth;
mod binary;
mod campaigns;
mod fuzz_findings;
mod helpers;
mod inbound;
mod inbound_effects;
mod openapi;
mod receiver;
mod routing;
mod security;
mod store;
mod upstream;
mod webhook_restart;
mod webhooks;
