//! Tests of the runtime directory: names and node sockets.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use asyncmsg_shm::names::{
    Entry, check_name, list, lookup, node_socket_path, publish, remove_stale_sockets, runtime_dir,
    withdraw,
};

/// A fresh directory, removed when dropped.
struct TestDir(PathBuf);

impl TestDir {
    fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("asyncmsg-names-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn me() -> u32 {
    std::process::id()
}

fn entry(name: &str, pid: u32, chid: i32) -> Entry {
    Entry {
        name: name.to_owned(),
        pid,
        chid,
    }
}

#[test]
fn publish_lookup_withdraw() {
    let dir = TestDir::new();
    let d = dir.path();
    assert_eq!(lookup(d, "svc").unwrap(), None);
    publish(d, "svc", me(), 3).unwrap();
    assert_eq!(lookup(d, "svc").unwrap(), Some(entry("svc", me(), 3)));
    assert_eq!(
        fs::read_to_string(d.join("names/svc")).unwrap(),
        format!("{} 3\n", me())
    );
    // The very same entry again is fine.
    publish(d, "svc", me(), 3).unwrap();
    withdraw(d, "svc", me(), 3).unwrap();
    assert_eq!(lookup(d, "svc").unwrap(), None);
    // Missing is fine too.
    withdraw(d, "svc", me(), 3).unwrap();
    // Negative channel ids and long names round-trip.
    let long = "n".repeat(255);
    publish(d, &long, me(), -7).unwrap();
    assert_eq!(lookup(d, &long).unwrap(), Some(entry(&long, me(), -7)));
}

#[test]
fn a_live_owner_keeps_its_name() {
    let dir = TestDir::new();
    let d = dir.path();
    publish(d, "svc", me(), 1).unwrap();
    let err = publish(d, "svc", me(), 2).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(lookup(d, "svc").unwrap(), Some(entry("svc", me(), 1)));
    // pid 1 always exists (alive even when we may not signal it).
    publish(d, "init", 1, 0).unwrap();
    let err = publish(d, "init", me(), 0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
}

#[test]
fn a_dead_process_name_is_taken_over() {
    let dir = TestDir::new();
    let d = dir.path();
    let dead = dead_pid();
    publish(d, "svc", dead, 1).unwrap();
    publish(d, "svc", me(), 2).unwrap();
    assert_eq!(lookup(d, "svc").unwrap(), Some(entry("svc", me(), 2)));

    // Lookup removes a stale entry.
    publish(d, "old", dead, 1).unwrap();
    assert_eq!(lookup(d, "old").unwrap(), None);
    assert!(!d.join("names/old").exists());

    // So does publish meeting a file that is not an entry.
    fs::write(d.join("names/junk"), b"not an entry").unwrap();
    publish(d, "junk", me(), 4).unwrap();
    assert_eq!(lookup(d, "junk").unwrap(), Some(entry("junk", me(), 4)));
    fs::write(d.join("names/junk2"), b"").unwrap();
    assert_eq!(lookup(d, "junk2").unwrap(), None);
}

#[test]
fn racing_takeovers_have_one_winner() {
    let dir = TestDir::new();
    let d = dir.path().to_path_buf();
    let dead = dead_pid();
    for round in 0..20 {
        let name = format!("race{round}");
        publish(&d, &name, dead, 0).unwrap();
        let barrier = Arc::new(Barrier::new(6));
        let threads: Vec<_> = (1..=6)
            .map(|chid| {
                let (d, name, barrier) = (d.clone(), name.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    match publish(&d, &name, me(), chid) {
                        Ok(()) => Some(chid),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => None,
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        let winners: Vec<i32> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(
            lookup(&d, &name).unwrap(),
            Some(entry(&name, me(), winners[0]))
        );
    }
}

#[test]
fn list_is_sorted_and_stale_free() {
    let dir = TestDir::new();
    let d = dir.path();
    assert_eq!(list(d).unwrap(), vec![], "no names/ yet");
    let dead = dead_pid();
    publish(d, "b", me(), 2).unwrap();
    publish(d, "a", me(), 1).unwrap();
    publish(d, "stale", dead, 9).unwrap();
    publish(d, "c", me(), 3).unwrap();
    fs::write(d.join("names/garbage"), b"12").unwrap();
    let dead_temp = d.join(format!("names/.tmp-{dead}-0"));
    let live_temp = d.join(format!("names/.tmp-{}-999999", me()));
    fs::write(&dead_temp, b"").unwrap();
    fs::write(&live_temp, b"").unwrap();
    fs::create_dir(d.join("names/adir")).unwrap();

    assert_eq!(
        list(d).unwrap(),
        vec![
            entry("a", me(), 1),
            entry("b", me(), 2),
            entry("c", me(), 3)
        ]
    );
    assert!(!d.join("names/stale").exists());
    assert!(!d.join("names/garbage").exists());
    assert!(!dead_temp.exists());
    assert!(live_temp.exists());
    assert!(d.join("names/adir").is_dir());
}

#[test]
fn bad_names_are_rejected() {
    let dir = TestDir::new();
    let d = dir.path();
    let long = "x".repeat(256);
    for bad in ["", "a/b", "/", "a\0b", ".", "..", ".hidden", ".lock", &long] {
        let err = check_name(bad).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        for err in [
            publish(d, bad, me(), 1).unwrap_err(),
            withdraw(d, bad, me(), 1).unwrap_err(),
            lookup(d, bad).unwrap_err(),
        ] {
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
    for good in ["a", "a.b", "sensors-1", "ünïcode", "a..", &"y".repeat(255)] {
        check_name(good).unwrap();
    }
    assert!(list(d).unwrap().is_empty());
}

#[test]
fn withdraw_leaves_someone_elses_entry() {
    let dir = TestDir::new();
    let d = dir.path();
    publish(d, "svc", me(), 1).unwrap();
    withdraw(d, "svc", me(), 2).unwrap();
    withdraw(d, "svc", me() + 1, 1).unwrap();
    assert_eq!(lookup(d, "svc").unwrap(), Some(entry("svc", me(), 1)));
}

#[test]
fn stale_node_sockets_are_removed() {
    let dir = TestDir::new();
    let d = dir.path();
    let dead = dead_pid();
    assert_eq!(node_socket_path(d, 42), d.join("node-42.sock"));
    let _live = UnixListener::bind(node_socket_path(d, me())).unwrap();
    drop(UnixListener::bind(node_socket_path(d, dead)).unwrap());
    fs::write(d.join("node-x.sock"), b"").unwrap();
    fs::write(d.join("other"), b"").unwrap();
    assert_eq!(remove_stale_sockets(d).unwrap(), 1);
    assert!(node_socket_path(d, me()).exists());
    assert!(!node_socket_path(d, dead).exists());
    assert!(d.join("node-x.sock").exists());
    assert_eq!(remove_stale_sockets(d).unwrap(), 0);
}

/// Set in the environment of the child processes of
/// `runtime_dir_comes_from_the_environment`.
const CHILD_MARK: &str = "ASYNCMSG_NAMES_TEST_EXPECT";

/// Runs `runtime_dir_child` in a child process with `env` set.
fn run_child(expect: &Path, env: &[(&str, Option<&Path>)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "runtime_dir_child", "--test-threads=1"])
        .env(CHILD_MARK, expect);
    for (key, value) in env {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

#[test]
fn runtime_dir_comes_from_the_environment() {
    let dir = TestDir::new();
    let explicit = dir.path().join("explicit/rt");
    run_child(&explicit, &[("ASYNCMSG_RUNTIME_DIR", Some(&explicit))]);
    let xdg = dir.path().join("xdg");
    fs::create_dir(&xdg).unwrap();
    run_child(
        &xdg.join("asyncmsg"),
        &[
            ("ASYNCMSG_RUNTIME_DIR", None),
            ("XDG_RUNTIME_DIR", Some(&xdg)),
        ],
    );
    // Created directories are private; an existing one is left as it was.
    for p in [
        dir.path().join("explicit"),
        explicit.clone(),
        xdg.join("asyncmsg"),
    ] {
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", p.display());
    }
    assert_ne!(fs::metadata(&xdg).unwrap().permissions().mode() & 0o777, 0);
}

/// Does its work only in a child process of
/// `runtime_dir_comes_from_the_environment`, which sets the environment.
#[test]
fn runtime_dir_child() {
    let Some(expect) = std::env::var_os(CHILD_MARK) else {
        return;
    };
    let dir = runtime_dir().unwrap();
    assert_eq!(dir, PathBuf::from(expect));
    assert!(dir.join("names").is_dir());
    publish(&dir, "child", me(), 1).unwrap();
    assert_eq!(list(&dir).unwrap(), vec![entry("child", me(), 1)]);
}
