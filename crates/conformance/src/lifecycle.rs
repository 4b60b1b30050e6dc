//! B14–B17: detach, destroy, bad arguments, attribute changes, send buffers.
//!
//! [`Connection::detach`](asyncmsg::Connection::detach) and
//! [`Channel::destroy`](asyncmsg::Channel::destroy) take `&self`, so a handle
//! shared between threads can be detached or destroyed while other threads
//! are blocked in it; those threads wake with the matching error.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use asyncmsg::{
    AttrError, ChannelConfig, ChannelError, ConnectError, ConnectionAttr, ErrorKind, Flush,
    FlushError, GetError, PutError,
};

use crate::Harness;
use crate::support::{
    Called, QUIET, WAIT, expect_calls, expect_no_call, msg, names, not_visible, outcomes, payloads,
    recorder, spawn_detached, take_n, unique_name, visible, visible_n,
};

/// B14: detach calls back every message not yet taken with a detached error,
/// synchronously: the callbacks have run, in put order, when detach returns
/// (per-put callbacks included). Nothing of the connection is visible after.
pub fn b14_detach_calls_back_untaken_before_return<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let (cb, calls) = recorder();
    let conn = h.connect(
        &chan,
        ConnectionAttr::default()
            .trigger_count(0)
            .no_trigger_time()
            .on_delivered(cb),
    );
    let (tx, own) = mpsc::channel();
    conn.put(msg(0), 0).unwrap();
    conn.put_with(msg(1), 1, move |d| {
        let _ = tx.send(Called::of(d));
    })
    .unwrap();
    conn.put(msg(2), 2).unwrap();
    conn.flush(Flush::NoWait).unwrap(); // visible, still untaken
    conn.put(msg(3), 3).unwrap(); // joins the batch

    conn.detach();
    let done: Vec<Called> = calls.try_iter().collect();
    let mine: Vec<Called> = own.try_iter().collect();
    let detached = Err(ErrorKind::Detached);
    assert_eq!(
        outcomes(&done),
        [(0, detached), (2, detached), (3, detached)],
        "default callbacks had run when detach returned"
    );
    assert_eq!(
        outcomes(&mine),
        [(1, detached)],
        "the per-put callback had run when detach returned"
    );
    for c in done.iter().chain(&mine) {
        assert_eq!(&c.buf[..], &msg(c.handle)[..], "the buffer comes back");
    }
    not_visible::<H>(&chan);
    expect_no_call(&calls);
}

/// B14: on detach, messages the receiver already took are called back Ok (once
/// it lets them go), while the untaken rest get the detached error before
/// detach returns.
pub fn b14_detach_taken_messages_called_back_ok<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true).max_buffers(2));
    let (cb, calls) = recorder();
    let conn = h.connect(&chan, ConnectionAttr::default().on_delivered(cb));
    for i in 0..4 {
        conn.put(msg(i), i).unwrap();
    }
    let held = visible_n::<H>(&chan, 2);
    assert_eq!(payloads(&held), names(0..2));

    conn.detach();
    let detached = Err(ErrorKind::Detached);
    let early: Vec<Called> = calls.try_iter().collect();
    let untaken: Vec<_> = outcomes(&early)
        .into_iter()
        .filter(|(_, r)| r.is_err())
        .collect();
    assert_eq!(
        untaken,
        [(2, detached), (3, detached)],
        "untaken messages called back before detach returned"
    );
    not_visible::<H>(&chan);

    drop(held);
    let mut all = outcomes(&early);
    all.extend(outcomes(&expect_calls(&calls, 4 - early.len())));
    all.sort_by_key(|(h, _)| *h);
    assert_eq!(
        all,
        [(0, Ok(())), (1, Ok(())), (2, detached), (3, detached)],
        "taken messages are called back Ok"
    );
    expect_no_call(&calls);
}

/// B15: destroying a channel calls back its connections' untaken messages with
/// a destroyed error (messages already taken are called back Ok); later puts and
/// flushes fail with a destroyed error that gives the message back; nothing is
/// delivered after destroy.
pub fn b15_destroy_fails_pending_and_later_calls<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true).max_buffers(1));
    let target = h.target(&chan);
    let (cb, calls) = recorder();
    let conn = h.connect(&chan, ConnectionAttr::default().on_delivered(cb));
    for i in 0..3 {
        conn.put(msg(i), i).unwrap();
    }
    let held = visible::<H>(&chan);
    assert_eq!(payloads(&held), names(0..1));

    chan.destroy();
    let destroyed = Err(ErrorKind::Destroyed);
    assert_eq!(
        outcomes(&expect_calls(&calls, 2)),
        [(1, destroyed), (2, destroyed)],
        "untaken messages are called back with the destroyed error"
    );

    match conn.put(msg(3), 3) {
        Err(PutError::Destroyed(buf)) => assert_eq!(&buf[..], b"m3"),
        other => panic!("put after destroy: {other:?}"),
    }
    assert_eq!(
        conn.try_put(msg(4), 4).map_err(|e| e.kind()),
        Err(ErrorKind::Destroyed)
    );
    let e = conn
        .put_with(msg(5), 5, |_| panic!("a refused put has no callback"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Destroyed);
    assert_eq!(conn.flush(Flush::NoWait), Err(FlushError::Destroyed));
    assert_eq!(conn.flush(Flush::WaitFor(WAIT)), Err(FlushError::Destroyed));
    let again = h.sender().connect(target, ConnectionAttr::default());
    let kind = again.map(|_| ()).map_err(|e| e.kind());
    assert!(
        matches!(kind, Err(ErrorKind::NotFound | ErrorKind::Destroyed)),
        "connect to a destroyed channel: {kind:?}"
    );

    expect_no_call(&calls);
    drop(held);
    assert_eq!(
        outcomes(&expect_calls(&calls, 1)),
        [(0, Ok(()))],
        "the message taken before destroy was delivered"
    );
    expect_no_call(&calls);
}

/// B14: threads blocked in put (connection full) or in a waiting flush on the
/// connection wake with a detached error when another thread detaches it.
pub fn b14_detach_wakes_blocked_put_and_flush<H: Harness>() {
    blocked_put_and_flush_wake::<H>(ErrorKind::Detached, |conn, _chan| conn.detach());
}

/// Blocks one thread in a put (the connection's one slot is in use) and one in
/// a waiting flush, ends the link with `end`, and checks that both wake with
/// `reason` (the put with its message back) and that the pending message is
/// called back with it.
fn blocked_put_and_flush_wake<H: Harness>(
    reason: ErrorKind,
    end: impl FnOnce(&asyncmsg::Connection, &asyncmsg::Channel),
) {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default());
    let (cb, calls) = recorder();
    let conn = Arc::new(
        h.connect(
            &chan,
            ConnectionAttr::default()
                .max_buffers(1)
                .trigger_count(0)
                .no_trigger_time()
                .on_delivered(cb),
        ),
    );
    conn.put(msg(0), 0).unwrap();
    let c = Arc::clone(&conn);
    let put = spawn_detached(move || match c.put(msg(1), 1) {
        Err(e) if e.kind() == reason => Ok(e.into_buf().into_vec()),
        other => Err(format!("{other:?}")),
    });
    let c = Arc::clone(&conn);
    let flush = spawn_detached(move || c.flush(Flush::Wait).map_err(|e| e.kind()));
    assert!(put.recv_timeout(QUIET).is_err(), "the put did not block");
    assert!(flush.recv_timeout(QUIET).is_err(), "the flush did not wait");

    end(&conn, &chan);
    let r = put
        .recv_timeout(WAIT)
        .expect("the blocked put did not wake");
    assert_eq!(
        r,
        Ok(b"m1".to_vec()),
        "put wakes with {reason:?} and the message"
    );
    let r = flush
        .recv_timeout(WAIT)
        .expect("the waiting flush did not wake");
    assert_eq!(r, Err(reason));
    assert_eq!(outcomes(&expect_calls(&calls, 1)), [(0, Err(reason))]);
}

/// B15: getters waiting on a channel wake with a destroyed error when another
/// thread destroys it.
pub fn b15_destroy_wakes_waiting_getters<H: Harness>() {
    let h = H::setup();
    let chan = Arc::new(h.channel(ChannelConfig::default()));
    let getters: Vec<_> = (0..2)
        .map(|_| {
            let c = Arc::clone(&chan);
            spawn_detached(move || c.get().map(|b| b.len()))
        })
        .collect();
    for g in &getters {
        assert!(g.recv_timeout(QUIET).is_err(), "the get did not wait");
    }
    chan.destroy();
    for g in getters {
        let r = g.recv_timeout(WAIT).expect("the waiting get did not wake");
        assert_eq!(r, Err(GetError::Destroyed));
    }
}

/// B15: threads blocked in put (connection full) or in a waiting flush on a
/// connection to the channel wake with a destroyed error when it is destroyed.
pub fn b15_destroy_wakes_blocked_put_and_flush<H: Harness>() {
    blocked_put_and_flush_wake::<H>(ErrorKind::Destroyed, |_conn, chan| chan.destroy());
}

/// B16: bad handles and bad arguments are typed errors, never panics: zero
/// buffers or zero buffer size, zero connection buffers, an unknown channel,
/// an unknown name, a bad or taken name. (Unknown connection ids only exist in
/// the C API; Rust handles cannot be forged.)
pub fn b16_bad_handles_and_arguments_are_typed_errors<H: Harness>() {
    let h = H::setup();
    let node = h.receiver();
    match node.create_channel(ChannelConfig::default().buffer_size(0)) {
        Err(e @ ChannelError::InvalidArgument(_)) => {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument)
        }
        other => panic!("zero buffer size: {other:?}"),
    }
    match node.create_channel(ChannelConfig::default().max_buffers(0)) {
        Err(e @ ChannelError::InvalidArgument(_)) => {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument)
        }
        other => panic!("zero buffers: {other:?}"),
    }

    let chan = h.channel(ChannelConfig::default());
    match h
        .sender()
        .connect(h.target(&chan), ConnectionAttr::default().max_buffers(0))
    {
        Err(e @ ConnectError::InvalidArgument(_)) => {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument)
        }
        other => panic!("zero connection buffers: {other:?}"),
    }

    let unknown = unique_name("unknown");
    match h
        .sender()
        .connect(h.name_target(&unknown), ConnectionAttr::default())
    {
        Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "unknown name: {e}"),
        Ok(c) => panic!("connected to an unknown name: {c:?}"),
    }

    let gone = h.channel(ChannelConfig::default());
    let gone_target = h.target(&gone);
    gone.destroy();
    match h.sender().connect(gone_target, ConnectionAttr::default()) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "unknown channel: {e}"),
        Ok(c) => panic!("connected to a destroyed channel: {c:?}"),
    }

    for bad in ["", "a/b"] {
        match chan.publish(bad) {
            Err(e @ ChannelError::InvalidArgument(_)) => {
                assert_eq!(e.kind(), ErrorKind::InvalidArgument)
            }
            other => panic!("publish {bad:?}: {other:?}"),
        }
    }
    let name = unique_name("taken");
    chan.publish(&name).unwrap();
    let other = h.channel(ChannelConfig::default());
    assert!(
        matches!(other.publish(&name), Err(ChannelError::NameTaken(_))),
        "a second channel under a published name"
    );
    // The name still leads to the first channel.
    let conn = h
        .sender()
        .connect(h.name_target(&name), ConnectionAttr::default())
        .expect("connect by name");
    assert_eq!(conn.channel_id().chid, chan.chid());
}

/// B16: changing the attributes of a live connection applies the new triggers
/// and default callback from the next put on; messages put before keep the
/// callback they were put with.
pub fn b16_connect_attr_applies_from_next_put<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let (cb_old, old) = recorder();
    let (cb_new, new) = recorder();
    let conn = h.connect(
        &chan,
        ConnectionAttr::default()
            .trigger_count(1)
            .on_delivered(cb_old),
    );
    conn.put(msg(0), 0).unwrap();
    let held = visible::<H>(&chan);
    conn.put(msg(1), 1).unwrap(); // untaken when the attributes change

    conn.set_attr(conn.attr().trigger_count(3).on_delivered(cb_new))
        .expect("change triggers and callback");
    let attr = conn.attr();
    assert_eq!(attr.get_trigger_count(), 3);
    assert!(attr.has_callback());

    let mut held = held;
    held.extend(visible::<H>(&chan)); // m1 was visible already
    assert_eq!(payloads(&held), names(0..2));
    conn.put(msg(2), 2).unwrap();
    not_visible::<H>(&chan);
    conn.put(msg(3), 3).unwrap();
    not_visible::<H>(&chan);
    conn.put(msg(4), 4).unwrap();
    held.extend(visible::<H>(&chan));
    assert_eq!(payloads(&held), names(0..5));
    drop(held);
    assert_eq!(
        outcomes(&expect_calls(&old, 2)),
        [(0, Ok(())), (1, Ok(()))],
        "messages put before the change keep the old callback"
    );
    assert_eq!(
        outcomes(&expect_calls(&new, 3)),
        [(2, Ok(())), (3, Ok(())), (4, Ok(()))],
        "messages put after the change get the new callback"
    );

    // A time trigger instead of the count.
    const AFTER: Duration = Duration::from_millis(100);
    conn.set_attr(conn.attr().trigger_count(0).trigger_time(AFTER))
        .unwrap();
    let t0 = Instant::now();
    conn.put(msg(5), 5).unwrap();
    assert_eq!(chan.try_get().unwrap_err(), GetError::WouldBlock);
    let batch = crate::support::block_on(async {
        tokio::time::timeout(AFTER + Duration::from_secs(2), chan.recv())
            .await
            .expect("the new time trigger did not fire")
            .expect("recv")
    });
    assert!(t0.elapsed() >= AFTER);
    assert_eq!(payloads(&batch), names(5..6));
    drop(batch);
    assert_eq!(outcomes(&expect_calls(&new, 1)), [(5, Ok(()))]);
    expect_no_call(&old);
}

/// B16: a change of `max_num_buffer` on a live connection is refused with a
/// clear error, and nothing of that change is applied.
pub fn b16_max_buffers_change_refused<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let conn = h.connect(
        &chan,
        ConnectionAttr::default().max_buffers(4).trigger_count(1),
    );
    let e = conn
        .set_attr(conn.attr().max_buffers(8).trigger_count(5))
        .unwrap_err();
    assert_eq!(
        e,
        AttrError::MaxBuffersFixed {
            current: 4,
            requested: 8
        }
    );
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(!e.to_string().is_empty());
    let attr = conn.attr();
    assert_eq!(
        (attr.get_max_buffers(), attr.get_trigger_count()),
        (4, 1),
        "the refused change left the attributes alone"
    );
    conn.put(msg(0), 0).unwrap();
    assert_eq!(payloads(&visible::<H>(&chan)), names(0..1), "still count 1");

    // The same max_buffers with other changes is fine.
    conn.set_attr(conn.attr().trigger_count(2)).unwrap();
    assert_eq!(conn.attr().get_trigger_count(), 2);
}

/// B17: `alloc(size)` (QNX `asyncmsg_malloc`) gives a zeroed send buffer of that
/// size, from the node or the connection; put and get move it whole, and it
/// comes back in the delivery callback. Where sender and receiver share an
/// address space, nothing is copied: the receiver reads that buffer.
pub fn b17_alloc_gives_a_send_buffer<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let (cb, calls) = recorder();
    let conn = h.connect(&chan, ConnectionAttr::default().on_delivered(cb));
    for (i, mut buf) in [h.sender().alloc(64), conn.alloc(4096)]
        .into_iter()
        .enumerate()
    {
        let size = buf.len();
        assert!(size == 64 || size == 4096);
        assert!(buf.iter().all(|&b| b == 0), "zeroed");
        for (j, b) in buf.iter_mut().enumerate() {
            *b = (j % 251) as u8;
        }
        let expected = buf.to_vec();
        let addr = buf.as_ptr();
        conn.put(buf, i as u64).unwrap();
        let batch = take_n::<H>(&chan, 1);
        assert_eq!(batch[0].data(), &expected[..]);
        assert_eq!(batch[0].info().msglen, size);
        if H::SHARED_ADDRESS_SPACE {
            assert_eq!(batch[0].data().as_ptr(), addr, "received in place");
        }
        drop(batch);
        let back = expect_calls(&calls, 1).pop().expect("callback");
        assert_eq!(back.result, Ok(()));
        assert_eq!(&back.buf[..], &expected[..]);
        if H::SHARED_ADDRESS_SPACE {
            assert_eq!(back.buf.as_ptr(), addr, "the same buffer comes back");
        }
    }
}
