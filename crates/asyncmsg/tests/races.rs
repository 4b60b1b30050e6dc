//! Races between putters, getters and the delivery thread: nothing may be lost,
//! duplicated or left unannounced. The short runs are part of the default suite;
//! the long ones run with `cargo xtask stress`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use asyncmsg::{ChannelConfig, ConnectionAttr, GetError, Node};

/// One sender thread per connection puts `per_sender` messages with `trigger`;
/// one getter takes them all. A lost trigger shows as a get that times out while
/// messages are still owed.
fn run(senders: usize, per_sender: u64, trigger: u32, max_buffers: u32, get_cap: usize) {
    let node = Node::new().unwrap();
    let chan = node
        .create_channel(ChannelConfig::default().max_buffers(get_cap))
        .unwrap();
    let delivered = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for s in 0..senders {
        let d = delivered.clone();
        let conn = node
            .connect(
                chan.id(),
                ConnectionAttr::default()
                    .max_buffers(max_buffers)
                    .trigger_count(trigger)
                    .on_delivered(move |del| {
                        assert_eq!(del.result, Ok(()));
                        d.fetch_add(1, Ordering::Relaxed);
                    }),
            )
            .unwrap();
        threads.push(thread::spawn(move || {
            for i in 0..per_sender {
                let mut b = vec![0u8; 16];
                b[..8].copy_from_slice(&(s as u64).to_le_bytes());
                b[8..].copy_from_slice(&i.to_le_bytes());
                conn.put(b, i).unwrap();
            }
            // The last partial batch.
            conn.flush(asyncmsg::Flush::NoWait).unwrap();
            conn
        }));
    }
    let total = senders as u64 * per_sender;
    let mut next = vec![0u64; senders];
    let mut got = 0;
    while got < total {
        match chan.get_timeout(Duration::from_secs(3)) {
            Ok(batch) => {
                assert!(batch.len() <= get_cap);
                for m in batch {
                    let s = u64::from_le_bytes(m.data()[..8].try_into().unwrap()) as usize;
                    let i = u64::from_le_bytes(m.data()[8..16].try_into().unwrap());
                    assert_eq!(i, next[s], "FIFO per connection");
                    next[s] += 1;
                    got += 1;
                }
            }
            Err(GetError::TimedOut) => panic!(
                "lost trigger: {got} of {total} received; {}",
                chan.debug_state()
            ),
            Err(e) => panic!("{e}"),
        }
    }
    let conns: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::Relaxed) < total {
        assert!(
            std::time::Instant::now() < deadline,
            "callbacks missing: {} of {total}",
            delivered.load(Ordering::Relaxed)
        );
        thread::yield_now();
    }
    drop(conns);
}

#[test]
fn b05_b13_one_sender_trigger_64_short() {
    for _ in 0..20 {
        run(1, 50_000, 64, 1024, 1024);
    }
}

#[test]
fn b06_b13_four_senders_small_gets_short() {
    for _ in 0..10 {
        run(4, 5_000, 16, 64, 5);
    }
}

/// Runs `f` while two threads spin, so that the sender, the getter and the
/// delivery thread are preempted at odd points.
fn under_load<T>(f: impl FnOnce() -> T) -> T {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let out = f();
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    out
}

#[test]
#[ignore = "long; run by cargo xtask stress"]
fn stress_one_sender_under_load() {
    under_load(|| {
        for _ in 0..30 {
            run(1, 500_000, 64, 1024, 1024);
        }
    });
}

#[test]
#[ignore = "long; run by cargo xtask stress"]
fn stress_triggers_and_gets() {
    for round in 0..200 {
        let trigger = [1, 3, 16, 64][round % 4];
        run(
            1 + round % 4,
            50_000,
            trigger,
            128,
            [1, 7, 64, 1024][round % 4],
        );
    }
}

/// The benchmark's pattern: one sender reusing the buffers its callbacks hand
/// back through a shared pool, one getter reusing its batch vector.
fn run_pooled(n: u64, trigger: u32) {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU8;
    let node = Node::new().unwrap();
    let chan = node
        .create_channel(ChannelConfig::default().buffer_size(64).max_buffers(1024))
        .unwrap();
    let pool = Arc::new(Mutex::new(Vec::<asyncmsg::SendBuf>::new()));
    let next = Arc::new(AtomicU64::new(0));
    let phase = Arc::new(AtomicU8::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let conn = {
        let (pool, next) = (pool.clone(), next.clone());
        node.connect(
            chan.id(),
            ConnectionAttr::default()
                .max_buffers(1024)
                .trigger_count(trigger)
                .on_delivered(move |d| {
                    let expected = next.load(Ordering::Relaxed);
                    assert_eq!((d.handle, d.result), (expected, Ok(())));
                    next.store(expected + 1, Ordering::Relaxed);
                    pool.lock().unwrap().push(d.buf);
                }),
        )
        .unwrap()
    };
    let receiver = {
        let (phase, sent, next) = (phase.clone(), sent.clone(), next.clone());
        thread::spawn(move || {
            let mut batch = Vec::with_capacity(1024);
            let mut expected = 0u64;
            let mut slow = None;
            while expected < n {
                match chan.get_into(&mut batch, Some(Duration::from_secs(1))) {
                    Ok(()) => {}
                    Err(GetError::TimedOut) => {
                        slow.get_or_insert(format!(
                            "stalled after {expected} of {n}: sender phase {} sent {} called back {}; {}",
                            phase.load(Ordering::SeqCst),
                            sent.load(Ordering::SeqCst),
                            next.load(Ordering::SeqCst),
                            chan.debug_state()
                        ));
                        continue;
                    }
                    Err(e) => panic!("{e}"),
                }
                for m in &batch {
                    assert_eq!(
                        u64::from_le_bytes(m.data()[..8].try_into().unwrap()),
                        expected
                    );
                    expected += 1;
                }
                batch.clear();
            }
            if let Some(s) = slow {
                panic!("{s}");
            }
            chan
        })
    };
    let mut local: Vec<asyncmsg::SendBuf> =
        (0..1024).map(|_| asyncmsg::SendBuf::zeroed(64)).collect();
    for i in 0..n {
        let mut buf = match local.pop() {
            Some(b) => b,
            None => {
                phase.store(2, Ordering::SeqCst);
                std::mem::swap(&mut *pool.lock().unwrap(), &mut local);
                local.pop().unwrap_or_else(|| asyncmsg::SendBuf::zeroed(64))
            }
        };
        buf[..8].copy_from_slice(&i.to_le_bytes());
        phase.store(1, Ordering::SeqCst);
        conn.put(buf, i).unwrap();
        phase.store(0, Ordering::SeqCst);
        sent.store(i + 1, Ordering::SeqCst);
    }
    phase.store(3, Ordering::SeqCst);
    conn.flush(asyncmsg::Flush::NoWait).unwrap();
    phase.store(4, Ordering::SeqCst);
    let chan = receiver.join().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while next.load(Ordering::Relaxed) < n {
        assert!(std::time::Instant::now() < deadline, "callbacks missing");
        thread::yield_now();
    }
    drop(conn);
    drop(chan);
}

#[test]
#[ignore = "long; run by cargo xtask stress"]
fn stress_pooled_under_load() {
    under_load(|| {
        for round in 0..60 {
            run_pooled(500_000, if round % 2 == 0 { 64 } else { 1 });
        }
    });
}

/// B11: a delivery callback that panics does not stop the delivery thread:
/// every later message still gets its callback.
#[test]
fn b11_panicking_callback_does_not_stop_deliveries() {
    let node = Node::new().unwrap();
    let chan = node.create_channel(ChannelConfig::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let conn = node
        .connect(
            chan.id(),
            ConnectionAttr::default().on_delivered(move |d| {
                if d.handle == 0 {
                    panic!("a callback that panics (expected in this test)");
                }
                tx.send(d.handle).unwrap();
            }),
        )
        .unwrap();
    for i in 0..3 {
        conn.put("m", i).unwrap();
        drop(chan.get_timeout(Duration::from_secs(5)).unwrap());
    }
    let got: Vec<u64> = (0..2)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    assert_eq!(got, [1, 2]);
}
