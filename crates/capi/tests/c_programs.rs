//! The C programs of `tests/c/`, compiled against libasyncmsg and its headers
//! and run: each checks what it observes and exits 0 only if all of it held;
//! these tests check the exit status and the lines that matter.

mod common;

use common::{Link, Outcome, RUN_LIMIT, Running, RuntimeDir, compile, compile_and_run, work_dir};
use std::time::Duration;

#[test]
fn put_get() {
    compile_and_run("put_get", "put_get", Link::Shared, &[])
        .assert_success()
        .assert_line("got \"hello, asyncmsg\" from pid")
        .assert_line("callback: err 0 buf same handle 1234")
        .assert_line("delivered 3");
}

#[test]
fn put_get_linked_statically() {
    compile_and_run("put_get_static", "put_get", Link::Static, &[])
        .assert_success()
        .assert_line("callback: err 0 buf same handle 1234")
        .assert_line("delivered 3");
}

#[test]
fn count_trigger() {
    compile_and_run("count_trigger", "count_trigger", Link::Shared, &[])
        .assert_success()
        .assert_line("after 2 puts: EAGAIN")
        .assert_line("got 3 in one get")
        .assert_line("trigger 2 through asyncmsg_connect_attr: got 2")
        .assert_line("20 ready: gets of 16 and 4")
        .assert_line("delivered 25");
}

#[test]
fn flush() {
    compile_and_run("flush", "flush", Link::Shared, &[])
        .assert_success()
        .assert_line("before flush: EAGAIN")
        .assert_line("after nonblocking flush: 3")
        .assert_line("after waiting flush: 2")
        .assert_line("waiting flush returned 0")
        .assert_line("third put over the limit: taken 3, early 0")
        .assert_line("delivered 8");
}

#[test]
fn pulse_event() {
    compile_and_run("pulse_event", "pulse_event", Link::Shared, &[])
        .assert_success()
        .assert_line("pulse: rc 0 type 0 code 5 value 42")
        .assert_line("MsgReceive: rc 0 code 7 value 77")
        .assert_line("thread pulse: rc 0 code 5 value 42")
        .assert_line("got: pulse me again")
        .assert_line("MsgSendPulse: code 9 value 99")
        .assert_line("delivered 3");
}

#[test]
fn time_trigger() {
    compile_and_run("time_trigger", "time_trigger", Link::Shared, &[])
        .assert_success()
        .assert_line("got 4 in one get")
        .assert_line("delivered 4");
}

#[test]
fn putv() {
    compile_and_run("putv", "putv", Link::Shared, &[])
        .assert_success()
        .assert_line("got \"Hello, asynchronous world\"")
        .assert_line("callback: err 0 buf iov handle 4321")
        .assert_line("delivered 1");
}

#[test]
fn recvbuf() {
    compile_and_run("recvbuf", "recvbuf", Link::Shared, &[])
        .assert_success()
        .assert_line("got into my own buffer (in a recvbuf_callback buffer)")
        .assert_line("delivered 2");
}

#[test]
fn signal_event() {
    compile_and_run("signal_event", "signal_event", Link::Shared, &[])
        .assert_success()
        .assert_line("SIGUSR1 raised 1 time(s)")
        .assert_line("SIGEV_NONE: no signal")
        .assert_line("signal_event: done");
}

#[test]
fn misuse() {
    compile_and_run("misuse", "misuse", Link::Shared, &[])
        .assert_success()
        .assert_line("detach with 2 untaken: 2 callbacks (EBADF, EBADF)")
        .assert_line("default limit: 64 put, detach called back 64")
        .assert_line("channel destroyed with 1 untaken: 1 callbacks (ESRCH)")
        .assert_line("MsgSend answered: 7, reply 42")
        .assert_line("misuse: all checks passed");
}

/// Compiles server.c and client.c, starts the server (publishing `name`),
/// waits for its `ready`, runs the client with `client_args` to its end, then
/// waits for the server's end. Returns (server, client) outcomes, both
/// checked to have exited with 0, and the two process ids.
fn server_and_client_run(
    test: &str,
    server_args: &[&str],
    client_args: &[&str],
) -> (Outcome, Outcome, u32, u32) {
    let dir = work_dir(test);
    let (server_exe, client_exe) = std::thread::scope(|s| {
        let server = s.spawn(|| compile(dir.path(), "server", Link::Shared));
        let client = compile(dir.path(), "client", Link::Shared);
        (server.join().expect("compile server.c"), client)
    });

    let runtime = RuntimeDir::new();
    let mut server = Running::start(&server_exe, server_args, &runtime);
    server.wait_for_line("ready", Duration::from_secs(10));

    let mut client = Running::start(&client_exe, client_args, &runtime);
    let client_out = client.finish(RUN_LIMIT);
    let mut server_out = server.finish(RUN_LIMIT);
    server_out.dir = Some(dir);
    let both = format!("{}\n{}", client_out.report(), server_out.report());
    assert!(client_out.status.success(), "{both}");
    assert!(server_out.status.success(), "{both}");
    (server_out, client_out, server.id(), client.id())
}

/// QNX's name_attach server and name_open client, in two processes.
#[test]
fn server_and_client() {
    const COUNT: usize = 5;
    let count = COUNT.to_string();
    let name = "asyncmsg_capi_test";
    let (server, client, server_pid, client_pid) =
        server_and_client_run("server_client", &[name, &count], &[name, &count]);
    client
        .assert_line(&format!("server pid {server_pid},"))
        .assert_line(&format!("delivered {COUNT}, failed 0"))
        .assert_line("oversized put: -1 errno 90") // EMSGSIZE
        .assert_line("attach to a 0444 channel: -1 errno 13") // EACCES
        .assert_line("unknown request: -1 errno 38") // ENOSYS
        .assert_line("client done");
    server
        .assert_line(&format!("client connected (pid {client_pid})"))
        .assert_line("unknown request type 85: ENOSYS")
        .assert_line(&format!("client left ({COUNT} messages)"));
    for i in 0..COUNT {
        server.assert_line(&format!("got: message #{i} (from pid {client_pid})"));
    }
}

/// The server leaves with a client's messages not handed over: the client's
/// flush, callbacks and later calls all report ESRCH; nothing hangs.
#[test]
fn server_leaves() {
    let name = "asyncmsg_capi_leaving";
    let (server, client, _, _) =
        server_and_client_run("server_leaves", &[name, "0"], &[name, "3", "orphan"]);
    server.assert_line("quitting (0 messages)");
    client
        .assert_line("QUIT answered: 0 errno 0")
        .assert_line("flush after the server left: -1 errno 3") // ESRCH
        .assert_line("orphaned 3: 3 ESRCH, 0 delivered")
        .assert_line("put after the server left: -1 errno 3")
        .assert_line("MsgSend after the server left: -1 errno 3")
        .assert_line("client done (0 failed)");
}
