//! The steady-state hot path allocates nothing per message: puts reuse the
//! buffers their delivery callbacks hand back, gets reuse their batch vector,
//! and the transport's rings and scratch space are allocated once.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asyncmsg::{ChannelConfig, ConnectionAttr, Flush, Node, SendBuf};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BATCH: usize = 64;

/// Puts and gets `rounds` batches of 64, reusing every buffer; returns how
/// many allocations the rounds made.
fn rounds(
    conn: &asyncmsg::Connection,
    chan: &asyncmsg::Channel,
    pool: &Mutex<Vec<SendBuf>>,
    done: &AtomicU64,
    batch: &mut Vec<asyncmsg::Message>,
    rounds: u64,
) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut local: Vec<SendBuf> = Vec::with_capacity(BATCH);
    let mut sent = done.load(Ordering::Acquire);
    for _ in 0..rounds {
        // Wait for the previous round's buffers to come back.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pool.lock().unwrap().len() < BATCH {
            assert!(std::time::Instant::now() < deadline, "callbacks stalled");
            std::thread::yield_now();
        }
        local.extend(pool.lock().unwrap().drain(..BATCH));
        for mut buf in local.drain(..) {
            buf[..8].copy_from_slice(&sent.to_le_bytes());
            conn.put(buf, sent).unwrap();
            sent += 1;
        }
        chan.try_get_into(batch).unwrap();
        assert_eq!(batch.len(), BATCH);
        batch.clear();
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn steady_state(shm: bool) {
    // One test at a time: the allocation counter is global.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let node = Node::new().unwrap();
    let chan = node
        .create_channel(ChannelConfig::default().buffer_size(64).max_buffers(BATCH))
        .unwrap();
    // Over shared memory a second node stands for the other process.
    let peer = Node::new().unwrap();
    let target: asyncmsg::Target = if shm {
        let name = format!("alloc-{}", std::process::id());
        chan.publish(&name).unwrap();
        format!("shm://{name}").into()
    } else {
        chan.id().into()
    };
    let sender = if shm { &peer } else { &node };
    let pool = Arc::new(Mutex::new(Vec::with_capacity(4 * BATCH)));
    let done = Arc::new(AtomicU64::new(0));
    let conn = {
        let (pool, done) = (pool.clone(), done.clone());
        sender
            .connect(
                target,
                ConnectionAttr::default()
                    .max_buffers(2 * BATCH as u32)
                    .trigger_count(BATCH as u32)
                    .on_delivered(move |d| {
                        pool.lock().unwrap().push(d.buf);
                        done.fetch_add(1, Ordering::Release);
                    }),
            )
            .unwrap()
    };
    pool.lock()
        .unwrap()
        .extend((0..BATCH).map(|_| SendBuf::zeroed(64)));
    let mut batch = Vec::with_capacity(BATCH);
    // Warm up: every queue and scratch vector reaches its working size.
    rounds(&conn, &chan, &pool, &done, &mut batch, 200);
    let n = 2_000;
    let allocations = rounds(&conn, &chan, &pool, &done, &mut batch, n);
    let per_message = allocations as f64 / (n * BATCH as u64) as f64;
    assert!(
        per_message < 0.001,
        "{allocations} allocations for {} messages ({per_message:.4} per message)",
        n * BATCH as u64
    );
    conn.flush(Flush::NoWait).unwrap();
}

#[test]
fn steady_state_allocates_nothing_per_message() {
    steady_state(false);
}

/// The same across the shared-memory transport: a put copies into the
/// segment, a get reads in place, and neither side allocates per message.
#[test]
fn steady_state_allocates_nothing_per_message_over_shm() {
    steady_state(true);
}
