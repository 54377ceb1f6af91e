//! Campaigns through the hub's API against the manager double: creation and its validation,
//! who may see what, the dispatcher sending each recipient exactly once (SQLite, and two hubs on
//! one PostgreSQL), pausing while the session is not READY, the opt-out list.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use central_hub::config::ServeArgs;
use serde_json::{Value, json};
use shared_contracts::{Role, SessionState};

use crate::helpers::{TestApp, spawn_app_with, status_and_json};
use manager_double::{ManagerDouble, Mode};

/// The test setting: no delay, no caps, quick retries.
pub(crate) fn zero_pace(args: &mut ServeArgs) {
    args.campaign_min_delay_ms = 0;
    args.campaign_max_delay_ms = 0;
    args.campaign_max_per_hour = 0;
    args.campaign_max_per_day = 0;
    args.campaign_retry_base_ms = 50;
}

/// A hub in zero pace in front of a READY double.
pub(crate) async fn ready_hub(tweak: impl FnOnce(&mut ServeArgs)) -> (ManagerDouble, TestApp, String) {
    let double = ManagerDouble::spawn(Mode::Normal).await;
    double.set_state(SessionState::Ready);
    let app = spawn_app_with(&double.url, |args| {
        zero_pace(args);
        tweak(args);
    })
    .await;
    app.wait_for_live_stream().await;
    let token = app.admin_token().await;
    (double, app, token)
}

fn csv_of(n: usize) -> String {
    let mut csv = String::from("phone;nombre\n");
    for i in 0..n {
        csv.push_str(&format!("54911{i:08};Persona {i}\n"));
    }
    csv
}

pub(crate) fn campaign_body(cliente_id: u64, csv: String) -> Value {
    json!({
        "name": "Promo",
        "cliente_id": cliente_id,
        "template": "Hola {{nombre}}, tenemos novedades",
        "csv": csv,
        "time_zone": "UTC",
        "window": { "start": "00:00", "end": "24:00" },
    })
}

pub(crate) async fn create(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    status_and_json(app.post("/api/campaigns", Some(token), body).await).await
}

/// Polls the campaign until `done` holds (30 s at most).
pub(crate) async fn wait_for(
    app: &TestApp,
    token: &str,
    id: i64,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) =
            status_and_json(app.get(&format!("/api/campaigns/{id}"), Some(token)).await).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "campaign {id} never reached {what}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Idempotency keys the double received, with how many times each.
fn keys_received(double: &ManagerDouble) -> BTreeMap<String, usize> {
    let mut keys = BTreeMap::new();
    for send in double.sends() {
        *keys.entry(send.idempotency_key.unwrap_or_default()).or_default() += 1;
    }
    keys
}

#[tokio::test]
async fn a_300_recipient_campaign_at_zero_pace_sends_each_rendered_text_once() {
    let (double, app, token) = ready_hub(|_| {}).await;
    let (status, created) = create(&app, &token, campaign_body(7, csv_of(300))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "draft");
    assert_eq!(created["counts"]["pending"], 300);
    assert_eq!(created["instance"], "admin");
    let id = created["id"].as_i64().unwrap();
    assert!(double.sends().is_empty(), "a draft sends nothing");
    let (status, started) =
        status_and_json(app.post(&format!("/api/campaigns/{id}/start"), Some(&token), json!({})).await).await;
    assert_eq!((status, started["state"].as_str()), (200, Some("running")), "{started}");
    let done = wait_for(&app, &token, id, "completed", |c| c["state"] == "completed").await;
    assert_eq!(done["counts"]["sent"], 300, "{done}");
    let texts: BTreeSet<String> = double.sends().into_iter().map(|s| s.body.message.to_string()).collect();
    assert_eq!(double.sends().len(), 300, "exactly one send per recipient");
    assert_eq!(texts.len(), 300);
    assert!(texts.contains("Hola Persona 0, tenemos novedades"));
    let keys = keys_received(&double);
    assert!(keys.keys().all(|k| k.starts_with(&format!("campaign:{id}:recipient:"))), "{keys:?}");
    assert!(double.sends().iter().all(|s| s.body.cliente_id.map(|id| id.get()) == Some(7)));
    // A second start is refused with the state it is in.
    let (status, body) =
        status_and_json(app.post(&format!("/api/campaigns/{id}/start"), Some(&token), json!({})).await).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("CAMPAIGN_STATE_CONFLICT")), "{body}");
    let audit = app.state.store.recent_audit(20).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    for action in ["campaign.create", "campaign.start", "campaign.complete"] {
        assert!(actions.contains(&action), "{action} is audited: {actions:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_csv_with_bad_lines_is_refused_naming_every_line_and_nothing_is_stored() {
    let (_double, app, token) = ready_hub(|_| {}).await;
    let mut csv = String::from("phone,nombre\n5491100000001,Ana\nnot-a-phone,Beto\n5491100000003,\n");
    for i in 0..150 {
        csv.push_str(&format!("12,Persona {i}\n"));
    }
    let (status, body) = create(&app, &token, campaign_body(7, csv)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "CAMPAIGN_INVALID");
    assert_eq!(body["detail"]["error_count"], 152, "every bad line is counted");
    let errors = body["detail"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 100, "the first 100 are listed");
    assert_eq!(errors[0]["line"], 3);
    assert!(errors[0]["reason"].as_str().unwrap().contains("phone number"), "{}", errors[0]);
    assert_eq!(errors[1]["line"], 4);
    assert!(errors[1]["reason"].as_str().unwrap().contains("nombre"), "{}", errors[1]);
    assert!(body["hint"].as_str().unwrap().contains("nothing was stored"));
    let (_, list) = status_and_json(app.get("/api/campaigns", Some(&token)).await).await;
    assert_eq!(list["campaigns"], json!([]), "nothing was stored");
    // A template with a placeholder that is never closed, and a pace faster than the operator's.
    let mut bad = campaign_body(7, csv_of(2));
    bad["template"] = json!("Hola {{nombre");
    let (status, body) = create(&app, &token, bad).await;
    assert_eq!((status, body["detail"]["field"].as_str()), (400, Some("template")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_100000_row_csv_is_accepted_with_duplicates_merged_and_opt_outs_skipped() {
    let (_double, app, token) = ready_hub(|_| {}).await;
    let (status, body) = status_and_json(
        app.post("/api/opt-outs", Some(&token), json!({ "phone": "+54 911 00000005", "reason": "BAJA" }))
            .await,
    )
    .await;
    assert_eq!((status, body["added"].as_bool()), (201, Some(true)), "{body}");
    // 100,000 rows: 99,999 numbers and one of them again.
    let mut csv = csv_of(99_999);
    csv.push_str("5491100000009;Otra vez\n");
    let (status, created) = create(&app, &token, campaign_body(7, csv)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["total"], 99_999);
    assert_eq!(created["counts"]["skipped"], 1, "the opted-out number is kept as skipped");
    assert_eq!(created["counts"]["pending"], 99_998);
    assert_eq!(created["report"]["duplicates_merged"], 1);
    assert_eq!(created["report"]["duplicates"][0]["first_line"], 11);
    let id = created["id"].as_i64().unwrap();
    let (status, page) = status_and_json(
        app.get(&format!("/api/campaigns/{id}/recipients?state=skipped"), Some(&token)).await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["recipients"][0]["phone"], "5491100000005");
    assert_eq!(page["recipients"][0]["error_code"], "OPTED_OUT");
    app.stop().await;
}

#[tokio::test]
async fn a_client_user_sees_and_acts_only_on_its_own_campaigns() {
    let (_double, app, admin) = ready_hub(|_| {}).await;
    app.add_user("c7@example.com", "client password 7", Role::Client, Some(7)).await;
    let client = app.token("c7@example.com", "client password 7").await;
    let (status, own) = create(&app, &client, campaign_body(7, csv_of(3))).await;
    assert_eq!(status, 201, "{own}");
    let (status, body) = create(&app, &client, campaign_body(8, csv_of(3))).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    let (_, other) = create(&app, &admin, campaign_body(8, csv_of(3))).await;
    let other_id = other["id"].as_i64().unwrap();
    let (_, list) = status_and_json(app.get("/api/campaigns", Some(&client)).await).await;
    let ids: Vec<i64> =
        list["campaigns"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![own["id"].as_i64().unwrap()], "a client lists only its own");
    for path in [format!("/api/campaigns/{other_id}"), format!("/api/campaigns/{other_id}/recipients")] {
        let (status, body) = status_and_json(app.get(&path, Some(&client)).await).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{path}: {body}");
    }
    let response = app.post(&format!("/api/campaigns/{other_id}/cancel"), Some(&client), json!({})).await;
    assert_eq!(response.status(), 403);
    let (_, list) = status_and_json(app.get("/api/campaigns", Some(&admin)).await).await;
    assert_eq!(list["campaigns"].as_array().unwrap().len(), 2, "an admin sees every campaign");
    let (status, body) = status_and_json(app.get("/api/campaigns/999", Some(&admin)).await).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn campaigns_pause_while_the_session_is_not_ready_and_resume_by_themselves() {
    let (double, app, token) = ready_hub(|_| {}).await;
    double.set_state(SessionState::QrRequired);
    let (_, created) = create(&app, &token, campaign_body(7, csv_of(20))).await;
    let id = created["id"].as_i64().unwrap();
    app.post(&format!("/api/campaigns/{id}/start"), Some(&token), json!({})).await;
    let paused = wait_for(&app, &token, id, "paused", |c| c["state"] == "paused").await;
    assert_eq!(paused["pause_reason"], "session_not_ready", "{paused}");
    assert!(paused["pause_detail"].as_str().unwrap().contains("QR_REQUIRED"), "{paused}");
    assert!(paused["hint"].as_str().unwrap().contains("READY"), "{paused}");
    assert!(double.sends().is_empty());
    double.set_state(SessionState::Ready);
    let done = wait_for(&app, &token, id, "completed", |c| c["state"] == "completed").await;
    assert_eq!(done["counts"]["sent"], 20);
    assert_eq!(double.sends().len(), 20);
    let audit = app.state.store.recent_audit(50).await.unwrap();
    let pauses: Vec<_> = audit.iter().filter(|a| a.action == "campaign.pause").collect();
    assert!(
        pauses.iter().any(|a| a.detail.as_deref().unwrap_or("").contains("session_not_ready")),
        "{audit:?}"
    );
    assert!(audit.iter().any(|a| a.action == "campaign.resume"), "{audit:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_user_pause_holds_until_resume_and_cancel_skips_what_was_not_sent() {
    // A real pace (one message every 0.2–0.4 s) so the campaign is still running when paused.
    let (double, app, token) = ready_hub(|args| {
        args.campaign_min_delay_ms = 200;
        args.campaign_max_delay_ms = 400;
    })
    .await;
    let (_, created) = create(&app, &token, campaign_body(7, csv_of(50))).await;
    let id = created["id"].as_i64().unwrap();
    app.post(&format!("/api/campaigns/{id}/start"), Some(&token), json!({})).await;
    wait_for(&app, &token, id, "a first send", |c| c["counts"]["sent"].as_i64() >= Some(1)).await;
    let (status, paused) =
        status_and_json(app.post(&format!("/api/campaigns/{id}/pause"), Some(&token), json!({})).await).await;
    assert_eq!((status, paused["pause_reason"].as_str()), (200, Some("user")), "{paused}");
    let sent_at_pause = double.sends().len();
    let (status, cancelled) =
        status_and_json(app.post(&format!("/api/campaigns/{id}/cancel"), Some(&token), json!({})).await)
            .await;
    assert_eq!((status, cancelled["state"].as_str()), (200, Some("cancelled")), "{cancelled}");
    assert!(double.sends().len() <= sent_at_pause + 1, "at most the send in flight when paused");
    let sent = cancelled["counts"]["sent"].as_i64().unwrap();
    assert_eq!(
        cancelled["counts"]["skipped"].as_i64().unwrap()
            + sent
            + cancelled["counts"]["sending"].as_i64().unwrap(),
        50
    );
    let response =
        app.get(&format!("/api/campaigns/{id}/recipients?state=skipped&format=csv"), Some(&token)).await;
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = response.text().await.unwrap();
    assert!(csv.starts_with("recipient_id,line,phone,state"), "{csv}");
    assert!(csv.contains(",CANCELLED,"), "{csv}");
    app.stop().await;
}

#[tokio::test]
async fn two_hubs_on_one_postgres_send_each_recipient_exactly_once_and_both_send() {
    crate::store::with_postgres_schema(|url| async move {
        let double = ManagerDouble::spawn(Mode::Normal).await;
        double.set_state(SessionState::Ready);
        // 10 ms between two messages of the session (the pacer reads both hubs' sends from the
        // database): the campaign lasts long enough for the hub that was not told to start it to
        // find it on its own.
        let paced = |a: &mut ServeArgs| {
            zero_pace(a);
            a.campaign_min_delay_ms = 10;
            a.campaign_max_delay_ms = 10;
            a.database_url = url.clone();
        };
        let first = spawn_app_with(&double.url, paced).await;
        let second = spawn_app_with(&double.url, paced).await;
        first.wait_for_live_stream().await;
        second.wait_for_live_stream().await;
        let token = first.admin_token().await;
        let (status, created) = create(&first, &token, campaign_body(7, csv_of(300))).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_i64().unwrap();
        second.post(&format!("/api/campaigns/{id}/start"), Some(&token), json!({})).await;
        let done = wait_for(&first, &token, id, "completed", |c| c["state"] == "completed").await;
        assert_eq!(done["counts"]["sent"], 300, "{done}");
        let keys = keys_received(&double);
        assert_eq!(keys.len(), 300);
        assert!(keys.values().all(|n| *n == 1), "no recipient was sent twice: {keys:?}");
        let (_, page) = status_and_json(
            first.get(&format!("/api/campaigns/{id}/recipients?per_page=1000"), Some(&token)).await,
        )
        .await;
        let hubs: BTreeSet<&str> =
            page["recipients"].as_array().unwrap().iter().filter_map(|r| r["lease_owner"].as_str()).collect();
        assert_eq!(hubs.len(), 2, "both hubs sent some: {hubs:?}");
        first.stop().await;
        second.stop().await;
    })
    .await;
}
