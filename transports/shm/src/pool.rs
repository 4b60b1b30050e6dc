//! A node's pool of shared send buffers.
//!
//! The sending process owns one [`Pool`]: a single sealed memfd whose virtual
//! size is fixed at creation (pages are only backed once touched). A buffer
//! from [`Pool::alloc`] is a chunk of it; when such a buffer is sent, only its
//! `(offset, len)` crosses to the receiver, which has mapped the whole pool
//! read-only once ([`PoolView`]) and reads the bytes in place: no copy.
//!
//! The pool is sealed with `F_SEAL_FUTURE_WRITE` after the owner mapped it,
//! so receivers can only ever map it read-only: the owning process is the
//! pool's only writer, and a [`PoolBuf`] is the only way to write a chunk.
//!
//! # Allocation
//! Chunk sizes are powers of two from 4 KiB up to the pool's capacity, and
//! every chunk starts at a multiple of 4 KiB. A bump pointer carves new chunks
//! from the untouched end of the pool; freed chunks go to a free list per size
//! and are reused first. When both are empty, a free chunk of a larger size is
//! split in halves. [`Pool::alloc`] returns `None` when nothing fits: callers
//! then fall back to heap buffers.

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::ptr;
use std::slice;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::sys::{MAX_SEGMENT_LEN, Mapping};

/// A pool's capacity is a multiple of this (64 KiB), and so is the length of
/// every mapping [`PoolView::open`] accepts.
pub const CAPACITY_GRANULE: usize = 64 * 1024;

/// The smallest pool capacity: 1 MiB.
pub const MIN_CAPACITY: usize = 1 << 20;

/// The largest pool capacity: 1 TiB.
pub const MAX_CAPACITY: usize = MAX_SEGMENT_LEN;

/// The smallest chunk, and the alignment of every chunk's offset: 4 KiB.
pub const MIN_CHUNK: usize = 1 << MIN_CHUNK_SHIFT;

const MIN_CHUNK_SHIFT: u32 = 12;

/// Source of process-unique pool ids.
static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// Locks a free list; a poisoned lock still holds a consistent `Vec` (pushes
/// and pops cannot be torn), so poisoning is ignored.
fn lock(list: &Mutex<Vec<usize>>) -> MutexGuard<'_, Vec<usize>> {
    list.lock().unwrap_or_else(|e| e.into_inner())
}

/// Chunk size of size class `class`.
fn class_size(class: usize) -> usize {
    MIN_CHUNK << class
}

/// The size class whose chunks fit `len` bytes (`1 <= len <= MAX_CAPACITY`).
fn class_of(len: usize) -> usize {
    let size = len.max(MIN_CHUNK).next_power_of_two();
    (size.trailing_zeros() - MIN_CHUNK_SHIFT) as usize
}

/// A pool of shared send buffers in one sealed memfd (see the
/// [module docs](self)).
pub struct Pool {
    map: Mapping,
    id: u64,
    /// End of the carved part: everything from here to the capacity was
    /// never handed out, and so still reads as zeroes.
    next: AtomicUsize,
    /// Free chunk offsets per size class; class `c` holds chunks of
    /// `MIN_CHUNK << c` bytes. Only classes whose chunks fit the capacity
    /// exist.
    free: Box<[Mutex<Vec<usize>>]>,
}

impl Pool {
    /// Creates a pool of `capacity` bytes, rounded up to a multiple of
    /// 64 KiB and to at least 1 MiB. Only the address space is reserved now;
    /// memory is used as buffers are written.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] if `capacity` is above
    /// [`MAX_CAPACITY`]; the OS error of creating or mapping the memfd
    /// otherwise.
    pub fn create(capacity: usize) -> io::Result<Arc<Pool>> {
        if capacity > MAX_CAPACITY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pool capacity is above 1 TiB",
            ));
        }
        let capacity = capacity.max(MIN_CAPACITY).div_ceil(CAPACITY_GRANULE) * CAPACITY_GRANULE;
        let id = NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed);
        let map = Mapping::create_peer_read_only(&format!("asyncmsg-pool-{id}"), capacity)?;
        // Classes up to the largest power of two not above the capacity.
        let largest = usize::BITS - 1 - capacity.leading_zeros();
        let classes = (largest - MIN_CHUNK_SHIFT + 1) as usize;
        let free = (0..classes).map(|_| Mutex::new(Vec::new())).collect();
        Ok(Arc::new(Pool {
            map,
            id,
            next: AtomicUsize::new(0),
            free,
        }))
    }

    /// The pool's descriptor, to send to a receiver, which opens it with
    /// [`PoolView::open`]. It can only be mapped read-only by anyone else.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.map.fd()
    }

    /// The pool's size in bytes (a multiple of 64 KiB).
    pub fn capacity(&self) -> usize {
        self.map.len()
    }

    /// An id unique among the pools this process created.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A buffer of exactly `len` zeroed bytes in the pool, or `None` if
    /// `len` is 0, above the capacity, or no chunk of the needed size is free
    /// (callers then use a heap buffer). The buffer's chunk is the smallest
    /// power of two of at least 4 KiB that holds `len` bytes.
    ///
    /// May be called from any thread; dropping the buffer, on any thread,
    /// returns its chunk to the pool.
    pub fn alloc(self: &Arc<Self>, len: usize) -> Option<PoolBuf> {
        if len == 0 || len > self.capacity() {
            return None;
        }
        let class = class_of(len);
        if class >= self.free.len() {
            return None;
        }
        let (offset, fresh) = self.take_chunk(class)?;
        if !fresh {
            // SAFETY: the chunk `offset..offset + class_size(class)` lies in
            // the mapping (a chunk invariant) and `len <= class_size(class)`;
            // the chunk was just taken off a free list, so no PoolBuf refers
            // to it and nobody else reads or writes it; the mapping is
            // writable and no other process can write it (sealed).
            unsafe { ptr::write_bytes(self.map.as_ptr().add(offset), 0, len) };
        }
        Some(PoolBuf {
            pool: Arc::clone(self),
            offset,
            len,
            class,
        })
    }

    /// Takes a chunk of `class`: a freed one, a new one from the bump
    /// pointer, or a split larger freed one. Returns its offset and whether
    /// it was never used (so still zero).
    fn take_chunk(&self, class: usize) -> Option<(usize, bool)> {
        if let Some(offset) = lock(&self.free[class]).pop() {
            return Some((offset, false));
        }
        let size = class_size(class);
        let capacity = self.capacity();
        // The bump pointer only grows by whole chunks of at least 4 KiB from
        // 0, so `next` is always 4 KiB-aligned.
        if let Ok(offset) = self
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
                next.checked_add(size).filter(|&end| end <= capacity)
            })
        {
            return Some((offset, true));
        }
        for bigger in class + 1..self.free.len() {
            let Some(offset) = lock(&self.free[bigger]).pop() else {
                continue;
            };
            // Keep the lowest `size` bytes; give back the upper halves,
            // largest first: offset + size/2^k for each class in between.
            for half in (class..bigger).rev() {
                lock(&self.free[half]).push(offset + class_size(half));
            }
            return Some((offset, false));
        }
        None
    }

    /// Bytes carved from the pool so far (handed out now or on a free list).
    pub fn carved(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("id", &self.id)
            .field("capacity", &self.capacity())
            .field("carved", &self.carved())
            .finish()
    }
}

/// A buffer in a [`Pool`]: exactly [`len`](PoolBuf::len) bytes of a chunk
/// that belongs to this buffer alone until it is dropped.
///
/// Dereferences to the bytes. Send it by its [`offset`](PoolBuf::offset) and
/// length; a receiver reads the same bytes through its [`PoolView`]. Dropping
/// the buffer returns the chunk to the pool, so the sender must keep it until
/// the receiver is done with the bytes.
pub struct PoolBuf {
    pool: Arc<Pool>,
    offset: usize,
    len: usize,
    class: usize,
}

impl PoolBuf {
    /// Number of bytes in the buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes (only after `set_len(0)`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offset of the buffer's first byte in the pool (a multiple of 4 KiB).
    pub fn offset(&self) -> u64 {
        self.offset as u64
    }

    /// The pool the buffer lives in.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Size of the buffer's chunk: the most bytes [`PoolBuf::set_len`]
    /// allows.
    pub fn capacity(&self) -> usize {
        class_size(self.class)
    }

    /// Sets the buffer's length to `len` if it fits the chunk
    /// (`len <= capacity()`), and returns whether it did.
    ///
    /// Growing exposes the chunk's bytes as they are: zero if this part of
    /// the chunk was never written, otherwise whatever an earlier buffer of
    /// this pool (or this one, before shrinking) left there. Only bytes
    /// within the length given to [`Pool::alloc`] are guaranteed zeroed.
    pub fn set_len(&mut self, len: usize) -> bool {
        if len > self.capacity() {
            return false;
        }
        self.len = len;
        true
    }
}

impl Deref for PoolBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `offset..offset + capacity()` lies in the pool's mapping
        // (chunks are carved within the capacity) and `len <= capacity()`;
        // the mapping lives as long as the Arc<Pool> we hold. The memory is
        // initialised (a memfd reads as zeroes until written). This PoolBuf
        // owns the chunk exclusively until dropped, so the only writes to it
        // come through `&mut self` (DerefMut) - other processes can only map
        // the pool read-only (F_SEAL_FUTURE_WRITE) - and none can happen
        // while this shared borrow lives.
        unsafe { slice::from_raw_parts(self.pool.map.as_ptr().add(self.offset), self.len) }
    }
}

impl DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; in addition the mapping is writable
        // (created by this process with PROT_WRITE) and `&mut self`
        // guarantees no other borrow of the chunk exists.
        unsafe { slice::from_raw_parts_mut(self.pool.map.as_ptr().add(self.offset), self.len) }
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        lock(&self.pool.free[self.class]).push(self.offset);
    }
}

impl fmt::Debug for PoolBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuf")
            .field("pool", &self.pool.id)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// A receiver's read-only view of a sender's [`Pool`].
///
/// The bytes are shared memory that the sending process may write at any
/// time. A well-behaved sender does not touch a buffer until the receiver
/// has released it; a misbehaving one can change bytes while they are read.
/// That cannot break memory safety (the mapping stays valid and its size is
/// sealed, and any bit pattern is a valid byte), but it can give torn
/// contents: validate what you read, and copy it out before validating if it
/// must not change afterwards.
pub struct PoolView {
    map: Mapping,
}

impl PoolView {
    /// Maps a pool received from a peer, read-only.
    ///
    /// # Errors
    /// As [`Mapping::open`] (the fd must be a sealed segment);
    /// [`io::ErrorKind::InvalidData`] if its length is not a multiple of
    /// 64 KiB.
    pub fn open(fd: OwnedFd) -> io::Result<PoolView> {
        let mut map = Mapping::open(fd, false)?;
        map.release_fd();
        if map.len() % CAPACITY_GRANULE != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "pool length is not a multiple of 64 KiB",
            ));
        }
        Ok(PoolView { map })
    }

    /// The pool's length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always `false` (a pool is at least 64 KiB); present for symmetry with
    /// [`PoolView::len`].
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The `len` bytes at `offset`, or `None` unless
    /// `offset + len <= self.len()` (computed without overflow). The bytes
    /// may change under the reader if the sender misbehaves (see the type's
    /// docs).
    pub fn slice(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let offset = usize::try_from(offset).ok()?;
        let end = offset.checked_add(len)?;
        if end > self.map.len() {
            return None;
        }
        // SAFETY: `offset..end` was checked to lie within the mapping, which
        // stays mapped (and its file cannot shrink: sealed) while `&self`
        // lives. The memory is initialised, every bit pattern is a valid u8,
        // and this process never writes it (mapped read-only). Writes by the
        // sending process are outside this program and can only change which
        // byte values are read.
        Some(unsafe { slice::from_raw_parts(self.map.as_ptr().add(offset), len) })
    }
}

impl fmt::Debug for PoolView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolView")
            .field("len", &self.map.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(class_of(1), 0);
        assert_eq!(class_of(4096), 0);
        assert_eq!(class_of(4097), 1);
        assert_eq!(class_of(8192), 1);
        assert_eq!(class_of(1 << 20), 8);
        assert_eq!(class_size(class_of(MAX_CAPACITY)), MAX_CAPACITY);
    }

    #[test]
    fn larger_free_chunks_are_split() {
        let pool = Pool::create(MIN_CAPACITY).unwrap();
        let whole = pool.alloc(MIN_CAPACITY).unwrap();
        assert_eq!(whole.offset(), 0);
        drop(whole);
        // Bump pointer exhausted: 4 KiB chunks come from splitting the freed
        // 1 MiB chunk, lowest first.
        let a = pool.alloc(1).unwrap();
        let b = pool.alloc(1).unwrap();
        assert_eq!((a.offset(), b.offset()), (0, 4096));
        let c = pool.alloc(512 * 1024).unwrap();
        assert_eq!(c.offset(), 512 * 1024);
        assert!(pool.alloc(512 * 1024).is_none());
        assert_eq!(pool.carved(), MIN_CAPACITY);
    }
}
