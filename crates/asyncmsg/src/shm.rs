//! The shared-memory transport: connections between processes of one host
//! (B17–B22).
//!
//! ## Finding a channel, and the handshake
//! Every process with a channel listens on `<runtime dir>/node-<pid>.sock`; a
//! published name is a file `<runtime dir>/names/<name>` saying `pid chid`
//! (see [`asyncmsg_shm::names`]). A connector opens the listener's Unix socket
//! and asks for the channel (`Query`); the channel's process reads the
//! connector's uid and gid from the kernel (`SO_PEERCRED`), checks them against
//! the channel's `mode` (B18) and answers with the channel's buffer size. The
//! connector then creates the connection's segment (a sealed memfd holding the
//! counters and the ring, [`asyncmsg_shm::ring`]) and passes it with its node's
//! delivery bell and buffer pool (`Attach`, `SCM_RIGHTS`); the receiver checks
//! the segment and answers with the channel's bell and doorbell.
//!
//! ## After the handshake
//! Messages move through the segment with the same counter protocol as in
//! process (see `link.rs`): the sender publishes `visible` and raises `queued`,
//! then rings the channel's bell (waking a sleeping getter) and, when the
//! receiving process asked for it (an event to fire, an async getter), signals
//! the channel's doorbell; the receiver's gets take with a compare-exchange on
//! `taken`; a receiver that lets messages go marks them released, raises
//! `delivery_pending` and rings the sender node's delivery bell.
//!
//! The socket stays open for the connection's life: it is how each side learns
//! that the other went away (B22). A sender that detaches marks `taken`
//! closed and shuts its end; a receiver whose channel is destroyed, or that
//! found the ring corrupt (B21), sends one byte saying so. End of file without
//! either means the peer's process is gone: the receiver records a lost peer;
//! the sender calls back everything not given back with `PeerLost`.
//!
//! Memfds never appear in `/dev/shm`: a segment lives exactly as long as the
//! processes that map it.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use asyncmsg_core::{ErrorKind, Wake};
use asyncmsg_shm::names;
use asyncmsg_shm::pool::{Pool, PoolBuf, PoolView};
use asyncmsg_shm::ring::{Bell, CLOSED, Location, RecvRing, SendRing};
use asyncmsg_shm::sys::{self, EventFd, PeerCred, PollEvent, Poller};

use crate::SendBuf;
use crate::channel::{ChannelId, Message, PeerLost};
use crate::connection::{Connection, ConnectionAttr, check_attr, next_coid};
use crate::error::{ChannelError, ConnectError};
use crate::link::{ChanShared, ConnKey, ConnShared, Item, lock};
use crate::node::{Job, Node, RELEASED_REMOTELY};
use crate::registry;

/// Server-side connection ids (QNX `scoid`) of links from other processes.
static NEXT_SCOID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

/// Protocol version of the handshake frames.
const VERSION: u32 = 1;
/// How long either side of a handshake waits for the other.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the reactor polls for more events before it sleeps.
const REACTOR_LINGER: Duration = Duration::from_micros(50);

/// Largest payload a slot holds inline; larger messages go through the pool.
const MAX_INLINE: usize = 1024;

const Q_QUERY: u32 = u32::from_le_bytes(*b"AMQ1");
/// A connection to a synchronous channel ([`crate::sync`]).
const Q_SYNC: u32 = u32::from_le_bytes(*b"AMS1");
const Q_ATTACH: u32 = u32::from_le_bytes(*b"AMA1");

const ST_OK: u32 = 0;
const ST_NOT_FOUND: u32 = 1;
const ST_DENIED: u32 = 2;
const ST_DESTROYED: u32 = 3;
const ST_BAD: u32 = 4;

/// One byte a receiver sends to its sender before it drops the link.
const BYE_DESTROYED: u8 = b'D';
const BYE_PROTOCOL: u8 = b'P';

/// A frame of the handshake: four little-endian words.
fn frame(a: u32, b: u32, c: u64) -> [u8; 16] {
    let mut f = [0u8; 16];
    f[0..4].copy_from_slice(&a.to_le_bytes());
    f[4..8].copy_from_slice(&b.to_le_bytes());
    f[8..16].copy_from_slice(&c.to_le_bytes());
    f
}

fn unframe(f: &[u8; 16]) -> (u32, u32, u64) {
    let word = |r: std::ops::Range<usize>| -> [u8; 4] { f[r].try_into().unwrap_or([0; 4]) };
    (
        u32::from_le_bytes(word(0..4)),
        u32::from_le_bytes(word(4..8)),
        u64::from_le_bytes(f[8..16].try_into().unwrap_or([0; 8])),
    )
}

/// Reads one frame (and any descriptors sent with it).
fn read_frame(sock: &UnixStream, fds: &mut Vec<OwnedFd>) -> io::Result<[u8; 16]> {
    let mut f = [0u8; 16];
    let mut got = 0;
    while got < f.len() {
        let n = sys::recv_with_fds(sock, &mut f[got..], fds)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection during the handshake",
            ));
        }
        got += n;
    }
    Ok(f)
}

// ---------------------------------------------------------------------------
// Sender side
// ---------------------------------------------------------------------------

/// The sender's end of a link to a channel of another process.
pub(crate) struct SendLink {
    pub(crate) ring: SendRing,
    pub(crate) pid: u32,
    pub(crate) chid: i32,
    pub(crate) buffer_size: usize,
    chan_bell: Bell,
    doorbell: EventFd,
    pool: Arc<Pool>,
    sock: UnixStream,
}

impl SendLink {
    /// Tells the receiving process that the connection raised a batch.
    pub(crate) fn announce(&self) {
        self.chan_bell.ring();
        if self.chan_bell.wanted().load(Ordering::SeqCst) > 0 {
            self.doorbell.signal();
        }
    }

    /// A copy of `buf` in the shared pool when it fits no slot and does not
    /// live in this link's pool already; `Err` when the pool is full.
    pub(crate) fn spill(&self, buf: &SendBuf) -> Result<Option<PoolBuf>, ()> {
        if buf.len() <= self.ring.inline_capacity() || self.in_pool(buf) {
            return Ok(None);
        }
        let mut copy = self.pool.alloc(buf.len()).ok_or(())?;
        copy.copy_from_slice(buf);
        Ok(Some(copy))
    }

    fn in_pool(&self, buf: &SendBuf) -> bool {
        buf.pool_buf()
            .is_some_and(|p| Arc::ptr_eq(p.pool(), &self.pool))
    }

    /// Writes message `seq` into the segment: inline, or as a pool reference.
    ///
    /// # Safety
    /// Slot `seq` is the caller's: the core accepted the put (so its previous
    /// message completed) and `seq` is not yet published.
    pub(crate) unsafe fn write(&self, seq: u64, item: &Item) {
        let buf = &item.buf;
        let pooled = item
            .spill()
            .or_else(|| buf.pool_buf().filter(|_| self.in_pool(buf)));
        match pooled {
            Some(p) if buf.len() > self.ring.inline_capacity() => {
                // SAFETY: forwarded from this function's contract.
                unsafe { self.ring.write_pool(seq, p.offset(), buf.len() as u32) }
            }
            // SAFETY: forwarded; the payload fits inline (checked by `spill`).
            _ => unsafe { self.ring.write_inline(seq, buf) },
        }
    }

    /// The connection was detached: the receiver drops its end.
    pub(crate) fn detached(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}

/// Connects to channel `id` of another process.
pub(crate) fn connect_id(
    node: &Node,
    id: ChannelId,
    attr: ConnectionAttr,
) -> Result<Connection, ConnectError> {
    if id.nd != 0 {
        return Err(ConnectError::Unsupported(format!(
            "channel {}/{}/{} on another node",
            id.nd, id.pid, id.chid
        )));
    }
    connect_to(
        node,
        id.pid,
        id.chid,
        attr,
        &format!("pid {} chid {}", id.pid, id.chid),
    )
}

/// Connects to the channel published under `name` on this host.
pub(crate) fn connect_name(
    node: &Node,
    name: &str,
    attr: ConnectionAttr,
) -> Result<Connection, ConnectError> {
    let (pid, chid) = lookup_name(name)?;
    connect_to(node, pid, chid, attr, name)
}

/// The `(pid, chid)` published under `name` on this host; a name that cannot
/// be published (or is not) is not found.
pub(crate) fn lookup_name(name: &str) -> Result<(u32, i32), ConnectError> {
    let dir = names::runtime_dir()?;
    match names::lookup(&dir, name) {
        Ok(Some(e)) => Ok((e.pid, e.chid)),
        Ok(None) => Err(ConnectError::NotFound(name.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            Err(ConnectError::NotFound(name.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens the listener of process `pid`, asks for channel `chid` of the kind
/// `query` names and reads the answer: a socket whose handshake may go on,
/// and the answer's two words. `what` names the target in errors.
fn dial(
    pid: u32,
    chid: i32,
    query: u32,
    what: &str,
) -> Result<(UnixStream, u32, u64), ConnectError> {
    let dir = names::runtime_dir()?;
    let sock = match UnixStream::connect(names::node_socket_path(&dir, pid)) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ConnectError::NotFound(what.to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    sock.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    (&sock).write_all(&frame(query, VERSION, chid as u32 as u64))?;
    let (status, a, b) = unframe(&read_frame(&sock, &mut Vec::new())?);
    match status {
        ST_OK => Ok((sock, a, b)),
        ST_NOT_FOUND => Err(ConnectError::NotFound(what.to_owned())),
        ST_DENIED => Err(ConnectError::PermissionDenied),
        ST_DESTROYED => Err(ConnectError::Destroyed),
        other => Err(ConnectError::Protocol(format!(
            "unexpected answer {other} to a connect"
        ))),
    }
}

fn connect_to(
    node: &Node,
    pid: u32,
    chid: i32,
    attr: ConnectionAttr,
    what: &str,
) -> Result<Connection, ConnectError> {
    check_attr(&attr)?;
    let slots = attr.max_buffers.max(1).next_power_of_two();
    let coid = attr.coid.unwrap_or_else(next_coid);
    let link = handshake(node, pid, chid, slots, coid, what)?;
    Ok(Connection::attach_remote(node, Arc::new(link), attr, coid))
}

/// The connector's side of the handshake: a link with a fresh segment of
/// `slots` slots, attached to channel `chid` of process `pid`.
fn handshake(
    node: &Node,
    pid: u32,
    chid: i32,
    slots: u32,
    coid: i32,
    what: &str,
) -> Result<SendLink, ConnectError> {
    let (sock, _, buffer_size) = dial(pid, chid, Q_QUERY, what)?;
    let buffer_size = usize::try_from(buffer_size)
        .map_err(|_| ConnectError::Protocol("buffer size out of range".into()))?;
    let inline = buffer_size.clamp(64, MAX_INLINE).next_multiple_of(64);
    let mut ring = SendRing::create(slots, inline)?;
    let pool = node.shared.pool()?.clone();
    sys::send_with_fds(
        &sock,
        &frame(Q_ATTACH, VERSION, coid as u32 as u64),
        &[ring.fd(), node.shared.delivery.bell.fd(), pool.fd()],
    )?;
    let mut fds = Vec::new();
    let (status, scoid, _) = unframe(&read_frame(&sock, &mut fds)?);
    match status {
        ST_OK => {}
        ST_DESTROYED => return Err(ConnectError::Destroyed),
        ST_DENIED => return Err(ConnectError::PermissionDenied),
        other => {
            return Err(ConnectError::Protocol(format!(
                "channel refused the segment (answer {other})"
            )));
        }
    }
    if fds.len() != 2 {
        return Err(ConnectError::Protocol(
            "the channel sent no bell and doorbell".into(),
        ));
    }
    // The receiver has its own descriptor of the segment now.
    ring.release_fd();
    let doorbell = EventFd::from_fd(fds.pop().expect("two fds"));
    let chan_bell = Bell::open(fds.pop().expect("two fds"))?;
    sock.set_read_timeout(None)?;
    sock.set_nonblocking(true)?;
    let _ = scoid;
    Ok(SendLink {
        ring,
        pid,
        chid,
        buffer_size,
        chan_bell,
        doorbell,
        pool,
        sock,
    })
}

/// A sender's end of a shared-memory link with the handshake done and the
/// segment left to the caller: for tests that play a misbehaving peer (B21).
/// Not part of the API.
#[doc(hidden)]
#[derive(Debug)]
pub struct RawLink {
    link: SendLink,
}

impl RawLink {
    /// Attaches to the channel published under `name` with a ring of `slots`
    /// slots.
    pub fn attach(node: &Node, name: &str, slots: u32) -> Result<RawLink, ConnectError> {
        let (pid, chid) = lookup_name(name)?;
        let link = handshake(node, pid, chid, slots, next_coid(), name)?;
        Ok(RawLink { link })
    }

    /// The segment, to write anything into.
    pub fn ring(&self) -> &SendRing {
        &self.link.ring
    }

    /// Raises the connection's batch and rings the channel, as a trigger does.
    pub fn announce(&self) {
        self.link.ring.counters().queued.store(1, Ordering::SeqCst);
        self.link.announce();
    }

    /// Writes bytes into the link's socket, as a confused peer might.
    pub fn send_garbage(&self, bytes: &[u8]) -> io::Result<()> {
        (&self.link.sock).write_all(bytes)
    }
}

impl std::fmt::Debug for SendLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendLink")
            .field("pid", &self.pid)
            .field("chid", &self.chid)
            .finish_non_exhaustive()
    }
}

/// Watches a new connection's link, so that the sender learns when the
/// receiver goes away.
pub(crate) fn watch_sender(conn: &Arc<ConnShared>) {
    let crate::link::Peer::Remote(link) = &conn.peer else {
        return;
    };
    if let Some(r) = reactor() {
        r.watch(link.sock.as_fd(), Watch::Sender(Arc::downgrade(conn)));
    }
}

/// The receiver said goodbye, or its process is gone.
fn sender_link_event(conn: &Arc<ConnShared>) -> bool {
    let crate::link::Peer::Remote(link) = &conn.peer else {
        return true;
    };
    let mut byte = [0u8; 1];
    loop {
        match (&link.sock).read(&mut byte) {
            Ok(0) => {
                // End of file: whatever the receiver still held will never
                // come back. The delivery thread completes what was given back
                // first, then fails the rest (in order).
                conn.delivery().push(Job::Lost(conn.clone()));
                return true;
            }
            Ok(_) => {
                let reason = match byte[0] {
                    BYE_DESTROYED => ErrorKind::Destroyed,
                    _ => ErrorKind::Protocol,
                };
                let failed = conn.close(reason);
                crate::node::queue_failed(conn.delivery(), failed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => {
                conn.delivery().push(Job::Lost(conn.clone()));
                return true;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Receiver side
// ---------------------------------------------------------------------------

/// The receiver's end of a link from a sender in another process.
pub(crate) struct RemoteConn {
    /// This side's id of the connection (QNX `scoid`).
    pub(crate) scoid: i32,
    /// The sender's id of the connection (QNX `coid`), as it said.
    pub(crate) coid: i32,
    pub(crate) pid: u32,
    pub(crate) chid: i32,
    pub(crate) ring: RecvRing,
    pool: PoolView,
    sender_bell: Bell,
    max_len: usize,
    sock: UnixStream,
    closed: AtomicBool,
}

impl RemoteConn {
    /// Messages visible and untaken, checked; `None` when the sender closed the
    /// link or its counters are corrupt (see [`Self::why_broken`]).
    pub(crate) fn visible(&self) -> Option<u64> {
        let taken = self.ring.counters().taken.load(Ordering::Relaxed);
        if taken & CLOSED != 0 || self.closed.load(Ordering::Relaxed) {
            return None;
        }
        self.ring.check_visible(taken).ok()
    }

    /// Why [`Self::visible`] gave up on the link.
    pub(crate) fn why_broken(&self) -> ErrorKind {
        if self.ring.counters().taken.load(Ordering::Relaxed) & CLOSED != 0
            || self.closed.load(Ordering::Relaxed)
        {
            ErrorKind::Detached
        } else {
            ErrorKind::Protocol
        }
    }

    /// Takes `count` messages: every descriptor is checked first (B21), then
    /// `taken` moves with a compare-exchange, which fails if the sender closed
    /// the link meanwhile (then nothing is taken).
    pub(crate) fn take(
        self: &Arc<Self>,
        count: u64,
        out: &mut Vec<Message>,
    ) -> Result<(), ErrorKind> {
        let c = self.ring.counters();
        let start = c.taken.load(Ordering::Relaxed);
        if start & CLOSED != 0 {
            return Err(ErrorKind::Detached);
        }
        let end = start + count;
        for seq in start..end {
            self.ring
                .locate(seq, Some(self.pool.len()), self.max_len)
                .map_err(|_| ErrorKind::Protocol)?;
        }
        c.taken
            .compare_exchange(start, end, Ordering::SeqCst, Ordering::SeqCst)
            .map_err(|_| ErrorKind::Detached)?;
        out.reserve(count as usize);
        for seq in start..end {
            out.push(Message::remote(seq, self.clone()));
        }
        // A sender blocked in a flush waits for `taken`: its delivery thread
        // passes the news on.
        if c.sender_waiters.load(Ordering::SeqCst) > 0 {
            c.delivery_pending.store(1, Ordering::SeqCst);
            self.sender_bell.raise(RELEASED_REMOTELY);
            self.sender_bell.ring();
        }
        Ok(())
    }

    /// The bytes of a taken message; empty if the sender rewrote its
    /// descriptor into something invalid after the take.
    pub(crate) fn data(&self, seq: u64) -> &[u8] {
        match self.ring.locate(seq, Some(self.pool.len()), self.max_len) {
            Ok(Location::Inline { len }) => self.ring.inline(seq, len),
            Ok(Location::Pool { offset, len }) => self.pool.slice(offset, len).unwrap_or(&[]),
            Err(_) => &[],
        }
    }

    /// A taken message was let go: the sender's delivery thread completes it
    /// (told once per batch of releases, as in process).
    pub(crate) fn release(&self, seq: u64) {
        self.ring.release(seq);
        fence(Ordering::SeqCst);
        let pending = &self.ring.counters().delivery_pending;
        if pending.load(Ordering::Relaxed) == 0 && pending.swap(1, Ordering::SeqCst) == 0 {
            self.sender_bell.raise(RELEASED_REMOTELY);
            self.sender_bell.ring();
        }
    }

    /// The link's counters, for [`crate::Channel::debug_state`].
    pub(crate) fn debug_state(&self) -> String {
        let c = self.ring.counters();
        format!(
            "remote pid {} coid {} scoid {} visible {} taken {:#x} queued {} delivery_pending {} sender_waiters {} closed {}",
            self.pid,
            self.coid,
            self.scoid,
            c.visible.load(Ordering::SeqCst),
            c.taken.load(Ordering::SeqCst),
            c.queued.load(Ordering::SeqCst),
            c.delivery_pending.load(Ordering::SeqCst),
            c.sender_waiters.load(Ordering::SeqCst),
            self.closed.load(Ordering::SeqCst),
        )
    }

    /// Ends the link from this side; returns what to report as a lost peer.
    pub(crate) fn shut(&self, why: ErrorKind) -> Option<PeerLost> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return None;
        }
        let bye = match why {
            ErrorKind::Destroyed => Some(BYE_DESTROYED),
            ErrorKind::Protocol => Some(BYE_PROTOCOL),
            _ => None,
        };
        if let Some(b) = bye {
            let _ = (&self.sock).write(&[b]);
        }
        match why {
            ErrorKind::PeerLost | ErrorKind::Protocol => Some(PeerLost {
                pid: self.pid,
                scoid: self.scoid,
                reason: why,
            }),
            _ => None,
        }
    }
}

impl ChanShared {
    /// Whether connections from other processes are attached.
    pub(crate) fn has_remote(&self) -> bool {
        !lock(&self.state).remote.is_empty()
    }

    /// Drops a remote connection whose sender detached (`why` = Detached) or
    /// whose process is gone; a loss wakes a getter and fires the event, so
    /// the receiver hears of it.
    fn drop_remote(&self, r: &Arc<RemoteConn>, why: ErrorKind) {
        let lost = {
            let mut st = lock(&self.state);
            st.core.remove(&ConnKey::Remote(r.clone()));
            st.remote.retain(|x| !Arc::ptr_eq(x, r));
            r.shut(why)
        };
        if let Some(lost) = lost {
            lock(&self.lost).push(lost);
            self.getters.notify(usize::MAX);
            self.bell.ring_all();
            self.sink.fire(self.chid);
        }
    }
}

/// Whether `cred` may connect to a channel of this process with `mode` (B18):
/// the owner's, group's or others' write bit, as for a file, root included.
fn permitted(mode: u32, cred: &PeerCred) -> bool {
    let bits = if cred.uid == sys::current_uid() {
        mode >> 6
    } else if cred.gid == sys::current_gid() {
        mode >> 3
    } else {
        mode
    };
    bits & 0o2 != 0
}

/// The channel's side of a handshake, on the reactor thread.
fn accept_link(reactor: &Reactor, sock: UnixStream) -> io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    sock.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let cred = sys::peer_cred(&sock)?;
    let mut fds = Vec::new();
    let (kind, version, chid) = unframe(&read_frame(&sock, &mut fds)?);
    if kind == Q_SYNC && version == VERSION && fds.is_empty() {
        return accept_sync(reactor, sock, &cred, chid as u32 as i32);
    }
    if kind != Q_QUERY || version != VERSION || !fds.is_empty() {
        (&sock).write_all(&frame(ST_BAD, 0, 0))?;
        return Ok(());
    }
    let id = ChannelId {
        nd: 0,
        pid: std::process::id(),
        chid: chid as u32 as i32,
    };
    let chan = match registry::by_id(id) {
        Ok(c) if !c.destroyed.load(Ordering::Acquire) => c,
        Ok(_) => return (&sock).write_all(&frame(ST_DESTROYED, 0, 0)),
        Err(_) => return (&sock).write_all(&frame(ST_NOT_FOUND, 0, 0)),
    };
    if !permitted(chan.mode, &cred) {
        return (&sock).write_all(&frame(ST_DENIED, 0, 0));
    }
    (&sock).write_all(&frame(ST_OK, 0, chan.buffer_size as u64))?;
    let (kind, version, coid) = unframe(&read_frame(&sock, &mut fds)?);
    if kind != Q_ATTACH || version != VERSION || fds.len() != 3 {
        return (&sock).write_all(&frame(ST_BAD, 0, 0));
    }
    let pool_fd = fds.pop().expect("three fds");
    let bell_fd = fds.pop().expect("three fds");
    let ring_fd = fds.pop().expect("three fds");
    let (Ok(ring), Ok(sender_bell), Ok(pool)) = (
        RecvRing::open(ring_fd),
        Bell::open(bell_fd),
        PoolView::open(pool_fd),
    ) else {
        return (&sock).write_all(&frame(ST_BAD, 0, 0));
    };
    let fresh = match chan.doorbell.get() {
        Some(_) => None,
        None => Some(EventFd::new()?),
    };
    let doorbell = {
        // Under the channel lock: two handshakes at once make one doorbell.
        let _st = lock(&chan.state);
        if let (None, Some(fresh)) = (chan.doorbell.get(), fresh) {
            let d = chan.doorbell.get_or_init(|| fresh);
            reactor.watch(d.as_fd(), Watch::Doorbell(Arc::downgrade(&chan)));
        }
        chan.doorbell
            .get()
            .ok_or_else(|| io::Error::other("no doorbell"))?
    };
    let scoid = NEXT_SCOID.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(RemoteConn {
        scoid,
        coid: coid as u32 as i32,
        pid: cred.pid,
        chid: chan.chid,
        ring,
        pool,
        sender_bell,
        max_len: chan.buffer_size,
        sock,
        closed: AtomicBool::new(false),
    });
    {
        let mut st = lock(&chan.state);
        if st.core.is_destroyed() {
            return (&conn.sock).write_all(&frame(ST_DESTROYED, 0, 0));
        }
        st.remote.push(conn.clone());
    }
    let answered = sys::send_with_fds(
        &conn.sock,
        &frame(ST_OK, scoid as u32, 0),
        &[chan.bell.fd(), doorbell.as_fd()],
    )
    .and_then(|()| conn.sock.set_read_timeout(None))
    .and_then(|()| conn.sock.set_nonblocking(true));
    if let Err(e) = answered {
        chan.drop_remote(&conn, ErrorKind::Detached);
        return Err(e);
    }
    // The socket closes with the last holder of `conn` (the channel, or a
    // message still held), which also takes it out of the poller.
    reactor.watch(
        conn.sock.as_fd(),
        Watch::Receiver(Arc::downgrade(&conn), Arc::downgrade(&chan)),
    );
    Ok(())
}

/// The server's side of a synchronous connection's handshake.
fn accept_sync(reactor: &Reactor, sock: UnixStream, cred: &PeerCred, chid: i32) -> io::Result<()> {
    let Some(chan) = crate::sync::by_chid(chid) else {
        return (&sock).write_all(&frame(ST_NOT_FOUND, 0, 0));
    };
    if !permitted(chan.mode, cred) {
        return (&sock).write_all(&frame(ST_DENIED, 0, 0));
    }
    let peer = crate::sync::ServerPeer::new(sock, &chan, cred.pid);
    (&peer.sock).write_all(&frame(ST_OK, peer.scoid as u32, 0))?;
    // Reads go through `recv` with MSG_DONTWAIT on the reactor; writes (the
    // replies) block, bounded so that a client that stops reading cannot hold
    // a server for ever.
    peer.sock.set_read_timeout(None)?;
    reactor.watch(peer.sock.as_fd(), Watch::SyncServer(Arc::downgrade(&peer)));
    Ok(())
}

/// Opens a synchronous connection to channel `chid` of process `pid`.
pub(crate) fn open_sync(pid: u32, chid: i32) -> Result<Arc<crate::sync::ClientPeer>, ConnectError> {
    let Some(reactor) = reactor() else {
        return Err(ConnectError::Unsupported(
            "shared memory is not available in this process".into(),
        ));
    };
    let (sock, _scoid, _) = dial(pid, chid, Q_SYNC, &format!("pid {pid} chid {chid}"))?;
    sock.set_read_timeout(None)?;
    let peer = crate::sync::ClientPeer::new(sock);
    reactor.watch(peer.sock.as_fd(), Watch::SyncClient(Arc::downgrade(&peer)));
    Ok(peer)
}

/// The sender detached or its process is gone.
fn receiver_link_event(conn: &Arc<RemoteConn>, chan: &Arc<ChanShared>) -> bool {
    let mut byte = [0u8; 16];
    loop {
        let why = match (&conn.sock).read(&mut byte) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            // Senders send nothing after the handshake: a protocol error.
            Ok(n) if n > 0 => ErrorKind::Protocol,
            // End of file. A detach marks `taken` closed before it shuts the
            // socket; without the mark the sender's process is gone.
            _ if conn.ring.counters().taken.load(Ordering::SeqCst) & CLOSED != 0 => {
                ErrorKind::Detached
            }
            _ => ErrorKind::PeerLost,
        };
        chan.drop_remote(conn, why);
        return true;
    }
}

// ---------------------------------------------------------------------------
// The reactor: one thread per process watching sockets and doorbells
// ---------------------------------------------------------------------------

enum Watch {
    Listener,
    Sender(Weak<ConnShared>),
    Receiver(Weak<RemoteConn>, Weak<ChanShared>),
    Doorbell(Weak<ChanShared>),
    SyncClient(Weak<crate::sync::ClientPeer>),
    SyncServer(Weak<crate::sync::ServerPeer>),
}

struct Reactor {
    poller: Poller,
    listener: UnixListener,
    path: PathBuf,
    watches: Mutex<HashMap<u64, Watch>>,
    next: AtomicU64,
}

impl Reactor {
    fn watch(&self, fd: std::os::fd::BorrowedFd<'_>, w: Watch) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.watches).insert(token, w);
        if self.poller.add(fd, token).is_err() {
            lock(&self.watches).remove(&token);
        }
        token
    }

    /// Stops watching `token`; `fd` is its descriptor while still open.
    fn unwatch(&self, token: u64, fd: Option<std::os::fd::BorrowedFd<'_>>) {
        lock(&self.watches).remove(&token);
        if let Some(fd) = fd {
            let _ = self.poller.remove(fd);
        }
    }

    fn run(self: Arc<Self>) {
        let mut events: Vec<PollEvent> = Vec::new();
        // After handling events the reactor lingers a moment (polling without
        // sleeping, yielding the CPU to runnable threads) before it sleeps: a
        // request's reply, or the next request, then finds it awake, which
        // saves a wake-up per message of a synchronous exchange.
        let mut active_until: Option<std::time::Instant> = None;
        loop {
            let now = active_until.map(|_| std::time::Instant::now());
            let timeout = match (active_until, now) {
                (Some(until), Some(now)) if now < until => Some(Duration::ZERO),
                _ => None,
            };
            if self.poller.wait(&mut events, timeout).is_err() {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            if events.is_empty() {
                if timeout.is_some() {
                    std::thread::yield_now();
                } else {
                    active_until = None;
                }
                continue;
            }
            for ev in &events {
                self.handle(ev);
            }
            active_until = Some(std::time::Instant::now() + REACTOR_LINGER);
        }
    }

    fn handle(&self, ev: &PollEvent) {
        enum What {
            Listener,
            Sender(Option<Arc<ConnShared>>),
            Receiver(Option<(Arc<RemoteConn>, Arc<ChanShared>)>),
            Doorbell(Option<Arc<ChanShared>>),
            SyncClient(Option<Arc<crate::sync::ClientPeer>>),
            SyncServer(Option<Arc<crate::sync::ServerPeer>>),
        }
        let what = match lock(&self.watches).get(&ev.token) {
            None => return,
            Some(Watch::Listener) => What::Listener,
            Some(Watch::Sender(c)) => What::Sender(c.upgrade()),
            Some(Watch::Receiver(r, c)) => What::Receiver(r.upgrade().zip(c.upgrade())),
            Some(Watch::Doorbell(c)) => What::Doorbell(c.upgrade()),
            Some(Watch::SyncClient(p)) => What::SyncClient(p.upgrade()),
            Some(Watch::SyncServer(p)) => What::SyncServer(p.upgrade()),
        };
        match what {
            What::Listener => {
                loop {
                    match self.listener.accept() {
                        Ok((sock, _)) => {
                            // Each handshake on a thread of its own: a connector
                            // that stalls or misbehaves delays and fails its own
                            // link only, never the reactor.
                            let spawned = std::thread::Builder::new()
                                .name("asyncmsg-handshake".into())
                                .spawn(move || {
                                    if let Some(r) = reactor() {
                                        let _ = accept_link(r, sock);
                                    }
                                });
                            if spawned.is_err() {
                                // No thread to spare: the connector sees the
                                // socket close and fails its connect.
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
            What::Sender(Some(conn)) => {
                if sender_link_event(&conn)
                    && let crate::link::Peer::Remote(link) = &conn.peer
                {
                    self.unwatch(ev.token, Some(link.sock.as_fd()));
                }
            }
            What::Receiver(Some((conn, chan))) => {
                if receiver_link_event(&conn, &chan) {
                    self.unwatch(ev.token, Some(conn.sock.as_fd()));
                }
            }
            What::Doorbell(Some(chan)) => {
                if let Some(d) = chan.doorbell.get() {
                    d.drain();
                }
                let wake = {
                    let mut st = lock(&chan.state);
                    chan.poll_remote(&mut st, true)
                };
                chan.wake(wake);
            }
            What::SyncClient(Some(peer)) => {
                if peer.on_readable() {
                    self.unwatch(ev.token, Some(peer.sock.as_fd()));
                }
            }
            What::SyncServer(Some(peer)) => {
                if peer.on_readable() {
                    self.unwatch(ev.token, Some(peer.sock.as_fd()));
                }
            }
            // Its descriptor closed with it, which took it out of the poller.
            What::Sender(None)
            | What::Receiver(None)
            | What::Doorbell(None)
            | What::SyncClient(None)
            | What::SyncServer(None) => self.unwatch(ev.token, None),
        }
    }
}

fn reactor() -> Option<&'static Arc<Reactor>> {
    static R: OnceLock<Option<Arc<Reactor>>> = OnceLock::new();
    R.get_or_init(|| match start_reactor() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!(
                "asyncmsg: shared memory disabled in this process (cannot listen: {e}); \
                 in-process channels still work"
            );
            None
        }
    })
    .as_ref()
}

fn start_reactor() -> io::Result<Arc<Reactor>> {
    let dir = names::runtime_dir()?;
    let _ = names::remove_stale_sockets(&dir);
    let path = names::node_socket_path(&dir, std::process::id());
    // A socket of an earlier process with our pid (the pid was reused) is stale.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    listener.set_nonblocking(true)?;
    let r = Arc::new(Reactor {
        poller: Poller::new()?,
        listener,
        path,
        watches: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
    });
    r.watch(r.listener.as_fd(), Watch::Listener);
    let run = r.clone();
    std::thread::Builder::new()
        .name("asyncmsg-shm".into())
        .spawn(move || run.run())?;
    Ok(r)
}

/// Starts listening for connectors from other processes (once per process).
pub(crate) fn ensure_listening() {
    let _ = reactor();
}

/// Publishes `name` for the host's processes (B19).
pub(crate) fn publish_name(name: &str, chid: i32) -> Result<(), ChannelError> {
    if reactor().is_none() {
        // Nobody could connect: the name stays in-process.
        return Ok(());
    }
    let dir = names::runtime_dir()?;
    match names::publish(&dir, name, std::process::id(), chid) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(ChannelError::NameTaken(name.to_owned()))
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(ChannelError::InvalidArgument(
            "a name has 1 to 255 bytes, no '/', and no leading '.'",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Withdraws a destroyed channel's names from the host.
pub(crate) fn withdraw_names(chid: i32, list: &[String]) {
    if list.is_empty() {
        return;
    }
    if let Ok(dir) = names::runtime_dir() {
        for name in list {
            let _ = names::withdraw(&dir, name, std::process::id(), chid);
        }
    }
}

/// A name published on this host, as [`published_names`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedName {
    /// The name.
    pub name: String,
    /// The publishing process.
    pub pid: u32,
    /// Its channel.
    pub chid: i32,
}

/// Every live name published on this host (by any process of this user),
/// sorted by name. Names of processes that died are removed on the way.
///
/// ```
/// # use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let chan = node.create_channel(ChannelConfig::default()).unwrap();
/// let name = format!("doc-names-{}", std::process::id());
/// chan.publish(&name).unwrap();
/// let names = asyncmsg::published_names().unwrap();
/// assert!(names.iter().any(|n| n.name == name && n.chid == chan.chid()));
/// ```
pub fn published_names() -> io::Result<Vec<PublishedName>> {
    let dir = names::runtime_dir()?;
    let _ = names::remove_stale_sockets(&dir);
    Ok(names::list(&dir)?
        .into_iter()
        .map(|e| PublishedName {
            name: e.name,
            pid: e.pid,
            chid: e.chid,
        })
        .collect())
}

impl Drop for Reactor {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<SendLink>();
    is::<RemoteConn>();
    let _ = Wake::Nothing;
}
