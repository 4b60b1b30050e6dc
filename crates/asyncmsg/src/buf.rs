//! Send buffers.

use std::ops::{Deref, DerefMut};

/// A message buffer lent to asyncmsg by a put and handed back by its delivery
/// callback (QNX: the buffer passed to `asyncmsg_put`, returned through the
/// callback; `asyncmsg_malloc` makes one).
///
/// On the in-process transport the buffer itself moves to the receiver: no byte
/// is copied. Build one from a `Vec<u8>` (no copy), a `String`, a slice (one
/// copy), or with [`Node::alloc`](crate::Node::alloc).
///
/// ```
/// use asyncmsg::SendBuf;
/// let mut b = SendBuf::from(vec![0u8; 4]);
/// b[0] = 7;
/// assert_eq!(&b[..], &[7, 0, 0, 0]);
/// let v: Vec<u8> = b.into_vec();
/// assert_eq!(v.len(), 4);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SendBuf {
    bytes: Vec<u8>,
}

impl SendBuf {
    /// A zeroed buffer of `len` bytes.
    pub fn zeroed(len: usize) -> Self {
        SendBuf {
            bytes: vec![0; len],
        }
    }

    /// The message length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// Replaces the contents with `data`, reusing the allocation where it fits.
    pub fn set(&mut self, data: &[u8]) {
        self.bytes.clear();
        self.bytes.extend_from_slice(data);
    }

    /// Gives the underlying vector back.
    pub fn into_vec(self) -> Vec<u8> {
        self.bytes
    }

    /// The underlying vector, to resize or refill it in place.
    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl std::fmt::Debug for SendBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SendBuf({} bytes)", self.bytes.len())
    }
}

impl Deref for SendBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl DerefMut for SendBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl From<Vec<u8>> for SendBuf {
    fn from(bytes: Vec<u8>) -> Self {
        SendBuf { bytes }
    }
}

impl From<&[u8]> for SendBuf {
    fn from(b: &[u8]) -> Self {
        SendBuf { bytes: b.to_vec() }
    }
}

impl<const N: usize> From<&[u8; N]> for SendBuf {
    fn from(b: &[u8; N]) -> Self {
        SendBuf { bytes: b.to_vec() }
    }
}

impl From<String> for SendBuf {
    fn from(s: String) -> Self {
        SendBuf {
            bytes: s.into_bytes(),
        }
    }
}

impl From<&str> for SendBuf {
    fn from(s: &str) -> Self {
        SendBuf {
            bytes: s.as_bytes().to_vec(),
        }
    }
}

impl From<SendBuf> for Vec<u8> {
    fn from(b: SendBuf) -> Self {
        b.bytes
    }
}
