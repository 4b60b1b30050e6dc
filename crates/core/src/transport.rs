//! What a transport says it offers.
//!
//! Every transport (in-process, shared memory, QUIC) carries batches of messages
//! from a connection to a channel and cumulative acknowledgements back. The
//! channel and connection semantics live in [`crate::send`] and [`crate::channel`];
//! a transport only moves bytes and counters, and describes itself with
//! [`Caps`] so that callers can pick one at run time.

/// Capabilities of a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Short name used in addresses and reports (`inproc`, `shm`, `quic`).
    pub name: &'static str,
    /// Largest message the transport can carry, in bytes.
    pub max_frame: usize,
    /// Whether `alloc` buffers move to the receiver without a payload copy.
    pub zero_copy: bool,
    /// Whether sender and receiver may be in different processes.
    pub cross_process: bool,
    /// Whether sender and receiver may be on different nodes.
    pub cross_node: bool,
    /// Whether the transport itself never loses a message it accepted.
    pub reliable: bool,
}

/// A transport: moves batches between a connection and a channel.
///
/// The hot path of each transport is monomorphised; this trait carries what is
/// common and object-safe.
pub trait Transport: Send + Sync + 'static {
    /// What this transport offers.
    fn caps(&self) -> Caps;
}
