//! `central-hub users add|list|passwd|disable`: account management from the command line,
//! written to the audit log with actor `cli`.

use std::io::Write;

use shared_contracts::{Email, Role};

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
    NoSuchUser(Email),
    #[error("could not write to stdout: {0}")]
    Io(#[from] std::io::Error),
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
            // clap parsed the email and the id (a positive integer): only the pairing is left to check.
            let role = Role::from(role);
            if role == Role::Client && cliente_id.is_none() {
                return Err(UsersCliError::Invalid(
                    "a client needs --cliente-id (a positive integer)".into(),
                ));
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

async fn audit(store: &Store, action: &str, target: &Email) -> Result<(), DbError> {
    store
        .record_audit(AuditEntry {
            actor_user_id: None,
            actor_email: "cli".into(),
            action: action.into(),
            target: Some(target.to_string()),
            result: "ok".into(),
            detail: None,
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::RoleArg;
    use shared_contracts::ClienteId;

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    #[tokio::test]
    async fn users_are_added_listed_changed_and_disabled_from_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/hub.db", dir.path().display())).await.unwrap();
        let mut out = Vec::new();
        let add = UsersCommand::Add {
            email: email("C@x.io"),
            role: RoleArg::Client,
            cliente_id: Some(ClienteId::parse("7").unwrap()),
            password: None,
        };
        execute(&store, add, &mut out).await.unwrap();
        let printed = String::from_utf8(out.clone()).unwrap();
        let generated = printed.lines().find_map(|l| l.strip_prefix("password: ")).unwrap().to_owned();
        let user = store.find_user_by_email(&email("c@x.io")).await.unwrap().unwrap();
        assert!(password::verify(&generated, &user.password_hash));

        let no_id = UsersCommand::Add {
            email: email("d@x.io"),
            role: RoleArg::Client,
            cliente_id: None,
            password: None,
        };
        assert!(matches!(execute(&store, no_id, &mut out).await, Err(UsersCliError::Invalid(_))));

        let passwd = UsersCommand::Passwd { email: email("c@x.io"), password: Some("new password 1".into()) };
        execute(&store, passwd, &mut out).await.unwrap();
        let user = store.find_user_by_email(&email("c@x.io")).await.unwrap().unwrap();
        assert!(password::verify("new password 1", &user.password_hash));

        execute(&store, UsersCommand::Disable { email: email("c@x.io"), enable: false }, &mut out)
            .await
            .unwrap();
        assert!(store.find_user_by_email(&email("c@x.io")).await.unwrap().unwrap().is_disabled());
        let missing = UsersCommand::Disable { email: email("nobody@x.io"), enable: false };
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
