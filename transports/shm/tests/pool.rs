//! Tests of the shared buffer pool and its receiver-side view.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::thread;

use asyncmsg_shm::pool::{CAPACITY_GRANULE, MIN_CAPACITY, MIN_CHUNK, Pool, PoolBuf, PoolView};
use asyncmsg_shm::sys::Mapping;

fn view_of(pool: &Pool) -> PoolView {
    PoolView::open(pool.fd().try_clone_to_owned().unwrap()).unwrap()
}

#[test]
fn capacity_is_rounded_up() {
    assert_eq!(Pool::create(0).unwrap().capacity(), MIN_CAPACITY);
    assert_eq!(Pool::create(MIN_CAPACITY).unwrap().capacity(), MIN_CAPACITY);
    assert_eq!(
        Pool::create(MIN_CAPACITY + 1).unwrap().capacity(),
        MIN_CAPACITY + CAPACITY_GRANULE
    );
    assert_eq!(
        Pool::create(usize::MAX).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    let a = Pool::create(0).unwrap();
    let b = Pool::create(0).unwrap();
    assert_ne!(a.id(), b.id());
}

#[test]
fn alloc_sizes_and_alignment() {
    let pool = Pool::create(4 << 20).unwrap();
    for (len, chunk) in [
        (1, 4096),
        (4096, 4096),
        (4097, 8192),
        (100_000, 131_072),
        (1 << 20, 1 << 20),
    ] {
        let buf = pool.alloc(len).unwrap();
        assert_eq!(buf.len(), len);
        assert_eq!(buf.capacity(), chunk);
        assert_eq!(buf.offset() % MIN_CHUNK as u64, 0);
        assert!(buf.iter().all(|&b| b == 0));
        assert!(Arc::ptr_eq(buf.pool(), &pool));
    }
    assert!(pool.alloc(0).is_none());
    assert!(pool.alloc(pool.capacity() + 1).is_none());
}

#[test]
fn freed_chunks_are_reused_per_class_and_zeroed() {
    let pool = Pool::create(0).unwrap();
    let mut a = pool.alloc(100).unwrap();
    let mut b = pool.alloc(10_000).unwrap();
    a.fill(0xAA);
    b.fill(0xBB);
    let (off_a, off_b) = (a.offset(), b.offset());
    drop(a);
    drop(b);
    let a2 = pool.alloc(4000).unwrap();
    assert_eq!(a2.offset(), off_a, "same class reuses the freed chunk");
    assert!(a2.iter().all(|&b| b == 0), "zeroed on reuse");
    let b2 = pool.alloc(16_384).unwrap();
    assert_eq!(b2.offset(), off_b);
    assert!(b2.iter().all(|&b| b == 0));
}

#[test]
fn set_len_stays_within_the_chunk() {
    let pool = Pool::create(0).unwrap();
    let mut buf = pool.alloc(10).unwrap();
    assert!(buf.set_len(4096));
    assert_eq!(buf.len(), 4096);
    assert!(!buf.set_len(4097));
    assert_eq!(buf.len(), 4096);
    assert!(buf.set_len(0));
    assert!(buf.is_empty());
    assert!(format!("{buf:?}").contains("PoolBuf"));
}

#[test]
fn exhaustion_gives_none_until_a_free() {
    let pool = Pool::create(MIN_CAPACITY).unwrap();
    let bufs: Vec<PoolBuf> = (0..MIN_CAPACITY / (64 * 1024))
        .map(|_| pool.alloc(64 * 1024).unwrap())
        .collect();
    assert!(pool.alloc(1).is_none());
    assert!(pool.alloc(64 * 1024).is_none());
    drop(bufs);
    assert!(pool.alloc(64 * 1024).is_some());
    assert!(pool.alloc(1).is_some(), "split from a freed larger chunk");

    let pool = Pool::create(MIN_CAPACITY).unwrap();
    let whole = pool.alloc(MIN_CAPACITY).unwrap();
    assert!(pool.alloc(1).is_none());
    drop(whole);
    assert!(pool.alloc(MIN_CAPACITY).is_some());
}

#[test]
fn a_view_sees_what_a_buffer_wrote() {
    let pool = Pool::create(0).unwrap();
    let view = view_of(&pool);
    assert_eq!(view.len(), pool.capacity());
    let mut buf = pool.alloc(11).unwrap();
    buf.copy_from_slice(b"hello world");
    assert_eq!(view.slice(buf.offset(), buf.len()).unwrap(), b"hello world");
    buf[0] = b'j';
    assert_eq!(view.slice(buf.offset(), 5).unwrap(), b"jello");

    // Also through a plain read-only Mapping of a dup.
    let map = Mapping::open(pool.fd().try_clone_to_owned().unwrap(), false).unwrap();
    let off = usize::try_from(buf.offset()).unwrap();
    // SAFETY: `off` is within the mapping, which is alive; u8 reads of plain
    // memory are always valid.
    assert_eq!(unsafe { map.as_ptr().add(off).read_volatile() }, b'j');
    assert!(format!("{view:?}").contains("PoolView"));
}

#[test]
fn a_receiver_cannot_map_the_pool_writable() {
    let pool = Pool::create(0).unwrap();
    let err = Mapping::open(pool.fd().try_clone_to_owned().unwrap(), true).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
}

#[test]
fn slice_bounds() {
    let pool = Pool::create(0).unwrap();
    let view = view_of(&pool);
    let len = view.len();
    assert_eq!(view.slice(0, len).unwrap().len(), len);
    assert_eq!(view.slice(len as u64, 0).unwrap().len(), 0);
    assert_eq!(view.slice(len as u64 - 1, 1).unwrap().len(), 1);
    assert!(view.slice(len as u64, 1).is_none());
    assert!(view.slice(0, len + 1).is_none());
    assert!(view.slice(len as u64 + 1, 0).is_none());
    assert!(view.slice(u64::MAX, 1).is_none());
    assert!(view.slice(u64::MAX, usize::MAX).is_none());
    assert!(view.slice(1, usize::MAX).is_none());
    assert!(view.slice(4096, usize::MAX - 4095).is_none());
}

#[test]
fn view_refuses_odd_lengths() {
    let seg = Mapping::create("test-odd-pool", 4096).unwrap();
    let err = PoolView::open(seg.fd().try_clone_to_owned().unwrap()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn concurrent_alloc_and_free_lose_nothing() {
    let pool = Pool::create(4 << 20).unwrap();
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                let mut held: Vec<PoolBuf> = Vec::new();
                for i in 0..4000usize {
                    let len = 1 + (i * 7919 + usize::from(t) * 104_729) % 40_000;
                    if let Some(mut buf) = pool.alloc(len) {
                        assert!(buf.iter().all(|&b| b == 0), "not zeroed");
                        buf.fill(t + 1);
                        held.push(buf);
                    }
                    if !held.is_empty() && (held.len() > 8 || i % 3 == 0) {
                        let buf = held.swap_remove(i % held.len());
                        assert!(buf.iter().all(|&b| b == t + 1), "overwritten");
                    }
                }
                for buf in &held {
                    assert!(buf.iter().all(|&b| b == t + 1), "overwritten");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Every byte is back: the whole pool can be handed out again in 4 KiB
    // chunks, each at a distinct offset.
    let mut offsets = HashSet::new();
    let mut bufs = Vec::new();
    while let Some(buf) = pool.alloc(1) {
        assert!(offsets.insert(buf.offset()));
        bufs.push(buf);
    }
    assert_eq!(bufs.len(), pool.capacity() / MIN_CHUNK);
}

#[test]
fn buffers_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pool>();
    assert_send_sync::<PoolBuf>();
    assert_send_sync::<PoolView>();

    let pool = Pool::create(0).unwrap();
    let mut buf = pool.alloc(3).unwrap();
    buf.copy_from_slice(b"abc");
    let offset = buf.offset();
    thread::spawn(move || drop(buf)).join().unwrap();
    assert_eq!(pool.alloc(1).unwrap().offset(), offset);
}
