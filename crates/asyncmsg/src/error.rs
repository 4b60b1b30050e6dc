//! Typed errors, one enum per operation. Every error maps to the QNX errno the C
//! API returns ([`ErrorKind::errno`]), and a failed put hands its buffer back.

pub use asyncmsg_core::ErrorKind;

use crate::SendBuf;

/// Why a put did not accept a message. The message is handed back.
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default().buffer_size(4)).unwrap();
/// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
/// let err = conn.put("too long", 0).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TooLarge);
/// assert_eq!(&err.into_buf()[..], b"too long");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// Every send slot is in use and the put may not wait (a non-blocking
    /// connection, `try_put`, or a put from the delivery thread). QNX `EAGAIN`.
    #[error("all send buffers are in use")]
    WouldBlock(SendBuf),
    /// The message is larger than the channel's `buffer_size` (B10). QNX `EMSGSIZE`.
    #[error("message of {len} bytes exceeds the channel's buffer size of {limit}")]
    TooLarge {
        /// The message.
        buf: SendBuf,
        /// Its length.
        len: usize,
        /// The channel's `buffer_size`.
        limit: usize,
    },
    /// The connection was detached. QNX `EBADF`.
    #[error("connection detached")]
    Detached(SendBuf),
    /// The channel was destroyed. QNX `ESRCH`.
    #[error("channel destroyed")]
    Destroyed(SendBuf),
    /// The peer went away. QNX `ESRCH`.
    #[error("peer lost")]
    PeerLost(SendBuf),
    /// The link failed: the peer broke the protocol (B21). QNX `EBADMSG`.
    #[error("protocol violation by the peer")]
    Protocol(SendBuf),
    /// No shared memory was left to copy a large message into. QNX `ENOMEM`.
    #[error("out of shared memory for the message")]
    NoMemory(SendBuf),
}

impl PutError {
    /// The reason, for matching and errno mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PutError::WouldBlock(_) => ErrorKind::WouldBlock,
            PutError::TooLarge { .. } => ErrorKind::TooLarge,
            PutError::Detached(_) => ErrorKind::Detached,
            PutError::Destroyed(_) => ErrorKind::Destroyed,
            PutError::PeerLost(_) => ErrorKind::PeerLost,
            PutError::Protocol(_) => ErrorKind::Protocol,
            PutError::NoMemory(_) => ErrorKind::NoMemory,
        }
    }

    /// The message that was not accepted.
    pub fn into_buf(self) -> SendBuf {
        match self {
            PutError::WouldBlock(b)
            | PutError::Detached(b)
            | PutError::Destroyed(b)
            | PutError::PeerLost(b)
            | PutError::Protocol(b)
            | PutError::NoMemory(b)
            | PutError::TooLarge { buf: b, .. } => b,
        }
    }

    pub(crate) fn from_kind(kind: ErrorKind, buf: SendBuf) -> Self {
        match kind {
            ErrorKind::Detached => PutError::Detached(buf),
            ErrorKind::Destroyed => PutError::Destroyed(buf),
            ErrorKind::PeerLost => PutError::PeerLost(buf),
            ErrorKind::Protocol => PutError::Protocol(buf),
            ErrorKind::NoMemory => PutError::NoMemory(buf),
            _ => PutError::WouldBlock(buf),
        }
    }
}

/// Why a get returned no messages.
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default().nonblocking(true)).unwrap();
/// let err = chan.get().unwrap_err();
/// assert_eq!(err, GetError::WouldBlock);
/// assert_eq!(err.kind().errno(), 11); // EAGAIN
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// Nothing is visible and the get may not wait (B08). QNX `EAGAIN`.
    #[error("no message is ready")]
    WouldBlock,
    /// `get_timeout` waited its full time. QNX `ETIMEDOUT`.
    #[error("timed out waiting for messages")]
    TimedOut,
    /// The channel was destroyed (B15). QNX `ESRCH`.
    #[error("channel destroyed")]
    Destroyed,
}

impl GetError {
    /// The reason, for matching and errno mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            GetError::WouldBlock => ErrorKind::WouldBlock,
            GetError::TimedOut => ErrorKind::TimedOut,
            GetError::Destroyed => ErrorKind::Destroyed,
        }
    }
}

/// Why a flush failed.
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default()).unwrap();
/// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
/// chan.destroy();
/// assert_eq!(conn.flush(Flush::NoWait), Err(FlushError::Destroyed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The wait ran out before the receiver took every message. QNX `ETIMEDOUT`.
    #[error("timed out waiting for the receiver")]
    TimedOut,
    /// The connection was detached (B14). QNX `EBADF`.
    #[error("connection detached")]
    Detached,
    /// The channel was destroyed (B15). QNX `ESRCH`.
    #[error("channel destroyed")]
    Destroyed,
    /// The peer went away. QNX `ESRCH`.
    #[error("peer lost")]
    PeerLost,
    /// The link failed: the peer broke the protocol (B21). QNX `EBADMSG`.
    #[error("protocol violation by the peer")]
    Protocol,
}

impl FlushError {
    /// The reason, for matching and errno mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FlushError::TimedOut => ErrorKind::TimedOut,
            FlushError::Detached => ErrorKind::Detached,
            FlushError::Destroyed => ErrorKind::Destroyed,
            FlushError::PeerLost => ErrorKind::PeerLost,
            FlushError::Protocol => ErrorKind::Protocol,
        }
    }

    pub(crate) fn from_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Detached => FlushError::Detached,
            ErrorKind::Destroyed => FlushError::Destroyed,
            ErrorKind::PeerLost => FlushError::PeerLost,
            ErrorKind::Protocol | ErrorKind::NoMemory => FlushError::Protocol,
            _ => FlushError::TimedOut,
        }
    }
}

/// Why a connection could not be attached.
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let err = node.connect("nobody-publishes-this", ConnectionAttr::default()).unwrap_err();
/// assert!(matches!(err, ConnectError::NotFound(_)));
/// assert_eq!(err.kind().errno(), 3); // ESRCH
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// No channel is published under that name, or no channel has that id. QNX `ESRCH`.
    #[error("no channel at {0}")]
    NotFound(String),
    /// An attribute is out of range (for example zero buffers). QNX `EINVAL`.
    #[error("invalid connection attribute: {0}")]
    InvalidArgument(&'static str),
    /// The address names a transport this build or node does not offer.
    #[error("transport not available for {0}")]
    Unsupported(String),
    /// The channel refused the connector (B18). QNX `EPERM`.
    #[error("permission denied")]
    PermissionDenied,
    /// The channel was destroyed. QNX `ESRCH`.
    #[error("channel destroyed")]
    Destroyed,
    /// The channel's process could not be reached or answered wrongly.
    #[error("cannot reach the channel: {0}")]
    Io(#[from] std::io::Error),
    /// The channel's process broke the connection protocol. QNX `EBADMSG`.
    #[error("protocol violation by the channel's process: {0}")]
    Protocol(String),
    /// The server did not answer the connect request in time
    /// ([`Node::open_timeout`](crate::Node::open_timeout)). QNX `ETIMEDOUT`.
    #[error("the server did not answer the connect request in time")]
    TimedOut,
}

impl ConnectError {
    /// The reason, for matching and errno mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectError::NotFound(_) | ConnectError::Unsupported(_) => ErrorKind::NotFound,
            ConnectError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            ConnectError::PermissionDenied => ErrorKind::PermissionDenied,
            ConnectError::Destroyed => ErrorKind::Destroyed,
            ConnectError::Io(_) => ErrorKind::PeerLost,
            ConnectError::Protocol(_) => ErrorKind::Protocol,
            ConnectError::TimedOut => ErrorKind::TimedOut,
        }
    }
}

/// Why a channel could not be created or published.
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let err = node.create_channel(ChannelConfig::default().buffer_size(0)).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidArgument);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// A configuration value is out of range (zero buffers, zero buffer size). QNX `EINVAL`.
    #[error("invalid channel configuration: {0}")]
    InvalidArgument(&'static str),
    /// Another channel is already published under this name. QNX `EEXIST`.
    #[error("name {0:?} is already published")]
    NameTaken(String),
    /// The channel was destroyed.
    #[error("channel destroyed")]
    Destroyed,
    /// The operating system refused a resource (the event file descriptor).
    #[error("system error: {0}")]
    Io(#[from] std::io::Error),
}

impl ChannelError {
    /// The reason, for matching and errno mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ChannelError::InvalidArgument(_) | ChannelError::NameTaken(_) => {
                ErrorKind::InvalidArgument
            }
            ChannelError::Destroyed => ErrorKind::Destroyed,
            ChannelError::Io(_) => ErrorKind::InvalidArgument,
        }
    }
}

/// Why `set_attr` refused a change (B16).
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default()).unwrap();
/// let conn = node.connect(chan.id(), ConnectionAttr::default().max_buffers(8)).unwrap();
/// let err = conn.set_attr(conn.attr().max_buffers(16)).unwrap_err();
/// assert_eq!(err, AttrError::MaxBuffersFixed { current: 8, requested: 16 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttrError {
    /// `max_buffers` is fixed when the connection is attached. QNX `EINVAL`.
    #[error("max_buffers of a live connection cannot change (is {current}, asked {requested})")]
    MaxBuffersFixed {
        /// The connection's value.
        current: u32,
        /// The value asked for.
        requested: u32,
    },
    /// The connection was detached. QNX `EBADF`.
    #[error("connection detached")]
    Detached,
}

impl AttrError {
    /// The reason, for matching and errno mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AttrError::MaxBuffersFixed { .. } => ErrorKind::InvalidArgument,
            AttrError::Detached => ErrorKind::Detached,
        }
    }
}

/// Why a node could not start.
///
/// ```
/// # use asyncmsg::*;
/// // Starting a node fails only when the system refuses a thread.
/// let node: Result<Node, NodeError> = Node::new();
/// assert!(node.is_ok());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A runtime thread could not be spawned.
    #[error("could not start a node thread: {0}")]
    Io(#[from] std::io::Error),
}
