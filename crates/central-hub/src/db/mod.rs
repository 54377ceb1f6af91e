//! The user store: SQLite by default, PostgreSQL when `DATABASE_URL` says `postgres://`.
//!
//! One `sqlx::AnyPool` with runtime queries written in the SQL both backends accept (`$1`
//! placeholders, `returning`), and one migrations folder per backend, embedded in the binary.

mod audit;
mod hub_events;
mod users;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, SqlSafeStr};

pub use audit::{AuditEntry, AuditRecord};
pub(crate) use hub_events::hub_event_from_row;
pub use hub_events::{HubEvent, HubEventKind, NewHubEvent, record_hub_event};
pub use users::{NewUser, User};

/// Every database call is bounded: a stuck database must not hang a request forever.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    fn from_url(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::UnsupportedUrl(crate::config::mask_database_url(url)))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL {0:?} is not supported: use sqlite://path/to/file.db or postgres://user@host/db")]
    UnsupportedUrl(String),
    #[error("could not create the directory {path} for the SQLite database: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("could not connect to the {backend} database at {url}: {source}")]
    Connect { backend: &'static str, url: String, source: sqlx::Error },
    #[error("could not apply the {backend} migrations: {source}")]
    Migrate { backend: &'static str, source: sqlx::migrate::MigrateError },
    #[error("the database did not answer within {}s while trying to {step}", QUERY_TIMEOUT.as_secs())]
    Timeout { step: &'static str },
    #[error("a user with email {0} already exists")]
    DuplicateEmail(String),
    #[error("the database failed while trying to {step}: {source}")]
    Query { step: &'static str, source: sqlx::Error },
    #[error("the database holds a value this build cannot read while trying to {step}: {reason}")]
    Corrupt { step: &'static str, reason: String },
}

impl DbError {
    /// Which step failed, in words (shown to API callers without the internal cause).
    pub fn step(&self) -> &'static str {
        match self {
            DbError::Timeout { step } | DbError::Query { step, .. } | DbError::Corrupt { step, .. } => step,
            DbError::DuplicateEmail(_) => "create a user",
            DbError::UnsupportedUrl(_) | DbError::CreateDir { .. } | DbError::Connect { .. } => "connect",
            DbError::Migrate { .. } => "migrate",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects (creating the SQLite file and its directory if needed) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // SQLite: a write-ahead log, synced at checkpoints. Each commit (a campaign
                    // dispatches two per message) no longer waits for several fsyncs; a crash of the
                    // hub loses nothing, a power loss at most the last commits (a campaign send is
                    // then repeated with its Idempotency-Key and answered from the manager's journal).
                    if backend == Backend::Sqlite {
                        sqlx::raw_sql("pragma journal_mode = wal; pragma synchronous = normal")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|source| DbError::Connect {
                backend: backend.as_str(),
                url: crate::config::mask_database_url(&url),
                source,
            })?;
        migrator(backend)
            .run(&pool)
            .await
            .map_err(|source| DbError::Migrate { backend: backend.as_str(), source })?;
        Ok(Self { pool, backend })
    }

    /// The pool, for the other stores of the hub (campaigns).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `select 1`: the health check.
    pub async fn ping(&self) -> Result<(), DbError> {
        let step = "answer a health check";
        bounded(step, sqlx::query("select 1").execute(&self.pool)).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Runs one query with the store's timeout, naming the step in the error.
pub(crate) async fn bounded<T>(
    step: &'static str,
    fut: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, DbError> {
    match tokio::time::timeout(QUERY_TIMEOUT, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(DbError::Query { step, source }),
        Err(_) => Err(DbError::Timeout { step }),
    }
}

/// Creates the SQLite file's directory (0700 when it creates it) and the file itself, 0600
/// whatever the umask (it holds password hashes); SQLite gives its `-wal`, `-shm` and `-journal`
/// files the database file's mode. An existing file readable by others is narrowed to 0600.
fn prepare_sqlite(url: &str) -> Result<String, DbError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or(rest);
    if !path.is_empty() && path != ":memory:" && !path.starts_with("file::memory:") {
        if let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent)
                .map_err(|source| DbError::CreateDir { path: parent.display().to_string(), source })?;
        }
        make_private_file(Path::new(path))
            .map_err(|source| DbError::CreateDir { path: path.to_owned(), source })?;
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn make_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // The mode given at creation is reduced by the umask: set it explicitly afterwards.
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::info!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "making the SQLite database file 0600");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

fn migrator(backend: Backend) -> Migrator {
    let (first, second, third, fourth, fifth, sixth) = match backend {
        Backend::Sqlite => (
            include_str!("../../migrations/sqlite/0001_users_and_audit.sql"),
            include_str!("../../migrations/sqlite/0002_credential_version.sql"),
            include_str!("../../migrations/sqlite/0003_campaigns.sql"),
            include_str!("../../migrations/sqlite/0004_hub_events.sql"),
            include_str!("../../migrations/sqlite/0005_messages.sql"),
            include_str!("../../migrations/sqlite/0006_webhooks.sql"),
        ),
        Backend::Postgres => (
            include_str!("../../migrations/postgres/0001_users_and_audit.sql"),
            include_str!("../../migrations/postgres/0002_credential_version.sql"),
            include_str!("../../migrations/postgres/0003_campaigns.sql"),
            include_str!("../../migrations/postgres/0004_hub_events.sql"),
            include_str!("../../migrations/postgres/0005_messages.sql"),
            include_str!("../../migrations/postgres/0006_webhooks.sql"),
        ),
    };
    Migrator::with_migrations(vec![
        Migration::new(1, "users and audit".into(), MigrationType::Simple, first.into_sql_str(), false),
        Migration::new(2, "credential version".into(), MigrationType::Simple, second.into_sql_str(), false),
        Migration::new(3, "campaigns".into(), MigrationType::Simple, third.into_sql_str(), false),
        Migration::new(4, "hub events".into(), MigrationType::Simple, fourth.into_sql_str(), false),
        Migration::new(5, "messages".into(), MigrationType::Simple, fifth.into_sql_str(), false),
        Migration::new(6, "webhooks".into(), MigrationType::Simple, sixth.into_sql_str(), false),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode_and_unknown_schemes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/hub.db", dir.path().display());
        assert_eq!(prepare_sqlite(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(dir.path().join("nested").is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("nested/hub.db")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the database file is private whatever the umask");
        }
        assert!(matches!(Backend::from_url("mysql://x"), Err(DbError::UnsupportedUrl(_))));
    }
}
