//! `asyncmsg serve`, `send` and `names` as separate processes on one host,
//! talking over shared memory.
//!
//! Every process of a test shares a runtime directory of that test's own, so
//! tests running at the same time never see each other's names. Every wait is
//! bounded: a process that outlives its limit is killed and the test fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a step may take before the test calls it hung.
const LIMIT: Duration = Duration::from_secs(60);

/// A name (or directory suffix) no other test uses.
fn unique(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "cli-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A runtime directory of its own (where names live), removed when dropped.
struct RuntimeDir(PathBuf);

impl RuntimeDir {
    fn new() -> RuntimeDir {
        let dir = std::env::temp_dir().join(unique("runtime"));
        std::fs::create_dir_all(&dir).expect("create a runtime directory");
        RuntimeDir(dir)
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One output stream of a child: its lines as they come, and all of it.
struct Stream {
    lines: Receiver<String>,
    all: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Stream {
    fn new(pipe: impl std::io::Read + Send + 'static) -> Stream {
        let (tx, lines) = mpsc::channel();
        let all = Arc::new(Mutex::new(String::new()));
        let a = all.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                {
                    let mut all = a.lock().unwrap_or_else(|e| e.into_inner());
                    all.push_str(&line);
                    all.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        Stream {
            lines,
            all,
            reader: Some(reader),
        }
    }

    /// Waits (bounded) for a line that satisfies `want`.
    fn wait_for(&self, want: impl Fn(&str) -> bool, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Everything the child wrote (call after it exited: waits for the end).
    fn text(&mut self) -> String {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.all.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running `asyncmsg` process; killed and reaped if dropped still running.
struct Proc {
    args: Vec<String>,
    child: Child,
    out: Stream,
    err: Stream,
    status: Option<ExitStatus>,
}

impl Proc {
    fn start(runtime: &Path, args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_asyncmsg"))
            .args(args)
            .env("ASYNCMSG_RUNTIME_DIR", runtime)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start asyncmsg");
        let out = Stream::new(child.stdout.take().expect("stdout"));
        let err = Stream::new(child.stderr.take().expect("stderr"));
        Proc {
            args: args.iter().map(|a| a.to_string()).collect(),
            child,
            out,
            err,
            status: None,
        }
    }

    /// Whether the process has exited (it is reaped by `finish`).
    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for `serve`'s start line on stderr.
    fn wait_serving(&mut self, name: &str) {
        let want = format!("serving {name} (pid {}, chid ", self.pid());
        if self.err.wait_for(|l| l.starts_with(&want), LIMIT).is_none() {
            self.fail("never printed its serving line");
        }
    }

    /// Waits at most `limit` for the process to exit; kills it and fails the
    /// test if it does not. Returns its exit status, stdout and stderr.
    fn finish(&mut self, limit: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for asyncmsg") {
                break status;
            }
            if Instant::now() > deadline {
                self.fail(&format!("ran longer than {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.status = Some(status);
        (status, self.out.text(), self.err.text())
    }

    /// Kills the process and fails the test with what it printed.
    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        panic!(
            "asyncmsg {:?} {why}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.out.text(),
            self.err.text()
        );
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the pid of our own, not yet reaped, child.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `asyncmsg ARGS` to the end (bounded).
fn run(runtime: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    Proc::start(runtime, args).finish(LIMIT)
}

/// Parses `delivered N, failed M`.
fn delivered_failed(stdout: &str) -> (u64, u64) {
    stdout
        .lines()
        .find_map(|l| {
            let (d, f) = l.strip_prefix("delivered ")?.split_once(", failed ")?;
            Some((d.parse().ok()?, f.parse().ok()?))
        })
        .unwrap_or_else(|| panic!("no `delivered N, failed M` line in:\n{stdout}"))
}

#[test]
fn serve_and_send_100000_messages_across_processes() {
    let runtime = RuntimeDir::new();
    let name = unique("bulk");
    let mut serve = Proc::start(
        &runtime.0,
        &["serve", &name, "--count", "100000", "--quiet"],
    );
    serve.wait_serving(&name);
    let (status, stdout, stderr) = run(
        &runtime.0,
        &["send", &name, "--count", "100000", "--size", "64"],
    );
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        stdout.trim(),
        "delivered 100000, failed 0",
        "stderr:\n{stderr}"
    );
    let (status, stdout, stderr) = serve.finish(LIMIT);
    assert!(status.success(), "{status}\nstderr:\n{stderr}");
    assert_eq!(
        stdout.trim(),
        "received 100000 messages",
        "stderr:\n{stderr}"
    );
}

#[test]
fn serve_prints_each_message_and_stops_on_sigterm() {
    let runtime = RuntimeDir::new();
    let name = unique("lines");
    let mut serve = Proc::start(&runtime.0, &["serve", &name]);
    serve.wait_serving(&name);
    let target = format!("shm://{name}");
    let (status, stdout, stderr) = run(
        &runtime.0,
        &["send", &target, "--count", "3", "--message", "hello there"],
    );
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(stdout.trim(), "delivered 3, failed 0");
    let lines: Vec<String> = (0..3)
        .map(|_| {
            serve
                .out
                .wait_for(|_| true, LIMIT)
                .unwrap_or_else(|| serve.fail("printed fewer than 3 lines"))
        })
        .collect();
    for (seq, line) in lines.iter().enumerate() {
        assert!(line.starts_with("pid "), "{line:?}");
        assert!(line.contains(&format!(" seq {seq} (11 B): ")), "{line:?}");
        assert!(line.ends_with(": hello there"), "{line:?}");
    }
    serve.signal(libc::SIGTERM);
    let (status, stdout, stderr) = serve.finish(LIMIT);
    assert!(status.success(), "{status}\nstderr:\n{stderr}");
    assert!(
        stdout.ends_with("received 3 messages\n"),
        "stdout:\n{stdout}"
    );
}

#[test]
fn names_lists_a_serving_name() {
    let runtime = RuntimeDir::new();
    let (status, stdout, stderr) = run(&runtime.0, &["names"]);
    assert!(status.success(), "{status}\nstderr:\n{stderr}");
    assert_eq!(stdout, "no names published\n");

    let name = unique("listed");
    let mut serve = Proc::start(&runtime.0, &["serve", &name, "--quiet"]);
    serve.wait_serving(&name);
    let (status, stdout, stderr) = run(&runtime.0, &["names"]);
    assert!(status.success(), "{status}\nstderr:\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not listed:\n{stdout}"));
    assert!(
        line.contains(&format!("  pid {}  chid ", serve.pid())),
        "{line:?}"
    );

    // Interrupted, the server withdraws its name.
    serve.signal(libc::SIGINT);
    let (status, stdout, _) = serve.finish(LIMIT);
    assert!(status.success(), "{status}");
    assert_eq!(stdout, "received 0 messages\n");
    let (_, stdout, _) = run(&runtime.0, &["names"]);
    assert_eq!(stdout, "no names published\n");
}

#[test]
fn send_to_an_unknown_name_fails_clearly() {
    let runtime = RuntimeDir::new();
    let name = unique("nobody");
    for target in [name.clone(), format!("shm://{name}")] {
        let (status, stdout, stderr) = run(&runtime.0, &["send", &target]);
        assert!(!status.success(), "{target}: {status}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains("no channel is published as") && stderr.contains(&name),
            "{target}: {stderr}"
        );
    }
}

#[test]
fn a_receiver_killed_mid_run_fails_the_sender() {
    let runtime = RuntimeDir::new();
    let name = unique("killed");
    let count: u64 = 50_000_000;
    let mut serve = Proc::start(&runtime.0, &["serve", &name]);
    serve.wait_serving(&name);
    let mut send = Proc::start(
        &runtime.0,
        &[
            "send",
            &name,
            "--count",
            &count.to_string(),
            "--trigger",
            "4",
            "--window",
            "64",
            "--timeout",
            "30",
        ],
    );
    // Once messages flow, the receiver dies without a word.
    let deadline = Instant::now() + LIMIT;
    while serve
        .out
        .wait_for(|l| l.starts_with("pid "), Duration::from_millis(100))
        .is_none()
    {
        if send.exited() {
            let (status, stdout, stderr) = send.finish(LIMIT);
            panic!("send ended before any message arrived: {status}\n{stdout}\n{stderr}");
        }
        if Instant::now() > deadline {
            serve.fail("printed no message");
        }
    }
    serve.kill();

    let (status, stdout, stderr) = send.finish(LIMIT);
    assert!(!status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let (delivered, failed) = delivered_failed(&stdout);
    assert!(failed > 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(
        delivered + failed,
        count,
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("messages failed"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn send_refuses_bad_arguments() {
    let runtime = RuntimeDir::new();
    let (status, _, stderr) = run(&runtime.0, &["send", "x", "--count", "0"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--count"), "{stderr}");
    let (status, _, stderr) = run(
        &runtime.0,
        &["send", "x", "--trigger", "9", "--window", "8"],
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could never fire"), "{stderr}");
    let (status, _, stderr) = run(&runtime.0, &["serve", "a/b", "--count", "1"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot publish"), "{stderr}");
}
