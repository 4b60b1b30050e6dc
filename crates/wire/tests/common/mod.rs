//! Shared by the wire tests: an owned model of a frame, its strategies, and
//! decoding helpers.

#![allow(dead_code, reason = "each test file uses a part")]

use asyncmsg_wire::{
    Accept, Close, DataBuilder, Decoder, Frame, Hello, PROTOCOL_VERSION, Refuse, Target, Triggers,
    WireError, encode_accept, encode_ack, encode_close, encode_done, encode_flush, encode_hello,
    encode_refuse, encode_triggers,
};
use proptest::prelude::*;

/// A frame with everything owned, to compare decoded frames with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Model {
    Hello(Hello),
    Accept(Accept),
    Refuse(Refuse),
    Ack(u64),
    Data {
        first_seq: u64,
        redelivered: bool,
        msgs: Vec<Vec<u8>>,
    },
    Close(Close),
    Triggers(Triggers),
    Flush(u64),
    Done(u64),
}

impl Model {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello(h) => encode_hello(h, out),
            Self::Accept(a) => encode_accept(a, out),
            Self::Refuse(r) => encode_refuse(r, out),
            Self::Ack(t) => encode_ack(*t, out),
            Self::Close(c) => encode_close(c, out),
            Self::Triggers(t) => encode_triggers(t, out),
            Self::Flush(u) => encode_flush(*u, out),
            Self::Done(u) => encode_done(*u, out),
            Self::Data {
                first_seq,
                redelivered,
                msgs,
            } => {
                let mut b = DataBuilder::begin(out, *first_seq);
                b.set_redelivered(*redelivered);
                for m in msgs {
                    b.push(m).expect("push");
                }
                b.finish();
            }
        }
    }

    pub fn of(frame: &Frame<'_>) -> Self {
        match frame {
            Frame::Hello(h) => Self::Hello(h.clone()),
            Frame::Accept(a) => Self::Accept(a.clone()),
            Frame::Refuse(r) => Self::Refuse(r.clone()),
            Frame::Ack(t) => Self::Ack(*t),
            Frame::Close(c) => Self::Close(c.clone()),
            Frame::Triggers(t) => Self::Triggers(*t),
            Frame::Flush(u) => Self::Flush(*u),
            Frame::Done(u) => Self::Done(*u),
            Frame::Data(b) => Self::Data {
                first_seq: b.first_seq(),
                redelivered: b.redelivered(),
                msgs: b.messages().map(<[u8]>::to_vec).collect(),
            },
        }
    }
}

pub fn encode_all(frames: &[Model]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for f in frames {
        f.encode(&mut out);
        ends.push(out.len());
    }
    (out, ends)
}

/// Drains every complete frame.
pub fn drain(dec: &mut Decoder, got: &mut Vec<Model>) -> Result<(), WireError> {
    while let Some(f) = dec.next()? {
        got.push(Model::of(&f));
    }
    Ok(())
}

/// Feeds `bytes` cut at `cuts` (positions, any order, any duplicates),
/// draining after each chunk, then finishes.
pub fn decode_chunks(
    dec: &mut Decoder,
    bytes: &[u8],
    cuts: &[usize],
) -> (Vec<Model>, Result<(), WireError>) {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let mut got = Vec::new();
    for w in cuts.windows(2) {
        dec.feed(&bytes[w[0]..w[1]]);
        if let Err(e) = drain(dec, &mut got) {
            return (got, Err(e));
        }
    }
    let end = dec.finish();
    (got, end)
}

pub fn triggers() -> impl Strategy<Value = Triggers> {
    (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(count, time_ns, interval_ns)| Triggers {
        count,
        time_ns,
        interval_ns,
    })
}

pub fn small_string() -> impl Strategy<Value = String> {
    // At most 200 chars of up to 4 bytes: within MAX_REASON.
    "\\PC{0,200}"
}

pub fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        "\\PC{0,40}".prop_map(Target::Name),
        any::<i32>().prop_map(Target::Chid),
    ]
}

pub fn hello() -> impl Strategy<Value = Hello> {
    (
        any::<u128>(),
        any::<u32>(),
        any::<i32>(),
        target(),
        any::<u32>(),
        any::<u64>(),
        triggers(),
    )
        .prop_map(
            |(sender, pid, coid, target, max_buffers, next_seq, triggers)| Hello {
                version: PROTOCOL_VERSION,
                sender,
                pid,
                coid,
                target,
                max_buffers,
                next_seq,
                triggers,
            },
        )
}

pub fn accept() -> impl Strategy<Value = Accept> {
    (
        any::<u128>(),
        any::<u32>(),
        any::<i32>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(receiver, pid, chid, buffer_size, expect_seq)| Accept {
            version: PROTOCOL_VERSION,
            receiver,
            pid,
            chid,
            buffer_size,
            expect_seq,
        })
}

pub fn data() -> impl Strategy<Value = Model> {
    let msgs = prop_oneof![
        4 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 1..10),
        1 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..3),
    ];
    (any::<u64>(), any::<bool>(), msgs).prop_map(|(seq, redelivered, msgs)| {
        // Keep first_seq + count within u64, near the top too.
        let first_seq = seq.min(u64::MAX - msgs.len() as u64);
        Model::Data {
            first_seq,
            redelivered,
            msgs,
        }
    })
}

pub fn model() -> impl Strategy<Value = Model> {
    prop_oneof![
        1 => hello().prop_map(Model::Hello),
        1 => accept().prop_map(Model::Accept),
        1 => (any::<i32>(), small_string()).prop_map(|(e, r)| Model::Refuse(Refuse::new(e, r))),
        1 => any::<u64>().prop_map(Model::Ack),
        1 => triggers().prop_map(Model::Triggers),
        1 => any::<u64>().prop_map(Model::Flush),
        1 => any::<u64>().prop_map(Model::Done),
        1 => (any::<i32>(), small_string()).prop_map(|(e, r)| Model::Close(Close::new(e, r))),
        3 => data(),
    ]
}

pub fn sample_frames() -> Vec<Model> {
    vec![
        Model::Hello(Hello {
            version: PROTOCOL_VERSION,
            sender: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
            pid: 4242,
            coid: 7,
            target: Target::Name("sensors".into()),
            max_buffers: 64,
            next_seq: 1000,
            triggers: Triggers::default(),
        }),
        Model::Accept(Accept {
            version: PROTOCOL_VERSION,
            receiver: u128::MAX,
            pid: u32::MAX,
            chid: i32::MIN,
            buffer_size: u64::MAX,
            expect_seq: 990,
        }),
        Model::Data {
            first_seq: 1000,
            redelivered: false,
            msgs: vec![b"one".to_vec(), Vec::new(), vec![0xaa; 300]],
        },
        Model::Ack(1003),
        Model::Refuse(Refuse::new(2, "no such name")),
        Model::Close(Close::new(0, "détaché")),
    ]
}
