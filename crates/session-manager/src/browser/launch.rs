//! Launching Debian's Chromium ourselves (so it leads its own process group, dies with us, and we
//! keep its stderr), attaching chromiumoxide to its DevTools pipe, and closing it without leftovers.
//! The flags it gets are `args.rs`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::Browser;
use chromiumoxide::handler::HandlerConfig;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::args::chromium_args;
use super::devtools_pipe::{self, ChildEnds, DevtoolsPipe};
use super::devtools_relay::Relay;
use super::{BrowserError, process};

const STDERR_TAIL_LINES: usize = 20;

#[derive(Debug, Clone)]
pub struct LaunchSettings {
    pub chromium_path: PathBuf,
    pub launch_timeout: Duration,
    /// Deadline of each CDP command.
    pub request_timeout: Duration,
}

/// One running Chromium, owned by the session actor.
pub struct BrowserHandle {
    pub browser: Browser,
    pid: i32,
    profile: PathBuf,
    handler: JoinHandle<()>,
    reaper: JoinHandle<()>,
    exited: watch::Receiver<Option<String>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// The DevTools pipe's WebSocket side; dropping it closes the pipe.
    _relay: Relay,
}

impl BrowserHandle {
    /// Starts Chromium on `profile` and attaches to it. `on_exit` is called once with a description
    /// when the process exits; `on_cdp_closed` when the DevTools connection ends.
    ///
    /// Call it from an async task (a tokio worker thread), never from `spawn_blocking`: the browser
    /// gets the parent-death signal, which the kernel sends when the *thread* that spawned it ends.
    /// Worker threads live as long as the runtime; idle blocking-pool threads exit after a few
    /// seconds and would take the browser with them.
    pub async fn launch(
        settings: &LaunchSettings,
        profile: &Path,
        on_exit: impl FnOnce(String) + Send + 'static,
        on_cdp_closed: impl FnOnce() + Send + 'static,
    ) -> Result<Self, BrowserError> {
        let path = &settings.chromium_path;
        match tokio::fs::metadata(path).await {
            Ok(meta) if meta.is_file() => {}
            Ok(_) | Err(_) => return Err(BrowserError::NotFound { path: path.clone() }),
        }
        let as_root = nix::unistd::geteuid().is_root();
        let started = std::time::Instant::now();
        let spawn_error = |source: std::io::Error| BrowserError::Spawn { path: path.clone(), source };
        let (mut pipe, child_ends) = devtools_pipe::create().map_err(spawn_error)?;
        let mut command = Command::new(path);
        command
            .args(chromium_args(path, profile, as_root))
            .env("LANG", "en_US.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        prepare_child(&mut command, &child_ends);
        let mut child = command.spawn().map_err(spawn_error)?;
        // The browser holds its own copies now: ours must go, or its exit would not close the pipe.
        drop(child_ends);
        let pid = child.id().map(|p| p as i32);
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let Some(stderr) = child.stderr.take() else {
            abort_child(&mut child, pid, profile).await;
            return Err(spawn_error(std::io::Error::other("no stderr pipe")));
        };
        let mut drained = tokio::spawn(drain_stderr(BufReader::new(stderr).lines(), stderr_tail.clone()));
        let product =
            wait_devtools(&mut child, &mut pipe, &mut drained, &stderr_tail, settings.launch_timeout);
        let product = match product.await {
            Ok(product) => product,
            Err(e) => {
                abort_child(&mut child, pid, profile).await;
                return Err(e);
            }
        };
        let Some(pid) = pid else {
            return Err(BrowserError::ExitedAtOnce {
                status: "no pid".into(),
                stderr_tail: tail(&stderr_tail),
            });
        };
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, product, "DevTools pipe answered");

        let relay = match Relay::start(pipe).await {
            Ok(relay) => relay,
            Err(e) => {
                abort_child(&mut child, Some(pid), profile).await;
                let url = "ws://127.0.0.1 (DevTools relay)".to_owned();
                return Err(BrowserError::Connect { url, reason: format!("could not listen: {e}") });
            }
        };
        let config = HandlerConfig {
            viewport: None,
            request_timeout: settings.request_timeout,
            ..HandlerConfig::default()
        };
        let connected = tokio::time::timeout(
            settings.launch_timeout,
            Browser::connect_with_config(relay.url().to_owned(), config),
        )
        .await;
        let (browser, mut handler) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                abort_child(&mut child, Some(pid), profile).await;
                return Err(BrowserError::Connect { url: relay.redacted_url(), reason: e.to_string() });
            }
            Err(_) => {
                abort_child(&mut child, Some(pid), profile).await;
                return Err(BrowserError::Connect { url: relay.redacted_url(), reason: "timed out".into() });
            }
        };

        let (exit_tx, exited) = watch::channel(None);
        let reaper = tokio::spawn(async move {
            let description = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            let _ = exit_tx.send(Some(description.clone()));
            on_exit(description);
        });
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if let Err(e) = event {
                    tracing::debug!(error = %e, "CDP handler error");
                }
            }
            on_cdp_closed();
        });
        tracing::info!(
            pid,
            profile = %profile.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Chromium started and attached"
        );
        Ok(Self {
            browser,
            pid,
            profile: profile.to_path_buf(),
            handler,
            reaper,
            exited,
            stderr_tail,
            _relay: relay,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr_tail)
    }

    /// Close politely, then kill the whole tree, and reap it. Leaves no process on the profile.
    /// A browser that already exited, or whose DevTools connection is gone, cannot be asked: it is
    /// killed and reaped at once (crash recovery does not wait `grace` on a dead browser).
    pub async fn shutdown(mut self, grace: Duration) {
        let gone = self.exited.borrow().is_some() || self.handler.is_finished();
        if gone {
            tracing::debug!(pid = self.pid, "Chromium already exited or detached: no polite close");
        } else {
            let closed = tokio::time::timeout(grace, self.browser.close()).await;
            if !matches!(closed, Ok(Ok(_))) {
                tracing::debug!("Chromium did not close on request: killing it");
            }
            if !wait_exit(&mut self.exited, grace).await {
                tracing::warn!(
                    pid = self.pid,
                    "Chromium still running after {grace:?}: killing its process tree"
                );
            }
        }
        // Children (renderers, zygote) may outlive the browser process for a moment: kill them all.
        process::kill_tree(Some(self.pid), &self.profile);
        if !wait_exit(&mut self.exited, Duration::from_secs(5)).await {
            tracing::error!(pid = self.pid, "Chromium did not exit after SIGKILL");
        }
        if !process::wait_profile_free(&self.profile, Duration::from_secs(5)).await {
            tracing::error!(profile = %self.profile.display(), "Chromium processes remain on the profile");
        }
        self.handler.abort();
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.reaper).await;
        tracing::info!(pid = self.pid, "Chromium stopped");
    }
}

async fn wait_exit(exited: &mut watch::Receiver<Option<String>>, within: Duration) -> bool {
    matches!(tokio::time::timeout(within, exited.wait_for(Option::is_some)).await, Ok(Ok(_)))
}

/// Waits until Chromium answers on its DevTools pipe (its product name), it exits, or the deadline
/// passes. Its stderr is being drained into `tail_buf` meanwhile (`drained` ends at its EOF).
async fn wait_devtools(
    child: &mut Child,
    pipe: &mut DevtoolsPipe,
    drained: &mut JoinHandle<()>,
    tail_buf: &Arc<Mutex<VecDeque<String>>>,
    timeout: Duration,
) -> Result<String, BrowserError> {
    let exited = tokio::select! {
        _ = tokio::time::sleep(timeout) => {
            return Err(BrowserError::LaunchTimeout { timeout, stderr_tail: tail(tail_buf) });
        }
        answer = pipe.probe() => match answer {
            Ok(product) => return Ok(product),
            // The browser closed the pipe: it is exiting.
            Err(_) => match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(Ok(status)) => status.to_string(),
                _ => "closed its DevTools pipe".to_owned(),
            },
        },
        status = child.wait() => match status {
            Ok(status) => status.to_string(),
            Err(e) => format!("wait failed: {e}"),
        },
    };
    // Its last words: the stderr lines still in the pipe.
    let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
    Err(BrowserError::ExitedAtOnce { status: exited, stderr_tail: tail(tail_buf) })
}

/// Places the DevTools pipe at fds 3 and 4 of the child and gives it the parent-death signal.
#[allow(unsafe_code)]
fn prepare_child(command: &mut Command, ends: &ChildEnds) {
    use std::mem::ManuallyDrop;
    use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

    use nix::fcntl::{FcntlArg, fcntl};
    use nix::sys::signal::Signal;

    let (commands, events) = ends.raw();
    let parent = nix::unistd::getpid();
    let hook = move || -> std::io::Result<()> {
        // A SIGKILLed manager must not leave a logged-in browser behind (see `launch` on threads).
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
        if nix::unistd::getppid() != parent {
            // The manager died before the signal was armed.
            return Err(nix::errno::Errno::ESRCH.into());
        }
        // Copies above 3 and 4 first (without close-on-exec), so that neither dup2 below can
        // overwrite the other end; then fds 3 and 4, and the copies closed.
        // SAFETY: `commands` and `events` are open in the child (inherited from the parent, which
        // keeps them open until `spawn` returns), and fds 3 and 4 are ours to replace after fork;
        // the ManuallyDrop wrappers never close them. Only async-signal-safe calls (fcntl, dup2,
        // close, prctl, getppid) run here, with no allocation.
        unsafe {
            let high_commands = fcntl(BorrowedFd::borrow_raw(commands), FcntlArg::F_DUPFD(10))?;
            let high_events = fcntl(BorrowedFd::borrow_raw(events), FcntlArg::F_DUPFD(10))?;
            let mut fd3 = ManuallyDrop::new(OwnedFd::from_raw_fd(devtools_pipe::BROWSER_COMMANDS_FD));
            let mut fd4 = ManuallyDrop::new(OwnedFd::from_raw_fd(devtools_pipe::BROWSER_EVENTS_FD));
            nix::unistd::dup2(BorrowedFd::borrow_raw(high_commands), &mut fd3)?;
            nix::unistd::dup2(BorrowedFd::borrow_raw(high_events), &mut fd4)?;
            nix::unistd::close(high_commands)?;
            nix::unistd::close(high_events)?;
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and only makes async-signal-safe calls (above).
    unsafe {
        command.pre_exec(hook);
    }
}

async fn drain_stderr(
    mut lines: tokio::io::Lines<BufReader<ChildStderr>>,
    tail_buf: Arc<Mutex<VecDeque<String>>>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::trace!(target: "chromium", "{line}");
        push_line(&tail_buf, line);
    }
}

fn push_line(tail_buf: &Mutex<VecDeque<String>>, line: String) {
    if let Ok(mut buf) = tail_buf.lock() {
        if buf.len() == STDERR_TAIL_LINES {
            buf.pop_front();
        }
        buf.push_back(line);
    }
}

fn tail(tail_buf: &Mutex<VecDeque<String>>) -> String {
    tail_buf.lock().map(|b| b.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default()
}

async fn abort_child(child: &mut Child, pid: Option<i32>, profile: &Path) {
    process::kill_tree(pid, profile);
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    process::wait_profile_free(profile, Duration::from_secs(5)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Launches `chromium_path` on an unused profile; the launch must fail.
    async fn failed_launch(chromium_path: &Path) -> BrowserError {
        let settings = LaunchSettings {
            chromium_path: chromium_path.to_path_buf(),
            launch_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(1),
        };
        BrowserHandle::launch(&settings, Path::new("/tmp/unused-profile"), |_| {}, || {})
            .await
            .err()
            .expect("launch fails")
    }

    #[tokio::test]
    async fn a_missing_executable_is_named() {
        let err = failed_launch(Path::new("/nonexistent/chromium")).await;
        assert!(matches!(err, BrowserError::NotFound { .. }));
        assert!(err.to_string().contains("/nonexistent/chromium"));
    }

    #[tokio::test]
    async fn a_program_that_exits_at_once_reports_its_stderr() {
        let script = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(script.path(), "#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n").expect("script");
        let path = script.into_temp_path();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        match failed_launch(&path).await {
            BrowserError::ExitedAtOnce { status, stderr_tail } => {
                assert!(status.contains('3'), "{status}");
                assert!(stderr_tail.contains("cannot open display"), "{stderr_tail}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
