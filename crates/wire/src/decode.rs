//! Decoding a byte stream that arrives in arbitrary chunks.

use serde::{Deserialize, Serialize};

use crate::encode::is_canonical;
use crate::error::postcard_message;
use crate::frame::{DATA_BODY_HEADER_LEN, DATA_FLAGS};
use crate::{
    Accept, Close, DataBatch, Frame, HEADER_LEN, Hello, Kind, MAX_REASON, PROTOCOL_VERSION, Refuse,
    Triggers, WireError,
};

/// The default limit on a frame's `len` (kind and body): 64 MiB.
///
/// # Example
/// ```
/// use asyncmsg_wire::{DEFAULT_MAX_FRAME, Decoder};
///
/// assert_eq!(DEFAULT_MAX_FRAME, 64 << 20);
/// assert_eq!(Decoder::default().max_frame(), DEFAULT_MAX_FRAME);
/// ```
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// Decodes the frames of one stream, whatever chunks its bytes arrive in.
///
/// Bytes go in with [`feed`](Decoder::feed) (copied), or are read straight
/// into the decoder's buffer with [`spare`](Decoder::spare) and
/// [`commit`](Decoder::commit). [`next`](Decoder::next) then returns each
/// complete frame; a data batch's messages are slices of the decoder's
/// buffer. At the end of the stream, [`finish`](Decoder::finish) reports a
/// frame cut short.
///
/// A frame whose `len` exceeds `max_frame` is rejected as soon as its 4-byte
/// prefix is there; the buffer only grows with bytes actually fed (it holds
/// at most the frame being decoded and whatever was fed after it).
///
/// After an error the decoder stays failed: every later call returns the same
/// error and fed bytes are dropped. The link should be dropped (SPEC B21).
///
/// # Example
/// ```
/// use asyncmsg_wire::{DataBuilder, Decoder, Frame, encode_ack};
///
/// let mut wire = Vec::new();
/// encode_ack(3, &mut wire);
/// let mut b = DataBuilder::begin(&mut wire, 3);
/// b.push(b"hi")?;
/// b.finish();
///
/// let mut dec = Decoder::new(1 << 20);
/// let mut seen = Vec::new();
/// for chunk in wire.chunks(5) {
///     dec.feed(chunk);
///     while let Some(frame) = dec.next()? {
///         match frame {
///             Frame::Ack(taken) => seen.push(format!("ack {taken}")),
///             Frame::Data(batch) => {
///                 for (seq, msg) in batch.with_seqs() {
///                     seen.push(format!("{seq}: {}", String::from_utf8_lossy(msg)));
///                 }
///             }
///             other => panic!("unexpected {other:?}"),
///         }
///     }
/// }
/// dec.finish()?;
/// assert_eq!(seen, ["ack 3", "3: hi"]);
/// # Ok::<(), asyncmsg_wire::WireError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Initialised bytes; `start..end` holds what was fed and not decoded.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_frame: u32,
    failed: Option<WireError>,
}

impl Default for Decoder {
    /// A decoder with [`DEFAULT_MAX_FRAME`].
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::Decoder;
    ///
    /// assert_eq!(Decoder::default().buffered(), 0);
    /// ```
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder {
    /// A decoder that takes frames whose `len` (kind and body) is at most
    /// `max_frame` bytes (a `len` cannot exceed `u32::MAX` anyway). It
    /// allocates nothing until bytes arrive.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{Decoder, WireError};
    ///
    /// let mut dec = Decoder::new(16);
    /// dec.feed(&17u32.to_le_bytes());
    /// assert_eq!(dec.next().unwrap_err(), WireError::Oversize { len: 17, max: 16 });
    /// ```
    #[must_use]
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_frame: u32::try_from(max_frame).unwrap_or(u32::MAX),
            failed: None,
        }
    }

    /// The limit on a frame's `len`.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::Decoder;
    ///
    /// assert_eq!(Decoder::new(4096).max_frame(), 4096);
    /// ```
    #[must_use]
    pub fn max_frame(&self) -> usize {
        self.max_frame as usize
    }

    /// Appends bytes received from the stream. Dropped if the decoder has
    /// failed.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::Decoder;
    ///
    /// let mut dec = Decoder::default();
    /// dec.feed(&[9, 0, 0]);
    /// assert_eq!(dec.next(), Ok(None)); // waits for the rest
    /// assert_eq!(dec.buffered(), 3);
    /// ```
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() || bytes.is_empty() {
            return;
        }
        self.make_room(bytes.len());
        self.buf[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// A writable slice of at least `at_least` bytes at the end of the
    /// buffer, to read the stream into without an intermediate copy; then
    /// call [`commit`](Decoder::commit) with the number of bytes read.
    ///
    /// The buffer grows only to the size asked for here (plus amortised
    /// slack), never from a length read off the wire.
    ///
    /// # Example
    /// ```
    /// use std::io::Read;
    /// use asyncmsg_wire::{Decoder, Frame, encode_ack};
    ///
    /// let mut wire = Vec::new();
    /// encode_ack(8, &mut wire);
    /// let mut stream = &wire[..]; // any reader: a socket, a QUIC stream
    /// let mut dec = Decoder::default();
    /// loop {
    ///     let n = stream.read(dec.spare(4096)).unwrap();
    ///     if n == 0 {
    ///         break;
    ///     }
    ///     dec.commit(n);
    ///     while let Some(frame) = dec.next()? {
    ///         assert_eq!(frame, Frame::Ack(8));
    ///     }
    /// }
    /// dec.finish()?;
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    pub fn spare(&mut self, at_least: usize) -> &mut [u8] {
        self.make_room(at_least);
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes written into the slice [`spare`](Decoder::spare)
    /// returned as received. Ignored if the decoder has failed.
    ///
    /// # Panics
    /// If `n` is larger than that slice (a caller's mistake, not a peer's).
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{Decoder, Frame};
    ///
    /// let mut dec = Decoder::default();
    /// let dst = dec.spare(13);
    /// dst[..13].copy_from_slice(&[9, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0]);
    /// dec.commit(13);
    /// assert_eq!(dec.next()?, Some(Frame::Ack(1)));
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    pub fn commit(&mut self, n: usize) {
        if self.failed.is_some() {
            return;
        }
        assert!(
            n <= self.buf.len() - self.end,
            "commit({n}) exceeds the spare buffer"
        );
        self.end += n;
    }

    /// The next complete frame, `Ok(None)` if the buffered bytes do not hold
    /// one yet.
    ///
    /// # Errors
    /// The first problem found in the stream ([`WireError`]); the decoder
    /// then stays failed and returns the same error again.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{Close, Decoder, Frame, encode_close};
    ///
    /// let mut wire = Vec::new();
    /// encode_close(&Close::new(0, "detached"), &mut wire);
    /// let mut dec = Decoder::default();
    /// dec.feed(&wire[..3]);
    /// assert_eq!(dec.next()?, None);
    /// dec.feed(&wire[3..]);
    /// assert_eq!(dec.next()?, Some(Frame::Close(Close::new(0, "detached"))));
    /// assert_eq!(dec.next()?, None);
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    #[expect(
        clippy::should_implement_trait,
        reason = "frames borrow the decoder's buffer: a lending iterator, which `Iterator` cannot express"
    )]
    pub fn next(&mut self) -> Result<Option<Frame<'_>>, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let avail = &self.buf[self.start..self.end];
        let Some((len, rest)) = avail.split_first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*len);
        if len == 0 {
            return Err(self.fail(WireError::Malformed("frame length is 0")));
        }
        if len > self.max_frame {
            return Err(self.fail(WireError::Oversize {
                len: u64::from(len),
                max: u64::from(self.max_frame),
            }));
        }
        let len = len as usize;
        if rest.len() < len {
            return Ok(None);
        }
        let frame_start = self.start + 4;
        self.start = frame_start + len;
        let Self { buf, failed, .. } = self;
        match parse(&buf[frame_start..frame_start + len]) {
            Ok(frame) => Ok(Some(frame)),
            Err(e) => {
                *failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The next complete frame as with [`next`](Decoder::next), owning
    /// everything ([`Frame::into_owned`]): for a frame to keep across later
    /// calls, such as the `HELLO` or `ACCEPT` a handshake waits for. A data
    /// batch is copied.
    ///
    /// # Errors
    /// As [`next`](Decoder::next).
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{Decoder, Frame, encode_ack};
    ///
    /// let mut wire = Vec::new();
    /// encode_ack(1, &mut wire);
    /// encode_ack(2, &mut wire);
    /// let mut dec = Decoder::default();
    /// dec.feed(&wire);
    /// let first = dec.next_owned()?;
    /// let second = dec.next_owned()?;
    /// assert_eq!((first, second), (Some(Frame::Ack(1)), Some(Frame::Ack(2))));
    /// # Ok::<(), asyncmsg_wire::WireError>(())
    /// ```
    pub fn next_owned(&mut self) -> Result<Option<Frame<'static>>, WireError> {
        Ok(self.next()?.map(Frame::into_owned))
    }

    /// Tells the decoder the stream ended.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if bytes are left that [`next`](Decoder::next)
    /// has not returned as frames (the start of a frame that will never
    /// complete; call `next` until it returns `Ok(None)` first); the decoder
    /// then stays failed. An earlier error is returned again.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{Decoder, WireError};
    ///
    /// let mut dec = Decoder::default();
    /// dec.feed(&[9, 0, 0, 0, 4, 1]); // an ACK cut short
    /// assert_eq!(dec.next(), Ok(None));
    /// assert_eq!(dec.finish(), Err(WireError::Truncated));
    /// assert_eq!(dec.next(), Err(WireError::Truncated));
    /// ```
    pub fn finish(&mut self) -> Result<(), WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.start < self.end {
            return Err(self.fail(WireError::Truncated));
        }
        Ok(())
    }

    /// Bytes fed and not yet returned as frames.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::Decoder;
    ///
    /// let mut dec = Decoder::default();
    /// dec.feed(&[1, 2]);
    /// assert_eq!(dec.buffered(), 2);
    /// ```
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The error the decoder failed with, if it did.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::{Decoder, WireError};
    ///
    /// let mut dec = Decoder::default();
    /// assert_eq!(dec.error(), None);
    /// dec.feed(&[0, 0, 0, 0]);
    /// let _ = dec.next();
    /// assert!(matches!(dec.error(), Some(WireError::Malformed(_))));
    /// ```
    #[must_use]
    pub fn error(&self) -> Option<&WireError> {
        self.failed.as_ref()
    }

    /// Bytes the buffer holds (initialised), whatever is in use.
    ///
    /// # Example
    /// ```
    /// use asyncmsg_wire::Decoder;
    ///
    /// let mut dec = Decoder::default();
    /// assert_eq!(dec.buffer_len(), 0);
    /// dec.feed(&[0; 100]);
    /// assert!(dec.buffer_len() >= 100);
    /// ```
    #[must_use]
    pub fn buffer_len(&self) -> usize {
        self.buf.len()
    }

    /// Records the error, drops the buffered bytes, returns the error.
    fn fail(&mut self, e: WireError) -> WireError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        self.start = 0;
        self.end = 0;
        e
    }

    /// Makes `buf[end..]` at least `n` bytes long: reuses the space before
    /// `start` once it is needed, then grows.
    fn make_room(&mut self, n: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end >= n {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end >= n {
                return;
            }
        }
        self.buf.resize(self.end.saturating_add(n), 0);
    }
}

/// Decodes one frame: `frame` is the kind byte and the body.
fn parse(frame: &[u8]) -> Result<Frame<'_>, WireError> {
    let Some((&kind, body)) = frame.split_first() else {
        return Err(WireError::Malformed("frame length is 0"));
    };
    match Kind::try_from(kind)? {
        Kind::Hello => {
            check_version(body)?;
            decode_control::<Hello>(body).map(Frame::Hello)
        }
        Kind::Accept => {
            check_version(body)?;
            decode_control::<Accept>(body).map(Frame::Accept)
        }
        Kind::Refuse => {
            let r = decode_control::<Refuse>(body)?;
            check_reason(&r.reason)?;
            Ok(Frame::Refuse(r))
        }
        Kind::Close => {
            let c = decode_control::<Close>(body)?;
            check_reason(&c.reason)?;
            Ok(Frame::Close(c))
        }
        Kind::Ack => {
            let taken: [u8; 8] = body
                .try_into()
                .map_err(|_| WireError::Malformed("ACK body is not 8 bytes"))?;
            Ok(Frame::Ack(u64::from_le_bytes(taken)))
        }
        Kind::Data => parse_data(body).map(Frame::Data),
        Kind::Triggers => decode_control::<Triggers>(body).map(Frame::Triggers),
        Kind::Flush => u64_body(body, "FLUSH body is not 8 bytes").map(Frame::Flush),
        Kind::Done => u64_body(body, "DONE body is not 8 bytes").map(Frame::Done),
    }
}

/// A body of one little-endian `u64`.
fn u64_body(body: &[u8], what: &'static str) -> Result<u64, WireError> {
    let b: [u8; 8] = body.try_into().map_err(|_| WireError::Malformed(what))?;
    Ok(u64::from_le_bytes(b))
}

/// The version leads `HELLO` and `ACCEPT` bodies in every protocol version.
fn check_version(body: &[u8]) -> Result<(), WireError> {
    let (version, _) = postcard::take_from_bytes::<u16>(body)
        .map_err(|e| WireError::Malformed(postcard_message(&e)))?;
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(WireError::UnsupportedVersion(version))
    }
}

/// A postcard body that must fill the frame exactly and be the canonical
/// encoding of what it decodes to (so that re-encoding gives the same bytes).
fn decode_control<'de, T: Deserialize<'de> + Serialize>(body: &'de [u8]) -> Result<T, WireError> {
    let (value, rest) = postcard::take_from_bytes::<T>(body)
        .map_err(|e| WireError::Malformed(postcard_message(&e)))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed("trailing bytes in a control frame"));
    }
    if !is_canonical(&value, body) {
        return Err(WireError::Malformed(
            "control frame is not canonically encoded",
        ));
    }
    Ok(value)
}

fn check_reason(reason: &str) -> Result<(), WireError> {
    if reason.len() > MAX_REASON {
        return Err(WireError::Malformed("reason longer than MAX_REASON"));
    }
    Ok(())
}

fn parse_data(body: &[u8]) -> Result<DataBatch<'_>, WireError> {
    let Some((header, mut rest)) = body.split_first_chunk::<DATA_BODY_HEADER_LEN>() else {
        return Err(WireError::Malformed("DATA body shorter than its header"));
    };
    let first_seq = u64::from_le_bytes(header[..8].try_into().unwrap_or_default());
    let count = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
    let flags = header[12];
    if flags & !DATA_FLAGS != 0 {
        return Err(WireError::Malformed("DATA has unknown flags"));
    }
    if count == 0 {
        return Err(WireError::Malformed("DATA batch without messages"));
    }
    if first_seq.checked_add(u64::from(count)).is_none() {
        return Err(WireError::Malformed("DATA sequence numbers overflow u64"));
    }
    if count as usize > rest.len() / 4 {
        return Err(WireError::Malformed(
            "DATA count exceeds what the frame holds",
        ));
    }
    for _ in 0..count {
        let Some((len, after)) = rest.split_first_chunk::<4>() else {
            return Err(WireError::Malformed("DATA messages end before count"));
        };
        let Some(after) = after.get(u32::from_le_bytes(*len) as usize..) else {
            return Err(WireError::Malformed("DATA message runs past the frame"));
        };
        rest = after;
    }
    if !rest.is_empty() {
        return Err(WireError::Malformed(
            "DATA frame has bytes after its last message",
        ));
    }
    Ok(DataBatch::new(first_seq, count, flags, body))
}

// The header is `len` and the kind byte.
const _: () = assert!(HEADER_LEN == 5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_ack;

    fn ack(taken: u64) -> Vec<u8> {
        let mut v = Vec::new();
        encode_ack(taken, &mut v);
        v
    }

    #[test]
    fn consumed_space_is_reused_before_growing() {
        let mut dec = Decoder::new(64);
        // Two whole ACKs and 5 bytes of a third.
        let mut wire = [ack(1), ack(2), ack(3)].concat();
        let tail = wire.split_off(31);
        dec.feed(&wire);
        assert_eq!(dec.next(), Ok(Some(Frame::Ack(1))));
        assert_eq!(dec.next(), Ok(Some(Frame::Ack(2))));
        assert_eq!(dec.next(), Ok(None));
        let len = dec.buffer_len();
        // The partial frame moves to the front; the buffer does not grow.
        dec.feed(&tail);
        assert_eq!(dec.buffer_len(), len);
        assert_eq!((dec.start, dec.end), (0, 13));
        assert_eq!(dec.next(), Ok(Some(Frame::Ack(3))));
        // All consumed: the next feed starts at the front again.
        dec.feed(&ack(4)[..2]);
        assert_eq!((dec.start, dec.end), (0, 2));
    }

    #[test]
    fn spare_does_not_move_a_partial_frame_while_there_is_room() {
        let mut dec = Decoder::default();
        let wire = [ack(1), ack(2)].concat();
        dec.spare(1000)[..20].copy_from_slice(&wire[..20]);
        dec.commit(20);
        assert_eq!(dec.next(), Ok(Some(Frame::Ack(1))));
        assert_eq!(dec.next(), Ok(None));
        let start = dec.start;
        dec.spare(10)[..6].copy_from_slice(&wire[20..]);
        dec.commit(6);
        assert_eq!(dec.start, start);
        assert_eq!(dec.next(), Ok(Some(Frame::Ack(2))));
    }

    #[test]
    fn failing_releases_the_buffer() {
        let mut dec = Decoder::default();
        dec.feed(&[1, 2, 3]);
        assert_eq!(dec.finish(), Err(WireError::Truncated));
        assert_eq!(dec.buffer_len(), 0);
        assert_eq!(dec.buffered(), 0);
    }
}
