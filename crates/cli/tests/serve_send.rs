//! `asyncmsg serve`, `send`, `names` and `cert` as separate processes on one
//! host, talking over shared memory or QUIC on loopback.
//!
//! Every process of a test shares a runtime directory of that test's own, so
//! tests running at the same time never see each other's names; its QUIC
//! trust root (`ASYNCMSG_HOME`) is in there too. Every wait is bounded: a
//! process that outlives its limit is killed and the test fails.

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
            .env("ASYNCMSG_HOME", runtime.join("home"))
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

    /// Waits for `serve`'s start line on stderr; returns it.
    fn wait_serving(&mut self, name: &str) -> String {
        let want = format!("serving {name} (pid {}, chid ", self.pid());
        match self.err.wait_for(|l| l.starts_with(&want), LIMIT) {
            Some(line) => line,
            None => self.fail("never printed its serving line"),
        }
    }

    /// Waits for the start line of `serve NAME --listen`; returns the
    /// `HOST:PORT` it listens on.
    fn wait_listening(&mut self, name: &str) -> String {
        let line = self.wait_serving(name);
        match line.rsplit_once(") on quic://") {
            Some((_, addr)) => addr.to_owned(),
            None => self.fail(&format!("listens nowhere: {line:?}")),
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

#[test]
fn serve_and_send_20000_messages_over_quic() {
    let runtime = RuntimeDir::new();
    let name = unique("quic");
    let mut serve = Proc::start(
        &runtime.0,
        &[
            "serve",
            &name,
            "--listen",
            "127.0.0.1:0",
            "--count",
            "20000",
            "--quiet",
        ],
    );
    let addr = serve.wait_listening(&name);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let target = format!("quic://{addr}/{name}");
    let (status, stdout, stderr) = run(
        &runtime.0,
        &["send", &target, "--count", "20000", "--size", "64"],
    );
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        stdout.trim(),
        "delivered 20000, failed 0",
        "stderr:\n{stderr}"
    );
    let (status, stdout, stderr) = serve.finish(LIMIT);
    assert!(status.success(), "{status}\nstderr:\n{stderr}");
    assert_eq!(
        stdout.trim(),
        "received 20000 messages",
        "stderr:\n{stderr}"
    );
    // The first node to use QUIC made the trust root they share.
    assert!(runtime.0.join("home/ca.pem").is_file());
}

#[test]
fn serve_over_quic_shows_the_sending_node() {
    let runtime = RuntimeDir::new();
    let name = unique("quic-lines");
    let mut serve = Proc::start(&runtime.0, &["serve", &name, "--listen", "127.0.0.1:0"]);
    let addr = serve.wait_listening(&name);
    let target = format!("quic://{addr}/{name}");
    let send = Proc::start(
        &runtime.0,
        &["send", &target, "--count", "2", "--message", "over quic"],
    );
    let sender = send.pid();
    let (status, stdout, stderr) = { send }.finish(LIMIT);
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(stdout.trim(), "delivered 2, failed 0");
    for seq in 0..2 {
        let line = serve
            .out
            .wait_for(|_| true, LIMIT)
            .unwrap_or_else(|| serve.fail("printed fewer than 2 lines"));
        // Node descriptor 1: the first other node this one heard from.
        assert!(
            line.starts_with(&format!("nd 1 pid {sender} coid ")),
            "{line:?}"
        );
        assert!(
            line.ends_with(&format!(" seq {seq} (9 B): over quic")),
            "{line:?}"
        );
    }
    serve.signal(libc::SIGTERM);
    let (status, stdout, _) = serve.finish(LIMIT);
    assert!(status.success(), "{status}");
    assert!(stdout.ends_with("received 2 messages\n"), "{stdout}");
}

#[test]
fn send_over_quic_to_nowhere_gives_up_after_retry_for() {
    let runtime = RuntimeDir::new();
    // A UDP port that is taken but never answers QUIC.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    let addr = silent.local_addr().expect("its address");
    let target = format!("quic://{addr}/nobody");
    let start = Instant::now();
    let (status, stdout, stderr) = run(&runtime.0, &["send", &target, "--retry-for", "1"]);
    let took = start.elapsed();
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Nothing was sent: no `delivered` line, and the reason.
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "cannot reach {target:?}: no node answered at {addr} within 1s (--retry-for)"
        )),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn send_over_quic_to_an_unknown_name_fails_clearly() {
    let runtime = RuntimeDir::new();
    let name = unique("quic-other");
    let mut serve = Proc::start(&runtime.0, &["serve", &name, "--listen", "127.0.0.1:0"]);
    let addr = serve.wait_listening(&name);
    let (status, stdout, stderr) = run(&runtime.0, &["send", &format!("quic://{addr}/nobody")]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "the node at {addr} has no channel published as \"nobody\""
        )),
        "{stderr}"
    );
}

#[test]
fn cert_init_creates_the_trust_root_then_finds_it() {
    let runtime = RuntimeDir::new();
    let home = runtime.0.join("elsewhere");
    let home_arg = home.to_str().expect("a UTF-8 path");
    let (status, stdout, stderr) = run(&runtime.0, &["cert", "init", "--home", home_arg]);
    assert!(status.success(), "{status}\nstderr:\n{stderr}");
    let shown = std::fs::canonicalize(&home).expect("the home exists");
    assert_eq!(
        stdout,
        format!("created the trust root in {}\n", shown.display())
    );
    assert!(home.join("ca.pem").is_file() && home.join("ca.key").is_file());
    let (status, stdout, stderr) = run(&runtime.0, &["cert", "init", "--home", home_arg]);
    assert!(status.success(), "{status}\nstderr:\n{stderr}");
    assert_eq!(
        stdout,
        format!("the trust root in {} exists\n", shown.display())
    );
    // Without --home: ASYNCMSG_HOME, which is not where --home pointed.
    let (status, stdout, _) = run(&runtime.0, &["cert", "init"]);
    assert!(status.success(), "{status}");
    assert!(stdout.starts_with("created the trust root in "), "{stdout}");
    assert!(stdout.trim_end().ends_with("/home"), "{stdout}");

    // A file where the directory should be: an error, said plainly.
    let file = runtime.0.join("a-file");
    std::fs::write(&file, "").expect("write a file");
    let (status, stdout, stderr) = run(
        &runtime.0,
        &[
            "cert",
            "init",
            "--home",
            file.to_str().expect("a UTF-8 path"),
        ],
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("cannot set up the trust root in"),
        "{stderr}"
    );
}
