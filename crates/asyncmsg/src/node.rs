//! The node: one process's messaging runtime, with its delivery thread and its
//! trigger timer thread.

use std::cell::Cell;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use asyncmsg_shm::pool::Pool;
use asyncmsg_shm::ring::Bell;
use event_listener::{Event, Listener};

use crate::SendBuf;
use crate::channel::{Channel, ChannelConfig, ChannelId};
use crate::connection::{Connection, ConnectionAttr};
use crate::error::{ChannelError, ConnectError, NodeError};
use crate::link::{ConnShared, Failed, lock};
use crate::registry;

static NEXT_NODE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static DELIVERY_THREAD_OF: Cell<u64> = const { Cell::new(0) };
}

/// Work for the delivery thread.
pub(crate) enum Job {
    /// A connection has messages given back by the receiver.
    Released(Arc<ConnShared>),
    /// Messages that can never be delivered, with their callbacks.
    Failed(Vec<Failed>),
    /// The receiving process of a connection is gone: complete what it gave
    /// back, then fail everything else with `PeerLost` (B22).
    Lost(Arc<ConnShared>),
}

/// How long the delivery thread looks for more work before it sleeps.
const LINGER: std::time::Duration = std::time::Duration::from_micros(50);

/// Bell flag: a receiver in another process gave messages back.
pub(crate) const RELEASED_REMOTELY: u32 = 1;

/// The queue between the node's handles and its delivery thread.
///
/// The delivery thread sleeps on a [`Bell`] in shared memory, so that receivers
/// in other processes can wake it too: they mark their connection
/// (`delivery_pending`), raise [`RELEASED_REMOTELY`] and ring.
pub(crate) struct DeliveryQueue {
    pub(crate) node_id: u64,
    jobs: Mutex<VecDeque<Job>>,
    pub(crate) bell: Bell,
    stop: AtomicBool,
    /// This node's connections to channels of other processes. Held strongly:
    /// a connection detached while the receiver still holds its messages must
    /// live on until they come back and are called back (B11, B14); it leaves
    /// the list once closed with nothing outstanding.
    remote: Mutex<Vec<Arc<ConnShared>>>,
    /// Whether `remote` is not empty.
    has_remote: AtomicBool,
}

impl DeliveryQueue {
    pub(crate) fn push(&self, job: Job) {
        lock(&self.jobs).push_back(job);
        self.bell.ring();
    }

    /// Watches a connection to another process for given-back messages.
    pub(crate) fn add_remote(&self, conn: &Arc<ConnShared>) {
        let mut list = lock(&self.remote);
        list.retain(|c| !c.finished());
        list.push(conn.clone());
        self.has_remote.store(true, Ordering::Relaxed);
    }

    /// Completes what receivers in other processes gave back.
    /// `conns` is the delivery thread's scratch (kept to allocate nothing per
    /// wake-up); the list is copied out because callbacks may attach.
    fn scan_remote(
        &self,
        conns: &mut Vec<Arc<ConnShared>>,
        items: &mut Vec<(u64, crate::link::Item)>,
    ) {
        conns.extend(lock(&self.remote).iter().cloned());
        let mut finished = false;
        for conn in conns.iter() {
            if conn.ctr().delivery_pending.load(Ordering::SeqCst) != 0 {
                conn.deliver_released(items);
            }
            finished |= conn.finished();
        }
        conns.clear();
        if finished {
            self.prune_remote();
        }
    }

    /// Forgets connections that are closed with nothing outstanding.
    pub(crate) fn prune_remote(&self) {
        let mut list = lock(&self.remote);
        list.retain(|c| !c.finished());
        self.has_remote.store(!list.is_empty(), Ordering::Relaxed);
    }

    /// Whether the calling thread is this node's delivery thread.
    pub(crate) fn on_delivery_thread(&self) -> bool {
        DELIVERY_THREAD_OF.with(|c| c.get()) == self.node_id
    }

    fn run(self: Arc<Self>) {
        DELIVERY_THREAD_OF.with(|c| c.set(self.node_id));
        let mut scratch = Vec::new();
        let mut items = Vec::new();
        loop {
            // Read before looking for work: a push or a remote release after
            // the look moves the word, so the sleep below returns at once.
            let seen = self.bell.seen();
            if self.bell.take_flags() & RELEASED_REMOTELY != 0 {
                self.scan_remote(&mut scratch, &mut items);
            }
            let job = lock(&self.jobs).pop_front();
            match job {
                Some(Job::Released(conn)) => conn.deliver_released(&mut items),
                Some(Job::Failed(list)) => {
                    for f in list {
                        f.call();
                    }
                }
                Some(Job::Lost(conn)) => {
                    conn.deliver_released(&mut items);
                    for f in conn.close_with(asyncmsg_core::ErrorKind::PeerLost, true) {
                        f.call();
                    }
                    self.prune_remote();
                }
                None => {
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                    // Linger a moment before sleeping: releases that follow
                    // closely (a request/reply exchange) then cost their
                    // senders no wake-up call. Yielding keeps the CPU for any
                    // runnable thread meanwhile.
                    // Only for connections to other processes, whose receivers
                    // pay that call; in process a sleeping delivery thread
                    // leaves the CPU to busy senders and receivers.
                    let linger = std::time::Instant::now();
                    while self.has_remote.load(Ordering::Relaxed)
                        && !self.bell.moved(seen)
                        && linger.elapsed() < LINGER
                    {
                        std::thread::yield_now();
                    }
                    if self.bell.moved(seen) {
                        continue;
                    }
                    self.bell.enter();
                    let idle = lock(&self.jobs).is_empty() && !self.stop.load(Ordering::Acquire);
                    if idle {
                        self.bell.sleep(seen, None);
                    }
                    self.bell.leave();
                }
            }
        }
    }
}

struct TimerEntry {
    at: Instant,
    conn: Weak<ConnShared>,
}

impl PartialEq for TimerEntry {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at
    }
}
impl Eq for TimerEntry {}
impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for TimerEntry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.at.cmp(&self.at) // min-heap on the deadline
    }
}

/// The node's trigger timers (B04): one thread sleeping until the earliest deadline.
/// The timer thread's timer slack (ns).
const TIMER_SLACK_NS: libc::c_ulong = 1_000;

pub(crate) struct Timers {
    heap: Mutex<BinaryHeap<TimerEntry>>,
    changed: Event,
    stop: AtomicBool,
}

impl Timers {
    pub(crate) fn arm(&self, at: Instant, conn: &Arc<ConnShared>) {
        let mut heap = lock(&self.heap);
        let earliest = heap.peek().is_none_or(|e| at < e.at);
        heap.push(TimerEntry {
            at,
            conn: Arc::downgrade(conn),
        });
        drop(heap);
        if earliest {
            self.changed.notify(1);
        }
    }

    fn run(self: Arc<Self>) {
        // Time triggers fire on this thread's timed waits: without Linux's
        // default 50 µs of timer slack they fire closer to their deadline.
        // SAFETY: PR_SET_TIMERSLACK changes only the calling thread's slack.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS) };
        loop {
            // Listen before looking at `stop`: a stop (and its notification)
            // between the look and the listen would otherwise be missed, and
            // the node's drop would wait for this thread for ever.
            let listener = self.changed.listen();
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let now = Instant::now();
            let mut due = Vec::new();
            let next = {
                let mut heap = lock(&self.heap);
                while heap.peek().is_some_and(|e| e.at <= now) {
                    due.push(heap.pop().expect("peeked"));
                }
                heap.peek().map(|e| e.at)
            };
            if !due.is_empty() {
                drop(listener);
                for e in due {
                    if let Some(conn) = e.conn.upgrade()
                        && let Some(again) = conn.on_timer(now)
                    {
                        self.arm(again, &conn);
                    }
                }
                continue;
            }
            match next {
                Some(at) => {
                    listener.wait_deadline(at);
                }
                None => {
                    listener.wait();
                }
            }
        }
    }
}

pub(crate) struct NodeShared {
    pub(crate) id: u64,
    pub(crate) delivery: Arc<DeliveryQueue>,
    pub(crate) timers: Arc<Timers>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Shared send buffers (B17), made at the first need.
    pub(crate) pool: std::sync::OnceLock<Arc<Pool>>,
    /// The QUIC transport (its runtime, endpoints, links), made at the first
    /// need.
    pub(crate) quic: std::sync::OnceLock<Arc<crate::quic::QuicNode>>,
    /// Where the QUIC trust root lives, if not `$ASYNCMSG_HOME`'s default.
    pub(crate) home: Mutex<Option<std::path::PathBuf>>,
}

impl NodeShared {
    /// The node's pool of shared send buffers.
    pub(crate) fn pool(&self) -> std::io::Result<&Arc<Pool>> {
        if let Some(p) = self.pool.get() {
            return Ok(p);
        }
        let p = Pool::create(POOL_CAPACITY)?;
        Ok(self.pool.get_or_init(|| p))
    }
}

/// Address space reserved for a node's shared send buffers. Only pages in use
/// take memory.
const POOL_CAPACITY: usize = 1 << 30;

impl Drop for NodeShared {
    fn drop(&mut self) {
        if let Some(q) = self.quic.get() {
            q.shutdown();
        }
        self.delivery.stop.store(true, Ordering::Release);
        self.delivery.bell.ring_all();
        self.timers.stop.store(true, Ordering::Release);
        self.timers.changed.notify(usize::MAX);
        let threads = std::mem::take(&mut *lock(&self.threads));
        let me = std::thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

/// One process's messaging runtime (QNX: the process and its kernel objects).
///
/// A node owns the delivery thread that runs delivery callbacks, the timer
/// thread that fires time triggers, and the transports. Channels and connections
/// keep their node alive; it stops when the last of them is gone.
///
/// ```
/// use asyncmsg::{ChannelConfig, ConnectionAttr, Node};
/// let node = Node::new()?;
/// let chan = node.create_channel(ChannelConfig::default())?;
/// let conn = node.connect(chan.id(), ConnectionAttr::default())?;
/// conn.put("hello", 1).unwrap();
/// let batch = chan.get()?;
/// assert_eq!(batch[0].data(), b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Node {
    pub(crate) shared: Arc<NodeShared>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.shared.id).finish()
    }
}

impl Node {
    /// Starts a node: its delivery thread and its timer thread.
    pub fn new() -> Result<Node, NodeError> {
        let id = NEXT_NODE.fetch_add(1, Ordering::Relaxed);
        let delivery = Arc::new(DeliveryQueue {
            node_id: id,
            jobs: Mutex::new(VecDeque::new()),
            bell: Bell::create()?,
            stop: AtomicBool::new(false),
            remote: Mutex::new(Vec::new()),
            has_remote: AtomicBool::new(false),
        });
        let timers = Arc::new(Timers {
            heap: Mutex::new(BinaryHeap::new()),
            changed: Event::new(),
            stop: AtomicBool::new(false),
        });
        let d = delivery.clone();
        let t1 = std::thread::Builder::new()
            .name(format!("asyncmsg-delivery-{id}"))
            .spawn(move || d.run())?;
        let t = timers.clone();
        let t2 = std::thread::Builder::new()
            .name(format!("asyncmsg-timer-{id}"))
            .spawn(move || t.run())?;
        Ok(Node {
            shared: Arc::new(NodeShared {
                id,
                delivery,
                timers,
                threads: Mutex::new(vec![t1, t2]),
                pool: std::sync::OnceLock::new(),
                quic: std::sync::OnceLock::new(),
                home: Mutex::new(None),
            }),
        })
    }

    /// Creates a channel (QNX `asyncmsg_channel_create`).
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default().buffer_size(256).max_buffers(8)).unwrap();
    /// assert!(chan.id().chid > 0);
    /// ```
    pub fn create_channel(&self, config: ChannelConfig) -> Result<Channel, ChannelError> {
        Channel::create(self, config)
    }

    /// Attaches a connection to a channel (QNX `asyncmsg_connect_attach`).
    ///
    /// `target` is a [`ChannelId`] (QNX's `nd, pid, chid`) or an address string:
    /// a published name, `inproc://NAME`, or `shm://NAME` / `quic://HOST:PORT/NAME`
    /// where those transports are built in.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let chan = node.create_channel(ChannelConfig::default()).unwrap();
    /// chan.publish("doc-connect").unwrap();
    /// let by_name = node.connect("doc-connect", ConnectionAttr::default()).unwrap();
    /// let by_id = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    /// assert_ne!(by_name.coid(), by_id.coid());
    /// assert!(matches!(node.connect("no-such-name", ConnectionAttr::default()),
    ///                  Err(ConnectError::NotFound(_))));
    /// ```
    pub fn connect(
        &self,
        target: impl Into<Target>,
        attr: ConnectionAttr,
    ) -> Result<Connection, ConnectError> {
        let local = match target.into() {
            Target::Id(id) if id.nd == 0 && id.pid == std::process::id() => registry::by_id(id)?,
            Target::Id(id) if id.nd != 0 => return crate::quic::connect_id(self, id, attr),
            Target::Id(id) => return crate::shm::connect_id(self, id, attr),
            Target::Address(addr) => match registry::resolve(&addr)? {
                registry::Resolved::Local(chan) => chan,
                registry::Resolved::Shm(name) => {
                    return crate::shm::connect_name(self, &name, attr);
                }
                registry::Resolved::Quic(host, name) => {
                    return crate::quic::connect_name(self, &host, &name, attr);
                }
            },
        };
        Connection::attach(self, local, attr)
    }

    /// Listens for other nodes on `addr` (`HOST:PORT`; port 0 picks one) over
    /// QUIC, and returns the address bound. Channels published here are then
    /// reachable from other nodes as `quic://HOST:PORT/NAME` (B19). Peers must
    /// present a certificate issued by the trust root under
    /// `$ASYNCMSG_HOME` (B18; made on first use, or by `asyncmsg cert init`);
    /// traffic is TLS 1.3, never plaintext.
    ///
    /// ```no_run
    /// # use asyncmsg::*;
    /// let node = Node::new()?;
    /// let chan = node.create_channel(ChannelConfig::default())?;
    /// chan.publish("sensors")?;
    /// let addr = node.listen("127.0.0.1:0")?;
    /// let sender = Node::new()?;
    /// let conn = sender.connect(format!("quic://{addr}/sensors"), ConnectionAttr::default())?;
    /// conn.put("over the network", 1)?;
    /// assert_eq!(chan.get()?[0].data(), b"over the network");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen(&self, addr: &str) -> Result<std::net::SocketAddr, ConnectError> {
        crate::quic::listen(self, addr)
    }

    /// Keeps this node's QUIC trust root in `dir` instead of `$ASYNCMSG_HOME`
    /// (default: `$XDG_DATA_HOME/asyncmsg`, else `~/.local/share/asyncmsg`).
    /// Nodes trust each other when their homes hold the same root. Takes
    /// effect if called before the node's first QUIC use.
    pub fn trust_home(&self, dir: impl Into<std::path::PathBuf>) {
        *lock(&self.shared.home) = Some(dir.into());
    }

    /// The node descriptor (QNX `nd`) of the node listening at `addr`, for
    /// [`ChannelId`]s of channels there (QNX `netmgr_strtond`). Descriptors
    /// are this node's own numbering, from 1 (0 is this node).
    pub fn node_descriptor(&self, addr: &str) -> Result<u32, ConnectError> {
        crate::quic::node_descriptor(self, addr)
    }

    /// Creates a synchronous channel (QNX `ChannelCreate`) whose clients need
    /// the `mode` write bits (checked across processes, B18). See
    /// [`SyncChannel`](crate::SyncChannel).
    pub fn create_sync_channel(&self, mode: u32) -> Result<crate::SyncChannel, ChannelError> {
        crate::sync::SyncChannel::create(self, mode)
    }

    /// Connects to a synchronous channel. By name (`NAME`, `shm://NAME`) this is
    /// QNX's `name_open`: the server receives a connect request
    /// ([`RequestKind::Connect`](crate::RequestKind::Connect)) and must reply
    /// before this returns. By [`ChannelId`] it is QNX's `ConnectAttach`: no
    /// request is sent.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let server = node.create_sync_channel(0o600).unwrap();
    /// let client = node.open(server.id()).unwrap();          // ConnectAttach
    /// client.send_pulse(7, 70).unwrap();                      // MsgSendPulse
    /// let Received::Pulse(p) = server.receive().unwrap() else { panic!() };
    /// assert_eq!((p.code, p.value), (7, 70));
    /// ```
    pub fn open(&self, target: impl Into<Target>) -> Result<crate::SyncConnection, ConnectError> {
        crate::sync::SyncConnection::open(target.into(), None)
    }

    /// As [`open`](Self::open), waiting at most `timeout` for the server to
    /// answer the connect request; [`ConnectError::TimedOut`] otherwise (the
    /// server is alive but not receiving).
    ///
    /// ```
    /// # use asyncmsg::*;
    /// # use std::time::Duration;
    /// let node = Node::new().unwrap();
    /// let server = node.create_sync_channel(0o600).unwrap();
    /// let name = format!("doc-open-timeout-{}", std::process::id());
    /// server.publish(&name).unwrap();
    /// // Nobody receives on `server`, so nobody answers:
    /// assert!(matches!(node.open_timeout(name.as_str(), Duration::from_millis(20)),
    ///                  Err(ConnectError::TimedOut)));
    /// ```
    pub fn open_timeout(
        &self,
        target: impl Into<Target>,
        timeout: Duration,
    ) -> Result<crate::SyncConnection, ConnectError> {
        crate::sync::SyncConnection::open(target.into(), Some(timeout))
    }

    /// A zeroed send buffer of `size` bytes (QNX `asyncmsg_malloc`, B17).
    ///
    /// From [`SHARED_ALLOC_MIN`](crate::SHARED_ALLOC_MIN) bytes on, the buffer
    /// lives in the node's shared memory pool: a put to a channel of another
    /// process passes only its place, not its bytes, and the delivery callback
    /// hands the same buffer back for the next put. Smaller buffers (and any
    /// when the pool is full) are on the heap and copied once into the ring.
    ///
    /// ```
    /// # use asyncmsg::*;
    /// let node = Node::new().unwrap();
    /// let buf = node.alloc(64);
    /// assert_eq!(buf.len(), 64);
    /// let big = node.alloc(64 * 1024);
    /// assert!(big.is_shared() && big.iter().all(|&b| b == 0));
    /// ```
    pub fn alloc(&self, size: usize) -> SendBuf {
        if size >= crate::buf::SHARED_ALLOC_MIN
            && let Ok(pool) = self.shared.pool()
            && let Some(b) = pool.alloc(size)
        {
            return SendBuf::pooled(b);
        }
        SendBuf::zeroed(size)
    }

    /// This process's id, as channels and messages report it.
    pub fn pid(&self) -> u32 {
        std::process::id()
    }
}

/// Where a connection goes: a channel id or an address string.
///
/// ```
/// use asyncmsg::{ChannelId, Target};
/// assert_eq!(Target::from("sensors"), Target::Address("sensors".into()));
/// let id = ChannelId { nd: 0, pid: 1, chid: 2 };
/// assert_eq!(Target::from(id), Target::Id(id));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// QNX's `(nd, pid, chid)`.
    Id(ChannelId),
    /// A name or a transport address (`NAME`, `inproc://NAME`, `shm://NAME`,
    /// `quic://HOST:PORT/NAME`).
    Address(String),
}

impl From<ChannelId> for Target {
    fn from(id: ChannelId) -> Self {
        Target::Id(id)
    }
}
impl From<&str> for Target {
    fn from(s: &str) -> Self {
        Target::Address(s.to_owned())
    }
}
impl From<String> for Target {
    fn from(s: String) -> Self {
        Target::Address(s)
    }
}
impl From<&String> for Target {
    fn from(s: &String) -> Self {
        Target::Address(s.clone())
    }
}

/// Queues callbacks for messages that reached no receiver on the delivery thread.
pub(crate) fn queue_failed(queue: &DeliveryQueue, list: Vec<Failed>) {
    if !list.is_empty() {
        queue.push(Job::Failed(list));
    }
}
