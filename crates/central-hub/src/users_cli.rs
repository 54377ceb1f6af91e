//! `central-hub users add|list|passwd|disable`: account management from the command line,
//! written to the audit log with actor `cli`.

use std::io::Write;

use shared_contracts::Role;

use crate::auth::password;
use crate::cli::{UsersArgs, UsersCommand};
use crate::db::{AuditEntry, DbError, NewUser, Store};

#[derive(Debug, thiserror::Error)]
pub enum UsersCliError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("{0}")]
    Invalid(String),
    #[error("no user has the email {0}")]
    NoSuchUser(String),
    #[error("could not write to stdout: {0}")]
    Io(#[from] std::io::Error),
}

/// A minimal shape check; the real proof of an address is that its owner can log in.
pub fn looks_like_email(email: &str) -> bool {
    let email = email.trim();
    email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
}

pub async fn run(args: UsersArgs) -> Result<(), UsersCliError> {
    let store = Store::connect(&args.database_url).await?;
    let result = execute(&store, args.command, &mut std::io::stdout()).await;
    store.close().await;
    result
}

async fn execute(store: &Store, command: UsersCommand, out: &mut impl Write) -> Result<(), UsersCliError> {
    match command {
        UsersCommand::Add { email, role, cliente_id, password } => {
            let role = Role::from(role);
            if !looks_like_email(&email) {
                return Err(UsersCliError::Invalid(format!("{email:?} is not an email address")));
            }
            match (role, cliente_id) {
                (Role::Client, None) => {
                    return Err(UsersCliError::Invalid(
                        "a client needs --cliente-id (a positive integer)".into(),
                    ));
                }
                (_, Some(0)) => return Err(UsersCliError::Invalid("--cliente-id must be positive".into())),
                _ => {}
            }
            let (password, generated) = password_or_generated(password);
            let hash = hash(&password).await?;
            let user = store.create_user(NewUser { email, password_hash: hash, role, cliente_id }).await?;
            audit(store, "user.add", &user.email).await?;
            writeln!(out, "created user {} (id {}, role {})", user.email, user.id, user.role.as_str())?;
            if generated {
                writeln!(out, "password: {password}")?;
                writeln!(out, "(shown once: give it to the user now)")?;
            }
        }
        UsersCommand::List => {
            writeln!(
                out,
                "{:<6} {:<32} {:<7} {:<10} {:<8} created_at",
                "id", "email", "role", "cliente_id", "status"
            )?;
            for user in store.list_users().await? {
                let cliente = user.cliente_id.map_or_else(|| "-".to_owned(), |id| id.to_string());
                let status = if user.is_disabled() { "disabled" } else { "active" };
                writeln!(
                    out,
                    "{:<6} {:<32} {:<7} {:<10} {:<8} {}",
                    user.id,
                    user.email,
                    user.role.as_str(),
                    cliente,
                    status,
                    user.created_at
                )?;
            }
        }
        UsersCommand::Passwd { email, password } => {
            let (password, generated) = password_or_generated(password);
            let hash = hash(&password).await?;
            if !store.set_password_hash(&email, &hash).await? {
                return Err(UsersCliError::NoSuchUser(email));
            }
            audit(store, "user.passwd", &email).await?;
            writeln!(out, "password of {email} changed")?;
            if generated {
                writeln!(out, "password: {password}")?;
                writeln!(out, "(shown once: give it to the user now)")?;
            }
        }
        UsersCommand::Disable { email, enable } => {
            if !store.set_disabled(&email, !enable).await? {
                return Err(UsersCliError::NoSuchUser(email));
            }
            let (action, word) =
                if enable { ("user.enable", "enabled") } else { ("user.disable", "disabled") };
            audit(store, action, &email).await?;
            writeln!(out, "{email} {word}")?;
        }
    }
    Ok(())
}

fn password_or_generated(given: Option<String>) -> (String, bool) {
    match given.filter(|p| !p.is_empty()) {
        Some(p) => (p, false),
        None => (password::generate(), true),
    }
}

async fn hash(password: &str) -> Result<String, UsersCliError> {
    password::hash_blocking(password.to_owned()).await.map_err(|e| UsersCliError::Invalid(e.to_string()))
}

async fn audit(store: &Store, action: &str, target: &str) -> Result<(), DbError> {
    store
        .record_audit(AuditEntry {
            actor_user_id: None,
            actor_email: "cli".into(),
            action: action.into(),
            target: Some(crate::db::normalize_email(target)),
            result: "ok".into(),
            detail: None,
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::RoleArg;

    #[tokio::test]
    async fn users_are_added_listed_changed_and_disabled_from_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/hub.db", dir.path().display())).await.unwrap();
        let mut out = Vec::new();
        let add = UsersCommand::Add {
            email: "C@x.io".into(),
            role: RoleArg::Client,
            cliente_id: Some(7),
            password: None,
        };
        execute(&store, add, &mut out).await.unwrap();
        let printed = String::from_utf8(out.clone()).unwrap();
        let generated = printed.lines().find_map(|l| l.strip_prefix("password: ")).unwrap().to_owned();
        let user = store.find_user_by_email("c@x.io").await.unwrap().unwrap();
        assert!(password::verify(&generated, &user.password_hash));

        let no_id = UsersCommand::Add {
            email: "d@x.io".into(),
            role: RoleArg::Client,
            cliente_id: None,
            password: None,
        };
        assert!(matches!(execute(&store, no_id, &mut out).await, Err(UsersCliError::Invalid(_))));

        let passwd = UsersCommand::Passwd { email: "c@x.io".into(), password: Some("new password 1".into()) };
        execute(&store, passwd, &mut out).await.unwrap();
        let user = store.find_user_by_email("c@x.io").await.unwrap().unwrap();
        assert!(password::verify("new password 1", &user.password_hash));

        execute(&store, UsersCommand::Disable { email: "c@x.io".into(), enable: false }, &mut out)
            .await
            .unwrap();
        assert!(store.find_user_by_email("c@x.io").await.unwrap().unwrap().is_disabled());
        let missing = UsersCommand::Disable { email: "nobody@x.io".into(), enable: false };
        assert!(matches!(execute(&store, missing, &mut out).await, Err(UsersCliError::NoSuchUser(_))));

        let mut listing = Vec::new();
        execute(&store, UsersCommand::List, &mut listing).await.unwrap();
        let listing = String::from_utf8(listing).unwrap();
        assert!(listing.contains("c@x.io") && listing.contains("disabled"), "{listing}");
        assert!(!listing.contains("$argon2"), "{listing}");
        let actions: Vec<_> = store.recent_audit(10).await.unwrap().into_iter().map(|r| r.action).collect();
        assert_eq!(actions, ["user.disable", "user.passwd", "user.add"]);
    }
}
