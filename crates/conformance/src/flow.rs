//! B06–B08: how much a get returns and in which order, how many messages a
//! connection holds, and how gets wait.

use std::pin::pin;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use asyncmsg::{ChannelConfig, ConnectionAttr, ErrorKind, Flush, GetError, Message, PutError};

use crate::Harness;
use crate::support::{
    QUIET, WAIT, block_on, expect_calls, expect_no_call, msg, names, not_visible, outcomes,
    payloads, poll_once, recorder, spawn_detached, visible, wait_readable, wait_ready,
};

/// B06: a get returns at most the channel's `max_num_buffer` messages; the rest
/// wait, in order, for the next get.
pub fn b06_get_returns_at_most_channel_max_buffers<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().max_buffers(3));
    let conn = h.connect(
        &chan,
        ConnectionAttr::default().trigger_count(0).no_trigger_time(),
    );
    for i in 0..7 {
        conn.put(msg(i), i).unwrap();
    }
    conn.flush(Flush::NoWait).unwrap();
    assert_eq!(payloads(&visible::<H>(&chan)), names(0..3));
    assert_eq!(payloads(&visible::<H>(&chan)), names(3..6));
    assert_eq!(payloads(&visible::<H>(&chan)), names(6..7));
    not_visible::<H>(&chan);
}

/// B06: within a connection order is FIFO; across connections batches are served
/// in the order they triggered, each connection drained (up to the get's
/// capacity) before the next.
pub fn b06_connections_served_in_trigger_order<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().max_buffers(4));
    let attr = ConnectionAttr::default().trigger_count(0).no_trigger_time();
    let a = h.connect(&chan, attr.clone());
    let b = h.connect(&chan, attr.clone());
    let c = h.connect(&chan, attr);
    for (conn, tag) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        for i in 0..3 {
            conn.put(format!("{tag}{i}"), i).unwrap();
        }
    }
    // Trigger order b, a, c (each arrival awaited, so it is the order the
    // channel sees).
    for (n, conn) in [&b, &a, &c].into_iter().enumerate() {
        conn.flush(Flush::NoWait).unwrap();
        if H::IMMEDIATE {
            wait_readable(&chan);
        } else {
            // Batches in flight arrive in their own time: wait for each.
            wait_ready(&chan, n + 1);
        }
    }
    assert_eq!(payloads(&visible::<H>(&chan)), ["b0", "b1", "b2", "a0"]);
    assert_eq!(payloads(&visible::<H>(&chan)), ["a1", "a2", "c0", "c1"]);
    assert_eq!(payloads(&visible::<H>(&chan)), ["c2"]);
    not_visible::<H>(&chan);

    // Messages of one connection carry their sequence numbers in order.
    for i in 3..6 {
        a.put(format!("a{i}"), i).unwrap();
    }
    a.flush(Flush::NoWait).unwrap();
    let batch = visible::<H>(&chan);
    let seqs: Vec<u64> = batch.iter().map(|m| m.info().seq).collect();
    assert_eq!(seqs, [3, 4, 5]);
}

/// B07: a non-blocking connection holds exactly `max_num_buffer` messages put
/// and not yet called back (no hidden sentinel slot); the next put returns
/// would-block with the message; taking a message does not free its slot, its
/// callback does. Nothing is dropped.
pub fn b07_nonblocking_connection_holds_exactly_max_buffers<H: Harness>() {
    for max in [1u32, 3] {
        let h = H::setup();
        let chan = h.channel(ChannelConfig::default());
        let (cb, calls) = recorder();
        let conn = h.connect(
            &chan,
            ConnectionAttr::default()
                .max_buffers(max)
                .trigger_count(0)
                .no_trigger_time()
                .nonblocking(true)
                .on_delivered(cb),
        );
        let max = u64::from(max);
        for i in 0..max {
            conn.put(msg(i), i)
                .unwrap_or_else(|e| panic!("put {i} of max_buffers {max}: {e}"));
        }
        let refused = conn.put(msg(max), max).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::WouldBlock, "put beyond {max}");
        let back = refused.into_buf();
        assert_eq!(
            &back[..],
            &msg(max)[..],
            "the refused message is given back"
        );

        // Taken but not yet called back: the slots are still in use.
        conn.flush(Flush::NoWait).unwrap();
        let batch = visible::<H>(&chan);
        assert_eq!(payloads(&batch), names(0..max));
        let back = match conn.put(back, max) {
            Err(PutError::WouldBlock(b)) => b,
            other => panic!("put while every message is held: {other:?}"),
        };
        drop(batch);
        let done = expect_calls(&calls, max as usize);
        assert!(done.iter().all(|c| c.result.is_ok()));

        // Called back: the slots are free again; the refused message goes now.
        conn.put(back, max).unwrap();
        conn.flush(Flush::NoWait).unwrap();
        assert_eq!(payloads(&visible::<H>(&chan)), names(max..max + 1));
        assert_eq!(outcomes(&expect_calls(&calls, 1)), [(max, Ok(()))]);
        expect_no_call(&calls);
    }
}

/// B07: on a blocking connection the put that finds every slot in use waits
/// until one frees, then goes through; nothing is dropped.
pub fn b07_blocking_put_waits_for_a_slot<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default());
    let (cb, calls) = recorder();
    let conn = h.connect(
        &chan,
        ConnectionAttr::default()
            .max_buffers(2)
            .trigger_count(0)
            .no_trigger_time()
            .on_delivered(cb),
    );
    conn.put(msg(0), 0).unwrap();
    conn.put(msg(1), 1).unwrap();
    let conn = Arc::new(conn);
    let putter = Arc::clone(&conn);
    let rx = spawn_detached(move || putter.put(msg(2), 2).map_err(|e| e.kind()));
    assert!(
        rx.recv_timeout(QUIET).is_err(),
        "a put on a full blocking connection returned at once"
    );
    conn.flush(Flush::NoWait).unwrap();
    let batch = visible::<H>(&chan);
    assert_eq!(payloads(&batch), names(0..2));
    drop(batch);
    let r = rx
        .recv_timeout(WAIT)
        .expect("the blocked put did not return after slots freed");
    assert_eq!(r, Ok(()), "the blocked put succeeds once a slot is free");
    conn.flush(Flush::NoWait).unwrap();
    assert_eq!(payloads(&visible::<H>(&chan)), names(2..3));
    let done = expect_calls(&calls, 3);
    assert_eq!(outcomes(&done), [(0, Ok(())), (1, Ok(())), (2, Ok(()))]);
}

/// B07: `put_timeout` waits at most its time and `try_put` not at all; both
/// give the message back with would-block when the connection stays full.
pub fn b07_timed_and_try_put_give_message_back<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default());
    let conn = h.connect(
        &chan,
        ConnectionAttr::default()
            .max_buffers(1)
            .trigger_count(0)
            .no_trigger_time(),
    );
    conn.put(msg(0), 0).unwrap();
    let e = conn.try_put(msg(1), 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(&e.into_buf()[..], b"m1");

    let wait = Duration::from_millis(100);
    let t0 = Instant::now();
    let e = conn.put_timeout(msg(2), 2, wait).unwrap_err();
    let elapsed = t0.elapsed();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(&e.into_buf()[..], b"m2");
    assert!(elapsed >= wait, "put_timeout gave up after {elapsed:?}");
    assert!(elapsed < wait + WAIT, "put_timeout waited {elapsed:?}");

    conn.flush(Flush::NoWait).unwrap();
    assert_eq!(payloads(&visible::<H>(&chan)), names(0..1));
}

/// B08: on a non-blocking channel a get with nothing visible returns
/// would-block at once (also `get_timeout`).
pub fn b08_nonblocking_get_would_block_at_once<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default().nonblocking(true));
    let _conn = h.connect(&chan, ConnectionAttr::default());
    let t0 = Instant::now();
    assert_eq!(chan.get().unwrap_err(), GetError::WouldBlock);
    assert_eq!(chan.try_get().unwrap_err(), GetError::WouldBlock);
    assert_eq!(chan.get_timeout(WAIT).unwrap_err(), GetError::WouldBlock);
    assert!(
        t0.elapsed() < WAIT / 2,
        "non-blocking gets waited {:?}",
        t0.elapsed()
    );
}

/// B08: on a blocking channel a get waits for a trigger; `get_timeout` bounds
/// the wait.
pub fn b08_blocking_get_waits_and_timeout_bounds_it<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default());
    let conn = h.connect(&chan, ConnectionAttr::default());

    let bound = Duration::from_millis(200);
    let t0 = Instant::now();
    assert_eq!(chan.get_timeout(bound).unwrap_err(), GetError::TimedOut);
    let elapsed = t0.elapsed();
    assert!(elapsed >= bound, "get_timeout gave up after {elapsed:?}");
    assert!(elapsed < bound + WAIT, "get_timeout waited {elapsed:?}");

    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let chan = &chan;
        s.spawn(move || {
            let _ = tx.send(chan.get_timeout(WAIT).map(|b| payloads(&b)));
        });
        assert!(
            rx.recv_timeout(QUIET).is_err(),
            "a blocking get returned with nothing put"
        );
        conn.put(msg(0), 0).unwrap();
        let got = rx.recv_timeout(WAIT).expect("the getter did not return");
        assert_eq!(got, Ok(names(0..1)), "the waiting getter takes the batch");
    });
}

/// B08: one trigger wakes one waiting getter: of two threads waiting, one
/// takes the message and the other keeps waiting, for the next trigger.
pub fn b08_one_trigger_wakes_one_waiting_getter<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default());
    let conn = h.connect(&chan, ConnectionAttr::default());
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..2 {
            let tx = tx.clone();
            let chan = &chan;
            s.spawn(move || {
                let _ = tx.send(chan.get_timeout(WAIT).map(|b| payloads(&b)));
            });
        }
        assert!(rx.recv_timeout(QUIET).is_err(), "a getter returned early");
        conn.put(msg(0), 0).unwrap();
        let first = rx.recv_timeout(WAIT).expect("no getter woke");
        assert_eq!(first, Ok(names(0..1)));
        assert!(
            rx.recv_timeout(QUIET).is_err(),
            "one trigger woke both getters"
        );
        conn.put(msg(1), 1).unwrap();
        let second = rx
            .recv_timeout(WAIT)
            .expect("the second getter did not wake");
        assert_eq!(second, Ok(names(1..2)));
    });
}

/// B08: `recv().await` waits without a thread: on a single-threaded runtime the
/// put that satisfies it runs on the same thread while it waits. Works on
/// blocking and non-blocking channels.
pub fn b08_async_recv_waits_without_a_thread<H: Harness>() {
    let h = H::setup();
    for nonblocking in [false, true] {
        let chan = h.channel(ChannelConfig::default().nonblocking(nonblocking));
        let conn = h.connect(&chan, ConnectionAttr::default());
        let batch = block_on(async {
            let mut recv = pin!(chan.recv());
            assert!(
                poll_once(recv.as_mut()).await.is_pending(),
                "recv returned with nothing put"
            );
            conn.put(msg(0), 0).unwrap();
            tokio::time::timeout(WAIT, recv)
                .await
                .expect("recv did not wake on the trigger")
        })
        .expect("recv");
        assert_eq!(payloads(&batch), names(0..1));

        // readable() likewise, without taking.
        block_on(async {
            let mut ready = pin!(chan.readable());
            assert!(poll_once(ready.as_mut()).await.is_pending());
            conn.put(msg(1), 1).unwrap();
            tokio::time::timeout(WAIT, ready)
                .await
                .expect("readable did not wake on the trigger")
                .expect("readable");
        });
        assert_eq!(payloads(&visible::<H>(&chan)), names(1..2));
    }
}

/// B08: one trigger wakes one waiting task: of two `recv()` futures waiting,
/// one completes with the message, the other keeps waiting for the next.
pub fn b08_async_one_trigger_wakes_one_task<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default());
    let conn = h.connect(&chan, ConnectionAttr::default());
    block_on(async {
        let mut a = pin!(chan.recv());
        let mut b = pin!(chan.recv());
        assert!(poll_once(a.as_mut()).await.is_pending());
        assert!(poll_once(b.as_mut()).await.is_pending());
        conn.put(msg(0), 0).unwrap();
        let (which, first) = tokio::time::timeout(WAIT, async {
            tokio::select! {
                r = a.as_mut() => (0, r),
                r = b.as_mut() => (1, r),
            }
        })
        .await
        .expect("no task woke");
        let first: Vec<Message> = first.expect("recv");
        let mut rest = if which == 0 { b } else { a };
        assert_eq!(payloads(&first), names(0..1));
        assert!(
            tokio::time::timeout(QUIET, rest.as_mut()).await.is_err(),
            "one trigger completed both recv futures"
        );
        conn.put(msg(1), 1).unwrap();
        let second = tokio::time::timeout(WAIT, rest)
            .await
            .expect("the second task did not wake")
            .expect("recv");
        assert_eq!(payloads(&second), names(1..2));
    });
}

/// B07, B12: the async twins of a blocking put and a waiting flush wait without
/// a thread: `put_async` while every slot is in use, until one frees;
/// `flush_async` until the receiver took every message put before it.
pub fn b07_b12_async_put_and_flush_wait_without_a_thread<H: Harness>() {
    let h = H::setup();
    let chan = h.channel(ChannelConfig::default());
    let conn = h.connect(
        &chan,
        ConnectionAttr::default()
            .max_buffers(1)
            .trigger_count(0)
            .no_trigger_time(),
    );
    block_on(async {
        conn.put_async(msg(0), 0).await.unwrap();
        let mut put = pin!(conn.put_async(msg(1), 1));
        assert!(
            poll_once(put.as_mut()).await.is_pending(),
            "put_async did not wait with every slot in use"
        );
        let mut flush = pin!(conn.flush_async());
        assert!(
            poll_once(flush.as_mut()).await.is_pending(),
            "flush_async did not wait for the receiver"
        );
        // The flush made message 0 visible; taking and dropping it frees the slot.
        assert_eq!(payloads(&visible::<H>(&chan)), names(0..1));
        tokio::time::timeout(WAIT, flush)
            .await
            .expect("flush_async did not finish once the receiver took the message")
            .unwrap();
        tokio::time::timeout(WAIT, put)
            .await
            .expect("put_async did not wake when the slot freed")
            .unwrap();
    });
    conn.flush(Flush::NoWait).unwrap();
    assert_eq!(payloads(&visible::<H>(&chan)), names(1..2));
}
