//! Send buffers.

use std::ops::{Deref, DerefMut};

use asyncmsg_shm::pool::PoolBuf;

/// A message buffer lent to asyncmsg by a put and handed back by its delivery
/// callback (QNX: the buffer passed to `asyncmsg_put`, returned through the
/// callback; `asyncmsg_malloc` makes one).
///
/// On the in-process transport the buffer itself moves to the receiver: no byte
/// is copied. Across processes, a buffer made by [`Node::alloc`](crate::Node::alloc)
/// above [`SHARED_ALLOC_MIN`] bytes lives in the node's shared memory pool, so
/// only its place crosses the ring (B17); other buffers are copied once into
/// shared memory. Build one from a `Vec<u8>` (no copy), a `String`, a slice (one
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
#[derive(Default)]
pub struct SendBuf {
    repr: Repr,
}

/// Buffers of at least this many bytes from [`Node::alloc`](crate::Node::alloc)
/// live in the node's shared memory pool.
pub const SHARED_ALLOC_MIN: usize = 4096;

enum Repr {
    Heap(Vec<u8>),
    // Boxed: a send buffer stays as small as a `Vec`, since it rides in every
    // slot and every delivery.
    Pool(Box<PoolBuf>),
    /// Memory the caller lent (QNX C `asyncmsg_put`): read in place, never
    /// written or freed here.
    Lent(Lent),
    /// A shared, immutable slice (several messages of one received frame
    /// share one allocation).
    Bytes(bytes::Bytes),
}

/// A pointer and a length the caller of [`SendBuf::lent`] vouches for.
struct Lent {
    ptr: *const u8,
    len: usize,
}

// SAFETY: `SendBuf::lent`'s contract: the memory stays valid and unchanged,
// readable from any thread, until the buffer comes back in its delivery (or
// its error) — the same promise a QNX C caller makes to `asyncmsg_put`.
unsafe impl Send for Lent {}
// SAFETY: only ever read (see `Send`).
unsafe impl Sync for Lent {}

impl Default for Repr {
    fn default() -> Self {
        Repr::Heap(Vec::new())
    }
}

impl SendBuf {
    /// A zeroed buffer of `len` bytes (on the heap).
    pub fn zeroed(len: usize) -> Self {
        SendBuf {
            repr: Repr::Heap(vec![0; len]),
        }
    }

    /// A buffer that borrows `len` bytes at `ptr` without copying them (the
    /// QNX C API's put: the caller lends its buffer until the callback). The
    /// bytes are read in place; a mutable access copies them to the heap first.
    ///
    /// # Safety
    /// `ptr` must be valid for reads of `len` bytes (or `len` is 0), and the
    /// memory must stay valid and unchanged until this buffer (or every buffer
    /// it is moved into) is dropped: in practice, until the put's delivery
    /// callback or its error hands it back.
    ///
    /// ```
    /// # use asyncmsg::SendBuf;
    /// let data = *b"lent";
    /// // SAFETY: `data` outlives `b` and is not changed while `b` lives.
    /// let b = unsafe { SendBuf::lent(data.as_ptr(), data.len()) };
    /// assert_eq!(b.as_ptr(), data.as_ptr());          // no copy
    /// assert_eq!(&b[..], b"lent");
    /// ```
    pub unsafe fn lent(ptr: *const u8, len: usize) -> Self {
        SendBuf {
            repr: Repr::Lent(Lent { ptr, len }),
        }
    }

    /// Whether the buffer borrows memory lent by [`SendBuf::lent`].
    pub fn is_lent(&self) -> bool {
        matches!(self.repr, Repr::Lent(_))
    }

    /// The pointer given to [`SendBuf::lent`] (even for an empty buffer), if the
    /// buffer is lent.
    pub fn lent_ptr(&self) -> Option<*const u8> {
        match &self.repr {
            Repr::Lent(l) => Some(l.ptr),
            _ => None,
        }
    }

    pub(crate) fn pooled(buf: PoolBuf) -> Self {
        SendBuf {
            repr: Repr::Pool(Box::new(buf)),
        }
    }

    /// The buffer in a shared memory pool, if it lives in one.
    pub(crate) fn pool_buf(&self) -> Option<&PoolBuf> {
        match &self.repr {
            Repr::Pool(p) => Some(p),
            Repr::Heap(_) | Repr::Lent(_) | Repr::Bytes(_) => None,
        }
    }

    /// Whether the buffer lives in a node's shared memory pool (see
    /// [`Node::alloc`](crate::Node::alloc)).
    pub fn is_shared(&self) -> bool {
        matches!(self.repr, Repr::Pool(_))
    }

    /// The message length in bytes.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.repr {
            Repr::Heap(v) => v,
            Repr::Pool(p) => p,
            Repr::Bytes(b) => b,
            Repr::Lent(l) if l.len == 0 => &[],
            // SAFETY: `SendBuf::lent`'s contract keeps `len` bytes at `ptr`
            // readable and unchanged while the buffer lives.
            Repr::Lent(l) => unsafe { std::slice::from_raw_parts(l.ptr, l.len) },
        }
    }

    /// Replaces the contents with `data`, reusing the allocation where it fits
    /// (a shared buffer stays shared when `data` fits its chunk).
    pub fn set(&mut self, data: &[u8]) {
        if let Repr::Pool(p) = &mut self.repr
            && p.set_len(data.len())
        {
            p.copy_from_slice(data);
            return;
        }
        let v = self.as_mut_vec();
        v.clear();
        v.extend_from_slice(data);
    }

    /// Gives the underlying vector back (a shared buffer is copied out).
    pub fn into_vec(self) -> Vec<u8> {
        match self.repr {
            Repr::Heap(v) => v,
            Repr::Pool(_) | Repr::Lent(_) => self.as_slice().to_vec(),
            Repr::Bytes(b) => b.into(),
        }
    }

    /// The underlying vector, to resize or refill it in place. A shared or lent
    /// buffer moves to the heap first (one copy) and stops being shared or lent.
    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        if !matches!(self.repr, Repr::Heap(_)) {
            self.repr = Repr::Heap(self.as_slice().to_vec());
        }
        match &mut self.repr {
            Repr::Heap(v) => v,
            Repr::Pool(_) | Repr::Lent(_) | Repr::Bytes(_) => {
                unreachable!("moved to the heap above")
            }
        }
    }
}

impl Clone for SendBuf {
    /// A copy on the heap.
    fn clone(&self) -> Self {
        SendBuf {
            repr: Repr::Heap(self.as_slice().to_vec()),
        }
    }
}

impl PartialEq for SendBuf {
    fn eq(&self, o: &Self) -> bool {
        self.as_slice() == o.as_slice()
    }
}

impl Eq for SendBuf {}

impl std::fmt::Debug for SendBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = match self.repr {
            Repr::Pool(_) => ", shared",
            Repr::Lent(_) => ", lent",
            Repr::Bytes(_) => ", shared slice",
            Repr::Heap(_) => "",
        };
        write!(f, "SendBuf({} bytes{shared})", self.len())
    }
}

impl Deref for SendBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for SendBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // Lent and shared memory is never written: it moves to the heap
        // first.
        if matches!(self.repr, Repr::Lent(_) | Repr::Bytes(_)) {
            return self.as_mut_vec();
        }
        match &mut self.repr {
            Repr::Heap(v) => v,
            Repr::Pool(p) => p,
            Repr::Lent(_) | Repr::Bytes(_) => unreachable!("moved to the heap above"),
        }
    }
}

impl From<Vec<u8>> for SendBuf {
    fn from(bytes: Vec<u8>) -> Self {
        SendBuf {
            repr: Repr::Heap(bytes),
        }
    }
}

/// A `bytes::Bytes` moves in without a copy (it stays shared with its other
/// handles, and is never written).
///
/// ```
/// # use asyncmsg::SendBuf;
/// let frame = bytes::Bytes::from_static(b"headerpayload");
/// let b = SendBuf::from(frame.slice(6..));
/// assert_eq!(&b[..], b"payload");
/// ```
impl From<bytes::Bytes> for SendBuf {
    fn from(b: bytes::Bytes) -> Self {
        SendBuf {
            repr: Repr::Bytes(b),
        }
    }
}

impl From<&[u8]> for SendBuf {
    fn from(b: &[u8]) -> Self {
        b.to_vec().into()
    }
}

impl<const N: usize> From<&[u8; N]> for SendBuf {
    fn from(b: &[u8; N]) -> Self {
        b.to_vec().into()
    }
}

impl From<String> for SendBuf {
    fn from(s: String) -> Self {
        s.into_bytes().into()
    }
}

impl From<&str> for SendBuf {
    fn from(s: &str) -> Self {
        s.as_bytes().to_vec().into()
    }
}

impl From<SendBuf> for Vec<u8> {
    fn from(b: SendBuf) -> Self {
        b.into_vec()
    }
}
