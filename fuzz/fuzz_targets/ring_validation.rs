//! Everything a receiver reads from a connection segment, on a segment whose
//! header, counters and descriptors a peer overwrote with arbitrary bytes.
//!
//! Input layout (every part optional: a short input leaves the rest as the
//! sender wrote it):
//!
//! ```text
//! byte 0        slots = 1 << (b % 5)        (1..=16)
//! byte 1        inline capacity = 64 * (b % 5)  (0..=256)
//! bytes 2..34   four little-endian u64: an extra `taken`, a base seq,
//!               a pool length, a maximum message length
//! next 20       XORed into the header (magic, version, slots, inline cap)
//! next 16       written over `visible` and `taken`
//! the rest      written from the descriptor table on, up to the segment's end
//! ```
//!
//! The receiver must then never panic, refuse exactly the headers that are not
//! valid, and hand out only slices inside the segment, at the place the
//! documented layout gives.

#![no_main]

use std::hint::black_box;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use asyncmsg_shm::ring::{
    CLOSED, Counters, KIND_INLINE, KIND_POOL, Location, MAGIC, MAX_INLINE, MAX_SLOTS, RecvRing,
    RingError, SendRing, VERSION, validate_desc, validate_visible,
};
use asyncmsg_shm::sys::Mapping;
use libfuzzer_sys::fuzz_target;

/// Every region of the segment starts on a multiple of this.
const LINE: usize = 128;
/// Bytes of one descriptor: len u32, kind u32, offset u64.
const DESC_SIZE: usize = 16;
/// Where `visible` and `taken` lie (the first two counter blocks).
const VISIBLE_OFF: usize = LINE;
const TAKEN_OFF: usize = 2 * LINE;
/// Bytes of the header that carry fields.
const HEADER_LEN: usize = 20;

/// The documented layout of a ring of `slots` slots of `inline_cap` bytes:
/// (descriptor table offset, inline data offset, segment length).
fn layout(slots: usize, inline_cap: usize) -> (usize, usize, usize) {
    let released_off = LINE + std::mem::size_of::<Counters>();
    let desc_off = (released_off + slots).next_multiple_of(LINE);
    let data_off = (desc_off + slots * DESC_SIZE).next_multiple_of(LINE);
    let len = (data_off + slots * inline_cap).next_multiple_of(4096);
    (desc_off, data_off, len)
}

/// Reads input parts front to back; a part past the end comes out short.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let part = self.take(8);
        b[..part.len()].copy_from_slice(part);
        u64::from_le_bytes(b)
    }
}

/// A second, writable mapping of the segment: the misbehaving peer.
struct Peer(Mapping);

impl Peer {
    fn read(&self, off: usize) -> u8 {
        assert!(off < self.0.len());
        // SAFETY: `off` is inside the mapping, which lives as long as `self`;
        // any byte value is a valid u8. Nothing else runs concurrently.
        unsafe { self.0.as_ptr().add(off).read_volatile() }
    }

    fn write(&self, off: usize, v: u8) {
        assert!(off < self.0.len() && self.0.is_writable());
        // SAFETY: `off` is inside the writable mapping; the receiver only
        // accesses the segment through atomics or plain u8 reads, and not
        // while this single-threaded target writes.
        unsafe { self.0.as_ptr().add(off).write_volatile(v) }
    }

    fn u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(std::array::from_fn(|i| self.read(off + i)))
    }

    fn u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|i| self.read(off + i)))
    }
}

/// What byte `off` of the inline area holds before the peer writes over it.
fn pattern(off: usize) -> u8 {
    ((off as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8
}

fn dup(tx: &SendRing) -> OwnedFd {
    tx.fd().try_clone_to_owned().expect("dup")
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let slots = 1u32 << (input.byte() % 5);
    let inline_cap = 64 * usize::from(input.byte() % 5);
    let taken_extra = input.u64();
    let seq_base = input.u64();
    let pool_len = input.u64() as usize;
    let max_len = input.u64() as usize;

    // A well-formed ring: every slot published, inline and pool in turn.
    let tx = SendRing::create(slots, inline_cap).expect("create");
    for seq in 0..u64::from(slots) {
        if seq % 2 == 0 {
            let len = (seq as usize * 37 + 5) % (inline_cap + 1);
            // SAFETY: fresh ring, nothing published yet.
            unsafe { tx.write_inline(seq, &vec![0x5A; len]) };
        } else {
            // SAFETY: as above.
            unsafe { tx.write_pool(seq, seq * 4096, 100) };
        }
    }
    tx.counters()
        .visible
        .store(u64::from(slots), Ordering::Release);

    let peer = Peer(Mapping::open(dup(&tx), true).expect("second mapping"));
    let seg_len = peer.0.len();
    let (desc_off, data_off, _) = layout(slots as usize, inline_cap);
    for off in data_off..seg_len {
        peer.write(off, pattern(off));
    }

    // The peer's corruption.
    for (i, b) in input.take(HEADER_LEN).iter().enumerate() {
        peer.write(i, peer.read(i) ^ b);
    }
    for (i, &b) in input.take(8).iter().enumerate() {
        peer.write(VISIBLE_OFF + i, b);
    }
    for (i, &b) in input.take(8).iter().enumerate() {
        peer.write(TAKEN_OFF + i, b);
    }
    for (i, &b) in input.take(seg_len - desc_off).iter().enumerate() {
        peer.write(desc_off + i, b);
    }

    // The header as the receiver will find it.
    let h_slots = peer.u32(12);
    let h_inline = peer.u32(16) as usize;
    let valid = peer.u64(0) == MAGIC
        && peer.u32(8) == VERSION
        && h_slots.is_power_of_two()
        && h_slots <= MAX_SLOTS
        && h_inline.is_multiple_of(64)
        && h_inline <= MAX_INLINE
        && layout(h_slots as usize, h_inline).2 <= seg_len;

    let rx = match RecvRing::open(dup(&tx)) {
        Ok(rx) => {
            assert!(valid, "accepted a bad header");
            rx
        }
        Err(e) => {
            assert!(!valid, "refused a good header: {e}");
            assert!(matches!(e, RingError::BadHeader(_)), "{e:?}");
            return;
        }
    };
    assert_eq!(rx.slots(), h_slots);
    assert_eq!(rx.inline_capacity(), h_inline);
    let slots = h_slots as usize;
    let inline_cap = h_inline;
    let mask = h_slots as u64 - 1;
    let (desc_off, data_off, _) = layout(slots, inline_cap);
    // Counters lie at LINE in the segment: this gives the receiver's base.
    let base = std::ptr::from_ref(rx.counters()) as usize - LINE;
    let seg_end = base + seg_len;

    // check_visible for a few `taken` values.
    let visible = peer.u64(VISIBLE_OFF);
    let taken_counter = peer.u64(TAKEN_OFF);
    let mut seqs: Vec<u64> = (0..2 * h_slots as u64).collect();
    seqs.extend((0..h_slots as u64).map(|i| seq_base.wrapping_add(i)));
    seqs.extend([u64::MAX, CLOSED, visible, taken_extra]);
    for taken in [
        0,
        taken_counter,
        taken_counter & !CLOSED,
        visible,
        visible.wrapping_sub(h_slots.into()),
        taken_extra,
        u64::MAX,
        CLOSED,
    ] {
        let got = rx.check_visible(taken);
        assert_eq!(got, validate_visible(taken, visible, h_slots));
        match got {
            Ok(n) => {
                assert!(n <= h_slots.into());
                assert_eq!(taken.checked_add(n), Some(visible));
                seqs.extend(taken..visible);
            }
            Err(e) => assert_eq!(e, RingError::BadVisible { taken, visible }),
        }
    }

    // locate every seq, with and without a pool, and read what it allows.
    for &seq in &seqs {
        let idx = (seq & mask) as usize;
        let d = desc_off + idx * DESC_SIZE;
        let (len, kind, offset) = (peer.u32(d), peer.u32(d + 4), peer.u64(d + 8));
        let slot_off = data_off + idx * inline_cap;
        for pool in [None, Some(pool_len), Some(0), Some(usize::MAX)] {
            for max in [max_len, usize::MAX, inline_cap, 0] {
                let got = rx.locate(seq, pool, max);
                assert_eq!(
                    got,
                    validate_desc(seq, len, kind, offset, inline_cap, pool, max)
                );
                match got {
                    Ok(Location::Inline { len: n }) => {
                        assert_eq!(kind, KIND_INLINE);
                        assert_eq!(n, len as usize);
                        assert!(n <= inline_cap && n <= max);
                        let s = rx.inline(seq, n);
                        assert_eq!(s.len(), n);
                        assert_eq!(s.as_ptr() as usize, base + slot_off);
                        assert!(base + slot_off + n <= seg_end);
                        for (j, &b) in s.iter().enumerate() {
                            assert_eq!(b, peer.read(slot_off + j));
                        }
                        black_box(s);
                    }
                    Ok(Location::Pool { offset: o, len: n }) => {
                        assert_eq!(kind, KIND_POOL);
                        assert_eq!((o, n), (offset, len as usize));
                        assert!(n <= max);
                        let p = pool.expect("pool location without a pool");
                        let end = o.checked_add(n as u64).expect("offset + len overflows");
                        assert!(end <= p as u64);
                    }
                    Err(e) => {
                        let seq_of = match e {
                            RingError::BadLength { seq, .. }
                            | RingError::BadKind { seq, .. }
                            | RingError::BadOffset { seq, .. } => seq,
                            other => panic!("unexpected error {other:?}"),
                        };
                        assert_eq!(seq_of, seq);
                    }
                }
            }
        }
        // Any length is cut to the slot.
        for want in [len as usize, max_len, usize::MAX] {
            let s = rx.inline(seq, want);
            assert_eq!(s.len(), want.min(inline_cap));
            assert_eq!(s.as_ptr() as usize, base + slot_off);
            assert!(base + slot_off + s.len() <= seg_end);
            black_box(s.iter().fold(0u8, |a, &b| a ^ b));
        }
        rx.release(seq);
    }
});
