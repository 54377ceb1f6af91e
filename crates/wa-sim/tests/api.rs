//! The simulator's HTTP API without a browser: the control API, and the page API driven by hand the
//! way the page's script drives it (event stream, reports, login checks, sent messages).

// Test code: a panic with its message is how a failure is reported.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wa_sim::{SimConfig, app};

const DESKTOP_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(lossy(&bytes)));
    (status, json)
}

fn lossy(bytes: &Bytes) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A page's open event stream, read one command at a time.
struct EventStream(Body);

impl EventStream {
    async fn open(app: &Router, page: &str) -> Self {
        let uri = format!("/__sim/api/events?page={page}");
        let response = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        EventStream(response.into_body())
    }

    /// The next command (keep-alive comments skipped), within a deadline.
    async fn next(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.0.frame())
                .await
                .expect("no event from the simulator within 5 s")
                .expect("the event stream ended")
                .expect("the event stream failed");
            let Ok(data) = frame.into_data() else { continue };
            let text = lossy(&data);
            if let Some(json) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
                return serde_json::from_str(json).unwrap();
            }
        }
    }
}

async fn report(app: &Router, page: &str, seq: u64, state: &str, qr: Option<&str>) {
    let body = json!({"page": page, "seq": seq, "socket_state": state, "ref": qr.map(|_| "2@ref"),
        "qr": qr, "phone": null});
    let (status, answer) = call(app, "POST", "/__sim/api/report", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn state_with_no_page_open_is_empty() {
    let app = app(SimConfig::default());
    let (status, state) = call(&app, "GET", "/__sim/state", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        state,
        json!({"socket_state": null, "ref": null, "qr": null, "phone": null, "pairing_code": null,
               "pairing_phone": null, "pages": 0})
    );
}

#[tokio::test]
async fn scan_logout_and_conflict_without_a_page_are_refused_with_409() {
    let app = app(SimConfig::default());
    let (status, body) = call(&app, "POST", "/__sim/scan", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "no_qr_page");
    assert!(body["hint"].as_str().unwrap().contains("QR"), "{body}");
    let (status, body) = call(&app, "POST", "/__sim/logout", None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("not_logged_in")));
    let (status, body) = call(&app, "POST", "/__sim/conflict", None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("no_connected_page")));
}

#[tokio::test]
async fn bad_bodies_and_unknown_routes_get_json_errors() {
    let app = app(SimConfig::default());
    let (status, body) = call(&app, "PUT", "/__sim/config", Some(json!({"send_latency_ms": "slow"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "bad_request");
    assert!(body["error"].as_str().unwrap().contains("invalid JSON body"), "{body}");
    let (status, body) = call(&app, "POST", "/__sim/scan", Some(json!({"phone": "+54 911"}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    let (status, body) = call(&app, "GET", "/__sim/nothing", None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
async fn a_wrong_pairing_code_is_refused_and_lid_numbers_are_reported_as_such() {
    let app = app(SimConfig { lid_numbers: vec!["333".into()], ..SimConfig::default() });
    let (status, body) = call(&app, "POST", "/__sim/pair", Some(json!({"code": "ABCD-EFGH"}))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("wrong_pairing_code"))
    );
    let (status, body) = call(&app, "POST", "/__sim/pair", Some(json!({"phone": "1"}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    let (_, answer) = call(&app, "GET", "/__sim/api/exists?user=333", None).await;
    assert_eq!(answer, json!({"exists": true, "lid": true}));
    let (status, _) = call(&app, "PUT", "/__sim/config", Some(json!({"lid_numbers": []}))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, answer) = call(&app, "GET", "/__sim/api/exists?user=333", None).await;
    assert_eq!(answer, json!({"exists": true, "lid": false}));
}

#[tokio::test]
async fn config_patch_changes_which_numbers_exist() {
    let app = app(SimConfig { unknown_numbers: vec!["111".into()], ..SimConfig::default() });
    let (_, answer) = call(&app, "GET", "/__sim/api/exists?user=111", None).await;
    assert_eq!(answer, json!({"exists": false, "lid": false}));
    let patch = json!({"unknown_numbers": ["222"]});
    let (status, effective) = call(&app, "PUT", "/__sim/config", Some(patch)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(effective, json!({"unknown_numbers": ["222"], "send_latency_ms": 0}));
    let (_, answer) = call(&app, "GET", "/__sim/api/exists?user=111", None).await;
    assert_eq!(answer, json!({"exists": true, "lid": false}));
    let (_, answer) = call(&app, "GET", "/__sim/api/exists?user=222", None).await;
    assert_eq!(answer, json!({"exists": false, "lid": false}));
    let (_, effective) = call(&app, "PUT", "/__sim/config", Some(json!({"send_latency_ms": 5}))).await;
    assert_eq!(effective, json!({"unknown_numbers": ["222"], "send_latency_ms": 5}));
}

#[tokio::test]
async fn a_scan_reaches_the_page_showing_a_qr_and_grants_a_login_that_a_logout_revokes() {
    let app = app(SimConfig::default());
    let mut events = EventStream::open(&app, "p1").await;
    assert_eq!(events.next().await, json!({"type": "hello"}));
    report(&app, "p1", 1, "UNPAIRED", Some("2@ref,a,b,c,1")).await;
    let (_, state) = call(&app, "GET", "/__sim/state", None).await;
    assert_eq!(state["socket_state"], "UNPAIRED");
    assert_eq!(state["qr"], "2@ref,a,b,c,1");
    assert_eq!(state["pages"], 1);

    let (status, body) = call(&app, "POST", "/__sim/scan", Some(json!({"phone": "5491199999999"}))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));
    let scan = events.next().await;
    assert_eq!(scan["type"], "scan");
    assert_eq!(scan["phone"], "5491199999999");
    let token = scan["token"].as_str().unwrap().to_owned();
    let (_, check) = call(&app, "POST", "/__sim/api/login", Some(json!({"token": token}))).await;
    assert_eq!(check, json!({"valid": true, "phone": "5491199999999"}));

    report(&app, "p1", 2, "CONNECTED", None).await;
    let message = json!({"token": token, "to": "5491123456789", "text": "hola", "id": "true_x@c.us_3EB0"});
    let (status, _) = call(&app, "POST", "/__sim/api/messages", Some(message)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, messages) = call(&app, "GET", "/__sim/messages", None).await;
    assert_eq!(messages.as_array().unwrap().len(), 1);
    assert_eq!(messages[0]["to"], "5491123456789");
    assert_eq!(messages[0]["text"], "hola");
    assert_eq!(messages[0]["id"], "true_x@c.us_3EB0");
    assert!(messages[0]["timestamp"].as_i64().unwrap() > 1_700_000_000_000);

    let (status, _) = call(&app, "POST", "/__sim/conflict", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events.next().await, json!({"type": "conflict"}));

    let (status, _) = call(&app, "POST", "/__sim/logout", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events.next().await, json!({"type": "logout"}));
    let (_, check) = call(&app, "POST", "/__sim/api/login", Some(json!({"token": token}))).await;
    assert_eq!(check["valid"], false);
    let message = json!({"token": token, "to": "5491123456789", "text": "late", "id": "x"});
    let (status, body) = call(&app, "POST", "/__sim/api/messages", Some(message)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_login")));
}

#[tokio::test]
async fn a_closed_event_stream_removes_the_page() {
    let app = app(SimConfig::default());
    let mut events = EventStream::open(&app, "gone").await;
    events.next().await;
    report(&app, "gone", 1, "UNPAIRED", Some("2@x")).await;
    assert_eq!(call(&app, "GET", "/__sim/state", None).await.1["pages"], 1);
    drop(events);
    let (status, body) = call(&app, "GET", "/__sim/state", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["pages"], 0);
    let late = json!({"page": "gone", "seq": 2, "socket_state": "UNPAIRED"});
    let (status, body) = call(&app, "POST", "/__sim/api/report", Some(late)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("unknown_page")));
}

#[tokio::test]
async fn the_page_is_refused_to_headless_chrome_unless_allowed() {
    let headless = DESKTOP_UA.replace("Chrome/", "HeadlessChrome/");
    for (allow, ua, wants_script) in
        [(false, headless.as_str(), false), (false, DESKTOP_UA, true), (true, headless.as_str(), true)]
    {
        let app = app(SimConfig { allow_headless_ua: allow, ..SimConfig::default() });
        let request = Request::get("/").header(header::USER_AGENT, ua).body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let html = lossy(&response.into_body().collect().await.unwrap().to_bytes());
        assert_eq!(html.contains("window.__SIM_CONFIG"), wants_script, "allow={allow} ua={ua}");
        assert_eq!(html.contains("works with Google Chrome 60+"), !wants_script);
    }
}

#[tokio::test]
async fn the_qr_image_decodes_to_its_data() {
    let app = app(SimConfig::default());
    let data = "2@abc,def,ghi,jkl,1";
    let uri = format!("/__sim/qr.png?data={}", data.replace(',', "%2C"));
    let response = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
    let png = response.into_body().collect().await.unwrap().to_bytes();
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    assert_eq!(grids[0].decode().unwrap().1, data);
    let (status, body) = call(&app, "GET", "/__sim/qr.png?data=", None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
}

#[tokio::test]
async fn a_spawned_simulator_stops_even_with_a_page_stream_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = wa_sim::spawn(SimConfig { port: 0, ..SimConfig::default() }).await.unwrap();
    assert_eq!(sim.url(), format!("http://127.0.0.1:{}", sim.addr().port()));
    let addr = sim.addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /__sim/api/events?page=t HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    tokio::time::timeout(Duration::from_secs(10), sim.shutdown()).await.expect("shutdown hung");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening after shutdown");
}

#[tokio::test]
async fn incoming_messages_and_acks_go_to_a_synced_page_and_wait_for_one() {
    let config = SimConfig {
        ack_delivered_ms: None,
        ack_read_ms: None,
        history_messages: 2,
        lid_numbers: vec!["34611222333".into()],
        ..SimConfig::default()
    };
    let app = app(config);
    let incoming = |body: Value| call(&app, "POST", "/__sim/incoming", Some(body));
    let (status, body) = incoming(json!({"from": "34600111222", "text": "hola"})).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("no_connected_page")), "{body}");
    for bad in [
        json!({"from": "+34 600", "text": "x"}),
        json!({"from": "1", "type": "chat"}),
        json!({"from": "1", "type": "Image!"}),
    ] {
        let (status, body) = incoming(bad.clone()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
            "{bad}: {body}"
        );
    }

    let mut events = EventStream::open(&app, "p1").await;
    assert_eq!(events.next().await, json!({"type": "hello"}));
    report(&app, "p1", 1, "UNPAIRED", Some("2@ref,a,b,c,1")).await;
    call(&app, "POST", "/__sim/scan", None).await;
    let token = events.next().await["token"].as_str().unwrap().to_owned();
    report(&app, "p1", 2, "CONNECTED", None).await;
    let (status, _) = incoming(json!({"from": "34600111222", "text": "hola"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a page still syncing gets no new message");

    let message =
        json!({"token": token, "to": "34600111222", "text": "hola", "id": "true_34600111222@c.us_3EB0AA"});
    call(&app, "POST", "/__sim/api/messages", Some(message)).await;
    let ack = json!({"message_id": "true_34600111222@c.us_3EB0AA", "ack": "delivered"});
    let (status, body) = call(&app, "POST", "/__sim/ack", Some(ack)).await;
    assert_eq!((status, &body["pages"]), (StatusCode::OK, &json!(0)), "pending: {body}");
    let (_, messages) = call(&app, "GET", "/__sim/messages", None).await;
    assert_eq!(messages[0]["ack"], 2);

    // The login's history: made-up messages and the sent one at the level a page last saw.
    let (_, history) = call(&app, "POST", "/__sim/api/history", Some(json!({"token": token}))).await;
    let history = history["messages"].as_array().unwrap();
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(history.iter().all(|m| m["is_new"] == false), "{history:?}");
    assert_eq!((&history[2]["from_me"], &history[2]["ack"]), (&json!(true), &json!(1)));

    let synced = json!({"page": "p1", "seq": 3, "socket_state": "CONNECTED", "synced": true});
    call(&app, "POST", "/__sim/api/report", Some(synced)).await;
    assert_eq!(events.next().await, json!({"type": "ack", "id": "true_34600111222@c.us_3EB0AA", "ack": 2}));

    let (status, body) =
        incoming(json!({"from": "34611222333", "type": "image", "caption": "factura"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let pushed = events.next().await;
    assert_eq!(pushed["type"], "incoming");
    let message = &pushed["message"];
    assert_eq!((&message["id"], &message["chat"]), (&body["message_id"], &json!("2033322211643@lid")));
    assert_eq!(
        (&message["body"], &message["caption"], &message["is_new"]),
        (&Value::Null, &json!("factura"), &json!(true))
    );
    let (_, delivered) = call(&app, "GET", "/__sim/incoming", None).await;
    let news: Vec<bool> = delivered.as_array().unwrap().iter().map(|m| m["new"] == true).collect();
    assert_eq!(news, [false, false, true]);

    let (status, body) =
        call(&app, "POST", "/__sim/ack", Some(json!({"message_id": "nope", "ack": "read"}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_message")), "{body}");
    let bad = json!({"message_id": "true_34600111222@c.us_3EB0AA", "ack": "seen"});
    let (status, _) = call(&app, "POST", "/__sim/ack", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
