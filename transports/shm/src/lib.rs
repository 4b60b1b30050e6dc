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
