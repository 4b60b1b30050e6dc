//! # asyncmsg-inproc
//!
//! The in-process transport: a connection and its channel live in one address
//! space, so a message is never copied. The sender's buffer itself moves into a
//! slot of the connection's [`SlotRing`]; the receiver reads it there, in place,
//! and when it lets go the slot passes to the delivery callback, which hands the
//! buffer back to the sender for reuse.
//!
//! ## Contract
//! A [`SlotRing`] has `capacity` slots, addressed by a per-connection sequence
//! number (`seq % capacity`). A message's slot goes through four hands:
//!
//! ```text
//!   free --write--> filled --(a get takes it; read with get)--> taken --release--> released --complete--> free
//! ```
//!
//! Who may touch a slot when is decided by the driver's counters (those of
//! `asyncmsg_core::send::SendCore`: `next`, `visible`, `taken`, `completed`), not
//! by per-slot read-modify-write operations: those would cost a locked
//! instruction on a cache line another core owns, for every message. So the
//! transitions are `unsafe fn`s whose contracts restate the counter protocol;
//! only `release` → `complete` is signalled per slot, by one release store of
//! the slot's flag, because receivers may let messages go in any order. A get
//! touches no slot at all: the receiver reads each message where the sender
//! wrote it.
//!
//! The ring takes no lock and allocates nothing after construction. Items left
//! in it are dropped with it.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

use asyncmsg_core::transport::{Caps, Transport};

/// The in-process transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct InProc;

impl Transport for InProc {
    fn caps(&self) -> Caps {
        CAPS
    }
}

/// What the in-process transport offers.
pub const CAPS: Caps = Caps {
    name: "inproc",
    max_frame: usize::MAX,
    zero_copy: true,
    cross_process: false,
    cross_node: false,
    reliable: true,
};

/// A fixed ring of message slots shared by one connection's sender, its
/// channel's getters, the receiver's message handles and the sender's delivery
/// thread. See the crate documentation for the protocol.
pub struct SlotRing<T> {
    items: Box<[UnsafeCell<Option<T>>]>,
    released: Box<[AtomicBool]>,
    mask: u64,
}

// SAFETY: an item is accessed only by the party the counter protocol (see the
// `unsafe fn` contracts) hands its slot to, and every hand-over is ordered by a
// release store the next party reads with acquire (the driver's `visible` and
// `completed` counters, or the slot's `released` flag). Items move between
// threads (`T: Send`), and a taken item is read through `&T` by whichever thread
// holds its message (`T: Sync`).
unsafe impl<T: Send + Sync> Sync for SlotRing<T> {}

impl<T> std::fmt::Debug for SlotRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotRing")
            .field("capacity", &self.items.len())
            .finish_non_exhaustive()
    }
}

impl<T> SlotRing<T> {
    /// A ring of at least `capacity` free slots (rounded up to a power of two,
    /// so that finding a slot is a mask, not a division).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        SlotRing {
            items: (0..capacity).map(|_| UnsafeCell::new(None)).collect(),
            released: (0..capacity).map(|_| AtomicBool::new(false)).collect(),
            mask: capacity as u64 - 1,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.items.len()
    }

    fn index(&self, seq: u64) -> usize {
        (seq & self.mask) as usize
    }

    /// Fills the slot of `seq` with `item`.
    ///
    /// # Safety
    /// The slot is free: every earlier message that used it (`seq - capacity`,
    /// …) has been completed, and the caller saw that completion with acquire
    /// ordering. No other thread writes a message with this `seq`. The caller
    /// publishes the message to getters afterwards with a release store.
    pub unsafe fn write(&self, seq: u64, item: T) {
        let i = self.index(seq);
        // SAFETY: the slot is free and owned by this writer (contract above).
        unsafe { *self.items[i].get() = Some(item) };
    }

    /// The item of `seq`, read in place by the receiver that took it.
    ///
    /// # Safety
    /// The message was published to the caller (it read the publishing counter
    /// with acquire ordering and `seq` is below it) and taken by it (it is below
    /// the driver's `taken`, which only the caller's get advanced past it), and it
    /// has not been [released](Self::release): until then nobody writes the slot.
    /// The reference must not outlive the release.
    pub unsafe fn get(&self, seq: u64) -> Option<&T> {
        let i = self.index(seq);
        // SAFETY: the slot is filled and only read until released (contract).
        unsafe { (*self.items[i].get()).as_ref() }
    }

    /// Withdraws an untaken item of `seq` (detach, destroy), freeing the slot.
    ///
    /// # Safety
    /// The message was written (`seq` is below the sender's `next`, which the
    /// caller read under the sender's lock), it has not been taken, and no get
    /// runs concurrently (getters and withdrawals are serialised by the channel's
    /// lock).
    pub unsafe fn withdraw(&self, seq: u64) -> Option<T> {
        let i = self.index(seq);
        // SAFETY: the slot is filled and exclusively the caller's (contract).
        unsafe { (*self.items[i].get()).take() }
    }

    /// The receiver lets go of the message of `seq`: its slot passes to the
    /// completer.
    ///
    /// # Safety
    /// The message was taken by a get and this is its only release; no reference
    /// from [`get`](Self::get) outlives this call.
    pub unsafe fn release(&self, seq: u64) {
        self.released[self.index(seq)].store(true, Ordering::Release);
    }

    /// Completes the slot of `seq` if its message was released, freeing the slot
    /// and handing its item to the caller; `None` if it has not been released yet.
    ///
    /// # Safety
    /// Only one thread completes (the connection's delivery thread), in sequence
    /// order, and `seq` has been taken (it is below the driver's `taken`).
    pub unsafe fn complete(&self, seq: u64) -> Option<T> {
        let i = self.index(seq);
        if !self.released[i].load(Ordering::Acquire) {
            return None;
        }
        self.released[i].store(false, Ordering::Relaxed);
        // SAFETY: the acquire load above saw the release's release store; the
        // slot is the completer's until the driver publishes `completed`.
        unsafe { (*self.items[i].get()).take() }
    }

    /// Whether the message of `seq` has been released and not yet completed.
    pub fn is_released(&self, seq: u64) -> bool {
        self.released[self.index(seq)].load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_cycle() {
        let r = SlotRing::new(2);
        // SAFETY (all calls): single-threaded, following the protocol in order.
        unsafe {
            r.write(0, "a");
            assert_eq!(r.complete(0), None, "not released yet");
            assert_eq!(r.get(0), Some(&"a"));
            assert!(!r.is_released(0));
            r.release(0);
            assert!(r.is_released(0));
            assert_eq!(r.complete(0), Some("a"));
            assert!(!r.is_released(0));
            r.write(2, "c");
            assert_eq!(r.withdraw(2), Some("c"));
            assert_eq!(r.get(2), None, "withdrawn");
        }
    }

    #[test]
    fn capacity_is_a_power_of_two() {
        assert_eq!(SlotRing::<u8>::new(0).capacity(), 1);
        assert_eq!(SlotRing::<u8>::new(5).capacity(), 8);
        assert_eq!(SlotRing::<u8>::new(64).capacity(), 64);
    }

    #[test]
    fn items_left_are_dropped_with_the_ring() {
        let item = std::sync::Arc::new(());
        let r = SlotRing::new(4);
        // SAFETY: fresh ring, distinct free slots.
        unsafe {
            r.write(0, item.clone());
            r.write(1, item.clone());
        }
        assert_eq!(std::sync::Arc::strong_count(&item), 3);
        drop(r);
        assert_eq!(std::sync::Arc::strong_count(&item), 1);
    }

    #[test]
    fn threads_hand_over() {
        use std::sync::atomic::AtomicU64;
        let r = std::sync::Arc::new(SlotRing::new(8));
        let visible = std::sync::Arc::new(AtomicU64::new(0));
        let completed = std::sync::Arc::new(AtomicU64::new(0));
        let n = 20_000u64;
        let (r2, v2) = (r.clone(), visible.clone());
        let taker = std::thread::spawn(move || {
            let mut seq = 0;
            while seq < n {
                if seq < v2.load(Ordering::Acquire) {
                    // SAFETY: published (acquire above), taken by this thread only.
                    assert_eq!(unsafe { r2.get(seq) }, Some(&seq));
                    // SAFETY: released once, the reference above is gone.
                    unsafe { r2.release(seq) };
                    seq += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let (r3, c3) = (r.clone(), completed.clone());
        let completer = std::thread::spawn(move || {
            let mut seq = 0;
            while seq < n {
                // SAFETY: the only completer, in order.
                if let Some(v) = unsafe { r3.complete(seq) } {
                    assert_eq!(v, seq);
                    seq += 1;
                    c3.store(seq, Ordering::Release);
                } else {
                    std::thread::yield_now();
                }
            }
        });
        for seq in 0..n {
            while seq - completed.load(Ordering::Acquire) >= 8 {
                std::thread::yield_now();
            }
            // SAFETY: the slot's previous message was completed (acquire above).
            unsafe { r.write(seq, seq) };
            visible.store(seq + 1, Ordering::Release);
        }
        taker.join().unwrap();
        completer.join().unwrap();
    }
}
