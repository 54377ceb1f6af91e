//! Chromium processes seen through `/proc`: which belong to a profile, how much memory they use,
//! and killing them. Only processes whose command line names our own profile are ever touched.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// The `--user-data-dir=` argument Chromium and all its children carry for `profile`.
pub fn profile_arg(profile: &Path) -> String {
    format!("--user-data-dir={}", profile.display())
}

/// Processes whose command line has `--user-data-dir=<profile>` as one argument.
pub fn pids_using_profile(profile: &Path) -> Vec<i32> {
    let needle = profile_arg(profile);
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| cmdline_has_arg(*pid, &needle))
        .collect()
}

fn cmdline_has_arg(pid: i32, needle: &str) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(bytes) => bytes.split(|b| *b == 0).any(|arg| arg == needle.as_bytes()),
        Err(_) => false,
    }
}

/// Whether `pid` is a live (not zombie) process using `profile`.
pub fn is_browser_of(pid: i32, profile: &Path) -> bool {
    cmdline_has_arg(pid, &profile_arg(profile))
}

/// SIGKILL to the process group led by `pid` (our Chromium is launched as a group leader) and to
/// every process still using `profile`, which catches children that left the group.
pub fn kill_tree(pid: Option<i32>, profile: &Path) {
    if let Some(pid) = pid {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    for pid in pids_using_profile(profile) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Waits (polling /proc every 25 ms) until no process uses `profile`; false at the deadline.
pub async fn wait_profile_free(profile: &Path, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if pids_using_profile(profile).is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Proportional set size of every process using `profile`, in bytes (shared pages counted once).
pub fn tree_pss_bytes(profile: &Path) -> u64 {
    pids_using_profile(profile).into_iter().filter_map(pss_bytes).sum()
}

fn pss_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resident set size of this process, in bytes.
pub fn own_rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_nobody_uses_has_no_processes_and_no_memory() {
        let dir = Path::new("/nonexistent/session-manager-test-profile");
        assert!(pids_using_profile(dir).is_empty());
        assert_eq!(tree_pss_bytes(dir), 0);
    }

    #[test]
    fn our_own_memory_is_measured() {
        assert!(own_rss_bytes().is_some_and(|b| b > 0));
        assert!(pss_bytes(std::process::id() as i32).is_some_and(|b| b > 0));
    }

    #[test]
    fn the_profile_argument_must_match_exactly() {
        let me = std::process::id() as i32;
        assert!(!cmdline_has_arg(me, "--user-data-dir=/x"));
    }
}
