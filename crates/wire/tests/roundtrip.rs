//! Every frame kind decodes to what was encoded, whatever chunks the bytes
//! arrive in (SPEC B21: the decoder only rejects what is wrong).

mod common;

use asyncmsg_wire::*;
use common::*;
use proptest::prelude::*;

#[test]
fn every_kind_round_trips() {
    let frames = sample_frames();
    let (wire, _) = encode_all(&frames);
    let mut dec = Decoder::default();
    let (got, end) = decode_chunks(&mut dec, &wire, &[]);
    assert_eq!(end, Ok(()));
    assert_eq!(got, frames);
}

#[test]
fn every_kind_round_trips_one_byte_at_a_time() {
    let frames = sample_frames();
    let (wire, _) = encode_all(&frames);
    let mut dec = Decoder::default();
    let mut got = Vec::new();
    for b in &wire {
        dec.feed(std::slice::from_ref(b));
        drain(&mut dec, &mut got).unwrap();
    }
    dec.finish().unwrap();
    assert_eq!(got, frames);
    assert_eq!(dec.buffered(), 0);
}

#[test]
fn hello_with_channel_id_and_extremes() {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        sender: 0,
        pid: 0,
        coid: i32::MIN,
        target: Target::Chid(-1),
        max_buffers: u32::MAX,
        next_seq: u64::MAX,
        triggers: asyncmsg_wire::Triggers::default(),
    };
    let frames = [Model::Hello(hello.clone())];
    let (wire, _) = encode_all(&frames);
    assert_eq!(wire.len(), hello.encoded_len());
    let mut dec = Decoder::default();
    let (got, end) = decode_chunks(&mut dec, &wire, &[1, 4, 5, 6]);
    assert_eq!(end, Ok(()));
    assert_eq!(got, frames);
}

#[test]
fn ack_and_data_have_the_documented_layout() {
    let mut wire = Vec::new();
    encode_ack(u64::MAX, &mut wire);
    assert_eq!(
        wire,
        [9, 0, 0, 0, 4, 255, 255, 255, 255, 255, 255, 255, 255]
    );

    wire.clear();
    let mut b = DataBuilder::begin(&mut wire, 0x0102_0304_0506_0708);
    b.push(b"ab").unwrap();
    b.push(b"").unwrap();
    assert_eq!(b.finish(), 28);
    #[rustfmt::skip]
    let expected = [
        24, 0, 0, 0,                 // len: kind + 13 + (4 + 2) + (4 + 0)
        5,                           // DATA
        8, 7, 6, 5, 4, 3, 2, 1,      // first_seq
        2, 0, 0, 0,                  // count
        0,                           // flags
        2, 0, 0, 0, b'a', b'b',      // message 0
        0, 0, 0, 0,                  // message 1 (empty)
    ];
    assert_eq!(wire, expected);
}

#[test]
fn control_frames_start_with_len_and_kind() {
    for (model, kind) in sample_frames().iter().zip([1u8, 2, 5, 4, 3, 6]) {
        let mut wire = Vec::new();
        model.encode(&mut wire);
        let len = u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize;
        assert_eq!(len + 4, wire.len(), "{model:?}");
        assert_eq!(wire[4], kind, "{model:?}");
        assert_eq!(Kind::from_u8(kind).map(Kind::as_u8), Some(kind));
    }
}

#[test]
fn encoded_len_matches_what_is_written() {
    for model in sample_frames() {
        let mut wire = vec![0xee; 3]; // encoders append
        model.encode(&mut wire);
        let mut dec = Decoder::default();
        dec.feed(&wire[3..]);
        let frame = dec.next().unwrap().unwrap();
        assert_eq!(frame.encoded_len(), wire.len() - 3, "{model:?}");
        if let Model::Data { msgs, .. } = &model {
            assert_eq!(data_encoded_len(msgs.iter().map(Vec::len)), wire.len() - 3);
        }
    }
}

#[test]
fn decoded_frames_re_encode_to_the_same_bytes() {
    let (wire, _) = encode_all(&sample_frames());
    let mut dec = Decoder::default();
    dec.feed(&wire);
    let mut again = Vec::new();
    while let Some(frame) = dec.next().unwrap() {
        frame.encode(&mut again);
    }
    assert_eq!(again, wire);
}

#[test]
fn long_reasons_are_cut_at_a_char_boundary() {
    // 'é' is 2 bytes; 'x' then 600 'é' is 1201 bytes, cut to 1023.
    let reason = format!("x{}", "é".repeat(600));
    let mut wire = Vec::new();
    encode_close(&Close::new(5, reason.clone()), &mut wire);
    encode_refuse(&Refuse::new(6, reason.clone()), &mut wire);
    let mut dec = Decoder::default();
    dec.feed(&wire);
    let Some(Frame::Close(c)) = dec.next().unwrap() else {
        panic!()
    };
    assert_eq!(c.reason.len(), MAX_REASON - 1);
    assert!(reason.starts_with(&c.reason));
    let Some(Frame::Refuse(r)) = dec.next().unwrap() else {
        panic!()
    };
    assert_eq!((r.errno, r.reason.as_str()), (6, c.reason.as_str()));
    // A reason of exactly MAX_REASON bytes passes whole.
    wire.clear();
    encode_close(&Close::new(0, "r".repeat(MAX_REASON)), &mut wire);
    dec.feed(&wire);
    let Some(Frame::Close(c)) = dec.next().unwrap() else {
        panic!()
    };
    assert_eq!(c.reason.len(), MAX_REASON);
}

#[test]
fn spare_and_commit_read_straight_into_the_buffer() {
    let (wire, _) = encode_all(&sample_frames());
    let mut src = &wire[..];
    let mut dec = Decoder::default();
    let mut got = Vec::new();
    while !src.is_empty() {
        let dst = dec.spare(7);
        assert!(dst.len() >= 7);
        let n = dst.len().min(src.len()).min(7);
        dst[..n].copy_from_slice(&src[..n]);
        src = &src[n..];
        dec.commit(n);
        drain(&mut dec, &mut got).unwrap();
    }
    dec.finish().unwrap();
    assert_eq!(got, sample_frames());
}

#[test]
#[should_panic(expected = "exceeds the spare buffer")]
fn committing_more_than_spare_is_a_caller_bug() {
    let mut dec = Decoder::default();
    let n = dec.spare(8).len();
    dec.commit(n + 1);
}

/// Decoding a 64-message batch yields slices of the one frame buffer: no
/// message is copied or allocated on its own.
#[test]
fn a_64_message_batch_decodes_to_slices_of_one_buffer() {
    let mut wire = Vec::new();
    let mut b = DataBuilder::begin(&mut wire, 500);
    for i in 0..64u8 {
        b.push(&vec![i; usize::from(i) * 3]).unwrap();
    }
    assert_eq!(b.count(), 64);
    let size = b.finish();
    assert_eq!(size, wire.len());

    let mut dec = Decoder::default();
    for chunk in wire.chunks(1000) {
        dec.feed(chunk);
    }
    let Some(Frame::Data(batch)) = dec.next().unwrap() else {
        panic!()
    };
    assert_eq!(
        (batch.first_seq(), batch.count(), batch.end_seq()),
        (500, 64, 564)
    );
    let body = batch.as_bytes().as_ptr_range();
    assert_eq!(batch.as_bytes().len(), size - HEADER_LEN);
    let mut prev_end = body.start;
    for (i, (seq, msg)) in batch.with_seqs().enumerate() {
        assert_eq!(seq, 500 + i as u64);
        assert_eq!(msg.len(), i * 3);
        assert!(msg.iter().all(|&x| usize::from(x) == i));
        let r = msg.as_ptr_range();
        // In the frame, in order, each right after its 4-byte length.
        assert!(r.start >= body.start && r.end <= body.end);
        assert_eq!(
            r.start as usize - prev_end as usize,
            if i == 0 { 13 + 4 } else { 4 }
        );
        prev_end = r.end;
    }
    assert_eq!(prev_end, body.end);
    assert_eq!(batch.messages().len(), 64);
    assert_eq!((&batch).into_iter().count(), 64);
}

#[test]
fn owned_frames_outlive_the_next_call() {
    let frames = sample_frames();
    let (wire, _) = encode_all(&frames);
    let mut dec = Decoder::default();
    dec.feed(&wire);
    let mut owned: Vec<Frame<'static>> = Vec::new();
    while let Some(f) = dec.next_owned().unwrap() {
        if let Frame::Data(b) = &f {
            assert!(!b.is_borrowed());
        }
        owned.push(f);
    }
    dec.finish().unwrap();
    let models: Vec<Model> = owned.iter().map(Model::of).collect();
    assert_eq!(models, frames);
    // An owned batch re-encodes like the borrowed one.
    let mut again = Vec::new();
    for f in &owned {
        f.encode(&mut again);
    }
    assert_eq!(again, wire);
}

#[test]
fn max_frame_is_clamped_to_what_len_can_say() {
    assert_eq!(Decoder::new(usize::MAX).max_frame(), u32::MAX as usize);
    assert_eq!(Decoder::default().max_frame(), 64 << 20);
}

#[test]
fn builder_appends_after_existing_bytes_and_cleans_up() {
    let mut buf = Vec::with_capacity(1024);
    encode_ack(1, &mut buf);
    let before = buf.clone();

    // Dropped without finish: nothing stays.
    {
        let mut b = DataBuilder::begin(&mut buf, 9);
        b.push(b"abandoned").unwrap();
    }
    assert_eq!(buf, before);

    // Finished with no message: nothing is written.
    assert_eq!(DataBuilder::begin(&mut buf, 9).finish(), 0);
    assert_eq!(buf, before);

    // A real batch after the ACK: no reallocation with enough capacity.
    let ptr = buf.as_ptr();
    let mut b = DataBuilder::begin(&mut buf, 9);
    b.push_parts(&[b"par", b"ts"]).unwrap();
    b.push(b"whole").unwrap();
    assert!(!b.is_empty());
    assert_eq!(b.first_seq(), 9);
    let n = b.finish();
    assert_eq!(buf.as_ptr(), ptr);
    assert_eq!(buf.len(), before.len() + n);

    let mut dec = Decoder::default();
    dec.feed(&buf);
    assert_eq!(dec.next().unwrap(), Some(Frame::Ack(1)));
    let Some(Frame::Data(batch)) = dec.next().unwrap() else {
        panic!()
    };
    let msgs: Vec<&[u8]> = batch.messages().collect();
    assert_eq!(msgs, [&b"parts"[..], b"whole"]);
}

#[test]
fn builder_refuses_sequence_overflow_and_keeps_its_batch() {
    let mut buf = Vec::new();
    let mut b = DataBuilder::begin(&mut buf, u64::MAX - 2);
    b.push(b"a").unwrap();
    b.push(b"b").unwrap();
    assert!(matches!(b.push(b"c"), Err(WireError::Malformed(_))));
    assert_eq!(b.count(), 2);
    b.finish();
    let mut dec = Decoder::default();
    dec.feed(&buf);
    let Some(Frame::Data(batch)) = dec.next().unwrap() else {
        panic!()
    };
    assert_eq!(batch.end_seq(), u64::MAX);
    let seqs: Vec<u64> = batch.with_seqs().map(|(s, _)| s).collect();
    assert_eq!(seqs, [u64::MAX - 2, u64::MAX - 1]);
}

#[test]
fn builder_fits_matches_the_decoders_limit() {
    let max = 200;
    let mut buf = Vec::new();
    let mut b = DataBuilder::begin(&mut buf, 0);
    let mut pushed = 0;
    while b.fits(10, max) {
        b.push(&[7; 10]).unwrap();
        pushed += 1;
    }
    assert_eq!(pushed, (200 - 14) / 14);
    b.finish();
    let mut dec = Decoder::new(max);
    dec.feed(&buf);
    let Some(Frame::Data(batch)) = dec.next().unwrap() else {
        panic!()
    };
    assert_eq!(batch.count(), pushed);
    // One more message would not have fitted.
    assert!(buf.len() - 4 + 14 > max);
}

#[test]
fn a_frame_of_exactly_max_frame_is_taken() {
    let mut buf = Vec::new();
    let mut b = DataBuilder::begin(&mut buf, 0);
    b.push(&[1; 100]).unwrap();
    let size = b.finish();
    let mut dec = Decoder::new(size - 4);
    dec.feed(&buf);
    assert!(matches!(dec.next(), Ok(Some(Frame::Data(_)))));
}

/// The buffer is reused: decoding many frames keeps it near the size of
/// what is fed at once, not of the whole stream.
#[test]
fn the_buffer_stays_small_over_a_long_stream() {
    let mut wire = Vec::new();
    for i in 0..5000u64 {
        encode_ack(i, &mut wire);
        let mut b = DataBuilder::begin(&mut wire, i);
        b.push(&[i as u8; 40]).unwrap();
        b.finish();
    }
    let mut dec = Decoder::default();
    let mut n = 0;
    for chunk in wire.chunks(1500) {
        dec.feed(chunk);
        while dec.next().unwrap().is_some() {
            n += 1;
        }
        assert!(dec.buffer_len() <= 2 * 1500, "{}", dec.buffer_len());
    }
    dec.finish().unwrap();
    assert_eq!(n, 10_000);
}

#[test]
fn a_large_frame_read_in_chunks_grows_the_buffer_only_as_bytes_come() {
    let mut wire = Vec::new();
    let mut b = DataBuilder::begin(&mut wire, 0);
    b.push(&vec![3; 1 << 20]).unwrap();
    b.finish();
    let mut dec = Decoder::default();
    let mut src = &wire[..];
    let mut fed = 0;
    while !src.is_empty() {
        let dst = dec.spare(64 * 1024);
        let n = dst.len().min(src.len()).min(64 * 1024);
        dst[..n].copy_from_slice(&src[..n]);
        src = &src[n..];
        dec.commit(n);
        fed += n;
        assert!(dec.buffer_len() <= fed + 64 * 1024);
        if src.is_empty() {
            let Some(Frame::Data(batch)) = dec.next().unwrap() else {
                panic!()
            };
            assert_eq!(batch.messages().next().map(<[u8]>::len), Some(1 << 20));
        } else {
            assert_eq!(dec.next().unwrap(), None);
        }
    }
    dec.finish().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary frames, cut at arbitrary points, decode to the same frames.
    #[test]
    fn arbitrary_frames_in_arbitrary_chunks_round_trip(
        frames in prop::collection::vec(model(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let (wire, _) = encode_all(&frames);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        let mut dec = Decoder::default();
        let (got, end) = decode_chunks(&mut dec, &wire, &cuts);
        prop_assert_eq!(end, Ok(()));
        prop_assert_eq!(&got, &frames);

        // And each decoded frame re-encodes to its own bytes.
        let mut dec = Decoder::default();
        dec.feed(&wire);
        let mut again = Vec::new();
        while let Some(f) = dec.next().unwrap() {
            let before = again.len();
            f.encode(&mut again);
            prop_assert_eq!(f.encoded_len(), again.len() - before);
        }
        prop_assert_eq!(again, wire);
    }

    /// The same through `spare`/`commit`, with arbitrary read sizes.
    #[test]
    fn arbitrary_frames_read_through_spare_round_trip(
        frames in prop::collection::vec(model(), 1..6),
        reads in prop::collection::vec(1usize..700, 1..20),
    ) {
        let (wire, _) = encode_all(&frames);
        let mut dec = Decoder::default();
        let mut got = Vec::new();
        let mut src = &wire[..];
        let mut i = 0;
        while !src.is_empty() {
            let want = reads[i % reads.len()];
            i += 1;
            let dst = dec.spare(want);
            prop_assert!(dst.len() >= want);
            let n = want.min(src.len());
            dst[..n].copy_from_slice(&src[..n]);
            src = &src[n..];
            dec.commit(n);
            drain(&mut dec, &mut got).unwrap();
        }
        prop_assert_eq!(dec.finish(), Ok(()));
        prop_assert_eq!(got, frames);
    }

    /// A stream cut at any byte: the frames wholly before the cut decode,
    /// and `finish` reports `Truncated` unless the cut falls between frames.
    #[test]
    fn a_stream_cut_anywhere_is_truncated_unless_between_frames(
        frames in prop::collection::vec(model(), 1..4),
    ) {
        let (wire, ends) = encode_all(&frames);
        for cut in 0..wire.len() {
            let mut dec = Decoder::default();
            let (got, end) = decode_chunks(&mut dec, &wire[..cut], &[cut / 2]);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            prop_assert_eq!(&got[..], &frames[..whole]);
            if cut == 0 || ends.contains(&cut) {
                prop_assert_eq!(end, Ok(()));
            } else {
                prop_assert_eq!(end, Err(WireError::Truncated), "cut at {}", cut);
                prop_assert_eq!(dec.next(), Err(WireError::Truncated));
            }
        }
    }
}
