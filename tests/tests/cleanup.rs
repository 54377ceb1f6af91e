//! Nothing a test started outlives it, even when the test fails: a panic with a running stack, or
//! the test process terminated by a signal (what nextest does on a timeout), leaves no hub, manager
//! or Chromium running.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::{Stack, StackOptions, assert_no_chromium_using, chromium_pids_using, post_with_token, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const DEADLINE: Duration = Duration::from_secs(40);
/// Set in the copy of this test binary that plays the test being terminated.
const CHILD: &str = "E2E_CLEANUP_CHILD";

/// A stack with Chromium running (connect, QR shown); returns it with the pids it runs.
async fn stack_with_chromium() -> (Stack, Vec<i32>) {
    let stack = Stack::start(StackOptions::default()).await.expect("the stack starts");
    let token = stack.admin_token().await.expect("the admin logs in");
    let (status, body) =
        post_with_token(stack.hub.url(), "/api/admin/whatsapp/connect", &token, None).await.unwrap();
    assert_eq!(status, 200, "connect: {body}");
    let dir = stack.manager_data_dir();
    let chromium = wait_until("Chromium running for the stack", DEADLINE, || async {
        let pids = chromium_pids_using(&dir);
        (!pids.is_empty()).then_some(pids)
    })
    .await;
    let mut pids = chromium;
    pids.push(stack.hub.pid().unwrap());
    pids.push(stack.manager.as_ref().and_then(e2e::Service::pid).unwrap());
    (stack, pids)
}

fn alive(pid: i32) -> bool {
    // A zombie (dead, not yet reaped by its new parent) is not running.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

async fn assert_all_gone(pids: &[i32], dir: &std::path::Path) {
    wait_until("every process of the stack gone", DEADLINE, || async {
        pids.iter().all(|pid| !alive(*pid)).then_some(())
    })
    .await;
    assert_no_chromium_using(dir, DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_that_panics_leaves_no_hub_manager_or_chromium_running() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let failing_test = tokio::spawn(async move {
        let (stack, pids) = stack_with_chromium().await;
        tx.send((pids, stack.manager_data_dir())).unwrap();
        panic!("a failing assertion, with the stack running");
    });
    let outcome = failing_test.await;
    assert!(outcome.is_err_and(|e| e.is_panic()), "the stand-in test panicked");
    let (pids, dir) = rx.await.expect("the stack was running when it panicked");
    assert_all_gone(&pids, &dir).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_terminated_by_a_signal_leaves_no_hub_manager_or_chromium_running() {
    if std::env::var_os(CHILD).is_some() {
        // The stand-in for a test that hangs until nextest terminates it.
        let (_stack, pids) = stack_with_chromium().await;
        let dir = _stack.manager_data_dir();
        println!(
            "E2E-PIDS {} {}",
            dir.display(),
            pids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
        );
        tokio::time::sleep(Duration::from_secs(600)).await;
        panic!("the parent test should have terminated this process");
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_test_terminated_by_a_signal_leaves_no_hub_manager_or_chromium_running",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("the test binary runs again");
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).find(|l| l.starts_with("E2E-PIDS "))
    });
    let line = tokio::time::timeout(Duration::from_secs(120), line).await;
    let Ok(Ok(Some(line))) = line else {
        let _ = kill(pid, Signal::SIGKILL);
        panic!("the child test did not report its stack: {line:?}");
    };
    let mut parts = line.split_whitespace().skip(1);
    let dir = std::path::PathBuf::from(parts.next().unwrap());
    let pids: Vec<i32> = parts.next().unwrap().split(',').map(|p| p.parse().unwrap()).collect();

    kill(pid, Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(!status.success(), "the terminated test does not pass: {status}");
    assert_all_gone(&pids, &dir).await;
}
