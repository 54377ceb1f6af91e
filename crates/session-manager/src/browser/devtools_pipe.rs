//! Chromium's DevTools over a pipe, so no DevTools port is open to other local users.
//!
//! Chromium runs with `--remote-debugging-pipe`: it reads CDP messages from its fd 3 and writes
//! them to its fd 4, each a JSON text ended by a NUL byte. This file holds the pipes (ours and the
//! ends placed in the child) and the readiness probe; `devtools_relay.rs` bridges them to the
//! WebSocket chromiumoxide speaks.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;

/// The fd numbers Chromium reads commands from and writes answers and events to.
pub const BROWSER_COMMANDS_FD: RawFd = 3;
pub const BROWSER_EVENTS_FD: RawFd = 4;
/// The id of our own readiness probe: chromiumoxide numbers its calls from 0 (and connects after
/// the probe), and Chromium ignores ids beyond a 32-bit signed integer.
const PROBE_ID: u64 = 2_000_000_000;

/// Our ends of the two pipes.
pub struct DevtoolsPipe {
    pub(super) to_browser: pipe::Sender,
    pub(super) from_browser: BufReader<pipe::Receiver>,
}

/// The browser's ends of the two pipes (close-on-exec: only the copies placed at fds 3 and 4 in
/// the child survive its exec). Drop them once the child is spawned, so that the browser's exit
/// closes the pipes.
pub struct ChildEnds {
    commands: OwnedFd,
    events: OwnedFd,
}

impl ChildEnds {
    /// The raw fds to place at [`BROWSER_COMMANDS_FD`] and [`BROWSER_EVENTS_FD`] in the child.
    pub fn raw(&self) -> (RawFd, RawFd) {
        (self.commands.as_raw_fd(), self.events.as_raw_fd())
    }
}

/// Creates the two pipes. Needs a tokio runtime (our ends are registered with it).
pub fn create() -> io::Result<(DevtoolsPipe, ChildEnds)> {
    let (commands, to_browser) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (from_browser, events) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let ours = DevtoolsPipe {
        to_browser: pipe::Sender::from_owned_fd(to_browser)?,
        from_browser: BufReader::new(pipe::Receiver::from_owned_fd(from_browser)?),
    };
    Ok((ours, ChildEnds { commands, events }))
}

impl DevtoolsPipe {
    async fn send(&mut self, message: &[u8]) -> io::Result<()> {
        self.to_browser.write_all(message).await?;
        self.to_browser.write_all(b"\0").await
    }

    /// The next message, without its NUL; `None` once the browser closed its end (it exited).
    async fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<()>> {
        buf.clear();
        if self.from_browser.read_until(0, buf).await? == 0 {
            return Ok(None);
        }
        if buf.last() == Some(&0) {
            buf.pop();
        } else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the browser closed the pipe mid-message",
            ));
        }
        Ok(Some(()))
    }

    /// Asks the browser for its version: the answer proves it started and reads its pipe (what the
    /// "DevTools listening on" line said with a port). An error means it closed the pipe (exited).
    pub async fn probe(&mut self) -> io::Result<String> {
        let call = format!(r#"{{"id":{PROBE_ID},"method":"Browser.getVersion"}}"#);
        self.send(call.as_bytes()).await?;
        let mut buf = Vec::new();
        loop {
            if self.recv(&mut buf).await?.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the browser closed its DevTools pipe",
                ));
            }
            let Ok(message) = serde_json::from_slice::<serde_json::Value>(&buf) else { continue };
            if message["id"].as_u64() == Some(PROBE_ID) {
                return Ok(message["result"]["product"].as_str().unwrap_or("unknown").to_owned());
            }
        }
    }
}

/// Test support: the browser's side of the pipes, played by a test.
#[cfg(test)]
pub(super) mod fake {
    use super::*;

    /// A pipe whose "browser" is the test: it reads what the client sent and can answer.
    pub struct FakeBrowser {
        pub commands: BufReader<pipe::Receiver>,
        pub events: pipe::Sender,
    }

    pub fn relay_and_fake_browser() -> (DevtoolsPipe, FakeBrowser) {
        let (ours, theirs) = create().expect("pipes");
        let fake = FakeBrowser {
            commands: BufReader::new(pipe::Receiver::from_owned_fd(theirs.commands).expect("rx")),
            events: pipe::Sender::from_owned_fd(theirs.events).expect("tx"),
        };
        (ours, fake)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_probe_reports_a_browser_that_closed_its_pipe() {
        let (mut ours, browser) = fake::relay_and_fake_browser();
        drop(browser);
        assert!(ours.probe().await.is_err());
    }
}
