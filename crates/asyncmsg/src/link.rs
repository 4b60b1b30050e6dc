//! The shared state of channels and connections over the in-process transport,
//! and the protocol that drives `asyncmsg_core`'s state machines with it.
//!
//! Locks: a channel's `state` mutex may be held while taking a connection's
//! `send` mutex (detach, destroy); never the other way round. Neither is held
//! while a user callback runs. The per-message path takes the connection's
//! `send` mutex only (uncontended unless several threads put on one connection);
//! the channel mutex is taken once per trigger and once per get.
//!
//! ## A message's way, and the counters that hand it on
//! `put` (sender, under `send`) writes slot `seq` and, when the core says so,
//! publishes `visible`; a get (under the channel lock) takes `taken..visible`
//! and advances `taken` (the cumulative acknowledgement flushes wait on); the
//! receiver reads each message in place and its drop sets the slot's released
//! flag; the node's delivery thread completes released slots in order,
//! advances `completed` (freeing slots for puts) and runs the callbacks.
//!
//! ## Two store-then-load handshakes (each side: SeqCst store, then SeqCst load)
//! Both exist so that nobody sleeps on work the other side just published; the
//! stress tests in `tests/races.rs` and `tests/edges.rs` exercise them.
//! * **Announcing a batch** (`queued`): a put stores `visible`, then looks at
//!   `queued`; if clear it sets it and queues the connection on the channel
//!   (`publish_locked` + `announce`). A get that drained a connection clears
//!   `queued`, then looks at `visible` again and re-queues it if it grew
//!   (`take_once`). Either the put sees the flag clear, or the get sees the new
//!   `visible`. A get never sleeps with a connection it re-queued itself
//!   (`take_batch` loops), and a closed link is never queued (`closed`).
//! * **Waking the delivery thread** (`delivery_pending`): a receiver's drop sets
//!   the slot's released flag, fences, then looks at `delivery_pending`; if clear
//!   it sets it and queues a job. The delivery thread clears the flag, fences,
//!   then scans the released flags. Either the drop queues a job, or the scan
//!   sees its slot.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use asyncmsg_core::{ChannelCore, ErrorKind, Publish, SendConfig, SendCore, Wake};
use asyncmsg_inproc::SlotRing;
use asyncmsg_shm::pool::PoolBuf;
use asyncmsg_shm::ring::{Bell, CLOSED, Counters};
use event_listener::{Event, Listener};

use crate::SendBuf;
use crate::channel::EventSink;
use crate::connection::{Callback, Delivery, OnceCallback};
use crate::node::{DeliveryQueue, Job, NodeShared, Timers};
use crate::shm::{RemoteConn, SendLink};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The instant `timeout` from now; `None` (no deadline) when that lies beyond
/// what `Instant` can represent, so `Duration::MAX` means "wait for ever".
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Waits on `event` until `take` yields a value, or until `deadline` passes
/// (then `None`). `take` runs again after registering as a listener, so a value
/// that arrives between the first look and the wait is not missed.
pub(crate) fn wait_for<T>(
    event: &Event,
    deadline: Option<Instant>,
    mut take: impl FnMut() -> Option<T>,
) -> Option<T> {
    loop {
        if let Some(v) = take() {
            return Some(v);
        }
        event_listener::listener!(event => listener);
        if let Some(v) = take() {
            return Some(v);
        }
        match deadline {
            Some(at) => {
                if listener.wait_deadline(at).is_none() {
                    return take();
                }
            }
            None => listener.wait(),
        }
    }
}

/// [`wait_for`] without a deadline, waiting without a thread.
pub(crate) async fn wait_for_async<T>(event: &Event, mut take: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = take() {
            return v;
        }
        let listener = event.listen();
        if let Some(v) = take() {
            return v;
        }
        listener.await;
    }
}

/// One message in a slot.
pub(crate) struct Item {
    pub(crate) buf: SendBuf,
    pub(crate) handle: u64,
    pub(crate) generation: u32,
    /// What few messages carry, boxed so that an item fits one cache line.
    pub(crate) extra: Option<Box<Extra>>,
}

/// The rarer parts of a message.
pub(crate) struct Extra {
    /// The per-put callback (`put_with`).
    pub(crate) once: Option<Owned<OnceCallback>>,
    /// A copy of a large payload in the node's shared pool, for a receiver in
    /// another process; freed when the message completes.
    pub(crate) spill: Option<PoolBuf>,
    /// The message may have been delivered before (resent across a
    /// receiver's restart, store and forward).
    pub(crate) redelivered: bool,
}

impl Item {
    /// The per-put callback, if any.
    pub(crate) fn take_once(&mut self) -> Option<Owned<OnceCallback>> {
        self.extra.as_mut().and_then(|e| e.once.take())
    }

    /// The pool copy of the payload, if any.
    pub(crate) fn spill(&self) -> Option<&PoolBuf> {
        self.extra.as_ref().and_then(|e| e.spill.as_ref())
    }
}

/// A value that can only be moved, never borrowed, so sharing `&Owned<T>`
/// between threads can never expose a `&T`: it is `Sync` whenever `T` is
/// `Send`. (A per-put callback need not be `Sync`; the message it rides with
/// is read in place from other threads.)
pub(crate) struct Owned<T>(T);

// SAFETY: no `&T` can be obtained from an `&Owned<T>`; only `into_inner` by value.
unsafe impl<T: Send> Sync for Owned<T> {}

impl<T> Owned<T> {
    pub(crate) fn new(t: T) -> Self {
        Owned(t)
    }
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

/// What running a connection's callbacks needs, looked up once per batch.
struct Dispatcher {
    stream: Option<Arc<crate::connection::StreamShared>>,
    cached: Option<(u32, Option<Callback>)>,
}

impl Dispatcher {
    fn new(conn: &ConnShared) -> Self {
        Dispatcher {
            stream: lock(&conn.stream)
                .as_ref()
                .and_then(std::sync::Weak::upgrade),
            cached: None,
        }
    }

    fn deliver(&mut self, conn: &ConnShared, seq: u64, item: Item) {
        let Item {
            buf,
            handle,
            generation,
            extra,
        } = item;
        if !matches!(&self.cached, Some((g, _)) if *g == generation) {
            // Completions run in put order and generations only grow with
            // it, so every message of an older generation has been called
            // back (or withdrawn with its callback).
            conn.prune_callbacks(generation);
            self.cached = Some((generation, conn.callback_of(generation)));
        }
        // Borrowed, not cloned: no reference count moves per message.
        let default = self.cached.as_ref().and_then(|(_, cb)| cb.as_ref());
        let once = match extra {
            Some(e) => e.once,
            None => None,
        };
        let d = Delivery {
            result: Ok(()),
            handle,
            buf,
            seq,
            coid: conn.coid,
        };
        dispatch(d, once, default, self.stream.as_ref());
    }
}

/// A message that can never be delivered, with what its callback needs.
pub(crate) struct Failed {
    pub(crate) delivery: Delivery,
    pub(crate) once: Option<Owned<OnceCallback>>,
    pub(crate) default: Option<Callback>,
    pub(crate) stream: Option<Arc<crate::connection::StreamShared>>,
}

impl Failed {
    pub(crate) fn call(self) {
        dispatch(
            self.delivery,
            self.once,
            self.default.as_ref(),
            self.stream.as_ref(),
        );
    }
}

fn dispatch(
    d: Delivery,
    once: Option<Owned<OnceCallback>>,
    default: Option<&Callback>,
    stream: Option<&Arc<crate::connection::StreamShared>>,
) {
    // A callback that panics must not take the delivery thread with it: every
    // later message of every connection of the node still needs its callback.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Some(f) = once {
            (f.into_inner())(d);
        } else if let Some(f) = default {
            f(d);
        } else if let Some(s) = stream {
            s.push(d);
        }
    }));
    if outcome.is_err() {
        eprintln!("asyncmsg: a delivery callback panicked; later deliveries go on");
    }
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    Open,
    Closed(ErrorKind),
}

pub(crate) struct SendState {
    pub(crate) core: SendCore,
    pub(crate) state: LinkState,
    pub(crate) generation: u32,
}

/// Default callbacks by generation: a put records the generation in force, so a
/// change through `set_attr` applies from the next put on (B16).
pub(crate) struct Callbacks {
    pub(crate) list: VecDeque<(u32, Option<Callback>)>,
}

/// A value on cache lines of its own, so that the threads writing one counter do
/// not slow down the threads reading another (two lines: adjacent-line
/// prefetching pairs them on x86).
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Where a connection's messages go.
pub(crate) enum Peer {
    /// A channel of this process: both ends share this `ConnShared`.
    Local(Arc<ChanShared>),
    /// A channel of another process, over a shared-memory link.
    Remote(Arc<SendLink>),
    /// A channel of another node, over QUIC.
    Net(Arc<crate::quic::NetLink>),
}

/// Where a connection's counters live: on the heap in process, in the
/// connection's shared segment across processes.
enum CounterHome {
    Heap(Box<Counters>),
    Remote(Arc<SendLink>),
}

impl CounterHome {
    fn get(&self) -> &Counters {
        match self {
            CounterHome::Heap(c) => c,
            CounterHome::Remote(link) => link.ring.counters(),
        }
    }
}

/// The address of a connection's counters, read on every put and get without
/// going through [`CounterHome`].
struct CounterPtr(std::ptr::NonNull<Counters>);

// SAFETY: it points to atomics (`Counters` is `Sync`), owned by the
// `CounterHome` beside it in the same `ConnShared`, which never moves them
// (a `Box`, or a mapping held by an `Arc`) and outlives every use.
unsafe impl Send for CounterPtr {}
// SAFETY: as above.
unsafe impl Sync for CounterPtr {}

/// One connection's shared state. The counters each thread writes sit on lines
/// of their own ([`Counters`]: `visible` (sender), `taken` and `queued`
/// (getters), `delivery_pending` (receivers, delivery thread)), `completed` on
/// its own line here, and the `Arc` reference count that every received message
/// bumps stays off all of them.
pub(crate) struct ConnShared {
    /// Keeps the `Arc`'s reference counts off the lines below.
    _head: Padded<()>,
    pub(crate) coid: i32,
    /// The sender's process (and node, 0: this one): this process, except for
    /// a connection that carries a remote node's messages into a channel here.
    pub(crate) pid: u32,
    pub(crate) nd: u32,
    pub(crate) nonblocking: AtomicBool,
    pub(crate) peer: Peer,
    /// Owns the counters `ctr` points to.
    _home: CounterHome,
    ctr: CounterPtr,
    pub(crate) node: Arc<NodeShared>,
    pub(crate) ring: SlotRing<Item>,
    pub(crate) send: Padded<Mutex<SendState>>,
    /// Exclusive end of the called-back range (delivery thread → sender).
    pub(crate) completed: Padded<AtomicU64>,
    /// The link was closed (detach, destroy): it must never be queued again.
    /// Set under the channel lock by detach, read under it by `announce`.
    pub(crate) closed: AtomicBool,
    /// Senders blocked in put or flush wait here.
    pub(crate) sender_event: Event,
    pub(crate) callbacks: Mutex<Callbacks>,
    /// Where deliveries go when no callback takes them; weak, so that dropping
    /// the `DeliveryStream` drops later deliveries instead of keeping them.
    pub(crate) stream: Mutex<Option<std::sync::Weak<crate::connection::StreamShared>>>,
}

impl ConnShared {
    pub(crate) fn new(
        coid: i32,
        nonblocking: bool,
        cfg: SendConfig,
        callback: Option<Callback>,
        peer: Peer,
        node: Arc<NodeShared>,
    ) -> Self {
        let mut list = VecDeque::new();
        list.push_back((0, callback));
        let home = match &peer {
            Peer::Local(_) | Peer::Net(_) => CounterHome::Heap(Box::default()),
            Peer::Remote(link) => CounterHome::Remote(link.clone()),
        };
        let ctr = CounterPtr(std::ptr::NonNull::from(home.get()));
        ConnShared {
            _head: Padded(()),
            coid,
            pid: std::process::id(),
            nd: 0,
            nonblocking: AtomicBool::new(nonblocking),
            ring: SlotRing::new(cfg.max_buffers as usize),
            send: Padded(Mutex::new(SendState {
                core: SendCore::new(cfg),
                state: LinkState::Open,
                generation: 0,
            })),
            peer,
            _home: home,
            ctr,
            node,
            completed: Padded(AtomicU64::new(0)),
            closed: AtomicBool::new(false),
            sender_event: Event::new(),
            callbacks: Mutex::new(Callbacks { list }),
            stream: Mutex::new(None),
        }
    }

    /// The connection's counters.
    #[inline]
    pub(crate) fn ctr(&self) -> &Counters {
        // SAFETY: `ctr` points into `home`, which lives as long as `self` and
        // never moves what it holds (see `CounterPtr`).
        unsafe { self.ctr.0.as_ref() }
    }

    /// The receiver's cumulative acknowledgement (without the closed mark).
    #[inline]
    pub(crate) fn taken(&self) -> u64 {
        self.ctr().taken.load(Ordering::Acquire) & !CLOSED
    }

    /// The channel's `(pid, chid)`.
    pub(crate) fn channel(&self) -> (u32, i32) {
        match &self.peer {
            Peer::Local(c) => (c.pid, c.chid),
            Peer::Remote(l) => (l.pid, l.chid),
            Peer::Net(l) => l.channel(),
        }
    }

    /// The channel's largest message.
    pub(crate) fn buffer_size(&self) -> usize {
        match &self.peer {
            Peer::Local(c) => c.buffer_size,
            Peer::Remote(l) => l.buffer_size,
            Peer::Net(l) => l.buffer_size(),
        }
    }

    pub(crate) fn debug_state(&self) -> String {
        let st = lock(&self.send);
        let c = self.ctr();
        format!(
            "coid {} next {} core visible/taken/completed {}/{}/{} atomics visible {} taken {} completed {} queued {} delivery_pending {} sender_waiters {} state {:?}",
            self.coid,
            st.core.next_seq(),
            st.core.visible(),
            st.core.taken(),
            st.core.completed(),
            c.visible.load(Ordering::SeqCst),
            c.taken.load(Ordering::SeqCst),
            self.completed.load(Ordering::SeqCst),
            c.queued.load(Ordering::SeqCst),
            c.delivery_pending.load(Ordering::SeqCst),
            c.sender_waiters.load(Ordering::SeqCst),
            st.state,
        )
    }

    /// Brings the sender's core up to date with the receiver's counters (clamped
    /// to what was published: a peer's word is never trusted beyond it).
    pub(crate) fn refresh(&self, st: &mut SendState) {
        let taken = self.taken();
        let _ = st.core.on_taken(taken.min(st.core.visible()));
        let completed = self.completed.load(Ordering::Acquire);
        let _ = st.core.on_completed(completed.min(st.core.taken()));
    }

    /// Publishes what the core decided, while the `send` mutex is held. Returns
    /// whether the channel must be told (after the mutex is released).
    pub(crate) fn publish_locked(&self, p: Publish) -> bool {
        let Some(v) = p.visible() else { return false };
        let c = self.ctr();
        c.visible.store(v, Ordering::SeqCst);
        if let Peer::Net(_) = self.peer {
            // Every put is told to the link, which decides when to write.
            return true;
        }
        match p {
            Publish::Trigger { .. } => c.queued.swap(1, Ordering::SeqCst) == 0,
            // B05: the batch is already announced, unless a get drained the
            // connection just now; then this is a trigger of its own.
            Publish::Extend { .. } => {
                c.queued.load(Ordering::SeqCst) == 0 && c.queued.swap(1, Ordering::SeqCst) == 0
            }
            Publish::None => false,
        }
    }

    /// Tells the channel that this connection has a visible batch.
    pub(crate) fn announce(self: &Arc<Self>) {
        let chan = match &self.peer {
            Peer::Local(chan) => chan,
            Peer::Remote(link) => return link.announce(),
            Peer::Net(link) => {
                return link.announce(self.ctr().visible.load(Ordering::Acquire), self.taken());
            }
        };
        let wake = {
            let mut st = lock(&chan.state);
            // A trigger that lost the race with a detach (which closes the link
            // under this lock) must not queue the dead connection again.
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            st.core.on_trigger(ConnKey::Local(self.clone()))
        };
        chan.wake(wake);
    }

    /// The time trigger fired; returns the next deadline to arm.
    pub(crate) fn on_timer(self: &Arc<Self>, now: Instant) -> Option<Instant> {
        let (announce, next) = {
            let mut st = lock(&self.send);
            if st.state != LinkState::Open {
                return None;
            }
            self.refresh(&mut st);
            // Only a due deadline re-arms: a deadline still ahead already has its
            // own timer entry (armed by the put or the re-arm that set it).
            let due = st.core.poll_timeout().is_some_and(|at| at <= now);
            let (p, next) = st.core.handle_timeout(now);
            (self.publish_locked(p), next.filter(|_| due))
        };
        if announce {
            self.announce();
        }
        next
    }

    pub(crate) fn timers(&self) -> &Timers {
        &self.node.timers
    }

    pub(crate) fn delivery(&self) -> &DeliveryQueue {
        &self.node.delivery
    }

    /// Closed, and every message it took was called back: nothing can happen
    /// on this connection any more.
    pub(crate) fn finished(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
            && self.completed.load(Ordering::SeqCst)
                >= self.taken().min(self.ctr().visible.load(Ordering::SeqCst))
    }

    /// Tells whoever waits on this connection's sender side (put, flush) that a
    /// counter moved.
    pub(crate) fn notify_senders(&self) {
        if self.ctr().sender_waiters.load(Ordering::SeqCst) > 0 {
            self.sender_event.notify(usize::MAX);
        }
    }

    /// A received message was dropped: its slot passes to the delivery thread,
    /// which is told (once per batch of releases, not per message).
    ///
    /// # Safety
    /// `seq` was taken by a get and its `Message` is the caller, releasing once.
    pub(crate) unsafe fn release(self: &Arc<Self>, seq: u64) {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.ring.release(seq) };
        fence(Ordering::SeqCst);
        let pending = &self.ctr().delivery_pending;
        if pending.load(Ordering::Relaxed) == 0 && pending.swap(1, Ordering::SeqCst) == 0 {
            self.delivery().push(Job::Released(self.clone()));
        }
    }

    /// On the delivery thread: completes every given-back slot in order, frees
    /// the slots (one store for the batch), then runs their callbacks (B11).
    /// `scratch` is the delivery thread's, kept to allocate nothing per batch.
    pub(crate) fn deliver_released(self: &Arc<Self>, scratch: &mut Vec<(u64, Item)>) {
        self.ctr().delivery_pending.store(0, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let start = self.completed.load(Ordering::Acquire);
        let mut seq = start;
        scratch.clear();
        match &self.peer {
            Peer::Remote(link) => {
                // The receiver marks released slots in the segment. Complete
                // them in order, never past what it took (clamped to what was
                // published, whatever the peer wrote).
                let end = self.taken().min(self.ctr().visible.load(Ordering::Relaxed));
                while seq < end && link.ring.is_released(seq) {
                    link.ring.clear_released(seq);
                    // SAFETY: `seq` was taken (below `taken`) and given back,
                    // and only this thread completes: the slot's item is ours.
                    if let Some(item) = unsafe { self.ring.withdraw(seq) } {
                        scratch.push((seq, item));
                    }
                    seq += 1;
                }
            }
            Peer::Net(link) => {
                // The peer node acknowledges cumulatively: everything below
                // `done` was taken and let go there, and nothing here reads
                // those slots any more (the link reads only from `taken` up).
                let end = link.done().min(self.taken());
                while seq < end {
                    // SAFETY: `seq` is below `taken` and at or above
                    // `completed`, and only this thread completes.
                    if let Some(item) = unsafe { self.ring.withdraw(seq) } {
                        scratch.push((seq, item));
                    }
                    seq += 1;
                }
            }
            Peer::Local(_) => {
                // SAFETY: this runs only on the node's delivery thread, which
                // completes each connection's slots in order; `complete` stops
                // at the first slot not given back, so it never passes `taken`.
                while let Some(item) = unsafe { self.ring.complete(seq) } {
                    scratch.push((seq, item));
                    seq += 1;
                }
            }
        }
        if seq != start {
            // The slots are free from here on (a put, even from a callback
            // below, may reuse them).
            self.completed.store(seq, Ordering::SeqCst);
        }
        if seq != start || !matches!(self.peer, Peer::Local(_)) {
            // Threads blocked in put wait for slots; across processes a flush
            // waits for `taken`, which the receiver rings for as well.
            self.notify_senders();
        }
        if scratch.is_empty() {
            return;
        }
        let mut dispatcher = Dispatcher::new(self);
        for (seq, item) in scratch.drain(..) {
            dispatcher.deliver(self, seq, item);
        }
    }

    /// The default callback of messages put under `generation`. Looking it up
    /// prunes nothing: messages of older generations may still be in flight
    /// (held by the receiver), see [`Self::prune_callbacks`].
    pub(crate) fn callback_of(&self, generation: u32) -> Option<Callback> {
        let cbs = lock(&self.callbacks);
        cbs.list
            .iter()
            .find(|(g, _)| *g == generation)
            .and_then(|(_, cb)| cb.clone())
    }

    /// Forgets the default callbacks of generations older than `generation`
    /// (keeping the newest), once no message of theirs can complete any more.
    fn prune_callbacks(&self, generation: u32) {
        let mut cbs = lock(&self.callbacks);
        while cbs.list.len() > 1 && cbs.list[0].0 < generation {
            cbs.list.pop_front();
        }
    }

    /// Ends the link: the untaken messages are withdrawn and returned with their
    /// callbacks, for the caller to run (detach) or queue (destroy). Wakes
    /// threads blocked in put or flush. With `held_too` (the receiving process
    /// is gone), messages it took but never gave back fail as well.
    pub(crate) fn close(&self, reason: ErrorKind) -> Vec<Failed> {
        self.close_with(reason, false)
    }

    pub(crate) fn close_with(&self, reason: ErrorKind, held_too: bool) -> Vec<Failed> {
        let mut out = Vec::new();
        {
            let mut st = lock(&self.send);
            if st.state != LinkState::Open && !held_too {
                return out;
            }
            let was_open = st.state == LinkState::Open;
            if was_open {
                // A link closed for a reason keeps it (a destroy, then the end
                // of the receiving process).
                st.state = LinkState::Closed(reason);
            }
            self.closed.store(true, Ordering::SeqCst);
            if let Peer::Remote(_) = &self.peer {
                // A receiver in another process takes without our lock: mark the
                // link closed in `taken` itself, so that from here on a take
                // fails, and what it says is final.
                self.ctr().taken.fetch_or(CLOSED, Ordering::SeqCst);
            }
            self.refresh(&mut st);
            let stream = lock(&self.stream)
                .as_ref()
                .and_then(std::sync::Weak::upgrade);
            let fail = |seq: u64, mut item: Item, out: &mut Vec<Failed>| {
                let once = item.take_once();
                out.push(Failed {
                    default: self.callback_of(item.generation),
                    delivery: Delivery {
                        result: Err(reason),
                        handle: item.handle,
                        buf: item.buf,
                        seq,
                        coid: self.coid,
                    },
                    once,
                    stream: stream.clone(),
                });
            };
            if was_open {
                let range = st.core.fail_untaken();
                // Nothing is visible any more: a get that still finds this
                // connection queued takes nothing. (`taken` stays what receivers
                // really took, for flushes that wait on it; in process it is
                // written only under the channel lock, which the caller holds or
                // the channel is destroyed.)
                if let Peer::Local(_) = &self.peer {
                    self.ctr().visible.store(range.start, Ordering::SeqCst);
                }
                for seq in range {
                    // SAFETY: `seq` is written (below `next`) and untaken; the
                    // caller holds the channel lock or the channel is destroyed,
                    // or (across processes) `taken` is marked closed: no get takes
                    // concurrently.
                    if let Some(item) = unsafe { self.ring.withdraw(seq) } {
                        fail(seq, item, &mut out);
                    }
                }
            }
            if held_too {
                // The receiving process is gone: what it held will never come
                // back. Only the delivery thread completes, so take them there.
                let from = self.completed.load(Ordering::Acquire);
                let to = st.core.taken();
                for seq in from..to {
                    // SAFETY: no receiver in this process reads a remote link's
                    // slots, and the receiver that took them is gone; the slots
                    // below `taken` and at or above `completed` hold items.
                    if let Some(item) = unsafe { self.ring.withdraw(seq) } {
                        fail(seq, item, &mut out);
                    }
                }
                self.completed.store(to, Ordering::SeqCst);
            }
        }
        self.sender_event.notify(usize::MAX);
        out
    }
}

/// A connection as a key in the channel's ready queue (compared by identity):
/// a connection of this process, or one from another process over shared
/// memory.
#[derive(Clone)]
pub(crate) enum ConnKey {
    Local(Arc<ConnShared>),
    Remote(Arc<RemoteConn>),
}

impl PartialEq for ConnKey {
    fn eq(&self, o: &Self) -> bool {
        match (self, o) {
            (ConnKey::Local(a), ConnKey::Local(b)) => Arc::ptr_eq(a, b),
            (ConnKey::Remote(a), ConnKey::Remote(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl ConnKey {
    fn ctr(&self) -> &Counters {
        match self {
            ConnKey::Local(c) => c.ctr(),
            ConnKey::Remote(r) => r.ring.counters(),
        }
    }

    pub(crate) fn coid(&self) -> i32 {
        match self {
            ConnKey::Local(c) => c.coid,
            ConnKey::Remote(r) => r.scoid,
        }
    }

    /// [`Self::visible`], 0 for a broken link.
    pub(crate) fn debug_visible(&self) -> u64 {
        self.visible().unwrap_or(0)
    }

    /// Messages visible and untaken; `None` when a remote sender's counters are
    /// corrupt or it closed the link.
    fn visible(&self) -> Option<u64> {
        match self {
            ConnKey::Local(c) => Some(
                c.ctr()
                    .visible
                    .load(Ordering::Acquire)
                    .saturating_sub(c.ctr().taken.load(Ordering::Relaxed)),
            ),
            ConnKey::Remote(r) => r.visible(),
        }
    }
}

pub(crate) struct ChanState {
    pub(crate) core: ChannelCore<ConnKey>,
    pub(crate) conns: Vec<std::sync::Weak<ConnShared>>,
    /// Connections from other processes.
    pub(crate) remote: Vec<Arc<RemoteConn>>,
    /// The bell's word when the remote connections were last looked at.
    pub(crate) polled: u32,
    /// Scratch for each get's plan and clean-up, kept to allocate nothing per get.
    pub(crate) plan: Vec<asyncmsg_core::Take<ConnKey>>,
    pub(crate) emptied: Vec<ConnKey>,
    /// Remote connections found broken during a get, to fail after it.
    pub(crate) broken: Vec<(Arc<RemoteConn>, ErrorKind)>,
}

impl ChanState {
    pub(crate) fn new(capacity: usize) -> Self {
        ChanState {
            core: ChannelCore::new(capacity),
            conns: Vec::new(),
            remote: Vec::new(),
            polled: 0,
            plan: Vec::new(),
            emptied: Vec::new(),
            broken: Vec::new(),
        }
    }
}

pub(crate) struct ChanShared {
    pub(crate) chid: i32,
    pub(crate) pid: u32,
    pub(crate) nonblocking: bool,
    pub(crate) buffer_size: usize,
    pub(crate) mode: u32,
    /// How long a getter spins before it sleeps.
    pub(crate) busy_poll: Duration,
    pub(crate) state: Mutex<ChanState>,
    /// Async getters (`readable`, `recv`) wait here.
    pub(crate) getters: Event,
    /// Blocking getters sleep on this bell; senders in other processes ring it.
    pub(crate) bell: Bell,
    pub(crate) destroyed: AtomicBool,
    pub(crate) sink: EventSink,
    /// Names the channel is published under.
    pub(crate) names: Mutex<Vec<String>>,
    /// Lost peers not yet reported ([`crate::Channel::lost_peers`]).
    pub(crate) lost: Mutex<Vec<crate::channel::PeerLost>>,
    /// Senders in other processes signal this when a trigger needs somebody
    /// here to act (an event to fire, an async getter to wake); the process's
    /// shared-memory reactor watches it.
    pub(crate) doorbell: std::sync::OnceLock<asyncmsg_shm::sys::EventFd>,
}

impl ChanShared {
    /// Acts on a wake decision (outside the state mutex).
    pub(crate) fn wake(&self, wake: Wake) {
        match wake {
            Wake::Getter => {
                self.getters.notify_additional(1);
                self.bell.ring();
            }
            Wake::Event => self.sink.fire(self.chid),
            Wake::Nothing => {}
        }
    }

    /// Queues the remote connections whose senders raised a batch since the last
    /// look (or all of them, with `force`), deciding whom to wake for each.
    pub(crate) fn poll_remote(&self, st: &mut ChanState, force: bool) -> Wake {
        let mut wake = Wake::Nothing;
        if st.remote.is_empty() {
            return wake;
        }
        let word = self.bell.seen();
        if word == st.polled && !force {
            return wake;
        }
        st.polled = word;
        for i in 0..st.remote.len() {
            let r = &st.remote[i];
            if r.ring.counters().queued.load(Ordering::SeqCst) != 0 {
                let key = ConnKey::Remote(r.clone());
                match st.core.on_trigger(key) {
                    Wake::Getter => self.wake(Wake::Getter),
                    Wake::Event => wake = Wake::Event,
                    Wake::Nothing => {}
                }
            }
        }
        wake
    }

    /// Takes one batch, if any is visible (B05, B06, B09).
    pub(crate) fn take_batch(
        &self,
        st: &mut ChanState,
        out: &mut Vec<crate::channel::Message>,
    ) -> Wake {
        let before = out.len();
        let mut wake = self.poll_remote(st, false);
        loop {
            let w = self.take_once(st, out);
            if w != Wake::Nothing {
                wake = w;
            }
            if !st.broken.is_empty() {
                self.drop_broken(st);
            }
            // A connection the clean-up re-queued (its batch grew while it was
            // being drained) is served now: the caller must not go to sleep with
            // a batch queued that no trigger will announce again.
            if out.len() > before || !st.core.has_ready() {
                return wake;
            }
        }
    }

    /// Removes remote connections a get found closed or corrupt (B21: that link
    /// fails, nothing else).
    fn drop_broken(&self, st: &mut ChanState) {
        for (r, why) in std::mem::take(&mut st.broken) {
            st.core.remove(&ConnKey::Remote(r.clone()));
            st.remote.retain(|x| !Arc::ptr_eq(x, &r));
            if let Some(lost) = r.shut(why) {
                lock(&self.lost).push(lost);
            }
        }
    }

    fn take_once(&self, st: &mut ChanState, out: &mut Vec<crate::channel::Message>) -> Wake {
        // Connections that left the queue with nothing visible (their batch was
        // taken by an earlier get after they re-queued) must drop their `queued`
        // flag too, or no later trigger would announce them.
        let mut emptied = std::mem::take(&mut st.emptied);
        let mut plan = std::mem::take(&mut st.plan);
        let mut broken = std::mem::take(&mut st.broken);
        let mut wake = st.core.plan_get_into(&mut plan, |k| match k.visible() {
            Some(0) => {
                emptied.push(k.clone());
                0
            }
            Some(n) => n,
            None => {
                if let ConnKey::Remote(r) = k {
                    broken.push((r.clone(), r.why_broken()));
                }
                0
            }
        });
        for take in plan.drain(..) {
            match &take.key {
                ConnKey::Local(conn) => {
                    let start = conn.ctr().taken.load(Ordering::Relaxed);
                    let end = start + take.count;
                    for seq in start..end {
                        // The message is read in place: `seq` is below `visible`
                        // (read with acquire in the plan) and at or above `taken`,
                        // so this get is the one that takes it.
                        out.push(crate::channel::Message::local(seq, conn.clone()));
                    }
                    conn.ctr().taken.store(end, Ordering::SeqCst);
                    conn.notify_senders();
                }
                ConnKey::Remote(r) => {
                    if let Err(why) = r.take(take.count, out) {
                        broken.push((r.clone(), why));
                        continue;
                    }
                }
            }
            emptied.push(take.key);
        }
        // Every connection that left the queue clears its flag, then looks again:
        // a put that extended its batch meanwhile (B05) is picked up here, or it
        // saw the flag clear and announces itself (see `publish_locked`).
        for key in emptied.drain(..) {
            if st.core.ready().any(|k| *k == key) {
                continue;
            }
            let c = key.ctr();
            c.queued.store(0, Ordering::SeqCst);
            if c.visible.load(Ordering::SeqCst) > (c.taken.load(Ordering::SeqCst) & !CLOSED)
                && c.queued.swap(1, Ordering::SeqCst) == 0
            {
                match st.core.on_trigger(key) {
                    Wake::Getter => self.wake(Wake::Getter),
                    Wake::Event if wake == Wake::Nothing => wake = Wake::Event,
                    _ => {}
                }
            }
        }
        st.plan = plan;
        st.emptied = emptied;
        st.broken = broken;
        wake
    }
}
