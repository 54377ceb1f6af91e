//! The data directory: the exclusive lock that keeps a second manager out, the Chromium profile of
//! the admin session, the "saved login" marker, stale Chromium singletons, and profile backups.
//!
//! ```text
//! <data_dir>/session-manager.lock        flock'd while we run; records our pid and our Chromium's pid
//! <data_dir>/sessions/admin/             the Chromium profile (the WhatsApp login lives here)
//! <data_dir>/sessions/admin.login.json   written at READY, removed when the login is wiped
//! <data_dir>/backups/admin-<timestamp>/  profiles moved aside by clear-session (the newest
//!                                        SESSION_BACKUP_RETENTION kept, 3 by default)
//! ```
//!
//! Directories are 0700 and the files the manager writes 0600, whatever the umask: the profile
//! and its backups hold the WhatsApp login.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use shared_contracts::ADMIN_SESSION;

use super::BrowserError;
use super::process;

/// How many clear-session backups are kept by default (SESSION_BACKUP_RETENTION).
pub const BACKUPS_KEPT: usize = 3;
const SINGLETONS: [&str; 3] = ["SingletonLock", "SingletonSocket", "SingletonCookie"];

/// The manager's data directory (absolute).
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    backups_kept: usize,
}

impl DataDir {
    /// Creates the directory tree if needed, private to the manager's user (0700).
    pub fn open(root: &Path) -> Result<Self, BrowserError> {
        let root =
            std::path::absolute(root).map_err(|source| io("resolve the data directory", root, source))?;
        let sessions = root.join("sessions");
        for dir in [&root, &sessions] {
            private_dir(dir).map_err(|source| io("create the data directory", dir, source))?;
        }
        Ok(Self { root, backups_kept: BACKUPS_KEPT })
    }

    /// Keeps the newest `kept` clear-session backups (0: none, clear-session deletes the profile).
    pub fn with_backup_retention(mut self, kept: usize) -> Self {
        self.backups_kept = kept;
        self
    }

    pub fn backup_retention(&self) -> usize {
        self.backups_kept
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn profile(&self) -> PathBuf {
        self.root.join("sessions").join(ADMIN_SESSION)
    }

    fn lock_file(&self) -> PathBuf {
        self.root.join("session-manager.lock")
    }

    fn login_marker(&self) -> PathBuf {
        self.root.join("sessions").join(format!("{ADMIN_SESSION}.login.json"))
    }

    pub fn backups(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// The profile holds a login that reached READY and was not wiped since.
    pub fn has_saved_login(&self) -> bool {
        self.login_marker().is_file() && self.profile().is_dir()
    }

    pub fn remember_login(&self, phone: &str) -> Result<(), BrowserError> {
        let path = self.login_marker();
        let body = serde_json::json!({ "phone": phone, "at": crate::telemetry::now_rfc3339() }).to_string();
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(body.as_bytes()))
            .map_err(|source| io("write the login marker", &path, source))
    }

    fn forget_login(&self) -> Result<(), BrowserError> {
        let path = self.login_marker();
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io("remove the login marker", &path, e))
            }
            _ => Ok(()),
        }
    }

    /// Deletes the profile (the browser must be closed): the next connect shows a QR.
    pub fn wipe_profile(&self) -> Result<(), BrowserError> {
        self.forget_login()?;
        let profile = self.profile();
        match std::fs::remove_dir_all(&profile) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("delete the profile", &profile, e)),
            _ => Ok(()),
        }
    }

    /// Moves the profile to `backups/admin-<timestamp>` (0700) and keeps the newest
    /// `backup_retention()`; with a retention of 0 the profile is deleted and `None` returned.
    pub fn backup_profile(&self) -> Result<Option<PathBuf>, BrowserError> {
        self.forget_login()?;
        let profile = self.profile();
        if !profile.exists() {
            return Ok(None);
        }
        if self.backups_kept == 0 {
            self.wipe_profile()?;
            self.prune_backups()?;
            return Ok(None);
        }
        let backups = self.backups();
        private_dir(&backups).map_err(|source| io("create the backups directory", &backups, source))?;
        let stamp = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
            ))
            .unwrap_or_else(|_| crate::telemetry::now_ms().to_string());
        let target = backups.join(format!("{ADMIN_SESSION}-{stamp}"));
        std::fs::rename(&profile, &target)
            .map_err(|source| io("move the profile aside", &profile, source))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700))
            .map_err(|source| io("make the backup private", &target, source))?;
        self.prune_backups()?;
        Ok(Some(target))
    }

    fn prune_backups(&self) -> Result<(), BrowserError> {
        let dir = self.backups();
        if !dir.exists() {
            return Ok(());
        }
        let prefix = format!("{ADMIN_SESSION}-");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|source| io("list the backups", &dir, source))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        names.sort();
        let excess = names.len().saturating_sub(self.backups_kept);
        for old in names.into_iter().take(excess) {
            std::fs::remove_dir_all(&old).map_err(|source| io("delete an old backup", &old, source))?;
        }
        Ok(())
    }

    /// Before a launch: kills a browser left running on our profile (by a crashed manager, or a
    /// child that escaped) and removes Chromium's singleton files once nothing holds the profile.
    pub async fn reclaim_profile(&self, recorded_pid: Option<i32>) -> Result<(), BrowserError> {
        let profile = self.profile();
        let leftover = recorded_pid.filter(|pid| process::is_browser_of(*pid, &profile));
        let others = process::pids_using_profile(&profile);
        if leftover.is_some() || !others.is_empty() {
            tracing::warn!(profile = %profile.display(), pids = ?others, "killing a Chromium left on our profile");
            process::kill_tree(leftover, &profile);
        }
        if !process::wait_profile_free(&profile, Duration::from_secs(5)).await {
            return Err(BrowserError::ProfileLocked {
                dir: profile.clone(),
                holder: format!("{:?}", process::pids_using_profile(&profile)),
            });
        }
        for name in SINGLETONS {
            let path = profile.join(name);
            // symlink_metadata: SingletonLock is a dangling symlink (`<host>-<pid>`) after a crash.
            if path.symlink_metadata().is_ok() {
                std::fs::remove_file(&path)
                    .map_err(|source| io("remove a stale Chromium lock", &path, source))?;
                tracing::info!(path = %path.display(), "removed a stale Chromium singleton");
            }
        }
        Ok(())
    }
}

/// The exclusive lock on a data directory, held for the life of the manager.
#[derive(Debug)]
pub struct ProfileLock {
    file: File,
    manager_pid: u32,
}

impl ProfileLock {
    /// Takes the lock, or says who holds it. Returns the Chromium pid the previous holder recorded.
    pub fn acquire(data: &DataDir) -> Result<(Self, Option<i32>), BrowserError> {
        let path = data.lock_file();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| io("open the lock file", &path, source))?;
        let mut previous = String::new();
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let _ = file.read_to_string(&mut previous);
                let holder = field(&previous, "manager_pid").unwrap_or_else(|| "unknown".into());
                return Err(BrowserError::ProfileLocked { dir: data.root().to_path_buf(), holder });
            }
            Err(TryLockError::Error(source)) => return Err(io("lock the data directory", &path, source)),
        }
        file.read_to_string(&mut previous).map_err(|source| io("read the lock file", &path, source))?;
        let recorded = field(&previous, "chromium_pid").and_then(|p| p.parse().ok());
        let mut lock = Self { file, manager_pid: std::process::id() };
        lock.record_browser(None);
        Ok((lock, recorded))
    }

    /// Records our Chromium's pid, so that the next manager can kill it if we crash.
    pub fn record_browser(&mut self, chromium_pid: Option<u32>) {
        let chromium = chromium_pid.map(|p| p.to_string()).unwrap_or_default();
        let text = format!("manager_pid={}\nchromium_pid={chromium}\n", self.manager_pid);
        let written = self
            .file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)))
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .and_then(|()| self.file.flush());
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not record the Chromium pid in the lock file");
        }
    }
}

fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .filter(|v| !v.is_empty())
}

/// Creates `dir` (and missing parents) 0700, and makes an existing one 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn io(step: &'static str, path: &Path, source: std::io::Error) -> BrowserError {
    BrowserError::Io { step, path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_names_the_holder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = DataDir::open(tmp.path()).expect("data dir");
        let (mut first, recorded) = ProfileLock::acquire(&data).expect("first lock");
        assert_eq!(recorded, None);
        first.record_browser(Some(4242));
        let err = ProfileLock::acquire(&data).expect_err("second lock refused");
        let text = err.to_string();
        assert!(text.contains(&tmp.path().display().to_string()), "{text}");
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        drop(first);
        let (_again, recorded) = ProfileLock::acquire(&data).expect("free again");
        assert_eq!(recorded, Some(4242));
    }

    #[test]
    fn backups_keep_the_newest_three_and_forget_the_login() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = DataDir::open(tmp.path()).expect("data dir");
        assert_eq!(data.backup_profile().expect("no profile"), None);
        let mut made = Vec::new();
        for i in 0..5 {
            std::fs::create_dir_all(data.profile()).expect("profile");
            std::fs::write(data.profile().join("marker"), i.to_string()).expect("file");
            data.remember_login("+1").expect("marker");
            assert!(data.has_saved_login());
            made.push(data.backup_profile().expect("backup").expect("a backup dir"));
            assert!(!data.has_saved_login());
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut left: Vec<_> =
            std::fs::read_dir(data.backups()).expect("list").map(|e| e.expect("e").path()).collect();
        left.sort();
        assert_eq!(left, made[2..].to_vec());
        assert_eq!(std::fs::read_to_string(left[2].join("marker")).expect("kept"), "4");
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn data_files_are_private_whatever_the_umask_and_the_retention_is_the_operators() {
        let _ = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("data");
        std::fs::create_dir(&root).expect("an existing, world-readable data dir");
        let data = DataDir::open(&root).expect("data dir").with_backup_retention(1);
        let (_lock, _) = ProfileLock::acquire(&data).expect("lock");
        std::fs::create_dir_all(data.profile()).expect("profile");
        data.remember_login("+1").expect("marker");
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("sessions")), 0o700);
        assert_eq!(mode(&data.login_marker()), 0o600);
        assert_eq!(mode(&data.lock_file()), 0o600);
        let first = data.backup_profile().expect("backup").expect("a backup dir");
        assert_eq!((mode(&data.backups()), mode(&first)), (0o700, 0o700));
        std::thread::sleep(Duration::from_millis(2));
        std::fs::create_dir_all(data.profile()).expect("profile");
        let second = data.backup_profile().expect("backup").expect("a backup dir");
        assert!(!first.exists() && second.exists(), "SESSION_BACKUP_RETENTION=1 keeps the newest only");

        let none = DataDir::open(&root).expect("data dir").with_backup_retention(0);
        std::fs::create_dir_all(none.profile()).expect("profile");
        assert_eq!(none.backup_profile().expect("cleared"), None);
        assert!(!none.profile().exists(), "the profile is deleted");
        assert!(!second.exists(), "0 keeps no backup at all");
    }

    #[tokio::test]
    async fn stale_singletons_are_removed_when_nobody_holds_the_profile() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = DataDir::open(tmp.path()).expect("data dir");
        std::fs::create_dir_all(data.profile()).expect("profile");
        let lock = data.profile().join("SingletonLock");
        std::os::unix::fs::symlink("otherhost-99999", &lock).expect("symlink");
        std::fs::write(data.profile().join("SingletonCookie"), "x").expect("cookie");
        data.reclaim_profile(Some(1)).await.expect("reclaimed");
        assert!(lock.symlink_metadata().is_err());
        assert!(!data.profile().join("SingletonCookie").exists());
    }

    #[test]
    fn wiping_deletes_the_profile_and_the_marker() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = DataDir::open(tmp.path()).expect("data dir");
        std::fs::create_dir_all(data.profile().join("Default")).expect("profile");
        data.remember_login("+1").expect("marker");
        data.wipe_profile().expect("wiped");
        assert!(!data.profile().exists());
        assert!(!data.has_saved_login());
        data.wipe_profile().expect("wiping twice is fine");
    }
}
