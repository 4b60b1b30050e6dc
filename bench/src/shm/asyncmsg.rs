//! asyncmsg between two processes over `shm://`: throughput (the child puts,
//! the parent gets) and ping-pong latency (two channels, one per direction,
//! trigger 1).
//!
//! Each side publishes its channel under a name unique to the run and the
//! other connects to `shm://NAME`. Buffers come back through the delivery
//! callback and are put again, so a run allocates nothing once it started
//! (`alloc` buffers live in the node's shared pool; only their offset crosses).

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use asyncmsg::{
    Channel, ChannelConfig, Connection, ConnectionAttr, Flush, GetError, Message, Node, SendBuf,
};

use super::peers::{MIB, index_of, sender_of, stamp, stamp_sender};
use super::process::{ChildEnv, ChildProc, Control, Launcher, STEP_LIMIT, Step};
use super::{ALLOC, RECEIVER_CPU, Run, SENDER_CPU, SMALL, latency_loop, warmup_for};
use crate::{GET_STALL, pin};

/// How long a busy-polling getter spins before it sleeps: longer than any
/// wait of a ping-pong, so that it never sleeps.
const BUSY_POLL: Duration = Duration::from_secs(1);

/// The shape of a throughput run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    payload: usize,
    /// The count trigger; 0 for none.
    trigger: u32,
    /// In flight per connection, and the most one get returns.
    max_buffers: u32,
    /// Buffers from `node.alloc` (shared pool) rather than the heap.
    alloc: bool,
    /// The sender flushes (without waiting) after every this many puts; 0
    /// for never (but after the last put, as always).
    flush_every: u32,
}

pub(crate) use crate::trigger::{FLUSH_EVERY, Trigger};

impl Shape {
    /// A cell of the payload × trigger sweep: heap buffers of `payload` bytes
    /// (the put copies them into shared memory), recycled through the
    /// delivery callback. Up to 1024 messages in flight below 64 KiB, 128
    /// from there on (twice the largest batch, so that the sender fills one
    /// while the receiver takes the other).
    pub(crate) fn sweep(payload: usize, trigger: Trigger) -> Shape {
        let (trigger, flush_every) = match trigger {
            Trigger::Count(n) => (n, 0),
            Trigger::FlushOnly => (0, FLUSH_EVERY),
        };
        Shape {
            payload,
            trigger,
            max_buffers: if payload < ALLOC { 1024 } else { 128 },
            alloc: false,
            flush_every,
        }
    }
}

/// 64 B, trigger 64 (as the in-process cell).
pub(crate) const SMALL_T64: Shape = Shape {
    payload: SMALL,
    trigger: 64,
    max_buffers: 1024,
    alloc: false,
    flush_every: 0,
};

/// 64 KiB `alloc` buffers, a batch every 16.
pub(crate) const ALLOC_THRU: Shape = Shape {
    payload: ALLOC,
    trigger: 16,
    max_buffers: 64,
    alloc: true,
    flush_every: 0,
};

/// 1 MiB heap buffers, copied by the put, a batch every 4.
pub(crate) const MIB_COPIED: Shape = Shape {
    payload: MIB,
    trigger: 4,
    max_buffers: 16,
    alloc: false,
    flush_every: 0,
};

/// The shape of a latency run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PingShape {
    payload: usize,
    busy_poll: Duration,
    alloc: bool,
}

pub(crate) const SMALL_BUSY: PingShape = PingShape {
    payload: SMALL,
    busy_poll: BUSY_POLL,
    alloc: false,
};

pub(crate) const SMALL_BLOCKING: PingShape = PingShape {
    payload: SMALL,
    busy_poll: Duration::ZERO,
    alloc: false,
};

pub(crate) const ALLOC_BUSY: PingShape = PingShape {
    payload: ALLOC,
    busy_poll: BUSY_POLL,
    alloc: true,
};

/// Messages in flight per ping-pong connection (one at a time is used).
const PING_BUFFERS: u32 = 8;

/// A channel name unique to this process and call.
pub(crate) fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "bench-{}-{}-{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) fn address(name: &str) -> String {
    format!("shm://{name}")
}

/// Buffers handed back by delivery callbacks, for the putting thread to reuse
/// (one short lock per callback; the putter swaps the whole stack out when its
/// own runs dry, so the two sides meet about once per window). Shared by the
/// in-process and shared-memory harnesses.
#[derive(Debug, Default)]
pub(crate) struct Recycler {
    returned: Mutex<Vec<SendBuf>>,
}

impl Recycler {
    /// Room for `n` buffers before the stack grows.
    pub(crate) fn with_capacity(n: usize) -> Recycler {
        Recycler {
            returned: Mutex::new(Vec::with_capacity(n)),
        }
    }

    pub(crate) fn push(&self, buf: SendBuf) {
        self.returned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buf);
    }

    /// Moves every returned buffer into `local` (which must be empty).
    pub(crate) fn refill(&self, local: &mut Vec<SendBuf>) {
        std::mem::swap(
            &mut *self.returned.lock().unwrap_or_else(|e| e.into_inner()),
            local,
        );
    }
}

/// The putting side's buffers: its own stack, refilled from the recycler,
/// and as a last resort new ones.
#[derive(Debug)]
pub(crate) struct Buffers {
    local: Vec<SendBuf>,
    recycler: Arc<Recycler>,
    payload: usize,
    alloc: bool,
}

impl Buffers {
    pub(crate) fn new(node: &Node, count: usize, payload: usize, alloc: bool) -> Buffers {
        let mut b = Buffers {
            local: Vec::with_capacity(count),
            recycler: Arc::new(Recycler::default()),
            payload,
            alloc,
        };
        b.local = (0..count).map(|_| b.fresh(node)).collect();
        b
    }

    fn fresh(&self, node: &Node) -> SendBuf {
        if self.alloc {
            node.alloc(self.payload)
        } else {
            SendBuf::zeroed(self.payload)
        }
    }

    /// Where delivery callbacks hand buffers back.
    pub(crate) fn recycler(&self) -> Arc<Recycler> {
        self.recycler.clone()
    }

    pub(crate) fn take(&mut self, node: &Node) -> SendBuf {
        if let Some(b) = self.local.pop() {
            return b;
        }
        self.recycler.refill(&mut self.local);
        match self.local.pop() {
            Some(b) => b,
            None => self.fresh(node),
        }
    }
}

/// What the delivery callbacks of one connection saw: every one `Ok`, in put
/// order.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    next: AtomicU64,
    failed: AtomicBool,
    first_error: Mutex<Option<String>>,
}

impl Deliveries {
    /// Counts a callback for `handle`; whether it was the one expected.
    pub(crate) fn saw(&self, handle: u64, ok: bool, detail: impl FnOnce() -> String) {
        let expected = self.next.load(Ordering::Relaxed);
        if !ok || handle != expected {
            let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            if first.is_none() {
                *first = Some(format!("{} (expected handle {expected} Ok)", detail()));
            }
            self.failed.store(true, Ordering::Release);
        }
        self.next.store(expected + 1, Ordering::Release);
    }

    pub(crate) fn check(&self, n: u64) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            let why = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            bail!("{}", why.as_deref().unwrap_or("a delivery callback failed"));
        }
        let called = self.next.load(Ordering::Acquire);
        ensure!(called == n, "{called} delivery callbacks for {n} messages");
        Ok(())
    }
}

/// A connection to the channel at `target` (an address) whose callbacks
/// recycle buffers into `buffers` and count into `seen`; `last` hears when
/// callback number `n` ran.
pub(crate) fn connect(
    node: &Node,
    target: &str,
    max_buffers: u32,
    trigger: u32,
    buffers: &Buffers,
    seen: &Arc<Deliveries>,
    last: Option<(u64, mpsc::SyncSender<()>)>,
) -> Result<Connection> {
    let recycler = buffers.recycler.clone();
    let seen = seen.clone();
    node.connect(
        target,
        ConnectionAttr::default()
            .max_buffers(max_buffers)
            .trigger_count(trigger)
            .no_trigger_time()
            .on_delivered(move |d| {
                seen.saw(d.handle, d.result.is_ok(), || {
                    format!("delivery callback for handle {} ({:?})", d.handle, d.result)
                });
                recycler.push(d.buf);
                if let Some((n, done)) = &last {
                    if d.handle + 1 == *n {
                        let _ = done.try_send(());
                    }
                }
            }),
    )
    .with_context(|| format!("connecting to {target}"))
}

pub(crate) fn channel(
    node: &Node,
    payload: usize,
    max_buffers: u32,
    busy_poll: Option<Duration>,
) -> Result<Channel> {
    let mut config = ChannelConfig::default()
        .buffer_size(payload)
        .max_buffers(max_buffers as usize);
    if let Some(spin) = busy_poll {
        config = config.busy_poll(spin);
    }
    node.create_channel(config).context("creating the channel")
}

/// Waits for the next batch; a get that waits [`GET_STALL`] is an error (the
/// peer is gone, or a trigger or wake-up was lost).
pub(crate) fn get_batch(chan: &Channel, batch: &mut Vec<Message>, after: u64) -> Result<()> {
    let asked = Instant::now();
    match chan.get_into(batch, Some(GET_STALL)) {
        Ok(()) => Ok(()),
        Err(GetError::TimedOut) => Err(anyhow!(
            "a get waited {:?} after {after} messages",
            asked.elapsed()
        )),
        Err(e) => Err(anyhow!("get after {after} messages: {e}")),
    }
}

pub(crate) fn check_message(msg: &Message, payload: usize, expected: u64) -> Result<()> {
    ensure!(
        msg.data().len() == payload,
        "message {expected}: {} bytes, expected {payload}",
        msg.data().len()
    );
    let got = index_of(msg.data());
    ensure!(
        got == expected,
        "received message {got}, expected {expected}"
    );
    Ok(())
}

/// Starts a child that connects to the channel published as `name` and
/// sends `n` messages of `shape` as sender number `sender` once told to go.
fn spawn_sender(
    launcher: &Launcher,
    name: &str,
    n: u64,
    shape: Shape,
    sender: u64,
) -> Result<(Control, ChildProc)> {
    let (control, their_control) = Control::pair()?;
    let child = ChildProc::spawn(
        launcher,
        "asyncmsg-send",
        &[
            name.to_owned(),
            n.to_string(),
            shape.payload.to_string(),
            shape.trigger.to_string(),
            shape.max_buffers.to_string(),
            u8::from(shape.alloc).to_string(),
            shape.flush_every.to_string(),
            sender.to_string(),
        ],
        &[their_control.as_fd()],
    )?;
    Ok((control, child))
}

/// `n` messages of `shape` from the child to the parent.
pub(crate) fn throughput(launcher: &Launcher, n: u64, shape: Shape) -> Result<Run> {
    let node = Node::new().context("starting a node")?;
    let chan = channel(&node, shape.payload, shape.max_buffers, None)?;
    let name = unique_name("throughput");
    chan.publish(&name).context("publishing the channel")?;
    let (mut control, mut child) = spawn_sender(launcher, &name, n, shape, 0)?;
    let _pinned = pin(RECEIVER_CPU);
    let mut batch: Vec<Message> = Vec::with_capacity(shape.max_buffers as usize);
    control.expect_from(Step::Ready, &mut child)?;

    let began = Instant::now();
    control.send(Step::Go)?;
    let mut expected = 0u64;
    let received = (|| -> Result<()> {
        while expected < n {
            get_batch(&chan, &mut batch, expected)?;
            for msg in &batch {
                check_message(msg, shape.payload, expected)?;
                expected += 1;
            }
            batch.clear(); // lets the messages go: their callbacks may run
        }
        Ok(())
    })();
    received.map_err(|e| e.context(child.failure()))?;
    // The child's last delivery callback ran.
    control.expect_from(Step::Done, &mut child)?;
    let took = began.elapsed();

    control.send(Step::Bye)?;
    child.finish()?;
    drop(chan);
    drop(node);
    Ok(Run::throughput(n, shape.payload, took))
}

/// Messages sender `k` of `senders` sends when they send `n` in all.
pub(crate) fn share_of(n: u64, senders: u64, k: u64) -> u64 {
    n / senders + u64::from(k < n % senders)
}

/// The receiving side of a fan-in run ended with `outcome`: a failure is
/// explained by what became of the children (a child that died says why).
pub(crate) fn explain_fan_in(
    outcome: Result<()>,
    children: &mut [(Control, ChildProc)],
) -> Result<()> {
    outcome.map_err(|e| {
        let why: Vec<String> = children.iter_mut().map(|(_, c)| c.failure()).collect();
        e.context(why.join("; "))
    })
}

/// Every sender of a fan-in run delivered its share of `n`: `counts[k]`
/// messages came from sender `k`.
pub(crate) fn check_shares(counts: &[u64], n: u64) -> Result<()> {
    let senders = counts.len() as u64;
    for (k, count) in counts.iter().enumerate() {
        let want = share_of(n, senders, k as u64);
        ensure!(
            *count == want,
            "{count} messages from sender {k}, expected {want}"
        );
    }
    Ok(())
}

/// Tells every child of a finished run goodbye and reaps it.
pub(crate) fn say_bye(children: Vec<(Control, ChildProc)>) -> Result<()> {
    for (mut control, child) in children {
        control.send(Step::Bye)?;
        child.finish()?;
    }
    Ok(())
}

/// `n` messages of `shape` in all from `senders` child processes, each with a
/// connection of its own to the parent's one channel; every sender's messages
/// are checked to arrive in its order. Timed from the first go until the
/// parent took the last message and every child's last delivery callback ran.
pub(crate) fn fan_in(launcher: &Launcher, n: u64, shape: Shape, senders: u64) -> Result<Run> {
    ensure!(
        shape.payload >= 16,
        "fan-in needs room for the sender's number"
    );
    let node = Node::new().context("starting a node")?;
    // Room for every sender's messages in flight.
    let chan = channel(
        &node,
        shape.payload,
        shape.max_buffers * senders as u32,
        None,
    )?;
    let name = unique_name("fan-in");
    chan.publish(&name).context("publishing the channel")?;
    let mut children = Vec::new();
    for k in 0..senders {
        children.push(spawn_sender(
            launcher,
            &name,
            share_of(n, senders, k),
            shape,
            k,
        )?);
    }
    let _pinned = pin(RECEIVER_CPU);
    let mut batch: Vec<Message> = Vec::with_capacity((shape.max_buffers * senders as u32) as usize);
    for (control, child) in &mut children {
        control.expect_from(Step::Ready, child)?;
    }

    let began = Instant::now();
    for (control, _) in &mut children {
        control.send(Step::Go)?;
    }
    let mut expected = vec![0u64; senders as usize];
    let mut received = 0u64;
    let outcome = (|| -> Result<()> {
        while received < n {
            get_batch(&chan, &mut batch, received)?;
            for msg in &batch {
                ensure!(
                    msg.data().len() == shape.payload,
                    "a message of {} bytes, expected {}",
                    msg.data().len(),
                    shape.payload
                );
                let k = sender_of(msg.data());
                let next = expected
                    .get_mut(k as usize)
                    .with_context(|| format!("a message from sender {k} of {senders}"))?;
                let got = index_of(msg.data());
                ensure!(
                    got == *next,
                    "received message {got} of sender {k}, expected {next}"
                );
                *next += 1;
                received += 1;
            }
            batch.clear();
        }
        Ok(())
    })();
    explain_fan_in(outcome, &mut children)?;
    check_shares(&expected, n)?;
    for (control, child) in &mut children {
        control.expect_from(Step::Done, child)?;
    }
    let took = began.elapsed();

    say_bye(children)?;
    drop(chan);
    drop(node);
    Ok(Run::throughput(n, shape.payload, took))
}

pub(crate) fn child_send(mut env: ChildEnv) -> Result<()> {
    let name = env.arg(0)?.to_owned();
    let n = env.num(1)?;
    let payload = env.num(2)? as usize;
    let trigger = env.num(3)? as u32;
    let max_buffers = env.num(4)? as u32;
    let alloc = env.num(5)? != 0;
    let flush_every = env.num(6)?;
    let sender = env.num(7)?;
    let mut control = Control::from_fd(env.fd(0)?);

    let node = Node::new().context("starting a node")?;
    let mut buffers = Buffers::new(&node, 2 * max_buffers as usize, payload, alloc);
    let seen = Arc::new(Deliveries::default());
    let (done_tx, done_rx) = mpsc::sync_channel::<()>(1);
    let conn = connect(
        &node,
        &address(&name),
        max_buffers,
        trigger,
        &buffers,
        &seen,
        Some((n, done_tx)),
    )?;
    let _pinned = pin(SENDER_CPU);
    control.send(Step::Ready)?;
    control.expect(Step::Go)?;
    for i in 0..n {
        let mut buf = buffers.take(&node);
        stamp(&mut buf, i);
        if payload >= 16 {
            stamp_sender(&mut buf, sender);
        }
        conn.put(buf, i)
            .map_err(|e| anyhow!("put of message {i}: {e}"))?;
        if flush_every > 0 && (i + 1) % flush_every == 0 {
            conn.flush(Flush::NoWait)
                .map_err(|e| anyhow!("flush after message {i}: {e}"))?;
        }
    }
    conn.flush(Flush::NoWait)
        .map_err(|e| anyhow!("final flush: {e}"))?;
    if n > 0 {
        done_rx
            .recv_timeout(STEP_LIMIT)
            .map_err(|_| anyhow!("delivery callbacks stalled"))?;
    }
    seen.check(n)?;
    control.send(Step::Done)?;
    control.expect(Step::Bye)?;
    drop(conn);
    drop(node);
    Ok(())
}

/// `n` timed round trips of `shape`: the parent puts on the child's channel
/// and gets the echo from its own.
pub(crate) fn latency(launcher: &Launcher, n: u64, shape: PingShape) -> Result<Run> {
    let warmup = warmup_for(n);
    let node = Node::new().context("starting a node")?;
    let mine = channel(&node, shape.payload, PING_BUFFERS, Some(shape.busy_poll))?;
    let my_name = unique_name("pong");
    mine.publish(&my_name).context("publishing the channel")?;
    let their_name = unique_name("ping");
    let (mut control, their_control) = Control::pair()?;
    let mut child = ChildProc::spawn(
        launcher,
        "asyncmsg-echo",
        &[
            my_name,
            their_name.clone(),
            (warmup + n).to_string(),
            shape.payload.to_string(),
            shape.busy_poll.as_nanos().to_string(),
            u8::from(shape.alloc).to_string(),
        ],
        &[their_control.as_fd()],
    )?;
    drop(their_control);
    let _pinned = pin(SENDER_CPU);
    let mut buffers = Buffers::new(&node, 2 * PING_BUFFERS as usize, shape.payload, shape.alloc);
    let seen = Arc::new(Deliveries::default());
    control.expect_from(Step::Ready, &mut child)?;
    let conn = connect(
        &node,
        &address(&their_name),
        PING_BUFFERS,
        1,
        &buffers,
        &seen,
        None,
    )?;
    let mut batch: Vec<Message> = Vec::with_capacity(PING_BUFFERS as usize);

    let run = latency_loop(warmup, n, |i| {
        let mut buf = buffers.take(&node);
        stamp(&mut buf, i);
        conn.put(buf, i).map_err(|e| anyhow!("ping {i}: {e}"))?;
        while batch.is_empty() {
            get_batch(&mine, &mut batch, i)?;
        }
        ensure!(batch.len() == 1, "{} pongs for ping {i}", batch.len());
        check_message(&batch[0], shape.payload, i)?;
        batch.clear();
        Ok(())
    });
    let run = run.map_err(|e| e.context(child.failure()))?;
    control.send(Step::Bye)?;
    child.finish()?;
    drop(conn);
    drop(mine);
    drop(node);
    Ok(run)
}

pub(crate) fn child_echo(mut env: ChildEnv) -> Result<()> {
    let pong_name = env.arg(0)?.to_owned();
    let ping_name = env.arg(1)?.to_owned();
    let total = env.num(2)?;
    let payload = env.num(3)? as usize;
    let busy_poll = Duration::from_nanos(env.num(4)?);
    let alloc = env.num(5)? != 0;
    let mut control = Control::from_fd(env.fd(0)?);

    let node = Node::new().context("starting a node")?;
    let mine = channel(&node, payload, PING_BUFFERS, Some(busy_poll))?;
    mine.publish(&ping_name).context("publishing the channel")?;
    let mut buffers = Buffers::new(&node, 2 * PING_BUFFERS as usize, payload, alloc);
    let seen = Arc::new(Deliveries::default());
    let conn = connect(
        &node,
        &address(&pong_name),
        PING_BUFFERS,
        1,
        &buffers,
        &seen,
        None,
    )?;
    let mut batch: Vec<Message> = Vec::with_capacity(PING_BUFFERS as usize);
    let _pinned = pin(RECEIVER_CPU);
    control.send(Step::Ready)?;
    let mut expected = 0u64;
    while expected < total {
        get_batch(&mine, &mut batch, expected)?;
        for msg in &batch {
            check_message(msg, payload, expected)?;
            let mut buf = buffers.take(&node);
            stamp(&mut buf, expected);
            conn.put(buf, expected)
                .map_err(|e| anyhow!("pong {expected}: {e}"))?;
            expected += 1;
        }
        batch.clear();
    }
    control.expect(Step::Bye)?;
    drop(conn);
    drop(mine);
    drop(node);
    Ok(())
}
