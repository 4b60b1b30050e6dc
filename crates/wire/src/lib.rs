//! # asyncmsg-wire
//!
//! The frames asyncmsg nodes exchange over QUIC. Each asyncmsg connection
//! between two nodes is one bidirectional stream: the connector opens it with
//! a `HELLO` and then sends `DATA` batches; the receiver answers with `ACCEPT`
//! or `REFUSE`, then cumulative `ACK`s; either side may end with `CLOSE`.
//! This crate only encodes and decodes; which frame may come when is the
//! transport's business.
//!
//! ## Frame layout
//!
//! Every frame is `[len: u32][kind: u8][body: len - 1 bytes]`, all integers
//! little-endian. `len` counts the kind byte and the body: it is at least 1
//! and at most the decoder's `max_frame` ([`DEFAULT_MAX_FRAME`]: 64 MiB).
//!
//! | kind | byte | body |
//! |---|---|---|
//! | `HELLO` | 1 | postcard [`Hello`]: `version` (first, always), `sender`, `pid`, `coid`, `target`, `max_buffers`, `next_seq`, `triggers` |
//! | `ACCEPT` | 2 | postcard [`Accept`]: `version` (first, always), `receiver`, `pid`, `chid`, `buffer_size`, `expect_seq` |
//! | `REFUSE` | 3 | postcard [`Refuse`]: `errno`, `reason` (at most [`MAX_REASON`] bytes) |
//! | `ACK` | 4 | `taken: u64`: every sequence below it was taken |
//! | `DATA` | 5 | `first_seq: u64`, `count: u32` (≥ 1), `flags: u8` (bit 0: redelivered), then `count` × (`len: u32`, `len` bytes) |
//! | `CLOSE` | 6 | postcard [`Close`]: `errno`, `reason` (at most [`MAX_REASON`] bytes) |
//! | `TRIGGERS` | 7 | postcard [`Triggers`]: `count`, `time_ns`, `interval_ns` (from the next message on) |
//! | `FLUSH` | 8 | `upto: u64`: trigger once every sequence below it is in |
//! | `DONE` | 9 | `done: u64`: every sequence below it was taken and let go |
//!
//! A decoder rejects, with a [`WireError`] that ends the link (SPEC B21):
//! a `len` of 0 or above `max_frame` (as soon as the 4-byte prefix is there),
//! an unknown kind, a `HELLO` or `ACCEPT` whose version is not
//! [`PROTOCOL_VERSION`], a postcard body that does not decode, leaves bytes
//! over or is not in postcard's canonical (shortest) encoding, a reason
//! longer than [`MAX_REASON`], an `ACK` body that is not 8 bytes, a `DATA`
//! frame whose messages do not exactly fill it, with no message, with a flag
//! this version does not know, or whose sequence numbers would pass
//! `u64::MAX`, and a stream that ends inside a frame. Because only canonical
//! encodings are accepted, every frame a decoder returns re-encodes
//! ([`Frame::encode`]) to the very bytes it came from.
//!
//! Encoders append whole frames to a caller's `Vec<u8>`, so one buffer can
//! carry a trigger's frames to a single stream write; a data batch is built
//! in place with [`DataBuilder`]. The [`Decoder`] takes the stream in any
//! chunks ([`Decoder::feed`], or [`Decoder::spare`] and [`Decoder::commit`]
//! to read straight into its buffer) and hands out data batches whose
//! messages are slices of that buffer.
//!
//! ## Example
//! ```
//! use asyncmsg_wire::*;
//!
//! // The connector's side: a HELLO, then one DATA frame per trigger.
//! let mut out = Vec::new();
//! encode_hello(
//!     &Hello {
//!         version: PROTOCOL_VERSION,
//!         sender: 0xfeed,
//!         pid: 1000,
//!         coid: 3,
//!         target: Target::Name("sensors".into()),
//!         max_buffers: 64,
//!         next_seq: 0,
//!         triggers: Triggers::default(),
//!     },
//!     &mut out,
//! );
//! let mut batch = DataBuilder::begin(&mut out, 0);
//! for reading in [&b"21.5C"[..], b"21.7C", b"21.6C"] {
//!     batch.push(reading)?;
//! }
//! batch.finish();
//! // ...one write_all(&out) on the stream.
//!
//! // The receiver's side, bytes arriving in any chunks.
//! let mut dec = Decoder::default();
//! let mut taken = 0;
//! for chunk in out.chunks(7) {
//!     dec.feed(chunk);
//!     while let Some(frame) = dec.next()? {
//!         match frame {
//!             Frame::Hello(h) => assert_eq!(h.target, Target::Name("sensors".into())),
//!             Frame::Data(b) => {
//!                 assert_eq!(b.messages().len(), 3);
//!                 taken = b.end_seq();
//!             }
//!             other => panic!("unexpected {other:?}"),
//!         }
//!     }
//! }
//! dec.finish()?;
//! let mut ack = Vec::new();
//! encode_ack(taken, &mut ack);
//! assert_eq!(ack.len(), ACK_ENCODED_LEN);
//! # Ok::<(), WireError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod decode;
mod encode;
mod error;
mod frame;

pub use decode::{DEFAULT_MAX_FRAME, Decoder};
pub use encode::{
    ACK_ENCODED_LEN, DATA_HEADER_LEN, DataBuilder, MESSAGE_HEADER_LEN, data_encoded_len,
    encode_accept, encode_ack, encode_close, encode_done, encode_flush, encode_hello,
    encode_refuse, encode_triggers,
};
pub use error::WireError;
pub use frame::{Accept, Close, DataBatch, Frame, Hello, Kind, Messages, Refuse, Target, Triggers};

/// The protocol version this crate speaks, carried first in `HELLO` and
/// `ACCEPT`.
///
/// # Example
/// ```
/// assert_eq!(asyncmsg_wire::PROTOCOL_VERSION, 1);
/// ```
pub const PROTOCOL_VERSION: u16 = 1;

/// Bytes before every frame's body: `len: u32` and `kind: u8`.
///
/// # Example
/// ```
/// use asyncmsg_wire::{ACK_ENCODED_LEN, HEADER_LEN};
///
/// assert_eq!(ACK_ENCODED_LEN, HEADER_LEN + 8);
/// ```
pub const HEADER_LEN: usize = 5;

/// The longest `reason` of a `REFUSE` or `CLOSE`, in bytes: 1 KiB. Encoders
/// cut longer reasons; decoders reject them.
///
/// # Example
/// ```
/// use asyncmsg_wire::{Close, MAX_REASON};
///
/// let long = Close::new(0, "é".repeat(MAX_REASON)); // 2 bytes per char
/// assert!(long.encoded_len() < long.reason.len());
/// ```
pub const MAX_REASON: usize = 1024;
