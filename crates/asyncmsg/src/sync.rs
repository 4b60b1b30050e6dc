//! Synchronous channels: QNX's send/receive/reply and pulses, the companion a
//! QNX server waits on for both kinds of traffic (B23, B24).
//!
//! A [`SyncChannel`] (QNX `ChannelCreate`) receives, in arrival order,
//! pulses (small one-way notifications: an asyncmsg channel's event, a
//! client's [`SyncConnection::send_pulse`], a disconnect) and requests (a
//! client's [`SyncConnection::send`], which blocks until the server replies).
//! [`SyncChannel::publish`] (QNX `name_attach`) makes it findable by name from
//! every process of the host; [`Node::open`](crate::Node::open) (QNX
//! `name_open`, or `ConnectAttach` with a [`ChannelId`]) connects to it.
//!
//! Across processes a connection is a Unix stream socket to the server's
//! process, set up by the same handshake as asyncmsg connections (the channel's
//! `mode` checked against the client's kernel credentials, B18). Frames are
//! small fixed headers plus the bytes; the process's reactor reads them on
//! both sides. A client that goes away arrives at the server as a
//! [`PULSE_CODE_DISCONNECT`] pulse; a server that goes away fails the client's
//! pending sends with [`SendError::PeerLost`] (B24).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use event_listener::Event;

use crate::channel::ChannelId;
use crate::error::{ChannelError, ConnectError};
use crate::link::{deadline_after, lock, wait_for, wait_for_async};
use crate::node::Node;
use crate::pulse::{Pulse, PulseSender, PulseTarget};

/// The pulse code a server receives when a client's connection goes away (QNX
/// `_PULSE_CODE_DISCONNECT`); the pulse's `scoid` names the connection.
pub const PULSE_CODE_DISCONNECT: i8 = -33;
/// The message type of a connect request (QNX `_IO_CONNECT`): the first two
/// bytes (little-endian) of the request [`Node::open`](crate::Node::open) sends
/// when it opens a channel by name.
pub const IO_CONNECT: u16 = 0x100;
/// Largest request or reply, in bytes.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// What [`SyncChannel::receive`] returns.
#[derive(Debug)]
pub enum Received {
    /// A pulse: an asyncmsg channel's event, a client's pulse, or a
    /// [`PULSE_CODE_DISCONNECT`].
    Pulse(Pulse),
    /// A request waiting for its reply.
    Request(Request),
}

/// Whether a request is a client's connect request (QNX `_IO_CONNECT`, sent
/// by `name_open`) or a message of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A connect request: reply (status 0, no data) to accept the client, or
    /// with an error to refuse it. Its data starts with [`IO_CONNECT`].
    Connect,
    /// A client's message (QNX `MsgSend`).
    Message,
}

/// A request (QNX: what `MsgReceive` returns with a receive id). Answer it with
/// [`SyncChannel::reply`] or [`SyncChannel::reply_error`] by its
/// [`rcvid`](Self::rcvid).
#[derive(Debug)]
pub struct Request {
    rcvid: i32,
    kind: RequestKind,
    data: Vec<u8>,
    pid: u32,
    scoid: i32,
}

impl Request {
    /// The receive id to reply to (QNX `rcvid`).
    pub fn rcvid(&self) -> i32 {
        self.rcvid
    }

    /// Connect request or message.
    pub fn kind(&self) -> RequestKind {
        self.kind
    }

    /// The request's bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The bytes, owned.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The client's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The client's connection as the server knows it (QNX `scoid`).
    pub fn scoid(&self) -> i32 {
        self.scoid
    }
}

/// A server's answer (QNX: `MsgSend`'s return value and reply buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status the server replied with (QNX `MsgReply`'s `status`).
    pub status: i32,
    /// The reply's bytes.
    pub data: Vec<u8>,
}

/// Why a send got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The server answered with an error (QNX `MsgError`): this errno.
    #[error("the server answered with errno {0}")]
    Failed(i32),
    /// The server (its channel, or its process) went away (B24). QNX `ESRCH`.
    #[error("the server went away")]
    PeerLost,
    /// The connection was closed.
    #[error("connection closed")]
    Closed,
    /// The wait ran out (the request stays with the server; its reply, if
    /// any, is dropped). QNX `ETIMEDOUT`.
    #[error("timed out waiting for the reply")]
    TimedOut,
    /// The request is larger than [`MAX_MESSAGE`]. QNX `EMSGSIZE`.
    #[error("message of {0} bytes is too large")]
    TooLarge(usize),
}

impl SendError {
    /// The errno QNX's `MsgSend` would set.
    pub fn errno(&self) -> i32 {
        match self {
            SendError::Failed(e) => *e,
            SendError::PeerLost => libc::ESRCH,
            SendError::Closed => libc::EBADF,
            SendError::TimedOut => libc::ETIMEDOUT,
            SendError::TooLarge(_) => libc::EMSGSIZE,
        }
    }
}

/// Why a reply could not be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// No request waits under this receive id (already answered, or its client
    /// went away). QNX `ESRCH`.
    #[error("no request waits under receive id {0}")]
    NotFound(i32),
    /// The reply is larger than [`MAX_MESSAGE`]. QNX `EMSGSIZE`.
    #[error("reply of {0} bytes is too large")]
    TooLarge(usize),
}

/// Why a receive returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// Nothing arrived in time, or nothing is there (`try_receive`).
    #[error("nothing to receive")]
    Empty,
    /// The channel was destroyed.
    #[error("channel destroyed")]
    Destroyed,
}

/// Where a reply goes.
enum ReplyTo {
    Local(Arc<ReplySlot>),
    Remote { peer: Arc<ServerPeer>, id: u64 },
}

/// A client's wait for one reply.
struct ReplySlot {
    result: Mutex<Option<Result<Reply, SendError>>>,
    done: Event,
}

impl ReplySlot {
    fn new() -> Arc<Self> {
        Arc::new(ReplySlot {
            result: Mutex::new(None),
            done: Event::new(),
        })
    }

    fn complete(&self, r: Result<Reply, SendError>) {
        let mut slot = lock(&self.result);
        if slot.is_none() {
            *slot = Some(r);
        }
        drop(slot);
        self.done.notify(usize::MAX);
    }

    fn take(&self) -> Option<Result<Reply, SendError>> {
        lock(&self.result).take()
    }
}

struct Pending {
    to: ReplyTo,
    /// The client connection it came from, to fail it when the client goes.
    scoid: i32,
}

struct Incoming {
    queue: VecDeque<Received>,
    pending: HashMap<i32, Pending>,
    destroyed: bool,
}

/// A synchronous channel's shared state.
pub(crate) struct SyncShared {
    pub(crate) chid: i32,
    pub(crate) pid: u32,
    pub(crate) mode: u32,
    incoming: Mutex<Incoming>,
    ready: Event,
    /// Threads waiting for pulses only: a request must not wake just one of
    /// them, it would pass the request by and the wake-up would be lost.
    pulse_waiters: std::sync::atomic::AtomicUsize,
    next_rcvid: AtomicI32,
    next_scoid: AtomicI32,
    names: Mutex<Vec<String>>,
}

impl SyncShared {
    pub(crate) fn push_pulse(&self, pulse: Pulse) {
        let mut inc = lock(&self.incoming);
        if inc.destroyed {
            return;
        }
        inc.queue.push_back(Received::Pulse(pulse));
        drop(inc);
        self.wake_one();
    }

    /// Queues a request; `Err` gives the reply target back if the channel is
    /// destroyed.
    fn push_request(
        &self,
        kind: RequestKind,
        data: Vec<u8>,
        pid: u32,
        scoid: i32,
        to: ReplyTo,
    ) -> Result<(), ReplyTo> {
        let mut inc = lock(&self.incoming);
        if inc.destroyed {
            return Err(to);
        }
        let rcvid = self.next_rcvid.fetch_add(1, Ordering::Relaxed);
        inc.pending.insert(rcvid, Pending { to, scoid });
        inc.queue.push_back(Received::Request(Request {
            rcvid,
            kind,
            data,
            pid,
            scoid,
        }));
        drop(inc);
        self.wake_one();
        Ok(())
    }

    fn try_receive(&self) -> Result<Received, ReceiveError> {
        let mut inc = lock(&self.incoming);
        if let Some(r) = inc.queue.pop_front() {
            return Ok(r);
        }
        if inc.destroyed {
            Err(ReceiveError::Destroyed)
        } else {
            Err(ReceiveError::Empty)
        }
    }

    fn wake_one(&self) {
        if self.pulse_waiters.load(Ordering::SeqCst) == 0 {
            self.ready.notify_additional(1);
        } else {
            self.ready.notify(usize::MAX);
        }
    }

    /// The first pulse queued, leaving requests where they are.
    fn try_receive_pulse(&self) -> Result<Pulse, ReceiveError> {
        let mut inc = lock(&self.incoming);
        let at = inc
            .queue
            .iter()
            .position(|r| matches!(r, Received::Pulse(_)));
        if let Some(Received::Pulse(p)) = at.and_then(|i| inc.queue.remove(i)) {
            return Ok(p);
        }
        if inc.destroyed {
            Err(ReceiveError::Destroyed)
        } else {
            Err(ReceiveError::Empty)
        }
    }

    fn answer(&self, rcvid: i32, r: Result<Reply, SendError>) -> Result<(), ReplyError> {
        let pending = lock(&self.incoming)
            .pending
            .remove(&rcvid)
            .ok_or(ReplyError::NotFound(rcvid))?;
        match pending.to {
            ReplyTo::Local(slot) => {
                slot.complete(r);
                Ok(())
            }
            ReplyTo::Remote { peer, id } => peer
                .write_reply(id, &r)
                .map_err(|_| ReplyError::NotFound(rcvid)),
        }
    }

    /// A client connection went away: its pending requests are dropped (their
    /// client is gone) and the server hears of it (B24).
    fn disconnected(&self, scoid: i32) {
        let mut inc = lock(&self.incoming);
        inc.pending.retain(|_, p| p.scoid != scoid);
        drop(inc);
        self.push_pulse(Pulse {
            code: PULSE_CODE_DISCONNECT,
            value: 0,
            scoid,
        });
    }

    fn destroy(&self) {
        let pending = {
            let mut inc = lock(&self.incoming);
            if inc.destroyed {
                return;
            }
            inc.destroyed = true;
            inc.queue.clear();
            std::mem::take(&mut inc.pending)
        };
        // Clients waiting for a reply learn that the server is gone (B24).
        for (_, p) in pending {
            match p.to {
                ReplyTo::Local(slot) => slot.complete(Err(SendError::PeerLost)),
                ReplyTo::Remote { peer, .. } => peer.close(),
            }
        }
        self.ready.notify(usize::MAX);
        let names = std::mem::take(&mut *lock(&self.names));
        {
            let mut t = lock(registry());
            t.by_chid.remove(&self.chid);
            for n in &names {
                if t.by_name
                    .get(n)
                    .is_some_and(|w| std::ptr::eq(w.as_ptr(), self))
                {
                    t.by_name.remove(n);
                }
            }
        }
        crate::shm::withdraw_names(self.chid, &names);
        let clients = lock(peers()).remove(&self.chid).unwrap_or_default();
        for peer in clients {
            peer.close();
        }
    }
}

/// The process's synchronous channels, by chid and by name.
#[derive(Default)]
struct Table {
    by_chid: HashMap<i32, Weak<SyncShared>>,
    by_name: HashMap<String, Weak<SyncShared>>,
}

fn registry() -> &'static Mutex<Table> {
    static T: OnceLock<Mutex<Table>> = OnceLock::new();
    T.get_or_init(Default::default)
}

/// A synchronous channel of this process, by chid.
pub(crate) fn by_chid(chid: i32) -> Option<Arc<SyncShared>> {
    lock(registry()).by_chid.get(&chid).and_then(Weak::upgrade)
}

/// A synchronous channel (QNX `ChannelCreate`, `MsgReceive`, `MsgReply`). See
/// the [module documentation](self).
///
/// ```
/// use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let server = node.create_sync_channel(0o600).unwrap();
/// let client = node.open(server.id()).unwrap();
/// let t = std::thread::spawn(move || client.send(b"ping").unwrap());
/// let Received::Request(req) = server.receive().unwrap() else { panic!() };
/// assert_eq!(req.data(), b"ping");
/// server.reply(req.rcvid(), 0, b"pong").unwrap();
/// assert_eq!(t.join().unwrap(), Reply { status: 0, data: b"pong".to_vec() });
/// ```
pub struct SyncChannel {
    shared: Arc<SyncShared>,
    _node: Node,
}

impl std::fmt::Debug for SyncChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncChannel")
            .field("chid", &self.shared.chid)
            .finish_non_exhaustive()
    }
}

impl PulseTarget for SyncChannel {
    fn pulse_sender(&self) -> PulseSender {
        PulseSender::to_sync(&self.shared)
    }
}

impl SyncChannel {
    pub(crate) fn create(node: &Node, mode: u32) -> Result<SyncChannel, ChannelError> {
        let shared = Arc::new(SyncShared {
            chid: crate::channel::next_chid(),
            pid: std::process::id(),
            mode,
            incoming: Mutex::new(Incoming {
                queue: VecDeque::new(),
                pending: HashMap::new(),
                destroyed: false,
            }),
            ready: Event::new(),
            pulse_waiters: std::sync::atomic::AtomicUsize::new(0),
            next_rcvid: AtomicI32::new(1),
            next_scoid: AtomicI32::new(1),
            names: Mutex::new(Vec::new()),
        });
        lock(registry())
            .by_chid
            .insert(shared.chid, Arc::downgrade(&shared));
        crate::shm::ensure_listening();
        Ok(SyncChannel {
            shared,
            _node: node.clone(),
        })
    }

    /// QNX's `(nd, pid, chid)` of this channel.
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

    /// Publishes the channel under `name` for this process and the host (QNX
    /// `name_attach`); withdrawn when the channel is destroyed.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let server = node.create_sync_channel(0o600).unwrap();
    /// let name = format!("doc-sync-{}", std::process::id());
    /// server.publish(&name).unwrap();
    /// // QNX name_open: returns once the server accepted the connect request.
    /// let opener = std::thread::spawn(move || Node::new().unwrap().open(name.as_str()));
    /// let Received::Request(req) = server.receive().unwrap() else { panic!() };
    /// assert_eq!(req.kind(), RequestKind::Connect);          // QNX _IO_CONNECT
    /// server.reply(req.rcvid(), 0, &[]).unwrap();
    /// let client = opener.join().unwrap().unwrap();
    /// # drop(client);
    /// ```
    pub fn publish(&self, name: &str) -> Result<(), ChannelError> {
        crate::registry::check_name(name)?;
        {
            let mut t = lock(registry());
            if lock(&self.shared.incoming).destroyed {
                return Err(ChannelError::Destroyed);
            }
            if let Some(w) = t.by_name.get(name)
                && w.strong_count() > 0
                && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.shared))
            {
                return Err(ChannelError::NameTaken(name.to_owned()));
            }
            t.by_name
                .insert(name.to_owned(), Arc::downgrade(&self.shared));
        }
        if let Err(e) = crate::shm::publish_name(name, self.shared.chid) {
            lock(registry()).by_name.remove(name);
            return Err(e);
        }
        lock(&self.shared.names).push(name.to_owned());
        Ok(())
    }

    /// Waits for the next pulse or request (QNX `MsgReceive`).
    pub fn receive(&self) -> Result<Received, ReceiveError> {
        self.wait(None)
    }

    /// Waits at most `timeout`; [`ReceiveError::Empty`] when nothing came.
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Received, ReceiveError> {
        self.wait(Some(timeout))
    }

    /// The next pulse or request if one is there.
    pub fn try_receive(&self) -> Result<Received, ReceiveError> {
        self.shared.try_receive()
    }

    /// Waits for the next pulse or request without a thread.
    pub async fn recv(&self) -> Result<Received, ReceiveError> {
        wait_for_async(&self.shared.ready, || match self.shared.try_receive() {
            Err(ReceiveError::Empty) => None,
            other => Some(other),
        })
        .await
    }

    /// Waits for the next pulse, leaving requests queued for a later
    /// [`receive`](Self::receive) (QNX `MsgReceivePulse`).
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let server = node.create_sync_channel(0o600).unwrap();
    /// let client = std::sync::Arc::new(node.open(server.id()).unwrap());
    /// let c = client.clone();
    /// let t = std::thread::spawn(move || c.send(b"request").unwrap());
    /// while server.debug_queued() == 0 { std::thread::yield_now(); }
    /// client.send_pulse(3, 7).unwrap();
    /// let p = server.receive_pulse().unwrap();                 // passes the request by
    /// assert_eq!((p.code, p.value), (3, 7));
    /// let Received::Request(req) = server.receive().unwrap() else { panic!() };
    /// server.reply(req.rcvid(), 0, b"").unwrap();
    /// t.join().unwrap();
    /// ```
    pub fn receive_pulse(&self) -> Result<Pulse, ReceiveError> {
        self.wait_pulse(None)
    }

    /// As [`receive_pulse`](Self::receive_pulse), waiting at most `timeout`.
    pub fn receive_pulse_timeout(&self, timeout: Duration) -> Result<Pulse, ReceiveError> {
        self.wait_pulse(Some(timeout))
    }

    /// The first queued pulse, if any, leaving requests queued.
    pub fn try_receive_pulse(&self) -> Result<Pulse, ReceiveError> {
        self.shared.try_receive_pulse()
    }

    /// How many pulses and requests wait to be received.
    #[doc(hidden)]
    pub fn debug_queued(&self) -> usize {
        lock(&self.shared.incoming).queue.len()
    }

    fn wait_pulse(&self, timeout: Option<Duration>) -> Result<Pulse, ReceiveError> {
        let deadline = timeout.and_then(deadline_after);
        self.shared.pulse_waiters.fetch_add(1, Ordering::SeqCst);
        let _counted = DecOnDrop(&self.shared.pulse_waiters);
        wait_for(&self.shared.ready, deadline, || {
            match self.shared.try_receive_pulse() {
                Err(ReceiveError::Empty) => None,
                other => Some(other),
            }
        })
        .unwrap_or(Err(ReceiveError::Empty))
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<Received, ReceiveError> {
        let deadline = timeout.and_then(deadline_after);
        wait_for(&self.shared.ready, deadline, || {
            match self.shared.try_receive() {
                Err(ReceiveError::Empty) => None,
                other => Some(other),
            }
        })
        .unwrap_or(Err(ReceiveError::Empty))
    }

    /// Answers request `rcvid` (QNX `MsgReply`): the client's send returns
    /// `Reply { status, data }`.
    pub fn reply(&self, rcvid: i32, status: i32, data: &[u8]) -> Result<(), ReplyError> {
        if data.len() > MAX_MESSAGE {
            return Err(ReplyError::TooLarge(data.len()));
        }
        self.shared.answer(
            rcvid,
            Ok(Reply {
                status,
                data: data.to_vec(),
            }),
        )
    }

    /// Answers request `rcvid` with an error (QNX `MsgError`): the client's
    /// send fails with [`SendError::Failed`]`(errno)`.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let server = node.create_sync_channel(0o600).unwrap();
    /// let client = node.open(server.id()).unwrap();
    /// let t = std::thread::spawn(move || client.send(b"?"));
    /// let Received::Request(req) = server.receive().unwrap() else { panic!() };
    /// server.reply_error(req.rcvid(), 38).unwrap();            // ENOSYS
    /// assert_eq!(t.join().unwrap(), Err(SendError::Failed(38)));
    /// assert!(server.reply(req.rcvid(), 0, b"").is_err());      // answered once
    /// ```
    pub fn reply_error(&self, rcvid: i32, errno: i32) -> Result<(), ReplyError> {
        self.shared.answer(rcvid, Err(SendError::Failed(errno)))
    }

    /// Destroys the channel: waiting clients fail with
    /// [`SendError::PeerLost`], its names are withdrawn. Dropping does the same.
    pub fn destroy(&self) {
        self.shared.destroy();
    }
}

struct DecOnDrop<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for DecOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for SyncChannel {
    fn drop(&mut self) {
        self.destroy();
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// A connection to a synchronous channel (QNX `coid` from `name_open` or
/// `ConnectAttach`). Dropping it closes it; the server gets a
/// [`PULSE_CODE_DISCONNECT`] pulse.
pub struct SyncConnection {
    link: ClientLink,
    server_pid: u32,
    chid: i32,
    closed: AtomicBool,
}

impl std::fmt::Debug for SyncConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncConnection")
            .field("server_pid", &self.server_pid)
            .field("chid", &self.chid)
            .finish_non_exhaustive()
    }
}

enum ClientLink {
    Local { chan: Weak<SyncShared>, scoid: i32 },
    Remote(Arc<ClientPeer>),
}

impl SyncConnection {
    /// Connects to `target`. By name (QNX `name_open`) the server must accept
    /// a connect request first, within `timeout` if given; by id (QNX
    /// `ConnectAttach`) no request is sent.
    pub(crate) fn open(
        target: crate::node::Target,
        timeout: Option<Duration>,
    ) -> Result<SyncConnection, ConnectError> {
        let connect_request = matches!(target, crate::node::Target::Address(_));
        let (pid, chid, forced) = match target {
            crate::node::Target::Id(id) => {
                if id.nd != 0 {
                    return Err(ConnectError::Unsupported(format!(
                        "channel {}/{}/{} on another node",
                        id.nd, id.pid, id.chid
                    )));
                }
                (id.pid, id.chid, false)
            }
            crate::node::Target::Address(addr) => resolve(&addr)?,
        };
        let me = std::process::id();
        let link = if pid == me && !forced {
            let chan =
                by_chid(chid).ok_or_else(|| ConnectError::NotFound(format!("chid {chid}")))?;
            let scoid = chan.next_scoid.fetch_add(1, Ordering::Relaxed);
            ClientLink::Local {
                chan: Arc::downgrade(&chan),
                scoid,
            }
        } else {
            ClientLink::Remote(crate::shm::open_sync(pid, chid)?)
        };
        let conn = SyncConnection {
            link,
            server_pid: pid,
            chid,
            closed: AtomicBool::new(false),
        };
        if connect_request {
            let mut hello = vec![0u8; 16];
            hello[..2].copy_from_slice(&IO_CONNECT.to_le_bytes());
            match conn.request(RequestKind::Connect, hello, timeout) {
                Ok(_) => {}
                Err(SendError::TimedOut) => return Err(ConnectError::TimedOut),
                Err(SendError::Failed(e)) if e == libc::EACCES || e == libc::EPERM => {
                    return Err(ConnectError::PermissionDenied);
                }
                Err(SendError::PeerLost) => return Err(ConnectError::Destroyed),
                Err(e) => {
                    return Err(ConnectError::Protocol(format!(
                        "the server refused the connect request: {e}"
                    )));
                }
            }
        }
        Ok(conn)
    }

    /// The server's process id (QNX `ConnectServerInfo`'s `pid`).
    pub fn server_pid(&self) -> u32 {
        self.server_pid
    }

    /// The server's channel.
    pub fn channel_id(&self) -> ChannelId {
        ChannelId {
            nd: 0,
            pid: self.server_pid,
            chid: self.chid,
        }
    }

    /// Sends a request and waits for the reply (QNX `MsgSend`).
    pub fn send(&self, data: &[u8]) -> Result<Reply, SendError> {
        self.request(RequestKind::Message, data.to_vec(), None)
    }

    /// As [`send`](Self::send), waiting at most `timeout` for the reply.
    pub fn send_timeout(&self, data: &[u8], timeout: Duration) -> Result<Reply, SendError> {
        self.request(RequestKind::Message, data.to_vec(), Some(timeout))
    }

    /// Sends a request and waits for the reply without a thread.
    pub async fn send_async(&self, data: &[u8]) -> Result<Reply, SendError> {
        let slot = self.start(RequestKind::Message, data.to_vec())?;
        wait_for_async(&slot.done, || slot.take()).await
    }

    /// Sends a pulse (QNX `MsgSendPulse`); it does not wait.
    pub fn send_pulse(&self, code: i8, value: i32) -> Result<(), SendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        match &self.link {
            ClientLink::Local { chan, scoid } => {
                let chan = chan.upgrade().ok_or(SendError::PeerLost)?;
                chan.push_pulse(Pulse {
                    code,
                    value,
                    scoid: *scoid,
                });
                Ok(())
            }
            ClientLink::Remote(peer) => peer.send_pulse(code, value),
        }
    }

    fn request(
        &self,
        kind: RequestKind,
        data: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Reply, SendError> {
        let slot = self.start(kind, data)?;
        let deadline = timeout.and_then(deadline_after);
        wait_for(&slot.done, deadline, || slot.take()).unwrap_or(Err(SendError::TimedOut))
    }

    fn start(&self, kind: RequestKind, data: Vec<u8>) -> Result<Arc<ReplySlot>, SendError> {
        if data.len() > MAX_MESSAGE {
            return Err(SendError::TooLarge(data.len()));
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let slot = ReplySlot::new();
        match &self.link {
            ClientLink::Local { chan, scoid } => {
                let chan = chan.upgrade().ok_or(SendError::PeerLost)?;
                chan.push_request(
                    kind,
                    data,
                    std::process::id(),
                    *scoid,
                    ReplyTo::Local(slot.clone()),
                )
                .map_err(|_| SendError::PeerLost)?;
            }
            ClientLink::Remote(peer) => peer.send_request(kind, &data, slot.clone())?,
        }
        Ok(slot)
    }

    /// Closes the connection (QNX `name_close`, `ConnectDetach`); the server
    /// gets a disconnect pulse. Dropping does the same.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        match &self.link {
            ClientLink::Local { chan, scoid } => {
                if let Some(chan) = chan.upgrade() {
                    chan.disconnected(*scoid);
                }
            }
            ClientLink::Remote(peer) => peer.close(),
        }
    }
}

/// A channel event may pulse the server through a connection (QNX: a
/// `SIGEV_PULSE` event's `sigev_coid`); a closed connection's pulses go
/// nowhere.
///
/// ```
/// use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let server = node.create_sync_channel(0o600).unwrap();
/// let coid = node.open(server.id()).unwrap();                  // QNX ConnectAttach
/// let chan = node.create_channel(ChannelConfig::default()
///     .event(ChannelEvent::pulse(&coid, 5, 42))).unwrap();
/// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
/// conn.put("x", 0).unwrap();
/// let p = server.receive_pulse().unwrap();                     // QNX MsgReceivePulse
/// assert_eq!((p.code, p.value), (5, 42));
/// ```
impl PulseTarget for SyncConnection {
    fn pulse_sender(&self) -> PulseSender {
        match &self.link {
            ClientLink::Local { chan, .. } => PulseSender::to_sync_weak(chan.clone()),
            ClientLink::Remote(peer) => PulseSender::to_remote(peer),
        }
    }
}

impl Drop for SyncConnection {
    fn drop(&mut self) {
        self.close();
    }
}

/// Resolves an address to `(pid, chid, over shared memory even in process)`:
/// a name of this process first, then the host's names; `shm://NAME` always
/// goes through the process boundary's path (B19).
fn resolve(addr: &str) -> Result<(u32, i32, bool), ConnectError> {
    let (scheme, name) = match addr.split_once("://") {
        None => (None, addr),
        Some((s, n)) => (Some(s), n),
    };
    if matches!(scheme, None | Some("inproc"))
        && let Some(chan) = lock(registry()).by_name.get(name).and_then(Weak::upgrade)
    {
        return Ok((chan.pid, chan.chid, false));
    }
    match scheme {
        None | Some("shm") => {}
        Some("inproc") => return Err(ConnectError::NotFound(addr.to_owned())),
        Some(_) => return Err(ConnectError::Unsupported(addr.to_owned())),
    }
    match crate::shm::lookup_name(name) {
        Ok((pid, chid)) => Ok((pid, chid, scheme == Some("shm"))),
        Err(ConnectError::NotFound(_)) => Err(ConnectError::NotFound(addr.to_owned())),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------
// Frames across processes
// ---------------------------------------------------------------------------

const F_REQUEST: u32 = u32::from_le_bytes(*b"SRQ1");
const F_CONNECT: u32 = u32::from_le_bytes(*b"SCN1");
const F_PULSE: u32 = u32::from_le_bytes(*b"SPL1");
const F_REPLY: u32 = u32::from_le_bytes(*b"SRP1");
const F_ERROR: u32 = u32::from_le_bytes(*b"SER1");

/// A frame header: kind, a 32-bit word, a 64-bit word, and the payload length.
const HEADER: usize = 24;

fn header(kind: u32, a: u32, b: u64, len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h[4..8].copy_from_slice(&a.to_le_bytes());
    h[8..16].copy_from_slice(&b.to_le_bytes());
    h[16..24].copy_from_slice(&(len as u64).to_le_bytes());
    h
}

/// A frame read from a peer.
struct Frame {
    kind: u32,
    a: u32,
    b: u64,
    data: Vec<u8>,
}

/// Reassembles frames from what a non-blocking socket gives.
#[derive(Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// Reads what is there; returns complete frames, or `Err` at end of file
    /// or on a malformed frame (B21: that link fails).
    fn read(&mut self, sock: &UnixStream, out: &mut Vec<Frame>) -> Result<(), ()> {
        let mut chunk = [0u8; 64 * 1024];
        // The peer's last frames may arrive together with its end (a server
        // that replies and exits): they are parsed before the end is told.
        let mut ended = false;
        loop {
            match asyncmsg_shm::sys::recv_nonblocking(sock, &mut chunk) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    ended = true;
                    break;
                }
            }
        }
        let mut at = 0;
        while self.buf.len() - at >= HEADER {
            let h = &self.buf[at..at + HEADER];
            let word = |r: std::ops::Range<usize>| -> [u8; 4] { h[r].try_into().unwrap_or([0; 4]) };
            let long = |r: std::ops::Range<usize>| -> [u8; 8] { h[r].try_into().unwrap_or([0; 8]) };
            let kind = u32::from_le_bytes(word(0..4));
            let a = u32::from_le_bytes(word(4..8));
            let b = u64::from_le_bytes(long(8..16));
            let len = u64::from_le_bytes(long(16..24));
            if !matches!(kind, F_REQUEST | F_CONNECT | F_PULSE | F_REPLY | F_ERROR)
                || len > MAX_MESSAGE as u64
            {
                return Err(());
            }
            let len = len as usize;
            if self.buf.len() - at - HEADER < len {
                break;
            }
            let data = self.buf[at + HEADER..at + HEADER + len].to_vec();
            out.push(Frame { kind, a, b, data });
            at += HEADER + len;
        }
        self.buf.drain(..at);
        if ended { Err(()) } else { Ok(()) }
    }
}

fn write_frame(sock: &UnixStream, h: [u8; HEADER], data: &[u8]) -> io::Result<()> {
    let mut w = sock;
    if data.len() <= SMALL_FRAME {
        // One write for header and bytes: one system call, one wake-up of the
        // reader.
        let mut buf = [0u8; HEADER + SMALL_FRAME];
        buf[..HEADER].copy_from_slice(&h);
        buf[HEADER..HEADER + data.len()].copy_from_slice(data);
        return w.write_all(&buf[..HEADER + data.len()]);
    }
    w.write_all(&h)?;
    w.write_all(data)
}

/// Frames up to this many bytes of payload go out in one write.
const SMALL_FRAME: usize = 4096;

/// The client's end of a connection to a channel of another process.
pub(crate) struct ClientPeer {
    pub(crate) sock: UnixStream,
    write: Mutex<()>,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, Arc<ReplySlot>>>,
    pub(crate) reader: Mutex<FrameReader>,
    lost: AtomicBool,
}

impl ClientPeer {
    pub(crate) fn new(sock: UnixStream) -> Arc<ClientPeer> {
        Arc::new(ClientPeer {
            sock,
            write: Mutex::new(()),
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            reader: Mutex::new(FrameReader::default()),
            lost: AtomicBool::new(false),
        })
    }

    fn send_request(
        &self,
        kind: RequestKind,
        data: &[u8],
        slot: Arc<ReplySlot>,
    ) -> Result<(), SendError> {
        if self.lost.load(Ordering::Acquire) {
            return Err(SendError::PeerLost);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.waiting).insert(id, slot);
        let f = match kind {
            RequestKind::Connect => F_CONNECT,
            RequestKind::Message => F_REQUEST,
        };
        let _w = lock(&self.write);
        if write_frame(&self.sock, header(f, 0, id, data.len()), data).is_err() {
            lock(&self.waiting).remove(&id);
            return Err(SendError::PeerLost);
        }
        // The server may have gone between the check and the write.
        if self.lost.load(Ordering::Acquire) {
            self.fail_all();
        }
        Ok(())
    }

    pub(crate) fn send_pulse(&self, code: i8, value: i32) -> Result<(), SendError> {
        let _w = lock(&self.write);
        write_frame(
            &self.sock,
            header(F_PULSE, code as u8 as u32, value as u32 as u64, 0),
            &[],
        )
        .map_err(|_| SendError::PeerLost)
    }

    /// The reactor: replies arrived, or the server is gone. Returns whether the
    /// link is over.
    pub(crate) fn on_readable(&self) -> bool {
        let mut frames = Vec::new();
        let r = lock(&self.reader).read(&self.sock, &mut frames);
        for f in frames {
            let slot = lock(&self.waiting).remove(&f.b);
            let Some(slot) = slot else { continue };
            match f.kind {
                F_REPLY => slot.complete(Ok(Reply {
                    status: f.a as i32,
                    data: f.data,
                })),
                F_ERROR => slot.complete(Err(SendError::Failed(f.a as i32))),
                _ => slot.complete(Err(SendError::PeerLost)),
            }
        }
        if r.is_err() {
            self.lost.store(true, Ordering::Release);
            self.fail_all();
            return true;
        }
        false
    }

    fn fail_all(&self) {
        let all: Vec<_> = lock(&self.waiting).drain().map(|(_, s)| s).collect();
        for s in all {
            s.complete(Err(SendError::PeerLost));
        }
    }

    fn close(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

/// The server's end of a connection from a client in another process.
pub(crate) struct ServerPeer {
    pub(crate) sock: UnixStream,
    pub(crate) chan: Weak<SyncShared>,
    pub(crate) pid: u32,
    pub(crate) scoid: i32,
    write: Mutex<()>,
    pub(crate) reader: Mutex<FrameReader>,
    gone: AtomicBool,
}

/// Every server-side peer of each channel, to close them when it is destroyed.
fn peers() -> &'static Mutex<HashMap<i32, Vec<Arc<ServerPeer>>>> {
    static P: OnceLock<Mutex<HashMap<i32, Vec<Arc<ServerPeer>>>>> = OnceLock::new();
    P.get_or_init(Default::default)
}

impl ServerPeer {
    /// A client of `chan` connected from process `pid`.
    pub(crate) fn new(sock: UnixStream, chan: &Arc<SyncShared>, pid: u32) -> Arc<ServerPeer> {
        let peer = Arc::new(ServerPeer {
            sock,
            chan: Arc::downgrade(chan),
            pid,
            scoid: chan.next_scoid.fetch_add(1, Ordering::Relaxed),
            write: Mutex::new(()),
            reader: Mutex::new(FrameReader::default()),
            gone: AtomicBool::new(false),
        });
        lock(peers())
            .entry(chan.chid)
            .or_default()
            .push(peer.clone());
        peer
    }

    fn write_reply(&self, id: u64, r: &Result<Reply, SendError>) -> io::Result<()> {
        let _w = lock(&self.write);
        match r {
            Ok(reply) => write_frame(
                &self.sock,
                header(F_REPLY, reply.status as u32, id, reply.data.len()),
                &reply.data,
            ),
            Err(e) => write_frame(&self.sock, header(F_ERROR, e.errno() as u32, id, 0), &[]),
        }
    }

    /// The reactor: requests or pulses arrived, or the client is gone (or sent
    /// garbage). Returns whether the link is over.
    pub(crate) fn on_readable(self: &Arc<Self>) -> bool {
        let mut frames = Vec::new();
        let r = lock(&self.reader).read(&self.sock, &mut frames);
        let Some(chan) = self.chan.upgrade() else {
            self.close();
            return true;
        };
        for f in frames {
            match f.kind {
                F_REQUEST | F_CONNECT => {
                    let kind = if f.kind == F_CONNECT {
                        RequestKind::Connect
                    } else {
                        RequestKind::Message
                    };
                    let to = ReplyTo::Remote {
                        peer: self.clone(),
                        id: f.b,
                    };
                    if chan
                        .push_request(kind, f.data, self.pid, self.scoid, to)
                        .is_err()
                    {
                        self.close();
                        return true;
                    }
                }
                F_PULSE => chan.push_pulse(Pulse {
                    code: f.a as u8 as i8,
                    value: f.b as u32 as i32,
                    scoid: self.scoid,
                }),
                // A client never sends replies: a protocol error.
                _ => {
                    self.close();
                    chan.disconnected(self.scoid);
                    return true;
                }
            }
        }
        if r.is_err() {
            if !self.gone.swap(true, Ordering::AcqRel) {
                chan.disconnected(self.scoid);
            }
            self.close();
            return true;
        }
        false
    }

    fn close(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        if let Some(list) = lock(peers()).get_mut(&self.chan_id()) {
            list.retain(|p| !std::ptr::eq(Arc::as_ptr(p), self));
        }
    }

    fn chan_id(&self) -> i32 {
        self.chan.upgrade().map_or(-1, |c| c.chid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().expect("a socket pair")
    }

    #[test]
    fn frames_split_across_reads_are_reassembled() {
        let (a, b) = pair();
        let mut r = FrameReader::default();
        let mut out = Vec::new();
        let h = header(F_REQUEST, 0, 42, 5);
        (&a).write_all(&h[..10]).unwrap();
        assert!(r.read(&b, &mut out).is_ok());
        assert!(out.is_empty());
        (&a).write_all(&h[10..]).unwrap();
        (&a).write_all(b"hel").unwrap();
        assert!(r.read(&b, &mut out).is_ok());
        assert!(out.is_empty());
        (&a).write_all(b"lo").unwrap();
        (&a).write_all(&header(F_PULSE, 3, 7, 0)).unwrap();
        assert!(r.read(&b, &mut out).is_ok());
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].kind, out[0].b, &out[0].data[..]),
            (F_REQUEST, 42, &b"hello"[..])
        );
        assert_eq!((out[1].kind, out[1].a, out[1].b), (F_PULSE, 3, 7));
    }

    #[test]
    fn garbage_unknown_kinds_and_oversize_lengths_fail_the_link() {
        for bad in [
            header(0xdead_beef, 0, 0, 0).to_vec(),
            header(F_REQUEST, 0, 0, MAX_MESSAGE + 1).to_vec(),
            b"garbage that is long enough for a header".to_vec(),
        ] {
            let (a, b) = pair();
            (&a).write_all(&bad).unwrap();
            let mut out = Vec::new();
            assert!(FrameReader::default().read(&b, &mut out).is_err());
        }
        // End of file fails the link too.
        let (a, b) = pair();
        drop(a);
        assert!(FrameReader::default().read(&b, &mut Vec::new()).is_err());
    }
}
