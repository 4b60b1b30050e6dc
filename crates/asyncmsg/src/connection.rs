//! Connections: the sender side (QNX `coid`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use asyncmsg_core::{ErrorKind, SendConfig};
use event_listener::{Event, EventListener, Listener};

use crate::SendBuf;
use crate::channel::ChannelId;
use crate::error::{AttrError, ConnectError, FlushError, PutError};
use crate::link::{ChanShared, ConnShared, Item, LinkState, Peer, lock};
use crate::node::Node;

static NEXT_COID: AtomicI32 = AtomicI32::new(1);

/// [`ConnectionAttr::retry_for`]'s default.
pub(crate) const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(30);

/// A process-unique connection id.
pub(crate) fn next_coid() -> i32 {
    NEXT_COID.fetch_add(1, Ordering::Relaxed)
}

/// Checks the attributes every connection needs (B16).
pub(crate) fn check_attr(attr: &ConnectionAttr) -> Result<(), ConnectError> {
    if attr.max_buffers == 0 {
        return Err(ConnectError::InvalidArgument(
            "max_buffers must be at least 1",
        ));
    }
    if attr.max_buffers > MAX_BUFFERS {
        return Err(ConnectError::InvalidArgument(
            "max_buffers above asyncmsg::MAX_BUFFERS (1048576)",
        ));
    }
    Ok(())
}

/// The most messages a connection may have in flight (`max_buffers`): each
/// takes a slot, allocated when the connection is attached.
pub const MAX_BUFFERS: u32 = 1 << 20;

/// A connection's default delivery callback.
pub type Callback = Arc<dyn Fn(Delivery) + Send + Sync>;
/// A per-put delivery callback.
pub type OnceCallback = Box<dyn FnOnce(Delivery) + Send>;

/// The outcome of one put, handed to its delivery callback (B11): exactly once
/// per message, in put order per connection, with the buffer back for reuse.
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default()).unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let conn = node.connect(chan.id(), ConnectionAttr::default()
///     .on_delivered(move |d: Delivery| tx.send((d.handle, d.result, d.seq)).unwrap())).unwrap();
/// conn.put("x", 7).unwrap();
/// drop(chan.get().unwrap());
/// assert_eq!(rx.recv().unwrap(), (7, Ok(()), 0));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Delivery {
    /// `Ok` once the receiver took the message and let it go; otherwise why it can
    /// never be delivered (detached, destroyed, peer lost).
    pub result: Result<(), ErrorKind>,
    /// The handle given to the put.
    pub handle: u64,
    /// The buffer, back from its loan.
    pub buf: SendBuf,
    /// The message's sequence number on its connection.
    pub seq: u64,
    /// The connection it was put on.
    pub coid: i32,
}

/// A connection's attributes (QNX `struct _asyncmsg_connection_attr`).
///
/// ```
/// use asyncmsg::ConnectionAttr;
/// use std::time::Duration;
/// let attr = ConnectionAttr::default()
///     .max_buffers(64)                            // messages in flight
///     .trigger_count(16)                          // a batch every 16 puts
///     .trigger_time(Duration::from_millis(2))     // or 2 ms after the first
///     .on_delivered(|d| if let Err(e) = d.result { eprintln!("msg {} lost: {e}", d.handle) });
/// # let _ = attr;
/// ```
#[derive(Clone)]
pub struct ConnectionAttr {
    pub(crate) max_buffers: u32,
    pub(crate) trigger_count: u32,
    pub(crate) trigger_time: Option<Duration>,
    pub(crate) trigger_interval: Option<Duration>,
    pub(crate) nonblocking: bool,
    pub(crate) callback: Option<Callback>,
    /// The connection id to use instead of a fresh one (the C API's coids).
    pub(crate) coid: Option<i32>,
    /// Whom the messages come from, when not from this process: (nd, pid).
    pub(crate) origin: Option<(u32, u32)>,
    /// How long a connection to another node keeps messages while it cannot
    /// reach it (store and forward, B20).
    pub(crate) retry_for: Duration,
}

impl Default for ConnectionAttr {
    /// 64 buffers, trigger on every put, no time trigger, blocking puts, no callback.
    fn default() -> Self {
        ConnectionAttr {
            max_buffers: 64,
            trigger_count: 1,
            trigger_time: None,
            trigger_interval: None,
            nonblocking: false,
            callback: None,
            coid: None,
            origin: None,
            retry_for: DEFAULT_RETRY_FOR,
        }
    }
}

impl std::fmt::Debug for ConnectionAttr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionAttr")
            .field("max_buffers", &self.max_buffers)
            .field("trigger_count", &self.trigger_count)
            .field("trigger_time", &self.trigger_time)
            .field("trigger_interval", &self.trigger_interval)
            .field("nonblocking", &self.nonblocking)
            .field("callback", &self.callback.is_some())
            .finish()
    }
}

impl ConnectionAttr {
    /// Most messages put and not yet called back (QNX `max_num_buffer`).
    pub fn max_buffers(mut self, n: u32) -> Self {
        self.max_buffers = n;
        self
    }
    /// Count trigger (QNX `trigger_num_msg`); 0 turns it off. A count above
    /// `max_buffers` can never be reached and so acts as 0: only the time trigger
    /// and flush make messages visible.
    pub fn trigger_count(mut self, n: u32) -> Self {
        self.trigger_count = n;
        self
    }
    /// Time trigger (QNX `trigger_time.nsec`).
    pub fn trigger_time(mut self, after: Duration) -> Self {
        self.trigger_time = Some(after);
        self
    }
    /// Re-arm period of the time trigger (QNX `trigger_time.interval_nsec`).
    pub fn trigger_interval(mut self, every: Duration) -> Self {
        self.trigger_interval = Some(every);
        self
    }
    /// Turns the time trigger off.
    pub fn no_trigger_time(mut self) -> Self {
        self.trigger_time = None;
        self.trigger_interval = None;
        self
    }
    /// How long a connection to another node (`quic://`) keeps its messages
    /// and retries while the node cannot be reached (B20, store and
    /// forward): puts go on succeeding up to `max_buffers`; once the node is
    /// back, what it has not taken is sent again, in order, once. After `d`
    /// without reaching it, every message still held is called back with
    /// [`ErrorKind::PeerLost`] and the connection closes. Default 30 s.
    /// Connections within a host notice a dead peer at once and do not wait.
    ///
    /// ```
    /// use asyncmsg::ConnectionAttr;
    /// use std::time::Duration;
    /// let attr = ConnectionAttr::default().retry_for(Duration::from_secs(300));
    /// assert_eq!(attr.get_retry_for(), Duration::from_secs(300));
    /// ```
    pub fn retry_for(mut self, d: Duration) -> Self {
        self.retry_for = d;
        self
    }

    /// The store-and-forward deadline ([`retry_for`](Self::retry_for)).
    pub fn get_retry_for(&self) -> Duration {
        self.retry_for
    }

    /// Marks the connection's messages as coming from process `pid` of node
    /// `nd` (what receivers see in [`MsgInfo`](crate::MsgInfo)): for the
    /// connections that carry another node's messages into a channel here.
    #[doc(hidden)]
    pub fn with_origin(mut self, nd: u32, pid: u32) -> Self {
        self.origin = Some((nd, pid));
        self
    }

    /// Uses `coid` as the connection's id (what receivers see in
    /// [`MsgInfo::coid`](crate::MsgInfo::coid)) instead of a fresh one: for the C
    /// API, whose coids the program chooses (`asyncmsg_connect_attach`'s
    /// `index`). The caller keeps them unique.
    #[doc(hidden)]
    pub fn with_coid(mut self, coid: i32) -> Self {
        self.coid = Some(coid);
        self
    }

    /// A non-blocking connection: a put finding every slot in use returns
    /// [`PutError::WouldBlock`] (QNX `_NTO_COF_NONBLOCK`).
    pub fn nonblocking(mut self, yes: bool) -> Self {
        self.nonblocking = yes;
        self
    }
    /// The default delivery callback (QNX `call_back`), run on the node's delivery
    /// thread.
    pub fn on_delivered(mut self, f: impl Fn(Delivery) + Send + Sync + 'static) -> Self {
        self.callback = Some(Arc::new(f));
        self
    }

    /// The `max_buffers` value.
    pub fn get_max_buffers(&self) -> u32 {
        self.max_buffers
    }
    /// The `trigger_count` value.
    pub fn get_trigger_count(&self) -> u32 {
        self.trigger_count
    }
    /// The `trigger_time` value.
    pub fn get_trigger_time(&self) -> Option<Duration> {
        self.trigger_time
    }
    /// The `trigger_interval` value.
    pub fn get_trigger_interval(&self) -> Option<Duration> {
        self.trigger_interval
    }
    /// Whether a callback is set.
    pub fn has_callback(&self) -> bool {
        self.callback.is_some()
    }

    pub(crate) fn send_config(&self) -> SendConfig {
        SendConfig {
            max_buffers: self.max_buffers,
            trigger_count: self.trigger_count,
            trigger_time: self.trigger_time.filter(|d| !d.is_zero()),
            trigger_interval: self.trigger_interval.filter(|d| !d.is_zero()),
        }
    }
}

/// How [`Connection::flush`] waits (QNX `asyncmsg_flush` modes, B12).
///
/// ```
/// # use asyncmsg::*;
/// # use std::time::Duration;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default()).unwrap();
/// let conn = node.connect(chan.id(), ConnectionAttr::default().trigger_count(0)).unwrap();
/// conn.put("x", 0).unwrap();
/// // Nobody gets: a waiting flush times out, and the message stays visible.
/// assert_eq!(conn.flush(Flush::WaitFor(Duration::from_millis(10))), Err(FlushError::TimedOut));
/// assert_eq!(chan.try_get().unwrap().len(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Trigger only (QNX `ASYNCMSG_FLUSH_NONBLOCK`).
    NoWait,
    /// Trigger and wait until the receiver took every message put before.
    Wait,
    /// As `Wait`, at most this long.
    WaitFor(Duration),
}

/// A connection to a channel (QNX `coid`): puts do not wait for the receiver and
/// do not copy; messages are handed over in batches by the triggers. Dropping it
/// detaches it.
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default()).unwrap();
/// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
/// assert_eq!(conn.channel_id(), chan.id());
/// assert_eq!(conn.max_message(), chan.buffer_size());
/// conn.put(conn.alloc(16), 1).unwrap();
/// assert_eq!(chan.get().unwrap()[0].len(), 16);
/// ```
pub struct Connection {
    pub(crate) shared: Arc<ConnShared>,
    _node: Node,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("coid", &self.shared.coid)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn attach(
        node: &Node,
        chan: Arc<ChanShared>,
        attr: ConnectionAttr,
    ) -> Result<Connection, ConnectError> {
        check_attr(&attr)?;
        let mut conn = ConnShared::new(
            attr.coid.unwrap_or_else(next_coid),
            attr.nonblocking,
            attr.send_config(),
            attr.callback.clone(),
            Peer::Local(chan.clone()),
            node.shared.clone(),
        );
        if let Some((nd, pid)) = attr.origin {
            conn.nd = nd;
            conn.pid = pid;
        }
        let shared = Arc::new(conn);
        {
            let mut st = lock(&chan.state);
            if st.core.is_destroyed() {
                return Err(ConnectError::Destroyed);
            }
            st.conns.retain(|w| w.strong_count() > 0);
            st.conns.push(Arc::downgrade(&shared));
        }
        Ok(Connection {
            shared,
            _node: node.clone(),
        })
    }

    /// A connection over QUIC to a channel of another node.
    pub(crate) fn attach_net(
        node: &Node,
        link: Arc<crate::quic::NetLink>,
        attr: &ConnectionAttr,
        coid: i32,
    ) -> Connection {
        // Every put goes out at once: the receiving node runs the triggers
        // (only it knows when its getters take), see `crate::quic`.
        let cfg = asyncmsg_core::SendConfig {
            trigger_count: 1,
            trigger_time: None,
            trigger_interval: None,
            ..attr.send_config()
        };
        let shared = Arc::new(ConnShared::new(
            coid,
            attr.nonblocking,
            cfg,
            attr.callback.clone(),
            Peer::Net(link),
            node.shared.clone(),
        ));
        Connection {
            shared,
            _node: node.clone(),
        }
    }

    /// A connection over a shared-memory link to a channel of another process.
    pub(crate) fn attach_remote(
        node: &Node,
        link: Arc<crate::shm::SendLink>,
        attr: ConnectionAttr,
        coid: i32,
    ) -> Connection {
        let shared = Arc::new(ConnShared::new(
            coid,
            attr.nonblocking,
            attr.send_config(),
            attr.callback.clone(),
            Peer::Remote(link),
            node.shared.clone(),
        ));
        node.shared.delivery.add_remote(&shared);
        crate::shm::watch_sender(&shared);
        Connection {
            shared,
            _node: node.clone(),
        }
    }

    /// The connection id (QNX `coid`).
    pub fn coid(&self) -> i32 {
        self.shared.coid
    }

    /// The channel this connection goes to.
    pub fn channel_id(&self) -> ChannelId {
        let (pid, chid) = self.shared.channel();
        ChannelId { nd: 0, pid, chid }
    }

    /// Largest message the channel accepts (learnt at attach, B10).
    pub fn max_message(&self) -> usize {
        self.shared.buffer_size()
    }

    /// A zeroed send buffer (QNX `asyncmsg_malloc`, B17).
    pub fn alloc(&self, size: usize) -> SendBuf {
        self._node.alloc(size)
    }

    /// Puts a message (QNX `asyncmsg_put`): it returns at once, without waiting for
    /// the receiver, unless every slot is in use; then it waits for one (or, on a
    /// non-blocking connection, returns [`PutError::WouldBlock`]) (B07). The
    /// buffer comes back in the delivery callback with `handle`.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default().trigger_count(2)).unwrap();
    /// conn.put("a", 1).unwrap();
    /// assert_eq!(chan.try_get().unwrap_err(), GetError::WouldBlock);
    /// conn.put("b", 2).unwrap();
    /// let batch = chan.try_get().unwrap();
    /// assert_eq!(batch.len(), 2);
    /// ```
    pub fn put(&self, buf: impl Into<SendBuf>, handle: u64) -> Result<(), PutError> {
        self.put_inner(
            buf.into(),
            handle,
            None,
            !self.shared.nonblocking.load(Ordering::Relaxed),
            None,
            false,
        )
    }

    /// Puts a message with its own delivery callback, which replaces the
    /// connection's default for this message (B11).
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// conn.put_with("x", 1, move |d| tx.send(d.result).unwrap()).unwrap();
    /// drop(chan.get().unwrap());
    /// assert_eq!(rx.recv().unwrap(), Ok(()));
    /// ```
    pub fn put_with(
        &self,
        buf: impl Into<SendBuf>,
        handle: u64,
        callback: impl FnOnce(Delivery) + Send + 'static,
    ) -> Result<(), PutError> {
        self.put_inner(
            buf.into(),
            handle,
            Some(crate::link::Owned::new(Box::new(callback))),
            !self.shared.nonblocking.load(Ordering::Relaxed),
            None,
            false,
        )
    }

    /// Puts a message if a slot is free, never waiting.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default().max_buffers(1)).unwrap();
    /// conn.try_put("first", 1).unwrap();
    /// let err = conn.try_put("second", 2).unwrap_err();      // the one slot is in use
    /// assert_eq!(err.kind(), ErrorKind::WouldBlock);
    /// assert_eq!(&err.into_buf()[..], b"second");           // nothing is lost
    /// ```
    pub fn try_put(&self, buf: impl Into<SendBuf>, handle: u64) -> Result<(), PutError> {
        self.put_inner(buf.into(), handle, None, false, None, false)
    }

    /// Puts a message, waiting at most `timeout` for a free slot.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// # use std::time::Duration;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default().max_buffers(1)).unwrap();
    /// conn.put("first", 1).unwrap();
    /// let err = conn.put_timeout("second", 2, Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::WouldBlock);
    /// ```
    pub fn put_timeout(
        &self,
        buf: impl Into<SendBuf>,
        handle: u64,
        timeout: Duration,
    ) -> Result<(), PutError> {
        self.put_inner(buf.into(), handle, None, true, Some(timeout), false)
    }

    /// Puts messages from the front of `msgs` while slots are free, never
    /// waiting, under one lock and with one announcement for all: how a node
    /// hands on a batch that another node sent. Each message is `(buffer,
    /// handle, redelivered)`; what does not fit stays in `msgs`.
    pub(crate) fn try_put_batch(
        &self,
        msgs: &mut std::collections::VecDeque<(SendBuf, u64, bool)>,
    ) -> Result<(), ErrorKind> {
        let c = &self.shared;
        let limit = c.buffer_size();
        let mut announce = false;
        let mut armed: Vec<Instant> = Vec::new();
        {
            let mut st = lock(&c.send);
            if let LinkState::Closed(kind) = st.state {
                return Err(kind);
            }
            c.refresh(&mut st);
            while let Some((buf, _, _)) = msgs.front() {
                if buf.len() > limit {
                    return Err(ErrorKind::TooLarge);
                }
                if st.core.is_full() {
                    break;
                }
                let Ok(out) = st.core.put_at(Instant::now) else {
                    break;
                };
                let Some((buf, handle, redelivered)) = msgs.pop_front() else {
                    break;
                };
                let item = Item {
                    buf,
                    handle,
                    generation: st.generation,
                    extra: redelivered.then(|| {
                        Box::new(crate::link::Extra {
                            once: None,
                            spill: None,
                            redelivered,
                        })
                    }),
                };
                // SAFETY: as in `put_full`: the core accepted the put, the
                // `send` lock makes this the only writer, and the message is
                // published below, after the write.
                unsafe { c.ring.write(out.seq, item) };
                announce |= c.publish_locked(out.publish);
                if let Some(at) = out.armed {
                    armed.push(at);
                }
            }
        }
        for at in armed {
            c.timers().arm(at, c);
        }
        if announce {
            c.announce();
        }
        Ok(())
    }

    /// Puts without waiting a message that may have been delivered before
    /// (what receivers see in [`MsgInfo::redelivered`](crate::MsgInfo)).
    #[doc(hidden)]
    pub fn try_put_redelivered(&self, buf: SendBuf, handle: u64) -> Result<(), PutError> {
        self.put_inner(buf, handle, None, false, None, true)
    }

    fn put_inner(
        &self,
        buf: SendBuf,
        handle: u64,
        once: Option<crate::link::Owned<OnceCallback>>,
        may_wait: bool,
        timeout: Option<Duration>,
        redelivered: bool,
    ) -> Result<(), PutError> {
        // The deadline is computed at the first wait: most puts never wait, and
        // reading the clock costs more than the rest of a put.
        let mut deadline: Option<Instant> = None;
        let c = &self.shared;
        let limit = c.buffer_size();
        if buf.len() > limit {
            let len = buf.len();
            return Err(PutError::TooLarge { buf, len, limit });
        }
        // Across processes a large payload not already in shared memory is
        // copied into the node's pool first, outside the lock.
        let spill = match &c.peer {
            Peer::Remote(link) => match link.spill(&buf) {
                Ok(spill) => spill,
                Err(()) => return Err(PutError::NoMemory(buf)),
            },
            Peer::Local(_) | Peer::Net(_) => None,
        };
        // A put from the delivery thread must not wait for slots only that thread
        // frees.
        let may_wait = may_wait && !c.delivery().on_delivery_thread();
        let extra = if once.is_some() || spill.is_some() || redelivered {
            Some(Box::new(crate::link::Extra {
                once,
                spill,
                redelivered,
            }))
        } else {
            None
        };
        let mut item = Item {
            buf,
            handle,
            generation: 0,
            extra,
        };
        loop {
            let mut st = lock(&c.send);
            if let LinkState::Closed(kind) = st.state {
                return Err(PutError::from_kind(kind, item.buf));
            }
            c.refresh(&mut st);
            if !st.core.is_full() {
                let out = match st.core.put_at(Instant::now) {
                    Ok(out) => out,
                    Err(_) => return Err(PutError::WouldBlock(item.buf)),
                };
                item.generation = st.generation;
                if let Peer::Remote(link) = &c.peer {
                    // SAFETY: as below: slot `out.seq` is this put's, and it is
                    // published only after the write.
                    unsafe { link.write(out.seq, &item) };
                }
                // SAFETY: the core accepted the put, so `out.seq - completed` is
                // below the ring's capacity: the slot's previous message was
                // completed, as `refresh` read (acquire) from `completed` just
                // now; the `send` lock makes this the only writer; the message is
                // published to getters below, after the write.
                unsafe { c.ring.write(out.seq, item) };
                let announce = c.publish_locked(out.publish);
                drop(st);
                if let Some(at) = out.armed {
                    c.timers().arm(at, c);
                }
                if announce {
                    c.announce();
                }
                return Ok(());
            }
            if !may_wait {
                return Err(PutError::WouldBlock(item.buf));
            }
            // Register as a waiter before the last look, so that a completion
            // after it is sure to notify.
            let waiter = SenderWaiter::new(c);
            event_listener::listener!(c.sender_event => listener);
            c.refresh(&mut st);
            let wait = st.core.is_full() && st.state == LinkState::Open;
            drop(st);
            if let Some(t) = timeout
                && deadline.is_none()
            {
                deadline = crate::link::deadline_after(t);
            }
            let timed_out = wait
                && match deadline {
                    Some(at) => listener.wait_deadline(at).is_none(),
                    None => {
                        listener.wait();
                        false
                    }
                };
            drop(waiter);
            if timed_out {
                return Err(PutError::WouldBlock(item.buf));
            }
        }
    }

    /// Triggers at once (QNX `asyncmsg_flush`, B12). With [`Flush::Wait`] or
    /// [`Flush::WaitFor`] it returns when the receiver has taken every message put
    /// before the flush.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default().trigger_count(0)).unwrap();
    /// conn.put("x", 0).unwrap();
    /// conn.flush(Flush::NoWait).unwrap();
    /// assert_eq!(chan.try_get().unwrap().len(), 1);
    /// ```
    pub fn flush(&self, mode: Flush) -> Result<(), FlushError> {
        let target = self.flush_trigger()?;
        let deadline = match mode {
            Flush::NoWait => return Ok(()),
            Flush::Wait => None,
            Flush::WaitFor(d) => crate::link::deadline_after(d),
        };
        let c = &self.shared;
        loop {
            if let Some(done) = self.flushed(target) {
                return done;
            }
            let _waiter = SenderWaiter::new(c);
            event_listener::listener!(c.sender_event => l);
            if let Some(done) = self.flushed(target) {
                return done;
            }
            let timed_out = match deadline {
                Some(at) => l.wait_deadline(at).is_none(),
                None => {
                    l.wait();
                    false
                }
            };
            if timed_out {
                return self.flushed(target).unwrap_or(Err(FlushError::TimedOut));
            }
        }
    }

    /// Flushes and waits without a thread until the receiver took every message
    /// put before (the async twin of `flush(Flush::Wait)`; bound it with your
    /// executor's timeout, e.g. `tokio::time::timeout`).
    ///
    /// ```
    /// # use asyncmsg::*;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let node = Node::new().unwrap();
    /// let chan = std::sync::Arc::new(node.create_channel(ChannelConfig::default()).unwrap());
    /// let conn = node.connect(chan.id(), ConnectionAttr::default().trigger_count(0)).unwrap();
    /// conn.put("x", 0).unwrap();
    /// let getter = { let chan = chan.clone(); std::thread::spawn(move || chan.get().unwrap().len()) };
    /// conn.flush_async().await.unwrap();
    /// assert_eq!(getter.join().unwrap(), 1);
    /// # });
    /// ```
    pub async fn flush_async(&self) -> Result<(), FlushError> {
        let target = self.flush_trigger()?;
        let c = &self.shared;
        loop {
            if let Some(done) = self.flushed(target) {
                return done;
            }
            let _waiter = SenderWaiter::new(c);
            let listener = c.sender_event.listen();
            if let Some(done) = self.flushed(target) {
                return done;
            }
            listener.await;
        }
    }

    /// Triggers everything put so far; returns the sequence a waiting flush
    /// waits to see taken.
    fn flush_trigger(&self) -> Result<u64, FlushError> {
        let c = &self.shared;
        let (announce, target) = {
            let mut st = lock(&c.send);
            if let LinkState::Closed(kind) = st.state {
                return Err(FlushError::from_kind(kind));
            }
            c.refresh(&mut st);
            let (p, target) = st.core.flush();
            if let Peer::Net(link) = &c.peer {
                // The receiving node triggers once it has everything below.
                link.flush_marker(target);
            }
            (c.publish_locked(p), target)
        };
        if announce {
            c.announce();
        }
        if let Peer::Net(link) = &c.peer {
            link.kick();
        }
        Ok(target)
    }

    /// Whether a flush waiting for `target` is over, and how.
    fn flushed(&self, target: u64) -> Option<Result<(), FlushError>> {
        let c = &self.shared;
        if c.taken() >= target {
            return Some(Ok(()));
        }
        match lock(&c.send).state {
            // Messages not taken when the link closed never will be.
            LinkState::Closed(kind) => Some(Err(FlushError::from_kind(kind))),
            LinkState::Open => None,
        }
    }

    /// Puts a message, waiting without a thread while every slot is in use (the
    /// async twin of [`put`](Self::put); it waits on a non-blocking connection
    /// too).
    ///
    /// ```
    /// # use asyncmsg::*;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default().max_buffers(1)).unwrap();
    /// conn.put_async("one", 1).await.unwrap();
    /// drop(chan.try_get().unwrap()); // taken and let go: the slot frees
    /// conn.put_async("two", 2).await.unwrap();
    /// # });
    /// ```
    pub async fn put_async(&self, buf: impl Into<SendBuf>, handle: u64) -> Result<(), PutError> {
        let c = &self.shared;
        let mut buf = buf.into();
        loop {
            // Registered before the attempt, so a slot freed after it wakes us.
            let waiter = SenderWaiter::new(c);
            let listener = c.sender_event.listen();
            match self.put_inner(buf, handle, None, false, None, false) {
                Err(PutError::WouldBlock(back)) => {
                    buf = back;
                    listener.await;
                    drop(waiter);
                }
                other => return other,
            }
        }
    }

    /// The attributes in force (QNX `asyncmsg_connect_attr` get).
    pub fn attr(&self) -> ConnectionAttr {
        let st = lock(&self.shared.send);
        let mut cfg = *st.core.config();
        if let Peer::Net(link) = &self.shared.peer {
            let t = link.triggers();
            cfg.trigger_count = t.trigger_count;
            cfg.trigger_time = t.trigger_time;
            cfg.trigger_interval = t.trigger_interval;
        }
        let callback = self.shared.callback_of(st.generation);
        ConnectionAttr {
            max_buffers: cfg.max_buffers,
            trigger_count: cfg.trigger_count,
            trigger_time: cfg.trigger_time,
            trigger_interval: cfg.trigger_interval,
            nonblocking: self.shared.nonblocking.load(Ordering::Relaxed),
            callback,
            coid: Some(self.shared.coid),
            origin: (self.shared.nd != 0 || self.shared.pid != std::process::id())
                .then_some((self.shared.nd, self.shared.pid)),
            retry_for: match &self.shared.peer {
                Peer::Net(l) => l.retry_for(),
                _ => DEFAULT_RETRY_FOR,
            },
        }
    }

    /// Changes the triggers, the default callback and whether puts may block,
    /// from the next put on (QNX `asyncmsg_connect_attr` set, B16). A different
    /// `max_buffers` is refused.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    /// conn.set_attr(conn.attr().trigger_count(8)).unwrap();
    /// assert_eq!(conn.attr().get_trigger_count(), 8);
    /// assert!(conn.set_attr(conn.attr().max_buffers(1)).is_err());
    /// ```
    pub fn set_attr(&self, attr: ConnectionAttr) -> Result<(), AttrError> {
        let c = &self.shared;
        let mut st = lock(&c.send);
        if st.state != LinkState::Open {
            return Err(AttrError::Detached);
        }
        let current = st.core.config().max_buffers;
        if attr.max_buffers != current {
            return Err(AttrError::MaxBuffersFixed {
                current,
                requested: attr.max_buffers,
            });
        }
        let cfg = attr.send_config();
        if let Peer::Net(link) = &c.peer {
            // From the next put on, the receiving node's triggers change.
            link.set_triggers(st.core.next_seq(), &cfg);
        } else {
            st.core
                .set_triggers(cfg.trigger_count, cfg.trigger_time, cfg.trigger_interval);
        }
        st.generation += 1;
        c.nonblocking.store(attr.nonblocking, Ordering::Relaxed);
        lock(&c.callbacks)
            .list
            .push_back((st.generation, attr.callback));
        Ok(())
    }

    /// Deliveries as an async stream, for code that prefers awaiting them to a
    /// callback. Messages whose put had no callback, on a connection without a
    /// default callback, arrive here.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    /// let mut deliveries = conn.deliveries();
    /// conn.put("hi", 7).unwrap();
    /// drop(chan.get().unwrap());
    /// let d = deliveries.next().await.unwrap();
    /// assert_eq!((d.handle, d.result), (7, Ok(())));
    /// # });
    /// ```
    pub fn deliveries(&self) -> DeliveryStream {
        let shared = Arc::new(StreamShared {
            queue: Mutex::new(VecDeque::new()),
            ready: Event::new(),
        });
        *lock(&self.shared.stream) = Some(Arc::downgrade(&shared));
        DeliveryStream {
            shared,
            listener: None,
        }
    }

    /// Detaches (QNX `asyncmsg_connect_detach`, B14): messages not yet taken are
    /// called back with [`ErrorKind::Detached`] before this returns; messages the
    /// receiver holds are called back `Ok` when it lets them go; threads blocked in
    /// put or flush wake with a detached error. Dropping the connection does the
    /// same.
    ///
    /// It takes `&self`, so a connection shared between threads (an
    /// `Arc<Connection>`) can be detached while others are blocked in it; detaching
    /// twice does nothing.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default().trigger_count(0)).unwrap();
    /// conn.put_with("never taken", 1, |d| assert_eq!(d.result, Err(ErrorKind::Detached))).unwrap();
    /// conn.detach();
    /// assert_eq!(conn.put("late", 2).unwrap_err().kind(), ErrorKind::Detached);
    /// ```
    pub fn detach(&self) {
        let c = &self.shared;
        let failed = match &c.peer {
            Peer::Local(chan) => {
                // Withdrawing untaken messages excludes getters: under the channel
                // lock.
                let mut st = lock(&chan.state);
                st.core.remove(&crate::link::ConnKey::Local(c.clone()));
                st.conns
                    .retain(|w| !std::ptr::eq(w.as_ptr(), Arc::as_ptr(c)));
                c.ctr().queued.store(0, Ordering::SeqCst);
                c.close(ErrorKind::Detached)
            }
            Peer::Net(link) => {
                // The receiving node says how far its getters took (bounded
                // wait); the rest is called back detached.
                link.detach_and_wait();
                let failed = c.close(ErrorKind::Detached);
                link.detached();
                failed
            }
            // Across processes `close` marks `taken` closed, which excludes the
            // receiver's gets; the link tells the receiver.
            Peer::Remote(link) => {
                let failed = c.close(ErrorKind::Detached);
                link.detached();
                // Kept by the delivery thread only while the receiver still
                // holds messages of it.
                c.delivery().prune_remote();
                failed
            }
        };
        for f in failed {
            f.call();
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Counts a thread or task waiting on the connection's sender event while it
/// lives, so that completions and takes know to notify (and a cancelled async
/// wait stops being counted).
struct SenderWaiter<'a> {
    conn: &'a ConnShared,
}

impl<'a> SenderWaiter<'a> {
    fn new(conn: &'a ConnShared) -> Self {
        conn.ctr().sender_waiters.fetch_add(1, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        SenderWaiter { conn }
    }
}

impl Drop for SenderWaiter<'_> {
    fn drop(&mut self) {
        self.conn
            .ctr()
            .sender_waiters
            .fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) struct StreamShared {
    queue: Mutex<VecDeque<Delivery>>,
    ready: Event,
}

impl StreamShared {
    pub(crate) fn push(&self, d: Delivery) {
        lock(&self.queue).push_back(d);
        self.ready.notify_additional(1);
    }
}

/// An async stream of a connection's deliveries (see
/// [`Connection::deliveries`]). It implements [`futures_core::Stream`]; it never
/// ends by itself.
///
/// ```
/// # use asyncmsg::*;
/// # use std::time::Duration;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default()).unwrap();
/// let conn = node.connect(chan.id(), ConnectionAttr::default().trigger_count(0)).unwrap();
/// let mut deliveries = conn.deliveries();
/// conn.put("never taken", 3).unwrap();
/// conn.detach();
/// let d = deliveries.next_timeout(Duration::from_secs(1)).unwrap();
/// assert_eq!((d.handle, d.result), (3, Err(ErrorKind::Detached)));
/// ```
pub struct DeliveryStream {
    shared: Arc<StreamShared>,
    listener: Option<EventListener>,
}

impl std::fmt::Debug for DeliveryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryStream").finish_non_exhaustive()
    }
}

impl DeliveryStream {
    /// The next delivery.
    pub async fn next(&mut self) -> Option<Delivery> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next_inner(cx)).await
    }

    /// The next delivery if one is there.
    pub fn try_next(&mut self) -> Option<Delivery> {
        lock(&self.shared.queue).pop_front()
    }

    /// The next delivery, waiting at most `timeout` (blocking).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Delivery> {
        let shared = &self.shared;
        crate::link::wait_for(&shared.ready, crate::link::deadline_after(timeout), || {
            lock(&shared.queue).pop_front()
        })
    }

    fn poll_next_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        loop {
            if let Some(d) = self.try_next() {
                self.listener = None;
                return Poll::Ready(Some(d));
            }
            match &mut self.listener {
                None => self.listener = Some(self.shared.ready.listen()),
                Some(l) => match Pin::new(l).poll(cx) {
                    Poll::Ready(()) => self.listener = None,
                    Poll::Pending => return Poll::Pending,
                },
            }
        }
    }
}

impl futures_core::Stream for DeliveryStream {
    type Item = Delivery;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.get_mut().poll_next_inner(cx)
    }
}

use std::future::Future;
