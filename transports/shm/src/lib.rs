//! # asyncmsg-shm
//!
//! The shared-memory transport's building blocks. Every `unsafe` block and
//! every `mmap` of the asyncmsg project lives in this crate, each with its
//! safety argument:
//!
//! * [`sys`]: sealed memfd mappings, futexes on shared words, eventfds, Unix
//!   socket fd passing (`SCM_RIGHTS`) and peer credentials (`SO_PEERCRED`),
//!   an epoll poller.
//! * [`ring`]: one connection's segment: counters and a ring of message slots,
//!   written by the sender, validated by the receiver.
//! * [`pool`]: a node's pool of shared send buffers (`alloc`, B17).
//! * [`names`]: the runtime directory where names and node sockets live.

pub mod names;
pub mod pool;
pub mod ring;
pub mod sys;

use asyncmsg_core::transport::{Caps, Transport};

/// The shared-memory transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shm;

impl Transport for Shm {
    fn caps(&self) -> Caps {
        CAPS
    }
}

/// What the shared-memory transport offers: between processes of one host,
/// `alloc` buffers pass without a payload copy (their offset in the pool
/// crosses the ring), other payloads are copied once.
pub const CAPS: Caps = Caps {
    name: "shm",
    // A message larger than a slot's inline area lives in the sender's pool,
    // which the facade reserves at 1 GiB.
    max_frame: 1 << 30,
    zero_copy: true,
    cross_process: true,
    cross_node: false,
    reliable: true,
};
