//! The same store tests against SQLite and PostgreSQL (a fresh schema per run, dropped after).
//!
//! PostgreSQL is not optional: if it cannot be reached the test fails and names the URL.
//! Override the server with `TEST_DATABASE_URL` (as `scripts/test` does; default
//! `postgres://postgres@127.0.0.1:5432/test`).

use std::panic::AssertUnwindSafe;

use central_hub::auth::password;
use central_hub::db::{AuditEntry, DbError, NewUser, Store};
use futures_util::FutureExt;
use shared_contracts::{ClienteId, Email, Role};
use sqlx::Connection;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, spawn_app_with, status_and_json};
use manager_double::{ManagerDouble, Mode};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

fn cliente(id: u64) -> ClienteId {
    ClienteId::try_from(id).unwrap()
}

/// What every backend must do.
async fn store_contract(store: &Store) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let hash = password::hash("first password").unwrap();
    let admin = store
        .create_user(NewUser {
            email: email(" Boss@Example.com "),
            password_hash: hash.clone(),
            role: Role::Admin,
            cliente_id: None,
        })
        .await
        .unwrap();
    assert_eq!(admin.email.as_str(), "boss@example.com", "emails are stored trimmed and in lower case");
    assert!(!admin.is_disabled());
    let client = store
        .create_user(NewUser {
            email: email("c@example.com"),
            password_hash: hash.clone(),
            role: Role::Client,
            cliente_id: Some(cliente(51)),
        })
        .await
        .unwrap();
    assert_eq!(client.cliente_id, Some(cliente(51)));

    let duplicate = store
        .create_user(NewUser {
            email: email("BOSS@example.com"),
            password_hash: hash.clone(),
            role: Role::Admin,
            cliente_id: None,
        })
        .await;
    assert!(
        matches!(duplicate, Err(DbError::DuplicateEmail(ref e)) if e == "boss@example.com"),
        "{duplicate:?}"
    );
    let clientless = store
        .create_user(NewUser {
            email: email("x@example.com"),
            password_hash: hash,
            role: Role::Client,
            cliente_id: None,
        })
        .await;
    assert!(clientless.is_err(), "a client without cliente_id is refused by the schema");

    assert_eq!(store.find_user(client.id).await.unwrap(), Some(client.clone()));
    assert_eq!(store.find_user_by_email(&email("C@EXAMPLE.COM")).await.unwrap(), Some(client.clone()));
    assert_eq!(store.find_user_by_email(&email("nobody@example.com")).await.unwrap(), None);
    let emails: Vec<String> = store.list_users().await.unwrap().into_iter().map(|u| u.email.into()).collect();
    assert_eq!(emails, ["boss@example.com", "c@example.com"]);

    let new_hash = password::hash("second password").unwrap();
    assert!(store.set_password_hash(&email("c@example.com"), &new_hash).await.unwrap());
    assert!(!store.set_password_hash(&email("nobody@example.com"), &new_hash).await.unwrap());
    let changed = store.find_user(client.id).await.unwrap().unwrap();
    assert!(password::verify("second password", &changed.password_hash));
    assert_eq!(client.credential_version, 1, "a new account starts at version 1");
    assert_eq!(changed.credential_version, 2, "a password change bumps the credential version");

    assert!(store.set_disabled(&email("c@example.com"), true).await.unwrap());
    let disabled = store.find_user(client.id).await.unwrap().unwrap();
    assert!(disabled.is_disabled());
    assert_eq!(disabled.credential_version, 3, "a disable bumps it too");
    assert!(store.set_disabled(&email("c@example.com"), false).await.unwrap());
    assert!(!store.find_user(client.id).await.unwrap().unwrap().is_disabled());

    for (action, result) in [("whatsapp.connect", "ok"), ("whatsapp.send", "SESSION_NOT_READY")] {
        store
            .record_audit(AuditEntry {
                actor_user_id: Some(admin.id),
                actor_email: admin.email.to_string(),
                action: action.into(),
                target: Some("admin".into()),
                result: result.into(),
                detail: None,
            })
            .await
            .unwrap();
    }
    let audit = store.recent_audit(10).await.unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!((audit[0].action.as_str(), audit[0].result.as_str()), ("whatsapp.send", "SESSION_NOT_READY"));
    assert_eq!(audit[1].actor_user_id, Some(admin.id));
    assert!(audit[1].at.ends_with('Z'), "{}", audit[1].at);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn the_sqlite_store_keeps_users_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/deep/dir/hub.db", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    store_contract(&store).await;
    store.close().await;
    assert!(dir.path().join("deep/dir/hub.db").is_file(), "the file and its directories are created");
    let reopened = Store::connect(&url).await.expect("migrations are idempotent on restart");
    assert_eq!(reopened.count_users().await.unwrap(), 2, "data survives a restart");
}

/// Runs `body` with a `DATABASE_URL` pointing at a fresh schema, then drops the schema.
pub(crate) async fn with_postgres_schema<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let base = postgres_url();
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for these tests and {base} cannot be reached: {e}. Start PostgreSQL \
             (trust auth) or set TEST_DATABASE_URL"
        )
    });
    let schema = format!("hub_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create schema {schema}"))).execute(&mut admin).await.unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let outcome = AssertUnwindSafe(body(url)).catch_unwind().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("drop schema {schema} cascade")))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn the_postgres_store_keeps_users_and_the_audit_log() {
    with_postgres_schema(|url| async move {
        let store = Store::connect(&url).await.unwrap();
        store_contract(&store).await;
        store.close().await;
        let reopened = Store::connect(&url).await.expect("migrations are idempotent on restart");
        assert_eq!(reopened.count_users().await.unwrap(), 2);
        reopened.close().await;
    })
    .await;
}

#[tokio::test]
async fn the_hub_runs_on_postgres() {
    with_postgres_schema(|url| async move {
        let manager = ManagerDouble::spawn(Mode::Normal).await;
        let app = spawn_app_with(&manager.url, |args| args.database_url = url).await;
        assert_eq!(app.state.store.backend().as_str(), "postgres");
        let (status, health) = status_and_json(app.get("/health", None).await).await;
        assert_eq!((status, health["checks"]["database"]["backend"].as_str()), (200, Some("postgres")));
        let (status, body) = status_and_json(app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await).await;
        assert_eq!(status, 200, "{body}");
        app.stop().await;
    })
    .await;
}
