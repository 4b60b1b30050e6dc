//! Between nodes over QUIC (B18–B21): `quic://HOST:PORT/NAME` and
//! `(nd, pid, chid)` through the node table.
//!
//! One QUIC connection joins a pair of nodes; each asyncmsg connection is one
//! bidirectional stream on it. The sender writes a `Hello`, the receiving
//! node answers `Accept` (or `Refuse`), then the sender writes one `DATA`
//! frame per trigger and the receiver answers with cumulative `ACK`s of what
//! its channel's getters took and let go.
//!
//! On the receiving node a stream feeds a *proxy*: a local connection into
//! the channel that carries the remote sender's messages (its `MsgInfo` names
//! the remote node, pid and coid), so the channel, its getters and its event
//! work exactly as in process. The proxy outlives its stream: after a lost
//! link the sender's next stream finds it again, learns how far it got
//! (`Accept::expect_seq`) and resends only the rest (B20: in order, once).
//!
//! On the sending node the connection's messages stay in their slots until
//! acknowledged; a link task reads them in place, one frame per trigger. While
//! the peer cannot be reached, puts go on up to `max_buffers`; the task
//! reconnects with backoff and, after the connection's `retry_for`, fails
//! every message it still holds with `PeerLost`.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use asyncmsg_quic::cert::{Home, Identity};
use asyncmsg_quic::endpoint::{QuicEndpoint, QuicError};
use asyncmsg_wire as wire;
use tokio::sync::Notify;

use crate::SendBuf;
use crate::channel::ChannelId;
use crate::connection::{Connection, ConnectionAttr, check_attr, next_coid};
use crate::error::{ConnectError, ErrorKind};
use crate::link::{ConnShared, LinkState, lock};
use crate::node::{Job, Node, NodeShared};
use asyncmsg_core::SendConfig;

/// The largest frame either side accepts: a batch of messages up to the
/// largest channel buffer.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// A batch is cut into frames of about this size (one write each).
const FRAME_TARGET: usize = 4 * 1024 * 1024;
/// Bytes read from a stream at a time, straight into its decoder.
const READ_CHUNK: usize = 256 * 1024;
/// How long the first connect may take before it fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Backoff between reconnect attempts: from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(1));

/// A node's QUIC transport.
pub(crate) struct QuicNode {
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    /// This node instance, as peers know it (de-duplication key).
    instance: u128,
    home: Home,
    identity: Identity,
    /// Outgoing links, from an ephemeral port.
    client: OnceLock<Arc<QuicEndpoint>>,
    /// The listening endpoint, once `Node::listen` was called.
    server: Mutex<Option<Arc<QuicEndpoint>>>,
    /// One QUIC connection per peer node.
    links: tokio::sync::Mutex<HashMap<SocketAddr, quinn::Connection>>,
    /// Proxies of remote senders' connections, by (sender instance, coid,
    /// chid).
    proxies: Mutex<HashMap<(u128, i32, i32), Arc<Proxy>>>,
    /// The node table: `nd` is the index + 1.
    nodes: Mutex<Vec<SocketAddr>>,
    node: Weak<NodeShared>,
}

impl QuicNode {
    /// The node's transport, started at the first need.
    pub(crate) fn of(node: &Node) -> Result<Arc<QuicNode>, ConnectError> {
        if let Some(q) = node.shared.quic.get() {
            return Ok(q.clone());
        }
        let home = match lock(&node.shared.home).clone() {
            Some(dir) => Home::at(dir),
            None => Home::from_env().map_err(io_error)?,
        };
        home.init().map_err(io_error)?;
        let identity = home.issue_identity().map_err(io_error)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("asyncmsg-quic-{}", node.shared.id))
            .enable_all()
            .build()
            .map_err(io_error)?;
        let q = Arc::new(QuicNode {
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            instance: random_u128(),
            home,
            identity,
            client: OnceLock::new(),
            server: Mutex::new(None),
            links: tokio::sync::Mutex::new(HashMap::new()),
            proxies: Mutex::new(HashMap::new()),
            nodes: Mutex::new(Vec::new()),
            node: Arc::downgrade(&node.shared),
        });
        // Two first users may race: one transport is kept.
        let kept = node.shared.quic.get_or_init(|| q.clone()).clone();
        if !Arc::ptr_eq(&kept, &q) {
            q.shutdown();
        }
        Ok(kept)
    }

    /// Stops the runtime (the node is going away).
    pub(crate) fn shutdown(&self) {
        if let Some(rt) = lock(&self.runtime).take() {
            rt.shutdown_background();
        }
    }

    fn client(&self) -> Result<Arc<QuicEndpoint>, ConnectError> {
        if let Some(e) = self.client.get() {
            return Ok(e.clone());
        }
        let _guard = self.handle.enter();
        // Dual-stack where the host has IPv6 (IPv4 peers through mapped
        // addresses), IPv4 alone otherwise.
        let bind = |any: std::net::IpAddr| {
            QuicEndpoint::bind_with(
                SocketAddr::new(any, 0),
                &self.identity,
                &self.home,
                &endpoint_options(false),
            )
        };
        let e = bind(std::net::Ipv6Addr::UNSPECIFIED.into())
            .or_else(|_| bind(std::net::Ipv4Addr::UNSPECIFIED.into()))
            .map_err(io_error)?;
        Ok(self.client.get_or_init(|| Arc::new(e)).clone())
    }

    /// The node descriptor of `addr` in this node's table.
    fn nd_of(&self, addr: SocketAddr) -> u32 {
        let mut nodes = lock(&self.nodes);
        match nodes.iter().position(|a| *a == addr) {
            Some(i) => i as u32 + 1,
            None => {
                nodes.push(addr);
                nodes.len() as u32
            }
        }
    }

    fn addr_of(&self, nd: u32) -> Option<SocketAddr> {
        lock(&self.nodes)
            .get((nd as usize).checked_sub(1)?)
            .copied()
    }

    /// The QUIC connection to `addr`, made if there is none (or it died).
    async fn link_to(&self, addr: SocketAddr) -> Result<quinn::Connection, Failure> {
        let mut links = self.links.lock().await;
        if let Some(c) = links.get(&addr)
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        let client = self.client().map_err(|_| Failure::Unreachable)?;
        let c = client.connect(addr).await.map_err(|e| match e {
            QuicError::Untrusted(_) => Failure::Refused(ErrorKind::PermissionDenied),
            _ => Failure::Unreachable,
        })?;
        links.insert(addr, c.clone());
        Ok(c)
    }

    /// Drops the QUIC connection to `addr` if it is `c` (it stopped
    /// answering: a restarted node cannot tell us the old one is gone).
    async fn forget_link(&self, addr: SocketAddr, c: &quinn::Connection) {
        let mut links = self.links.lock().await;
        if links
            .get(&addr)
            .is_some_and(|l| l.stable_id() == c.stable_id())
        {
            links.remove(&addr);
        }
        c.close(0u32.into(), b"no answer");
    }
}

fn io_error(e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Io(std::io::Error::other(e.to_string()))
}

/// How long a silent peer is taken for alive: a node that died is noticed
/// after this (a live one answers the keep-alives every second), and the
/// store-and-forward deadline starts.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);

fn endpoint_options(accept: bool) -> asyncmsg_quic::endpoint::EndpointOptions {
    let mut o = asyncmsg_quic::endpoint::EndpointOptions::default();
    o.transport.idle_timeout = IDLE_TIMEOUT;
    o.accept = accept;
    o
}

/// 128 random bits (a node instance's id).
fn random_u128() -> u128 {
    let mut b = [0u8; 16];
    // SAFETY: fills the 16 bytes of `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 16 {
        // Fall back on the clock and the pid: unique enough per instance.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return t ^ (u128::from(std::process::id()) << 96);
    }
    u128::from_le_bytes(b)
}

// ---------------------------------------------------------------------------
// Listening: the receiving side
// ---------------------------------------------------------------------------

/// Starts listening for other nodes on `addr`; returns the bound address.
pub(crate) fn listen(node: &Node, addr: &str) -> Result<SocketAddr, ConnectError> {
    let q = QuicNode::of(node)?;
    let addr = resolve_addr(addr)?;
    let _guard = q.handle.enter();
    let ep = Arc::new(
        QuicEndpoint::bind_with(addr, &q.identity, &q.home, &endpoint_options(true))
            .map_err(io_error)?,
    );
    let local = ep.local_addr().map_err(io_error)?;
    *lock(&q.server) = Some(ep.clone());
    let weak = Arc::downgrade(&q);
    q.handle.spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let weak = weak.clone();
            tokio::spawn(async move {
                // A peer whose certificate is not trusted fails here (B18).
                let Ok(conn) = incoming.await else { return };
                let peer = conn.remote_address();
                while let Ok((send, recv)) = conn.accept_bi().await {
                    let Some(q) = weak.upgrade() else { return };
                    tokio::spawn(async move {
                        serve(q, peer, send, recv).await;
                    });
                }
            });
        }
    });
    Ok(local)
}

fn resolve_addr(addr: &str) -> Result<SocketAddr, ConnectError> {
    addr.to_socket_addrs()
        .map_err(|e| ConnectError::NotFound(format!("{addr}: {e}")))?
        .next()
        .ok_or_else(|| ConnectError::NotFound(addr.to_owned()))
}

/// A remote sender's connection, as the receiving node keeps it.
struct Proxy {
    conn: Connection,
    /// The sender's sequence number of the proxy's first message (the
    /// proxy numbers its own from 0).
    base: u64,
    /// The next sequence number expected from the sender.
    received: AtomicU64,
    /// What arrived and is not on the connection yet, in order (a message
    /// waits while the connection's slots are held by getters).
    queue: Mutex<VecDeque<Op>>,
    /// One stream feeds it at a time.
    feeding: tokio::sync::Mutex<()>,
}

/// What a stream asks of a proxy, in the order it came.
enum Op {
    Msg {
        seq: u64,
        data: SendBuf,
        redelivered: bool,
    },
    Flush,
    Triggers(wire::Triggers),
}

/// The attributes a proxy runs: the sender's triggers.
fn proxy_attr(max_buffers: u32, t: &wire::Triggers) -> ConnectionAttr {
    let mut attr = ConnectionAttr::default()
        .max_buffers(max_buffers)
        .trigger_count(t.count)
        .no_trigger_time();
    if t.time_ns > 0 {
        attr = attr.trigger_time(Duration::from_nanos(t.time_ns));
    }
    if t.interval_ns > 0 {
        attr = attr.trigger_interval(Duration::from_nanos(t.interval_ns));
    }
    attr
}

/// Counts the stream task among the proxy's sender-side waiters while it
/// lives, so that takes and completions wake it.
struct Watching(Arc<ConnShared>);

impl Watching {
    fn new(c: &Arc<ConnShared>) -> Self {
        c.ctr().sender_waiters.fetch_add(1, Ordering::SeqCst);
        Watching(c.clone())
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.ctr().sender_waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one stream: a remote sender's connection.
async fn serve(
    q: Arc<QuicNode>,
    peer: SocketAddr,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let mut dec = wire::Decoder::new(MAX_FRAME);
    let hello = match read_control(&mut recv, &mut dec).await {
        Ok(Some(Control::Hello(h))) => h,
        _ => return close_with(&mut send, ErrorKind::Protocol, "expected a hello").await,
    };
    let proxy = match proxy_for(&q, peer, &hello) {
        Ok(p) => p,
        Err(e) => return refuse(&mut send, e.kind(), &e.to_string()).await,
    };
    // A reconnect racing the end of the old stream waits for it.
    let _feeding = proxy.feeding.lock().await;
    let shared = proxy.conn.shared.clone();
    let _watching = Watching::new(&shared);
    let id = proxy.conn.channel_id();
    let mut out = Vec::new();
    wire::encode_accept(
        &wire::Accept {
            version: wire::PROTOCOL_VERSION,
            receiver: q.instance,
            pid: std::process::id(),
            chid: id.chid,
            buffer_size: proxy.conn.max_message() as u64,
            expect_seq: proxy.received.load(Ordering::Acquire),
        },
        &mut out,
    );
    if send.write_all(&out).await.is_err() {
        return;
    }
    let key = (hello.sender, hello.coid, id.chid);
    let mut last_ack = None;
    let mut frames = FrameArena::new();
    loop {
        // What arrived, the hello's own packet included, before anything
        // waits for more.
        loop {
            match dec.next() {
                Ok(None) => break,
                Ok(Some(wire::Frame::Data(batch))) => {
                    if let Err(why) = receive(&proxy, &batch, &mut frames) {
                        return close_with(&mut send, ErrorKind::Protocol, why).await;
                    }
                }
                Ok(Some(wire::Frame::Flush(_))) => lock(&proxy.queue).push_back(Op::Flush),
                Ok(Some(wire::Frame::Triggers(t))) => lock(&proxy.queue).push_back(Op::Triggers(t)),
                Ok(Some(wire::Frame::Close(_))) => {
                    // The sender detaches: what the getters took is final;
                    // the rest is dropped here (the sender calls it back).
                    lock(&q.proxies).remove(&key);
                    proxy.conn.detach();
                    out.clear();
                    wire::encode_ack(proxy.base + shared.taken(), &mut out);
                    wire::encode_close(&wire::Close::new(0, "detached"), &mut out);
                    let _ = send.write_all(&out).await;
                    finish(&mut send).await;
                    return;
                }
                Ok(Some(_)) | Err(_) => {
                    // B21: that link fails, nothing else.
                    return close_with(&mut send, ErrorKind::Protocol, "malformed frame").await;
                }
            }
        }
        event_listener::listener!(shared.sender_event => listener);
        apply(&proxy);
        let state = lock(&shared.send).state;
        if let LinkState::Closed(kind) = state {
            // The channel went away: the sender fails what its getters did
            // not take, and hears when they let go of what they took.
            lock(&q.proxies).remove(&key);
            return closed_channel(&proxy, &shared, &mut send, kind).await;
        }
        // Acknowledge what the getters took, and what they let go, as soon
        // as it moves (in the sender's numbering).
        let taken = proxy.base + shared.taken();
        let done = proxy.base + shared.completed.load(Ordering::Acquire);
        if last_ack != Some((taken, done)) {
            out.clear();
            wire::encode_ack(taken, &mut out);
            wire::encode_done(done, &mut out);
            if send.write_all(&out).await.is_err() {
                return;
            }
            last_ack = Some((taken, done));
            continue;
        }
        tokio::select! {
            () = listener => {}
            r = recv.read(dec.spare(READ_CHUNK)) => match r {
                Ok(Some(n)) => dec.commit(n),
                // The sender's link went away: the proxy stays for its next
                // stream; a stream that ends inside a frame broke the
                // protocol (B21).
                Ok(None) => {
                    if dec.finish().is_err() {
                        return close_with(&mut send, ErrorKind::Protocol, "truncated frame").await;
                    }
                    return;
                }
                Err(_) => return,
            }
        }
    }
}

/// The proxy's channel is gone: says so, then reports the messages its
/// getters still hold as they let go of them, and ends the stream.
async fn closed_channel(
    proxy: &Proxy,
    shared: &Arc<ConnShared>,
    send: &mut quinn::SendStream,
    kind: ErrorKind,
) {
    let mut out = Vec::new();
    let taken = proxy.base + shared.taken();
    wire::encode_ack(taken, &mut out);
    wire::encode_close(
        &wire::Close::new(kind.errno(), reason(kind, "the channel is gone")),
        &mut out,
    );
    if send.write_all(&out).await.is_err() {
        return;
    }
    let mut last = None;
    loop {
        event_listener::listener!(shared.sender_event => listener);
        let done = proxy.base + shared.completed.load(Ordering::Acquire);
        if last != Some(done) {
            out.clear();
            wire::encode_done(done, &mut out);
            if send.write_all(&out).await.is_err() {
                return;
            }
            last = Some(done);
        }
        if done >= taken {
            finish(send).await;
            return;
        }
        listener.await;
    }
}

/// Queues a batch's new messages; sequences below `received` came before (a
/// resend after a lost link) and are dropped.
fn receive(
    proxy: &Proxy,
    batch: &wire::DataBatch<'_>,
    frames: &mut FrameArena,
) -> Result<(), &'static str> {
    // One copy of the frame; its messages are slices of it.
    let body = batch.as_bytes();
    let frame = frames.copy(body);
    let mut queue = lock(&proxy.queue);
    let mut expect = proxy.received.load(Ordering::Acquire);
    for (seq, msg) in batch.with_seqs() {
        if seq > expect {
            return Err("a gap in the sequence");
        }
        if seq == expect {
            let at = msg.as_ptr() as usize - body.as_ptr() as usize;
            queue.push_back(Op::Msg {
                seq,
                data: SendBuf::from(frame.slice(at..at + msg.len())),
                redelivered: batch.redelivered(),
            });
            expect += 1;
        }
    }
    proxy.received.store(expect, Ordering::Release);
    Ok(())
}

/// Bytes per block of a [`FrameArena`].
const ARENA_BLOCK: usize = 256 * 1024;

/// Frames copied into blocks that their slices share: one allocation per
/// block (when it cannot be reused) instead of two per frame. A block is
/// reused once every slice of it is gone; one still referenced stays with
/// its slices and a new block takes the next frames, so what a block holds
/// is bounded by the messages in flight plus one block.
struct FrameArena {
    block: bytes::BytesMut,
}

impl FrameArena {
    fn new() -> Self {
        FrameArena {
            block: bytes::BytesMut::new(),
        }
    }

    /// `bytes` in the arena.
    fn copy(&mut self, bytes: &[u8]) -> bytes::Bytes {
        if self.block.capacity() < bytes.len() && !self.block.try_reclaim(bytes.len()) {
            self.block = bytes::BytesMut::with_capacity(ARENA_BLOCK.max(bytes.len()));
        }
        self.block.extend_from_slice(bytes);
        self.block.split().freeze()
    }
}

thread_local! {
    /// [`apply`]'s run of messages, kept between calls (no allocation per
    /// call).
    static RUN: std::cell::Cell<VecDeque<(SendBuf, u64, bool)>> =
        const { std::cell::Cell::new(VecDeque::new()) };
}

/// Puts what is queued on the proxy, in order, until a message finds no
/// free slot: runs of messages under one lock.
fn apply(proxy: &Proxy) {
    let mut run = RUN.take();
    apply_with(proxy, &mut run);
    RUN.set(run);
}

fn apply_with(proxy: &Proxy, run: &mut VecDeque<(SendBuf, u64, bool)>) {
    let mut queue = lock(&proxy.queue);
    loop {
        while let Some(Op::Msg { .. }) = queue.front() {
            if let Some(Op::Msg {
                seq,
                data,
                redelivered,
            }) = queue.pop_front()
            {
                run.push_back((data, seq, redelivered));
            }
        }
        if !run.is_empty() {
            let r = proxy.conn.try_put_batch(run);
            // What did not fit goes back, in order.
            while let Some((data, seq, redelivered)) = run.pop_back() {
                queue.push_front(Op::Msg {
                    seq,
                    data,
                    redelivered,
                });
            }
            // A full proxy waits for its getters; any other error closed it,
            // which the stream says.
            if r.is_err() || matches!(queue.front(), Some(Op::Msg { .. })) {
                return;
            }
        }
        match queue.pop_front() {
            None => return,
            Some(Op::Flush) => {
                let _ = proxy.conn.flush(crate::Flush::NoWait);
            }
            Some(Op::Triggers(t)) => {
                let attr = proxy_attr(proxy.conn.attr().get_max_buffers(), &t);
                let _ = proxy.conn.set_attr(attr);
            }
            // Taken as a run on the next round.
            Some(op @ Op::Msg { .. }) => queue.push_front(op),
        }
    }
}

/// The proxy for a hello: found (a reconnect) or made.
fn proxy_for(
    q: &Arc<QuicNode>,
    peer: SocketAddr,
    hello: &wire::Hello,
) -> Result<Arc<Proxy>, ConnectError> {
    let chan = match &hello.target {
        wire::Target::Name(n) => {
            crate::registry::by_name(n).ok_or_else(|| ConnectError::NotFound(n.clone()))?
        }
        wire::Target::Chid(c) => crate::registry::by_id(ChannelId {
            nd: 0,
            pid: std::process::id(),
            chid: *c,
        })?,
    };
    let key = (hello.sender, hello.coid, chan.chid);
    if let Some(p) = lock(&q.proxies).get(&key) {
        return Ok(p.clone());
    }
    let node = q
        .node
        .upgrade()
        .map(|shared| Node { shared })
        .ok_or(ConnectError::Destroyed)?;
    // Room for the sender's window and as many messages held by getters.
    let slots = hello
        .max_buffers
        .saturating_mul(2)
        .clamp(1, crate::connection::MAX_BUFFERS);
    let attr = proxy_attr(slots, &hello.triggers)
        .with_coid(hello.coid)
        .with_origin(q.nd_of(peer), hello.pid);
    let conn = Connection::attach(&node, chan, attr)?;
    let p = Arc::new(Proxy {
        conn,
        base: hello.next_seq,
        // What came before the sender's oldest held message was taken by an
        // earlier instance of this node.
        received: AtomicU64::new(hello.next_seq),
        queue: Mutex::new(VecDeque::new()),
        feeding: tokio::sync::Mutex::new(()),
    });
    Ok(lock(&q.proxies).entry(key).or_insert(p).clone())
}

async fn refuse(send: &mut quinn::SendStream, kind: ErrorKind, why: &str) {
    let mut out = Vec::new();
    wire::encode_refuse(
        &wire::Refuse::new(kind.errno(), reason(kind, why)),
        &mut out,
    );
    let _ = send.write_all(&out).await;
    let _ = send.finish();
}

/// Ends a stream the receiving side gives up on: the sender fails what it
/// holds with `kind`.
async fn close_with(send: &mut quinn::SendStream, kind: ErrorKind, why: &str) {
    let mut out = Vec::new();
    wire::encode_close(&wire::Close::new(kind.errno(), reason(kind, why)), &mut out);
    let _ = send.write_all(&out).await;
    finish(send).await;
}

/// Ends a stream and waits (bounded) until the peer has read all of it: the
/// task holds its proxy, and so its node and the runtime, until then, so the
/// last acknowledgements are not lost to a node going away.
async fn finish(send: &mut quinn::SendStream) {
    if send.finish().is_ok() {
        let _ = tokio::time::timeout(LAST_WORD, send.stopped()).await;
    }
}

/// How long a stream's last frames may take to reach the peer.
const LAST_WORD: Duration = Duration::from_secs(2);

/// A refusal's reason: the error kind's name first (errnos are shared by
/// several kinds), then the words.
fn reason(kind: ErrorKind, why: &str) -> String {
    format!("{kind:?}: {why}")
}

/// The error kind a refusal or close names.
fn kind_of(errno: i32, reason: &str) -> ErrorKind {
    let name = reason.split(':').next().unwrap_or("");
    ErrorKind::ALL
        .into_iter()
        .find(|k| format!("{k:?}") == name)
        .or_else(|| {
            [
                ErrorKind::PermissionDenied,
                ErrorKind::NotFound,
                ErrorKind::InvalidArgument,
            ]
            .into_iter()
            .find(|k| k.errno() == errno)
        })
        .unwrap_or(ErrorKind::Protocol)
}

/// A control frame, owned.
enum Control {
    Hello(wire::Hello),
    Accept(wire::Accept),
    Refuse(wire::Refuse),
    Other,
}

/// Reads until one frame is decoded; `None` at the end of the stream.
async fn read_control(
    recv: &mut quinn::RecvStream,
    dec: &mut wire::Decoder,
) -> Result<Option<Control>, Failure> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match dec.next() {
            Ok(Some(wire::Frame::Hello(h))) => return Ok(Some(Control::Hello(h))),
            Ok(Some(wire::Frame::Accept(a))) => return Ok(Some(Control::Accept(a))),
            Ok(Some(wire::Frame::Refuse(r))) => return Ok(Some(Control::Refuse(r))),
            Ok(Some(wire::Frame::Close(c))) => {
                return Ok(Some(Control::Refuse(wire::Refuse::new(c.errno, c.reason))));
            }
            Ok(Some(_)) => return Ok(Some(Control::Other)),
            Ok(None) => {}
            Err(_) => return Err(Failure::Refused(ErrorKind::Protocol)),
        }
        match recv.read(&mut chunk).await {
            Ok(Some(n)) => dec.feed(&chunk[..n]),
            Ok(None) => return Ok(None),
            Err(_) => return Err(Failure::Unreachable),
        }
    }
}

// ---------------------------------------------------------------------------
// Connecting: the sending side
// ---------------------------------------------------------------------------

/// Why a link attempt failed.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// The node could not be reached (or the link broke): retry.
    Unreachable,
    /// The node answered no.
    Refused(ErrorKind),
}

/// The sending side of a connection to another node's channel.
pub(crate) struct NetLink {
    addr: SocketAddr,
    target: wire::Target,
    retry_for: Duration,
    /// The channel, as the first accept told: (pid, chid, buffer_size).
    chan: OnceLock<(u32, i32, usize)>,
    /// A put, a flush, new triggers, or the end.
    wake: Notify,
    /// Detached: the link task ends.
    closed: AtomicBool,
    /// The triggers in force for the next put (the receiving node runs them).
    triggers: Mutex<SendConfig>,
    /// Trigger changes not yet sent: from which sequence on.
    new_triggers: Mutex<VecDeque<(u64, wire::Triggers)>>,
    /// The highest sequence a flush asked to be triggered up to.
    flush_upto: AtomicU64,
    /// Everything below was written to the stream (the link task's `next`).
    written: AtomicU64,
    /// The count trigger in force, and whether a time trigger is: puts are
    /// held back until a trigger's worth is there (one write per trigger).
    count: std::sync::atomic::AtomicU32,
    timed: AtomicBool,
    /// The link task was told of messages held back.
    straggling: AtomicBool,
    /// Cumulative: every message below it was taken and let go by the
    /// receiving node's getters (its callbacks may run).
    done: AtomicU64,
    /// A detach waits here for the receiving node's last word.
    detaching: AtomicBool,
    detached_done: (Mutex<bool>, std::sync::Condvar),
}

/// The wire's form of a connection's triggers.
fn wire_triggers(cfg: &SendConfig) -> wire::Triggers {
    let ns = |d: Option<Duration>| d.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    wire::Triggers {
        count: cfg.trigger_count,
        time_ns: ns(cfg.trigger_time),
        interval_ns: ns(cfg.trigger_interval),
    }
}

impl NetLink {
    pub(crate) fn channel(&self) -> (u32, i32) {
        self.chan.get().map_or((0, 0), |c| (c.0, c.1))
    }

    pub(crate) fn buffer_size(&self) -> usize {
        self.chan.get().map_or(0, |c| c.2)
    }

    pub(crate) fn retry_for(&self) -> Duration {
        self.retry_for
    }

    /// Every message below it was taken and let go on the receiving node.
    pub(crate) fn done(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }

    /// The triggers in force (as the program set them).
    pub(crate) fn triggers(&self) -> SendConfig {
        *lock(&self.triggers)
    }

    /// A put: the link task is woken when something is to be written (see
    /// [`Sender::due`]); `visible` and `taken` are the connection's counters.
    pub(crate) fn announce(&self, visible: u64, taken: u64) {
        let written = self.written.load(Ordering::Acquire);
        if visible <= written {
            return;
        }
        // A trigger's worth: write now. Fewer, while the receiving node may
        // still show a batch they could join: the task writes them shortly
        // (told once, not at every put).
        if self.due(visible - written)
            || (taken < written && !self.straggling.swap(true, Ordering::AcqRel))
        {
            self.wake.notify_one();
        }
    }

    /// Wakes the link task (a flush, new triggers, the end).
    pub(crate) fn kick(&self) {
        self.wake.notify_one();
    }

    /// Whether `unsent` messages are to be written now: one trigger's worth
    /// (or any, without a count trigger above 1, or with a time trigger, or
    /// after a flush).
    fn due(&self, unsent: u64) -> bool {
        let count = self.count.load(Ordering::Relaxed);
        unsent > 0
            && (count <= 1 || unsent >= u64::from(count) || self.timed.load(Ordering::Relaxed))
    }

    /// New triggers, from sequence `from` on.
    pub(crate) fn set_triggers(&self, from: u64, cfg: &SendConfig) {
        *lock(&self.triggers) = *cfg;
        self.count.store(cfg.trigger_count, Ordering::Relaxed);
        self.timed
            .store(cfg.trigger_time.is_some(), Ordering::Relaxed);
        lock(&self.new_triggers).push_back((from, wire_triggers(cfg)));
        self.kick();
    }

    /// A flush: the receiving node triggers once it has every sequence below
    /// `upto`.
    pub(crate) fn flush_marker(&self, upto: u64) {
        self.flush_upto.fetch_max(upto, Ordering::SeqCst);
    }

    /// Before a detach fails what the receiver did not take: asks the
    /// receiving node to stop and waits (bounded) for its last
    /// acknowledgement.
    pub(crate) fn detach_and_wait(&self) {
        self.detaching.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let (done, cv) = &self.detached_done;
        let deadline = Instant::now() + DETACH_WAIT;
        let mut d = lock(done);
        while !*d {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            d = cv
                .wait_timeout(d, left)
                .map_or_else(|p| p.into_inner().0, |r| r.0);
        }
    }

    fn detach_done(&self) {
        let (done, cv) = &self.detached_done;
        *lock(done) = true;
        cv.notify_all();
    }

    /// The connection was detached.
    pub(crate) fn detached(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// How long messages fewer than a trigger's worth wait to join a batch the
/// receiving node may still show.
const STRAGGLE: Duration = Duration::from_millis(1);

/// How long a detach waits for the receiving node to say what it took.
const DETACH_WAIT: Duration = Duration::from_secs(2);

/// `quic://HOST:PORT/NAME`.
pub(crate) fn connect_name(
    node: &Node,
    host: &str,
    name: &str,
    attr: ConnectionAttr,
) -> Result<Connection, ConnectError> {
    let addr = resolve_addr(host)?;
    connect(node, addr, wire::Target::Name(name.to_owned()), None, attr)
}

/// `(nd, pid, chid)` with `nd` from the node table ([`Node::node_descriptor`]).
pub(crate) fn connect_id(
    node: &Node,
    id: ChannelId,
    attr: ConnectionAttr,
) -> Result<Connection, ConnectError> {
    let q = QuicNode::of(node)?;
    let addr = q
        .addr_of(id.nd)
        .ok_or_else(|| ConnectError::NotFound(format!("node descriptor {}", id.nd)))?;
    connect(node, addr, wire::Target::Chid(id.chid), Some(id.pid), attr)
}

/// The node descriptor of a node's address (QNX `netmgr_strtond`).
pub(crate) fn node_descriptor(node: &Node, addr: &str) -> Result<u32, ConnectError> {
    let q = QuicNode::of(node)?;
    Ok(q.nd_of(resolve_addr(addr)?))
}

/// Runs `fut` on the transport's runtime and waits for it, from any thread
/// (a caller inside another runtime included).
fn wait_on<T: Send + 'static>(
    q: &QuicNode,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    q.handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().ok()
}

fn connect(
    node: &Node,
    addr: SocketAddr,
    target: wire::Target,
    pid: Option<u32>,
    attr: ConnectionAttr,
) -> Result<Connection, ConnectError> {
    check_attr(&attr)?;
    let q = QuicNode::of(node)?;
    let coid = attr.coid.unwrap_or_else(next_coid);
    let cfg = attr.send_config();
    let link = Arc::new(NetLink {
        addr,
        target,
        retry_for: attr.retry_for,
        chan: OnceLock::new(),
        wake: Notify::new(),
        closed: AtomicBool::new(false),
        triggers: Mutex::new(cfg),
        new_triggers: Mutex::new(VecDeque::new()),
        flush_upto: AtomicU64::new(0),
        written: AtomicU64::new(0),
        count: std::sync::atomic::AtomicU32::new(cfg.trigger_count),
        timed: AtomicBool::new(cfg.trigger_time.is_some()),
        straggling: AtomicBool::new(false),
        done: AtomicU64::new(0),
        detaching: AtomicBool::new(false),
        detached_done: (Mutex::new(false), std::sync::Condvar::new()),
    });
    // The first stream is opened before the connection exists: the target
    // must be there (and let us in), as with every other transport.
    let hello = hello_of(&q, &link, coid, attr.max_buffers, 0);
    let (q2, l2) = (q.clone(), link.clone());
    let first = wait_on(&q, async move {
        tokio::time::timeout(CONNECT_TIMEOUT, open_stream(&q2, &l2, &hello)).await
    })
    .ok_or(ConnectError::Destroyed)?;
    let (send, recv, dec, accept) = match first {
        Ok(Ok(s)) => s,
        Ok(Err(Failure::Refused(kind))) => return Err(refusal(kind, &link)),
        Ok(Err(Failure::Unreachable)) => {
            return Err(ConnectError::Io(std::io::Error::new(
                std::io::ErrorKind::HostUnreachable,
                format!("cannot reach node {addr}"),
            )));
        }
        Err(_) => return Err(ConnectError::TimedOut),
    };
    if let Some(pid) = pid
        && pid != accept.pid
    {
        // Not the channel asked for: the receiving node forgets the stream.
        let mut send = send;
        q.handle.spawn(async move {
            let mut out = Vec::new();
            wire::encode_close(&wire::Close::new(0, "Detached: wrong process"), &mut out);
            let _ = send.write_all(&out).await;
            let _ = send.finish();
        });
        return Err(ConnectError::NotFound(format!("process {pid} at {addr}")));
    }
    let _ = link
        .chan
        .set((accept.pid, accept.chid, accept.buffer_size as usize));
    let conn = Connection::attach_net(node, link.clone(), &attr, coid);
    let task = Sender {
        q: q.clone(),
        link,
        conn: conn.shared.clone(),
        max_buffers: attr.max_buffers,
        receiver: accept.receiver,
        sent: 0,
        redeliver_below: 0,
    };
    q.handle
        .spawn(task.run(Some((send, recv, dec, accept.expect_seq))));
    Ok(conn)
}

fn refusal(kind: ErrorKind, link: &NetLink) -> ConnectError {
    let what = match &link.target {
        wire::Target::Name(n) => format!("quic://{}/{n}", link.addr),
        wire::Target::Chid(c) => format!("chid {c} at {}", link.addr),
    };
    match kind {
        ErrorKind::PermissionDenied => ConnectError::PermissionDenied,
        ErrorKind::NotFound | ErrorKind::Destroyed => ConnectError::NotFound(what),
        ErrorKind::InvalidArgument => ConnectError::InvalidArgument("refused by the peer node"),
        _ => ConnectError::Protocol(format!("{what}: refused ({kind})")),
    }
}

fn hello_of(
    q: &QuicNode,
    link: &NetLink,
    coid: i32,
    max_buffers: u32,
    next_seq: u64,
) -> wire::Hello {
    wire::Hello {
        version: wire::PROTOCOL_VERSION,
        sender: q.instance,
        pid: std::process::id(),
        coid,
        target: link.target.clone(),
        max_buffers,
        next_seq,
        triggers: wire_triggers(&link.triggers()),
    }
}

type Stream = (
    quinn::SendStream,
    quinn::RecvStream,
    wire::Decoder,
    wire::Accept,
);

/// How long a hello waits for its answer on an existing QUIC connection
/// before the connection is taken for dead and a new one is made.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// Opens a stream to the link's node and says hello.
async fn open_stream(q: &QuicNode, link: &NetLink, hello: &wire::Hello) -> Result<Stream, Failure> {
    let c = q.link_to(link.addr).await?;
    let attempt = async {
        let (mut send, mut recv) = c.open_bi().await.map_err(|_| Failure::Unreachable)?;
        let mut out = Vec::new();
        wire::encode_hello(hello, &mut out);
        send.write_all(&out)
            .await
            .map_err(|_| Failure::Unreachable)?;
        let mut dec = wire::Decoder::new(MAX_FRAME);
        match read_control(&mut recv, &mut dec).await? {
            Some(Control::Accept(a)) => Ok((send, recv, dec, a)),
            Some(Control::Refuse(r)) => Err(Failure::Refused(kind_of(r.errno, &r.reason))),
            Some(_) => Err(Failure::Refused(ErrorKind::Protocol)),
            None => Err(Failure::Unreachable),
        }
    };
    match tokio::time::timeout(ANSWER_WAIT, attempt).await {
        Ok(r) => r,
        Err(_) => {
            q.forget_link(link.addr, &c).await;
            Err(Failure::Unreachable)
        }
    }
}

/// The link task of one connection.
struct Sender {
    q: Arc<QuicNode>,
    link: Arc<NetLink>,
    conn: Arc<ConnShared>,
    max_buffers: u32,
    /// The receiving node instance last accepted by.
    receiver: u128,
    /// Everything below was written to a stream at least once.
    sent: u64,
    /// Resends below this may have been delivered by an earlier instance of
    /// the receiving node.
    redeliver_below: u64,
}

enum Ended {
    /// Detached or closed: the task is done.
    Closed,
    /// The link broke: reconnect.
    Lost,
}

impl Sender {
    async fn run(
        mut self,
        first: Option<(quinn::SendStream, quinn::RecvStream, wire::Decoder, u64)>,
    ) {
        let mut stream = first;
        let mut lost_since: Option<Instant> = None;
        let mut backoff = BACKOFF.0;
        loop {
            if let Some((send, recv, dec, expect)) = stream.take() {
                lost_since = None;
                backoff = BACKOFF.0;
                if let Ended::Closed = self.serve(send, recv, dec, expect).await {
                    self.link.detach_done();
                    return;
                }
            }
            if self.done() {
                self.link.detach_done();
                return;
            }
            let since = *lost_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.link.retry_for {
                // B20: after the deadline, every message still held is
                // called back with peer-lost; none is lost silently.
                self.fail(ErrorKind::PeerLost);
                return;
            }
            // Wait out the backoff (puts meanwhile only fill the slots); a
            // detach ends the wait.
            let until = tokio::time::Instant::now() + backoff;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => break,
                    () = self.link.wake.notified() => {
                        if self.done() {
                            break;
                        }
                    }
                }
            }
            if self.done() {
                self.link.detach_done();
                return;
            }
            let hello = hello_of(
                &self.q,
                &self.link,
                self.conn.coid,
                self.max_buffers,
                self.conn.taken(),
            );
            // An attempt never outlasts the deadline.
            let left = self.link.retry_for.saturating_sub(since.elapsed());
            let attempt = tokio::time::timeout(left, open_stream(&self.q, &self.link, &hello));
            match attempt.await.unwrap_or(Err(Failure::Unreachable)) {
                Ok((send, recv, dec, accept)) => {
                    if accept.receiver != self.receiver {
                        // A new instance of the receiving node: what the
                        // earlier one's getters took is theirs (called back
                        // Ok), what it may have received is marked.
                        self.on_done(self.conn.taken());
                        self.redeliver_below = self.sent;
                        self.receiver = accept.receiver;
                    }
                    stream = Some((send, recv, dec, accept.expect_seq));
                }
                Err(Failure::Refused(ErrorKind::PermissionDenied)) => {
                    self.fail(ErrorKind::PermissionDenied);
                    return;
                }
                // A restarting node may not have its channel yet: retry
                // until the deadline.
                Err(_) => backoff = (backoff * 2).min(BACKOFF.1),
            }
        }
    }

    /// Detached or closed: nothing more to send.
    fn done(&self) -> bool {
        self.link.closed.load(Ordering::SeqCst)
            || self.link.detaching.load(Ordering::SeqCst)
            || lock(&self.conn.send).state != LinkState::Open
    }

    /// Fails every message still held with `kind`, and ends.
    fn fail(&self, kind: ErrorKind) {
        let failed = self.conn.close(kind);
        crate::node::queue_failed(self.conn.delivery(), failed);
        self.link.detach_done();
    }

    /// Runs one stream until it ends.
    async fn serve(
        &mut self,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        mut dec: wire::Decoder,
        expect: u64,
    ) -> Ended {
        // What the receiver already has is not sent again.
        let mut next = expect.max(self.conn.taken());
        let mut flushed = 0u64;
        // Trigger changes before `next` are in force there already (the
        // hello carried the latest).
        lock(&self.link.new_triggers).retain(|(from, _)| *from >= next);
        let mut out = Vec::with_capacity(64 * 1024);
        let mut frames = FrameArena::new();
        self.link.written.store(next, Ordering::Release);
        // Messages held back (fewer than a trigger's worth) while the
        // receiving node may still have a batch they could join go out by
        // this time.
        let mut straggle: Option<tokio::time::Instant> = None;
        loop {
            if self.link.detaching.load(Ordering::SeqCst) || self.link.closed.load(Ordering::SeqCst)
            {
                return self.close(&mut send, &mut recv, &mut dec).await;
            }
            // What the receiving node said, the accept's own packet included.
            loop {
                match dec.next() {
                    Ok(None) => break,
                    Ok(Some(wire::Frame::Ack(taken))) => self.on_ack(taken),
                    Ok(Some(wire::Frame::Done(done))) => self.on_done(done),
                    Ok(Some(wire::Frame::Close(c))) => {
                        // The channel went away (or this link broke the
                        // protocol): what its getters did not take fails;
                        // what they took completes as they let go of it.
                        self.fail(kind_of(c.errno, &c.reason));
                        self.drain_done(&mut recv, &mut dec).await;
                        return Ended::Closed;
                    }
                    Ok(Some(_)) | Err(_) => return Ended::Lost,
                }
            }
            let visible = self.conn.ctr().visible.load(Ordering::Acquire);
            let unsent = visible.saturating_sub(next);
            let now = self.link.due(unsent)
                || self.link.flush_upto.load(Ordering::SeqCst) > flushed
                || !lock(&self.link.new_triggers).is_empty()
                || straggle.is_some_and(|at| at <= tokio::time::Instant::now());
            if !now && unsent > 0 && self.conn.taken() < next && straggle.is_none() {
                straggle = Some(tokio::time::Instant::now() + STRAGGLE);
            }
            // Everything put goes out in order, with the trigger changes and
            // flushes between the messages they follow.
            let mut writing = now;
            while writing {
                out.clear();
                let change = lock(&self.link.new_triggers).front().copied();
                if let Some((from, t)) = change
                    && from <= next
                {
                    lock(&self.link.new_triggers).pop_front();
                    wire::encode_triggers(&t, &mut out);
                }
                let limit = change.map_or(u64::MAX, |(from, _)| from).max(next);
                let upto = self.encode(next, limit, &mut out);
                let flush = self.link.flush_upto.load(Ordering::SeqCst);
                let end = upto.unwrap_or(next);
                if flush > flushed && flush <= end {
                    wire::encode_flush(flush, &mut out);
                    flushed = flush;
                }
                if out.is_empty() {
                    writing = false;
                    continue;
                }
                // The frame goes to the stream in a block shared with the
                // frames before it (quinn holds it until the peer has it).
                let frame = frames.copy(&out);
                out.clear();
                if send.write_chunk(frame).await.is_err() {
                    return Ended::Lost;
                }
                self.sent = self.sent.max(end);
                next = end;
                self.link.written.store(next, Ordering::Release);
                self.link.straggling.store(false, Ordering::Release);
                straggle = None;
            }
            let sleep = async {
                match straggle {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.link.wake.notified() => {}
                () = sleep => {}
                r = recv.read(dec.spare(READ_CHUNK)) => match r {
                    Ok(Some(n)) => dec.commit(n),
                    Ok(None) | Err(_) => return Ended::Lost,
                }
            }
        }
    }

    /// After the receiving node closed: reads its `DONE`s until everything
    /// its getters took was let go (or the stream ends: then they are taken,
    /// and called back Ok).
    async fn drain_done(&self, recv: &mut quinn::RecvStream, dec: &mut wire::Decoder) {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            loop {
                match dec.next() {
                    Ok(Some(wire::Frame::Done(done))) => self.on_done(done),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return self.on_done(self.conn.taken()),
                }
            }
            if self.link.done() >= self.conn.taken() {
                return;
            }
            match recv.read(&mut chunk).await {
                Ok(Some(n)) => dec.feed(&chunk[..n]),
                Ok(None) | Err(_) => return self.on_done(self.conn.taken()),
            }
        }
    }

    /// Detaching: tells the receiving node and waits (bounded) for what its
    /// getters took.
    async fn close(
        &mut self,
        send: &mut quinn::SendStream,
        recv: &mut quinn::RecvStream,
        dec: &mut wire::Decoder,
    ) -> Ended {
        let mut out = Vec::new();
        wire::encode_close(
            &wire::Close::new(ErrorKind::Detached.errno(), "Detached: detached"),
            &mut out,
        );
        if send.write_all(&out).await.is_err() {
            return Ended::Closed;
        }
        let _ = send.finish();
        let mut chunk = vec![0u8; 64 * 1024];
        let last_word = async {
            loop {
                match dec.next() {
                    Ok(Some(wire::Frame::Ack(taken))) => {
                        self.on_ack(taken);
                        continue;
                    }
                    Ok(Some(wire::Frame::Done(done))) => {
                        self.on_done(done);
                        continue;
                    }
                    Ok(Some(wire::Frame::Close(_))) | Err(_) => return,
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                }
                match recv.read(&mut chunk).await {
                    Ok(Some(n)) => dec.feed(&chunk[..n]),
                    Ok(None) | Err(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(DETACH_WAIT, last_word).await;
        // What the receiving node's getters took they keep: called back Ok.
        self.on_done(self.conn.taken());
        Ended::Closed
    }

    /// Encodes the messages put from `from` (below `limit`) into `out`, up to
    /// about `FRAME_TARGET` bytes; returns the exclusive end, or `None` when
    /// there is none.
    fn encode(&self, from: u64, limit: u64, out: &mut Vec<u8>) -> Option<u64> {
        let c = &self.conn;
        let st = lock(&c.send);
        if st.state != LinkState::Open {
            return None;
        }
        // Every put triggers: the next one announces again.
        c.ctr().queued.store(0, Ordering::SeqCst);
        let visible = c.ctr().visible.load(Ordering::Acquire);
        let from = from.max(c.taken());
        // A batch is all redelivered or all new: it ends where they meet.
        let redelivered = from < self.redeliver_below;
        let mut end = visible.min(limit);
        if redelivered {
            end = end.min(self.redeliver_below);
        }
        if from >= end {
            return None;
        }
        let mut batch = wire::DataBuilder::begin(out, from);
        batch.set_redelivered(redelivered);
        let mut seq = from;
        while seq < end {
            // SAFETY: `seq` is visible (published by its put under the `send`
            // lock, which is held) and not yet taken by the receiving node
            // (at or above `taken`): its slot holds the item, which only the
            // delivery thread withdraws, and only below `taken`.
            let Some(item) = (unsafe { c.ring.get(seq) }) else {
                break;
            };
            if !batch.is_empty() && !batch.fits(item.buf.len(), FRAME_TARGET) {
                break;
            }
            if batch.push(item.buf.as_slice()).is_err() {
                break;
            }
            seq += 1;
        }
        batch.finish();
        drop(st);
        (seq > from).then_some(seq)
    }

    /// The receiving node's getters took everything below `taken`.
    fn on_ack(&self, taken: u64) {
        let c = &self.conn;
        let visible = c.ctr().visible.load(Ordering::Acquire);
        let taken = taken.min(visible);
        if taken <= c.taken() {
            return;
        }
        c.ctr().taken.store(taken, Ordering::SeqCst);
        // Flushes wait for `taken`.
        c.notify_senders();
    }

    /// The receiving node's getters let go of everything below `done`: the
    /// delivery thread calls them back and frees their slots.
    fn on_done(&self, done: u64) {
        let c = &self.conn;
        let done = done.min(c.taken());
        if self.link.done.fetch_max(done, Ordering::SeqCst) >= done {
            return;
        }
        let pending = &c.ctr().delivery_pending;
        if pending.swap(1, Ordering::SeqCst) == 0 {
            c.delivery().push(Job::Released(c.clone()));
        }
    }
}
