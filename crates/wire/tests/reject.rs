//! SPEC B21: whatever bytes a peer sends, the decoder answers with frames or
//! with the right error, never panics, and stays failed after an error.

mod common;

use asyncmsg_wire::*;
use common::*;
use proptest::prelude::*;

/// `[len][kind][body]`.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 1) as u32).to_le_bytes().to_vec();
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// Feeds everything, drains, finishes: the first error.
fn first_error(bytes: &[u8]) -> WireError {
    let mut dec = Decoder::default();
    let (_, end) = decode_chunks(&mut dec, bytes, &[]);
    end.expect_err("the input should be rejected")
}

/// A valid HELLO body: version 1, zeroes, target Chid(0), no triggers.
const HELLO_BODY: [u8; 11] = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
/// A valid ACCEPT body: version 1, zeroes.
const ACCEPT_BODY: [u8; 6] = [1, 0, 0, 0, 0, 0];
/// A valid REFUSE or CLOSE body: errno 0, empty reason.
const REASON_BODY: [u8; 2] = [0, 0];

fn malformed(e: &WireError) -> bool {
    matches!(e, WireError::Malformed(_))
}

#[test]
fn hand_made_bodies_are_valid() {
    let mut dec = Decoder::default();
    for (kind, body) in [
        (1, &HELLO_BODY[..]),
        (2, &ACCEPT_BODY[..]),
        (3, &REASON_BODY[..]),
        (6, &REASON_BODY[..]),
        (4, &[0; 8][..]),
        (7, &[0, 0, 0][..]),
        (8, &[0; 8][..]),
        (9, &[0; 8][..]),
    ] {
        dec.feed(&frame(kind, body));
        let f = dec.next().unwrap().unwrap();
        assert_eq!(f.kind().as_u8(), kind);
    }
    dec.finish().unwrap();
}

#[test]
fn zero_length_frame_is_malformed() {
    let e = WireError::Malformed("frame length is 0");
    assert_eq!(first_error(&[0, 0, 0, 0]), e);
    assert_eq!(first_error(&[0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]), e);
}

#[test]
fn oversize_is_rejected_from_the_prefix_alone() {
    let mut dec = Decoder::new(1000);
    dec.feed(&1001u32.to_le_bytes());
    assert_eq!(
        dec.next(),
        Err(WireError::Oversize {
            len: 1001,
            max: 1000
        })
    );
    let mut dec = Decoder::default();
    dec.feed(&[0xff, 0xff, 0xff]);
    assert_eq!(dec.next(), Ok(None));
    dec.feed(&[0xff]);
    assert_eq!(
        dec.next(),
        Err(WireError::Oversize {
            len: u64::from(u32::MAX),
            max: DEFAULT_MAX_FRAME as u64
        })
    );
    // Nothing was allocated for the announced length.
    assert_eq!(dec.buffer_len(), 0);
}

#[test]
fn a_data_frame_over_max_frame_is_oversize() {
    let mut wire = Vec::new();
    let mut b = DataBuilder::begin(&mut wire, 0);
    b.push(&[0; 100]).unwrap();
    let size = b.finish();
    let mut dec = Decoder::new(size - 5);
    dec.feed(&wire);
    assert!(matches!(dec.next(), Err(WireError::Oversize { .. })));
}

#[test]
fn unknown_kinds_are_named() {
    for kind in [0u8, 10, 0x80, 0xff] {
        assert_eq!(
            first_error(&frame(kind, b"body")),
            WireError::UnknownKind(kind)
        );
        assert_eq!(first_error(&frame(kind, b"")), WireError::UnknownKind(kind));
    }
}

#[test]
fn hello_and_accept_with_another_version_are_unsupported() {
    for (version, varint) in [(0u16, &[0u8][..]), (2, &[2]), (0xffff, &[0xff, 0xff, 0x03])] {
        let mut hello = varint.to_vec();
        hello.extend_from_slice(&HELLO_BODY[1..]);
        assert_eq!(
            first_error(&frame(1, &hello)),
            WireError::UnsupportedVersion(version)
        );
        let mut accept = varint.to_vec();
        accept.extend_from_slice(&ACCEPT_BODY[1..]);
        assert_eq!(
            first_error(&frame(2, &accept)),
            WireError::UnsupportedVersion(version)
        );
        // A future version may change the rest: only its version is read.
        assert_eq!(
            first_error(&frame(1, &[varint, b"anything at all"].concat())),
            WireError::UnsupportedVersion(version)
        );
    }
    // Encoded by this crate with a wrong version, too.
    let mut wire = Vec::new();
    encode_hello(
        &Hello {
            version: 2,
            sender: 1,
            pid: 1,
            coid: 1,
            target: Target::Name("x".into()),
            max_buffers: 1,
            next_seq: 0,
            triggers: asyncmsg_wire::Triggers::default(),
        },
        &mut wire,
    );
    assert_eq!(first_error(&wire), WireError::UnsupportedVersion(2));
}

#[test]
fn a_bad_version_varint_is_malformed() {
    assert!(malformed(&first_error(&frame(1, &[]))));
    assert!(malformed(&first_error(&frame(1, &[0xff, 0xff, 0xff]))));
    assert!(malformed(&first_error(&frame(2, &[0x80]))));
}

#[test]
fn postcard_garbage_is_malformed() {
    // Body ends early.
    assert!(malformed(&first_error(&frame(1, &HELLO_BODY[..5]))));
    assert!(malformed(&first_error(&frame(2, &ACCEPT_BODY[..3]))));
    assert!(malformed(&first_error(&frame(3, &[0]))));
    assert!(malformed(&first_error(&frame(6, &[]))));
    // Unknown Target variant.
    let mut bad_target = HELLO_BODY;
    bad_target[4] = 2;
    assert!(malformed(&first_error(&frame(1, &bad_target))));
    // A name that is not UTF-8.
    assert!(malformed(&first_error(&frame(
        1,
        &[1, 0, 0, 0, 0, 1, 0xff, 0, 0]
    ))));
    // A reason that is not UTF-8, or longer than the body.
    assert!(malformed(&first_error(&frame(3, &[0, 2, 0xc3, 0x28]))));
    assert!(malformed(&first_error(&frame(6, &[0, 9, b'a']))));
    // A varint that never ends.
    assert!(malformed(&first_error(&frame(6, &[0xff; 12]))));
    assert!(malformed(&first_error(&frame(
        1,
        &[
            1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff
        ]
    ))));
}

#[test]
fn trailing_bytes_in_a_control_frame_are_malformed() {
    for (kind, body) in [
        (1, &HELLO_BODY[..]),
        (2, &ACCEPT_BODY[..]),
        (3, &REASON_BODY[..]),
        (6, &REASON_BODY[..]),
    ] {
        let mut long = body.to_vec();
        long.push(0);
        assert_eq!(
            first_error(&frame(kind, &long)),
            WireError::Malformed("trailing bytes in a control frame"),
            "kind {kind}"
        );
    }
}

#[test]
fn non_canonical_varints_are_malformed() {
    // pid 0 written on two bytes.
    let hello = [1, 0, 0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let e = WireError::Malformed("control frame is not canonically encoded");
    assert_eq!(first_error(&frame(1, &hello)), e);
    // version 1 written on two bytes.
    let accept = [0x81, 0x00, 0, 0, 0, 0, 0];
    assert_eq!(first_error(&frame(2, &accept)), e);
    // A reason length of 0 on two bytes.
    assert_eq!(first_error(&frame(3, &[0, 0x80, 0x00])), e);
}

#[test]
fn reasons_longer_than_max_reason_are_malformed() {
    for kind in [3u8, 6] {
        let mut body = vec![0];
        let len = (MAX_REASON + 1) as u16;
        body.extend_from_slice(&[(len & 0x7f) as u8 | 0x80, (len >> 7) as u8]);
        body.extend(std::iter::repeat_n(b'r', MAX_REASON + 1));
        assert_eq!(
            first_error(&frame(kind, &body)),
            WireError::Malformed("reason longer than MAX_REASON")
        );
        // One byte less is fine.
        let mut body = vec![0];
        let len = MAX_REASON as u16;
        body.extend_from_slice(&[(len & 0x7f) as u8 | 0x80, (len >> 7) as u8]);
        body.extend(std::iter::repeat_n(b'r', MAX_REASON));
        let mut dec = Decoder::default();
        dec.feed(&frame(kind, &body));
        assert!(dec.next().unwrap().is_some());
    }
}

#[test]
fn an_ack_body_is_exactly_8_bytes() {
    let e = WireError::Malformed("ACK body is not 8 bytes");
    assert_eq!(first_error(&frame(4, &[0; 7])), e);
    assert_eq!(first_error(&frame(4, &[0; 9])), e);
    assert_eq!(first_error(&frame(4, &[])), e);
}

/// A DATA body from its parts, without flags.
fn data_body(first_seq: u64, count: u32, msgs: &[&[u8]], tail: &[u8]) -> Vec<u8> {
    data_body_flags(first_seq, count, 0, msgs, tail)
}

fn data_body_flags(first_seq: u64, count: u32, flags: u8, msgs: &[&[u8]], tail: &[u8]) -> Vec<u8> {
    let mut body = first_seq.to_le_bytes().to_vec();
    body.extend_from_slice(&count.to_le_bytes());
    body.push(flags);
    for m in msgs {
        body.extend_from_slice(&(m.len() as u32).to_le_bytes());
        body.extend_from_slice(m);
    }
    body.extend_from_slice(tail);
    body
}

#[test]
fn data_count_and_lengths_must_fill_the_frame() {
    // Sanity: the well-formed one.
    let mut dec = Decoder::default();
    dec.feed(&frame(5, &data_body(0, 2, &[b"ab", b""], &[])));
    assert!(matches!(dec.next(), Ok(Some(Frame::Data(_)))));

    let cases: [(&str, Vec<u8>); 9] = [
        (
            "DATA body shorter than its header",
            data_body(0, 1, &[], &[])[..12].to_vec(),
        ),
        ("DATA batch without messages", data_body(0, 0, &[], &[])),
        (
            "DATA batch without messages",
            data_body(0, 0, &[b"ab"], &[]),
        ),
        (
            "DATA messages end before count",
            data_body(0, 3, &[b"ab", b""], &[0, 0]),
        ),
        (
            "DATA frame has bytes after its last message",
            data_body(0, 1, &[b"ab", b""], &[]),
        ),
        (
            "DATA count exceeds what the frame holds",
            data_body(0, u32::MAX, &[b"ab"], &[]),
        ),
        (
            "DATA frame has bytes after its last message",
            data_body(0, 2, &[b"ab", b""], &[0]),
        ),
        (
            "DATA messages end before count",
            data_body(0, 2, &[b"ab"], &[1, 0]),
        ),
        (
            "DATA message runs past the frame",
            data_body(0, 1, &[], &[3, 0, 0, 0, b'a', b'b']),
        ),
    ];
    for (what, body) in cases {
        assert_eq!(first_error(&frame(5, &body)), WireError::Malformed(what));
    }
}

#[test]
fn data_flags_are_known_or_rejected() {
    let mut dec = Decoder::default();
    dec.feed(&frame(5, &data_body_flags(0, 1, 1, &[b"x"], &[])));
    let Some(Frame::Data(b)) = dec.next().unwrap() else {
        panic!()
    };
    assert!(b.redelivered());
    for flags in [2u8, 0x80, 0xff] {
        assert_eq!(
            first_error(&frame(5, &data_body_flags(0, 1, flags, &[b"x"], &[]))),
            WireError::Malformed("DATA has unknown flags")
        );
    }
}

#[test]
fn data_sequence_numbers_must_not_overflow() {
    let ok = data_body(u64::MAX - 2, 2, &[b"", b""], &[]);
    let mut dec = Decoder::default();
    dec.feed(&frame(5, &ok));
    let Some(Frame::Data(b)) = dec.next().unwrap() else {
        panic!()
    };
    assert_eq!(b.end_seq(), u64::MAX);
    let e = WireError::Malformed("DATA sequence numbers overflow u64");
    let bad = data_body(u64::MAX - 1, 2, &[b"", b""], &[]);
    assert_eq!(first_error(&frame(5, &bad)), e);
    let bad = data_body(u64::MAX, 1, &[b""], &[]);
    assert_eq!(first_error(&frame(5, &bad)), e);
}

#[test]
fn a_partial_frame_at_the_end_is_truncated() {
    let mut wire = Vec::new();
    encode_ack(1, &mut wire);
    for cut in 1..wire.len() {
        let mut dec = Decoder::default();
        dec.feed(&wire[..cut]);
        assert_eq!(dec.next(), Ok(None));
        assert_eq!(dec.buffered(), cut);
        assert_eq!(dec.finish(), Err(WireError::Truncated));
    }
    // Frames not taken with next() count as left over.
    let mut dec = Decoder::default();
    dec.feed(&wire);
    assert_eq!(dec.finish(), Err(WireError::Truncated));
    // An empty stream is fine.
    assert_eq!(Decoder::default().finish(), Ok(()));
}

#[test]
fn a_failed_decoder_stays_failed() {
    let mut good = Vec::new();
    encode_ack(1, &mut good);
    let mut dec = Decoder::default();
    dec.feed(&good);
    dec.feed(&frame(200, b""));
    dec.feed(&good);
    assert_eq!(dec.next(), Ok(Some(Frame::Ack(1))));
    assert_eq!(dec.next(), Err(WireError::UnknownKind(200)));
    assert_eq!(dec.error(), Some(&WireError::UnknownKind(200)));
    dec.feed(&good);
    let n = dec.spare(16).len();
    dec.commit(n.min(16));
    dec.commit(usize::MAX); // ignored once failed
    assert_eq!(dec.next(), Err(WireError::UnknownKind(200)));
    assert_eq!(dec.finish(), Err(WireError::UnknownKind(200)));
    assert_eq!(dec.next(), Err(WireError::UnknownKind(200)));
}

#[test]
fn errors_read_well() {
    assert_eq!(
        WireError::UnsupportedVersion(2).to_string(),
        "unsupported protocol version 2 (this end speaks 1)"
    );
    assert_eq!(
        WireError::UnknownKind(7).to_string(),
        "unknown frame kind 0x07"
    );
    assert_eq!(
        WireError::Oversize { len: 10, max: 5 }.to_string(),
        "a frame of 10 bytes exceeds the limit of 5 bytes"
    );
    assert_eq!(Kind::try_from(6), Ok(Kind::Close));
}

/// Decodes `input` cut at `cuts`; checks that nothing panics, that the
/// frames decoded re-encode to exactly the bytes they came from, that an
/// error is sticky, and that the buffer never exceeds what was fed.
fn check_arbitrary(input: &[u8], cuts: &[usize], max_frame: usize) -> Result<(), TestCaseError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    cuts.extend([0, input.len()]);
    cuts.sort_unstable();
    let mut dec = Decoder::new(max_frame);
    let mut again = Vec::new();
    let mut error = None;
    'feed: for w in cuts.windows(2) {
        dec.feed(&input[w[0]..w[1]]);
        prop_assert!(dec.buffer_len() <= input.len());
        loop {
            match dec.next() {
                Ok(Some(f)) => {
                    let before = again.len();
                    f.encode(&mut again);
                    prop_assert_eq!(f.encoded_len(), again.len() - before);
                    prop_assert!(again.len() - before - 4 <= max_frame);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    prop_assert_eq!(&input[..again.len()], &again[..]);
    match error {
        Some(e) => {
            prop_assert_eq!(dec.next(), Err(e.clone()));
            prop_assert_eq!(dec.finish(), Err(e));
        }
        None => {
            let end = dec.finish();
            if again.len() == input.len() {
                prop_assert_eq!(end, Ok(()));
            } else {
                prop_assert_eq!(end, Err(WireError::Truncated));
            }
        }
    }
    Ok(())
}

fn max_frame() -> impl Strategy<Value = usize> {
    prop_oneof![Just(DEFAULT_MAX_FRAME), 0usize..64, Just(usize::MAX)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Random bytes: never a panic, and what decodes re-encodes exactly.
    #[test]
    fn random_bytes_never_panic(
        input in prop::collection::vec(any::<u8>(), 0..200),
        cuts in prop::collection::vec(0usize..200, 0..6),
        max in max_frame(),
    ) {
        check_arbitrary(&input, &cuts, max)?;
    }

    /// Random bytes behind a plausible header (a small len, a known kind),
    /// so that the body checks are reached.
    #[test]
    fn random_bodies_never_panic(
        kind in 0u8..8,
        body in prop::collection::vec(any::<u8>(), 0..64),
        extra in -2i32..3,
        cuts in prop::collection::vec(0usize..80, 0..4),
    ) {
        let len = (body.len() as i32 + 1 + extra).max(0) as u32;
        let mut input = len.to_le_bytes().to_vec();
        input.push(kind);
        input.extend_from_slice(&body);
        check_arbitrary(&input, &cuts, DEFAULT_MAX_FRAME)?;
    }

    /// Valid streams with a few bytes changed, cut or dropped.
    #[test]
    fn corrupted_streams_never_panic(
        frames in prop::collection::vec(model(), 1..5),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
        cut in any::<prop::sample::Index>(),
        drop_at in proptest::option::of(any::<prop::sample::Index>()),
        cuts in prop::collection::vec(0usize..4000, 0..5),
    ) {
        let (mut wire, _) = encode_all(&frames);
        for (i, x) in &flips {
            let i = i.index(wire.len());
            wire[i] ^= x;
        }
        if let Some(d) = drop_at {
            wire.remove(d.index(wire.len()));
        }
        wire.truncate(cut.index(wire.len() + 1).max(wire.len() / 2));
        check_arbitrary(&wire, &cuts, DEFAULT_MAX_FRAME)?;
    }
}
