//! Chromium processes seen through `/proc`: the browser and all its descendants (renderers,
//! zygotes, utility and GPU processes), how much memory they use, and killing them. Only processes
//! that descend from a browser whose command line names our own profile are ever touched.
//!
//! Chromium's children rewrite their command line into one space-joined string, so matching the
//! profile argument as one NUL-separated argument finds only the browser process. The tree is
//! therefore the browser plus every process whose parent chain (`/proc/<pid>/stat`) leads to it,
//! plus its process group (we launch it as a group leader), plus any process whose command line
//! names the profile in either form (children re-parented to init after the browser died).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// The `--user-data-dir=` argument Chromium and all its children carry for `profile`.
pub fn profile_arg(profile: &Path) -> String {
    format!("--user-data-dir={}", profile.display())
}

/// One live process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    pid: i32,
    ppid: i32,
    pgrp: i32,
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid pgrp ...`. Zombies are skipped (they hold no
/// memory and cannot be killed again).
fn parse_stat(text: &str) -> Option<Stat> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    // comm may contain spaces and parentheses: the fields resume after the last ')'.
    let mut rest = text.get(text.rfind(')')? + 1..)?.split_whitespace();
    let state = rest.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some(Stat { pid, ppid, pgrp })
}

fn all_pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok()).collect()
}

fn all_stats() -> Vec<Stat> {
    all_pids()
        .into_iter()
        .filter_map(|pid| parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
        .collect()
}

/// `roots` (those alive), every process whose parent chain leads to one of them, and every member
/// of a process group that one of them leads. Sorted, without duplicates.
fn tree_of(roots: &[i32], stats: &[Stat]) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for s in stats {
        children.entry(s.ppid).or_default().push(s.pid);
    }
    let alive: HashSet<i32> = stats.iter().map(|s| s.pid).collect();
    let mut found: HashSet<i32> = HashSet::new();
    let mut queue: Vec<i32> = roots.iter().copied().filter(|p| alive.contains(p)).collect();
    // A group led by a root keeps its members when the root (or a middle parent) is gone.
    queue.extend(stats.iter().filter(|s| roots.contains(&s.pgrp)).map(|s| s.pid));
    while let Some(pid) = queue.pop() {
        if found.insert(pid) {
            queue.extend(children.get(&pid).into_iter().flatten().copied());
        }
    }
    let mut pids: Vec<i32> = found.into_iter().collect();
    pids.sort_unstable();
    pids
}

/// Whether a raw `/proc/<pid>/cmdline` names `needle` (`--user-data-dir=<profile>`): as one
/// NUL-separated argument (the browser), or as one word of a command line rewritten into a single
/// space-joined string (its children).
fn cmdline_names(raw: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    let mut args = raw.split(|b| *b == 0).filter(|a| !a.is_empty());
    let first = args.next();
    if raw.split(|b| *b == 0).any(|arg| arg == needle) {
        return true;
    }
    // A rewritten command line is one argument holding spaces; paths with spaces never match here.
    match (first, args.next()) {
        (Some(only), None) => only.split(|b| *b == b' ').any(|word| word == needle),
        _ => false,
    }
}

fn cmdline_has_arg(pid: i32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| cmdline_names(&raw, needle))
}

/// Whether `pid` is a live process whose command line names `profile` (a recorded browser pid
/// that was not reused by another program).
pub fn is_browser_of(pid: i32, profile: &Path) -> bool {
    cmdline_has_arg(pid, &profile_arg(profile))
}

/// Every process of the Chromium on `profile`: every process naming the profile on its command
/// line, the group members of `browser` (our browser's pid, when known) once it is gone, and all
/// their descendants.
pub fn browser_tree(browser: Option<i32>, profile: &Path) -> Vec<i32> {
    let needle = profile_arg(profile);
    let stats = all_stats();
    let mut roots: Vec<i32> =
        stats.iter().map(|s| s.pid).filter(|pid| cmdline_has_arg(*pid, &needle)).collect();
    // A pid that now belongs to another program (reused after our browser was reaped) is no root;
    // a pid that exited still leads the group its children may be left in.
    let gone = |pid: i32| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_stat(&stat).is_none(), // a zombie: exited, not yet reaped
        Err(_) => true,
    };
    roots.extend(browser.filter(|pid| !roots.contains(pid) && gone(*pid)));
    tree_of(&roots, &stats)
}

/// Every process of the Chromium on `profile` (see [`browser_tree`]) when no pid is known.
pub fn pids_using_profile(profile: &Path) -> Vec<i32> {
    browser_tree(None, profile)
}

/// SIGKILL to the process group led by `pid` (our Chromium is launched as a group leader; the
/// caller vouches the pid is ours) and to every process of its tree, which catches children that
/// left the group or were re-parented after the browser died.
pub fn kill_tree(pid: Option<i32>, profile: &Path) {
    if let Some(pid) = pid {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    for pid in browser_tree(pid, profile) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Waits (polling /proc every 25 ms) until no process of the Chromium on `profile` is left; false
/// at the deadline.
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

/// Proportional set size of every process of the Chromium on `profile`, in bytes (shared pages
/// counted once across the tree).
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
    use std::process::{Child, Command};

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
    fn stat_lines_parse_past_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (Chrome_ChildIOT) (x) S 4200 4100 4100 0 -1 4194560 1 0 0 0";
        assert_eq!(parse_stat(line), Some(Stat { pid: 4242, ppid: 4200, pgrp: 4100 }));
        assert_eq!(
            parse_stat("4243 (chromium) Z 4200 4100 4100 0"),
            None,
            "zombies are not processes to kill"
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_profile_is_found_as_one_argument_or_as_one_word_of_a_rewritten_command_line() {
        let needle = "--user-data-dir=/data/sessions/admin";
        // The browser: NUL-separated arguments.
        assert!(cmdline_names(
            b"/usr/bin/chromium\0--user-data-dir=/data/sessions/admin\0about:blank\0",
            needle
        ));
        // A child: Chromium rewrote argv into one space-joined string (padded with NULs).
        let child = b"/usr/lib/chromium/chromium --type=renderer --user-data-dir=/data/sessions/admin --lang=en-US\0\0\0";
        assert!(cmdline_names(child, needle));
        assert!(cmdline_names(
            b"/usr/lib/chromium/chromium --type=zygote --user-data-dir=/data/sessions/admin",
            needle
        ));
        // Another profile whose path starts with ours is not ours, in either form.
        assert!(!cmdline_names(b"chromium --type=renderer --user-data-dir=/data/sessions/admin2 x", needle));
        assert!(!cmdline_names(b"chromium\0--user-data-dir=/data/sessions/admin2\0", needle));
        // A real argument holding spaces is not split into words.
        assert!(!cmdline_names(b"grep\0x --user-data-dir=/data/sessions/admin y\0file\0", needle));
        assert!(!cmdline_names(b"", needle));
    }

    /// `sh -c '<script>' sh <profile arg>`: the shell carries the profile argument the way the
    /// browser does; the processes it starts do not (like Chromium's children).
    fn fake_browser(script: &str, profile: &Path, own_group: bool) -> Child {
        let mut command = Command::new("sh");
        command.args(["-c", script, "sh", &profile_arg(profile)]);
        if own_group {
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        command.spawn().expect("spawn sh")
    }

    fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| parse_stat(&s)).is_some()
    }

    fn children_of(pid: i32) -> Vec<i32> {
        all_stats().into_iter().filter(|s| s.ppid == pid).map(|s| s.pid).collect()
    }

    #[test]
    fn the_tree_holds_the_children_that_do_not_name_the_profile_and_kill_tree_ends_them_all() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let profile = tmp.path().join("admin");
        let mut shell = fake_browser("sleep 100 & sleep 100 & wait", &profile, false);
        let root = shell.id() as i32;
        wait_for("two children", || children_of(root).len() == 2);
        let children = children_of(root);

        let tree = pids_using_profile(&profile);
        let mut expected = vec![root];
        expected.extend(&children);
        expected.sort_unstable();
        assert_eq!(tree, expected, "the shell and both sleeps, found from the profile alone");
        assert!(tree_pss_bytes(&profile) > pss_bytes(root).expect("the shell's PSS"));

        kill_tree(None, &profile);
        shell.wait().expect("reap the shell");
        wait_for("the children to be gone", || children.iter().all(|pid| !alive(*pid)));
        assert!(pids_using_profile(&profile).is_empty());
    }

    #[test]
    fn children_orphaned_by_a_dead_browser_are_found_through_its_process_group() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let profile = tmp.path().join("admin");
        // The shell starts a sleep and exits: the sleep is re-parented, only its group links it.
        let mut shell = fake_browser("sleep 100 &", &profile, true);
        let root = shell.id() as i32;
        shell.wait().expect("the shell exits");
        let orphan =
            all_stats().into_iter().find(|s| s.pgrp == root && s.pid != root).expect("the orphan").pid;
        assert_ne!(all_stats().iter().find(|s| s.pid == orphan).map(|s| s.ppid), Some(root));

        assert!(pids_using_profile(&profile).is_empty(), "nothing names the profile any more");
        assert_eq!(browser_tree(Some(root), &profile), vec![orphan]);
        kill_tree(Some(root), &profile);
        wait_for("the orphan to be gone", || !alive(orphan));
    }
}
