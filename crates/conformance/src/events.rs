//! B13: the channel's event (closure, pulse, file descriptor) and how it
//! relates to waiting getters.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::pin;
use std::sync::mpsc;
use std::time::Duration;

use asyncmsg::{ChannelConfig, ChannelEvent, ConnectionAttr, Flush, GetError, PulseChannel};

use crate::Harness;
use crate::support::{QUIET, WAIT, block_on, msg, names, payloads, poll_once, visible};

/// An event that reports each firing on the returned receiver.
fn closure_event() -> (ChannelEvent, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    (
        ChannelEvent::closure(move || {
            let _ = tx.send(());
        }),
        rx,
    )
}

/// Drains events already reported.
fn drain(rx: &mpsc::Receiver<()>) {
    while rx.try_recv().is_ok() {}
}

/// B13: a closure event fires on a trigger when no getter waits (and not on a
/// put that does not trigger); after it, a get finds the batch.
pub fn b13_closure_event_fires_when_no_getter_waits<H: Harness>() {
    let h = H::setup();
    let (event, events) = closure_event();
    let chan = h.channel(ChannelConfig::default().nonblocking(true).event(event));
    let conn = h.connect(&chan, ConnectionAttr::default().trigger_count(2));
    for round in 0..3u64 {
        conn.put(msg(2 * round), 0).unwrap();
        assert!(
            events.recv_timeout(QUIET).is_err(),
            "the event fired without a trigger"
        );
        conn.put(msg(2 * round + 1), 1).unwrap();
        events
            .recv_timeout(WAIT)
            .expect("the event did not fire on the trigger");
        assert_eq!(
            payloads(&visible::<H>(&chan)),
            names(2 * round..2 * round + 2)
        );
        drain(&events); // spurious events are allowed
    }
}

/// B13: a pulse event (QNX `SIGEV_PULSE`) carries its code and value, and the
/// channel id as `scoid`.
pub fn b13_pulse_event_fires_when_no_getter_waits<H: Harness>() {
    let h = H::setup();
    let pulses = PulseChannel::new();
    let chan = h.channel(
        ChannelConfig::default()
            .nonblocking(true)
            .event(ChannelEvent::pulse(&pulses, 7, 1234)),
    );
    let conn = h.connect(&chan, ConnectionAttr::default().trigger_count(2));
    conn.put(msg(0), 0).unwrap();
    assert_eq!(
        pulses.receive_timeout(QUIET),
        None,
        "a pulse without a trigger"
    );
    conn.put(msg(1), 1).unwrap();
    let p = pulses
        .receive_timeout(WAIT)
        .expect("no pulse on the trigger");
    assert_eq!((p.code, p.value, p.scoid), (7, 1234, chan.chid()));
    assert_eq!(payloads(&visible::<H>(&chan)), names(0..2));
}

/// Whether `fd` is readable within `timeout`.
fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for a descriptor borrowed for the whole call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
    n == 1 && pfd.revents & libc::POLLIN != 0
}

/// B13: the file-descriptor event becomes readable on a trigger no getter
/// took, so epoll, mio or tokio can wait on it; clearing it resets it.
pub fn b13_fd_event_becomes_readable<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(
        ChannelConfig::default()
            .nonblocking(true)
            .event(ChannelEvent::Fd),
    );
    let conn = h.connect(&chan, ConnectionAttr::default().trigger_count(2));
    let fd = chan.event_fd().expect("an event fd");
    assert!(!readable(fd, Duration::ZERO), "readable before any put");
    conn.put(msg(0), 0).unwrap();
    assert!(!readable(fd, QUIET), "readable without a trigger");
    conn.put(msg(1), 1).unwrap();
    assert!(readable(fd, WAIT), "not readable after the trigger");
    chan.clear_event_fd();
    assert!(
        !readable(fd, Duration::ZERO),
        "still readable after clearing"
    );
    assert_eq!(payloads(&visible::<H>(&chan)), names(0..2));
    assert!(
        chan.event_fd().is_some() && h.channel(ChannelConfig::default()).event_fd().is_none(),
        "only a channel with the fd event has a descriptor"
    );
}

/// B13: a trigger wakes a waiting getter instead of firing the event; with no
/// getter waiting, the event fires.
pub fn b13_waiting_getter_woken_instead_of_event<H: Harness>() {
    let h = H::setup();
    let (event, events) = closure_event();
    let chan = h.channel(ChannelConfig::default().event(event));
    let conn = h.connect(&chan, ConnectionAttr::default());
    block_on(async {
        let mut recv = pin!(chan.recv());
        assert!(
            poll_once(recv.as_mut()).await.is_pending(),
            "recv returned with nothing put"
        );
        // The task now waits: the trigger goes to it, not to the event.
        conn.put(msg(0), 0).unwrap();
        let batch = tokio::time::timeout(WAIT, recv)
            .await
            .expect("the waiting task was not woken")
            .expect("recv");
        assert_eq!(payloads(&batch), names(0..1));
    });
    assert!(
        events.recv_timeout(QUIET).is_err(),
        "the event fired although a getter was waiting"
    );

    // Blocking getters likewise.
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let chan = &chan;
        s.spawn(move || {
            let _ = tx.send(chan.get_timeout(WAIT).map(|b| payloads(&b)));
        });
        assert!(rx.recv_timeout(QUIET).is_err(), "get returned early");
        conn.put(msg(1), 1).unwrap();
        assert_eq!(rx.recv_timeout(WAIT).expect("getter"), Ok(names(1..2)));
    });
    // (If the getter had not yet been waiting, the event would have fired
    // instead, which is also correct; so no check on `events` here.)
    drain(&events);

    // Nobody waits: the event fires.
    conn.put(msg(2), 2).unwrap();
    events.recv_timeout(WAIT).expect("no event with no getter");
    assert_eq!(payloads(&visible::<H>(&chan)), names(2..3));
}

/// B13: events may be coalesced but are never lost. Three connections with
/// different triggers (count 1, count 3, time) put from their own threads while
/// the owner sleeps on the event alone and, on each event, gets until
/// would-block. Every message arrives, in order per connection; a lost event
/// would leave the owner asleep with messages visible.
pub fn b13_events_coalesced_but_never_lost<H: Harness>() {
    const PER_CONN: u64 = 1000;
    let h = H::setup();
    let (event, events) = closure_event();
    let chan = h.channel(
        ChannelConfig::default()
            .nonblocking(true)
            .max_buffers(2)
            .event(event),
    );
    let attrs = [
        ConnectionAttr::default().trigger_count(1),
        ConnectionAttr::default().trigger_count(3),
        ConnectionAttr::default()
            .trigger_count(0)
            .trigger_time(Duration::from_millis(5)),
    ];
    let conns: Vec<_> = attrs
        .into_iter()
        .map(|a| h.connect(&chan, a.max_buffers(4)))
        .collect();
    let mut got: HashMap<i32, Vec<String>> = HashMap::new();
    std::thread::scope(|s| {
        for conn in &conns {
            s.spawn(move || {
                for i in 0..PER_CONN {
                    conn.put_timeout(msg(i), i, WAIT)
                        .unwrap_or_else(|e| panic!("put {i}: {e}"));
                }
                // The count-3 connection's tail needs a flush.
                conn.flush(Flush::NoWait).expect("flush");
            });
        }
        let total = PER_CONN as usize * conns.len();
        let mut n = 0;
        while n < total {
            events.recv_timeout(WAIT).unwrap_or_else(|_| {
                panic!(
                    "no event for {WAIT:?} with {} of {total} messages received",
                    n
                )
            });
            loop {
                match chan.try_get() {
                    Ok(batch) => {
                        n += batch.len();
                        for m in batch {
                            got.entry(m.info().coid)
                                .or_default()
                                .push(m.text().into_owned());
                        }
                    }
                    Err(GetError::WouldBlock) => break,
                    Err(e) => panic!("get: {e}"),
                }
            }
        }
    });
    for conn in &conns {
        assert_eq!(
            got.get(&conn.coid()).map(Vec::as_slice),
            Some(&names(0..PER_CONN)[..]),
            "messages of connection {}",
            conn.coid()
        );
    }
}
