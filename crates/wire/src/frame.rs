//! The frames: kinds, control frame bodies and decoded frames.

use core::fmt;
use core::iter::FusedIterator;
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::WireError;

/// The kind byte that follows a frame's `len`.
///
/// Zero is never a kind, so a zeroed buffer does not decode.
///
/// # Example
/// ```
/// use asyncmsg_wire::{Kind, WireError};
///
/// assert_eq!(Kind::try_from(5), Ok(Kind::Data));
/// assert_eq!(Kind::Data.as_u8(), 5);
/// assert_eq!(Kind::try_from(0), Err(WireError::UnknownKind(0)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// The connector's first frame: who it is and what it wants to reach.
    Hello = 1,
    /// The receiver takes the connection.
    Accept = 2,
    /// The receiver does not take the connection.
    Refuse = 3,
    /// Cumulative acknowledgement: every sequence below it was taken.
    Ack = 4,
    /// A batch of messages with consecutive sequence numbers.
    Data = 5,
    /// Graceful end of the connection.
    Close = 6,
    /// The connection's triggers change, from the next message on.
    Triggers = 7,
    /// The sender flushed: trigger once every sequence below it is in.
    Flush = 8,
    /// Cumulative: every sequence below it was taken and let go.
    Done = 9,
}

impl Kind {
    /// The kind a byte stands for, if any.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::Kind;
    ///
    /// assert_eq!(Kind::from_u8(1), Some(Kind::Hello));
    /// assert_eq!(Kind::from_u8(10), None);
    /// ```
    #[must_use]
    pub const fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Hello,
            2 => Self::Accept,
            3 => Self::Refuse,
            4 => Self::Ack,
            5 => Self::Data,
            6 => Self::Close,
            7 => Self::Triggers,
            8 => Self::Flush,
            9 => Self::Done,
            _ => return None,
        })
    }

    /// The byte written on the wire.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::Kind;
    ///
    /// assert_eq!(Kind::Ack.as_u8(), 4);
    /// ```
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for Kind {
    type Error = WireError;

    fn try_from(b: u8) -> Result<Self, WireError> {
        Self::from_u8(b).ok_or(WireError::UnknownKind(b))
    }
}

/// What a connector wants to reach on the receiving node.
///
/// # Example
/// ```
/// use asyncmsg_wire::Target;
///
/// let by_name = Target::Name("sensors".into());
/// let by_chid = Target::Chid(3);
/// assert_ne!(by_name, by_chid);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// A channel published under this name.
    Name(String),
    /// A channel by its id.
    Chid(i32),
}

/// A connection's triggers (QNX `trigger_num_msg`, `trigger_time`): the
/// receiving node runs them, where it knows what its getters took.
///
/// # Example
/// ```
/// use asyncmsg_wire::Triggers;
///
/// let t = Triggers { count: 64, time_ns: 2_000_000, interval_ns: 0 };
/// assert_eq!(t.count, 64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Triggers {
    /// Trigger when this many messages wait (0: no count trigger).
    pub count: u32,
    /// Trigger this long after the first waiting message (0: none).
    pub time_ns: u64,
    /// And then every this long while messages wait (0: once).
    pub interval_ns: u64,
}

/// Body of a `HELLO` frame: the connector's first frame on a stream.
///
/// The `version` field is encoded first, and stays first in every future
/// version, so that a decoder can tell an unsupported version from garbage.
///
/// # Example
/// ```
/// use asyncmsg_wire::{Hello, Target, PROTOCOL_VERSION};
///
/// let hello = Hello {
///     version: PROTOCOL_VERSION,
///     sender: 0x1234_5678_9abc_def0,
///     pid: 4242,
///     coid: 7,
///     target: Target::Name("sensors".into()),
///     max_buffers: 64,
///     next_seq: 0,
///     triggers: Default::default(),
/// };
/// let mut buf = Vec::new();
/// asyncmsg_wire::encode_hello(&hello, &mut buf);
/// assert_eq!(buf.len(), hello.encoded_len());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the connector speaks: [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
    pub version: u16,
    /// Random id of the sending node instance.
    pub sender: u128,
    /// The sending process's id.
    pub pid: u32,
    /// The connection's id in the sending process.
    pub coid: i32,
    /// The channel the connection is for.
    pub target: Target,
    /// How many messages the connection may hold unacknowledged.
    pub max_buffers: u32,
    /// Sequence number of the oldest message the sender still holds (the
    /// first it sends on this stream).
    pub next_seq: u64,
    /// The connection's triggers.
    pub triggers: Triggers,
}

/// Body of an `ACCEPT` frame: the receiver takes the connection.
///
/// Like [`Hello`], the `version` field is encoded first.
///
/// # Example
/// ```
/// use asyncmsg_wire::{Accept, PROTOCOL_VERSION};
///
/// let accept = Accept {
///     version: PROTOCOL_VERSION,
///     receiver: 99,
///     pid: 100,
///     chid: 1,
///     buffer_size: 2048,
///     expect_seq: 0,
/// };
/// let mut buf = Vec::new();
/// asyncmsg_wire::encode_accept(&accept, &mut buf);
/// assert_eq!(buf.len(), accept.encoded_len());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Accept {
    /// The protocol version the receiver speaks: [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
    pub version: u16,
    /// Random id of the receiving node instance.
    pub receiver: u128,
    /// The receiving process's id.
    pub pid: u32,
    /// The channel the connection is attached to.
    pub chid: i32,
    /// The channel's receive buffer size: the largest message it takes.
    pub buffer_size: u64,
    /// Next sequence the receiver takes from this (sender, coid); lower ones
    /// it already took and drops if they come again.
    pub expect_seq: u64,
}

/// Body of a `REFUSE` frame: the receiver does not take the connection.
///
/// The reason is at most [`MAX_REASON`](crate::MAX_REASON) bytes on the wire.
///
/// # Example
/// ```
/// use asyncmsg_wire::Refuse;
///
/// let refuse = Refuse::new(2, "no channel named sensors");
/// assert_eq!(refuse.errno, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Refuse {
    /// The errno the connector reports (QNX numbering).
    pub errno: i32,
    /// A human-readable explanation.
    pub reason: String,
}

impl Refuse {
    /// A refusal with this errno and reason.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::Refuse;
    ///
    /// assert_eq!(Refuse::new(13, "denied").reason, "denied");
    /// ```
    pub fn new(errno: i32, reason: impl Into<String>) -> Self {
        Self {
            errno,
            reason: reason.into(),
        }
    }
}

/// Body of a `CLOSE` frame: graceful end of a connection (detached, channel
/// destroyed).
///
/// The reason is at most [`MAX_REASON`](crate::MAX_REASON) bytes on the wire.
///
/// # Example
/// ```
/// use asyncmsg_wire::Close;
///
/// let close = Close::new(0, "detached");
/// assert_eq!(close.reason, "detached");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Close {
    /// Why, as an errno (0: an orderly detach).
    pub errno: i32,
    /// A human-readable explanation.
    pub reason: String,
}

impl Close {
    /// A close with this errno and reason.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::Close;
    ///
    /// assert_eq!(Close::new(0, "bye").errno, 0);
    /// ```
    pub fn new(errno: i32, reason: impl Into<String>) -> Self {
        Self {
            errno,
            reason: reason.into(),
        }
    }
}

/// One decoded frame. A data batch borrows the decoder's buffer.
///
/// # Example
/// ```
/// use asyncmsg_wire::{Decoder, Frame, encode_ack};
///
/// let mut buf = Vec::new();
/// encode_ack(17, &mut buf);
/// let mut dec = Decoder::default();
/// dec.feed(&buf);
/// match dec.next()? {
///     Some(Frame::Ack(taken)) => assert_eq!(taken, 17),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), asyncmsg_wire::WireError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The connector's first frame.
    Hello(Hello),
    /// The receiver takes the connection.
    Accept(Accept),
    /// The receiver does not take the connection.
    Refuse(Refuse),
    /// Every sequence below this one was taken by the receiver.
    Ack(u64),
    /// A batch of messages.
    Data(DataBatch<'a>),
    /// Graceful end of the connection.
    Close(Close),
    /// New triggers, from the next message on.
    Triggers(Triggers),
    /// Trigger once every sequence below this one is in.
    Flush(u64),
    /// Every sequence below this one was taken and let go.
    Done(u64),
}

impl Frame<'_> {
    /// The same frame, owning everything (a data batch's body is copied), so
    /// that it outlives the decoder's next call.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{Decoder, Frame, encode_ack};
    ///
    /// let mut wire = Vec::new();
    /// encode_ack(1, &mut wire);
    /// let mut dec = Decoder::default();
    /// dec.feed(&wire);
    /// let first: Option<Frame<'static>> = dec.next()?.map(Frame::into_owned);
    /// assert_eq!(dec.next()?, None);
    /// assert_eq!(first, Some(Frame::Ack(1)));
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[must_use]
    pub fn into_owned(self) -> Frame<'static> {
        match self {
            Self::Hello(h) => Frame::Hello(h),
            Self::Accept(a) => Frame::Accept(a),
            Self::Refuse(r) => Frame::Refuse(r),
            Self::Ack(t) => Frame::Ack(t),
            Self::Data(b) => Frame::Data(b.into_owned()),
            Self::Close(c) => Frame::Close(c),
            Self::Triggers(t) => Frame::Triggers(t),
            Self::Flush(upto) => Frame::Flush(upto),
            Self::Done(n) => Frame::Done(n),
        }
    }

    /// The frame's kind.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{Frame, Kind};
    ///
    /// assert_eq!(Frame::Ack(3).kind(), Kind::Ack);
    /// ```
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Self::Hello(_) => Kind::Hello,
            Self::Accept(_) => Kind::Accept,
            Self::Refuse(_) => Kind::Refuse,
            Self::Ack(_) => Kind::Ack,
            Self::Triggers(_) => Kind::Triggers,
            Self::Flush(_) => Kind::Flush,
            Self::Done(_) => Kind::Done,
            Self::Data(_) => Kind::Data,
            Self::Close(_) => Kind::Close,
        }
    }
}

/// A decoded `DATA` frame: `count` messages numbered from `first_seq`.
///
/// A batch from [`Decoder::next`](crate::Decoder::next) borrows the decoder's
/// buffer: its messages are slices of it (no copy);
/// [`into_owned`](DataBatch::into_owned) copies the frame out. A decoded batch
/// always has at least one message, and its sequence numbers do not
/// overflow: `first_seq + count` fits in a `u64`.
///
/// # Example
/// ```
/// use asyncmsg_wire::{DataBuilder, Decoder, Frame};
///
/// let mut buf = Vec::new();
/// let mut b = DataBuilder::begin(&mut buf, 10);
/// b.push(b"one")?;
/// b.push(b"")?;
/// b.finish();
///
/// let mut dec = Decoder::default();
/// dec.feed(&buf);
/// let Some(Frame::Data(batch)) = dec.next()? else { panic!() };
/// assert_eq!((batch.first_seq(), batch.count(), batch.end_seq()), (10, 2, 12));
/// assert!(!batch.redelivered());
/// let msgs: Vec<&[u8]> = batch.messages().collect();
/// assert_eq!(msgs, [&b"one"[..], &b""[..]]);
/// # Ok::<(), asyncmsg_wire::WireError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DataBatch<'a> {
    first_seq: u64,
    count: u32,
    flags: u8,
    /// The whole body: header, then the length-prefixed messages.
    body: Cow<'a, [u8]>,
}

impl<'a> DataBatch<'a> {
    /// Wraps a body the decoder has validated.
    pub(crate) fn new(first_seq: u64, count: u32, flags: u8, body: &'a [u8]) -> Self {
        Self {
            first_seq,
            count,
            flags,
            body: Cow::Borrowed(body),
        }
    }

    /// Sequence number of the first message.
    ///
    /// # Example
    /// ```
    /// # use asyncmsg_wire::{DataBuilder, Decoder, Frame};
    /// # let mut buf = Vec::new();
    /// # let mut b = DataBuilder::begin(&mut buf, 5);
    /// # b.push(b"x")?;
    /// # b.finish();
    /// # let mut dec = Decoder::default();
    /// # dec.feed(&buf);
    /// let Some(Frame::Data(batch)) = dec.next()? else { panic!() };
    /// assert_eq!(batch.first_seq(), 5);
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Number of messages (at least 1).
    ///
    /// # Example
    /// ```
    /// # use asyncmsg_wire::{DataBuilder, Decoder, Frame};
    /// # let mut buf = Vec::new();
    /// # let mut b = DataBuilder::begin(&mut buf, 5);
    /// # b.push(b"x")?;
    /// # b.push(b"y")?;
    /// # b.finish();
    /// # let mut dec = Decoder::default();
    /// # dec.feed(&buf);
    /// let Some(Frame::Data(batch)) = dec.next()? else { panic!() };
    /// assert_eq!(batch.count(), 2);
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[must_use]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The sequence after the last message: `first_seq + count` (never
    /// overflows). A receiver that takes the whole batch acknowledges this.
    ///
    /// # Example
    /// ```
    /// # use asyncmsg_wire::{DataBuilder, Decoder, Frame};
    /// # let mut buf = Vec::new();
    /// # let mut b = DataBuilder::begin(&mut buf, 5);
    /// # b.push(b"x")?;
    /// # b.push(b"y")?;
    /// # b.finish();
    /// # let mut dec = Decoder::default();
    /// # dec.feed(&buf);
    /// let Some(Frame::Data(batch)) = dec.next()? else { panic!() };
    /// assert_eq!(batch.end_seq(), 7);
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[must_use]
    pub fn end_seq(&self) -> u64 {
        // The decoder checked that this does not overflow.
        self.first_seq.saturating_add(u64::from(self.count))
    }

    /// Whether the sender marked the batch as possibly delivered before (a
    /// resend after the receiving node restarted), see
    /// [`DataBuilder::set_redelivered`](crate::DataBuilder::set_redelivered).
    ///
    /// # Example
    /// ```
    /// # use asyncmsg_wire::{DataBuilder, Decoder, Frame};
    /// let mut buf = Vec::new();
    /// let mut b = DataBuilder::begin(&mut buf, 5);
    /// b.set_redelivered(true);
    /// b.push(b"again")?;
    /// b.finish();
    /// # let mut dec = Decoder::default();
    /// # dec.feed(&buf);
    /// let Some(Frame::Data(batch)) = dec.next()? else { panic!() };
    /// assert!(batch.redelivered());
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[must_use]
    pub fn redelivered(&self) -> bool {
        self.flags & DATA_REDELIVERED != 0
    }

    /// The messages, in sequence order, as slices of the frame.
    ///
    /// # Example
    /// ```
    /// # use asyncmsg_wire::{DataBuilder, Decoder, Frame};
    /// # let mut buf = Vec::new();
    /// # let mut b = DataBuilder::begin(&mut buf, 5);
    /// # b.push(b"x")?;
    /// # b.push(b"yz")?;
    /// # b.finish();
    /// # let mut dec = Decoder::default();
    /// # dec.feed(&buf);
    /// let Some(Frame::Data(batch)) = dec.next()? else { panic!() };
    /// let lens: Vec<usize> = batch.messages().map(<[u8]>::len).collect();
    /// assert_eq!(lens, [1, 2]);
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[must_use]
    pub fn messages(&self) -> Messages<'_> {
        Messages {
            rest: self.body.get(DATA_BODY_HEADER_LEN..).unwrap_or_default(),
            left: self.count,
        }
    }

    /// The messages with their sequence numbers.
    ///
    /// # Example
    /// ```
    /// # use asyncmsg_wire::{DataBuilder, Decoder, Frame};
    /// # let mut buf = Vec::new();
    /// # let mut b = DataBuilder::begin(&mut buf, 5);
    /// # b.push(b"x")?;
    /// # b.push(b"yz")?;
    /// # b.finish();
    /// # let mut dec = Decoder::default();
    /// # dec.feed(&buf);
    /// let Some(Frame::Data(batch)) = dec.next()? else { panic!() };
    /// let seqs: Vec<u64> = batch.with_seqs().map(|(seq, _)| seq).collect();
    /// assert_eq!(seqs, [5, 6]);
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    pub fn with_seqs(&self) -> impl ExactSizeIterator<Item = (u64, &[u8])> + '_ {
        let first = self.first_seq;
        // `first_seq + count` does not overflow, so neither does this.
        self.messages()
            .enumerate()
            .map(move |(i, msg)| (first.wrapping_add(i as u64), msg))
    }

    /// The frame's body as it arrived: the 13-byte header (`first_seq`,
    /// `count`, `flags`), then each message's `u32` length and bytes. Every
    /// message slice lies inside it.
    ///
    /// # Example
    /// ```
    /// # use asyncmsg_wire::{DataBuilder, Decoder, Frame};
    /// # let mut buf = Vec::new();
    /// # let mut b = DataBuilder::begin(&mut buf, 5);
    /// # b.push(b"xyz")?;
    /// # b.finish();
    /// # let mut dec = Decoder::default();
    /// # dec.feed(&buf);
    /// let Some(Frame::Data(batch)) = dec.next()? else { panic!() };
    /// assert_eq!(batch.as_bytes().len(), 13 + 4 + 3);
    /// assert!(batch.as_bytes().ends_with(b"xyz"));
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Whether the batch borrows the decoder's buffer (rather than owning a
    /// copy).
    ///
    /// # Example
    /// ```
    /// # use asyncmsg_wire::{DataBuilder, Decoder, Frame};
    /// # let mut buf = Vec::new();
    /// # let mut b = DataBuilder::begin(&mut buf, 5);
    /// # b.push(b"xyz")?;
    /// # b.finish();
    /// # let mut dec = Decoder::default();
    /// # dec.feed(&buf);
    /// let Some(Frame::Data(batch)) = dec.next()? else { panic!() };
    /// assert!(batch.is_borrowed());
    /// assert!(!batch.into_owned().is_borrowed());
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[must_use]
    pub fn is_borrowed(&self) -> bool {
        matches!(self.body, Cow::Borrowed(_))
    }

    /// The same batch, owning a copy of the frame's body.
    ///
    /// # Example
    /// ```
    /// # use asyncmsg_wire::{DataBuilder, DataBatch, Decoder, Frame};
    /// # let mut buf = Vec::new();
    /// # let mut b = DataBuilder::begin(&mut buf, 5);
    /// # b.push(b"xyz")?;
    /// # b.finish();
    /// let mut dec = Decoder::default();
    /// dec.feed(&buf);
    /// let owned: DataBatch<'static> = match dec.next()? {
    ///     Some(Frame::Data(batch)) => batch.into_owned(),
    ///     _ => panic!(),
    /// };
    /// dec.feed(&buf); // the decoder is free again
    /// assert_eq!(owned.messages().next(), Some(&b"xyz"[..]));
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[must_use]
    pub fn into_owned(self) -> DataBatch<'static> {
        DataBatch {
            first_seq: self.first_seq,
            count: self.count,
            flags: self.flags,
            body: Cow::Owned(self.body.into_owned()),
        }
    }
}

impl fmt::Debug for DataBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataBatch")
            .field("first_seq", &self.first_seq)
            .field("count", &self.count)
            .field("redelivered", &self.redelivered())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl<'b> IntoIterator for &'b DataBatch<'_> {
    type Item = &'b [u8];
    type IntoIter = Messages<'b>;

    fn into_iter(self) -> Messages<'b> {
        self.messages()
    }
}

/// Size of a `DATA` body's own header: `first_seq: u64`, `count: u32`,
/// `flags: u8`.
pub(crate) const DATA_BODY_HEADER_LEN: usize = 13;

/// `DATA` flag: the batch may have been delivered before.
pub(crate) const DATA_REDELIVERED: u8 = 1;

/// Every `DATA` flag this version knows; others are rejected.
pub(crate) const DATA_FLAGS: u8 = DATA_REDELIVERED;

/// The messages of a [`DataBatch`], in order, as slices of the decoder's
/// buffer.
///
/// # Example
/// ```
/// # use asyncmsg_wire::{DataBuilder, Decoder, Frame};
/// # let mut buf = Vec::new();
/// # let mut b = DataBuilder::begin(&mut buf, 0);
/// # b.push(b"a")?;
/// # b.push(b"b")?;
/// # b.finish();
/// # let mut dec = Decoder::default();
/// # dec.feed(&buf);
/// let Some(Frame::Data(batch)) = dec.next()? else { panic!() };
/// let mut msgs = batch.messages();
/// assert_eq!(msgs.len(), 2);
/// assert_eq!(msgs.next(), Some(&b"a"[..]));
/// assert_eq!(msgs.next(), Some(&b"b"[..]));
/// assert_eq!(msgs.next(), None);
/// # Ok::<(), asyncmsg_wire::WireError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Iterator for Messages<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        // The decoder validated the layout; these checks only keep a
        // mistake from turning into a panic.
        let Some((len, rest)) = self.rest.split_first_chunk::<4>() else {
            self.left = 0;
            return None;
        };
        let Some((msg, rest)) = rest.split_at_checked(u32::from_le_bytes(*len) as usize) else {
            self.left = 0;
            return None;
        };
        self.rest = rest;
        self.left -= 1;
        Some(msg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.left as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Messages<'_> {}

impl FusedIterator for Messages<'_> {}
