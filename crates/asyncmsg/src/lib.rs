//! # asyncmsg
//!
//! QNX Neutrino's asynchronous messaging for Rust on Linux: store-and-forward,
//! batched message passing. A sender *puts* messages without waiting for the
//! receiver; they are handed over in batches (a count trigger, a time trigger or
//! a flush); a receiver *gets* every ready message in one call; the sender hears
//! back through a per-message delivery callback; the receiver is told by an event
//! that messages are ready.
//!
//! ```
//! use asyncmsg::{ChannelConfig, ConnectionAttr, Flush, Node};
//! use std::sync::mpsc;
//!
//! let node = Node::new()?;
//! let chan = node.create_channel(ChannelConfig::default().buffer_size(2048).max_buffers(5))?;
//! chan.publish("sensors")?;                                    // QNX name_attach
//! let (tx, rx) = mpsc::channel();
//! let conn = node.connect("sensors", ConnectionAttr::default()
//!     .max_buffers(64).trigger_count(16)
//!     .on_delivered(move |d| tx.send(d.handle).unwrap()))?;   // runs on the delivery thread
//! conn.put(b"reading".to_vec(), 42)?;                          // returns at once; buffer lent
//! conn.flush(Flush::NoWait)?;                                  // trigger now
//! for msg in chan.get()? {                                     // one batch, up to 5
//!     assert_eq!(msg.data(), b"reading");                      // dropping msg frees it
//! }
//! assert_eq!(rx.recv()?, 42);                                  // the delivery callback
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## When the delivery callback runs
//! A message is called back `Ok` once the receiver has taken it *and* let it go
//! (dropped the [`Message`]): on the in-process transport the receiver reads the
//! sender's own buffer, so only then can the buffer return to the sender. A flush
//! in wait mode waits for *taken*. Messages that can never be delivered are called
//! back with the reason (detached, destroyed, peer lost), never dropped silently.
//!
//! ## Waiting
//! Every wait has a blocking form (`get`, `get_timeout`), a non-blocking form
//! (`try_get`, `try_put`) and an async form (`recv`, `readable`,
//! [`DeliveryStream`]) that needs no thread and works on any executor, tokio
//! included.

mod buf;
mod channel;
mod connection;
mod error;
mod link;
mod node;
mod pulse;
mod quic;
mod registry;
mod shm;
pub mod sync;

pub use asyncmsg_core as core;
pub use buf::{SHARED_ALLOC_MIN, SendBuf};
pub use channel::{Channel, ChannelConfig, ChannelEvent, ChannelId, Message, MsgInfo, PeerLost};
pub use connection::{
    Callback, Connection, ConnectionAttr, Delivery, DeliveryStream, Flush, MAX_BUFFERS,
    OnceCallback,
};
pub use error::{
    AttrError, ChannelError, ConnectError, ErrorKind, FlushError, GetError, NodeError, PutError,
};
pub use node::{Node, Target};
pub use pulse::{Pulse, PulseChannel, PulseSender, PulseTarget};
#[doc(hidden)]
pub use shm::RawLink;
pub use shm::{PublishedName, published_names};
pub use sync::{
    ReceiveError, Received, Reply, ReplyError, Request, RequestKind, SendError, SyncChannel,
    SyncConnection,
};
