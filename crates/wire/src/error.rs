//! What can be wrong with the bytes a peer sent.

use crate::PROTOCOL_VERSION;

/// A stream that cannot be decoded, or a frame that cannot be encoded.
///
/// Every variant except [`Oversize`](WireError::Oversize) on the encoding side
/// means the peer sent bytes this end does not accept (SPEC B21): the link is
/// dropped, and a [`Decoder`](crate::Decoder) that returned one keeps
/// returning it.
///
/// # Example
/// ```
/// use asyncmsg_wire::{Decoder, WireError};
///
/// let mut dec = Decoder::default();
/// dec.feed(&[1, 0, 0, 0, 0xee]); // len 1, kind 0xee, no body
/// assert_eq!(dec.next().unwrap_err(), WireError::UnknownKind(0xee));
/// // The decoder stays failed.
/// assert_eq!(dec.next().unwrap_err(), WireError::UnknownKind(0xee));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame")]
    Truncated,
    /// A frame's `len` is larger than the limit: the decoder's `max_frame`,
    /// or, when encoding, what the 32-bit `len` field can hold.
    #[error("a frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversize {
        /// The frame's length (kind and body).
        len: u64,
        /// The limit it exceeds.
        max: u64,
    },
    /// The frame's kind byte is not one of [`Kind`](crate::Kind).
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    /// A `HELLO` or `ACCEPT` names a protocol version other than
    /// [`PROTOCOL_VERSION`].
    #[error("unsupported protocol version {0} (this end speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u16),
    /// The frame's kind is known but its body is not what that kind allows.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// A static description of a postcard decoding failure.
pub(crate) fn postcard_message(e: &postcard::Error) -> &'static str {
    use postcard::Error as E;
    match e {
        E::DeserializeUnexpectedEnd => "control frame body ends early",
        E::DeserializeBadVarint => "control frame body has a bad varint",
        E::DeserializeBadUtf8 | E::DeserializeBadChar => "control frame string is not UTF-8",
        E::DeserializeBadEnum => "control frame has an unknown enum variant",
        E::DeserializeBadBool | E::DeserializeBadOption | E::DeserializeBadEncoding => {
            "control frame body is badly encoded"
        }
        _ => "control frame body does not decode",
    }
}
