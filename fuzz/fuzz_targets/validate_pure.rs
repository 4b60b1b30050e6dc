//! The pure checks a receiver runs on what a peer wrote, on arbitrary
//! integers: `validate_desc` accepts exactly the descriptors its documentation
//! allows, and `validate_visible` exactly the published ranges.

#![no_main]

use asyncmsg_shm::ring::{
    KIND_INLINE, KIND_POOL, Location, RingError, validate_desc, validate_visible,
};
use libfuzzer_sys::fuzz_target;

type Desc = (u64, u32, u8, u32, u64, usize, Option<usize>, usize);

fuzz_target!(|input: (Desc, (u64, u64, u32))| {
    let ((seq, len, kind_sel, raw_kind, offset, inline_cap, pool_len, max_len), vis) = input;
    // Known kinds most of the time, anything otherwise.
    let kind = match kind_sel % 4 {
        0 => KIND_INLINE,
        1 => KIND_POOL,
        2 => 0,
        _ => raw_kind,
    };
    check_desc(seq, len, kind, offset, inline_cap, pool_len, max_len);
    // Small capacities and maximums too, so that both limits bind.
    check_desc(
        seq,
        len,
        kind,
        offset,
        inline_cap % 4096,
        pool_len.map(|p| p % (1 << 20)),
        max_len % 8192,
    );

    let (taken, visible, slots) = vis;
    check_visible(taken, visible, slots);
    check_visible(taken, taken.wrapping_add(visible % 64), slots % 64);
});

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
