//! Encoding: every function appends whole frames to a caller's `Vec<u8>`.

use core::fmt;

use serde::Serialize;

use crate::frame::{DATA_BODY_HEADER_LEN, DATA_REDELIVERED};
use crate::{
    Accept, Close, Frame, HEADER_LEN, Hello, Kind, MAX_REASON, Refuse, Triggers, WireError,
};

/// Bytes a `DATA` frame takes before its first message: `len`, kind,
/// `first_seq`, `count`, `flags`.
///
/// # Example
/// ```
/// use asyncmsg_wire::{DATA_HEADER_LEN, DataBuilder};
///
/// let mut buf = Vec::new();
/// let b = DataBuilder::begin(&mut buf, 0);
/// assert_eq!(b.encoded_len(), DATA_HEADER_LEN);
/// ```
pub const DATA_HEADER_LEN: usize = HEADER_LEN + DATA_BODY_HEADER_LEN;

/// Bytes each message of a `DATA` frame takes besides its payload: its
/// `u32` length.
///
/// # Example
/// ```
/// use asyncmsg_wire::{DATA_HEADER_LEN, MESSAGE_HEADER_LEN, data_encoded_len};
///
/// assert_eq!(data_encoded_len([10]), DATA_HEADER_LEN + MESSAGE_HEADER_LEN + 10);
/// ```
pub const MESSAGE_HEADER_LEN: usize = 4;

/// Bytes an `ACK` frame takes on the wire.
///
/// # Example
/// ```
/// use asyncmsg_wire::{ACK_ENCODED_LEN, encode_ack};
///
/// let mut buf = Vec::new();
/// encode_ack(1, &mut buf);
/// assert_eq!(buf.len(), ACK_ENCODED_LEN);
/// ```
pub const ACK_ENCODED_LEN: usize = HEADER_LEN + 8;

/// Appends a `HELLO` frame.
///
/// # Panics
/// If the target name is so long (about 4 GiB) that the frame's length does
/// not fit its 32-bit field.
///
/// # Example
/// ```
/// use asyncmsg_wire::{Hello, Target, PROTOCOL_VERSION, encode_hello};
///
/// let hello = Hello {
///     version: PROTOCOL_VERSION,
///     sender: 1,
///     pid: 2,
///     coid: 3,
///     target: Target::Chid(1),
///     max_buffers: 16,
///     next_seq: 0,
///     triggers: Default::default(),
/// };
/// let mut buf = Vec::new();
/// encode_hello(&hello, &mut buf);
/// assert_eq!(buf[4], 1); // the HELLO kind
/// ```
pub fn encode_hello(hello: &Hello, out: &mut Vec<u8>) {
    encode_control(Kind::Hello, hello, out);
}

/// Appends an `ACCEPT` frame.
///
/// # Example
/// ```
/// use asyncmsg_wire::{Accept, PROTOCOL_VERSION, encode_accept};
///
/// let accept = Accept {
///     version: PROTOCOL_VERSION,
///     receiver: 9,
///     pid: 8,
///     chid: 1,
///     buffer_size: 4096,
///     expect_seq: 0,
/// };
/// let mut buf = Vec::new();
/// encode_accept(&accept, &mut buf);
/// assert_eq!(buf.len(), accept.encoded_len());
/// ```
pub fn encode_accept(accept: &Accept, out: &mut Vec<u8>) {
    encode_control(Kind::Accept, accept, out);
}

/// Appends a `REFUSE` frame. A reason longer than [`MAX_REASON`] bytes is
/// cut to that length (at a character boundary).
///
/// # Example
/// ```
/// use asyncmsg_wire::{Decoder, Frame, MAX_REASON, Refuse, encode_refuse};
///
/// let mut buf = Vec::new();
/// encode_refuse(&Refuse::new(2, "x".repeat(5000)), &mut buf);
/// let mut dec = Decoder::default();
/// dec.feed(&buf);
/// let Some(Frame::Refuse(r)) = dec.next()? else { panic!() };
/// assert_eq!(r.reason.len(), MAX_REASON);
/// # Ok::<(), asyncmsg_wire::WireError>(())
/// ```
pub fn encode_refuse(refuse: &Refuse, out: &mut Vec<u8>) {
    let reason = cut_reason(&refuse.reason);
    encode_control(Kind::Refuse, &(refuse.errno, reason), out);
}

/// Appends a `CLOSE` frame. A reason longer than [`MAX_REASON`] bytes is cut
/// to that length (at a character boundary).
///
/// # Example
/// ```
/// use asyncmsg_wire::{Close, encode_close};
///
/// let mut buf = Vec::new();
/// encode_close(&Close::new(0, "detached"), &mut buf);
/// assert_eq!(buf.len(), Close::new(0, "detached").encoded_len());
/// ```
pub fn encode_close(close: &Close, out: &mut Vec<u8>) {
    let reason = cut_reason(&close.reason);
    encode_control(Kind::Close, &(close.errno, reason), out);
}

/// Appends a `TRIGGERS` frame: the connection's triggers from the next
/// message on.
///
/// # Example
/// ```
/// use asyncmsg_wire::{Decoder, Frame, Triggers, encode_triggers};
///
/// let t = Triggers { count: 8, time_ns: 0, interval_ns: 0 };
/// let mut buf = Vec::new();
/// encode_triggers(&t, &mut buf);
/// let mut dec = Decoder::default();
/// dec.feed(&buf);
/// assert_eq!(dec.next()?, Some(Frame::Triggers(t)));
/// # Ok::<(), asyncmsg_wire::WireError>(())
/// ```
pub fn encode_triggers(triggers: &Triggers, out: &mut Vec<u8>) {
    encode_control(Kind::Triggers, triggers, out);
}

/// Appends a `FLUSH` frame: trigger once every sequence below `upto` is in.
///
/// # Example
/// ```
/// use asyncmsg_wire::{ACK_ENCODED_LEN, Decoder, Frame, encode_flush};
///
/// let mut buf = Vec::new();
/// encode_flush(12, &mut buf);
/// assert_eq!(buf.len(), ACK_ENCODED_LEN);
/// let mut dec = Decoder::default();
/// dec.feed(&buf);
/// assert_eq!(dec.next()?, Some(Frame::Flush(12)));
/// # Ok::<(), asyncmsg_wire::WireError>(())
/// ```
pub fn encode_flush(upto: u64, out: &mut Vec<u8>) {
    encode_u64(Kind::Flush, upto, out);
}

/// Appends a `DONE` frame: every sequence below `done` was taken and let go
/// (what the sender's delivery callbacks wait for; an `ACK` says taken).
///
/// # Example
/// ```
/// use asyncmsg_wire::{Decoder, Frame, encode_done};
///
/// let mut buf = Vec::new();
/// encode_done(5, &mut buf);
/// let mut dec = Decoder::default();
/// dec.feed(&buf);
/// assert_eq!(dec.next()?, Some(Frame::Done(5)));
/// # Ok::<(), asyncmsg_wire::WireError>(())
/// ```
pub fn encode_done(done: u64, out: &mut Vec<u8>) {
    encode_u64(Kind::Done, done, out);
}

/// A frame whose body is one little-endian `u64`.
fn encode_u64(kind: Kind, v: u64, out: &mut Vec<u8>) {
    out.reserve(ACK_ENCODED_LEN);
    out.extend_from_slice(&9u32.to_le_bytes());
    out.push(kind.as_u8());
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends an `ACK` frame: every sequence below `taken` was taken.
///
/// # Example
/// ```
/// use asyncmsg_wire::encode_ack;
///
/// let mut buf = Vec::new();
/// encode_ack(0x0102, &mut buf);
/// assert_eq!(buf, [9, 0, 0, 0, 4, 2, 1, 0, 0, 0, 0, 0, 0]);
/// ```
pub fn encode_ack(taken: u64, out: &mut Vec<u8>) {
    out.reserve(ACK_ENCODED_LEN);
    out.extend_from_slice(&9u32.to_le_bytes());
    out.push(Kind::Ack.as_u8());
    out.extend_from_slice(&taken.to_le_bytes());
}

/// Bytes a `DATA` frame with messages of these lengths takes on the wire
/// (saturating at `usize::MAX`).
///
/// # Example
/// ```
/// use asyncmsg_wire::{DATA_HEADER_LEN, data_encoded_len};
///
/// assert_eq!(data_encoded_len([0, 3]), DATA_HEADER_LEN + 4 + 4 + 3);
/// ```
pub fn data_encoded_len<I: IntoIterator<Item = usize>>(message_lens: I) -> usize {
    message_lens.into_iter().fold(DATA_HEADER_LEN, |acc, len| {
        acc.saturating_add(MESSAGE_HEADER_LEN).saturating_add(len)
    })
}

impl Hello {
    /// Bytes [`encode_hello`] appends for this value.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{Hello, Target, PROTOCOL_VERSION, encode_hello};
    ///
    /// let hello = Hello {
    ///     version: PROTOCOL_VERSION,
    ///     sender: u128::MAX,
    ///     pid: 1,
    ///     coid: -1,
    ///     target: Target::Name("a/b".into()),
    ///     max_buffers: 1,
    ///     next_seq: u64::MAX,
    ///     triggers: Default::default(),
    /// };
    /// let mut buf = Vec::new();
    /// encode_hello(&hello, &mut buf);
    /// assert_eq!(hello.encoded_len(), buf.len());
    /// ```
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + body_len(self)
    }
}

impl Accept {
    /// Bytes [`encode_accept`] appends for this value.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{Accept, PROTOCOL_VERSION};
    ///
    /// let accept = Accept {
    ///     version: PROTOCOL_VERSION,
    ///     receiver: 0,
    ///     pid: 0,
    ///     chid: 0,
    ///     buffer_size: 0,
    ///     expect_seq: 0,
    /// };
    /// // Header, then one byte per small varint.
    /// assert_eq!(accept.encoded_len(), 5 + 6);
    /// ```
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + body_len(self)
    }
}

impl Refuse {
    /// Bytes [`encode_refuse`] appends for this value (after cutting the
    /// reason to [`MAX_REASON`]).
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::Refuse;
    ///
    /// // Header, errno varint, reason length varint, reason.
    /// assert_eq!(Refuse::new(1, "no").encoded_len(), 5 + 1 + 1 + 2);
    /// ```
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + body_len(&(self.errno, cut_reason(&self.reason)))
    }
}

impl Close {
    /// Bytes [`encode_close`] appends for this value (after cutting the
    /// reason to [`MAX_REASON`]).
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::Close;
    ///
    /// assert_eq!(Close::new(0, "").encoded_len(), 5 + 1 + 1);
    /// ```
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + body_len(&(self.errno, cut_reason(&self.reason)))
    }
}

impl Frame<'_> {
    /// Appends this frame. A decoded frame re-encodes to exactly the bytes
    /// it was decoded from (the decoder accepts only canonical encodings);
    /// a data batch is copied as it arrived.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{Decoder, Frame, encode_ack};
    ///
    /// let mut wire = Vec::new();
    /// encode_ack(5, &mut wire);
    /// let mut dec = Decoder::default();
    /// dec.feed(&wire);
    /// let frame = dec.next()?.unwrap();
    /// let mut again = Vec::new();
    /// frame.encode(&mut again);
    /// assert_eq!(again, wire);
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello(h) => encode_hello(h, out),
            Self::Accept(a) => encode_accept(a, out),
            Self::Refuse(r) => encode_refuse(r, out),
            Self::Ack(taken) => encode_ack(*taken, out),
            Self::Triggers(t) => encode_triggers(t, out),
            Self::Flush(upto) => encode_flush(*upto, out),
            Self::Done(n) => encode_done(*n, out),
            Self::Close(c) => encode_close(c, out),
            Self::Data(batch) => {
                let body = batch.as_bytes();
                out.reserve(HEADER_LEN + body.len());
                out.extend_from_slice(&frame_len_field(1 + body.len()).to_le_bytes());
                out.push(Kind::Data.as_u8());
                out.extend_from_slice(body);
            }
        }
    }

    /// Bytes [`encode`](Frame::encode) appends for this frame.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{ACK_ENCODED_LEN, Frame};
    ///
    /// assert_eq!(Frame::Ack(1).encoded_len(), ACK_ENCODED_LEN);
    /// ```
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Hello(h) => h.encoded_len(),
            Self::Accept(a) => a.encoded_len(),
            Self::Refuse(r) => r.encoded_len(),
            Self::Ack(_) | Self::Flush(_) | Self::Done(_) => ACK_ENCODED_LEN,
            Self::Triggers(t) => {
                let mut v = Vec::new();
                encode_triggers(t, &mut v);
                v.len()
            }
            Self::Close(c) => c.encoded_len(),
            Self::Data(batch) => HEADER_LEN + batch.as_bytes().len(),
        }
    }
}

/// Writes a `DATA` frame into a caller's buffer, one message at a time: the
/// header first, each message after it, then [`finish`](DataBuilder::finish)
/// patches `len` and `count`. The batch is one contiguous frame, so a
/// transport sends it with one write.
///
/// Dropping a builder without calling `finish` removes what it wrote, and
/// finishing one with no message writes nothing (a `DATA` frame has at least
/// one message).
///
/// # Example
/// ```
/// use asyncmsg_wire::{DataBuilder, data_encoded_len};
///
/// let mut buf = Vec::with_capacity(64 * 1024); // reused from batch to batch
/// let mut b = DataBuilder::begin(&mut buf, 100);
/// for msg in [&b"hello"[..], b"world"] {
///     b.push(msg)?;
/// }
/// assert_eq!(b.count(), 2);
/// let written = b.finish();
/// assert_eq!(written, data_encoded_len([5, 5]));
/// assert_eq!(buf.len(), written);
/// # Ok::<(), asyncmsg_wire::WireError>(())
/// ```
pub struct DataBuilder<'a> {
    out: &'a mut Vec<u8>,
    /// Where the frame starts in `out`.
    start: usize,
    first_seq: u64,
    count: u32,
    finished: bool,
}

impl<'a> DataBuilder<'a> {
    /// Appends a `DATA` header to `out` for a batch whose first message has
    /// sequence number `first_seq`.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{DATA_HEADER_LEN, DataBuilder};
    ///
    /// let mut buf = b"earlier frames".to_vec();
    /// let b = DataBuilder::begin(&mut buf, 7);
    /// assert_eq!(b.first_seq(), 7);
    /// assert!(b.is_empty());
    /// ```
    pub fn begin(out: &'a mut Vec<u8>, first_seq: u64) -> Self {
        let start = out.len();
        out.reserve(DATA_HEADER_LEN);
        out.extend_from_slice(&[0; 4]);
        out.push(Kind::Data.as_u8());
        out.extend_from_slice(&first_seq.to_le_bytes());
        out.extend_from_slice(&[0; 4]); // count
        out.push(0); // flags
        Self {
            out,
            start,
            first_seq,
            count: 0,
            finished: false,
        }
    }

    /// Appends one message.
    ///
    /// # Errors
    /// Nothing is appended and:
    /// * [`WireError::Oversize`] if the frame would outgrow its 32-bit `len`;
    /// * [`WireError::Malformed`] if the message's sequence number would be
    ///   `u64::MAX` or beyond (the sequence after the batch must fit a `u64`).
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{DataBuilder, WireError};
    ///
    /// let mut buf = Vec::new();
    /// let mut b = DataBuilder::begin(&mut buf, u64::MAX - 1);
    /// b.push(b"last possible")?;
    /// assert!(matches!(b.push(b"one too many"), Err(WireError::Malformed(_))));
    /// assert_eq!(b.count(), 1);
    /// # Ok::<(), WireError>(())
    /// ```
    pub fn push(&mut self, msg: &[u8]) -> Result<(), WireError> {
        self.push_parts(&[msg])
    }

    /// Appends one message made of several parts, concatenated (for a
    /// message given as an I/O vector).
    ///
    /// # Errors
    /// As [`push`](DataBuilder::push).
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{DataBuilder, Decoder, Frame};
    ///
    /// let mut buf = Vec::new();
    /// let mut b = DataBuilder::begin(&mut buf, 0);
    /// b.push_parts(&[b"head:", b"", b"tail"])?;
    /// b.finish();
    /// let mut dec = Decoder::default();
    /// dec.feed(&buf);
    /// let Some(Frame::Data(batch)) = dec.next()? else { panic!() };
    /// assert_eq!(batch.messages().next(), Some(&b"head:tail"[..]));
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    pub fn push_parts(&mut self, parts: &[&[u8]]) -> Result<(), WireError> {
        let msg_len = parts
            .iter()
            .try_fold(0usize, |acc, p| acc.checked_add(p.len()));
        let frame_len = msg_len.and_then(|m| {
            (self.out.len() - self.start - 4)
                .checked_add(MESSAGE_HEADER_LEN)?
                .checked_add(m)
        });
        let msg_len = match (msg_len, frame_len) {
            (Some(m), Some(f)) if f <= MAX_LEN_FIELD => m,
            _ => {
                return Err(WireError::Oversize {
                    len: frame_len.map_or(u64::MAX, |f| f as u64),
                    max: MAX_LEN_FIELD as u64,
                });
            }
        };
        if self
            .first_seq
            .checked_add(u64::from(self.count) + 1)
            .is_none()
        {
            return Err(WireError::Malformed("sequence numbers overflow u64"));
        }
        self.out.reserve(MESSAGE_HEADER_LEN + msg_len);
        // Fits: the frame's length, which includes it, fits a u32.
        self.out.extend_from_slice(&(msg_len as u32).to_le_bytes());
        for part in parts {
            self.out.extend_from_slice(part);
        }
        self.count += 1;
        Ok(())
    }

    /// Marks the batch as possibly delivered before: a resend of messages
    /// an earlier instance of the receiving node may have taken. The receiver
    /// sees it in [`DataBatch::redelivered`](crate::DataBatch::redelivered).
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::DataBuilder;
    ///
    /// let mut buf = Vec::new();
    /// let mut b = DataBuilder::begin(&mut buf, 0);
    /// b.set_redelivered(true);
    /// assert!(b.redelivered());
    /// ```
    pub fn set_redelivered(&mut self, redelivered: bool) {
        let flags = &mut self.out[self.start + FLAGS_AT];
        if redelivered {
            *flags |= DATA_REDELIVERED;
        } else {
            *flags &= !DATA_REDELIVERED;
        }
    }

    /// Whether the batch is marked as possibly delivered before.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::DataBuilder;
    ///
    /// let mut buf = Vec::new();
    /// assert!(!DataBuilder::begin(&mut buf, 0).redelivered());
    /// ```
    #[must_use]
    pub fn redelivered(&self) -> bool {
        self.out[self.start + FLAGS_AT] & DATA_REDELIVERED != 0
    }

    /// Sequence number of the batch's first message.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::DataBuilder;
    ///
    /// let mut buf = Vec::new();
    /// assert_eq!(DataBuilder::begin(&mut buf, 3).first_seq(), 3);
    /// ```
    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Messages pushed so far.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::DataBuilder;
    ///
    /// let mut buf = Vec::new();
    /// let mut b = DataBuilder::begin(&mut buf, 0);
    /// b.push(b"x")?;
    /// assert_eq!(b.count(), 1);
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[must_use]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether no message was pushed yet.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::DataBuilder;
    ///
    /// let mut buf = Vec::new();
    /// assert!(DataBuilder::begin(&mut buf, 0).is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the frame takes so far, header included: what `finish` returns
    /// if called now with at least one message. Compare with
    /// [`fits`](DataBuilder::fits) to cut batches at a peer's limit.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{DATA_HEADER_LEN, DataBuilder};
    ///
    /// let mut buf = Vec::new();
    /// let mut b = DataBuilder::begin(&mut buf, 0);
    /// b.push(b"abc")?;
    /// assert_eq!(b.encoded_len(), DATA_HEADER_LEN + 4 + 3);
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.out.len() - self.start
    }

    /// Whether a message of `msg_len` bytes still fits a peer whose decoder
    /// takes frames of up to `max_frame` (its `len`: kind and body).
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::DataBuilder;
    ///
    /// let mut buf = Vec::new();
    /// let mut b = DataBuilder::begin(&mut buf, 0);
    /// // len = kind (1) + first_seq, count, flags (13) + msg length (4) + msg.
    /// assert!(b.fits(100, 118));
    /// assert!(!b.fits(101, 118));
    /// ```
    #[must_use]
    pub fn fits(&self, msg_len: usize, max_frame: usize) -> bool {
        (self.encoded_len() - 4)
            .checked_add(MESSAGE_HEADER_LEN)
            .and_then(|n| n.checked_add(msg_len))
            .is_some_and(|n| n <= max_frame.min(MAX_LEN_FIELD))
    }

    /// Patches `len` and `count` and returns the frame's size in bytes; with
    /// no message pushed, removes the header and returns 0.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::DataBuilder;
    ///
    /// let mut buf = Vec::new();
    /// assert_eq!(DataBuilder::begin(&mut buf, 0).finish(), 0);
    /// assert!(buf.is_empty());
    /// let mut b = DataBuilder::begin(&mut buf, 0);
    /// b.push(b"")?;
    /// assert_eq!(b.finish(), buf.len());
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    pub fn finish(mut self) -> usize {
        self.finished = true;
        if self.count == 0 {
            self.out.truncate(self.start);
            return 0;
        }
        let size = self.out.len() - self.start;
        let s = self.start;
        self.out[s..s + 4].copy_from_slice(&frame_len_field(size - 4).to_le_bytes());
        self.out[s + COUNT_AT..s + COUNT_AT + 4].copy_from_slice(&self.count.to_le_bytes());
        size
    }
}

impl Drop for DataBuilder<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

impl fmt::Debug for DataBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataBuilder")
            .field("first_seq", &self.first_seq)
            .field("count", &self.count)
            .field("encoded_len", &self.encoded_len())
            .finish()
    }
}

/// Where `count` and `flags` are, from a `DATA` frame's start.
const COUNT_AT: usize = HEADER_LEN + 8;
const FLAGS_AT: usize = COUNT_AT + 4;
const _: () = assert!(FLAGS_AT + 1 == DATA_HEADER_LEN);

/// The largest value of a frame's `len` field.
const MAX_LEN_FIELD: usize = u32::MAX as usize;

/// `len` as written; a frame this crate builds always fits.
fn frame_len_field(len: usize) -> u32 {
    u32::try_from(len).expect("frame length exceeds the 32-bit len field")
}

/// Cuts a reason to at most `MAX_REASON` bytes, at a character boundary.
fn cut_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON {
        return reason;
    }
    let mut end = MAX_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Appends `[len][kind][postcard body]`.
fn encode_control<T: Serialize + ?Sized>(kind: Kind, value: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind.as_u8());
    // Serialising these types into a growing buffer cannot fail: no
    // sequence of unknown length, no custom serialisation.
    postcard::to_extend(value, Append(out)).expect("postcard serialises wire types");
    let len = frame_len_field(out.len() - start - 4);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Postcard body length of a value.
fn body_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::to_extend(value, Count(0)).map_or(0, |c| c.0)
}

/// Whether `bytes` is exactly the postcard encoding of `value` (the
/// decoder's canonical-encoding check; no allocation).
pub(crate) fn is_canonical<T: Serialize + ?Sized>(value: &T, bytes: &[u8]) -> bool {
    postcard::to_extend(
        value,
        Compare {
            expected: bytes,
            pos: 0,
            same: true,
        },
    )
    .is_ok_and(|c| c.same && c.pos == bytes.len())
}

/// `Extend<u8>` onto a borrowed `Vec<u8>`.
struct Append<'v>(&'v mut Vec<u8>);

impl Extend<u8> for Append<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// Counts bytes.
struct Count(usize);

impl Extend<u8> for Count {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0 += iter.into_iter().count();
    }
}

/// Compares bytes with an expected encoding.
struct Compare<'e> {
    expected: &'e [u8],
    pos: usize,
    same: bool,
}

impl Extend<u8> for Compare<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        for b in iter {
            self.same &= self.expected.get(self.pos) == Some(&b);
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;

    #[test]
    fn reasons_are_cut_at_char_boundaries() {
        assert_eq!(cut_reason("short"), "short");
        let s = format!("{}€", "a".repeat(MAX_REASON - 1)); // '€' is 3 bytes
        assert_eq!(cut_reason(&s), "a".repeat(MAX_REASON - 1));
        let s = "€".repeat(MAX_REASON);
        assert_eq!(cut_reason(&s).len(), MAX_REASON - MAX_REASON % 3);
    }

    #[test]
    fn canonical_check_compares_every_byte_and_the_length() {
        let mut body = Vec::new();
        postcard::to_extend(&Target::Chid(300), Append(&mut body)).unwrap();
        assert!(is_canonical(&Target::Chid(300), &body));
        assert!(!is_canonical(&Target::Chid(301), &body));
        assert!(!is_canonical(&Target::Chid(300), &body[..body.len() - 1]));
        body.push(0);
        assert!(!is_canonical(&Target::Chid(300), &body));
    }

    #[test]
    fn body_len_counts_the_postcard_bytes() {
        assert_eq!(body_len(&Target::Chid(0)), 2);
        assert_eq!(body_len(&Target::Name("abc".into())), 5);
    }
}
