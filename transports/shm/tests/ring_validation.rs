//! Properties of the receiver's checks on a connection segment (the same as
//! the fuzz targets in `fuzz/`, on random inputs): the pure checks accept
//! exactly what their documentation allows, and a receiver of a segment whose
//! header, counters and descriptors a peer overwrote never panics and only
//! reads inside the segment, where the documented layout says.

use std::hint::black_box;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use asyncmsg_shm::ring::{
    CLOSED, Counters, KIND_INLINE, KIND_POOL, Location, MAGIC, MAX_INLINE, MAX_SLOTS, RecvRing,
    RingError, SendRing, VERSION, validate_desc, validate_visible,
};
use asyncmsg_shm::sys::Mapping;
use proptest::prelude::*;

/// Every region of the segment starts on a multiple of this.
const LINE: usize = 128;
/// Bytes of one descriptor: len u32, kind u32, offset u64.
const DESC_SIZE: usize = 16;
/// Where `visible` and `taken` lie (the first two counter blocks).
const VISIBLE_OFF: usize = LINE;
const TAKEN_OFF: usize = 2 * LINE;
/// Header fields: magic u64, version u32, slots u32, inline capacity u32.
const VERSION_OFF: usize = 8;
const SLOTS_OFF: usize = 12;
const INLINE_OFF: usize = 16;

/// The documented layout of a ring of `slots` slots of `inline_cap` bytes:
/// (descriptor table offset, inline data offset, segment length).
fn layout(slots: usize, inline_cap: usize) -> (usize, usize, usize) {
    let released_off = LINE + std::mem::size_of::<Counters>();
    let desc_off = (released_off + slots).next_multiple_of(LINE);
    let data_off = (desc_off + slots * DESC_SIZE).next_multiple_of(LINE);
    let len = (data_off + slots * inline_cap).next_multiple_of(4096);
    (desc_off, data_off, len)
}

/// A second, writable mapping of a segment: the misbehaving peer.
struct Peer(Mapping);

impl Peer {
    fn of(tx: &SendRing) -> Peer {
        Peer(Mapping::open(dup(tx), true).expect("second mapping"))
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn read(&self, off: usize) -> u8 {
        assert!(off < self.0.len());
        // SAFETY: `off` is inside the mapping, which lives as long as `self`;
        // any byte value is a valid u8. The tests access the segment from one
        // thread.
        unsafe { self.0.as_ptr().add(off).read_volatile() }
    }

    fn write(&self, off: usize, v: u8) {
        assert!(off < self.0.len() && self.0.is_writable());
        // SAFETY: `off` is inside the writable mapping; the receiver only
        // accesses the segment through atomics or plain u8 reads, and never
        // while the test writes (one thread).
        unsafe { self.0.as_ptr().add(off).write_volatile(v) }
    }

    fn write_bytes(&self, off: usize, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            if off + i < self.len() {
                self.write(off + i, b);
            }
        }
    }

    fn u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(std::array::from_fn(|i| self.read(off + i)))
    }

    fn u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|i| self.read(off + i)))
    }
}

fn dup(tx: &SendRing) -> OwnedFd {
    tx.fd().try_clone_to_owned().expect("dup")
}

/// What byte `off` of the inline area holds before the peer writes over it.
fn pattern(off: usize) -> u8 {
    ((off as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8
}

/// A well-formed ring, every slot published (inline and pool in turn), its
/// inline area filled with `pattern`.
fn well_formed(slots: u32, inline_cap: usize) -> (SendRing, Peer) {
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
    let peer = Peer::of(&tx);
    let (_, data_off, _) = layout(slots as usize, inline_cap);
    for off in data_off..peer.len() {
        peer.write(off, pattern(off));
    }
    (tx, peer)
}

/// The receiver's free choices: an extra `taken`, a base seq, a pool length
/// and a maximum message length.
#[derive(Debug, Clone, Copy)]
struct Params {
    taken_extra: u64,
    seq_base: u64,
    pool_len: usize,
    max_len: usize,
}

/// Whether the header the peer left is one the receiver must accept.
fn header_is_valid(peer: &Peer) -> bool {
    let slots = peer.u32(SLOTS_OFF);
    let inline_cap = peer.u32(INLINE_OFF) as usize;
    peer.u64(0) == MAGIC
        && peer.u32(VERSION_OFF) == VERSION
        && slots.is_power_of_two()
        && slots <= MAX_SLOTS
        && inline_cap % 64 == 0
        && inline_cap <= MAX_INLINE
        && layout(slots as usize, inline_cap).2 <= peer.len()
}

/// Runs everything a receiver does on the segment and checks each answer
/// against what the peer left there. Returns how many inline bytes it read.
fn receive_everything(tx: &SendRing, peer: &Peer, p: Params) -> usize {
    let valid = header_is_valid(peer);
    let rx = match RecvRing::open(dup(tx)) {
        Ok(rx) => {
            assert!(valid, "accepted a bad header");
            rx
        }
        Err(e) => {
            assert!(!valid, "refused a good header: {e}");
            assert!(matches!(e, RingError::BadHeader(_)), "{e:?}");
            return 0;
        }
    };
    let slots = peer.u32(SLOTS_OFF);
    let inline_cap = peer.u32(INLINE_OFF) as usize;
    assert_eq!(rx.slots(), slots);
    assert_eq!(rx.inline_capacity(), inline_cap);
    let mask = u64::from(slots) - 1;
    let (desc_off, data_off, _) = layout(slots as usize, inline_cap);
    // Counters lie at LINE in the segment: this gives the receiver's base.
    let base = std::ptr::from_ref(rx.counters()) as usize - LINE;
    let seg_end = base + peer.len();

    let visible = peer.u64(VISIBLE_OFF);
    let taken_counter = peer.u64(TAKEN_OFF);
    let mut seqs: Vec<u64> = (0..2 * u64::from(slots)).collect();
    seqs.extend((0..u64::from(slots)).map(|i| p.seq_base.wrapping_add(i)));
    seqs.extend([u64::MAX, CLOSED, visible, p.taken_extra]);
    for taken in [
        0,
        taken_counter,
        taken_counter & !CLOSED,
        visible,
        visible.wrapping_sub(slots.into()),
        p.taken_extra,
        u64::MAX,
        CLOSED,
    ] {
        let got = rx.check_visible(taken);
        assert_eq!(got, validate_visible(taken, visible, slots));
        match got {
            Ok(n) => {
                assert!(n <= slots.into());
                assert_eq!(taken.checked_add(n), Some(visible));
                seqs.extend(taken..visible);
            }
            Err(e) => assert_eq!(e, RingError::BadVisible { taken, visible }),
        }
    }

    let mut read = 0;
    for &seq in &seqs {
        let idx = (seq & mask) as usize;
        let d = desc_off + idx * DESC_SIZE;
        let (len, kind, offset) = (peer.u32(d), peer.u32(d + 4), peer.u64(d + 8));
        let slot_off = data_off + idx * inline_cap;
        for pool in [None, Some(p.pool_len), Some(0), Some(usize::MAX)] {
            for max in [p.max_len, usize::MAX, inline_cap, 0] {
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
                        read += s.len();
                    }
                    Ok(Location::Pool { offset: o, len: n }) => {
                        assert_eq!(kind, KIND_POOL);
                        assert_eq!((o, n), (offset, len as usize));
                        assert!(n <= max);
                        let pl = pool.expect("pool location without a pool");
                        let end = o.checked_add(n as u64).expect("offset + len overflows");
                        assert!(end <= pl as u64);
                    }
                    Err(
                        RingError::BadLength { seq: s, .. }
                        | RingError::BadKind { seq: s, .. }
                        | RingError::BadOffset { seq: s, .. },
                    ) => assert_eq!(s, seq),
                    Err(other) => panic!("unexpected error {other:?}"),
                }
            }
        }
        // Any length is cut to the slot.
        for want in [len as usize, p.max_len, usize::MAX] {
            let s = rx.inline(seq, want);
            assert_eq!(s.len(), want.min(inline_cap));
            assert_eq!(s.as_ptr() as usize, base + slot_off);
            assert!(base + slot_off + s.len() <= seg_end);
            black_box(s.iter().fold(0u8, |a, &b| a ^ b));
        }
        rx.release(seq);
    }
    read
}

/// Checks `validate_desc` against its documentation.
fn check_desc(
    seq: u64,
    len: u32,
    kind: u32,
    offset: u64,
    inline_cap: usize,
    pool_len: Option<usize>,
    max_len: usize,
) {
    let n = len as usize;
    let pool_fits = pool_len.is_some_and(|p| {
        offset
            .checked_add(u64::from(len))
            .is_some_and(|end| end <= p as u64)
    });
    let allowed = n <= max_len
        && match kind {
            KIND_INLINE => n <= inline_cap,
            KIND_POOL => pool_fits,
            _ => false,
        };
    let got = validate_desc(seq, len, kind, offset, inline_cap, pool_len, max_len);
    assert_eq!(got.is_ok(), allowed, "{got:?}");
    match got {
        Ok(Location::Inline { len: l }) => {
            assert_eq!(kind, KIND_INLINE);
            assert_eq!(l, n);
            assert!(l <= inline_cap && l <= max_len);
        }
        Ok(Location::Pool { offset: o, len: l }) => {
            assert_eq!(kind, KIND_POOL);
            assert_eq!((o, l), (offset, n));
            assert!(l <= max_len);
            let p = pool_len.expect("pool location without a pool");
            let end = o.checked_add(l as u64).expect("offset + len overflows");
            assert!(end <= p as u64);
        }
        Err(RingError::BadLength { seq: s, len: l }) => {
            assert_eq!((s, l), (seq, u64::from(len)));
            assert!(n > max_len || (kind == KIND_INLINE && n > inline_cap));
        }
        Err(RingError::BadKind { seq: s, kind: k }) => {
            assert_eq!((s, k), (seq, kind));
            assert!(kind != KIND_INLINE && (kind != KIND_POOL || pool_len.is_none()));
        }
        Err(RingError::BadOffset { seq: s, offset: o }) => {
            assert_eq!((s, o), (seq, offset));
            assert!(kind == KIND_POOL && !pool_fits);
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

/// Checks `validate_visible` against its documentation.
fn check_visible(taken: u64, visible: u64, slots: u32) {
    let got = validate_visible(taken, visible, slots);
    let allowed = visible >= taken && visible - taken <= u64::from(slots);
    assert_eq!(got.is_ok(), allowed, "{got:?}");
    match got {
        Ok(n) => {
            assert!(n <= u64::from(slots));
            assert_eq!(taken.checked_add(n), Some(visible));
        }
        Err(e) => assert_eq!(e, RingError::BadVisible { taken, visible }),
    }
}

/// How the peer rewrites the header.
#[derive(Debug, Clone)]
enum HeaderEdit {
    Keep,
    /// XORed into the first bytes of the header.
    Flip(Vec<u8>),
    /// A new slot count and inline capacity, magic and version kept.
    Geometry(u32, u32),
}

/// One descriptor as the peer writes it.
type RawDesc = (u32, u32, u64);

fn small_or_any_u64(small: u64) -> impl Strategy<Value = u64> {
    prop_oneof![0..small, any::<u64>(), Just(u64::MAX), Just(CLOSED)]
}

fn small_or_any_usize(small: usize) -> impl Strategy<Value = usize> {
    prop_oneof![0..small, any::<usize>(), Just(usize::MAX)]
}

fn kind() -> impl Strategy<Value = u32> {
    prop_oneof![Just(KIND_INLINE), Just(KIND_POOL), any::<u32>()]
}

fn header_edit() -> impl Strategy<Value = HeaderEdit> {
    // Mostly plausible geometries, some of which fit the segment.
    let slots = prop_oneof![
        4 => (0u32..7).prop_map(|k| 1 << k),
        1 => any::<u32>(),
    ];
    let inline = prop_oneof![
        4 => (0u32..20).prop_map(|k| 64 * k),
        1 => any::<u32>(),
    ];
    prop_oneof![
        3 => Just(HeaderEdit::Keep),
        1 => prop::collection::vec(any::<u8>(), 0..=20).prop_map(HeaderEdit::Flip),
        3 => (slots, inline).prop_map(|(s, c)| HeaderEdit::Geometry(s, c)),
    ]
}

fn raw_desc() -> impl Strategy<Value = RawDesc> {
    (
        prop_oneof![3 => 0u32..300, 1 => any::<u32>()],
        kind(),
        small_or_any_u64(1 << 16),
    )
}

fn params() -> impl Strategy<Value = Params> {
    (
        small_or_any_u64(64),
        small_or_any_u64(64),
        small_or_any_usize(1 << 17),
        small_or_any_usize(512),
    )
        .prop_map(|(taken_extra, seq_base, pool_len, max_len)| Params {
            taken_extra,
            seq_base,
            pool_len,
            max_len,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn validate_desc_accepts_exactly_what_is_documented(
        seq in any::<u64>(),
        len in prop_oneof![0u32..600, any::<u32>()],
        kind in kind(),
        offset in small_or_any_u64(1 << 20),
        inline_cap in small_or_any_usize(1024),
        pool_len in prop::option::of(small_or_any_usize(1 << 20)),
        max_len in small_or_any_usize(1024),
    ) {
        check_desc(seq, len, kind, offset, inline_cap, pool_len, max_len);
    }

    #[test]
    fn validate_visible_accepts_exactly_what_is_documented(
        taken in small_or_any_u64(1 << 10),
        ahead in prop_oneof![-4i64..70, any::<i64>()],
        slots in prop_oneof![(0u32..21).prop_map(|k| 1 << k), 0u32..100, any::<u32>()],
    ) {
        check_visible(taken, taken.wrapping_add_signed(ahead), slots);
    }

    #[test]
    fn a_corrupt_segment_is_read_only_inside_itself(
        slots_log in 0u32..5,
        inline_units in 0usize..5,
        header in header_edit(),
        visible in prop::option::of(small_or_any_u64(40)),
        taken in prop::option::of(small_or_any_u64(40)),
        descs in prop::collection::vec(raw_desc(), 0..40),
        patches in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..16),
        p in params(),
    ) {
        let (tx, peer) = well_formed(1 << slots_log, 64 * inline_units);
        match header {
            HeaderEdit::Keep => {}
            HeaderEdit::Flip(bytes) => {
                for (i, b) in bytes.iter().enumerate() {
                    peer.write(i, peer.read(i) ^ b);
                }
            }
            HeaderEdit::Geometry(s, c) => {
                peer.write_bytes(SLOTS_OFF, &s.to_le_bytes());
                peer.write_bytes(INLINE_OFF, &c.to_le_bytes());
            }
        }
        if let Some(v) = visible {
            peer.write_bytes(VISIBLE_OFF, &v.to_le_bytes());
        }
        if let Some(t) = taken {
            peer.write_bytes(TAKEN_OFF, &t.to_le_bytes());
        }
        // Descriptors go where the header (as left) says the table is, when
        // that lies inside the segment; bytes past its end are dropped.
        let h_slots = peer.u32(SLOTS_OFF) as usize;
        let desc_off = if h_slots <= MAX_SLOTS as usize {
            layout(h_slots, 0).0
        } else {
            layout(1 << slots_log, 0).0
        };
        for (i, (len, kind, offset)) in descs.iter().enumerate() {
            let d = desc_off + i * DESC_SIZE;
            peer.write_bytes(d, &len.to_le_bytes());
            peer.write_bytes(d + 4, &kind.to_le_bytes());
            peer.write_bytes(d + 8, &offset.to_le_bytes());
        }
        for (at, b) in patches {
            peer.write(at.index(peer.len()), b);
        }
        receive_everything(&tx, &peer, p);
    }
}

#[test]
fn an_untouched_segment_reads_back_what_was_written() {
    for slots_log in 0..5 {
        for inline_units in 0..5 {
            let (tx, peer) = well_formed(1 << slots_log, 64 * inline_units);
            let p = Params {
                taken_extra: 0,
                seq_base: 0,
                pool_len: 1 << 20,
                max_len: 1 << 20,
            };
            let read = receive_everything(&tx, &peer, p);
            assert_eq!(read > 0, inline_units > 0);
        }
    }
}

#[test]
fn a_header_claiming_the_page_slack_is_accepted_and_stays_inside() {
    // One slot of 64 bytes: the data area starts at 1024 and the segment is
    // one page, so a header claiming 3072 inline bytes still fits.
    let (tx, peer) = well_formed(1, 64);
    assert_eq!(peer.len(), 4096);
    peer.write_bytes(INLINE_OFF, &3072u32.to_le_bytes());
    let rx = RecvRing::open(dup(&tx)).expect("fits the segment");
    assert_eq!(rx.inline_capacity(), 3072);
    let base = std::ptr::from_ref(rx.counters()) as usize - LINE;
    let s = rx.inline(0, usize::MAX);
    assert_eq!(s.len(), 3072);
    assert_eq!(s.as_ptr() as usize + s.len(), base + peer.len());
    assert_eq!(s[3071], peer.read(4095));
    drop(rx);

    // One more cache line does not fit.
    peer.write_bytes(INLINE_OFF, &3136u32.to_le_bytes());
    assert_eq!(
        RecvRing::open(dup(&tx)).unwrap_err(),
        RingError::BadHeader("segment shorter than its ring")
    );
    // Fewer slots than the sender made are a smaller ring inside the segment.
    let (tx, peer) = well_formed(16, 256);
    peer.write_bytes(SLOTS_OFF, &4u32.to_le_bytes());
    let p = Params {
        taken_extra: 2,
        seq_base: u64::MAX - 3,
        pool_len: 1 << 20,
        max_len: 1 << 20,
    };
    receive_everything(&tx, &peer, p);
}
