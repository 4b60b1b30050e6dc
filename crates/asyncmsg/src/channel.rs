//! Channels: where messages arrive (QNX `chid`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_listener::Event;

use crate::error::{ChannelError, GetError};
use crate::link::{ChanShared, ChanState, ConnShared, lock};
use crate::node::Node;
use crate::pulse::PulseSender;
use crate::registry;
use crate::shm::RemoteConn;

static NEXT_CHID: AtomicI32 = AtomicI32::new(1);

/// A process-unique channel id, shared by asyncmsg and synchronous channels
/// (a published name says `pid chid`, whichever kind it is).
pub(crate) fn next_chid() -> i32 {
    NEXT_CHID.fetch_add(1, Ordering::Relaxed)
}

/// Spins up to `spin` (never past `deadline`) until `done` says so.
fn spin_until(spin: Duration, deadline: Option<Instant>, done: impl Fn() -> bool) -> bool {
    if done() {
        return true;
    }
    if spin.is_zero() {
        return false;
    }
    let start = Instant::now();
    let mut until = start + spin;
    if let Some(at) = deadline {
        until = until.min(at);
    }
    let mut n = 0u32;
    loop {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
        if done() {
            return true;
        }
        n += 1;
        // Read the clock only every few rounds: it costs more than a look.
        if n % 8 == 0 && Instant::now() >= until {
            return false;
        }
    }
}

/// How long a blocking get spins before it sleeps, unless configured.
const DEFAULT_BUSY_POLL: Duration = Duration::ZERO;

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
    pub fn pulse(target: &impl crate::PulseTarget, code: i8, value: i32) -> Self {
        ChannelEvent::Pulse {
            target: target.pulse_sender(),
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
    pub(crate) busy_poll: Duration,
}

impl Default for ChannelConfig {
    /// Blocking, mode 0o600, 64 KiB messages, 64 messages per get, no event,
    /// no busy-polling before a getter sleeps.
    fn default() -> Self {
        ChannelConfig {
            nonblocking: false,
            mode: 0o600,
            buffer_size: 64 * 1024,
            max_buffers: 64,
            event: ChannelEvent::None,
            busy_poll: DEFAULT_BUSY_POLL,
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
    /// How long a blocking get spins, looking for a batch, before it sleeps
    /// (default: zero, sleep at once). Spinning saves the wake-up of a sleeping
    /// getter (a few microseconds, see the latency benches) when a core is to
    /// spare; on a machine with fewer cores than busy threads it takes the CPU
    /// from the very senders it waits for.
    pub fn busy_poll(mut self, spin: Duration) -> Self {
        self.busy_poll = spin;
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
    src: Source,
}

/// Where a message lies: in a connection of this process, or in a shared
/// segment of a sender in another process.
enum Source {
    Local(Arc<ConnShared>),
    Remote(Arc<RemoteConn>),
}

impl Message {
    pub(crate) fn local(seq: u64, conn: Arc<ConnShared>) -> Self {
        Message {
            seq,
            src: Source::Local(conn),
        }
    }

    pub(crate) fn remote(seq: u64, conn: Arc<RemoteConn>) -> Self {
        Message {
            seq,
            src: Source::Remote(conn),
        }
    }

    /// The message bytes.
    pub fn data(&self) -> &[u8] {
        match &self.src {
            // SAFETY: this message was taken by a get and is released only when
            // it is dropped, so its slot holds the sender's item, unchanged, for
            // as long as `self` (and so the returned borrow) lives.
            Source::Local(conn) => match unsafe { conn.ring.get(self.seq) } {
                Some(item) => item.buf.as_slice(),
                None => &[],
            },
            Source::Remote(conn) => conn.data(self.seq),
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
        let (nd, pid, chid, coid, scoid, redelivered) = match &self.src {
            Source::Local(c) => {
                // SAFETY: as in `data`: the slot holds the sender's item while
                // `self` lives.
                let again = unsafe { c.ring.get(self.seq) }
                    .and_then(|i| i.extra.as_ref())
                    .is_some_and(|e| e.redelivered);
                (c.nd, c.pid, c.channel().1, c.coid, c.coid, again)
            }
            Source::Remote(r) => (0, r.pid, r.chid, r.coid, r.scoid, false),
        };
        MsgInfo {
            nd,
            pid,
            tid: 0,
            chid,
            scoid,
            coid,
            msglen: len,
            srcmsglen: len,
            seq: self.seq,
            redelivered,
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
        match &self.src {
            // SAFETY: this message was taken by a get; dropping it is its one
            // release, and no borrow of its data outlives `self`.
            Source::Local(conn) => unsafe { conn.release(self.seq) },
            Source::Remote(conn) => conn.release(self.seq),
        }
    }
}

/// A sender in another process that went away while connected (B22), as
/// [`Channel::lost_peers`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLost {
    /// The sender's process.
    pub pid: u32,
    /// The connection's id on this side (as in [`MsgInfo::scoid`]).
    pub scoid: i32,
    /// Why: [`ErrorKind::PeerLost`](crate::ErrorKind::PeerLost) for a process
    /// that died, [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for a
    /// corrupt ring (B21).
    pub reason: crate::ErrorKind,
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
        let bell = asyncmsg_shm::ring::Bell::create()?;
        if !matches!(sink, EventSink::None) {
            // Senders in other processes must tell this process of every
            // trigger, so that the event fires even when no getter waits.
            bell.wanted().fetch_add(1, Ordering::SeqCst);
        }
        let chid = next_chid();
        let shared = Arc::new(ChanShared {
            chid,
            pid: std::process::id(),
            nonblocking: cfg.nonblocking,
            buffer_size: cfg.buffer_size,
            mode: cfg.mode,
            busy_poll: cfg.busy_poll,
            state: Mutex::new(ChanState::new(cfg.max_buffers)),
            getters: Event::new(),
            bell,
            destroyed: std::sync::atomic::AtomicBool::new(false),
            sink,
            names: Mutex::new(Vec::new()),
            lost: Mutex::new(Vec::new()),
            doorbell: std::sync::OnceLock::new(),
        });
        registry::insert(&shared);
        // Other processes reach the channel through this process's listener
        // (B19); a host where it cannot listen still has in-process channels.
        crate::shm::ensure_listening();
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
        crate::registry::check_name(name)?;
        if self.shared.destroyed.load(Ordering::Acquire) {
            return Err(ChannelError::Destroyed);
        }
        registry::publish(name, &self.shared)?;
        // Other processes of the host find it too (B19).
        if let Err(e) = crate::shm::publish_name(name, self.shared.chid) {
            registry::unpublish(name, &self.shared);
            return Err(e);
        }
        // A destroy that ran meanwhile withdrew the names it found, perhaps
        // before this one reached the host: withdraw it here then.
        if self.shared.destroyed.load(Ordering::SeqCst) {
            crate::shm::withdraw_names(self.shared.chid, &[name.to_owned()]);
            return Err(ChannelError::Destroyed);
        }
        Ok(())
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
        let ch = &*self.shared;
        let mut st = lock(&ch.state);
        loop {
            if st.core.is_destroyed() {
                return Err(GetError::Destroyed);
            }
            // Read before the look: any trigger after the look moves it.
            let seen = ch.bell.seen();
            let wake = ch.take_batch(&mut st, out);
            if out.len() > before {
                drop(st);
                ch.wake(wake);
                return Ok(());
            }
            if ch.nonblocking {
                drop(st);
                ch.wake(wake);
                return Err(GetError::WouldBlock);
            }
            st.core.begin_wait();
            drop(st);
            ch.wake(wake);
            // Every trigger a waiting getter must see moves the bell's word: a
            // local one decides to wake a getter and rings, a sender in another
            // process raises its connection and rings. So spin on the word for a
            // while, then sleep on it (counted as a sleeper, so that ringers
            // issue the wake-up system call).
            let mut woke = spin_until(ch.busy_poll, deadline, || ch.bell.moved(seen));
            let mut timed_out = false;
            if !woke {
                ch.bell.enter();
                let remaining = deadline.map(|at| at.saturating_duration_since(Instant::now()));
                if remaining != Some(Duration::ZERO) {
                    ch.bell.sleep(seen, remaining);
                }
                ch.bell.leave();
                woke = ch.bell.moved(seen);
                timed_out = !woke && deadline.is_some_and(|at| Instant::now() >= at);
            }
            st = lock(&ch.state);
            st.core.end_wait(woke, false);
            if timed_out {
                // One last look, so that a batch announced to this getter as it
                // gave up is not stranded (B13).
                if st.core.is_destroyed() {
                    return Err(GetError::Destroyed);
                }
                let wake = ch.take_batch(&mut st, out);
                drop(st);
                ch.wake(wake);
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
                let wake = self.shared.poll_remote(&mut st, false);
                if st.core.has_ready() {
                    drop(st);
                    self.shared.wake(wake);
                    return Ok(());
                }
                st.core.begin_wait();
                self.shared.getters.listen()
            };
            let guard = WaitGuard {
                chan: &self.shared,
                done: false,
            };
            // Senders in other processes cannot wake a task: while it waits,
            // they tell this process's reactor, which looks for them.
            let _wanted = WantReactor::new(&self.shared);
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
    /// How many connections have a batch waiting for a get (a test's way to
    /// wait for batches in flight to arrive).
    #[doc(hidden)]
    pub fn debug_ready(&self) -> usize {
        lock(&self.shared.state).core.ready().count()
    }

    /// How many messages a get could take now, over the connections that have
    /// a batch waiting (a test's way to wait for messages in flight).
    #[doc(hidden)]
    pub fn debug_visible(&self) -> u64 {
        let st = lock(&self.shared.state);
        st.core.ready().map(|k| k.debug_visible()).sum()
    }

    pub fn debug_state(&self) -> String {
        let st = lock(&self.shared.state);
        let mut out = format!(
            "chid {} destroyed {} waiting {} ready [{}]",
            self.shared.chid,
            st.core.is_destroyed(),
            st.core.waiting(),
            st.core
                .ready()
                .map(|k| k.coid().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        for conn in st.conns.iter().filter_map(|w| w.upgrade()) {
            out.push_str(&format!(" | {}", conn.debug_state()));
        }
        for r in &st.remote {
            out.push_str(&format!(" | {}", r.debug_state()));
        }
        out
    }

    /// Senders in other processes that went away since the last call (B22): a
    /// process that died (or closed its end of the link without detaching), or
    /// whose ring was found corrupt (B21). Their untaken messages are gone
    /// with them; messages already taken stay readable. A loss also fires the
    /// channel's event and wakes a waiting getter, so a receiver learns of it
    /// without polling.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// assert!(chan.lost_peers().is_empty());
    /// ```
    pub fn lost_peers(&self) -> Vec<PeerLost> {
        std::mem::take(&mut *lock(&self.shared.lost))
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
        if shared.destroyed.swap(true, Ordering::SeqCst) {
            return;
        }
        let (conns, remote) = {
            let mut st = lock(&shared.state);
            st.core.destroy();
            (
                std::mem::take(&mut st.conns),
                std::mem::take(&mut st.remote),
            )
        };
        shared.getters.notify(usize::MAX);
        shared.bell.ring_all();
        let names = registry::remove(shared);
        crate::shm::withdraw_names(shared.chid, &names);
        for conn in conns.iter().filter_map(|w| w.upgrade()) {
            conn.ctr().queued.store(0, Ordering::SeqCst);
            let failed = conn.close(asyncmsg_core::ErrorKind::Destroyed);
            crate::node::queue_failed(conn.delivery(), failed);
        }
        // Senders in other processes fail their untaken messages themselves,
        // told by the link.
        for r in remote {
            r.shut(asyncmsg_core::ErrorKind::Destroyed);
        }
    }
}

/// Counts an async getter in the channel bell's `wanted` while it lives.
struct WantReactor<'a> {
    chan: &'a ChanShared,
}

impl<'a> WantReactor<'a> {
    fn new(chan: &'a ChanShared) -> Self {
        chan.bell.wanted().fetch_add(1, Ordering::SeqCst);
        // A batch raised before the count was seen: look once more.
        if chan.has_remote() {
            let wake = {
                let mut st = lock(&chan.state);
                chan.poll_remote(&mut st, true)
            };
            chan.wake(wake);
        }
        WantReactor { chan }
    }
}

impl Drop for WantReactor<'_> {
    fn drop(&mut self) {
        self.chan.bell.wanted().fetch_sub(1, Ordering::SeqCst);
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
