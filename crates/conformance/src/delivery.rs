//! B09–B12: what a received message carries, size limits, delivery callbacks
//! and flush.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use asyncmsg::{ChannelConfig, ConnectionAttr, ErrorKind, Flush, FlushError, PutError, SendBuf};

use crate::Harness;
use crate::support::{
    Called, QUIET, WAIT, block_on, expect_calls, expect_no_call, msg, names, not_visible, outcomes,
    payloads, recorder, spawn_detached, take_n, visible,
};

/// B09: each received message carries its info: sender node and pid, channel
/// id, connection id, `msglen`, `srcmsglen` and a per-connection sequence
/// number from 0.
pub fn b09_message_carries_its_info<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let a = h.connect(&chan, ConnectionAttr::default());
    let b = h.connect(&chan, ConnectionAttr::default());
    assert_ne!(a.coid(), b.coid());
    let (nd, pid) = h.sender_identity();
    for round in 0..3u64 {
        for (conn, len) in [(&a, 10usize), (&b, 700)] {
            let data: Vec<u8> = (0..len).map(|i| (i as u64 + round) as u8).collect();
            conn.put(data.clone(), round).unwrap();
            let batch = visible::<H>(&chan);
            assert_eq!(batch.len(), 1);
            let m = &batch[0];
            assert_eq!(m.data(), &data[..]);
            let info = m.info();
            assert_eq!((info.nd, info.pid), (nd, pid), "sender node and pid");
            assert_eq!(info.chid, chan.chid(), "channel id");
            assert_eq!(info.coid, conn.coid(), "connection id");
            assert_eq!(info.msglen, len, "msglen");
            assert_eq!(info.srcmsglen, len, "srcmsglen");
            assert_eq!(info.seq, round, "per-connection sequence number");
            assert_eq!(m.len(), len);
        }
    }
}

/// B09: dropping a received message frees its buffer (QNX `asyncmsg_free`): the
/// message is called back and its slot can take a new put.
pub fn b09_dropping_message_frees_its_buffer<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let (cb, calls) = recorder();
    let conn = h.connect(
        &chan,
        ConnectionAttr::default()
            .max_buffers(1)
            .nonblocking(true)
            .on_delivered(cb),
    );
    conn.put(msg(0), 0).unwrap();
    let mut batch = visible::<H>(&chan);
    let m = batch.pop().expect("one message");
    let back = conn.put(msg(1), 1).unwrap_err();
    assert_eq!(
        back.kind(),
        ErrorKind::WouldBlock,
        "the held message keeps its slot"
    );
    drop(m);
    let done = expect_calls(&calls, 1);
    assert_eq!(outcomes(&done), [(0, Ok(()))]);
    assert_eq!(
        &done[0].buf[..],
        b"m0",
        "the freed buffer returns to the sender"
    );
    conn.put(back.into_buf(), 1).unwrap();
    assert_eq!(payloads(&visible::<H>(&chan)), names(1..2));
}

/// B10: a message larger than the channel's `buffer_size` is refused at put
/// with a too-large error that gives it back (the limit is known at attach); a
/// message of exactly `buffer_size` is delivered whole, never truncated.
pub fn b10_too_large_put_refused_with_message_back<H: Harness>() {
    const LIMIT: usize = 16;
    let h = H::setup();
    let chan = h.channel(
        ChannelConfig::default()
            .buffer_size(LIMIT)
            .nonblocking(true),
    );
    let (cb, calls) = recorder();
    let conn = h.connect(&chan, ConnectionAttr::default().on_delivered(cb));
    assert_eq!(conn.max_message(), LIMIT, "the limit is learnt at attach");

    let big = vec![7u8; LIMIT + 1];
    match conn.put(big.clone(), 1) {
        Err(PutError::TooLarge { buf, len, limit }) => {
            assert_eq!((len, limit), (LIMIT + 1, LIMIT));
            assert_eq!(buf.into_vec(), big, "the message is given back whole");
        }
        other => panic!("put of {} bytes: {other:?}", LIMIT + 1),
    }
    let e = conn.try_put(big.clone(), 2).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    let e = conn.put_with(big, 3, |_| {}).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    not_visible::<H>(&chan);

    let exact = vec![9u8; LIMIT];
    conn.put(exact.clone(), 4).unwrap();
    let batch = visible::<H>(&chan);
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].data(), &exact[..]);
    assert_eq!(
        (batch[0].info().msglen, batch[0].info().srcmsglen),
        (LIMIT, LIMIT)
    );
    drop(batch);
    assert_eq!(outcomes(&expect_calls(&calls, 1)), [(4, Ok(()))]);
    expect_no_call(&calls);
}

/// B11: exactly one delivery callback per message, in put order per connection
/// (even when the receiver lets the messages go in another order), all on the
/// node's delivery thread (one thread, not the caller's).
pub fn b11_one_callback_per_message_in_put_order<H: Harness>() {
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
    for i in 0..10 {
        conn.put(msg(i), i).unwrap();
    }
    conn.flush(Flush::NoWait).unwrap();
    let mut batch = visible::<H>(&chan);
    assert_eq!(batch.len(), 10);
    while let Some(m) = batch.pop() {
        drop(m); // last first
    }
    let done = expect_calls(&calls, 10);
    assert_eq!(
        outcomes(&done),
        (0..10).map(|i| (i, Ok(()))).collect::<Vec<_>>(),
        "one callback per message, in put order"
    );
    for (i, c) in done.iter().enumerate() {
        assert_eq!(&c.buf[..], &msg(i as u64)[..]);
    }
    let me = std::thread::current().id();
    assert!(
        done.iter().all(|c| c.thread != me),
        "callbacks run on the delivery thread"
    );
    assert!(
        done.iter().all(|c| c.thread == done[0].thread),
        "callbacks run on one delivery thread"
    );
    expect_no_call(&calls);
}

/// B11: a per-put callback replaces the connection's default for that message.
pub fn b11_per_put_callback_replaces_default<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let (cb, defaults) = recorder();
    let conn = h.connect(&chan, ConnectionAttr::default().on_delivered(cb));
    let (tx, own) = mpsc::channel();
    conn.put(msg(0), 0).unwrap();
    conn.put_with(msg(1), 1, move |d| {
        let _ = tx.send(Called::of(d));
    })
    .unwrap();
    conn.put(msg(2), 2).unwrap();
    drop(take_n::<H>(&chan, 3));
    assert_eq!(
        outcomes(&expect_calls(&defaults, 2)),
        [(0, Ok(())), (2, Ok(()))]
    );
    assert_eq!(outcomes(&expect_calls(&own, 1)), [(1, Ok(()))]);
    expect_no_call(&defaults);
    expect_no_call(&own);
}

/// B11: the callback gets the buffer back, so it can be put again. Where sender
/// and receiver share an address space, the receiver reads that very buffer and
/// the callback returns the same allocation.
pub fn b11_callback_gets_buffer_back_for_reuse<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let (cb, calls) = recorder();
    let conn = h.connect(&chan, ConnectionAttr::default().on_delivered(cb));
    let mut buf = SendBuf::from(vec![0u8; 256]);
    for round in 0..3u8 {
        buf.fill(round);
        let addr = buf.as_ptr();
        conn.put(buf, u64::from(round)).unwrap();
        let batch = visible::<H>(&chan);
        assert_eq!(batch[0].data(), &[round; 256][..]);
        if H::SHARED_ADDRESS_SPACE {
            assert_eq!(batch[0].data().as_ptr(), addr, "received in place, no copy");
        }
        drop(batch);
        let mut done = expect_calls(&calls, 1);
        let c = done.pop().expect("one callback");
        assert_eq!(c.result, Ok(()));
        buf = c.buf;
        assert_eq!(&buf[..], &[round; 256][..], "the buffer comes back intact");
        if H::SHARED_ADDRESS_SPACE {
            assert_eq!(buf.as_ptr(), addr, "the same allocation comes back");
        }
    }
}

/// B11: a callback may put on the same connection without deadlock: a put from
/// the callback is accepted when a slot is free, and refused with would-block
/// (not blocking) when every slot is in use, since only the delivery thread could
/// free one.
pub fn b11_callback_may_put_on_same_connection<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let conn = Arc::new(h.connect(&chan, ConnectionAttr::default().max_buffers(2)));
    let (tx, rx) = mpsc::channel::<(u64, Result<(), ErrorKind>)>();

    // A chain: the callback of m0 puts m1, whose callback reports.
    let c2 = Arc::clone(&conn);
    let t2 = tx.clone();
    conn.put_with(msg(0), 0, move |d| {
        let _ = t2.send((d.handle, d.result));
        let t3 = t2.clone();
        let r = c2.put_with(msg(1), 1, move |d| {
            let _ = t3.send((d.handle, d.result));
        });
        let _ = t2.send((100, r.map_err(|e| e.kind())));
    })
    .unwrap();
    assert_eq!(payloads(&visible::<H>(&chan)), names(0..1));
    let got: Vec<_> = (0..2)
        .map(|_| rx.recv_timeout(WAIT).expect("callback"))
        .collect();
    assert_eq!(
        got,
        [(0, Ok(())), (100, Ok(()))],
        "the put from the callback is accepted"
    );
    assert_eq!(payloads(&visible::<H>(&chan)), names(1..2));
    assert_eq!(rx.recv_timeout(WAIT).expect("callback of m1"), (1, Ok(())));

    // Full: m2 and m3 are in flight; m2's callback puts twice; the first fills
    // the freed slot, the second finds the connection full.
    let c2 = Arc::clone(&conn);
    let t2 = tx.clone();
    conn.put_with(msg(2), 2, move |d| {
        let _ = t2.send((d.handle, d.result));
        let first = c2.put(msg(4), 4).map_err(|e| e.kind());
        let second = c2.put(msg(5), 5).map_err(|e| e.kind());
        let _ = t2.send((104, first));
        let _ = t2.send((105, second));
    })
    .unwrap();
    conn.put(msg(3), 3).unwrap();
    let mut batch = take_n::<H>(&chan, 2);
    assert_eq!(payloads(&batch), names(2..4));
    let m3 = batch.pop();
    drop(batch); // m2 goes; m3 is held
    let got: Vec<_> = (0..3)
        .map(|_| rx.recv_timeout(WAIT).expect("callback"))
        .collect();
    assert_eq!(
        got,
        [
            (2, Ok(())),
            (104, Ok(())),
            (105, Err(ErrorKind::WouldBlock))
        ]
    );
    drop(m3);
    assert_eq!(payloads(&visible::<H>(&chan)), names(4..5));
}

/// B11: deliveries as an async stream: messages without a callback arrive on
/// [`Connection::deliveries`](asyncmsg::Connection::deliveries), once each, in
/// put order.
pub fn b11_deliveries_as_async_stream<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let conn = h.connect(&chan, ConnectionAttr::default());
    let mut stream = conn.deliveries();
    block_on(async {
        for i in 0..4 {
            conn.put(msg(i), i).unwrap();
        }
        let held = take_n::<H>(&chan, 4);
        assert_eq!(payloads(&held), names(0..4));
        let first = {
            let mut next = std::pin::pin!(stream.next());
            assert!(
                crate::support::poll_once(next.as_mut()).await.is_pending(),
                "a delivery before the receiver let the message go"
            );
            drop(held);
            tokio::time::timeout(WAIT, next)
                .await
                .expect("no delivery on the stream")
                .expect("the stream does not end")
        };
        let mut seen = vec![(first.handle, first.result)];
        for _ in 1..4 {
            let d = tokio::time::timeout(WAIT, stream.next())
                .await
                .expect("no delivery on the stream")
                .expect("the stream does not end");
            seen.push((d.handle, d.result));
        }
        assert_eq!(seen, (0..4).map(|i| (i, Ok(()))).collect::<Vec<_>>());
        assert!(
            tokio::time::timeout(QUIET, stream.next()).await.is_err(),
            "a delivery too many"
        );
    });
}

/// B12: flush in no-wait mode triggers at once and returns.
pub fn b12_flush_nowait_triggers_at_once<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let conn = h.connect(
        &chan,
        ConnectionAttr::default()
            .trigger_count(100)
            .trigger_time(Duration::from_secs(60)),
    );
    for i in 0..3 {
        conn.put(msg(i), i).unwrap();
    }
    not_visible::<H>(&chan);
    let t0 = Instant::now();
    conn.flush(Flush::NoWait).unwrap();
    assert!(t0.elapsed() < WAIT / 2, "a no-wait flush waited");
    assert_eq!(payloads(&visible::<H>(&chan)), names(0..3));
    conn.flush(Flush::NoWait).unwrap(); // nothing pending: fine
    not_visible::<H>(&chan);
}

/// B12: flush in wait mode triggers at once and returns when every message put
/// before it has been taken by the receiver (taken, not necessarily let go).
pub fn b12_flush_wait_returns_when_all_taken<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().max_buffers(2));
    let conn = h.connect(
        &chan,
        ConnectionAttr::default().trigger_count(0).no_trigger_time(),
    );
    // Nothing pending: returns at once.
    conn.flush(Flush::WaitFor(WAIT)).unwrap();

    for i in 0..3 {
        conn.put(msg(i), i).unwrap();
    }
    let conn = Arc::new(conn);
    let flusher = Arc::clone(&conn);
    let rx = spawn_detached(move || flusher.flush(Flush::Wait));
    let first = chan.get_timeout(WAIT).expect("the flush triggers at once");
    assert_eq!(payloads(&first), names(0..2));
    assert!(
        rx.recv_timeout(QUIET).is_err(),
        "the flush returned with a message still untaken"
    );
    let second = chan.get_timeout(WAIT).expect("the rest of the batch");
    assert_eq!(payloads(&second), names(2..3));
    let r = rx
        .recv_timeout(WAIT)
        .expect("the flush did not return once all was taken");
    assert_eq!(r, Ok(()));
    drop((first, second));

    // Everything taken already: a waiting flush returns at once.
    conn.put(msg(3), 3).unwrap();
    conn.flush(Flush::NoWait).unwrap();
    drop(chan.get_timeout(WAIT).expect("flushed message"));
    let flusher = Arc::clone(&conn);
    let rx = spawn_detached(move || flusher.flush(Flush::Wait));
    assert_eq!(
        rx.recv_timeout(WAIT).expect("the flush did not return"),
        Ok(())
    );
}

/// B12: a flush in wait mode with a timeout gives up with a timed-out error when
/// the receiver does not take the messages; it did trigger them.
pub fn b12_flush_wait_times_out<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let conn = h.connect(
        &chan,
        ConnectionAttr::default().trigger_count(0).no_trigger_time(),
    );
    conn.put(msg(0), 0).unwrap();
    let bound = Duration::from_millis(200);
    let t0 = Instant::now();
    assert_eq!(conn.flush(Flush::WaitFor(bound)), Err(FlushError::TimedOut));
    let elapsed = t0.elapsed();
    assert!(elapsed >= bound, "the flush gave up after {elapsed:?}");
    assert!(elapsed < bound + WAIT, "the flush waited {elapsed:?}");
    assert_eq!(payloads(&visible::<H>(&chan)), names(0..1));
}
