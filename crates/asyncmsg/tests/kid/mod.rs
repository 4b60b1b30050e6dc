//! A child process of a test: the test binary run again with a role (its
//! `child_entry` test, with `ASYNCMSG_TEST_ROLE` and `ASYNCMSG_TEST_ARGS`),
//! talking through lines that start with `@@ ` on its stdout and commands on
//! its stdin.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// In a child process, the role it was started with and its arguments (see
/// [`Kid::spawn`]); `None` in the test process itself.
pub fn role() -> Option<(String, Vec<String>)> {
    let role = std::env::var("ASYNCMSG_TEST_ROLE").ok()?;
    let args = std::env::var("ASYNCMSG_TEST_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Some((role, args))
}

/// The most a child may stay silent, or take to exit, before the test counts
/// it as hung.
pub const WAIT: Duration = Duration::from_secs(30);

/// A child process running one role; killed (and reaped) when dropped.
pub struct Kid {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Kid {
    pub fn spawn(role: &str, args: &[String]) -> Kid {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "child_entry", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env("ASYNCMSG_TEST_ROLE", role)
            .env("ASYNCMSG_TEST_ARGS", args.join(" "))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a child");
        let out = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // libtest's own "test child_entry ... " may start the line.
                if let Some(at) = line.find("@@ ") {
                    let _ = tx.send(line[at + 3..].to_owned());
                }
            }
        });
        Kid {
            child,
            stdin,
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's next line, within [`WAIT`].
    pub fn line(&self) -> String {
        self.next_line()
            .unwrap_or_else(|| panic!("child {} exited without a word", self.pid()))
    }

    /// The child's next line, within [`WAIT`]; `None` once it exited.
    pub fn next_line(&self) -> Option<String> {
        match self.lines.recv_timeout(WAIT) {
            Ok(l) => Some(l),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("child {} said nothing for {WAIT:?}", self.pid())
            }
        }
    }

    pub fn tell(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("the child's stdin");
        writeln!(stdin, "{command}").expect("write to the child");
        stdin.flush().expect("write to the child");
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// Waits (bounded) for the child to exit; its exit code.
    pub fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "child {} did not exit",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
