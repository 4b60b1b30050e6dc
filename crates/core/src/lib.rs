//! # asyncmsg-core
//!
//! The transport-agnostic heart of asyncmsg: the connection (sender) and channel
//! (receiver) state machines of QNX-style asynchronous messaging, written sans-IO.
//! Nothing here owns a thread, a clock or a socket: the drivers (the `asyncmsg`
//! facade over each transport) feed in puts, gets, acknowledgements and `now`,
//! and act on what comes back. That makes every rule of the behaviour contract
//! testable on a virtual clock, deterministically.
//!
//! * [`send::SendCore`]: send slots bounded by `max_buffers`, the count trigger, the
//!   time trigger with its interval, flush, per-connection sequence numbers,
//!   cumulative acknowledgements.
//! * [`channel::ChannelCore`]: the order in which triggered connections are served,
//!   the per-get capacity, and the waiter-or-event decision.
//! * [`error::ErrorKind`]: the failure reasons every layer shares, with their QNX errno.
//! * [`transport`]: what a transport says it offers.
//!
//! ```
//! use asyncmsg_core::send::{Publish, SendConfig, SendCore};
//! use std::time::Instant;
//!
//! let mut conn = SendCore::new(SendConfig { trigger_count: 2, ..SendConfig::default() });
//! let now = Instant::now();
//! assert_eq!(conn.put(now).unwrap().publish, Publish::None);
//! assert_eq!(conn.put(now).unwrap().publish, Publish::Trigger { visible: 2 });
//! ```

pub mod channel;
pub mod error;
pub mod send;
pub mod transport;

pub use channel::{ChannelCore, Take, Wake};
pub use error::ErrorKind;
pub use send::{Publish, PutOutcome, PutRefused, SendConfig, SendCore};
