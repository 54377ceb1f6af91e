//! The hub's logs: `service-kit`'s subscriber (stderr, JSON with `LOG_FORMAT=json`, colours only
//! at a terminal) at INFO unless `RUST_LOG` says otherwise.

pub fn init() {
    service_kit::telemetry::init("info");
}
