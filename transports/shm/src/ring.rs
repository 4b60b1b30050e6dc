//! One connection's shared segment: its counters and a ring of message slots.
//!
//! The sender creates the segment ([`SendRing::create`]), passes its fd to the
//! receiver, and writes messages into it; the receiver maps it
//! ([`RecvRing::open`]), checks everything the sender wrote before it trusts
//! it, and reads messages in place. The segment is a sealed memfd, so neither
//! side can shrink it under the other.
//!
//! ## Layout (all offsets from the start of the segment)
//! ```text
//! 0                header line: magic, version, slots, inline capacity
//! 128 …            Counters: one 128-byte block per counter (see [`Counters`])
//! released_off     one byte per slot: 1 = the receiver is done with the slot
//! desc_off         one 16-byte descriptor per slot: length, kind, pool offset
//! data_off         `slots × inline_cap` bytes: the inline payloads
//! ```
//! Every region starts on a 128-byte boundary; the inline capacity is a
//! multiple of 64, so inline payloads start on cache lines.
//!
//! ## The protocol the counters carry
//! * `visible` (sender → receiver): messages `..visible` are written. A batch
//!   is published with one release store.
//! * `taken` (receiver → sender): messages `..taken` were taken by a get: the
//!   cumulative acknowledgement. The receiver advances it with a
//!   compare-exchange; the sender closes the link by setting [`CLOSED`] in it,
//!   so that a take and a detach can never both claim a message.
//! * `released[slot]`: the receiver is done reading a taken message; the
//!   sender's delivery thread completes released slots in order, then reuses
//!   them.
//! * `raised`, `delivery_pending`, `sender_waiters`: the wake-up handshakes
//!   (who must be told, and whether anybody sleeps), as in process.
//!
//! A peer can write anything into the segment. The receiver therefore checks
//! every counter and descriptor it reads ([`RecvRing::check_visible`],
//! [`validate_desc`]) and fails the link on the first inconsistency; the sender
//! clamps what the receiver reports to what it published.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::sys::{self, Mapping};

/// "ASYNCMSG", little-endian: the first bytes of every connection segment.
pub const MAGIC: u64 = u64::from_le_bytes(*b"ASYNCMSG");
/// The segment layout version this crate writes and accepts.
pub const VERSION: u32 = 1;
/// Most slots a ring may have.
pub const MAX_SLOTS: u32 = 1 << 20;
/// Largest inline capacity per slot (larger messages go through the pool).
pub const MAX_INLINE: usize = 64 * 1024;
/// Set in `taken` when the sender closed the link (detach): nothing more may be
/// taken.
pub const CLOSED: u64 = 1 << 63;

const LINE: usize = 128;
const DESC_SIZE: usize = 16;

/// Descriptor kind: the payload is inline in the slot.
pub const KIND_INLINE: u32 = 1;
/// Descriptor kind: the payload is in the sender's buffer pool.
pub const KIND_POOL: u32 = 2;

/// A value alone on its 128-byte block (two cache lines: adjacent-line
/// prefetching pairs them on x86).
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct Line<T>(pub T);

impl<T> std::ops::Deref for Line<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[repr(C)]
#[derive(Debug)]
struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    slots: AtomicU32,
    inline_cap: AtomicU32,
}

/// A connection's counters. In process they live on the heap
/// ([`Counters::default`]); across processes, in the connection's segment.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Counters {
    /// Exclusive end of the published range (sender → receiver).
    pub visible: Line<AtomicU64>,
    /// Exclusive end of the taken range (receiver → sender); [`CLOSED`] set by
    /// a sender that closed the link.
    pub taken: Line<AtomicU64>,
    /// The connection is queued on the channel, or its sender asked to be (the
    /// batch-announcing handshake).
    pub queued: Line<AtomicU32>,
    /// Released slots wait for the sender's delivery thread (the release
    /// handshake).
    pub delivery_pending: Line<AtomicU32>,
    /// Threads of the sender blocked in put or flush.
    pub sender_waiters: Line<AtomicU32>,
}

#[repr(C)]
#[derive(Debug)]
struct Desc {
    len: AtomicU32,
    kind: AtomicU32,
    offset: AtomicU64,
}

/// Where a checked message lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// `len` bytes inline in the slot.
    Inline {
        /// Payload length.
        len: usize,
    },
    /// `len` bytes at `offset` in the sender's pool.
    Pool {
        /// Offset in the pool.
        offset: u64,
        /// Payload length.
        len: usize,
    },
}

/// What a receiver found wrong in a segment. Each fails the link it was found
/// on, and only that link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingError {
    /// The header is not one this crate writes.
    BadHeader(&'static str),
    /// `visible` went backwards or ran more than a ring ahead of `taken`.
    BadVisible {
        /// What the receiver had taken.
        taken: u64,
        /// What the sender claims is published.
        visible: u64,
    },
    /// A descriptor's length exceeds what the slot or the channel allows.
    BadLength {
        /// The message.
        seq: u64,
        /// The length found.
        len: u64,
    },
    /// A descriptor's kind is unknown, or names a pool the link does not have.
    BadKind {
        /// The message.
        seq: u64,
        /// The kind found.
        kind: u32,
    },
    /// A pool reference points outside the pool.
    BadOffset {
        /// The message.
        seq: u64,
        /// The offset found.
        offset: u64,
    },
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingError::BadHeader(why) => write!(f, "corrupt ring header: {why}"),
            RingError::BadVisible { taken, visible } => {
                write!(f, "corrupt ring: visible {visible} with {taken} taken")
            }
            RingError::BadLength { seq, len } => {
                write!(f, "corrupt ring: message {seq} has length {len}")
            }
            RingError::BadKind { seq, kind } => {
                write!(f, "corrupt ring: message {seq} has kind {kind}")
            }
            RingError::BadOffset { seq, offset } => {
                write!(
                    f,
                    "corrupt ring: message {seq} points to pool offset {offset}"
                )
            }
        }
    }
}

impl std::error::Error for RingError {}

/// Checks one descriptor as a receiver reads it: the kind is known, an inline
/// length fits the slot, a pool reference lies inside the pool, and no message
/// exceeds `max_len` (the channel's buffer size). Pure, so it can be fuzzed.
pub fn validate_desc(
    seq: u64,
    len: u32,
    kind: u32,
    offset: u64,
    inline_cap: usize,
    pool_len: Option<usize>,
    max_len: usize,
) -> Result<Location, RingError> {
    let len_usize = len as usize;
    if len_usize > max_len {
        return Err(RingError::BadLength {
            seq,
            len: len.into(),
        });
    }
    match kind {
        KIND_INLINE => {
            if len_usize > inline_cap {
                return Err(RingError::BadLength {
                    seq,
                    len: len.into(),
                });
            }
            Ok(Location::Inline { len: len_usize })
        }
        KIND_POOL => {
            let Some(pool_len) = pool_len else {
                return Err(RingError::BadKind { seq, kind });
            };
            let end = offset.checked_add(len.into());
            match end {
                Some(end) if end <= pool_len as u64 => Ok(Location::Pool {
                    offset,
                    len: len_usize,
                }),
                _ => Err(RingError::BadOffset { seq, offset }),
            }
        }
        _ => Err(RingError::BadKind { seq, kind }),
    }
}

/// Checks a published range as a receiver reads it: `visible` never behind
/// `taken` and never more than `slots` ahead of it. Returns how many messages
/// are visible and untaken.
pub fn validate_visible(taken: u64, visible: u64, slots: u32) -> Result<u64, RingError> {
    match visible.checked_sub(taken) {
        Some(n) if n <= u64::from(slots) => Ok(n),
        _ => Err(RingError::BadVisible { taken, visible }),
    }
}

#[derive(Debug, Clone, Copy)]
struct Geometry {
    slots: u32,
    inline_cap: usize,
    released_off: usize,
    desc_off: usize,
    data_off: usize,
    len: usize,
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl Geometry {
    fn new(slots: u32, inline_cap: usize) -> Option<Geometry> {
        if !slots.is_power_of_two() || slots > MAX_SLOTS {
            return None;
        }
        if inline_cap % 64 != 0 || inline_cap > MAX_INLINE {
            return None;
        }
        let n = slots as usize;
        let released_off = LINE + std::mem::size_of::<Counters>();
        let desc_off = round_up(released_off + n, LINE);
        let data_off = round_up(desc_off + n * DESC_SIZE, LINE);
        let len = round_up(data_off + n * inline_cap, 4096);
        Some(Geometry {
            slots,
            inline_cap,
            released_off,
            desc_off,
            data_off,
            len,
        })
    }
}

/// The part of a mapped ring both sides use.
#[derive(Debug)]
struct Ring {
    map: Mapping,
    geo: Geometry,
    mask: u64,
}

impl Ring {
    fn counters(&self) -> &Counters {
        // SAFETY: the mapping is at least `geo.len` bytes (checked at creation or
        // open), page-aligned, and `Counters` (atomics only, any bit pattern
        // valid) lies at offset LINE, inside it and 128-byte aligned.
        unsafe { &*(self.map.as_ptr().add(LINE) as *const Counters) }
    }

    fn header(&self) -> &Header {
        // SAFETY: as in `counters`: offset 0, atomics only.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    fn released(&self, seq: u64) -> &AtomicU8 {
        let i = (seq & self.mask) as usize;
        // SAFETY: `i < slots` and the released bytes `[released_off,
        // released_off + slots)` lie inside the mapping (geometry).
        unsafe { &*(self.map.as_ptr().add(self.geo.released_off + i) as *const AtomicU8) }
    }

    fn desc(&self, seq: u64) -> &Desc {
        let i = (seq & self.mask) as usize;
        // SAFETY: `i < slots`; descriptors are 16 bytes, 8-aligned (desc_off is
        // a multiple of 128), inside the mapping; atomics only.
        unsafe { &*(self.map.as_ptr().add(self.geo.desc_off + i * DESC_SIZE) as *const Desc) }
    }

    fn data_ptr(&self, seq: u64) -> *mut u8 {
        let i = (seq & self.mask) as usize;
        // SAFETY: `i < slots`, so `data_off + i * inline_cap + inline_cap` is
        // within the mapping (geometry).
        unsafe {
            self.map
                .as_ptr()
                .add(self.geo.data_off + i * self.geo.inline_cap)
        }
    }
}

/// The sender's view of a connection segment.
#[derive(Debug)]
pub struct SendRing {
    ring: Ring,
}

impl SendRing {
    /// Creates a segment of `slots` slots (a power of two, at most
    /// [`MAX_SLOTS`]) with `inline_cap` bytes of inline payload each (a multiple
    /// of 64, at most [`MAX_INLINE`]).
    pub fn create(slots: u32, inline_cap: usize) -> io::Result<SendRing> {
        let geo = Geometry::new(slots, inline_cap).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "ring slots or inline size out of range",
            )
        })?;
        let map = Mapping::create("asyncmsg-ring", geo.len)?;
        let ring = Ring {
            map,
            geo,
            mask: u64::from(slots) - 1,
        };
        let h = ring.header();
        h.version.store(VERSION, Ordering::Relaxed);
        h.slots.store(slots, Ordering::Relaxed);
        h.inline_cap.store(inline_cap as u32, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
        Ok(SendRing { ring })
    }

    /// The segment, to pass to the receiver.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ring.map.fd()
    }

    /// The connection's counters, in the segment.
    pub fn counters(&self) -> &Counters {
        self.ring.counters()
    }

    /// Slots in the ring.
    pub fn slots(&self) -> u32 {
        self.ring.geo.slots
    }

    /// Bytes of payload a slot holds inline.
    pub fn inline_capacity(&self) -> usize {
        self.ring.geo.inline_cap
    }

    /// Closes the segment's descriptor once it was passed to the receiver
    /// (the memory stays mapped); [`fd`](Self::fd) panics afterwards.
    pub fn release_fd(&mut self) {
        self.ring.map.release_fd();
    }

    /// Writes message `seq` inline.
    ///
    /// # Safety
    /// The caller owns slot `seq`: `seq` is not yet published and the slot's
    /// previous message (`seq - slots`) was completed. `data` fits inline.
    pub unsafe fn write_inline(&self, seq: u64, data: &[u8]) {
        let len = data.len().min(self.ring.geo.inline_cap);
        // SAFETY: the slot's inline area has `inline_cap` bytes and is the
        // caller's (contract); `data` is a separate allocation.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ring.data_ptr(seq), len) };
        let d = self.ring.desc(seq);
        d.len.store(len as u32, Ordering::Relaxed);
        d.kind.store(KIND_INLINE, Ordering::Relaxed);
        d.offset.store(0, Ordering::Relaxed);
    }

    /// Writes message `seq` as a reference to `len` bytes at `offset` in the
    /// sender's pool.
    ///
    /// # Safety
    /// As [`write_inline`](Self::write_inline).
    pub unsafe fn write_pool(&self, seq: u64, offset: u64, len: u32) {
        let d = self.ring.desc(seq);
        d.len.store(len, Ordering::Relaxed);
        d.kind.store(KIND_POOL, Ordering::Relaxed);
        d.offset.store(offset, Ordering::Relaxed);
    }

    /// Whether the receiver is done with message `seq` (acquire: its reads of
    /// the slot happened before).
    pub fn is_released(&self, seq: u64) -> bool {
        self.ring.released(seq).load(Ordering::Acquire) != 0
    }

    /// Marks slot `seq` free for its next message (the completer, before the
    /// sender may reuse it).
    pub fn clear_released(&self, seq: u64) {
        self.ring.released(seq).store(0, Ordering::Relaxed);
    }
}

/// The receiver's view of a connection segment.
#[derive(Debug)]
pub struct RecvRing {
    ring: Ring,
}

impl RecvRing {
    /// Maps a segment received from a sender and checks its header and size.
    pub fn open(fd: OwnedFd) -> Result<RecvRing, RingError> {
        let mut map = Mapping::open(fd, true).map_err(|_| RingError::BadHeader("cannot map"))?;
        // The receiver never passes a sender's segment on.
        map.release_fd();
        if map.len() < 4096 {
            return Err(RingError::BadHeader("segment too small"));
        }
        // SAFETY: the mapping is at least one page; the header is atomics at 0.
        let h = unsafe { &*(map.as_ptr() as *const Header) };
        if h.magic.load(Ordering::Acquire) != MAGIC {
            return Err(RingError::BadHeader("bad magic"));
        }
        if h.version.load(Ordering::Relaxed) != VERSION {
            return Err(RingError::BadHeader("unknown version"));
        }
        let slots = h.slots.load(Ordering::Relaxed);
        let inline_cap = h.inline_cap.load(Ordering::Relaxed) as usize;
        let geo = Geometry::new(slots, inline_cap)
            .ok_or(RingError::BadHeader("slots or inline size out of range"))?;
        if map.len() < geo.len {
            return Err(RingError::BadHeader("segment shorter than its ring"));
        }
        Ok(RecvRing {
            ring: Ring {
                map,
                geo,
                mask: u64::from(slots) - 1,
            },
        })
    }

    /// The connection's counters, in the segment.
    pub fn counters(&self) -> &Counters {
        self.ring.counters()
    }

    /// Slots in the ring.
    pub fn slots(&self) -> u32 {
        self.ring.geo.slots
    }

    /// Bytes of payload a slot holds inline.
    pub fn inline_capacity(&self) -> usize {
        self.ring.geo.inline_cap
    }

    /// How many messages are visible beyond `taken`, checked
    /// ([`validate_visible`]). Acquire: the published messages' writes are
    /// visible to the caller afterwards.
    pub fn check_visible(&self, taken: u64) -> Result<u64, RingError> {
        let visible = self.counters().visible.load(Ordering::Acquire);
        validate_visible(taken, visible, self.ring.geo.slots)
    }

    /// Reads and checks message `seq`'s descriptor ([`validate_desc`]).
    pub fn locate(
        &self,
        seq: u64,
        pool_len: Option<usize>,
        max_len: usize,
    ) -> Result<Location, RingError> {
        let d = self.ring.desc(seq);
        validate_desc(
            seq,
            d.len.load(Ordering::Relaxed),
            d.kind.load(Ordering::Relaxed),
            d.offset.load(Ordering::Relaxed),
            self.ring.geo.inline_cap,
            pool_len,
            max_len,
        )
    }

    /// The inline bytes of message `seq`: `len` is at most the inline capacity
    /// (as [`locate`](Self::locate) checked), else the slice is cut to it.
    ///
    /// The bytes are shared memory the sender can still write: a misbehaving
    /// sender can change them under the reader (torn contents), never make the
    /// slice point outside the segment.
    pub fn inline(&self, seq: u64, len: usize) -> &[u8] {
        let len = len.min(self.ring.geo.inline_cap);
        // SAFETY: the slot's inline area holds `inline_cap ≥ len` bytes inside
        // the mapping, which lives as long as `self`. The bytes are plain `u8`s:
        // any value is valid, and the sender does not write a slot between
        // publishing it and its completion (which needs this reader's release).
        unsafe { std::slice::from_raw_parts(self.ring.data_ptr(seq), len) }
    }

    /// The receiver is done with message `seq` (release: its reads happened
    /// before the sender may reuse the slot).
    pub fn release(&self, seq: u64) {
        self.ring.released(seq).store(1, Ordering::Release);
    }
}

/// A small shared page with a futex word: the doorbell a peer rings to wake
/// whoever sleeps on it (a channel's getters, a node's delivery thread).
///
/// Ringing bumps `word` and issues a wake system call only when `sleepers` says
/// somebody sleeps or is about to. A sleeper reads `word`, counts itself in
/// `sleepers`, looks for work once more, and sleeps only if `word` is still
/// what it read. `flags` carries one bit per reason a peer rang (the meaning is
/// the owner's).
#[derive(Debug)]
pub struct Bell {
    map: Mapping,
}

#[repr(C)]
#[derive(Debug)]
struct BellWords {
    word: Line<AtomicU32>,
    sleepers: Line<AtomicU32>,
    flags: Line<AtomicU32>,
    wanted: Line<AtomicU32>,
}

impl Bell {
    /// A new bell in a page of its own.
    pub fn create() -> io::Result<Bell> {
        Ok(Bell {
            map: Mapping::create("asyncmsg-bell", 4096)?,
        })
    }

    /// Maps a peer's bell.
    pub fn open(fd: OwnedFd) -> io::Result<Bell> {
        let mut map = Mapping::open(fd, true)?;
        // A peer's bell is rung, never passed on.
        map.release_fd();
        if map.len() < std::mem::size_of::<BellWords>() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bell page too small",
            ));
        }
        Ok(Bell { map })
    }

    /// The page, to pass to a peer.
    ///
    /// # Panics
    /// On a bell [opened](Self::open) from a peer's descriptor (that one is
    /// closed once mapped).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.map.fd()
    }

    fn words(&self) -> &BellWords {
        // SAFETY: the mapping holds at least one `BellWords` (checked), is
        // page-aligned, and `BellWords` is atomics only.
        unsafe { &*(self.map.as_ptr() as *const BellWords) }
    }

    /// The futex word's current value, read before looking for work.
    pub fn seen(&self) -> u32 {
        self.words().word.load(Ordering::SeqCst)
    }

    /// Counts the caller as a sleeper (before its last look for work).
    pub fn enter(&self) {
        self.words().sleepers.fetch_add(1, Ordering::SeqCst);
    }

    /// Uncounts the caller (after it woke, or found work).
    pub fn leave(&self) {
        self.words().sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Sleeps while the word is still `seen`, at most `timeout`. Returns false
    /// when the timeout passed.
    pub fn sleep(&self, seen: u32, timeout: Option<Duration>) -> bool {
        if self.words().word.load(Ordering::SeqCst) != seen {
            return true;
        }
        sys::futex_wait(&self.words().word, seen, timeout)
    }

    /// Whether the word moved since `seen`.
    pub fn moved(&self, seen: u32) -> bool {
        self.words().word.load(Ordering::SeqCst) != seen
    }

    /// Rings: bumps the word and wakes one sleeper, if any.
    pub fn ring(&self) {
        let w = self.words();
        w.word.fetch_add(1, Ordering::SeqCst);
        if w.sleepers.load(Ordering::SeqCst) > 0 {
            sys::futex_wake(&w.word, 1);
        }
    }

    /// Rings and wakes every sleeper.
    pub fn ring_all(&self) {
        let w = self.words();
        w.word.fetch_add(1, Ordering::SeqCst);
        if w.sleepers.load(Ordering::SeqCst) > 0 {
            sys::futex_wake(&w.word, u32::MAX);
        }
    }

    /// Sets flag bits (before ringing), so the sleeper knows why it was rung.
    pub fn raise(&self, bits: u32) {
        self.words().flags.fetch_or(bits, Ordering::SeqCst);
    }

    /// Takes and clears every raised flag bit.
    pub fn take_flags(&self) -> u32 {
        let w = self.words();
        if w.flags.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        w.flags.swap(0, Ordering::SeqCst)
    }

    /// A count the owner keeps for its peers to read (e.g. how many reasons it
    /// has to be told of every trigger even when nobody sleeps).
    pub fn wanted(&self) -> &AtomicU32 {
        &self.words().wanted
    }

    /// Whether anybody sleeps or is about to.
    pub fn has_sleepers(&self) -> bool {
        self.words().sleepers.load(Ordering::SeqCst) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn dup(fd: BorrowedFd<'_>) -> OwnedFd {
        fd.try_clone_to_owned().expect("dup")
    }

    #[test]
    fn sender_writes_receiver_reads_in_place() {
        let tx = SendRing::create(8, 128).unwrap();
        let rx = RecvRing::open(dup(tx.fd())).unwrap();
        assert_eq!(rx.slots(), 8);
        assert_eq!(rx.inline_capacity(), 128);
        for seq in 0..3u64 {
            // SAFETY: fresh ring, slots unpublished.
            unsafe { tx.write_inline(seq, format!("m{seq}").as_bytes()) };
        }
        // SAFETY: as above.
        unsafe { tx.write_pool(3, 4096, 10) };
        tx.counters().visible.store(4, Ordering::Release);
        assert_eq!(rx.check_visible(0), Ok(4));
        for seq in 0..3u64 {
            let Location::Inline { len } = rx.locate(seq, None, 1024).unwrap() else {
                panic!("inline expected")
            };
            assert_eq!(rx.inline(seq, len), format!("m{seq}").as_bytes());
        }
        assert_eq!(
            rx.locate(3, Some(8192), 1024),
            Ok(Location::Pool {
                offset: 4096,
                len: 10
            })
        );
        assert!(matches!(
            rx.locate(3, None, 1024),
            Err(RingError::BadKind { .. })
        ));
        assert!(!tx.is_released(1));
        rx.release(1);
        assert!(tx.is_released(1));
        tx.clear_released(1);
        assert!(!tx.is_released(9));
    }

    #[test]
    fn corrupt_counters_and_descriptors_are_caught() {
        let tx = SendRing::create(4, 64).unwrap();
        let rx = RecvRing::open(dup(tx.fd())).unwrap();
        tx.counters().visible.store(5, Ordering::Release);
        assert!(matches!(
            rx.check_visible(0),
            Err(RingError::BadVisible { .. })
        ));
        tx.counters().visible.store(1, Ordering::Release);
        assert!(matches!(
            rx.check_visible(2),
            Err(RingError::BadVisible { .. })
        ));
        // SAFETY: slot 0 unpublished from the receiver's point of view.
        unsafe { tx.write_inline(0, &[1; 64]) };
        assert!(matches!(
            rx.locate(0, None, 10),
            Err(RingError::BadLength { .. })
        ));
        // SAFETY: as above.
        unsafe { tx.write_pool(0, u64::MAX - 2, 10) };
        assert!(matches!(
            rx.locate(0, Some(1 << 20), 100),
            Err(RingError::BadOffset { .. })
        ));
    }

    #[test]
    fn bad_headers_are_refused() {
        assert!(SendRing::create(3, 64).is_err());
        assert!(SendRing::create(4, 65).is_err());
        assert!(SendRing::create(MAX_SLOTS * 2, 64).is_err());
        let tx = SendRing::create(4, 64).unwrap();
        tx.ring.header().magic.store(7, Ordering::Release);
        assert_eq!(
            RecvRing::open(dup(tx.fd())).unwrap_err(),
            RingError::BadHeader("bad magic")
        );
        tx.ring.header().magic.store(MAGIC, Ordering::Release);
        tx.ring.header().slots.store(1 << 21, Ordering::Relaxed);
        assert!(RecvRing::open(dup(tx.fd())).is_err());
        tx.ring.header().slots.store(1 << 16, Ordering::Relaxed);
        assert_eq!(
            RecvRing::open(dup(tx.fd())).unwrap_err(),
            RingError::BadHeader("segment shorter than its ring")
        );
    }

    #[test]
    fn bell_wakes_a_sleeper() {
        let bell = std::sync::Arc::new(Bell::create().unwrap());
        let peer = Bell::open(dup(bell.fd().as_fd())).unwrap();
        let b = bell.clone();
        let t = std::thread::spawn(move || {
            let seen = b.seen();
            b.enter();
            let mut woke = false;
            for _ in 0..1000 {
                if b.moved(seen) || !b.sleep(seen, Some(Duration::from_secs(10))) {
                    woke = b.moved(seen);
                    break;
                }
            }
            b.leave();
            (woke, b.take_flags())
        });
        while !peer.has_sleepers() {
            std::thread::yield_now();
        }
        peer.raise(4);
        peer.ring();
        assert_eq!(t.join().unwrap(), (true, 4));
    }
}
