//! Failure reasons shared by every layer, and the QNX errno each maps to.

/// Why a message could not be delivered or an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection was detached (QNX `EBADF`).
    Detached,
    /// The channel was destroyed (QNX `ESRCH`).
    Destroyed,
    /// The peer process or node went away (QNX `ESRCH`).
    PeerLost,
    /// The message is larger than the channel's `buffer_size` (QNX `EMSGSIZE`).
    TooLarge,
    /// The operation would block (QNX `EAGAIN`).
    WouldBlock,
    /// A bounded wait ran out (QNX `ETIMEDOUT`).
    TimedOut,
    /// The connector may not connect (QNX `EPERM`/`EACCES`).
    PermissionDenied,
    /// An argument is out of range (QNX `EINVAL`).
    InvalidArgument,
    /// No such channel, connection or name (QNX `ESRCH`).
    NotFound,
    /// The peer sent bytes that break the protocol (QNX `EBADMSG`).
    Protocol,
    /// Shared memory for the message could not be had (QNX `ENOMEM`).
    NoMemory,
}

impl ErrorKind {
    /// Every kind, for code that names them (across a network link, say).
    ///
    /// ```
    /// use asyncmsg_core::ErrorKind;
    /// assert!(ErrorKind::ALL.contains(&ErrorKind::PeerLost));
    /// ```
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Detached,
        ErrorKind::Destroyed,
        ErrorKind::PeerLost,
        ErrorKind::TooLarge,
        ErrorKind::WouldBlock,
        ErrorKind::TimedOut,
        ErrorKind::PermissionDenied,
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::Protocol,
        ErrorKind::NoMemory,
    ];

    /// The errno QNX documents for this failure.
    pub fn errno(self) -> i32 {
        match self {
            ErrorKind::Detached => 9, // EBADF
            ErrorKind::Destroyed | ErrorKind::PeerLost | ErrorKind::NotFound => 3, // ESRCH
            ErrorKind::TooLarge => 90, // EMSGSIZE
            ErrorKind::WouldBlock => 11, // EAGAIN
            ErrorKind::TimedOut => 110, // ETIMEDOUT
            ErrorKind::PermissionDenied => 1, // EPERM
            ErrorKind::InvalidArgument => 22, // EINVAL
            ErrorKind::Protocol => 74, // EBADMSG
            ErrorKind::NoMemory => 12, // ENOMEM
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::Detached => "connection detached",
            ErrorKind::Destroyed => "channel destroyed",
            ErrorKind::PeerLost => "peer lost",
            ErrorKind::TooLarge => "message larger than the channel's buffer size",
            ErrorKind::WouldBlock => "operation would block",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::NotFound => "not found",
            ErrorKind::Protocol => "protocol violation by the peer",
            ErrorKind::NoMemory => "out of shared memory",
        })
    }
}

impl std::error::Error for ErrorKind {}
