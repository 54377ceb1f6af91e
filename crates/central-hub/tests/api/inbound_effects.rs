//! What inbound events do, against the manager double: a reply belongs to the client that last
//! wrote to the phone (and only it and admins see it), acks raise outgoing messages (also one that
//! arrives before its send is stored), acks and replies fill campaign recipients, a keyword opts
//! the number out, and each stored message or ack records one `hub_event`.

use central_hub::db::HubEventKind;
use manager_double::{ManagerDouble, Mode};
use serde_json::{Value, json};
use shared_contracts::{AckLevel, Role, SessionState};

use crate::campaigns::{campaign_body, create, ready_hub, wait_for};
use crate::helpers::{hub_as_admin, status_and_json};
use crate::inbound::{events_about, message_events, messages, wait_for_messages, wait_for_position};

#[tokio::test]
async fn a_reply_belongs_to_the_client_that_last_wrote_to_the_phone() {
    let (double, app, admin) = hub_as_admin(SessionState::Ready).await;
    app.wait_for_live_stream().await;
    app.add_user("c7@test.io", "client password 7", Role::Client, Some(7)).await;
    app.add_user("c8@test.io", "client password 8", Role::Client, Some(8)).await;
    let c7 = app.token("c7@test.io", "client password 7").await;
    let c8 = app.token("c8@test.io", "client password 8").await;
    let (status, sent) = status_and_json(
        app.post(
            "/api/whatsapp/7/send",
            Some(&c7),
            json!({"to": "+54 9 11 0000-0002", "message": "¿Seguimos?"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let out = wait_for_messages(&app, &c7, "direction=out", 1).await;
    assert_eq!((out[0]["cliente_id"].as_i64(), out[0]["phone"].as_str()), (Some(7), Some("5491100000002")));
    assert_eq!(out[0]["message_id"], sent["data"]["message_id"]);

    double.inbound().text("5491100000002", "Sí, seguimos");
    let stranger = double.inbound().message("5491100000003", None, "image");
    wait_for_position(&app, stranger.seq).await;

    let mine = wait_for_messages(&app, &c7, "direction=in", 1).await;
    assert_eq!((mine[0]["text"].as_str(), mine[0]["cliente_id"].as_i64()), (Some("Sí, seguimos"), Some(7)));
    wait_for_messages(&app, &c8, "direction=in", 0).await;
    let all = wait_for_messages(&app, &admin, "direction=in", 2).await;
    assert_eq!(all[0]["type"], "image", "newest first");
    assert_eq!((all[0]["cliente_id"].clone(), all[0]["text"].clone()), (Value::Null, Value::Null));
    wait_for_messages(&app, &admin, "direction=in&cliente_id=7", 1).await;
    wait_for_messages(&app, &admin, "phone=5491100000002", 2).await;
    // Paging: one per page, `next` leads to the older one, then nothing.
    let (_, page) = messages(&app, &admin, "direction=in&limit=1").await;
    let next = page["next"].as_i64().expect("a next cursor");
    let (_, older) = messages(&app, &admin, &format!("direction=in&limit=1&before={next}")).await;
    assert_eq!(older["messages"][0]["text"], "Sí, seguimos");
    // A client asking for another client's messages, and bad parameters.
    let (status, body) = messages(&app, &c8, "cliente_id=7").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    for (query, field) in
        [("direction=up", "direction"), ("since=ayer", "since"), ("limit=0", "limit"), ("phone=12", "phone")]
    {
        let (status, body) = messages(&app, &admin, query).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{query}: {body}");
        assert_eq!(body["detail"]["field"], field, "{query}");
    }
    let (status, _) = status_and_json(app.get("/api/messages", None).await).await;
    assert_eq!(status, 401);
    let reply = events_about(&app, mine[0]["message_id"].as_str().unwrap()).await;
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0].cliente_id.map(|c| c.get()), Some(7), "the webhook event is the client's");
    app.stop().await;
}

#[tokio::test]
async fn an_ack_that_arrives_before_its_send_is_stored_is_not_lost() {
    let (double, app, admin) = hub_as_admin(SessionState::Ready).await;
    app.wait_for_live_stream().await;
    let phone = "5491100000004";
    let id = double.inbound().next_send_id(phone);
    double.inbound().ack(&id, Some(phone), AckLevel::Sent);
    let delivered = double.inbound().ack(&id, Some(phone), AckLevel::Delivered);
    wait_for_position(&app, delivered.seq).await;
    wait_for_messages(&app, &admin, "direction=out", 0).await;
    assert!(events_about(&app, &id).await.is_empty(), "held until the send is stored");

    let (status, sent) = status_and_json(
        app.post("/api/whatsapp/9/send", Some(&admin), json!({"to": phone, "message": "rápido"})).await,
    )
    .await;
    assert_eq!((status, sent["data"]["message_id"].as_str()), (200, Some(id.as_str())), "{sent}");
    let out = wait_for_messages(&app, &admin, "direction=out", 1).await;
    assert_eq!(
        (out[0]["ack"].as_str(), out[0]["cliente_id"].as_i64()),
        (Some("delivered"), Some(9)),
        "{out:?}"
    );
    let events = events_about(&app, &id).await;
    let acks: Vec<&str> = events.iter().map(|e| e.data["ack"].as_str().unwrap()).collect();
    assert_eq!(acks, ["sent", "delivered"], "each early ack reported once, with the send's client");
    assert!(
        events.iter().all(|e| e.kind == HubEventKind::MessageAck && e.cliente_id.map(|c| c.get()) == Some(9))
    );

    // A late, lower ack never lowers it; a replay records nothing twice.
    let read = double.inbound().ack(&id, Some(phone), AckLevel::Read);
    double.inbound().ack(&id, Some(phone), AckLevel::Delivered);
    let last = double.inbound().ack(&id, Some(phone), AckLevel::Sent);
    wait_for_position(&app, last.seq).await;
    let out = wait_for_messages(&app, &admin, "direction=out", 1).await;
    assert_eq!(out[0]["ack"], "read", "{out:?}");
    assert_eq!(
        events_about(&app, &id).await.len(),
        3,
        "sent, delivered, read: once each (after {})",
        read.seq
    );
    app.stop().await;
}

#[tokio::test]
async fn acks_and_replies_fill_campaign_recipients_and_baja_opts_out() {
    let (double, app, token) = ready_hub(|_| {}).await;
    let csv = "phone;nombre\n5491100000011;Ana\n5491100000012;Beto\n".to_owned();
    let (status, created) = create(&app, &token, campaign_body(7, csv.clone())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (status, _) =
        status_and_json(app.post(&format!("/api/campaigns/{id}/start"), Some(&token), json!({})).await).await;
    assert_eq!(status, 200);
    wait_for(&app, &token, id, "completed", |c| c["state"] == "completed").await;
    // The next campaign to the same numbers is created now, before anyone opts out.
    let (_, next) = create(&app, &token, campaign_body(7, csv)).await;
    let next_id = next["id"].as_i64().unwrap();

    let recipients = |campaign: i64| {
        let app = &app;
        let token = &token;
        async move {
            let (status, body) =
                status_and_json(app.get(&format!("/api/campaigns/{campaign}/recipients"), Some(token)).await)
                    .await;
            assert_eq!(status, 200, "{body}");
            body["recipients"].as_array().cloned().unwrap()
        }
    };
    let sent = recipients(id).await;
    let ana = sent[0]["whatsapp_message_id"].as_str().unwrap().to_owned();
    let beto = sent[1]["whatsapp_message_id"].as_str().unwrap().to_owned();
    double.inbound().ack(&ana, Some("5491100000011"), AckLevel::Delivered);
    double.inbound().ack(&beto, Some("5491100000012"), AckLevel::Read);
    double.inbound().text("5491100000011", "¡Me interesa!");
    let baja = double.inbound().text("5491100000012", "  Baja ");
    wait_for_position(&app, baja.seq).await;

    let now = recipients(id).await;
    assert!(now[0]["delivered_at"].is_string() && now[0]["read_at"].is_null(), "{}", now[0]);
    assert!(now[0]["replied_at"].is_string(), "Ana replied: {}", now[0]);
    assert!(
        now[1]["delivered_at"].is_string() && now[1]["read_at"].is_string(),
        "read implies delivered: {}",
        now[1]
    );
    let (_, opt_outs) = status_and_json(app.get("/api/opt-outs", Some(&token)).await).await;
    let entry = opt_outs["opt_outs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["phone"] == "5491100000012")
        .unwrap_or_else(|| panic!("Beto is on the opt-out list: {opt_outs}"))
        .clone();
    assert_eq!(entry["cliente_id"], 7, "for the client whose campaign he answered");
    assert!(entry["reason"].as_str().unwrap().contains("baja"), "{entry}");
    assert!(entry["evidence"].as_str().unwrap().contains("  Baja "), "the message is the evidence: {entry}");
    assert!(opt_outs["opt_outs"].as_array().unwrap().iter().all(|o| o["phone"] != "5491100000011"));

    let (status, _) =
        status_and_json(app.post(&format!("/api/campaigns/{next_id}/start"), Some(&token), json!({})).await)
            .await;
    assert_eq!(status, 200);
    let done = wait_for(&app, &token, next_id, "completed", |c| c["state"] == "completed").await;
    assert_eq!(
        (done["counts"]["sent"].as_i64(), done["counts"]["skipped"].as_i64()),
        (Some(1), Some(1)),
        "{done}"
    );
    let second = recipients(next_id).await;
    assert_eq!(
        (second[1]["state"].as_str(), second[1]["error_code"].as_str()),
        (Some("skipped"), Some("OPTED_OUT"))
    );
    let to_beto = double.sends().iter().filter(|s| s.body.to.as_str() == "5491100000012").count();
    assert_eq!(to_beto, 1, "Beto got the first campaign only");

    // One hub_event per stored message and ack.
    for (whatsapp_id, kinds) in [(ana.as_str(), 1), (beto.as_str(), 1)] {
        assert_eq!(events_about(&app, whatsapp_id).await.len(), kinds, "{whatsapp_id}");
    }
    let all = message_events(&app).await;
    let received = all.iter().filter(|e| e.kind == HubEventKind::MessageReceived).count();
    assert_eq!(received, 2);
    assert!(all.iter().all(|e| e.cliente_id.map(|c| c.get()) == Some(7)), "{all:?}");
    assert_eq!(all.iter().find(|e| e.data["text"] == "¡Me interesa!").unwrap().data["campaign_id"], id);
    app.stop().await;
}

#[tokio::test]
async fn messages_and_acks_are_stored_on_postgres_too() {
    crate::store::with_postgres_schema(|url| async move {
        let double = ManagerDouble::spawn(Mode::Normal).await;
        double.set_state(SessionState::Ready);
        let app = crate::helpers::spawn_app_with(&double.url, |args| args.database_url = url).await;
        app.wait_for_live_stream().await;
        let admin = app.admin_token().await;
        let (status, sent) = status_and_json(
            app.post("/api/whatsapp/3/send", Some(&admin), json!({"to": "5491100000021", "message": "hola"}))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{sent}");
        let id = sent["data"]["message_id"].as_str().unwrap().to_owned();
        double.inbound().ack(&id, None, AckLevel::Read);
        let reply = double.inbound().text("5491100000021", "STOP");
        wait_for_position(&app, reply.seq).await;
        let listed = wait_for_messages(&app, &admin, "", 2).await;
        assert_eq!(
            (listed[0]["direction"].as_str(), listed[0]["cliente_id"].as_i64()),
            (Some("in"), Some(3))
        );
        assert_eq!(listed[1]["ack"], "read");
        let (_, opt_outs) = status_and_json(app.get("/api/opt-outs?cliente_id=3", Some(&admin)).await).await;
        assert_eq!(opt_outs["opt_outs"][0]["phone"], "5491100000021", "{opt_outs}");
        assert_eq!(message_events(&app).await.len(), 2);
        app.stop().await;
    })
    .await;
}
