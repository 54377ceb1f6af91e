//! The `wa-sim` binary as a service manager runs it: logs to a pipe are plain text (no colour
//! codes), and SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the simulator if the test ends early (a failed assertion), so no process outlives it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes_and_sigterm_stops_the_simulator() {
    let mut running = Running(
        Command::new(env!("CARGO_BIN_EXE_wa-sim"))
            .args(["--port", "0"])
            .env_remove("RUST_LOG")
            .env_remove("LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wa-sim starts"),
    );
    let child = &mut running.0;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a line on stdout");
    assert!(line.starts_with("wa-sim listening on http://127.0.0.1:"), "{line}");

    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "wa-sim still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");

    let mut logs = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut logs).expect("stderr is text");
    assert!(logs.contains("wa-sim starting"), "{logs}");
    assert!(logs.contains("SIGTERM received"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "colour codes in logs written to a pipe: {logs:?}");
}
