//! A contract double of the session-manager's HTTP API, for hub-level tests and the benchmark:
//! `/status`, `/events` (SSE of full StatusBody), `/connect`, `/disconnect`, `/clear-session`,
//! `/send`, `/qr-code`, counting every request (`GET /__double/counts`), and a journal of inbound
//! events (incoming messages, acks) served on `/events` like the manager's (`inbound`). It is not a session-manager:
//! the real end-to-end tests use the real one. The `manager-double` binary (`main.rs`) runs it as a
//! process for `scripts/bench-central-hub`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod inbound;

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde_json::{Value, json};
use shared_contracts::{
    ClearSessionResponse, ClienteId, ConnectResponse, DisconnectResponse, ErrorBody, ErrorCode, MessageText,
    PairingCode, PhoneNumber, QrInfo, SendRequest, SendResponse, SentMessage, SessionState, StatusBody,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use inbound::InboundJournal;

/// The SESSION_MANAGER_TOKEN the double requires, like the real manager: on every route but
/// `/health` and `/status` (and its own `/__double/*`), as `Authorization: Bearer` in any case.
pub const MANAGER_TOKEN: &str = "double-manager-token-0123456789abcdef";

/// A message the double's `/send` answers with 429 RATE_LIMITED and `Retry-After: 7`.
pub const RATE_LIMIT_ME: &str = "__rate_limit_me__";

/// How the double behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Speaks the contract.
    #[default]
    Normal,
    /// Accepts connections and never answers.
    Hang,
    /// Answers everything with plain text (not the contract).
    Garbage,
    /// Speaks the contract but has no `/events` (404), so the hub cannot subscribe.
    NoEvents,
}

/// What `/send` received.
#[derive(Clone, Debug)]
pub struct ReceivedSend {
    pub body: SendRequest,
    pub idempotency_key: Option<String>,
    pub request_id: Option<String>,
    pub cliente_id_header: Option<String>,
    pub authorization: Option<String>,
}

/// An idempotency journal: (cliente_id, Idempotency-Key) -> the request (to, message) and its answer.
type Journal = BTreeMap<(Option<ClienteId>, String), ((PhoneNumber, MessageText), SendResponse)>;

#[derive(Default)]
struct Shared {
    counts: Mutex<BTreeMap<String, u64>>,
    sends: Mutex<Vec<ReceivedSend>>,
    disconnects: Mutex<Vec<Value>>,
    /// Answered sends by (cliente_id, Idempotency-Key): the request (to, message) and the answer.
    journal: Mutex<Journal>,
}

#[derive(Clone)]
struct DoubleState {
    shared: Arc<Shared>,
    status: watch::Sender<StatusBody>,
    /// Ends the event streams too, so that a stop really closes every connection.
    stop: CancellationToken,
    inbound: InboundJournal,
}

impl FromRef<DoubleState> for InboundJournal {
    fn from_ref(state: &DoubleState) -> Self {
        state.inbound.clone()
    }
}

pub struct ManagerDouble {
    pub url: String,
    pub addr: SocketAddr,
    state: DoubleState,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub fn status_in(state: SessionState) -> StatusBody {
    let qr = (state == SessionState::QrRequired).then(|| QrInfo {
        base64: "data:image/png;base64,iVBORw0KGgo=".into(),
        url: "2@double-ref,key,identity,secret,platform".into(),
        attempts: 1,
        timestamp: 1_708_876_543_210,
        expires_at: 1_708_876_563_210,
    });
    StatusBody {
        connected: state == SessionState::Ready,
        state,
        session: "admin".into(),
        can_send_messages: state == SessionState::Ready,
        recommended_action: format!("double in {state}"),
        qr,
        phone_number: (state == SessionState::Ready).then(|| "+5491100000000".into()),
        since: "2026-01-01T00:00:00Z".into(),
        last_error: None,
        // Linking by number: a credential exactly like the QR.
        pairing_code: (state == SessionState::QrRequired).then(|| PairingCode {
            code: "ABCD-EFGH".into(),
            phone: "5491155550000".into(),
            attempts: 1,
            expires_at: 1_708_876_723_210,
        }),
        whatsapp: None,
    }
}

impl ManagerDouble {
    pub async fn spawn(mode: Mode) -> Self {
        Self::spawn_on(mode, 0).await
    }

    pub async fn spawn_on(mode: Mode, port: u16) -> Self {
        Self::spawn_with(mode, port, InboundJournal::default()).await
    }

    /// A double serving `journal` (pass a stopped double's [`ManagerDouble::inbound`] to restart
    /// it with the same journal, like a manager restarted on its data dir).
    pub async fn spawn_with(mode: Mode, port: u16, journal: InboundJournal) -> Self {
        let stop = CancellationToken::new();
        let state = DoubleState {
            shared: Arc::new(Shared::default()),
            status: watch::Sender::new(status_in(SessionState::Init)),
            stop: stop.clone(),
            inbound: journal,
        };
        let router = match mode {
            Mode::Normal | Mode::NoEvents => contract_router(state.clone(), mode),
            Mode::Hang => Router::new().fallback(std::future::pending::<&'static str>),
            Mode::Garbage => Router::new().fallback(|| async { "hello, I am not a session-manager" }),
        };
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("the double binds its port");
        let addr = listener.local_addr().expect("double address");
        let shutdown = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
        });
        Self { url: format!("http://{addr}"), addr, state, stop, task }
    }

    /// Stops like a crashed manager would look to the hub: every connection closed, port free.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }

    /// The inbound journal: inject incoming messages and acks with it.
    pub fn inbound(&self) -> &InboundJournal {
        &self.state.inbound
    }

    /// Changes the session status (published on `/events` at once).
    pub fn set_state(&self, state: SessionState) {
        self.state.status.send_replace(status_in(state));
    }

    /// Replaces the whole status (e.g. with a realistic multi-KB QR), published on `/events` at once.
    pub fn set_status(&self, status: StatusBody) {
        self.state.status.send_replace(status);
    }

    /// Requests received on `route` (e.g. `GET /status`).
    pub fn count(&self, route: &str) -> u64 {
        self.state.shared.counts.lock().expect("counts").get(route).copied().unwrap_or(0)
    }

    /// Requests received, all routes together.
    pub fn total(&self) -> u64 {
        self.state.shared.counts.lock().expect("counts").values().sum()
    }

    pub fn sends(&self) -> Vec<ReceivedSend> {
        self.state.shared.sends.lock().expect("sends").clone()
    }

    pub fn disconnect_bodies(&self) -> Vec<Value> {
        self.state.shared.disconnects.lock().expect("disconnects").clone()
    }
}

impl Drop for ManagerDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn contract_router(state: DoubleState, mode: Mode) -> Router {
    let mut router = Router::new()
        .route("/status", get(status))
        .route("/qr-code", get(qr_code))
        .route("/connect", post(connect))
        .route("/disconnect", post(disconnect))
        .route("/clear-session", post(clear_session))
        .route("/send", post(send))
        .route("/__double/counts", get(counts))
        .route("/__double/inbound", post(inbound::inject));
    if mode == Mode::Normal {
        router = router.route("/events", get(events));
    }
    router.layer(axum::middleware::from_fn(require_token)).with_state(state)
}

async fn require_token(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = request.uri().path();
    let open = path == "/health" || path == "/status" || path.starts_with("/__double/");
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if open || given == Some(MANAGER_TOKEN) {
        return next.run(request).await;
    }
    error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, "missing or wrong bearer token", json!({}))
}

impl DoubleState {
    fn hit(&self, route: &str) {
        *self.shared.counts.lock().expect("counts").entry(route.to_owned()).or_default() += 1;
    }
}

fn error(status: StatusCode, code: ErrorCode, message: &str, detail: Value) -> Response {
    let body = ErrorBody {
        success: false,
        error: message.into(),
        code,
        detail,
        hint: format!("double hint for {code}"),
        request_id: None,
        timestamp: "2026-01-01T00:00:00Z".into(),
    };
    (status, Json(body)).into_response()
}

async fn status(State(s): State<DoubleState>) -> Json<StatusBody> {
    s.hit("GET /status");
    Json(s.status.borrow().clone())
}

async fn qr_code(State(s): State<DoubleState>) -> Response {
    s.hit("GET /qr-code");
    let current = s.status.borrow().clone();
    match current.qr {
        Some(qr) => Json(qr).into_response(),
        None => error(StatusCode::NOT_FOUND, ErrorCode::NoQr, "no QR", json!({ "state": current.state })),
    }
}

async fn connect(State(s): State<DoubleState>) -> Json<ConnectResponse> {
    s.hit("POST /connect");
    let before = s.status.borrow().state;
    let already = before.is_live();
    if !already {
        s.status.send_replace(status_in(SessionState::QrRequired));
    }
    Json(ConnectResponse {
        success: true,
        message: "Connecting".into(),
        session: "admin".into(),
        state: if already { before } else { SessionState::Connecting },
        already_connected: already,
    })
}

async fn disconnect(State(s): State<DoubleState>, body: Option<Json<Value>>) -> Json<DisconnectResponse> {
    s.hit("POST /disconnect");
    s.shared.disconnects.lock().expect("disconnects").push(body.map_or(Value::Null, |Json(v)| v));
    s.status.send_replace(status_in(SessionState::Disconnected));
    Json(DisconnectResponse { success: true, message: "Disconnected".into() })
}

async fn clear_session(State(s): State<DoubleState>) -> Json<ClearSessionResponse> {
    s.hit("POST /clear-session");
    s.status.send_replace(status_in(SessionState::Init));
    Json(ClearSessionResponse {
        success: true,
        message: "Session cleared".into(),
        state: SessionState::Init,
        backup: None,
        backup_details: None,
    })
}

async fn send(State(s): State<DoubleState>, headers: HeaderMap, Json(body): Json<SendRequest>) -> Response {
    s.hit("POST /send");
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    s.shared.sends.lock().expect("sends").push(ReceivedSend {
        body: body.clone(),
        idempotency_key: header("idempotency-key"),
        request_id: header("x-request-id"),
        cliente_id_header: header("x-cliente-id"),
        authorization: header("authorization"),
    });
    if body.message.as_str() == RATE_LIMIT_ME {
        let mut response =
            error(StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited, "too many sends", json!({}));
        response.headers_mut().insert("retry-after", axum::http::HeaderValue::from(7));
        return response;
    }
    let key = header("idempotency-key").map(|k| (body.cliente_id, k));
    if let Some(key) = &key
        && let Some((request, answer)) = s.shared.journal.lock().expect("journal").get(key).cloned()
    {
        // Like the manager: keys are scoped by caller, and reusing one for another message is a 422.
        if request != (body.to.clone(), body.message.clone()) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used for another message",
                json!({ "key": key.1 }),
            );
        }
        let mut response = Json(answer).into_response();
        response.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
        return response;
    }
    let state = s.status.borrow().state;
    if state != SessionState::Ready {
        return error(
            StatusCode::CONFLICT,
            ErrorCode::SessionNotReady,
            &format!("The session is not ready to send (state {state})"),
            json!({ "state": state }),
        );
    }
    let answer = SendResponse {
        success: true,
        message: "Message sent".into(),
        data: SentMessage {
            message_id: s.inbound.take_send_id(body.to.as_str()),
            to: body.to.to_string(),
            timestamp: 1_708_876_543_210,
        },
    };
    if let Some(key) = key {
        s.shared.journal.lock().expect("journal").insert(key, ((body.to, body.message), answer.clone()));
    }
    Json(answer).into_response()
}

async fn counts(State(s): State<DoubleState>) -> Json<BTreeMap<String, u64>> {
    Json(s.shared.counts.lock().expect("counts").clone())
}

async fn events(
    State(s): State<DoubleState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    s.hit("GET /events");
    let inbound = s.inbound.stream(inbound::resume_point(&headers, uri.query()), s.stop.clone());
    let mut rx = s.status.subscribe();
    rx.mark_changed();
    let stop = s.stop.clone();
    let stream = stream::unfold(rx, move |mut rx| {
        let stop = stop.clone();
        async move {
            tokio::select! {
                () = stop.cancelled() => None,
                changed = rx.changed() => {
                    changed.ok()?;
                    let status = rx.borrow_and_update().clone();
                    let event = Event::default().event("status").json_data(&status).ok()?;
                    Some((Ok(event), rx))
                }
            }
        }
    });
    Sse::new(stream::select(stream, inbound)).keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
}
