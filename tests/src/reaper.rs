//! Nothing a test started outlives it: every service process, its descendants (Chromium leads its
//! own process group, so killing the service's group is not enough) and any Chromium on a test's
//! directory are killed when the test drops them, panics, or is terminated by a signal (nextest's
//! SIGTERM on a timeout, Ctrl-C).
//!
//! Services and directories register here while they live. A signal thread, started with the first
//! registration, kills everything registered on SIGTERM, SIGINT or SIGHUP and exits the process.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgrp};

use crate::chromium_pids_using;

/// What is running on the test's behalf: service pids (each leads its own group) and directories
/// whose Chromium processes belong to the test.
struct Registry {
    pids: BTreeSet<i32>,
    dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { pids: BTreeSet::new(), dirs: Vec::new() });
static SIGNAL_THREAD: Once = Once::new();

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Registers a started service process; [`forget_pid`] when it has exited.
pub(crate) fn register_pid(pid: i32) {
    start_signal_thread();
    registry().pids.insert(pid);
}

pub(crate) fn forget_pid(pid: i32) {
    registry().pids.remove(&pid);
}

/// Kills `pid`, every descendant of it and the process groups they lead (never the test's own group).
///
/// The tree is read before anything is killed: once the parent dies its children are re-parented
/// and the link is lost.
pub fn kill_process_tree(pid: i32) {
    let mut pids = descendants(pid);
    pids.insert(0, pid);
    kill_all(&pids);
}

/// Kills every Chromium process whose command line names `dir` (and the groups they lead).
pub fn kill_chromium_using(dir: &Path) {
    let pids = chromium_pids_using(dir);
    if !pids.is_empty() {
        eprintln!("killing Chromium left on {}: {pids:?}", dir.display());
        kill_all(&pids);
    }
}

fn kill_all(pids: &[i32]) {
    let own_group = getpgrp();
    let mut groups = BTreeSet::new();
    for &pid in pids {
        if let Some(group) = process_group(pid)
            && group != own_group.as_raw()
            && group > 1
        {
            groups.insert(group);
        }
    }
    // Stop first, so nothing forks or respawns between the kills.
    for &group in &groups {
        let _ = killpg(Pid::from_raw(group), Signal::SIGSTOP);
    }
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    for &group in &groups {
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
}

/// The fields of `/proc/<pid>/stat` after the command name: state, ppid, pgrp, ...
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces or parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

fn parent(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

fn process_group(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// Every live descendant of `root` (children, grandchildren...), found by walking parent links.
pub fn descendants(root: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let links: Vec<(i32, i32)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, parent(pid)?)))
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(current) = frontier.pop() {
        for &(pid, ppid) in &links {
            if ppid == current && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// While alive, the Chromium processes on `dir` belong to the test: dropped (test passed, failed or
/// panicked) or on a terminating signal, they are killed.
pub struct ChromiumReaper {
    dir: PathBuf,
}

impl ChromiumReaper {
    pub fn new(dir: &Path) -> Self {
        start_signal_thread();
        registry().dirs.push(dir.to_owned());
        ChromiumReaper { dir: dir.to_owned() }
    }
}

impl Drop for ChromiumReaper {
    fn drop(&mut self) {
        kill_chromium_using(&self.dir);
        let mut registry = registry();
        if let Some(i) = registry.dirs.iter().position(|d| *d == self.dir) {
            registry.dirs.remove(i);
        }
    }
}

/// Kills everything registered (services with their trees, Chromium on registered directories).
fn kill_everything_registered() {
    let (pids, dirs) = {
        let registry = registry();
        (registry.pids.iter().copied().collect::<Vec<_>>(), registry.dirs.clone())
    };
    for pid in pids {
        kill_process_tree(pid);
    }
    for dir in dirs {
        kill_chromium_using(&dir);
    }
}

/// On SIGTERM (nextest's timeout), SIGINT or SIGHUP, kill what the test started, then exit as the
/// signal would have. Without this, a terminated test process takes no `Drop` with it and its
/// services, each in its own process group, would keep running.
fn start_signal_thread() {
    SIGNAL_THREAD.call_once(|| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("e2e-reaper".into()).spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                let _ = ready_tx.send(());
                return;
            };
            runtime.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::hangup()),
                ) else {
                    let _ = ready_tx.send(());
                    return;
                };
                let _ = ready_tx.send(());
                let code = tokio::select! {
                    _ = term.recv() => 128 + Signal::SIGTERM as i32,
                    _ = int.recv() => 128 + Signal::SIGINT as i32,
                    _ = hup.recv() => 128 + Signal::SIGHUP as i32,
                };
                eprintln!("e2e harness: terminated by a signal; killing the processes this test started");
                kill_everything_registered();
                std::process::exit(code);
            });
        });
        if spawned.is_ok() {
            let _ = ready_rx.recv();
        }
    });
}
