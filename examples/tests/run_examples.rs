//! Runs every example program's logic, as `cargo run --example …` does.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use asyncmsg_examples::{example1, example2, example3, example4, example5, example6, quickstart};

#[test]
fn quickstart_runs() {
    quickstart::run().unwrap();
}

#[test]
fn example1_one_message_trigger_one() {
    example1::run().unwrap();
}

#[test]
fn example2_trigger_three_one_batch() {
    example2::run().unwrap();
}

#[test]
fn example3_flush_wakes_getter_thread() {
    example3::run().unwrap();
}

#[test]
fn example4_pulse_then_get() {
    example4::run().unwrap();
}

#[test]
fn example5_time_trigger_two_seconds() {
    let delay = example5::run().unwrap();
    assert!(delay >= example5::TRIGGER_TIME, "{delay:?}");
    assert!(
        delay < example5::TRIGGER_TIME + Duration::from_secs(2),
        "{delay:?}"
    );
}

/// A name no other test, nor another run of these tests, uses.
fn unique(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "examples-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs the example 6 server and client as two threads, the client reaching
/// the server at `address(name)` and putting every 50 ms; returns what each
/// printed.
fn example6_run(address: impl Fn(&str) -> String, count: u64) -> (String, String) {
    let name = unique("example6");
    let server = example6::Server::start(&name).unwrap();
    let (done_tx, done) = mpsc::channel();
    let tx = done_tx.clone();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let r = server.serve(Some(count), &mut out);
        let _ = tx.send(("server", r, out));
    });
    let target = address(&name);
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let r = example6::client(&target, Some(count), Duration::from_millis(50), &mut out);
        let _ = done_tx.send(("client", r, out));
    });
    let (mut server_out, mut client_out) = (String::new(), String::new());
    for _ in 0..2 {
        let (who, result, out) = done
            .recv_timeout(Duration::from_secs(60))
            .expect("example 6 finished within a minute");
        let out = String::from_utf8(out).unwrap();
        let n = result.unwrap_or_else(|e| panic!("{who}: {e:#}\n{out}"));
        assert_eq!(n, count, "{who}:\n{out}");
        match who {
            "server" => server_out = out,
            _ => client_out = out,
        }
    }
    (server_out, client_out)
}

/// Checks that `out` has one line per message, `line(i)` for i = 1..=count,
/// in this order.
fn in_order(out: &str, count: u64, line: impl Fn(u64) -> String) {
    let mut lines = out.lines();
    for i in 1..=count {
        let want = line(i);
        assert!(
            lines.by_ref().any(|l| l.contains(&want)),
            "{want:?} missing or out of order in:\n{out}"
        );
    }
}

fn check_example6(server: &str, client: &str, count: u64) {
    in_order(server, count, |i| {
        format!("received \"message #{i}\" from pid ")
    });
    assert!(
        server.contains(&format!("server: {count} messages received")),
        "{server}"
    );
    in_order(client, count, |i| format!("client: put \"message #{i}\""));
    in_order(client, count, |i| format!("client: delivered message #{i}"));
    assert!(
        client.contains(&format!("client: {count} messages delivered")),
        "{client}"
    );
}

#[test]
fn example6_server_and_client_over_shared_memory() {
    let (server, client) = example6_run(|name| format!("shm://{name}"), 5);
    check_example6(&server, &client, 5);
}

#[test]
fn example6_server_and_client_by_name() {
    let (server, client) = example6_run(|name| name.to_owned(), 5);
    check_example6(&server, &client, 5);
}

#[test]
fn example6_client_without_a_server_says_so() {
    let name = unique("example6-nobody");
    let mut out = Vec::new();
    let err = example6::client(&name, Some(1), Duration::from_millis(50), &mut out).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("no server publishes") && text.contains(&name),
        "{text}"
    );
}

#[test]
fn example6_arguments() {
    let parse = |a: &[&str]| example6::Args::parse(a.iter().map(|s| s.to_string()));
    let a = parse(&[]).unwrap();
    assert_eq!((a.name.as_str(), a.count), (example6::DEFAULT_NAME, None));
    let a = parse(&["sensors", "--count", "2"]).unwrap();
    assert_eq!((a.name.as_str(), a.count), ("sensors", Some(2)));
    for bad in [
        &["--count"][..],
        &["--count", "0"],
        &["--count", "x"],
        &["a", "b"],
        &["--what"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

/// The example program `name`, as `cargo test` builds it beside the test
/// binary (`target/<profile>/examples/`).
fn example_program(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let program = profile_dir.join("examples").join(name);
    program.is_file().then_some(program)
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

/// A child process, killed and reaped if still running when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Running {
    fn start(program: &Path, args: &[&str], runtime: &Path) -> Running {
        Running(
            Command::new(program)
                .args(args)
                .env("ASYNCMSG_RUNTIME_DIR", runtime)
                .env("RUST_BACKTRACE", "0")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", program.display())),
        )
    }

    /// Waits at most `limit` for the exit; returns success, stdout, stderr.
    fn finish(mut self, limit: Duration) -> (bool, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = self.0.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.success(), out, err)
    }
}

#[test]
fn example6_programs_in_two_processes() {
    let (Some(server), Some(client)) = (
        example_program("example6_server"),
        example_program("example6_client"),
    ) else {
        eprintln!("the example6 programs are not built; `cargo test` builds them");
        return;
    };
    let dir = RuntimeDir::new();
    let runtime = dir.0.as_path();
    let name = unique("example6-procs");

    let mut srv = Running::start(&server, &[&name, "--count", "2"], runtime);
    // Wait (bounded) for the server's first line: it publishes before it.
    let out = srv.0.stdout.take().expect("stdout");
    let (line_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = line_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the server printed its first line");
    assert!(
        first.starts_with(&format!("server: waiting on {name:?}")),
        "{first}"
    );

    // The client puts one message a second: two take about a second.
    let (ok, client_out, client_err) =
        Running::start(&client, &[&name, "--count", "2"], runtime).finish(Duration::from_secs(30));
    let (server_ok, _, server_err) = srv.finish(Duration::from_secs(30));
    let server_out = reader.join().unwrap();
    assert!(ok, "client:\n{client_out}\n{client_err}");
    assert!(server_ok, "server:\n{server_out}\n{server_err}");
    check_example6(&server_out, &client_out, 2);
}
