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

/// The period the tests' clients put at.
const TEST_PERIOD: Duration = Duration::from_millis(20);

/// Runs the example 6 server and client as two threads, the client opening
/// the server at `address(name)` and putting every 20 ms; returns what each
/// printed.
fn example6_run(address: impl Fn(&str) -> String, count: u64) -> (String, String) {
    let name = unique("example6");
    let server = example6::Server::start(&name).unwrap();
    let chid = server.async_chid();
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
        let r = example6::client(&target, Some(count), TEST_PERIOD, &mut out);
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
    assert_eq!(example6_chid(&client_out), chid, "{client_out}");
    (server_out, client_out)
}

/// Checks that `out` has a line containing each of `wanted`, in this order.
fn in_sequence(out: &str, wanted: impl IntoIterator<Item = String>) {
    let mut lines = out.lines();
    for want in wanted {
        assert!(
            lines.by_ref().any(|l| l.contains(&want)),
            "{want:?} missing or out of order in:\n{out}"
        );
    }
}

/// The asynchronous channel id the client was given, from its output.
fn example6_chid(client: &str) -> i32 {
    client
        .lines()
        .find_map(|l| l.strip_prefix("client: asyncmsg channel is pid "))
        .and_then(|rest| rest.split_once(" chid "))
        .and_then(|(_, chid)| chid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no channel id in:\n{client}"))
}

/// Checks both sides' output: the server accepted the open, answered the
/// channel id request with the id the client used, printed every message and
/// then saw the client leave; the client saw every delivery callback.
fn check_example6(server: &str, client: &str, count: u64) {
    let chid = example6_chid(client);
    let first = server.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("server: waiting on ")
            && first.ends_with(&format!("asyncmsg chid {chid})")),
        "{server}"
    );
    in_sequence(
        server,
        [
            "opened the name (scoid ".to_owned(),
            format!("asked for the asyncmsg channel id: replied chid {chid}"),
        ]
        .into_iter()
        .chain((1..=count).map(|i| format!("server: received \"message #{i}\" from pid ")))
        .chain([
            "server: a client left (scoid ".to_owned(),
            format!("server: {count} messages received"),
        ]),
    );
    in_sequence(
        client,
        [
            "client: opened ".to_owned(),
            "client: asyncmsg channel is pid ".to_owned(),
            "client: attached (coid ".to_owned(),
        ]
        .into_iter()
        .chain((1..=count).map(|i| format!("client: put \"message #{i}\"")))
        .chain([format!("client: {count} messages delivered")]),
    );
    in_sequence(
        client,
        (1..=count).map(|i| format!("client: delivered message #{i}")),
    );
}

#[test]
fn example6_server_and_client_by_name() {
    let (server, client) = example6_run(|name| name.to_owned(), 5);
    check_example6(&server, &client, 5);
}

/// `shm://NAME` takes the synchronous requests over the node socket even in
/// one process.
#[test]
fn example6_server_and_client_over_the_node_socket() {
    let (server, client) = example6_run(|name| format!("shm://{name}"), 5);
    check_example6(&server, &client, 5);
}

/// Requests of another type are refused with `ENOSYS`; the server counts
/// every client that opened its name and goes on until the last one left.
#[test]
fn example6_server_refuses_other_requests() {
    let name = unique("example6-enosys");
    let server = example6::Server::start(&name).unwrap();
    let chid = server.async_chid();
    let serving = std::thread::spawn(move || {
        let mut out = Vec::new();
        let r = server.serve(Some(1), &mut out);
        (r, String::from_utf8(out).unwrap())
    });
    let wait = Duration::from_secs(10);
    // The open returns once the server accepted it: wait for that, bounded.
    let (opened_tx, opened) = mpsc::channel();
    let target = name.clone();
    std::thread::spawn(move || {
        let _ = opened_tx.send(asyncmsg::Node::new().unwrap().open(target.as_str()));
    });
    let probe = opened
        .recv_timeout(wait)
        .expect("the server accepted the open")
        .unwrap();
    for bad in [&7u16.to_le_bytes()[..], &[2]] {
        assert_eq!(
            probe.send_timeout(bad, wait),
            Err(asyncmsg::SendError::Failed(example6::ENOSYS))
        );
    }
    let reply = probe
        .send_timeout(&example6::ASYNC_CHID_REQUEST.to_le_bytes(), wait)
        .unwrap();
    assert_eq!((reply.status, reply.data), (0, chid.to_le_bytes().to_vec()));
    drop(probe);

    let mut client_out = Vec::new();
    let n = example6::client(&name, Some(1), TEST_PERIOD, &mut client_out);
    let client_out = String::from_utf8(client_out).unwrap();
    assert_eq!(n.unwrap_or_else(|e| panic!("{e:#}\n{client_out}")), 1);
    let (n, server_out) = serving.join().unwrap();
    assert_eq!(n.unwrap_or_else(|e| panic!("{e:#}\n{server_out}")), 1);
    in_sequence(
        &server_out,
        [
            "sent message type Some(7): ENOSYS",
            "sent message type None: ENOSYS",
            "replied chid",
            "server: a client left",
            "opened the name",
            "server: received \"message #1\"",
            "server: a client left",
            "server: 1 messages received",
        ]
        .map(String::from),
    );
    check_example6(&server_out, &client_out, 1);
}

#[test]
fn example6_client_without_a_server_says_so() {
    let name = unique("example6-nobody");
    let mut out = Vec::new();
    let err = example6::client(&name, Some(1), TEST_PERIOD, &mut out).unwrap_err();
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

/// Runs the example 6 programs in two processes, the client opening
/// `address(name)`, both for `--count 2` (the client puts once a second).
fn example6_programs(address: impl Fn(&str) -> String) {
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

    // The client puts one message a second: two take about a second. The
    // server ends once it has both and the client has gone.
    let target = address(&name);
    let running = Running::start(&client, &[&target, "--count", "2"], runtime);
    let client_pid = running.0.id();
    let (ok, client_out, client_err) = running.finish(Duration::from_secs(30));
    let (server_ok, _, server_err) = srv.finish(Duration::from_secs(30));
    let server_out = reader.join().unwrap();
    assert!(ok, "client:\n{client_out}\n{client_err}");
    assert!(server_ok, "server:\n{server_out}\n{server_err}");
    check_example6(&server_out, &client_out, 2);
    // Everything came from the client's process.
    in_sequence(
        &server_out,
        [
            format!("server: pid {client_pid} opened the name"),
            format!("server: pid {client_pid} asked for the asyncmsg channel id"),
            format!("\"message #1\" from pid {client_pid} "),
            format!("\"message #2\" from pid {client_pid} "),
        ],
    );
}

#[test]
fn example6_programs_in_two_processes() {
    example6_programs(|name| name.to_owned());
}

#[test]
fn example6_programs_in_two_processes_shm_address() {
    example6_programs(|name| format!("shm://{name}"));
}
