//! Runs the built `asyncmsg` binary and checks what `demo` prints.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A runtime directory of its own (where names live, and the QUIC trust
/// root), removed when dropped.
struct RuntimeDir(PathBuf);

impl RuntimeDir {
    fn new() -> RuntimeDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "asyncmsg-demo-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a runtime directory");
        RuntimeDir(dir)
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `asyncmsg ARGS` in a runtime directory of its own, killing it if it
/// takes longer than `limit`.
fn asyncmsg(args: &[&str], limit: Duration) -> Output {
    let runtime = RuntimeDir::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_asyncmsg"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("ASYNCMSG_RUNTIME_DIR", &runtime.0)
        .env("ASYNCMSG_HOME", runtime.0.join("home"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start asyncmsg");
    // Drain both pipes on their own threads so a chatty child cannot block.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for asyncmsg") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "asyncmsg {args:?} ran longer than {limit:?}; stdout so far:\n{}",
                String::from_utf8_lossy(&out.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Parses `HOP: N messages in S s = R M msg/s, all delivered in order`.
fn throughput_line<'a>(stdout: &'a str, hop: &str) -> (&'a str, u64) {
    let prefix = format!("{hop}: ");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&prefix) && l.ends_with(", all delivered in order"))
        .unwrap_or_else(|| panic!("no {hop} throughput line in:\n{stdout}"));
    let count = line[prefix.len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no message count in {line:?}"));
    assert!(line.contains(" M msg/s"), "{line:?}");
    (line, count)
}

/// Every hop the demo runs over by default.
const HOPS: [&str; 3] = ["inproc", "shm", "quic"];

#[test]
fn demo_tours_and_measures_every_hop() {
    let o = asyncmsg(&["demo", "--count", "20000"], Duration::from_secs(60));
    let (stdout, stderr) = text(&o);
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        o.status
    );

    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("asyncmsg demo: pid "), "{first:?}");
    let pid: u32 = first["asyncmsg demo: pid ".len()..]
        .trim()
        .parse()
        .expect("a pid");

    // The tour, on each hop: six messages, each with its info, and six
    // callbacks. The receiver is this process on every hop.
    let received: Vec<_> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("received "))
        .collect();
    assert_eq!(received.len(), 6 * HOPS.len(), "{stdout}");
    for line in &received {
        assert!(line.contains(&format!(" pid {pid} ")), "{line:?}");
        assert!(
            line.contains(" coid ") && line.contains(" seq "),
            "{line:?}"
        );
    }
    // Within the host the sender is on this node (nd 0); over QUIC it is a
    // second node, the first other node the receiver heard from (nd 1).
    let from_node = |nd: u32| {
        received
            .iter()
            .filter(|l| l.contains(&format!(" nd {nd} pid ")))
            .count()
    };
    assert_eq!(from_node(0), 6 * (HOPS.len() - 1), "{stdout}");
    assert_eq!(from_node(1), 6, "{stdout}");
    assert!(
        stdout.contains("\n  the senders' node connects to quic://127.0.0.1:"),
        "{stdout}"
    );
    let delivered: Vec<_> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("delivered "))
        .collect();
    assert_eq!(delivered.len(), 6 * HOPS.len(), "{stdout}");
    assert!(delivered.iter().all(|l| l.contains(": ok,")), "{stdout}");
    assert_eq!(
        stdout
            .matches("6 messages received, 6 delivery callbacks ok")
            .count(),
        HOPS.len(),
        "{stdout}"
    );
    for hop in HOPS {
        assert!(
            stdout.contains(&format!("\n{hop}: 3 sender threads put 2 messages each")),
            "no {hop} tour in:\n{stdout}"
        );
        let (_, count) = throughput_line(&stdout, hop);
        assert_eq!(count, 20_000);
    }

    // The synchronous companion: one receive loop, requests and pulses.
    for expected in [
        "\nsync: one receive loop serves a client's requests",
        "  connect request from pid ",
        "  request \"chid?\" from pid ",
        "  pulse from chid ",
        "got \"hello through the companion\"",
        "  disconnect pulse: the client left",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }

    // Shared memory and QUIC are measured against a child process, not this
    // one.
    for hop in ["shm", "quic"] {
        let header = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{hop}: 20000 messages of ")))
            .unwrap_or_else(|| panic!("no {hop} throughput header in:\n{stdout}"));
        let child: u32 = header
            .split(" to child process ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no child pid in {header:?}"));
        assert_ne!(child, pid, "{header:?}");
        assert!(
            stdout.contains(&format!("  child process {child} took every message, ")),
            "{stdout}"
        );
        if hop == "quic" {
            assert!(header.contains(" at 127.0.0.1:"), "{header:?}");
        }
    }
}

#[test]
fn demo_over_quic_alone() {
    let o = asyncmsg(
        &["demo", "--hop", "quic", "--count", "5000"],
        Duration::from_secs(60),
    );
    let (stdout, stderr) = text(&o);
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        o.status
    );
    assert!(
        !stdout.contains("\ninproc") && !stdout.contains("\nshm"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nquic: 3 sender threads put 2 messages each"),
        "{stdout}"
    );
    let (_, count) = throughput_line(&stdout, "quic");
    assert_eq!(count, 5000);
    assert!(stdout.contains(" to child process "), "{stdout}");
}

#[test]
fn demo_over_shm_alone() {
    let o = asyncmsg(
        &["demo", "--hop", "shm", "--no-tour", "--count", "5000"],
        Duration::from_secs(60),
    );
    let (stdout, stderr) = text(&o);
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        o.status
    );
    assert!(!stdout.contains("\ninproc"), "{stdout}");
    let (_, count) = throughput_line(&stdout, "shm");
    assert_eq!(count, 5000);
    assert!(stdout.contains(" to child process "), "{stdout}");
}

#[test]
fn demo_with_odd_batches_and_a_small_window() {
    // A count that does not divide among the senders, a trigger that does not
    // divide the count (the last batch goes by flush) and a window smaller than
    // a get: every path of the run, still checked for order and completeness.
    let o = asyncmsg(
        &[
            "demo",
            "--no-tour",
            "--count",
            "10007",
            "--senders",
            "3",
            "--trigger",
            "7",
            "--window",
            "16",
            "--size",
            "12",
        ],
        Duration::from_secs(60),
    );
    let (stdout, stderr) = text(&o);
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        o.status
    );
    assert!(
        !stdout.contains("received "),
        "--no-tour still toured:\n{stdout}"
    );
    for hop in HOPS {
        let (_, count) = throughput_line(&stdout, hop);
        assert_eq!(count, 10_007);
    }
}

#[test]
fn demo_refuses_bad_arguments() {
    let o = asyncmsg(&["demo", "--size", "4"], Duration::from_secs(30));
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--size"), "{stderr}");
}

#[test]
fn demo_refuses_a_trigger_above_the_window() {
    let o = asyncmsg(
        &["demo", "--no-tour", "--trigger", "64", "--window", "32"],
        Duration::from_secs(30),
    );
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could never fire"), "{stderr}");
}

#[test]
fn help_lists_the_demo() {
    let o = asyncmsg(&["--help"], Duration::from_secs(30));
    let (stdout, _) = text(&o);
    assert!(o.status.success());
    assert!(stdout.contains("demo"), "{stdout}");
}
