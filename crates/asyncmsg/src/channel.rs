//! Channels: where messages arrive (QNX `chid`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asyncmsg_core::ChannelCore;
use event_listener::{Event, Listener};

use crate::error::{ChannelError, GetError};
use crate::link::{ChanShared, ChanState, ConnShared, lock};
use crate::node::Node;
use crate::pulse::PulseSender;
use crate::registry;

static NEXT_CHID: AtomicI32 = AtomicI32::new(1);

/// How the channel tells its owner that a get will find messages (B13).
///
/// Whatever the form, a trigger wakes a waiting getter instead when there is one
/// (a thread in [`Channel::get`], a task in [`Channel::recv`] or
/// [`Channel::readable`]). Events may be coalesced and may be spurious: after an
/// event, a get finds at least one message or a later event follows.
///
/// ```
/// use asyncmsg::*;
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// let node = Node::new().unwrap();
/// let fired = Arc::new(AtomicUsize::new(0));
/// let f = fired.clone();
/// let chan = node.create_channel(ChannelConfig::default()
///     .event(ChannelEvent::closure(move || { f.fetch_add(1, Ordering::SeqCst); }))).unwrap();
/// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
/// conn.put("x", 0).unwrap();                 // no getter waits: the event fires
/// assert_eq!(fired.load(Ordering::SeqCst), 1);
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum ChannelEvent {
    /// No event: only waiting getters are woken.
    #[default]
    None,
    /// Call this closure (from the thread that caused the trigger; keep it short).
    Closure(Arc<dyn Fn() + Send + Sync>),
    /// Send a pulse to a pulse channel (QNX `SIGEV_PULSE`); the pulse's `scoid`
    /// field carries the channel id.
    Pulse {
        /// Where the pulse goes.
        target: PulseSender,
        /// The pulse code (QNX `sigev_code`).
        code: i8,
        /// The pulse value (QNX `sigev_value`).
        value: i32,
    },
    /// Make [`Channel::event_fd`] readable (an eventfd that epoll, mio or tokio's
    /// `AsyncFd` can wait on; read 8 bytes from it to reset it).
    Fd,
}

impl ChannelEvent {
    /// An event that runs `f`.
    pub fn closure(f: impl Fn() + Send + Sync + 'static) -> Self {
        ChannelEvent::Closure(Arc::new(f))
    }

    /// An event that sends the pulse `(code, value)` to `target`.
    pub fn pulse(target: &crate::PulseChannel, code: i8, value: i32) -> Self {
        ChannelEvent::Pulse {
            target: target.sender(),
            code,
            value,
        }
    }
}

impl std::fmt::Debug for ChannelEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelEvent::None => f.write_str("None"),
            ChannelEvent::Closure(_) => f.write_str("Closure"),
            ChannelEvent::Pulse { code, value, .. } => f
                .debug_struct("Pulse")
                .field("code", code)
                .field("value", value)
                .finish(),
            ChannelEvent::Fd => f.write_str("Fd"),
        }
    }
}

/// The channel's event, ready to fire.
pub(crate) enum EventSink {
    None,
    Closure(Arc<dyn Fn() + Send + Sync>),
    Pulse {
        target: PulseSender,
        code: i8,
        value: i32,
    },
    Fd(OwnedFd),
}

impl EventSink {
    pub(crate) fn fire(&self, chid: i32) {
        match self {
            EventSink::None => {}
            EventSink::Closure(f) => {
                // The closure runs on whichever thread caused the trigger (a
                // putter, a getter, the timer thread): its panic must not unwind
                // into asyncmsg's own threads.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f())).is_err() {
                    eprintln!("asyncmsg: a channel event closure panicked");
                }
            }
            EventSink::Pulse {
                target,
                code,
                value,
            } => target.send_from(*code, *value, chid),
            EventSink::Fd(fd) => {
                let one: u64 = 1;
                // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. A
                // full counter (EAGAIN) already means "readable", so the result
                // does not matter.
                let _ = unsafe {
                    libc::write(
                        std::os::fd::AsRawFd::as_raw_fd(fd),
                        (&one as *const u64).cast(),
                        8,
                    )
                };
            }
        }
    }
}

fn eventfd() -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall wrapper; the result is checked before use.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// A channel's configuration (QNX `asyncmsg_channel_create` arguments).
///
/// ```
/// use asyncmsg::{ChannelConfig, ChannelEvent};
/// let cfg = ChannelConfig::default()
///     .buffer_size(2048)     // largest message
///     .max_buffers(5)        // most messages one get returns
///     .nonblocking(true)     // get returns WouldBlock instead of waiting
///     .mode(0o600)
///     .event(ChannelEvent::Fd);
/// # let _ = cfg;
/// ```
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub(crate) nonblocking: bool,
    pub(crate) mode: u32,
    pub(crate) buffer_size: usize,
    pub(crate) max_buffers: usize,
    pub(crate) event: ChannelEvent,
}

impl Default for ChannelConfig {
    /// Blocking, mode 0o600, 64 KiB messages, 64 messages per get, no event.
    fn default() -> Self {
        ChannelConfig {
            nonblocking: false,
            mode: 0o600,
            buffer_size: 64 * 1024,
            max_buffers: 64,
            event: ChannelEvent::None,
        }
    }
}

impl ChannelConfig {
    /// Largest message the channel accepts (QNX `buffer_size`); larger puts are
    /// refused with [`PutError::TooLarge`](crate::PutError::TooLarge) (B10).
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes;
        self
    }
    /// Most messages one get returns (QNX `max_num_buffer`).
    pub fn max_buffers(mut self, n: usize) -> Self {
        self.max_buffers = n;
        self
    }
    /// A non-blocking channel: `get` returns `WouldBlock` at once when nothing
    /// is ready (QNX `_NTO_CHF_ASYNC_NONBLOCK`).
    pub fn nonblocking(mut self, yes: bool) -> Self {
        self.nonblocking = yes;
        self
    }
    /// Who may connect (Unix permission bits, checked across processes).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    /// The event that tells the owner messages are ready.
    pub fn event(mut self, event: ChannelEvent) -> Self {
        self.event = event;
        self
    }
}

/// How to reach a channel: QNX's `(nd, pid, chid)`.
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default()).unwrap();
/// let id = chan.id();
/// assert_eq!((id.nd, id.pid), (0, std::process::id()));
/// let conn = node.connect(ChannelId { nd: 0, pid: id.pid, chid: id.chid }, ConnectionAttr::default());
/// assert!(conn.is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelId {
    /// Node descriptor; 0 is this node.
    pub nd: u32,
    /// Process id of the channel's owner.
    pub pid: u32,
    /// Channel id within that process.
    pub chid: i32,
}

/// What a received message carries besides its bytes (QNX
/// `struct _msg_info` of `struct _asyncmsg_get_header`, B09).
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default()).unwrap();
/// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
/// conn.put("abc", 0).unwrap();
/// let info = chan.get().unwrap()[0].info();
/// assert_eq!((info.pid, info.chid, info.coid), (std::process::id(), chan.chid(), conn.coid()));
/// assert_eq!((info.msglen, info.srcmsglen, info.seq), (3, 3, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MsgInfo {
    /// Sender's node descriptor (0: this node).
    pub nd: u32,
    /// Sender's process id.
    pub pid: u32,
    /// Sender's thread id (0 where the transport does not carry it).
    pub tid: u32,
    /// The channel the message arrived on.
    pub chid: i32,
    /// The server's id for the connection.
    pub scoid: i32,
    /// The sender's connection id.
    pub coid: i32,
    /// Bytes delivered.
    pub msglen: usize,
    /// Bytes the sender put.
    pub srcmsglen: usize,
    /// Per-connection sequence number, from 0.
    pub seq: u64,
    /// Whether the message may have been delivered before (store and forward
    /// across a receiver restart).
    pub redelivered: bool,
}

/// A received message. Dropping it gives its buffer back (QNX `asyncmsg_free`):
/// on the in-process transport the sender's own buffer, which then returns to the
/// sender in its delivery callback.
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default()).unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let conn = node.connect(chan.id(), ConnectionAttr::default()
///     .on_delivered(move |d| tx.send(d.buf).unwrap())).unwrap();
/// conn.put("hello", 0).unwrap();
/// let batch = chan.get().unwrap();
/// assert_eq!(batch[0].text(), "hello");
/// drop(batch);                                // lets go: the buffer returns to the sender
/// assert_eq!(&rx.recv().unwrap()[..], b"hello");
/// ```
pub struct Message {
    seq: u64,
    conn: Arc<ConnShared>,
}

impl Message {
    pub(crate) fn new(seq: u64, conn: Arc<ConnShared>) -> Self {
        Message { seq, conn }
    }

    /// The message bytes.
    pub fn data(&self) -> &[u8] {
        // SAFETY: this message was taken by a get and is released only when it is
        // dropped, so its slot holds the sender's item, unchanged, for as long as
        // `self` (and so the returned borrow) lives.
        match unsafe { self.conn.ring.get(self.seq) } {
            Some(item) => item.buf.as_slice(),
            None => &[],
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.data().len()
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.data().is_empty()
    }

    /// Sender, channel, lengths and sequence number.
    pub fn info(&self) -> MsgInfo {
        let len = self.len();
        MsgInfo {
            nd: 0,
            pid: self.conn.pid,
            tid: 0,
            chid: self.conn.chan.chid,
            scoid: self.conn.coid,
            coid: self.conn.coid,
            msglen: len,
            srcmsglen: len,
            seq: self.seq,
            redelivered: false,
        }
    }

    /// The message as UTF-8 text, lossily.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.data())
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("info", &self.info())
            .field("len", &self.len())
            .finish()
    }
}

impl std::ops::Deref for Message {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data()
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        // SAFETY: this message was taken by a get; dropping it is its one release,
        // and no borrow of its data outlives `self`.
        unsafe { self.conn.release(self.seq) };
    }
}

/// A channel (QNX `chid`): messages from its connections arrive here in batches.
/// Dropping it destroys it.
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default().nonblocking(true)).unwrap();
/// assert_eq!(chan.get().unwrap_err(), GetError::WouldBlock);
/// ```
pub struct Channel {
    pub(crate) shared: Arc<ChanShared>,
    pub(crate) _node: Node,
    max_buffers: usize,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("chid", &self.shared.chid)
            .finish_non_exhaustive()
    }
}

impl Channel {
    pub(crate) fn create(node: &Node, cfg: ChannelConfig) -> Result<Channel, ChannelError> {
        if cfg.buffer_size == 0 {
            return Err(ChannelError::InvalidArgument(
                "buffer_size must be at least 1",
            ));
        }
        if cfg.max_buffers == 0 {
            return Err(ChannelError::InvalidArgument(
                "max_buffers must be at least 1",
            ));
        }
        let sink = match cfg.event {
            ChannelEvent::None => EventSink::None,
            ChannelEvent::Closure(f) => EventSink::Closure(f),
            ChannelEvent::Pulse {
                target,
                code,
                value,
            } => EventSink::Pulse {
                target,
                code,
                value,
            },
            ChannelEvent::Fd => EventSink::Fd(eventfd()?),
        };
        let chid = NEXT_CHID.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(ChanShared {
            chid,
            pid: std::process::id(),
            nonblocking: cfg.nonblocking,
            buffer_size: cfg.buffer_size,
            mode: cfg.mode,
            state: Mutex::new(ChanState {
                core: ChannelCore::new(cfg.max_buffers),
                conns: Vec::new(),
                plan: Vec::new(),
                emptied: Vec::new(),
            }),
            getters: Event::new(),
            destroyed: std::sync::atomic::AtomicBool::new(false),
            sink,
            names: Mutex::new(Vec::new()),
        });
        registry::insert(&shared);
        Ok(Channel {
            shared,
            _node: node.clone(),
            max_buffers: cfg.max_buffers,
        })
    }

    /// QNX's `(nd, pid, chid)` of this channel, for [`Node::connect`].
    pub fn id(&self) -> ChannelId {
        ChannelId {
            nd: 0,
            pid: self.shared.pid,
            chid: self.shared.chid,
        }
    }

    /// The channel id (QNX `chid`).
    pub fn chid(&self) -> i32 {
        self.shared.chid
    }

    /// Largest message accepted, in bytes.
    pub fn buffer_size(&self) -> usize {
        self.shared.buffer_size
    }

    /// Most messages one get returns.
    pub fn max_buffers(&self) -> usize {
        self.max_buffers
    }

    /// The permission bits.
    pub fn mode(&self) -> u32 {
        self.shared.mode
    }

    /// Publishes the channel under `name` (QNX `name_attach`), so that
    /// [`Node::connect`] finds it by name. The name is withdrawn when the channel is
    /// destroyed.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let a = node.create_channel(ChannelConfig::default()).unwrap();
    /// a.publish("doc-publish").unwrap();
    /// let b = node.create_channel(ChannelConfig::default()).unwrap();
    /// assert!(matches!(b.publish("doc-publish"), Err(ChannelError::NameTaken(_))));
    /// ```
    pub fn publish(&self, name: &str) -> Result<(), ChannelError> {
        if name.is_empty() || name.contains('/') || name.contains("://") {
            return Err(ChannelError::InvalidArgument(
                "a name is non-empty and has no '/'",
            ));
        }
        if self.shared.destroyed.load(Ordering::Acquire) {
            return Err(ChannelError::Destroyed);
        }
        registry::publish(name, &self.shared)
    }

    /// Takes every visible message, up to `max_buffers`, in one batch (QNX
    /// `asyncmsg_get`). On a blocking channel it waits until a batch is visible; on
    /// a non-blocking one it returns [`GetError::WouldBlock`] at once (B08).
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default().max_buffers(2)).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default().trigger_count(3)).unwrap();
    /// for i in 0..3 { conn.put(format!("m{i}"), i).unwrap(); }
    /// assert_eq!(chan.get().unwrap().len(), 2);   // at most max_buffers per get
    /// assert_eq!(chan.get().unwrap().len(), 1);
    /// ```
    pub fn get(&self) -> Result<Vec<Message>, GetError> {
        let mut out = Vec::new();
        self.get_into(&mut out, None).map(|()| out)
    }

    /// Like [`get`](Self::get), waiting at most `timeout` on a blocking channel.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// # use std::time::Duration;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// assert_eq!(chan.get_timeout(Duration::from_millis(10)).unwrap_err(), GetError::TimedOut);
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<Message>, GetError> {
        let mut out = Vec::new();
        self.get_into(&mut out, Some(timeout)).map(|()| out)
    }

    /// Takes a batch if one is visible, never waiting.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// assert_eq!(chan.try_get().unwrap_err(), GetError::WouldBlock);
    /// ```
    pub fn try_get(&self) -> Result<Vec<Message>, GetError> {
        let mut out = Vec::new();
        self.try_get_into(&mut out).map(|()| out)
    }

    /// Appends a batch to `out` if one is visible, never waiting; reusing `out`
    /// avoids an allocation per get.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    /// let mut batch = Vec::with_capacity(64);
    /// for i in 0..3 {
    ///     conn.put("x", i).unwrap();
    ///     chan.try_get_into(&mut batch).unwrap();
    ///     assert_eq!(batch.len(), 1);
    ///     batch.clear();                          // reuse the vector for the next get
    /// }
    /// ```
    pub fn try_get_into(&self, out: &mut Vec<Message>) -> Result<(), GetError> {
        let before = out.len();
        let wake = {
            let mut st = lock(&self.shared.state);
            if st.core.is_destroyed() {
                return Err(GetError::Destroyed);
            }
            self.shared.take_batch(&mut st, out)
        };
        self.shared.wake(wake);
        if out.len() > before {
            Ok(())
        } else {
            Err(GetError::WouldBlock)
        }
    }

    /// Appends a batch to `out`, as [`get`](Self::get) (`timeout: None`) or
    /// [`get_timeout`](Self::get_timeout) do.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// # use std::time::Duration;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    /// conn.put("x", 0).unwrap();
    /// let mut batch = Vec::new();
    /// chan.get_into(&mut batch, Some(Duration::from_secs(1))).unwrap();
    /// assert_eq!(batch.len(), 1);
    /// ```
    pub fn get_into(
        &self,
        out: &mut Vec<Message>,
        timeout: Option<Duration>,
    ) -> Result<(), GetError> {
        let deadline = timeout.and_then(crate::link::deadline_after);
        let before = out.len();
        let mut st = lock(&self.shared.state);
        loop {
            if st.core.is_destroyed() {
                return Err(GetError::Destroyed);
            }
            let wake = self.shared.take_batch(&mut st, out);
            if out.len() > before {
                drop(st);
                self.shared.wake(wake);
                return Ok(());
            }
            if self.shared.nonblocking {
                return Err(GetError::WouldBlock);
            }
            st.core.begin_wait();
            event_listener::listener!(self.shared.getters => listener);
            drop(st);
            let timed_out = match deadline {
                Some(at) => listener.wait_deadline(at).is_none(),
                None => {
                    listener.wait();
                    false
                }
            };
            st = lock(&self.shared.state);
            st.core.end_wait(!timed_out, false);
            if timed_out {
                // One last look, so that a batch announced to this getter as it
                // gave up is not stranded (B13).
                if st.core.is_destroyed() {
                    return Err(GetError::Destroyed);
                }
                let wake = self.shared.take_batch(&mut st, out);
                drop(st);
                self.shared.wake(wake);
                return if out.len() > before {
                    Ok(())
                } else {
                    Err(GetError::TimedOut)
                };
            }
        }
    }

    /// Waits until a get would find messages, without a thread (B08, B13). A
    /// task waiting here counts as a waiting getter: a trigger wakes it instead of
    /// firing the event.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    /// conn.put("x", 0).unwrap();
    /// chan.readable().await.unwrap();
    /// assert_eq!(chan.try_get().unwrap().len(), 1);
    /// # });
    /// ```
    pub async fn readable(&self) -> Result<(), GetError> {
        loop {
            let listener = {
                let mut st = lock(&self.shared.state);
                if st.core.is_destroyed() {
                    return Err(GetError::Destroyed);
                }
                if st.core.has_ready() {
                    return Ok(());
                }
                st.core.begin_wait();
                self.shared.getters.listen()
            };
            let guard = WaitGuard {
                chan: &self.shared,
                done: false,
            };
            listener.await;
            guard.finish();
        }
    }

    /// Takes the next batch, waiting without a thread (the async twin of
    /// [`get`](Self::get)). Works on blocking and non-blocking channels alike.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    /// conn.put("hi", 0).unwrap();
    /// let batch = chan.recv().await.unwrap();
    /// assert_eq!(batch[0].data(), b"hi");
    /// # });
    /// ```
    pub async fn recv(&self) -> Result<Vec<Message>, GetError> {
        loop {
            match self.try_get() {
                Err(GetError::WouldBlock) => self.readable().await?,
                other => return other,
            }
        }
    }

    /// A one-line dump of the channel's and its connections' counters, for
    /// diagnosing a stalled run. The format is not stable.
    #[doc(hidden)]
    pub fn debug_state(&self) -> String {
        let st = lock(&self.shared.state);
        let mut out = format!(
            "chid {} destroyed {} waiting {} ready [{}]",
            self.shared.chid,
            st.core.is_destroyed(),
            st.core.waiting(),
            st.core
                .ready()
                .map(|k| k.0.coid.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        for conn in st.conns.iter().filter_map(|w| w.upgrade()) {
            out.push_str(&format!(" | {}", conn.debug_state()));
        }
        out
    }

    /// The event file descriptor, when the channel was created with
    /// [`ChannelEvent::Fd`]. It becomes readable on a trigger no getter took.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default().event(ChannelEvent::Fd)).unwrap();
    /// let fd = chan.event_fd().expect("created with ChannelEvent::Fd");
    /// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    /// conn.put("x", 0).unwrap();
    /// let mut p = libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(&fd), events: libc::POLLIN, revents: 0 };
    /// assert_eq!(unsafe { libc::poll(&mut p, 1, 1000) }, 1);   // readable: a batch is ready
    /// chan.clear_event_fd();
    /// assert_eq!(chan.try_get().unwrap().len(), 1);
    /// ```
    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.shared.sink {
            EventSink::Fd(fd) => Some(fd.as_fd()),
            _ => None,
        }
    }

    /// Resets the event file descriptor after it fired (reads its counter).
    pub fn clear_event_fd(&self) {
        if let EventSink::Fd(fd) = &self.shared.sink {
            let mut v: u64 = 0;
            // SAFETY: reads at most 8 bytes into a live u64 from an eventfd we own;
            // EAGAIN (nothing to clear) is fine.
            let _ = unsafe {
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(fd),
                    (&mut v as *mut u64).cast(),
                    8,
                )
            };
        }
    }

    /// Destroys the channel (QNX `asyncmsg_channel_destroy`, B15): waiting getters
    /// wake with [`GetError::Destroyed`]; messages not yet taken are called back
    /// with [`ErrorKind::Destroyed`](crate::ErrorKind::Destroyed) on their
    /// senders' delivery threads; later puts and flushes fail. Dropping the channel
    /// does the same.
    ///
    /// It takes `&self`, so a channel shared between threads (an `Arc<Channel>`)
    /// can be destroyed while others wait in `get`; destroying twice does nothing.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// chan.destroy();
    /// assert_eq!(chan.get().unwrap_err(), GetError::Destroyed);
    /// ```
    pub fn destroy(&self) {
        let shared = &self.shared;
        if shared.destroyed.swap(true, Ordering::AcqRel) {
            return;
        }
        let conns = {
            let mut st = lock(&shared.state);
            st.core.destroy();
            std::mem::take(&mut st.conns)
        };
        shared.getters.notify(usize::MAX);
        registry::remove(shared);
        for conn in conns.iter().filter_map(|w| w.upgrade()) {
            conn.queued.store(false, Ordering::SeqCst);
            let failed = conn.close(asyncmsg_core::ErrorKind::Destroyed);
            crate::node::queue_failed(conn.delivery(), failed);
        }
    }
}

struct WaitGuard<'a> {
    chan: &'a ChanShared,
    done: bool,
}

impl WaitGuard<'_> {
    fn finish(mut self) {
        self.done = true;
        lock(&self.chan.state).core.end_wait(true, false);
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Cancelled while waiting: do not strand a batch announced to us.
            let wake = {
                let mut st = lock(&self.chan.state);
                st.core.end_wait(false, true)
            };
            self.chan.wake(wake);
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.destroy();
    }
}
