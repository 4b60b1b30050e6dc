//! # asyncmsg-inproc
//!
//! The in-process transport: a connection and its channel live in one address
//! space, so a message is never copied. The sender's buffer itself moves into a
//! slot of the connection's [`SlotRing`], from there into the receiver's hands,
//! and back into the slot when the receiver drops it, so the delivery callback
//! can hand it back to the sender for reuse.
//!
//! ## Contract
//! A [`SlotRing`] has `capacity` slots, addressed by a per-connection sequence
//! number (`seq % capacity`). A message's slot goes through four hands:
//!
//! ```text
//!   free --write--> filled --take--> taken --give_back--> released --complete--> free
//! ```
//!
//! Who may touch a slot when is decided by the driver's counters (those of
//! `asyncmsg_core::send::SendCore`: `next`, `visible`, `taken`, `completed`), not
//! by per-slot read-modify-write operations: those would cost a locked
//! instruction on a cache line another core owns, for every message. So the
//! transitions are `unsafe fn`s whose contracts restate the counter protocol;
//! only `give_back` → `complete` is signalled per slot, by one release store of
//! the slot's flag, because receivers may let messages go in any order.
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
}

// SAFETY: an item is accessed only by the one party the counter protocol (see
// the `unsafe fn` contracts) hands its slot to, and every hand-over is ordered by
// a release store the next party reads with acquire (the driver's `visible` and
// `completed` counters, or the slot's `released` flag); so `T: Send` suffices.
unsafe impl<T: Send> Sync for SlotRing<T> {}

impl<T> std::fmt::Debug for SlotRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotRing")
            .field("capacity", &self.items.len())
            .finish_non_exhaustive()
    }
}

impl<T> SlotRing<T> {
    /// A ring of `capacity` free slots (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SlotRing {
            items: (0..capacity).map(|_| UnsafeCell::new(None)).collect(),
            released: (0..capacity).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.items.len()
    }

    fn index(&self, seq: u64) -> usize {
        (seq % self.items.len() as u64) as usize
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

    /// Takes the item of `seq` out for the receiver.
    ///
    /// # Safety
    /// The message was published to the caller (it read the publishing counter
    /// with acquire ordering and `seq` is below it), it has not been taken or
    /// withdrawn before, and no other thread takes or withdraws concurrently
    /// (getters and withdrawals are serialised by the channel's lock).
    pub unsafe fn take(&self, seq: u64) -> Option<T> {
        let i = self.index(seq);
        // SAFETY: the slot is filled and exclusively the caller's (contract).
        unsafe { (*self.items[i].get()).take() }
    }

    /// Withdraws an untaken item of `seq` (detach, destroy), freeing the slot.
    ///
    /// # Safety
    /// As for [`take`](Self::take), and the message was written (`seq` is below
    /// the sender's `next`, which the caller read under the sender's lock).
    pub unsafe fn withdraw(&self, seq: u64) -> Option<T> {
        // SAFETY: the same exclusive access as `take`.
        unsafe { self.take(seq) }
    }

    /// The receiver gives the item of `seq` back for its delivery callback.
    ///
    /// # Safety
    /// The item was taken from this slot by [`take`](Self::take) and this is its
    /// only give-back.
    pub unsafe fn give_back(&self, seq: u64, item: T) {
        let i = self.index(seq);
        // SAFETY: a taken slot belongs to the one handle that took it until the
        // release store below hands it to the completer.
        unsafe { *self.items[i].get() = Some(item) };
        self.released[i].store(true, Ordering::Release);
    }

    /// Completes the slot of `seq` if its item was given back, freeing the slot;
    /// `None` if it has not been given back yet.
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
        // SAFETY: the acquire load above saw the give-back's release store; the
        // slot is the completer's until the driver publishes `completed`.
        unsafe { (*self.items[i].get()).take() }
    }

    /// Whether the item of `seq` has been given back and not yet completed.
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
            assert_eq!(r.complete(0), None, "not given back yet");
            let a = r.take(0).unwrap();
            assert_eq!(a, "a");
            assert!(!r.is_released(0));
            r.give_back(0, a);
            assert!(r.is_released(0));
            assert_eq!(r.complete(0), Some("a"));
            assert!(!r.is_released(0));
            r.write(2, "c");
            assert_eq!(r.withdraw(2), Some("c"));
            assert_eq!(r.take(2), None, "withdrawn");
        }
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
                    // SAFETY: published (acquire above), taken once, one taker.
                    let v = unsafe { r2.take(seq) }.unwrap();
                    assert_eq!(v, seq);
                    // SAFETY: taken just now, given back once.
                    unsafe { r2.give_back(seq, v) };
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
