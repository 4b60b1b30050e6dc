//! Edge cases the conformance suite and the race tests do not reach: triggers
//! and timers racing detach and destroy, messages held across the end of their
//! link, handles dropped from inside callbacks and events, cancelled async
//! waits, huge timeouts and sizes, names published twice.
//!
//! Every wait is bounded (a wait on an event with a timeout, or a bounded spin
//! on a condition that only a counter shows); no test sleeps for a fixed time
//! to let something happen. Every bug these tests found is fixed; they stay as
//! regression tests (a new bug found here would be `#[ignore = "BUG: …"]`d
//! until fixed, so that the suite stays green). Races
//! are driven for a bounded number of rounds: their outcome must hold whichever
//! side wins.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use asyncmsg::{
    AttrError, ChannelConfig, ChannelError, ChannelEvent, ConnectError, ConnectionAttr, Delivery,
    ErrorKind, Flush, FlushError, GetError, Message, Node, PulseChannel, PutError,
};

// ---------------------------------------------------------------------------
// An allocator that counts live blocks of one odd size, so that a test can see
// whether message buffers of that size are freed. No other test allocates
// blocks of exactly this size.

const TRACKED: usize = 40_009;
static LIVE_TRACKED: AtomicI64 = AtomicI64::new(0);

struct Tracking;

// SAFETY: forwards every call to the system allocator; only counts.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if layout.size() == TRACKED && !p.is_null() {
            LIVE_TRACKED.fetch_add(1, Ordering::SeqCst);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if layout.size() == TRACKED && !p.is_null() {
            LIVE_TRACKED.fetch_add(1, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() == TRACKED {
            LIVE_TRACKED.fetch_sub(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if layout.size() == TRACKED {
                LIVE_TRACKED.fetch_sub(1, Ordering::SeqCst);
            }
            if new_size == TRACKED {
                LIVE_TRACKED.fetch_add(1, Ordering::SeqCst);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

// ---------------------------------------------------------------------------
// Helpers.

/// How long a test waits for something that must happen.
const WAIT: Duration = Duration::from_secs(5);
/// How long a test watches for something that must not happen.
const QUIET: Duration = Duration::from_millis(100);

type Outcome = (u64, Result<(), ErrorKind>);

/// A delivery callback that reports `(handle, result)` of every call.
fn recorder() -> (
    impl Fn(Delivery) + Send + Sync + 'static,
    mpsc::Receiver<Outcome>,
) {
    let (tx, rx) = mpsc::channel();
    (
        move |d: Delivery| {
            let _ = tx.send((d.handle, d.result));
        },
        rx,
    )
}

/// The next `n` callbacks, each within [`WAIT`].
fn expect_calls(rx: &mpsc::Receiver<Outcome>, n: usize) -> Vec<Outcome> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(WAIT).unwrap_or_else(|e| {
                panic!(
                    "callback {} of {n} did not come within {WAIT:?}: {e}",
                    i + 1
                )
            })
        })
        .collect()
}

/// No further callback within [`QUIET`].
fn expect_no_call(rx: &mpsc::Receiver<Outcome>) {
    if let Ok(c) = rx.recv_timeout(QUIET) {
        panic!("unexpected callback {c:?}");
    }
}

/// Callbacks already reported, without waiting.
fn drain(rx: &mpsc::Receiver<Outcome>) -> Vec<Outcome> {
    rx.try_iter().collect()
}

/// Spins (yielding) until `cond` holds, at most [`WAIT`]. For conditions that
/// only a counter shows (a getter registered as waiting, a token released).
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::yield_now();
    }
}

/// The number after `key` in a `debug_state` dump (first occurrence).
fn state_number(state: &str, key: &str) -> u64 {
    let mut words = state.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no number after {key:?} in {state:?}"));
        }
    }
    panic!("no {key:?} in {state:?}");
}

/// Getters (threads or tasks) the channel counts as waiting.
fn waiting_getters(chan: &asyncmsg::Channel) -> u64 {
    state_number(&chan.debug_state(), "waiting")
}

/// The coids in the channel's ready queue.
fn ready_queue(chan: &asyncmsg::Channel) -> String {
    let s = chan.debug_state();
    let start = s.find("ready [").expect("ready queue in debug_state") + "ready [".len();
    let end = start + s[start..].find(']').expect("end of ready queue");
    s[start..end].to_owned()
}

/// Runs `f` on a thread of its own; its result comes back on the receiver, so
/// that a call that never returns fails the test instead of hanging it.
fn spawn_bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// Polls a future once with a waker that does nothing.
fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// Runs a future on a fresh current-thread runtime.
fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// A name no other test uses.
fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "edges-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn msg(i: u64) -> Vec<u8> {
    format!("m{i}").into_bytes()
}

fn texts(batch: &[Message]) -> Vec<String> {
    batch.iter().map(|m| m.text().into_owned()).collect()
}

fn names(r: std::ops::Range<u64>) -> Vec<String> {
    r.map(|i| format!("m{i}")).collect()
}

// ---------------------------------------------------------------------------
// Huge timeouts (B16: bad arguments are typed errors, never panics; a timeout
// too long to represent means "wait as long as it takes").

/// B08, B16: a get with a timeout too far away to represent as an `Instant`
/// takes a visible batch at once; it must not panic computing the deadline.
#[test]
fn b16_get_timeout_huge_takes_ready_batch() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    conn.put(msg(0), 0).unwrap();
    let batch = chan.get_timeout(Duration::MAX).expect("a visible batch");
    assert_eq!(texts(&batch), names(0..1));
    // And on a non-blocking channel it is would-block at once.
    let nb = node
        .create_channel(ChannelConfig::default().nonblocking(true))
        .unwrap();
    assert_eq!(
        nb.get_timeout(Duration::MAX).unwrap_err(),
        GetError::WouldBlock
    );
}

/// B12, B16: a flush that waits "practically forever" for a receiver that has
/// already taken everything returns at once.
#[test]
fn b16_flush_wait_for_huge_returns_when_taken() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    conn.put(msg(0), 0).unwrap();
    let held = chan.try_get().unwrap();
    conn.flush(Flush::WaitFor(Duration::MAX))
        .expect("everything was taken");
    drop(held);
}

/// B07, B16: a put that must wait for a slot with a huge timeout waits (and
/// gets the slot when it frees) instead of panicking.
#[test]
fn b16_put_timeout_huge_waits_for_slot() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let conn = Arc::new(
        node.connect(chan.id(), ConnectionAttr::default().max_buffers(1))
            .unwrap(),
    );
    conn.put(msg(0), 0).unwrap();
    let c = conn.clone();
    let put = spawn_bounded(move || {
        c.put_timeout(msg(1), 1, Duration::MAX)
            .map_err(|e| e.kind())
    });
    // The put registers as a waiter before it computes its deadline.
    let deadline = Instant::now() + WAIT;
    loop {
        match put.try_recv() {
            Ok(r) => panic!("the put returned {r:?} while every slot was in use"),
            Err(mpsc::TryRecvError::Disconnected) => {
                panic!("put_timeout with a huge timeout panicked")
            }
            Err(mpsc::TryRecvError::Empty) => {}
        }
        if state_number(&chan.debug_state(), "sender_waiters") == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the put never waited");
        thread::yield_now();
    }
    drop(chan.try_get().unwrap()); // frees the slot
    let r = put
        .recv_timeout(WAIT)
        .expect("put_timeout with a huge timeout panicked or never woke");
    assert_eq!(r, Ok(()));
}

/// B11, B16: a delivery stream's bounded wait with a huge bound returns the
/// delivery instead of panicking.
#[test]
fn b16_delivery_stream_next_timeout_huge() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    let mut stream = conn.deliveries();
    conn.put(msg(0), 7).unwrap();
    drop(chan.try_get().unwrap());
    let d = stream.next_timeout(Duration::MAX).expect("a delivery");
    assert_eq!((d.handle, d.result), (7, Ok(())));
}

/// B23-style pulses, B16: a pulse receive with a huge bound returns the queued
/// pulse instead of panicking.
#[test]
fn b16_pulse_receive_timeout_huge() {
    let pulses = PulseChannel::new();
    pulses.sender().send(3, 4);
    let p = pulses.receive_timeout(Duration::MAX).expect("a pulse");
    assert_eq!((p.code, p.value), (3, 4));
}

// ---------------------------------------------------------------------------
// Names.

/// B16, B19: a channel published under two names withdraws both when it is
/// destroyed: neither finds it any more, and another channel may take them.
#[test]
fn b19_two_names_both_withdrawn_on_destroy() {
    let node = Node::new().unwrap();
    let (n1, n2) = (unique_name("first"), unique_name("second"));
    let a = node.create_channel(ChannelConfig::default()).unwrap();
    a.publish(&n1).unwrap();
    a.publish(&n2).unwrap();
    // Both names reach the channel while it lives.
    for n in [&n1, &n2] {
        let c = node.connect(n, ConnectionAttr::default()).unwrap();
        assert_eq!(c.channel_id(), a.id());
    }
    a.destroy(); // the handle stays alive (e.g. shared in an Arc)
    for n in [&n1, &n2] {
        match node.connect(n, ConnectionAttr::default()) {
            Err(ConnectError::NotFound(_)) => {}
            other => panic!("connect to {n} after destroy: {other:?}"),
        }
    }
    let b = node.create_channel(ChannelConfig::default()).unwrap();
    b.publish(&n2).expect("the second name was withdrawn");
    b.publish(&n1).expect("the first name was withdrawn");
    drop(a);
}

/// B16, B19: a publish racing a destroy of the same channel (from another
/// thread sharing it) must not leave the name registered to the destroyed
/// channel: either the publish fails with `Destroyed`, or destroy withdraws
/// the name. A stale name makes `connect` find a dead channel and keeps any
/// other channel from taking the name while the handle lives.
#[test]
fn b19_publish_racing_destroy_leaves_no_stale_name() {
    publish_racing_destroy(3_000, Duration::from_secs(2));
}

#[test]
#[ignore = "long: 200,000 rounds; run by cargo xtask stress"]
fn stress_publish_racing_destroy() {
    publish_racing_destroy(200_000, Duration::from_secs(60));
}

fn publish_racing_destroy(max_rounds: u64, budget: Duration) {
    let node = Node::new().unwrap();
    let deadline = Instant::now() + budget;
    let mut rounds = 0u64;
    let mut kept = Vec::new(); // destroyed handles stay alive, as in an Arc
    while Instant::now() < deadline && rounds < max_rounds {
        rounds += 1;
        let n = unique_name("race");
        let chan = Arc::new(node.create_channel(ChannelConfig::default()).unwrap());
        let barrier = Arc::new(Barrier::new(2));
        let (c, b, name) = (chan.clone(), barrier.clone(), n.clone());
        let publisher = thread::spawn(move || {
            b.wait();
            c.publish(&name).map_err(|e| e.to_string())
        });
        barrier.wait();
        chan.destroy();
        let published = publisher.join().unwrap();
        match node.connect(n.as_str(), ConnectionAttr::default()) {
            Err(ConnectError::NotFound(_)) => {}
            other => panic!(
                "round {rounds}: the publish said {published:?}; connect by name after \
                 destroy: {other:?}"
            ),
        }
        let other = node.create_channel(ChannelConfig::default()).unwrap();
        if let Err(e) = other.publish(&n) {
            panic!(
                "round {rounds}: the publish said {published:?}, yet after destroy \
                 the name is still taken: {e}"
            );
        }
        kept.push(chan);
        if kept.len() > 64 {
            kept.clear();
        }
    }
}

/// B16, B19: publishing the same name twice on one channel is harmless;
/// publishing on a destroyed channel is refused; a name withdrawn by destroy or
/// drop can be taken by another channel; a live channel's name cannot.
#[test]
fn b16_publish_twice_after_destroy_and_reuse() {
    let node = Node::new().unwrap();
    let n = unique_name("twice");
    let a = node.create_channel(ChannelConfig::default()).unwrap();
    a.publish(&n).unwrap();
    a.publish(&n).unwrap();
    let b = node.create_channel(ChannelConfig::default()).unwrap();
    assert!(matches!(b.publish(&n), Err(ChannelError::NameTaken(_))));
    a.destroy();
    assert!(matches!(a.publish(&n), Err(ChannelError::Destroyed)));
    b.publish(&n).expect("name withdrawn by destroy");
    drop(b);
    let c = node.create_channel(ChannelConfig::default()).unwrap();
    c.publish(&n).expect("name withdrawn by drop");
    let conn = node.connect(n.as_str(), ConnectionAttr::default()).unwrap();
    assert_eq!(conn.channel_id(), c.id());
    for bad in ["", "a/b", "x://y"] {
        assert!(matches!(
            c.publish(bad),
            Err(ChannelError::InvalidArgument(_))
        ));
    }
}

/// B15, B16: after a channel is destroyed (its handle still alive, or dropped)
/// neither its name nor its id finds it; an `inproc://` address neither.
#[test]
fn b15_connect_by_name_or_id_after_destroy() {
    let node = Node::new().unwrap();
    let n = unique_name("gone");
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    chan.publish(&n).unwrap();
    let id = chan.id();
    chan.destroy();
    let inproc = format!("inproc://{n}");
    for target in [n.as_str(), inproc.as_str()] {
        match node.connect(target, ConnectionAttr::default()) {
            Err(e @ ConnectError::NotFound(_)) => assert_eq!(e.kind(), ErrorKind::NotFound),
            other => panic!("connect to {target} after destroy: {other:?}"),
        }
    }
    assert!(matches!(
        node.connect(id, ConnectionAttr::default()),
        Err(ConnectError::NotFound(_))
    ));
    drop(chan);
    assert!(matches!(
        node.connect(n.as_str(), ConnectionAttr::default()),
        Err(ConnectError::NotFound(_))
    ));
    assert!(matches!(
        node.connect(id, ConnectionAttr::default()),
        Err(ConnectError::NotFound(_))
    ));
}

// ---------------------------------------------------------------------------
// Sizes.

/// B09, B10: a zero-length message and a message of exactly `buffer_size`
/// bytes go through whole; one byte more is refused with the message back.
#[test]
fn b10_zero_length_and_exactly_buffer_size() {
    let node = Node::new().unwrap();
    let size = 1000;
    let chan = node
        .create_channel(ChannelConfig::default().buffer_size(size))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let conn = node
        .connect(
            chan.id(),
            ConnectionAttr::default().on_delivered(move |d| {
                let _ = tx.send((d.handle, d.result, d.buf.into_vec()));
            }),
        )
        .unwrap();
    assert_eq!(conn.max_message(), size);
    conn.put(Vec::new(), 0).unwrap();
    let full: Vec<u8> = (0..size).map(|i| i as u8).collect();
    conn.put(full.clone(), 1).unwrap();
    let too_big = vec![9u8; size + 1];
    match conn.put(too_big.clone(), 2) {
        Err(e @ PutError::TooLarge { len, limit, .. }) => {
            assert_eq!((len, limit), (size + 1, size));
            assert_eq!(e.into_buf().into_vec(), too_big);
        }
        other => panic!("a put of buffer_size + 1: {other:?}"),
    }
    let batch = chan.try_get().unwrap();
    assert_eq!(batch.len(), 2);
    assert!(batch[0].is_empty());
    assert_eq!(batch[0].len(), 0);
    assert_eq!(batch[0].data(), b"");
    let info = batch[0].info();
    assert_eq!((info.msglen, info.srcmsglen, info.seq), (0, 0, 0));
    assert_eq!(batch[1].data(), &full[..]);
    let info = batch[1].info();
    assert_eq!((info.msglen, info.srcmsglen, info.seq), (size, size, 1));
    drop(batch);
    let a = rx.recv_timeout(WAIT).unwrap();
    let b = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(a, (0, Ok(()), Vec::new()));
    assert_eq!(b, (1, Ok(()), full));
    assert!(
        rx.recv_timeout(QUIET).is_err(),
        "the refused put was called back"
    );

    // A channel of one-byte messages takes empty and one-byte messages.
    let tiny = node
        .create_channel(ChannelConfig::default().buffer_size(1))
        .unwrap();
    let c = node.connect(tiny.id(), ConnectionAttr::default()).unwrap();
    c.put("", 0).unwrap();
    c.put("x", 1).unwrap();
    assert_eq!(c.put("xy", 2).unwrap_err().kind(), ErrorKind::TooLarge);
    let batch = tiny.try_get().unwrap();
    assert_eq!(texts(&batch), ["", "x"]);
}

/// B16: an absurd `max_buffers` for a connection is a typed error, not an
/// abort of the whole process (the connection's slot ring would need hundreds
/// of gigabytes). Runs in a child process with its address space capped.
#[test]
fn b16_huge_connection_max_buffers_is_an_error() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "huge_max_buffers_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ASYNCMSG_EDGES_CHILD", "1")
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "the child ended with {:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The child of [`b16_huge_connection_max_buffers_is_an_error`]; does nothing
/// unless run by it.
#[test]
#[ignore = "helper run in a child process by b16_huge_connection_max_buffers_is_an_error"]
fn huge_max_buffers_child() {
    if std::env::var_os("ASYNCMSG_EDGES_CHILD").is_none() {
        return;
    }
    // Cap the address space so that a failing allocation fails fast and
    // harmlessly, whatever the host's overcommit policy.
    let limit = libc::rlimit {
        rlim_cur: 4 << 30,
        rlim_max: 4 << 30,
    };
    // SAFETY: plain syscall on a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    match node.connect(chan.id(), ConnectionAttr::default().max_buffers(u32::MAX)) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}"),
        Ok(c) => {
            // Accepting it is fine too, as long as it works.
            c.put("x", 0).unwrap();
            assert_eq!(chan.try_get().unwrap().len(), 1);
        }
    }
}

// ---------------------------------------------------------------------------
// Messages held across the end of their link.

/// B11, B14, B16: the receiver holds messages put under two different default
/// callbacks (set_attr in between) across a detach and lets them go later,
/// out of order, on another thread: each is called back `Ok` exactly once, by
/// the callback in force when it was put, in put order; the untaken ones are
/// called back `Detached` by theirs before detach returns.
#[test]
fn b14_b16_held_messages_across_detach_keep_their_callbacks() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let (cb_a, rx_a) = recorder();
    let (cb_b, rx_b) = recorder();
    let (cb_c, rx_c) = recorder();
    let conn = node
        .connect(chan.id(), ConnectionAttr::default().on_delivered(cb_a))
        .unwrap();
    conn.put(msg(0), 0).unwrap();
    conn.put(msg(1), 1).unwrap();
    conn.set_attr(conn.attr().on_delivered(cb_b)).unwrap();
    conn.put(msg(2), 2).unwrap();
    conn.put(msg(3), 3).unwrap();
    let held = chan.try_get().unwrap();
    assert_eq!(texts(&held), names(0..4));
    conn.set_attr(conn.attr().on_delivered(cb_c)).unwrap();
    conn.put(msg(4), 4).unwrap(); // visible, untaken
    conn.set_attr(conn.attr().trigger_count(0)).unwrap(); // keeps cb_c
    conn.put(msg(5), 5).unwrap(); // not visible
    conn.detach();
    assert_eq!(
        drain(&rx_c),
        [(4, Err(ErrorKind::Detached)), (5, Err(ErrorKind::Detached))],
        "untaken messages are called back before detach returns"
    );
    assert!(drain(&rx_a).is_empty() && drain(&rx_b).is_empty());
    assert_eq!(chan.try_get().unwrap_err(), GetError::WouldBlock);
    // Let them go on another thread, last first.
    let dropper = thread::spawn(move || {
        let mut held = held;
        while let Some(m) = held.pop() {
            assert!(m.text().starts_with('m'), "data readable after detach");
            drop(m);
        }
    });
    dropper.join().unwrap();
    assert_eq!(expect_calls(&rx_a, 2), [(0, Ok(())), (1, Ok(()))]);
    assert_eq!(expect_calls(&rx_b, 2), [(2, Ok(())), (3, Ok(()))]);
    expect_no_call(&rx_a);
    expect_no_call(&rx_b);
    expect_no_call(&rx_c);
}

/// B11, B15: messages taken before the channel is destroyed, held while the
/// connection, the channel and every node handle are dropped, and let go later
/// on other threads, are called back `Ok` exactly once; the untaken one is
/// called back `Destroyed`. Afterwards the connection's state (and its
/// callback) is freed: nothing leaks.
#[test]
fn b15_held_messages_outlive_every_handle() {
    let token = Arc::new(());
    let (cb, rx) = recorder();
    let (held, rest) = {
        let node = Node::new().unwrap();
        let chan = node.create_channel(ChannelConfig::default()).unwrap();
        let t = token.clone();
        let conn = node
            .connect(
                chan.id(),
                ConnectionAttr::default().on_delivered(move |d| {
                    let _ = &t;
                    cb(d)
                }),
            )
            .unwrap();
        for i in 0..4 {
            conn.put(msg(i), i).unwrap();
        }
        let held = chan.try_get().unwrap();
        conn.set_attr(conn.attr().trigger_count(0)).unwrap();
        conn.put(msg(4), 4).unwrap();
        chan.destroy();
        assert_eq!(expect_calls(&rx, 1), [(4, Err(ErrorKind::Destroyed))]);
        assert_eq!(
            conn.put(msg(5), 5).unwrap_err().kind(),
            ErrorKind::Destroyed
        );
        assert_eq!(conn.flush(Flush::Wait).unwrap_err(), FlushError::Destroyed);
        drop(conn);
        drop(chan);
        drop(node);
        let mut held = held;
        let rest = held.split_off(2);
        (held, rest)
    };
    assert!(
        rx.recv_timeout(QUIET).is_err(),
        "a held message was called back"
    );
    let a = thread::spawn(move || drop(rest));
    let b = thread::spawn(move || {
        assert_eq!(texts(&held), names(0..2));
        drop(held)
    });
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(
        expect_calls(&rx, 4),
        [(0, Ok(())), (1, Ok(())), (2, Ok(())), (3, Ok(()))]
    );
    expect_no_call(&rx);
    wait_until("the connection's callback to be freed", || {
        Arc::strong_count(&token) == 1
    });
}

/// B11: dropping a node never hangs. The node's timer thread must not miss
/// the stop signal: dropping the last handle joins it, on the dropping thread
/// (a user thread, or the delivery thread, which then never runs the
/// callbacks still queued behind).
#[test]
#[ignore = "long: 200,000 nodes; run by cargo xtask stress"]
fn b11_node_drop_never_hangs() {
    const NODES: u64 = 200_000;
    let progress = Arc::new(AtomicU64::new(0));
    let p = progress.clone();
    // Detached: if a drop hangs, the thread is left behind, blocked.
    thread::spawn(move || {
        for _ in 0..NODES {
            drop(Node::new().unwrap());
            p.fetch_add(1, Ordering::SeqCst);
        }
    });
    let start = Instant::now();
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let now = progress.load(Ordering::SeqCst);
        if now == NODES || start.elapsed() > Duration::from_secs(20) {
            return;
        }
        if now != last {
            (last, since) = (now, Instant::now());
        }
        assert!(
            since.elapsed() < Duration::from_secs(3),
            "dropping node {} hung (no progress for 3 s)",
            now + 1
        );
        thread::yield_now();
    }
}

/// B11, B15: callbacks queued on the delivery thread by a destroy are not
/// lost when every handle (connection, channel, node) is dropped at once
/// right after: the node drains its delivery queue before it stops.
#[test]
fn b15_queued_callbacks_survive_node_shutdown() {
    let (cb, rx) = recorder();
    let (slow_tx, slow_rx) = mpsc::channel::<()>();
    {
        let node = Node::new().unwrap();
        let chan = node.create_channel(ChannelConfig::default()).unwrap();
        let conn = node
            .connect(
                chan.id(),
                ConnectionAttr::default().trigger_count(0).on_delivered(cb),
            )
            .unwrap();
        // Keep the delivery thread busy so that the failures queue up behind.
        let other = node.create_channel(ChannelConfig::default()).unwrap();
        let busy = node.connect(other.id(), ConnectionAttr::default()).unwrap();
        busy.put_with("busy", 99, move |_| {
            let _ = slow_rx.recv_timeout(WAIT);
        })
        .unwrap();
        drop(other.try_get().unwrap());
        for i in 0..5 {
            conn.put(msg(i), i).unwrap();
        }
        chan.destroy();
        drop((conn, chan, busy, other, node));
    }
    let _ = slow_tx.send(());
    assert_eq!(
        expect_calls(&rx, 5),
        (0..5)
            .map(|i| (i, Err(ErrorKind::Destroyed)))
            .collect::<Vec<_>>()
    );
    expect_no_call(&rx);
}

/// B09, B11: messages sent to other threads and let go there in any order
/// are called back in put order, each once.
#[test]
fn b11_messages_dropped_on_other_threads_called_back_in_put_order() {
    let node = Node::new().unwrap();
    let chan = node
        .create_channel(ChannelConfig::default().max_buffers(16))
        .unwrap();
    let (cb, rx) = recorder();
    let conn = node
        .connect(
            chan.id(),
            ConnectionAttr::default()
                .max_buffers(16)
                .trigger_count(16)
                .on_delivered(cb),
        )
        .unwrap();
    for i in 0..16 {
        conn.put(msg(i), i).unwrap();
    }
    let mut batch = chan.try_get().unwrap();
    assert_eq!(batch.len(), 16);
    // Four threads, each with every fourth message, release in reverse order,
    // the first message last of all.
    let first = batch.remove(0);
    let mut parts: Vec<Vec<Message>> = (0..4).map(|_| Vec::new()).collect();
    for (i, m) in batch.into_iter().enumerate() {
        parts[i % 4].push(m);
    }
    let threads: Vec<_> = parts
        .into_iter()
        .map(|mut part| {
            thread::spawn(move || {
                while let Some(m) = part.pop() {
                    drop(m);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    expect_no_call(&rx); // message 0 still held: nothing can complete
    drop(first);
    let calls = expect_calls(&rx, 16);
    assert_eq!(calls, (0..16).map(|i| (i, Ok(()))).collect::<Vec<_>>());
    expect_no_call(&rx);
}

// ---------------------------------------------------------------------------
// Handles dropped from inside callbacks and events.

/// B11, B14: dropping the connection from inside its own delivery callback
/// (on the delivery thread) detaches it there: its untaken messages are called
/// back `Detached`, nothing deadlocks, and the node keeps working.
#[test]
fn b14_drop_connection_inside_its_callback() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let slot: Arc<Mutex<Option<asyncmsg::Connection>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel();
    let s = slot.clone();
    let conn = node
        .connect(
            chan.id(),
            ConnectionAttr::default().on_delivered(move |d| {
                let _ = tx.send((d.handle, d.result));
                if d.handle == 0 {
                    let conn = s.lock().unwrap().take();
                    drop(conn); // detach, on the delivery thread
                }
            }),
        )
        .unwrap();
    conn.put(msg(0), 0).unwrap();
    let held = chan.try_get().unwrap();
    conn.put(msg(1), 1).unwrap(); // visible, untaken
    conn.set_attr(conn.attr().trigger_count(0)).unwrap();
    conn.put(msg(2), 2).unwrap(); // pending
    *slot.lock().unwrap() = Some(conn);
    drop(held);
    assert_eq!(
        expect_calls(&rx, 3),
        [
            (0, Ok(())),
            (1, Err(ErrorKind::Detached)),
            (2, Err(ErrorKind::Detached))
        ]
    );
    expect_no_call(&rx);
    assert_eq!(chan.try_get().unwrap_err(), GetError::WouldBlock);
    // The delivery thread still runs callbacks.
    let (cb, rx2) = recorder();
    let c2 = node
        .connect(chan.id(), ConnectionAttr::default().on_delivered(cb))
        .unwrap();
    c2.put(msg(9), 9).unwrap();
    drop(chan.try_get().unwrap());
    assert_eq!(expect_calls(&rx2, 1), [(9, Ok(()))]);
}

/// B11, B15: destroying the channel from inside a delivery callback fails the
/// connection's pending messages with `Destroyed` (called back later on the
/// same thread) without deadlock; later puts fail.
#[test]
fn b15_destroy_channel_inside_callback() {
    let node = Node::new().unwrap();
    let slot: Arc<Mutex<Option<asyncmsg::Channel>>> = Arc::new(Mutex::new(None));
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    let s = slot.clone();
    let conn = node
        .connect(
            chan.id(),
            ConnectionAttr::default().on_delivered(move |d| {
                let _ = tx.send((d.handle, d.result));
                if d.handle == 0 {
                    let chan = s.lock().unwrap().take();
                    drop(chan);
                }
            }),
        )
        .unwrap();
    conn.put(msg(0), 0).unwrap();
    let held = chan.try_get().unwrap();
    conn.put(msg(1), 1).unwrap();
    conn.put(msg(2), 2).unwrap();
    *slot.lock().unwrap() = Some(chan);
    drop(held);
    assert_eq!(
        expect_calls(&rx, 3),
        [
            (0, Ok(())),
            (1, Err(ErrorKind::Destroyed)),
            (2, Err(ErrorKind::Destroyed))
        ]
    );
    expect_no_call(&rx);
    assert_eq!(
        conn.put(msg(3), 3).unwrap_err().kind(),
        ErrorKind::Destroyed
    );
}

/// B11: the last handles of everything (node, channel, connection) dropped
/// from inside a delivery callback: untaken messages are called back, the
/// node shuts down from its own delivery thread without deadlock, and all
/// state is freed.
#[test]
fn b11_drop_every_handle_inside_callback() {
    // Dropped in this order: the connection (detach), the channel, the node.
    type Handles = (asyncmsg::Connection, asyncmsg::Channel, Node);
    let token = Arc::new(());
    let slot: Arc<Mutex<Option<Handles>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel();
    let held = {
        let node = Node::new().unwrap();
        let chan = node.create_channel(ChannelConfig::default()).unwrap();
        let (s, t) = (slot.clone(), token.clone());
        let conn = node
            .connect(
                chan.id(),
                ConnectionAttr::default()
                    .trigger_time(Duration::from_secs(3600))
                    .on_delivered(move |d| {
                        let _ = &t;
                        let _ = tx.send((d.handle, d.result));
                        if d.handle == 0 {
                            let all = s.lock().unwrap().take();
                            drop(all);
                        }
                    }),
            )
            .unwrap();
        conn.put(msg(0), 0).unwrap();
        let held = chan.try_get().unwrap();
        conn.set_attr(conn.attr().trigger_count(0)).unwrap();
        conn.put(msg(1), 1).unwrap(); // pending, a timer armed an hour out
        *slot.lock().unwrap() = Some((conn, chan, node));
        held
    };
    drop(held);
    assert_eq!(
        expect_calls(&rx, 2),
        [(0, Ok(())), (1, Err(ErrorKind::Detached))]
    );
    wait_until("every handle's state to be freed", || {
        Arc::strong_count(&token) == 1
    });
    assert!(rx.recv_timeout(QUIET).is_err());
}

/// B11, B07: a put from inside a delivery callback on a full connection
/// returns would-block at once (blocking put, timed put and try_put alike),
/// never waits for a slot only the delivery thread could free; a put that
/// finds a slot freed by the completion being called back succeeds.
#[test]
fn b07_b11_put_from_callback_when_full_would_block() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let slot: Arc<Mutex<Option<Arc<asyncmsg::Connection>>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel();
    let s = slot.clone();
    let conn = Arc::new(
        node.connect(
            chan.id(),
            ConnectionAttr::default()
                .max_buffers(2)
                .on_delivered(move |d| {
                    if d.handle != 0 {
                        return;
                    }
                    let conn = s.lock().unwrap().clone().expect("connection");
                    let t0 = Instant::now();
                    // Message 0 completed: one slot is free.
                    let first = conn.put(msg(10), 10).map_err(|e| e.kind());
                    let second = conn.put(msg(11), 11).map_err(|e| e.kind());
                    let timed = conn
                        .put_timeout(msg(12), 12, Duration::from_secs(30))
                        .map_err(|e| e.kind());
                    let tried = conn.try_put(msg(13), 13).map_err(|e| e.kind());
                    let _ = tx.send((first, second, timed, tried, t0.elapsed()));
                }),
        )
        .unwrap(),
    );
    *slot.lock().unwrap() = Some(conn.clone());
    conn.put(msg(0), 0).unwrap();
    conn.put(msg(1), 1).unwrap();
    let mut batch = chan.try_get().unwrap();
    assert_eq!(batch.len(), 2);
    let m1 = batch.pop().unwrap();
    drop(batch); // releases message 0 only
    let (first, second, timed, tried, took) = rx
        .recv_timeout(WAIT)
        .expect("the callback deadlocked in put");
    assert_eq!(first, Ok(()));
    assert_eq!(second, Err(ErrorKind::WouldBlock));
    assert_eq!(timed, Err(ErrorKind::WouldBlock));
    assert_eq!(tried, Err(ErrorKind::WouldBlock));
    assert!(took < Duration::from_secs(10), "puts waited {took:?}");
    drop(m1);
    let batch = chan.get_timeout(WAIT).unwrap();
    assert_eq!(texts(&batch), ["m10"]);
    slot.lock().unwrap().take();
}

/// B13, B14: a closure event that detaches the connection whose put fired it
/// (on the putting thread): the put returns, the message is called back
/// `Detached` exactly once, nothing deadlocks.
#[test]
fn b13_event_closure_detaches_the_putting_connection() {
    let node = Node::new().unwrap();
    let slot: Arc<Mutex<Option<Arc<asyncmsg::Connection>>>> = Arc::new(Mutex::new(None));
    let fired = Arc::new(AtomicUsize::new(0));
    let (s, f) = (slot.clone(), fired.clone());
    let chan = node
        .create_channel(
            ChannelConfig::default().event(ChannelEvent::closure(move || {
                f.fetch_add(1, Ordering::SeqCst);
                if let Some(c) = s.lock().unwrap().take() {
                    c.detach();
                }
            })),
        )
        .unwrap();
    let (cb, rx) = recorder();
    let conn = Arc::new(
        node.connect(chan.id(), ConnectionAttr::default().on_delivered(cb))
            .unwrap(),
    );
    *slot.lock().unwrap() = Some(conn.clone());
    let put = {
        let c = conn.clone();
        spawn_bounded(move || c.put(msg(0), 0).map_err(|e| e.kind()))
    };
    assert_eq!(put.recv_timeout(WAIT).expect("put deadlocked"), Ok(()));
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert_eq!(expect_calls(&rx, 1), [(0, Err(ErrorKind::Detached))]);
    assert_eq!(chan.try_get().unwrap_err(), GetError::WouldBlock);
    assert_eq!(conn.put(msg(1), 1).unwrap_err().kind(), ErrorKind::Detached);
    expect_no_call(&rx);
}

/// B13, B15: a closure event that destroys its own channel (fired by a put,
/// on the putting thread) does not deadlock; the message is called back
/// `Destroyed` once.
#[test]
fn b13_event_closure_destroys_its_channel() {
    let node = Node::new().unwrap();
    let slot: Arc<Mutex<Option<asyncmsg::Channel>>> = Arc::new(Mutex::new(None));
    let s = slot.clone();
    let chan = node
        .create_channel(
            ChannelConfig::default().event(ChannelEvent::closure(move || {
                let c = s.lock().unwrap().take();
                drop(c);
            })),
        )
        .unwrap();
    let (cb, rx) = recorder();
    let conn = Arc::new(
        node.connect(chan.id(), ConnectionAttr::default().on_delivered(cb))
            .unwrap(),
    );
    *slot.lock().unwrap() = Some(chan);
    let put = {
        let c = conn.clone();
        spawn_bounded(move || c.put(msg(0), 0).map_err(|e| e.kind()))
    };
    assert_eq!(put.recv_timeout(WAIT).expect("put deadlocked"), Ok(()));
    assert_eq!(expect_calls(&rx, 1), [(0, Err(ErrorKind::Destroyed))]);
    assert_eq!(
        conn.put(msg(1), 1).unwrap_err().kind(),
        ErrorKind::Destroyed
    );
    expect_no_call(&rx);
}

/// B04, B13: a closure event that panics when fired by the time trigger must
/// not stop the node's timer thread: time triggers of other connections of the
/// node still fire (as the delivery thread survives a panicking callback).
#[test]
fn b04_panicking_event_closure_does_not_stop_time_triggers() {
    let node = Node::new().unwrap();
    let (tx, rx) = mpsc::channel();
    let bad = node
        .create_channel(
            ChannelConfig::default().event(ChannelEvent::closure(move || {
                let _ = tx.send(());
                panic!("an event closure that panics (expected in this test)");
            })),
        )
        .unwrap();
    let c1 = node
        .connect(
            bad.id(),
            ConnectionAttr::default()
                .trigger_count(0)
                .trigger_time(Duration::from_millis(1)),
        )
        .unwrap();
    c1.put(msg(0), 0).unwrap();
    rx.recv_timeout(WAIT)
        .expect("the time trigger fired the event");
    // Another channel, another connection of the same node.
    let good = node.create_channel(ChannelConfig::default()).unwrap();
    let c2 = node
        .connect(
            good.id(),
            ConnectionAttr::default()
                .trigger_count(0)
                .trigger_time(Duration::from_millis(1)),
        )
        .unwrap();
    c2.put(msg(1), 1).unwrap();
    let batch = good
        .get_timeout(WAIT)
        .expect("the time trigger of another connection never fired");
    assert_eq!(texts(&batch), names(1..2));
}

/// B13: a closure event that panics when fired by a put (on the putting
/// thread) does not unwind out of the put: the message is in, the put says
/// `Ok`, and the event keeps firing for later triggers.
#[test]
fn b13_panicking_event_closure_does_not_fail_the_put() {
    let node = Node::new().unwrap();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let chan =
        node.create_channel(ChannelConfig::default().nonblocking(true).event(
            ChannelEvent::closure(move || {
                if f.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("an event closure that panics (expected in this test)");
                }
            }),
        ))
        .unwrap();
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conn.put(msg(0), 0)));
    assert!(
        matches!(r, Ok(Ok(()))),
        "the closure's panic came out of put"
    );
    assert_eq!(texts(&chan.try_get().unwrap()), names(0..1));
    conn.put(msg(1), 1).unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 2);
    assert_eq!(texts(&chan.try_get().unwrap()), names(1..2));
}

// ---------------------------------------------------------------------------
// Cancelled async waits (B13: a batch announced to a waiter that gives up is
// not stranded).

/// B08, B13: of two `readable()` futures waiting, the one a trigger woke is
/// dropped before it runs: the other learns of the batch.
#[test]
fn b13_cancelled_readable_passes_the_wake_on() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    let mut a = Box::pin(chan.readable());
    let mut b = Box::pin(chan.readable());
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert_eq!(waiting_getters(&chan), 2);
    conn.put(msg(0), 0).unwrap();
    drop(a); // woken (first in line) and cancelled
    match poll_once(b.as_mut()) {
        Poll::Ready(Ok(())) => {}
        other => panic!("the other waiter did not learn of the batch: {other:?}"),
    }
    drop(b);
    assert_eq!(waiting_getters(&chan), 0);
    assert_eq!(texts(&chan.try_get().unwrap()), names(0..1));
}

/// B08, B13: the same with `recv()` futures, the survivor taking the batch.
#[test]
fn b13_cancelled_recv_passes_the_batch_on() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    let mut a = Box::pin(chan.recv());
    let mut b = Box::pin(chan.recv());
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    conn.put(msg(0), 0).unwrap();
    drop(a);
    match poll_once(b.as_mut()) {
        Poll::Ready(Ok(batch)) => assert_eq!(texts(&batch), names(0..1)),
        other => panic!("the other recv did not take the batch: {other:?}"),
    }
}

/// B13: a lone `readable()` waiter woken by a trigger and dropped before it
/// runs: the channel's event fires instead (closure and file descriptor).
#[test]
fn b13_cancelled_lone_waiter_fires_the_event() {
    let node = Node::new().unwrap();
    let (etx, erx) = mpsc::channel();
    let chan = node
        .create_channel(
            ChannelConfig::default().event(ChannelEvent::closure(move || {
                let _ = etx.send(());
            })),
        )
        .unwrap();
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    {
        let mut a = Box::pin(chan.readable());
        assert!(poll_once(a.as_mut()).is_pending());
        conn.put(msg(0), 0).unwrap();
        assert!(
            erx.try_recv().is_err(),
            "the event fired although a getter waited"
        );
    }
    erx.recv_timeout(WAIT)
        .expect("the batch of a cancelled waiter was stranded: no event");
    assert_eq!(texts(&chan.try_get().unwrap()), names(0..1));

    // A file descriptor event, with a recv() future.
    let chan = node
        .create_channel(ChannelConfig::default().event(ChannelEvent::Fd))
        .unwrap();
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    {
        let mut a = Box::pin(chan.recv());
        assert!(poll_once(a.as_mut()).is_pending());
        conn.put(msg(1), 1).unwrap();
    }
    let fd = chan.event_fd().unwrap();
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, WAIT.as_millis() as i32) };
    assert_eq!(n, 1, "the event fd did not become readable");
    chan.clear_event_fd();
    assert_eq!(texts(&chan.try_get().unwrap()), names(1..2));
}

/// B08, B13: a `readable()` future woken by a trigger and dropped, while a
/// thread waits in a blocking `get`: the thread takes the batch, at once (not
/// by its timeout's last look).
#[test]
fn b13_cancelled_async_waiter_hands_batch_to_blocking_getter() {
    let node = Node::new().unwrap();
    let chan = Arc::new(node.create_channel(ChannelConfig::default()).unwrap());
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    let mut a = Box::pin(chan.readable());
    assert!(poll_once(a.as_mut()).is_pending()); // first in line
    let c = chan.clone();
    let getter = spawn_bounded(move || {
        let t0 = Instant::now();
        c.get().map(|b| (texts(&b), t0.elapsed()))
    });
    wait_until("the getter thread to wait", || waiting_getters(&chan) == 2);
    conn.put(msg(0), 0).unwrap();
    drop(a);
    match getter.recv_timeout(WAIT) {
        Ok(Ok((batch, _))) => assert_eq!(batch, names(0..1)),
        other => {
            let state = chan.debug_state();
            chan.destroy(); // unblock the getter
            panic!("the blocking getter did not get the batch: {other:?}; {state}");
        }
    }
}

/// B15: a `readable()` or `recv()` future pending when the channel is
/// destroyed completes with `Destroyed`.
#[test]
fn b15_destroy_completes_pending_async_waits() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let mut a = Box::pin(chan.readable());
    let mut b = Box::pin(chan.recv());
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    chan.destroy();
    assert!(matches!(
        poll_once(a.as_mut()),
        Poll::Ready(Err(GetError::Destroyed))
    ));
    assert!(matches!(
        poll_once(b.as_mut()),
        Poll::Ready(Err(GetError::Destroyed))
    ));
    drop((a, b));
    assert_eq!(chan.get().unwrap_err(), GetError::Destroyed);
    assert_eq!(
        chan.get_timeout(Duration::from_millis(1)).unwrap_err(),
        GetError::Destroyed
    );
    assert_eq!(chan.try_get().unwrap_err(), GetError::Destroyed);
}

// ---------------------------------------------------------------------------
// Triggers and timers racing detach and destroy.

/// Spins until `at` (to aim an action near a timer's deadline; the result of
/// the test does not depend on which side wins).
fn spin_until(at: Instant) {
    while Instant::now() < at {
        std::hint::spin_loop();
    }
}

/// B04, B14: a time trigger firing while the connection is detached: every
/// message is called back exactly once, `Detached` before detach returns
/// unless a get took it first (then `Ok`); nothing is left queued on the
/// channel and nothing is visible afterwards.
#[test]
fn b04_b14_time_trigger_racing_detach() {
    let node = Node::new().unwrap();
    let chan = node
        .create_channel(ChannelConfig::default().nonblocking(true))
        .unwrap();
    for round in 0..150u64 {
        let (cb, rx) = recorder();
        let conn = node
            .connect(
                chan.id(),
                ConnectionAttr::default()
                    .trigger_count(0)
                    .trigger_time(Duration::from_micros(500))
                    .trigger_interval(Duration::from_micros(200))
                    .on_delivered(cb),
            )
            .unwrap();
        let t0 = Instant::now();
        for i in 0..3 {
            conn.put(msg(i), i).unwrap();
        }
        // Aim the detach around the deadline: before, at, after.
        spin_until(t0 + Duration::from_micros(300 + (round % 10) * 50));
        let taken = if round % 3 == 0 {
            chan.try_get().unwrap_or_default()
        } else {
            Vec::new()
        };
        conn.detach();
        let n_taken = taken.len() as u64;
        let early = drain(&rx);
        assert_eq!(
            early,
            (n_taken..3)
                .map(|i| (i, Err(ErrorKind::Detached)))
                .collect::<Vec<_>>(),
            "round {round}: untaken messages are called back before detach returns"
        );
        assert_eq!(
            chan.try_get().unwrap_err(),
            GetError::WouldBlock,
            "round {round}"
        );
        drop(taken);
        let late = expect_calls(&rx, n_taken as usize);
        assert_eq!(
            late,
            (0..n_taken).map(|i| (i, Ok(()))).collect::<Vec<_>>(),
            "round {round}"
        );
        assert!(rx.try_recv().is_err(), "round {round}: a second callback");
    }
}

/// B04, B15: a time trigger firing while a getter waits and the channel is
/// destroyed: the getter either takes the batch (called back `Ok` when let
/// go) or wakes with `Destroyed` (then the messages are called back
/// `Destroyed`); every message is called back exactly once.
#[test]
fn b04_b15_time_trigger_racing_destroy() {
    let node = Node::new().unwrap();
    for round in 0..60u64 {
        let chan = Arc::new(node.create_channel(ChannelConfig::default()).unwrap());
        let (cb, rx) = recorder();
        let conn = node
            .connect(
                chan.id(),
                ConnectionAttr::default()
                    .trigger_count(0)
                    .trigger_time(Duration::from_micros(500))
                    .on_delivered(cb),
            )
            .unwrap();
        let c = chan.clone();
        let getter = spawn_bounded(move || c.get());
        wait_until("the getter to wait", || waiting_getters(&chan) == 1);
        let t0 = Instant::now();
        conn.put(msg(0), 0).unwrap();
        conn.put(msg(1), 1).unwrap();
        spin_until(t0 + Duration::from_micros(300 + (round % 8) * 60));
        chan.destroy();
        let got = getter.recv_timeout(WAIT).expect("the getter never woke");
        // The timer may fire between the two puts (a preempted test thread):
        // then the getter takes a prefix; the rest is failed by the destroy.
        let taken = match got {
            Ok(batch) => {
                let n = batch.len() as u64;
                assert!(n >= 1, "round {round}: an empty batch");
                assert_eq!(texts(&batch), names(0..n), "round {round}");
                drop(batch);
                n
            }
            Err(GetError::Destroyed) => 0,
            Err(e) => panic!("round {round}: {e}"),
        };
        let expected: Vec<Outcome> = (0..2)
            .map(|i| {
                if i < taken {
                    (i, Ok(()))
                } else {
                    (i, Err(ErrorKind::Destroyed))
                }
            })
            .collect();
        let mut calls = expect_calls(&rx, 2);
        calls.sort_by_key(|c| c.0);
        assert_eq!(calls, expected, "round {round}");
        assert!(rx.try_recv().is_err(), "round {round}: a second callback");
        assert_eq!(
            conn.put(msg(2), 2).unwrap_err().kind(),
            ErrorKind::Destroyed
        );
    }
}

/// B13, B14: a trigger (here a flush on another thread) racing an explicit
/// detach must not leave the detached connection queued on the channel: the
/// entry announces a batch no get can take, and holds the connection's state
/// until a later get (or dropping the handle) removes it.
#[test]
fn b13_b14_flush_racing_detach_leaves_nothing_queued() {
    let node = Node::new().unwrap();
    let chan = node
        .create_channel(ChannelConfig::default().nonblocking(true))
        .unwrap();
    // Without the fix this failed within a few thousand rounds.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut rounds = 0u64;
    while Instant::now() < deadline && rounds < 5_000 {
        rounds += 1;
        let conn = Arc::new(
            node.connect(chan.id(), ConnectionAttr::default().trigger_count(0))
                .unwrap(),
        );
        conn.put(msg(0), 0).unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let (c, b) = (conn.clone(), barrier.clone());
        let flusher = thread::spawn(move || {
            b.wait();
            let _ = c.flush(Flush::NoWait);
        });
        barrier.wait();
        conn.detach();
        flusher.join().unwrap();
        let queued = ready_queue(&chan);
        assert!(
            queued.is_empty(),
            "round {rounds}: detached connection {} is still queued: [{queued}]",
            conn.coid()
        );
    }
}

/// B04, B14: the same race on the timer thread, against the drop of the
/// connection's last handle: once the handle is gone and the timer has run,
/// nothing of the connection may remain (not its queue entry, not its
/// callback, not its node).
#[test]
fn b04_b14_time_trigger_racing_drop_leaks_nothing() {
    let node = Node::new().unwrap();
    let chan = Arc::new(
        node.create_channel(ChannelConfig::default().nonblocking(true))
            .unwrap(),
    );
    // The timer thread fires deadlines in order, one at a time: once a later
    // deadline of a probe connection has fired, the earlier one is done.
    let probe_chan = node.create_channel(ChannelConfig::default()).unwrap();
    let probe = node
        .connect(
            probe_chan.id(),
            ConnectionAttr::default()
                .trigger_count(0)
                .trigger_time(Duration::from_micros(300)),
        )
        .unwrap();
    // Other connections coming and going contend for the channel's lock, which
    // widens the window between the timer's trigger and its announcement.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (chan, stop, node) = (chan.clone(), stop.clone(), node.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                drop(node.connect(chan.id(), ConnectionAttr::default()).unwrap());
            }
        })
    };
    // Without the fix this failed within about a thousand rounds.
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut rounds = 0u64;
    let mut failure = None;
    while Instant::now() < deadline && failure.is_none() {
        rounds += 1;
        let token = Arc::new(());
        let t = token.clone();
        let conn = node
            .connect(
                chan.id(),
                ConnectionAttr::default()
                    .trigger_count(0)
                    .trigger_time(Duration::from_micros(200))
                    .on_delivered(move |_| {
                        let _ = &t;
                    }),
            )
            .unwrap();
        let t0 = Instant::now();
        conn.put(msg(0), 0).unwrap();
        spin_until(t0 + Duration::from_micros(150 + rounds % 100));
        let coid = conn.coid();
        drop(conn); // the last handle: detach
        probe.put(msg(1), 1).unwrap();
        drop(
            probe_chan
                .get_timeout(WAIT)
                .expect("the probe's time trigger"),
        );
        let queued = ready_queue(&chan);
        let refs = Arc::strong_count(&token);
        if !queued.is_empty() || refs > 1 {
            failure = Some(format!(
                "round {rounds}: connection {coid}, dropped, is queued [{queued}] and its \
                 callback has {} live references",
                refs - 1
            ));
        }
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    if let Some(f) = failure {
        panic!("{f}");
    }
}

/// B04, B14: an interval time trigger keeps firing while the receiver holds
/// the batch; detaching then calls back the held ones `Ok` when let go and
/// nothing else; the timer does nothing after the detach.
#[test]
fn b04_interval_trigger_then_detach_with_held_batch() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let (cb, rx) = recorder();
    let conn = node
        .connect(
            chan.id(),
            ConnectionAttr::default()
                .trigger_count(0)
                .trigger_time(Duration::from_millis(1))
                .trigger_interval(Duration::from_millis(1))
                .on_delivered(cb),
        )
        .unwrap();
    conn.put(msg(0), 0).unwrap();
    conn.put(msg(1), 1).unwrap();
    // One batch, or two if the timer fired between the puts.
    let mut first = chan.get_timeout(WAIT).unwrap();
    if first.len() < 2 {
        first.extend(chan.get_timeout(WAIT).unwrap());
    }
    assert_eq!(texts(&first), names(0..2));
    conn.put(msg(2), 2).unwrap();
    let second = chan.get_timeout(WAIT).unwrap();
    assert_eq!(texts(&second), names(2..3));
    conn.put(msg(3), 3).unwrap(); // pending, timer armed
    conn.detach();
    assert_eq!(drain(&rx), [(3, Err(ErrorKind::Detached))]);
    assert_eq!(
        chan.get_timeout(Duration::from_millis(20)).unwrap_err(),
        GetError::TimedOut
    );
    drop(second);
    expect_no_call(&rx); // message 0 and 1 still held: in order
    drop(first);
    assert_eq!(
        expect_calls(&rx, 3),
        [(0, Ok(())), (1, Ok(())), (2, Ok(()))]
    );
    expect_no_call(&rx);
}

// ---------------------------------------------------------------------------
// Flush.

/// B12: a bounded waiting flush with a receiver that never gets times out
/// (after its bound, not before); the messages stay pending and visible; a
/// later unbounded flush returns once a get takes them.
#[test]
fn b12_flush_wait_for_without_receiver_times_out() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let (cb, rx) = recorder();
    let conn = Arc::new(
        node.connect(
            chan.id(),
            ConnectionAttr::default().trigger_count(0).on_delivered(cb),
        )
        .unwrap(),
    );
    conn.put(msg(0), 0).unwrap();
    conn.put(msg(1), 1).unwrap();
    let bound = Duration::from_millis(30);
    let t0 = Instant::now();
    assert_eq!(
        conn.flush(Flush::WaitFor(bound)).unwrap_err(),
        FlushError::TimedOut
    );
    assert!(t0.elapsed() >= bound, "timed out early: {:?}", t0.elapsed());
    expect_no_call(&rx);
    let c = conn.clone();
    let flush = spawn_bounded(move || c.flush(Flush::Wait));
    wait_until("the flush to wait", || {
        state_number(&chan.debug_state(), "sender_waiters") == 1
    });
    let batch = chan.get_timeout(WAIT).unwrap();
    assert_eq!(texts(&batch), names(0..2));
    assert_eq!(
        flush.recv_timeout(WAIT).expect("flush never returned"),
        Ok(())
    );
    // Taken, not yet let go: no callback yet.
    expect_no_call(&rx);
    drop(batch);
    assert_eq!(expect_calls(&rx, 2), [(0, Ok(())), (1, Ok(()))]);
}

/// B12, B14: a waiting flush whose messages the receiver holds (taken) returns
/// `Ok` even when the connection is detached right after; a flush with
/// untaken messages wakes with `Detached`.
#[test]
fn b12_b14_flush_after_taken_then_detach() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let conn = node
        .connect(chan.id(), ConnectionAttr::default().trigger_count(0))
        .unwrap();
    conn.put(msg(0), 0).unwrap();
    conn.flush(Flush::NoWait).unwrap();
    let held = chan.try_get().unwrap();
    conn.flush(Flush::WaitFor(Duration::from_millis(1)))
        .expect("everything put was taken");
    conn.detach();
    assert_eq!(conn.flush(Flush::NoWait).unwrap_err(), FlushError::Detached);
    assert_eq!(conn.flush(Flush::Wait).unwrap_err(), FlushError::Detached);
    drop(held);
}

// ---------------------------------------------------------------------------
// Delivery streams.

/// B11, B14: a delivery stream sees untaken messages `Detached` (at once, as
/// detach returns) and held ones `Ok` when let go, each once, async and
/// blocking alike.
#[test]
fn b14_delivery_stream_sees_detached_and_held() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    let mut stream = conn.deliveries();
    conn.put(msg(0), 0).unwrap();
    conn.put(msg(1), 1).unwrap();
    let held = chan.try_get().unwrap();
    conn.put(msg(2), 2).unwrap();
    conn.put(msg(3), 3).unwrap();
    conn.detach();
    let now: Vec<Outcome> = std::iter::from_fn(|| stream.try_next())
        .map(|d| (d.handle, d.result))
        .collect();
    assert_eq!(
        now,
        [(2, Err(ErrorKind::Detached)), (3, Err(ErrorKind::Detached))]
    );
    drop(held);
    let first = block_on(async {
        tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("no delivery")
            .expect("the stream never ends")
    });
    assert_eq!((first.handle, first.result), (0, Ok(())));
    let second = stream.next_timeout(WAIT).expect("no delivery");
    assert_eq!((second.handle, second.result), (1, Ok(())));
    assert!(stream.next_timeout(QUIET).is_none());
}

/// B11, B15: a delivery stream sees messages failed by destroy, on the
/// delivery thread, after destroy returns.
#[test]
fn b15_delivery_stream_sees_destroyed() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let conn = node
        .connect(chan.id(), ConnectionAttr::default().trigger_count(0))
        .unwrap();
    let mut stream = conn.deliveries();
    for i in 0..3 {
        conn.put(msg(i), i).unwrap();
    }
    chan.destroy();
    let got: Vec<Outcome> = (0..3)
        .map(|_| {
            let d = stream.next_timeout(WAIT).expect("no delivery");
            (d.handle, d.result)
        })
        .collect();
    assert_eq!(
        got,
        (0..3)
            .map(|i| (i, Err(ErrorKind::Destroyed)))
            .collect::<Vec<_>>()
    );
    assert!(stream.next_timeout(QUIET).is_none());
}

/// B11: once its delivery stream is dropped, a connection's deliveries (and
/// the buffers they carry) are not kept for nobody: like a connection that
/// never asked for a stream, it frees them.
#[test]
fn b11_dropped_delivery_stream_does_not_keep_buffers() {
    fn run(with_stream: bool) -> i64 {
        let node = Node::new().unwrap();
        let chan = node
            .create_channel(ChannelConfig::default().buffer_size(TRACKED))
            .unwrap();
        let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
        if with_stream {
            drop(conn.deliveries());
        }
        let before = LIVE_TRACKED.load(Ordering::SeqCst);
        for i in 0..8 {
            conn.put(vec![7u8; TRACKED], i).unwrap();
            drop(chan.try_get().unwrap());
        }
        // Callbacks run in put order: once this one has run, so has every
        // delivery of the eight before it.
        let (tx, rx) = mpsc::channel();
        conn.put_with("end", 8, move |_| {
            let _ = tx.send(());
        })
        .unwrap();
        drop(chan.try_get().unwrap());
        rx.recv_timeout(WAIT).expect("the last callback");
        let live = LIVE_TRACKED.load(Ordering::SeqCst) - before;
        drop(conn);
        live
    }
    assert_eq!(run(false), 0, "without a stream the buffers are freed");
    assert_eq!(
        run(true),
        0,
        "buffers kept alive for a dropped delivery stream"
    );
}

// ---------------------------------------------------------------------------
// Many getters and senders.

/// B06, B08, B11, B13: several sender threads (small connections, count and
/// time triggers), several blocking getter threads and two async tasks on one
/// channel whose gets return one or two messages: every message arrives
/// exactly once, per-connection order holds within every batch, every
/// callback is `Ok` and in put order, and no batch is stranded.
#[test]
fn b06_b13_many_getters_many_senders_small_capacities() {
    const SENDERS: u64 = 4;
    const PER_SENDER: u64 = 1_000;
    for cap in [1usize, 2] {
        let node = Node::new().unwrap();
        let chan = Arc::new(
            node.create_channel(ChannelConfig::default().max_buffers(cap))
                .unwrap(),
        );
        // Violations are recorded, not asserted where they happen: a panic on
        // the delivery thread is swallowed, one on a getter stalls the run.
        let faults = Arc::new(Mutex::new(Vec::<String>::new()));
        let received = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let record = {
            let (received, count, faults) = (received.clone(), count.clone(), faults.clone());
            move |batch: Vec<Message>| {
                if batch.is_empty() || batch.len() > cap {
                    faults
                        .lock()
                        .unwrap()
                        .push(format!("a batch of {} (cap {cap})", batch.len()));
                }
                let mut last: Vec<(u64, u64)> = Vec::new();
                let mut r = received.lock().unwrap();
                for m in &batch {
                    let d = m.data();
                    let s = u64::from_le_bytes(d[..8].try_into().unwrap());
                    let i = u64::from_le_bytes(d[8..16].try_into().unwrap());
                    if let Some(prev) = last.iter().find(|(ps, _)| *ps == s)
                        && prev.1 >= i
                    {
                        faults
                            .lock()
                            .unwrap()
                            .push(format!("sender {s}: {i} after {} in a batch", prev.1));
                    }
                    last.push((s, i));
                    r.push((s, i));
                }
                count.fetch_add(batch.len() as u64, Ordering::SeqCst);
            }
        };
        let getters: Vec<_> = (0..3)
            .map(|_| {
                let (chan, record, faults) = (chan.clone(), record.clone(), faults.clone());
                thread::spawn(move || {
                    loop {
                        match chan.get() {
                            Ok(b) => record(b),
                            Err(GetError::Destroyed) => return,
                            Err(e) => faults.lock().unwrap().push(format!("get: {e}")),
                        }
                    }
                })
            })
            .collect();
        let tasks = {
            let (chan, record) = (chan.clone(), record.clone());
            thread::spawn(move || {
                block_on(async {
                    let task = || async {
                        while let Ok(b) = chan.recv().await {
                            record(b);
                        }
                    };
                    tokio::join!(task(), task());
                })
            })
        };
        let mut callbacks = Vec::new();
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let next = Arc::new(AtomicU64::new(0));
                callbacks.push(next.clone());
                let faults = faults.clone();
                let attr = ConnectionAttr::default()
                    .max_buffers(1 + s as u32 % 3)
                    .trigger_count(if s == 3 { 0 } else { 1 + s as u32 % 2 })
                    .trigger_time(Duration::from_micros(100))
                    .on_delivered(move |d| {
                        let expected = next.fetch_add(1, Ordering::SeqCst);
                        if d.result.is_err() || d.handle != expected {
                            faults.lock().unwrap().push(format!(
                                "sender {s}: callback {:?} for {} (expected {expected})",
                                d.result, d.handle
                            ));
                        }
                    });
                let conn = node.connect(chan.id(), attr).unwrap();
                let stop = stop.clone();
                thread::spawn(move || {
                    for i in 0..PER_SENDER {
                        let mut b = vec![0u8; 16];
                        b[..8].copy_from_slice(&s.to_le_bytes());
                        b[8..].copy_from_slice(&i.to_le_bytes());
                        let mut b: asyncmsg::SendBuf = b.into();
                        loop {
                            match conn.put_timeout(b, i, Duration::from_millis(50)) {
                                Ok(()) => break,
                                Err(PutError::WouldBlock(back)) if !stop.load(Ordering::SeqCst) => {
                                    b = back
                                }
                                Err(e) => return Err(format!("sender {s}: put {i}: {e}")),
                            }
                        }
                    }
                    conn.flush(Flush::NoWait).map_err(|e| e.to_string())?;
                    Ok(conn)
                })
            })
            .collect();
        let total = SENDERS * PER_SENDER;
        let deadline = Instant::now() + Duration::from_secs(30);
        while count.load(Ordering::SeqCst) < total {
            let faulty = !faults.lock().unwrap().is_empty();
            if faulty || Instant::now() > deadline {
                let state = chan.debug_state();
                stop.store(true, Ordering::SeqCst);
                chan.destroy();
                panic!(
                    "cap {cap}: {} of {total} received; faults {:?}; {state}",
                    count.load(Ordering::SeqCst),
                    faults.lock().unwrap()
                );
            }
            thread::yield_now();
        }
        let conns: Vec<_> = senders
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        chan.destroy();
        for g in getters {
            g.join().unwrap();
        }
        tasks.join().unwrap();
        let mut r = std::mem::take(&mut *received.lock().unwrap());
        r.sort_unstable();
        let want: Vec<(u64, u64)> = (0..SENDERS)
            .flat_map(|s| (0..PER_SENDER).map(move |i| (s, i)))
            .collect();
        assert!(r == want, "cap {cap}: lost or duplicated messages");
        wait_until("every callback", || {
            callbacks
                .iter()
                .all(|n| n.load(Ordering::SeqCst) == PER_SENDER)
        });
        let faults = faults.lock().unwrap();
        assert!(faults.is_empty(), "cap {cap}: {faults:?}");
        drop(conns);
    }
}

// ---------------------------------------------------------------------------
// Attributes.

/// B16: `set_attr` applies every change it accepts: switching a connection
/// to non-blocking makes a put on a full connection return would-block at
/// once; switching it back makes the put wait for a slot again. (Before the
/// fix, the change was accepted and silently ignored.)
#[test]
fn b16_set_attr_nonblocking_change_applies() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let conn = Arc::new(
        node.connect(chan.id(), ConnectionAttr::default().max_buffers(1))
            .unwrap(),
    );
    conn.put(msg(0), 0).unwrap(); // the one slot is in use
    conn.set_attr(conn.attr().nonblocking(true)).unwrap();
    assert!(format!("{:?}", conn.attr()).contains("nonblocking: true"));
    let c = conn.clone();
    let put = spawn_bounded(move || c.put(msg(1), 1).map_err(|e| e.kind()));
    let r = put.recv_timeout(WAIT);
    if r.is_err() {
        chan.destroy(); // unblock the put
    }
    assert_eq!(
        r.ok(),
        Some(Err(ErrorKind::WouldBlock)),
        "set_attr(nonblocking(true)) said Ok but the put blocked"
    );
    // Back to blocking: the put waits until the slot frees.
    conn.set_attr(conn.attr().nonblocking(false)).unwrap();
    let c = conn.clone();
    let put = spawn_bounded(move || c.put(msg(2), 2).map_err(|e| e.kind()));
    wait_until("the put to wait for a slot", || {
        state_number(&chan.debug_state(), "sender_waiters") == 1
    });
    drop(chan.try_get().unwrap());
    assert_eq!(put.recv_timeout(WAIT).expect("the put never woke"), Ok(()));
    assert_eq!(texts(&chan.try_get().unwrap()), names(2..3));
}

/// B16: `max_buffers` at the documented cap is accepted and works; one above
/// is a typed error (see also the child-process test with `u32::MAX`).
#[test]
fn b16_max_buffers_cap_boundary() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    match node.connect(
        chan.id(),
        ConnectionAttr::default().max_buffers(asyncmsg::MAX_BUFFERS + 1),
    ) {
        Err(e @ ConnectError::InvalidArgument(_)) => {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument)
        }
        other => panic!("max_buffers above the cap: {other:?}"),
    }
    let conn = node
        .connect(
            chan.id(),
            ConnectionAttr::default().max_buffers(asyncmsg::MAX_BUFFERS),
        )
        .unwrap();
    conn.put(msg(0), 0).unwrap();
    assert_eq!(texts(&chan.try_get().unwrap()), names(0..1));
}

/// B15, B16: set_attr and attr on a connection whose channel was destroyed:
/// typed errors, never a panic; the error says why.
#[test]
fn b16_set_attr_after_destroy_and_detach() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    let attr = conn.attr();
    chan.destroy();
    let e = conn.set_attr(attr.clone().trigger_count(3)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Detached | ErrorKind::Destroyed),
        "{e:?}"
    );
    let _ = conn.attr();
    conn.detach();
    assert_eq!(
        conn.set_attr(attr.trigger_count(3)).unwrap_err(),
        AttrError::Detached
    );
}

/// B16: a callback changed by set_attr while the receiver holds messages put
/// under the old one: the old callback gets those, the new one the later
/// messages, in put order across both; a per-put callback still wins.
#[test]
fn b16_set_attr_callback_change_while_held() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel::<(char, u64)>();
    let (ta, tb, tp) = (tx.clone(), tx.clone(), tx);
    let conn = node
        .connect(
            chan.id(),
            ConnectionAttr::default().on_delivered(move |d| ta.send(('a', d.handle)).unwrap()),
        )
        .unwrap();
    conn.put(msg(0), 0).unwrap();
    conn.put(msg(1), 1).unwrap();
    let held = chan.try_get().unwrap();
    conn.set_attr(
        conn.attr()
            .on_delivered(move |d| tb.send(('b', d.handle)).unwrap()),
    )
    .unwrap();
    conn.put(msg(2), 2).unwrap();
    conn.put_with(msg(3), 3, move |d| tp.send(('p', d.handle)).unwrap())
        .unwrap();
    conn.put(msg(4), 4).unwrap();
    let later = chan.try_get().unwrap();
    drop(later); // cannot complete before the held ones
    assert!(rx.recv_timeout(QUIET).is_err());
    drop(held);
    let got: Vec<(char, u64)> = (0..5).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
    assert_eq!(got, [('a', 0), ('a', 1), ('b', 2), ('p', 3), ('b', 4)]);
    assert!(rx.recv_timeout(QUIET).is_err());
}

// ---------------------------------------------------------------------------
// Two nodes.

/// B11, B15: a connection from one node to a channel of another: when the
/// receiving node's channel is destroyed and every handle of that node
/// dropped, the sender's pending messages are called back `Destroyed` on the
/// sender's node, and messages the receiver took earlier are called back `Ok`
/// when let go.
#[test]
fn b15_cross_node_destroy_and_receiver_node_gone() {
    let sender = Node::new().unwrap();
    let (cb, rx) = recorder();
    let held;
    let conn;
    {
        let receiver = Node::new().unwrap();
        let chan = receiver.create_channel(ChannelConfig::default()).unwrap();
        conn = sender
            .connect(chan.id(), ConnectionAttr::default().on_delivered(cb))
            .unwrap();
        conn.put(msg(0), 0).unwrap();
        held = chan.try_get().unwrap();
        conn.set_attr(conn.attr().trigger_count(0)).unwrap();
        conn.put(msg(1), 1).unwrap();
        drop(chan);
        drop(receiver);
    }
    assert_eq!(expect_calls(&rx, 1), [(1, Err(ErrorKind::Destroyed))]);
    assert_eq!(texts(&held), names(0..1));
    drop(held);
    assert_eq!(expect_calls(&rx, 1), [(0, Ok(()))]);
    assert_eq!(
        conn.put(msg(2), 2).unwrap_err().kind(),
        ErrorKind::Destroyed
    );
    expect_no_call(&rx);
}
