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
//! number (`seq % capacity`). Each slot cycles through four states, and only the
//! party that moved it into its current state may touch its item:
//!
//! ```text
//!   Empty --put--> Filled --take--> Taken --give_back--> Released --complete--> Empty
//! ```
//!
//! Every transition is one compare-and-swap on the slot's state word followed by
//! a release store, so misuse (a second put into a busy slot, a take of an empty
//! slot) is refused with the item handed back, never undefined behaviour. The
//! ring takes no lock and allocates nothing after construction; how many slots
//! are visible, taken and completed is tracked by the driver with the counters
//! of `asyncmsg_core::send::SendCore`.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, Ordering};

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

const EMPTY: u8 = 0;
const FILLED: u8 = 1;
const TAKEN: u8 = 2;
const RELEASED: u8 = 3;
const BUSY: u8 = 4;

/// The state of one slot, as seen by [`SlotRing::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Free for a put.
    Empty,
    /// Holds a message put and not yet taken.
    Filled,
    /// Its message is in the receiver's hands.
    Taken,
    /// The receiver gave the message back; it waits for its delivery callback.
    Released,
    /// A transition is under way in another thread.
    Busy,
}

#[repr(align(64))]
struct Slot<T> {
    state: AtomicU8,
    item: UnsafeCell<Option<T>>,
}

/// A fixed ring of message slots shared by one connection's sender, its
/// channel's getters, the receiver's message handles and the sender's delivery
/// thread. See the crate documentation for the protocol.
pub struct SlotRing<T> {
    slots: Box<[Slot<T>]>,
}

// SAFETY: an item is only ever accessed by the thread that won the slot's
// compare-and-swap into BUSY, and handed on with a release store that the next
// owner's acquire compare-and-swap synchronises with, so `T: Send` suffices.
unsafe impl<T: Send> Sync for SlotRing<T> {}
// SAFETY: the ring owns its items; sending it sends them.
unsafe impl<T: Send> Send for SlotRing<T> {}

impl<T> std::fmt::Debug for SlotRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotRing")
            .field("capacity", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl<T> SlotRing<T> {
    /// A ring of `capacity` empty slots (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SlotRing {
            slots: (0..capacity)
                .map(|_| Slot {
                    state: AtomicU8::new(EMPTY),
                    item: UnsafeCell::new(None),
                })
                .collect(),
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, seq: u64) -> &Slot<T> {
        &self.slots[(seq % self.slots.len() as u64) as usize]
    }

    /// Moves `slot` from `from` through BUSY, lets `f` work on its item, then
    /// stores `to`. Returns `None` if the slot was not in state `from`.
    fn transition<R>(
        &self,
        seq: u64,
        from: u8,
        to: u8,
        f: impl FnOnce(&mut Option<T>) -> R,
    ) -> Option<R> {
        let slot = self.slot(seq);
        if slot
            .state
            .compare_exchange(from, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        // SAFETY: this thread moved the slot into BUSY, so no other thread touches
        // the item until the release store below; the acquire above makes the
        // previous owner's writes visible.
        let r = f(unsafe { &mut *slot.item.get() });
        slot.state.store(to, Ordering::Release);
        Some(r)
    }

    /// Puts `item` into the slot of `seq`; hands it back if the slot is not empty.
    pub fn put(&self, seq: u64, item: T) -> Result<(), T> {
        let mut item = Some(item);
        match self.transition(seq, EMPTY, FILLED, |cell| *cell = item.take()) {
            Some(()) => Ok(()),
            None => Err(item.take().expect("item still here on failure")),
        }
    }

    /// Takes the item of `seq` out for the receiver; `None` if it is not filled.
    pub fn take(&self, seq: u64) -> Option<T> {
        self.transition(seq, FILLED, TAKEN, Option::take).flatten()
    }

    /// The receiver gives the item of `seq` back; hands it back if the slot was not
    /// taken.
    pub fn give_back(&self, seq: u64, item: T) -> Result<(), T> {
        let mut item = Some(item);
        match self.transition(seq, TAKEN, RELEASED, |cell| *cell = item.take()) {
            Some(()) => Ok(()),
            None => Err(item.take().expect("item still here on failure")),
        }
    }

    /// Completes the slot of `seq` if the receiver gave it back, freeing the slot;
    /// `None` if it has not been given back yet.
    pub fn complete(&self, seq: u64) -> Option<T> {
        self.transition(seq, RELEASED, EMPTY, Option::take)
            .flatten()
    }

    /// Withdraws an untaken item of `seq` (detach, destroy), freeing the slot.
    pub fn withdraw(&self, seq: u64) -> Option<T> {
        self.transition(seq, FILLED, EMPTY, Option::take).flatten()
    }

    /// The current state of the slot of `seq`.
    pub fn state(&self, seq: u64) -> SlotState {
        match self.slot(seq).state.load(Ordering::Acquire) {
            EMPTY => SlotState::Empty,
            FILLED => SlotState::Filled,
            TAKEN => SlotState::Taken,
            RELEASED => SlotState::Released,
            _ => SlotState::Busy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_cycle() {
        let r = SlotRing::new(2);
        r.put(0, "a").unwrap();
        assert_eq!(r.put(2, "b"), Err("b"), "slot 0 is busy");
        assert_eq!(r.complete(0), None);
        assert_eq!(r.take(0), Some("a"));
        assert_eq!(r.state(0), SlotState::Taken);
        r.give_back(0, "a").unwrap();
        assert_eq!(r.complete(0), Some("a"));
        assert_eq!(r.state(0), SlotState::Empty);
        r.put(2, "c").unwrap();
        assert_eq!(r.withdraw(2), Some("c"));
    }

    #[test]
    fn misuse_hands_items_back() {
        let r: SlotRing<u32> = SlotRing::new(1);
        assert_eq!(r.take(0), None);
        assert_eq!(r.give_back(0, 7), Err(7));
        assert_eq!(r.withdraw(0), None);
    }

    #[test]
    fn threads_hand_over() {
        let r = std::sync::Arc::new(SlotRing::new(8));
        let n = 10_000u64;
        let r2 = r.clone();
        let t = std::thread::spawn(move || {
            let mut seq = 0;
            while seq < n {
                if let Some(v) = r2.take(seq) {
                    assert_eq!(v, seq);
                    r2.give_back(seq, v).unwrap();
                    seq += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        let mut done = 0;
        for seq in 0..n {
            while r.put(seq, seq).is_err() {
                while r.complete(done).is_some() {
                    done += 1;
                }
                std::hint::spin_loop();
            }
        }
        t.join().unwrap();
    }
}
