//! asyncmsg's in-process runs: throughput for any payload and trigger, four
//! connections into one channel, the ping-pong in both wait modes, and the
//! time trigger's lateness.
//!
//! Every sender reuses its buffers: a delivery callback hands each buffer
//! back through a pool the sender refills from, and the sender starts with as
//! many as it may have in flight, so the steady state allocates nothing.
//! Every callback is checked to be `Ok` and in put order, and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use asyncmsg::{
    Channel, ChannelConfig, ChannelId, Connection, ConnectionAttr, Flush, GetError, Message, Node,
    SendBuf,
};

use super::harness::{
    FAN_IN_SENDERS, GaveUp, InOrder, PerSender, STALL, SenderJob, Spinner, fan_in, one_to_one,
    ping_pong, ping_total, share, stamp, word, word_of,
};
use crate::shm::asyncmsg::Recycler;
use crate::shm::{Histogram, Kind, Run};
use crate::{GET_STALL, Stalled};

pub use crate::trigger::{FLUSH_EVERY, Trigger};

/// One asyncmsg throughput configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Bytes per message; the channel's `buffer_size`.
    pub payload: usize,
    /// How batches are made visible.
    pub trigger: Trigger,
    /// Messages a connection may have in flight (put and not yet called
    /// back), and the most one get returns.
    pub max_buffers: u32,
}

impl Shape {
    /// `payload` and `trigger` with [`max_buffers_for`]`(payload)`.
    pub fn new(payload: usize, trigger: Trigger) -> Shape {
        Shape {
            payload,
            trigger,
            max_buffers: max_buffers_for(payload),
        }
    }
}

/// Messages in flight per connection for `payload`-byte messages: 1024 up to
/// 1 KiB (as many as crossbeam's 4096 slots hold in a quarter, and 16 batches
/// of 64), 256 at 64 KiB (16 MiB of buffers), 128 at 1 MiB (two batches of
/// 64, so that a trigger-64 sender fills one while the receiver drains the
/// other; 128 MiB of address space, of which the run touches the first page
/// of each buffer).
pub fn max_buffers_for(payload: usize) -> u32 {
    match payload {
        0..=1024 => 1024,
        1025..=65536 => 256,
        _ => 128,
    }
}

/// What one connection's delivery callback saw.
#[derive(Debug, Default)]
struct Deliveries {
    /// Handle expected next (callbacks come in put order).
    next: AtomicU64,
    /// Set on the first callback out of order or not `Ok`.
    failed: AtomicBool,
    first_error: Mutex<Option<String>>,
}

impl Deliveries {
    fn fail(&self, why: String) {
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(why);
        }
        self.failed.store(true, Ordering::Release);
    }

    /// Every callback was `Ok` and in order, and there were `n` of them.
    fn check(&self, n: u64) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            let why = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            bail!("{}", why.as_deref().unwrap_or("delivery callback failed"));
        }
        let called_back = self.next.load(Ordering::Acquire);
        ensure!(
            called_back == n,
            "{called_back} delivery callbacks for {n} messages"
        );
        Ok(())
    }
}

/// One connection with its buffers and what its callbacks saw.
struct Sender {
    conn: Connection,
    pool: Arc<Recycler>,
    seen: Arc<Deliveries>,
    local: Vec<SendBuf>,
    payload: usize,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

/// Connects to `chan` with `attr` (its callback set here) and `buffers`
/// ready buffers of `payload` bytes; the callback signals `done` once it has
/// run `expect` times.
fn connect(
    node: &Node,
    chan: ChannelId,
    attr: ConnectionAttr,
    payload: usize,
    buffers: usize,
    expect: u64,
    done: SyncSender<()>,
) -> Result<Sender> {
    // Twice the window: a batch's slots free just before its callbacks hand
    // the buffers back (B11), so a put may briefly need a buffer beyond the
    // window; and both vectors hold every buffer, so swapping them never
    // grows one. The steady state allocates nothing of the harness's own.
    let spare = 2 * buffers;
    let pool = Arc::new(Recycler::with_capacity(spare));
    let seen = Arc::new(Deliveries::default());
    let conn = {
        let pool = pool.clone();
        let seen = seen.clone();
        node.connect(
            chan,
            attr.on_delivered(move |d| {
                let expected = seen.next.load(Ordering::Relaxed);
                if d.result.is_err() || d.handle != expected {
                    seen.fail(format!(
                        "delivery callback for handle {} ({:?}), expected handle {expected} Ok",
                        d.handle, d.result
                    ));
                }
                seen.next.store(expected + 1, Ordering::Release);
                pool.push(d.buf);
                if expected + 1 == expect {
                    let _ = done.try_send(());
                }
            }),
        )
        .context("connecting")?
    };
    Ok(Sender {
        conn,
        pool,
        seen,
        local: {
            let mut v = Vec::with_capacity(spare);
            v.extend((0..spare).map(|_| SendBuf::zeroed(payload)));
            v
        },
        payload,
    })
}

impl Sender {
    /// A buffer to put: a spare one, else one handed back, else (when every
    /// buffer is still on its way back) a new one.
    #[inline]
    fn take(&mut self) -> SendBuf {
        match self.local.pop() {
            Some(b) => b,
            None => {
                self.pool.refill(&mut self.local);
                self.local
                    .pop()
                    .unwrap_or_else(|| SendBuf::zeroed(self.payload))
            }
        }
    }

    /// Puts message `index` of sender `sender` (handle `index`).
    #[inline]
    fn put(&mut self, sender: usize, index: u64) -> Result<()> {
        let mut buf = self.take();
        stamp(&mut buf, word(sender, index));
        self.conn
            .put(buf, index)
            .map_err(|e| anyhow!("put of message {index}: {e}"))
    }

    /// Puts `n` messages as sender `sender`, flushing as `trigger` says, and
    /// flushes at the end.
    fn send(&mut self, sender: usize, n: u64, trigger: Trigger) -> Result<()> {
        let flushing = trigger == Trigger::FlushOnly;
        for i in 0..n {
            self.put(sender, i)?;
            if flushing && (i + 1) % u64::from(FLUSH_EVERY) == 0 {
                self.flush()?;
            }
        }
        self.flush()
    }

    fn flush(&self) -> Result<()> {
        self.conn
            .flush(Flush::NoWait)
            .map_err(|e| anyhow!("flush: {e}"))
    }
}

/// The channel of a throughput run.
fn channel(node: &Node, payload: usize, max_buffers: usize) -> Result<Channel> {
    node.create_channel(
        ChannelConfig::default()
            .buffer_size(payload)
            .max_buffers(max_buffers),
    )
    .context("creating the channel")
}

/// The connection attributes of a throughput run.
fn attr(shape: Shape) -> ConnectionAttr {
    ConnectionAttr::default()
        .max_buffers(shape.max_buffers)
        .trigger_count(shape.trigger.count())
        .no_trigger_time()
}

/// Gets batches from `chan` until `n` messages came, handing each to
/// `check`. A get that waits [`GET_STALL`] is a [`Stalled`] run.
fn receive(
    chan: &Channel,
    n: u64,
    max_buffers: usize,
    mut check: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut batch: Vec<Message> = Vec::with_capacity(max_buffers);
    let mut received = 0u64;
    while received < n {
        let asked = Instant::now();
        let got = chan.get_into(&mut batch, Some(GET_STALL));
        if matches!(got, Err(GetError::TimedOut)) || asked.elapsed() >= GET_STALL {
            return Err(Stalled { received, of: n }.into());
        }
        got.with_context(|| format!("get after {received} messages"))?;
        for msg in &batch {
            check(msg.data())?;
        }
        received += batch.len() as u64;
        batch.clear(); // gives the buffers back
    }
    Ok(())
}

/// Waits for `count` signals on `done` (each connection's last callback).
fn wait_done(done: &Receiver<()>, count: usize) -> Result<()> {
    for _ in 0..count {
        done.recv_timeout(STALL)
            .map_err(|_| anyhow!("delivery callbacks stalled"))?;
    }
    Ok(())
}

/// Moves `n` messages of `shape` from one sender thread to one receiver
/// thread and returns the time from both being ready until the receiver took
/// the last message and the last delivery callback ran.
pub fn throughput(n: u64, shape: Shape) -> Result<Duration> {
    let node = Node::new().context("starting a node")?;
    let max = shape.max_buffers as usize;
    let chan = channel(&node, shape.payload, max)?;
    let (done_tx, done_rx) = sync_channel::<()>(1);
    let mut sender = connect(
        &node,
        chan.id(),
        attr(shape),
        shape.payload,
        max,
        n,
        done_tx,
    )?;
    let payload = shape.payload;
    let (took, chan) = one_to_one(
        // The receiver hands the channel back when it is done, so that it
        // outlives the final flush; if it fails, dropping the channel
        // destroys it and unblocks the sender.
        move || -> Result<Channel> {
            let mut order = InOrder::new(payload);
            receive(&chan, n, max, |m| order.check(m))?;
            Ok(chan)
        },
        || sender.send(0, n, shape.trigger),
        || wait_done(&done_rx, usize::from(n > 0)),
    )?;
    sender.seen.check(n)?;
    drop(sender);
    drop(chan);
    Ok(took)
}

/// Moves `n` messages of `shape` from [`FAN_IN_SENDERS`] sender threads, each
/// with its own connection, into one channel (each sender's messages checked
/// in its order); timed as [`throughput`].
pub fn fan_in_throughput(n: u64, shape: Shape) -> Result<Duration> {
    let node = Node::new().context("starting a node")?;
    let max = shape.max_buffers as usize;
    let chan = channel(&node, shape.payload, max)?;
    let (done_tx, done_rx) = sync_channel::<()>(FAN_IN_SENDERS);
    let mut seen = Vec::new();
    let mut jobs: Vec<SenderJob<Sender>> = Vec::new();
    for s in 0..FAN_IN_SENDERS {
        let mine = share(n, s);
        let mut sender = connect(
            &node,
            chan.id(),
            attr(shape),
            shape.payload,
            max,
            mine,
            done_tx.clone(),
        )?;
        seen.push((sender.seen.clone(), mine));
        let trigger = shape.trigger;
        // The connection goes back to the calling thread, which keeps it
        // until its last callback ran (dropping it would detach it).
        jobs.push(Box::new(move || {
            sender.send(s, mine, trigger).map(|()| sender)
        }));
    }
    let active = (0..FAN_IN_SENDERS).filter(|&s| share(n, s) > 0).count();
    let payload = shape.payload;
    let (took, chan, senders) = fan_in(
        jobs,
        move || -> Result<Channel> {
            let mut order = PerSender::new(payload);
            receive(&chan, n, max, |m| order.check(m))?;
            order.check_counts(n)?;
            Ok(chan)
        },
        || wait_done(&done_rx, active),
    )?;
    for (s, (seen, mine)) in seen.iter().enumerate() {
        seen.check(*mine)
            .with_context(|| format!("connection of sender {s}"))?;
    }
    drop(senders);
    drop(chan);
    Ok(took)
}

/// How the getters of a ping-pong wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wait {
    /// Spinning on a non-blocking look (`try_get_into`, `try_recv`, `pop`).
    Busy,
    /// Sleeping in a blocking get (`get_into`, `recv_timeout`).
    Blocking,
}

/// Messages in flight per ping-pong connection (one at a time is used).
const PING_BUFFERS: u32 = 8;

/// Takes the next batch from `chan` into `batch`, waiting as `wait` says.
fn get_one(chan: &Channel, batch: &mut Vec<Message>, wait: Wait, quit: &AtomicBool) -> Result<()> {
    match wait {
        Wait::Busy => {
            let mut spinner = Spinner::new("a message").with_quit(quit);
            loop {
                match chan.try_get_into(batch) {
                    Ok(()) => return Ok(()),
                    Err(GetError::WouldBlock) => spinner.spin()?,
                    Err(e) => bail!("get: {e}"),
                }
            }
        }
        Wait::Blocking => match chan.get_into(batch, Some(GET_STALL)) {
            Ok(()) => Ok(()),
            Err(GetError::TimedOut) if quit.load(Ordering::Relaxed) => {
                Err(GaveUp("a message").into())
            }
            Err(GetError::TimedOut) => Err(Stalled { received: 0, of: 1 }.into()),
            Err(e) => bail!("get: {e}"),
        },
    }
}

/// A ping-pong channel of 64 B messages.
fn ping_channel(node: &Node, payload: usize) -> Result<Channel> {
    channel(node, payload, PING_BUFFERS as usize)
}

/// `n` timed round trips of `payload`-byte messages over two channels with
/// trigger 1: the calling thread puts a ping and waits for the pong, an echo
/// thread waits for each ping and puts the pong; getters wait as `wait` says.
pub fn latency(n: u64, payload: usize, wait: Wait) -> Result<Run> {
    let node = Node::new().context("starting a node")?;
    let pings = ping_channel(&node, payload)?;
    let pongs = ping_channel(&node, payload)?;
    let total = ping_total(n);
    let attr = ConnectionAttr::default()
        .max_buffers(PING_BUFFERS)
        .trigger_count(1)
        .no_trigger_time();
    let buffers = 2 * PING_BUFFERS as usize;
    let (done_tx, done_rx) = sync_channel::<()>(2);
    let mut pinger = connect(
        &node,
        pings.id(),
        attr.clone(),
        payload,
        buffers,
        total,
        done_tx.clone(),
    )?;
    let mut ponger = connect(&node, pongs.id(), attr, payload, buffers, total, done_tx)?;
    let mut batch: Vec<Message> = Vec::with_capacity(PING_BUFFERS as usize);
    let (run, ponger) = ping_pong(
        n,
        payload,
        move |total, quit| {
            let mut batch: Vec<Message> = Vec::with_capacity(PING_BUFFERS as usize);
            let mut order = InOrder::new(payload);
            while order.seen < total {
                get_one(&pings, &mut batch, wait, quit)?;
                for msg in &batch {
                    let i = order.seen;
                    order.check(msg.data())?;
                    ponger.put(0, i)?;
                }
                batch.clear();
            }
            // The pongs' callbacks run once the pinger lets them go: the
            // connection goes back to the calling thread, which waits.
            Ok(ponger)
        },
        |i, quit| {
            pinger.put(0, i)?;
            while batch.is_empty() {
                get_one(&pongs, &mut batch, wait, quit)?;
            }
            ensure!(batch.len() == 1, "{} pongs for ping {i}", batch.len());
            let got = word_of(batch[0].data(), payload)?;
            ensure!(got == i, "pong {got} for ping {i}");
            batch.clear();
            Ok(())
        },
    )?;
    wait_done(&done_rx, usize::from(total > 0) * 2)?;
    pinger.seen.check(total).context("pings")?;
    ponger.seen.check(total).context("pongs")?;
    Ok(run)
}

/// The time trigger of the time-trigger cell.
pub const TRIGGER_TIME: Duration = Duration::from_millis(2);

/// Samples before the timed ones in a time-trigger run.
const TRIGGER_WARMUP: u64 = 3;

/// `n` samples of how late a time trigger fires: a connection with
/// [`TRIGGER_TIME`] and a count trigger that is never reached (64, one
/// message at a time) puts one message; the deadline is the time read just
/// before the put plus [`TRIGGER_TIME`] (the trigger arms from a time read
/// inside the put, so it is never earlier); a blocking get on the same thread
/// returns when the trigger fires; a sample is `arrival − deadline`. A
/// message that arrives before its deadline fails the run.
pub fn time_trigger(n: u64) -> Result<Run> {
    const PAYLOAD: usize = 64;
    let node = Node::new().context("starting a node")?;
    let chan = channel(&node, PAYLOAD, 64)?;
    let (done_tx, done_rx) = sync_channel::<()>(1);
    let total = TRIGGER_WARMUP + n;
    let mut sender = connect(
        &node,
        chan.id(),
        ConnectionAttr::default()
            .max_buffers(64)
            .trigger_count(64)
            .trigger_time(TRIGGER_TIME),
        PAYLOAD,
        4,
        total,
        done_tx,
    )?;
    let mut late = Histogram::new();
    let mut batch: Vec<Message> = Vec::with_capacity(64);
    let mut began = Instant::now();
    for i in 0..total {
        if i == TRIGGER_WARMUP {
            began = Instant::now();
        }
        let mut buf = sender.take();
        stamp(&mut buf, i);
        let put_at = Instant::now();
        sender
            .conn
            .put(buf, i)
            .map_err(|e| anyhow!("put of message {i}: {e}"))?;
        let deadline = put_at + TRIGGER_TIME;
        let got = chan.get_into(&mut batch, Some(TRIGGER_TIME + GET_STALL));
        let arrival = Instant::now();
        match got {
            Ok(()) => {}
            Err(GetError::TimedOut) => {
                return Err(Stalled {
                    received: i,
                    of: total,
                }
                .into());
            }
            Err(e) => bail!("get of message {i}: {e}"),
        }
        ensure!(batch.len() == 1, "{} messages for put {i}", batch.len());
        let w = word_of(batch[0].data(), PAYLOAD)?;
        ensure!(w == i, "message {w}, expected {i}");
        ensure!(
            arrival >= deadline,
            "message {i} arrived {:?} before its time trigger's deadline",
            deadline - arrival
        );
        if i >= TRIGGER_WARMUP {
            late.record((arrival - deadline).as_nanos() as u64);
        }
        batch.clear();
    }
    let took = began.elapsed();
    wait_done(&done_rx, usize::from(total > 0))?;
    sender.seen.check(total)?;
    Ok(Run {
        messages: n,
        bytes: n * PAYLOAD as u64,
        took,
        rtt: Some(late),
        kind: Kind::RoundTrip,
    })
}
