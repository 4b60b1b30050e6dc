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
        match chan.get_timeout(Duration::from_secs(10)) {
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
            Err(GetError::TimedOut) => panic!("lost trigger: {got} of {total} received"),
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
