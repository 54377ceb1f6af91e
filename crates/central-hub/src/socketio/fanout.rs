//! From the status feed to the rooms: each change of the session is turned into its events once
//! and broadcast once per room (socketioxide encodes a broadcast packet once for all its sockets).
//! The feed follows the manager's own event stream, so socket.io clients cost the manager nothing.

use std::sync::Arc;

use socketioxide::SocketIo;

use super::events::{
    CONNECTION_ERROR, ConnectionError, QR_CODE, QR_EXPIRED, QR_ROOM, QrCode, QrExpired, SESSION_ROOM,
    SESSION_STATUS, SessionStatus,
};
use crate::feed::{CachedStatus, FeedSnapshot};

/// One event to broadcast.
#[derive(Debug)]
pub enum Emission {
    Status(SessionStatus),
    /// A status that shows a new QR.
    Qr(Arc<CachedStatus>),
    QrExpired(QrExpired),
    /// The hub lost the manager's event stream.
    FeedDown,
}

/// What was last broadcast, so only changes go out (the feed also repeats a status on reconnect).
#[derive(Debug, Default)]
pub struct Changes {
    live: bool,
    status: Option<SessionStatus>,
    /// The QR last sent (its raw string and attempt number).
    qr: Option<(String, u32)>,
    /// When the last `qr-expired` happened (the status's `last_error.at`).
    expired_at: Option<String>,
}

impl Changes {
    /// The events a new snapshot of the feed calls for.
    pub fn update(&mut self, snapshot: &FeedSnapshot) -> Vec<Emission> {
        if !snapshot.live {
            let was_live = std::mem::replace(&mut self.live, false);
            // Whatever comes when the stream is back is news: send it even if it did not change.
            self.status = None;
            return if was_live { vec![Emission::FeedDown] } else { Vec::new() };
        }
        self.live = true;
        let Some(cached) = &snapshot.status else { return Vec::new() };
        let body = &cached.body;
        let mut out = Vec::new();
        let status = SessionStatus::of(body);
        if self.status.as_ref() != Some(&status) {
            self.status = Some(status.clone());
            out.push(Emission::Status(status));
        }
        let qr = body.qr.as_ref().filter(|_| QrCode::of(body).is_some());
        let qr_key = qr.map(|qr| (qr.url.clone(), qr.attempts));
        if qr_key.is_some() && qr_key != self.qr {
            out.push(Emission::Qr(cached.clone()));
        }
        self.qr = qr_key;
        if let Some((expired, at)) = QrExpired::of(body)
            && self.expired_at.as_deref() != Some(at)
        {
            self.expired_at = Some(at.to_owned());
            out.push(Emission::QrExpired(expired));
        }
        out
    }
}

/// Broadcasts one event to its room.
pub async fn broadcast(io: &SocketIo, emission: &Emission) {
    let sent = match emission {
        Emission::Status(status) => io.to(SESSION_ROOM).emit(SESSION_STATUS, status).await,
        Emission::Qr(cached) => match QrCode::of(&cached.body) {
            Some(qr) => io.to(QR_ROOM).emit(QR_CODE, &qr).await,
            None => Ok(()),
        },
        Emission::QrExpired(expired) => io.to(QR_ROOM).emit(QR_EXPIRED, expired).await,
        Emission::FeedDown => io.to(SESSION_ROOM).emit(CONNECTION_ERROR, &ConnectionError::feed_down()).await,
    };
    if let Err(e) = sent {
        // Per-socket failures (a closed socket, a full buffer): the others got it.
        tracing::debug!(error.message = %e, "a socket.io broadcast did not reach every socket");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shared_contracts::StatusBody;

    fn snapshot(live: bool, body: serde_json::Value) -> FeedSnapshot {
        let mut full = json!({
            "connected": false, "session": "admin", "can_send_messages": false, "recommended_action": "",
            "phone_number": null, "since": "2026-01-01T00:00:00Z", "last_error": null
        });
        if let (Some(full), Some(body)) = (full.as_object_mut(), body.as_object()) {
            full.extend(body.clone());
        }
        let body: StatusBody = serde_json::from_value(full).unwrap();
        FeedSnapshot { live, status: Some(Arc::new(CachedStatus::new(body).unwrap())) }
    }

    fn qr(url: &str, attempts: u32) -> serde_json::Value {
        json!({"state": "QR_REQUIRED", "qr": {"url": url, "base64": "data:image/png;base64,AA",
               "attempts": attempts, "timestamp": 0, "expires_at": 1}})
    }

    fn names(emissions: &[Emission]) -> Vec<&'static str> {
        emissions
            .iter()
            .map(|e| match e {
                Emission::Status(s) => s.status,
                Emission::Qr(_) => "qr",
                Emission::QrExpired(_) => "qr-expired",
                Emission::FeedDown => "feed-down",
            })
            .collect()
    }

    #[test]
    fn each_change_is_sent_once_and_repeats_are_not() {
        let mut changes = Changes::default();
        assert_eq!(names(&changes.update(&FeedSnapshot::default())), Vec::<&str>::new(), "not live yet");
        assert_eq!(names(&changes.update(&snapshot(true, json!({"state": "CONNECTING"})))), ["connecting"]);
        assert_eq!(
            names(&changes.update(&snapshot(true, json!({"state": "CONNECTING"})))),
            Vec::<&str>::new()
        );
        assert_eq!(names(&changes.update(&snapshot(true, qr("2@a", 1)))), ["qr_required", "qr"]);
        assert_eq!(
            names(&changes.update(&snapshot(true, qr("2@b", 2)))),
            ["qr"],
            "a rotation is a new QR only"
        );
        assert_eq!(names(&changes.update(&snapshot(true, qr("2@b", 2)))), Vec::<&str>::new());
        let exhausted = json!({"state": "DISCONNECTED", "last_error": {"code": "QR_ATTEMPTS_EXHAUSTED",
            "message": "No scan.", "hint": "Connect again.", "at": "2026-01-01T00:01:00Z"}});
        assert_eq!(
            names(&changes.update(&snapshot(true, exhausted.clone()))),
            ["disconnected", "qr-expired"]
        );
        assert_eq!(names(&changes.update(&snapshot(true, exhausted.clone()))), Vec::<&str>::new());
        assert_eq!(names(&changes.update(&snapshot(true, json!({"state": "READY"})))), ["connected"]);
    }

    #[test]
    fn a_lost_stream_is_said_once_and_the_status_is_sent_again_when_it_is_back() {
        let mut changes = Changes::default();
        let ready = snapshot(true, json!({"state": "READY"}));
        assert_eq!(names(&changes.update(&ready)), ["connected"]);
        let down = FeedSnapshot { live: false, ..ready.clone() };
        assert_eq!(names(&changes.update(&down)), ["feed-down"]);
        assert_eq!(names(&changes.update(&down)), Vec::<&str>::new());
        assert_eq!(names(&changes.update(&ready)), ["connected"]);
    }
}
