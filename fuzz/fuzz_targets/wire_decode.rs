//! The frame decoder of the QUIC transport on arbitrary bytes, cut into
//! chunks at arbitrary points.
//!
//! Input layout:
//!
//! ```text
//! byte 0        max_frame: b % 4 = 0 → the default (64 MiB), 1 → usize::MAX,
//!               2 → b / 4 (0..=63), 3 → 64 * (b / 4)
//! byte 1        bits 0..3: n cut points; bit 3: build mode;
//!               bits 4..8: in build mode, how many bytes to corrupt
//! next 2n       the cut points, little-endian u16, each mod (stream len + 1)
//! the rest      raw mode: the stream
//!               build mode: a script of frames, encoded with this crate's
//!               encoders into the stream, then the corruptions
//!               (position u16, XOR mask u8 each)
//! ```
//!
//! Raw mode reaches every rejection quickly, but a valid `DATA` frame (count
//! and lengths exactly filling the frame) almost never; build mode feeds the
//! decoder valid streams of every kind, whole or with a few bytes changed.
//!
//! The decoder must never panic, and:
//! * every frame it returns re-encodes (`Frame::encode`) to exactly the bytes
//!   it was decoded from, `encoded_len` says how many, and its `len` is at
//!   most `max_frame`; a data batch rebuilt message by message with
//!   `DataBuilder` gives the same bytes too;
//! * the buffer never holds more than the bytes fed;
//! * after an error, `next` and `finish` return that error again;
//! * without an error, `finish` is `Ok` exactly when every byte belongs to a
//!   returned frame, `Truncated` otherwise;
//! * the outcome (frames and error) does not depend on the cut points: the
//!   stream fed in one piece gives the same;
//! * a built stream left intact decodes to every frame built, or stops with
//!   `Oversize` at the first frame longer than `max_frame`.

#![no_main]

use asyncmsg_wire::{
    Accept, Close, DEFAULT_MAX_FRAME, DataBatch, DataBuilder, Decoder, Frame, Hello,
    PROTOCOL_VERSION, Refuse, Target, Triggers, WireError, encode_accept, encode_ack, encode_close,
    encode_hello, encode_refuse,
};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let max_frame = match mode % 4 {
        0 => DEFAULT_MAX_FRAME,
        1 => usize::MAX,
        2 => usize::from(mode / 4),
        _ => 64 * usize::from(mode / 4),
    };
    let (flags, rest) = rest.split_first().map_or((0, rest), |(&b, r)| (b, r));
    let ncuts = usize::from(flags % 8);
    let cut_bytes = (2 * ncuts).min(rest.len());
    let (cut_bytes, rest) = rest.split_at(cut_bytes);

    let built;
    let (stream, intact_ends) = if flags & 8 == 0 {
        (rest, None)
    } else {
        let (stream, ends) = build(rest, flags >> 4);
        built = stream;
        (&built[..], ends)
    };

    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.extend([0, stream.len()]);
    cuts.sort_unstable();

    let chunked = decode(stream, &cuts, max_frame);
    let whole = decode(stream, &[0, stream.len()], max_frame);
    assert_eq!(chunked, whole, "the outcome depends on the chunking");

    if let Some(ends) = intact_ends {
        // The first frame over the limit stops the stream; all before it
        // decode. `ends` are the frames' end offsets.
        let mut start = 0;
        let mut expected = (stream.len(), None);
        for &end in &ends {
            let len = (end - start - 4) as u64;
            // The decoder's limit: what a 32-bit `len` can say at most.
            let max = max_frame.min(u32::MAX as usize) as u64;
            if len > max {
                expected = (start, Some(WireError::Oversize { len, max }));
                break;
            }
            start = end;
        }
        assert_eq!((whole.0.len(), whole.1), expected);
    }
});

/// Build mode: encodes the frames the script describes; then changes
/// `corrupt` bytes. Returns the stream and, if left intact, where each
/// frame ends.
fn build(script: &[u8], corrupt: u8) -> (Vec<u8>, Option<Vec<usize>>) {
    let mut u = Unstructured::new(script);
    let mut out = Vec::new();
    let mut ends = Vec::new();
    while !u.is_empty() && ends.len() < 32 {
        if build_frame(&mut u, &mut out).is_err() {
            break;
        }
        if ends.last() != Some(&out.len()) && !out.is_empty() {
            ends.push(out.len());
        }
    }
    if corrupt == 0 || out.is_empty() {
        return (out, Some(ends));
    }
    for _ in 0..corrupt {
        let (Ok(pos), Ok(mask)) = (u.arbitrary::<u16>(), u.arbitrary::<u8>()) else {
            break;
        };
        let i = usize::from(pos) % out.len();
        out[i] ^= mask.max(1);
    }
    (out, None)
}

/// Appends one frame the script describes.
fn build_frame(u: &mut Unstructured<'_>, out: &mut Vec<u8>) -> ArbResult<()> {
    match u.choose_index(6)? {
        0 => encode_hello(
            &Hello {
                version: PROTOCOL_VERSION,
                sender: u.arbitrary()?,
                pid: u.arbitrary()?,
                coid: u.arbitrary()?,
                target: if u.arbitrary()? {
                    Target::Name(u.arbitrary()?)
                } else {
                    Target::Chid(u.arbitrary()?)
                },
                max_buffers: u.arbitrary()?,
                next_seq: u.arbitrary()?,
                triggers: Triggers {
                    count: u.arbitrary()?,
                    time_ns: u.arbitrary()?,
                    interval_ns: u.arbitrary()?,
                },
            },
            out,
        ),
        1 => encode_accept(
            &Accept {
                version: PROTOCOL_VERSION,
                receiver: u.arbitrary()?,
                pid: u.arbitrary()?,
                chid: u.arbitrary()?,
                buffer_size: u.arbitrary()?,
                expect_seq: u.arbitrary()?,
            },
            out,
        ),
        2 => encode_refuse(&Refuse::new(u.arbitrary()?, u.arbitrary::<String>()?), out),
        3 => encode_close(&Close::new(u.arbitrary()?, u.arbitrary::<String>()?), out),
        4 => encode_ack(u.arbitrary()?, out),
        _ => {
            let mut b = DataBuilder::begin(out, u.arbitrary()?);
            b.set_redelivered(u.arbitrary()?);
            for _ in 0..u.int_in_range(1..=64)? {
                let len = u.int_in_range(0..=64)?;
                let msg = u.bytes(len).unwrap_or_default();
                // Fails only past u64::MAX: the batch ends there.
                if b.push(msg).is_err() {
                    break;
                }
            }
            b.finish();
        }
    }
    Ok(())
}

/// Decodes `stream` fed in the chunks between consecutive `cuts`; returns
/// the re-encoded frames and the error, if any.
fn decode(stream: &[u8], cuts: &[usize], max_frame: usize) -> (Vec<u8>, Option<WireError>) {
    let mut dec = Decoder::new(max_frame);
    let mut again = Vec::new();
    let mut error = None;
    'feed: for w in cuts.windows(2) {
        dec.feed(&stream[w[0]..w[1]]);
        assert!(dec.buffer_len() <= stream.len());
        loop {
            match dec.next() {
                Ok(Some(frame)) => {
                    let start = again.len();
                    frame.encode(&mut again);
                    let bytes = &again[start..];
                    assert_eq!(frame.encoded_len(), bytes.len());
                    assert!(bytes.len() - 4 <= max_frame);
                    assert_eq!(bytes, &stream[start..again.len()], "{frame:?}");
                    if let Frame::Data(batch) = &frame {
                        check_batch(batch, bytes);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    match &error {
        Some(e) => {
            assert_eq!(dec.next().as_ref().err(), Some(e));
            assert_eq!(dec.finish().as_ref().err(), Some(e));
        }
        None if again.len() == stream.len() => assert_eq!(dec.finish(), Ok(())),
        None => {
            assert_eq!(dec.finish(), Err(WireError::Truncated));
            error = Some(WireError::Truncated);
        }
    }
    (again, error)
}

/// A decoded batch: consistent counts and sequence numbers, every message
/// inside the frame, and rebuilt message by message it gives the bytes it
/// came from.
fn check_batch(batch: &DataBatch<'_>, bytes: &[u8]) {
    assert!(batch.count() >= 1);
    assert_eq!(batch.messages().len(), batch.count() as usize);
    assert_eq!(
        batch.end_seq() - batch.first_seq(),
        u64::from(batch.count())
    );
    let mut rebuilt = Vec::with_capacity(bytes.len());
    let mut b = DataBuilder::begin(&mut rebuilt, batch.first_seq());
    b.set_redelivered(batch.redelivered());
    let body = batch.as_bytes().as_ptr_range();
    let mut n = 0u64;
    for (seq, msg) in batch.with_seqs() {
        assert_eq!(seq, batch.first_seq() + n);
        let r = msg.as_ptr_range();
        assert!(body.start <= r.start && r.end <= body.end);
        assert!(b.push(msg).is_ok());
        n += 1;
    }
    assert_eq!(n, u64::from(batch.count()));
    assert_eq!(b.finish(), bytes.len());
    assert_eq!(rebuilt, bytes);
}
