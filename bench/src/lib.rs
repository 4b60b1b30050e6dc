//! # asyncmsg-bench
//!
//! The benchmark harness shared by the criterion benches (`benches/`) and
//! `cargo xtask bench`, so that both measure exactly the same code.
//!
//! One [`Cell`] is one implementation moving `n` messages of [`PAYLOAD`] bytes
//! from one sender thread to one receiver thread in the same process. Every run
//! checks that all `n` messages arrived, in order (each message carries its
//! index in its first 8 bytes), and for asyncmsg also that every delivery
//! callback came back `Ok`, in put order. A run that sees anything else returns
//! an error instead of a figure.
//!
//! What a run times: from the moment both sides are ready (after threads, the
//! node and the channel exist) until the receiver took the last message and,
//! for asyncmsg, the last delivery callback ran. Setup and teardown are not
//! timed.
//!
//! ```
//! use asyncmsg_bench::{Cell, run};
//! for cell in Cell::ALL {
//!     let took = run(cell, 1_000).unwrap();
//!     assert!(took.as_nanos() > 0);
//! }
//! ```

pub mod alloc;
pub mod inproc;
pub mod matrix;
pub mod quic;
pub mod shm;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use asyncmsg::{ChannelConfig, ConnectionAttr, Flush, GetError, Message, Node, SendBuf};

/// Message size in bytes for every in-process cell.
pub const PAYLOAD: usize = 64;

/// Messages an asyncmsg connection may have in flight (put and not yet called
/// back); also the most messages one get returns. Crossbeam's channel is
/// bounded at 4096 messages, and the batch peer at 4096 / 64 batches.
pub const ASYNCMSG_MAX_BUFFERS: u32 = 1024;

/// Capacity of the crossbeam-channel peer, in messages.
pub const CROSSBEAM_CAPACITY: usize = 4096;

/// Messages per batch for the crossbeam batch peer.
pub const VEC_BATCH: usize = 64;

/// How long any single wait in a run may take before the run is declared hung.
const STALL: Duration = Duration::from_secs(30);

/// How long the asyncmsg receiver waits for a batch while the sender is still
/// putting before it declares the run stalled (see [`Stalled`]).
pub const GET_STALL: Duration = Duration::from_secs(2);

/// An asyncmsg run in which the receiver waited [`GET_STALL`] for a batch
/// although the sender had messages in flight: a trigger or a wake-up was lost.
///
/// Either the get timed out with nothing (the connection was never announced),
/// or it waited its full timeout and then found a batch in its last look (the
/// batch was queued but the sleeping getter was not woken; a get without a
/// timeout would have slept for ever). Both are bugs; neither may hang the
/// benchmark or hide in its figures as a 2 s pause, so such a run is reported
/// as `Stalled`; callers may retry it and must count how often it happened.
///
/// Seen so far: a put publishing a batch that a concurrent get had already
/// drained re-queued the connection with nothing visible, and the get that
/// dropped it left its `queued` flag set (fixed); and a get that re-queues a
/// connection extended while it planned, takes nothing, and then sleeps with
/// that connection in the ready queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled {
    /// Messages received before the stall.
    pub received: u64,
    /// Messages the run was to move.
    pub of: u64,
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "asyncmsg stalled: a get waited {GET_STALL:?} after {} of {} messages (lost trigger or wake-up)",
            self.received, self.of
        )
    }
}

impl std::error::Error for Stalled {}

/// Runs `cells` interleaved: one warm-up round (a tenth of each `size`,
/// not recorded), then `rounds` measured rounds, so that a machine that
/// slows down for a while slows every cell alike. `run` measures one cell
/// once, `record` keeps a measured run (by the cell's index), `progress`
/// hears of each step before it runs.
pub fn run_interleaved<C: Copy, R>(
    cells: &[C],
    rounds: usize,
    name: impl Fn(C) -> &'static str,
    size: impl Fn(C) -> u64,
    mut run: impl FnMut(C, u64) -> Result<R>,
    mut record: impl FnMut(usize, R),
    mut progress: impl FnMut(&str),
) -> Result<()> {
    for round in 0..=rounds {
        for (k, &cell) in cells.iter().enumerate() {
            let n = if round == 0 {
                (size(cell) / 10).max(1)
            } else {
                size(cell)
            };
            let step = if round == 0 {
                "warm-up".to_string()
            } else {
                format!("round {round}/{rounds}")
            };
            progress(&format!("{step} {} ({n})", name(cell)));
            let r = run(cell, n).with_context(|| format!("round {round} of {}", name(cell)))?;
            if round > 0 {
                record(k, r);
            }
        }
    }
    Ok(())
}

/// Whether `e` is a [`Stalled`] run.
pub fn is_stall(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Stalled>().is_some()
}

/// Runs `cell` as [`run`] does, retrying up to `retries` times a run that
/// [stalled](Stalled). Returns the time and the number of stalls seen.
pub fn run_retrying(cell: Cell, n: u64, retries: u32) -> Result<(Duration, u32)> {
    let mut stalls = 0;
    loop {
        match run(cell, n) {
            Ok(took) => return Ok((took, stalls)),
            Err(e) if is_stall(&e) && stalls < retries => stalls += 1,
            Err(e) if is_stall(&e) => {
                return Err(e.context(format!("gave up after {} stalled attempts", stalls + 1)));
            }
            Err(e) => return Err(e),
        }
    }
}

/// One implementation in the in-process throughput matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// asyncmsg, one trigger per put (`trigger_count(1)`).
    AsyncmsgTrigger1,
    /// asyncmsg, one trigger per 64 puts (`trigger_count(64)`).
    AsyncmsgTrigger64,
    /// crossbeam-channel `bounded(4096)` carrying `[u8; 64]` by value.
    Crossbeam,
    /// crossbeam-channel carrying reused `Vec`s of 64 messages; the receiver
    /// sends each drained `Vec` back for the sender to refill.
    CrossbeamVecBatch64,
}

impl Cell {
    /// Every cell, in report order.
    pub const ALL: [Cell; 4] = [
        Cell::AsyncmsgTrigger1,
        Cell::AsyncmsgTrigger64,
        Cell::Crossbeam,
        Cell::CrossbeamVecBatch64,
    ];

    /// A stable identifier, used in `results.json` and by `compare`.
    pub fn id(self) -> &'static str {
        match self {
            Cell::AsyncmsgTrigger1 => "inproc/64B/asyncmsg-trigger-1",
            Cell::AsyncmsgTrigger64 => "inproc/64B/asyncmsg-trigger-64",
            Cell::Crossbeam => "inproc/64B/crossbeam-bounded-4096",
            Cell::CrossbeamVecBatch64 => "inproc/64B/crossbeam-vec-batch-64",
        }
    }

    /// A short name for criterion and tables.
    pub fn name(self) -> &'static str {
        match self {
            Cell::AsyncmsgTrigger1 => "asyncmsg trigger 1",
            Cell::AsyncmsgTrigger64 => "asyncmsg trigger 64",
            Cell::Crossbeam => "crossbeam bounded(4096)",
            Cell::CrossbeamVecBatch64 => "crossbeam Vec batches of 64",
        }
    }

    /// Whether this cell measures asyncmsg (the others are peers).
    pub fn is_asyncmsg(self) -> bool {
        matches!(self, Cell::AsyncmsgTrigger1 | Cell::AsyncmsgTrigger64)
    }
}

/// A ratio the project has a target for: `numerator / denominator` should be at
/// least `target` (see `BENCH.md`).
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The asyncmsg cell.
    pub numerator: Cell,
    /// The peer.
    pub denominator: Cell,
    /// The least acceptable ratio of their messages/s.
    pub target: f64,
}

/// The ratios `BENCH.md` sets targets for, in report order.
pub const TARGETS: [Target; 3] = [
    Target {
        numerator: Cell::AsyncmsgTrigger64,
        denominator: Cell::Crossbeam,
        target: 3.0,
    },
    Target {
        numerator: Cell::AsyncmsgTrigger64,
        denominator: Cell::CrossbeamVecBatch64,
        target: 1.0,
    },
    Target {
        numerator: Cell::AsyncmsgTrigger1,
        denominator: Cell::Crossbeam,
        target: 0.8,
    },
];

/// Moves `n` messages through `cell` once, verifies them, and returns the time
/// it took (setup excluded).
pub fn run(cell: Cell, n: u64) -> Result<Duration> {
    match cell {
        Cell::AsyncmsgTrigger1 => run_asyncmsg(n, 1),
        Cell::AsyncmsgTrigger64 => run_asyncmsg(n, 64),
        Cell::Crossbeam => run_crossbeam(n),
        Cell::CrossbeamVecBatch64 => run_crossbeam_batches(n),
    }
}

/// The CPU the sender side of every cell runs on, and the receiver's.
const SENDER_CPU: usize = 0;
const RECEIVER_CPU: usize = 1;

/// Keeps the calling thread on one CPU while it lives, then restores the
/// thread's previous CPU set. Every cell pins its sender and its receiver to
/// two different CPUs, so that all cells are measured in the same placement
/// (unpinned, the scheduler sometimes puts both on one CPU, which changes
/// per-message handovers such as crossbeam's by 4x between runs). Threads a
/// cell starts itself, such as asyncmsg's delivery thread, are not pinned.
/// Does nothing on a machine with fewer than two CPUs.
#[derive(Debug)]
pub struct Pinned {
    previous: Option<libc::cpu_set_t>,
}

/// Pins the calling thread to `cpu` (see [`Pinned`]).
pub fn pin(cpu: usize) -> Pinned {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 || cpu >= cpus {
        return Pinned { previous: None };
    }
    // SAFETY: cpu_set_t is plain data; the calls get and set the calling
    // thread's affinity with a correctly sized set, and results are checked.
    unsafe {
        let mut previous: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut previous) != 0 {
            return Pinned { previous: None };
        }
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        if libc::sched_setaffinity(0, size, &one) != 0 {
            return Pinned { previous: None };
        }
        Pinned {
            previous: Some(previous),
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            // SAFETY: restores the set read by `pin` on this same thread.
            unsafe {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &previous);
            }
        }
    }
}

fn stamp(buf: &mut [u8], index: u64) {
    buf[..8].copy_from_slice(&index.to_le_bytes());
}

fn index_of(buf: &[u8]) -> Result<u64> {
    ensure!(
        buf.len() == PAYLOAD,
        "message of {} bytes, expected {PAYLOAD}",
        buf.len()
    );
    Ok(u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")))
}

/// Buffers handed back by delivery callbacks, for the sender to reuse.
///
/// The callback pushes one buffer per message under an uncontended mutex; the
/// sender swaps the whole stack out only when its own stack runs dry, so the
/// two sides meet about once per `max_buffers` messages.
#[derive(Debug, Default)]
struct ReturnPool {
    returned: Mutex<Vec<SendBuf>>,
}

impl ReturnPool {
    fn push(&self, buf: SendBuf) {
        self.returned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buf);
    }

    /// Moves every returned buffer into `local` (which must be empty).
    fn refill(&self, local: &mut Vec<SendBuf>) {
        std::mem::swap(
            &mut *self.returned.lock().unwrap_or_else(|e| e.into_inner()),
            local,
        );
    }
}

/// What the delivery callback saw.
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
}

fn run_asyncmsg(n: u64, trigger: u32) -> Result<Duration> {
    let node = Node::new().context("starting a node")?;
    let chan = node
        .create_channel(
            ChannelConfig::default()
                .buffer_size(PAYLOAD)
                .max_buffers(ASYNCMSG_MAX_BUFFERS as usize),
        )
        .context("creating the channel")?;

    let pool = Arc::new(ReturnPool::default());
    let seen = Arc::new(Deliveries::default());
    let (done_tx, done_rx) = mpsc::sync_channel::<()>(1);
    let conn = {
        let pool = pool.clone();
        let seen = seen.clone();
        node.connect(
            chan.id(),
            ConnectionAttr::default()
                .max_buffers(ASYNCMSG_MAX_BUFFERS)
                .trigger_count(trigger)
                .no_trigger_time()
                .on_delivered(move |d| {
                    let expected = seen.next.load(Ordering::Relaxed);
                    if d.result.is_err() || d.handle != expected {
                        seen.fail(format!(
                            "delivery callback for handle {} ({:?}), expected handle {expected} Ok",
                            d.handle, d.result
                        ));
                    }
                    seen.next.store(expected + 1, Ordering::Relaxed);
                    pool.push(d.buf);
                    if expected + 1 == n {
                        let _ = done_tx.try_send(());
                    }
                }),
        )
        .context("connecting")?
    };

    // Buffers for the first round, so that the steady state allocates nothing.
    let mut local: Vec<SendBuf> = (0..ASYNCMSG_MAX_BUFFERS)
        .map(|_| SendBuf::zeroed(PAYLOAD))
        .collect();

    let start = Arc::new(Barrier::new(2));
    let receiver = {
        let start = start.clone();
        thread::Builder::new()
            .name("bench-receiver".into())
            // The receiver hands the channel back when it is done, so that it
            // outlives the final flush; if it fails, dropping the channel
            // destroys it and unblocks the sender.
            .spawn(move || -> Result<asyncmsg::Channel> {
                let mut batch: Vec<Message> = Vec::with_capacity(ASYNCMSG_MAX_BUFFERS as usize);
                let mut expected = 0u64;
                let _pinned = pin(RECEIVER_CPU);
                start.wait();
                while expected < n {
                    let asked = Instant::now();
                    let got = chan.get_into(&mut batch, Some(GET_STALL));
                    if matches!(got, Err(GetError::TimedOut)) || asked.elapsed() >= GET_STALL {
                        return Err(Stalled {
                            received: expected,
                            of: n,
                        }
                        .into());
                    }
                    got.with_context(|| format!("get after {expected} messages"))?;
                    for msg in &batch {
                        let got = index_of(msg.data())?;
                        ensure!(
                            got == expected,
                            "received message {got}, expected {expected}"
                        );
                        expected += 1;
                    }
                    batch.clear(); // gives the buffers back
                }
                Ok(chan)
            })
            .context("spawning the receiver")?
    };

    let _pinned = pin(SENDER_CPU);
    start.wait();
    let began = Instant::now();
    let mut sent = Ok(());
    for i in 0..n {
        let mut buf = match local.pop() {
            Some(b) => b,
            None => {
                pool.refill(&mut local);
                local.pop().unwrap_or_else(|| SendBuf::zeroed(PAYLOAD))
            }
        };
        stamp(&mut buf, i);
        if let Err(e) = conn.put(buf, i) {
            sent = Err(anyhow!("put of message {i}: {e}"));
            break;
        }
    }
    let flushed = conn.flush(Flush::NoWait);
    // A failed receiver destroys the channel, which fails the put: its own
    // error says more, so it comes first.
    let chan = receiver
        .join()
        .map_err(|_| anyhow!("the receiver panicked"))??;
    sent?;
    flushed.map_err(|e| anyhow!("final flush: {e}"))?;
    if n > 0 {
        done_rx
            .recv_timeout(STALL)
            .map_err(|_| anyhow!("delivery callbacks stalled"))?;
    }
    let took = began.elapsed();

    if seen.failed.load(Ordering::Acquire) {
        let why = seen.first_error.lock().unwrap_or_else(|e| e.into_inner());
        bail!("{}", why.as_deref().unwrap_or("delivery callback failed"));
    }
    let called_back = seen.next.load(Ordering::Relaxed);
    ensure!(
        called_back == n,
        "{called_back} delivery callbacks for {n} messages"
    );
    drop(conn);
    drop(chan);
    Ok(took)
}

fn run_crossbeam(n: u64) -> Result<Duration> {
    let (tx, rx) = crossbeam_channel::bounded::<[u8; PAYLOAD]>(CROSSBEAM_CAPACITY);
    let start = Arc::new(Barrier::new(2));
    let receiver = {
        let start = start.clone();
        thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || -> Result<()> {
                let _pinned = pin(RECEIVER_CPU);
                start.wait();
                for expected in 0..n {
                    let msg = rx
                        .recv_timeout(STALL)
                        .with_context(|| format!("recv after {expected} messages"))?;
                    let got = index_of(&msg)?;
                    ensure!(
                        got == expected,
                        "received message {got}, expected {expected}"
                    );
                }
                Ok(())
            })
            .context("spawning the receiver")?
    };
    let _pinned = pin(SENDER_CPU);
    start.wait();
    let began = Instant::now();
    for i in 0..n {
        let mut msg = [0u8; PAYLOAD];
        stamp(&mut msg, i);
        tx.send(msg)
            .map_err(|_| anyhow!("the receiver hung up at message {i}"))?;
    }
    receiver
        .join()
        .map_err(|_| anyhow!("the receiver panicked"))??;
    Ok(began.elapsed())
}

fn run_crossbeam_batches(n: u64) -> Result<Duration> {
    type Batch = Vec<[u8; PAYLOAD]>;
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(CROSSBEAM_CAPACITY / VEC_BATCH);
    // Drained batches go back; never blocks the receiver (a surplus is dropped).
    let (back_tx, back_rx) =
        crossbeam_channel::bounded::<Batch>(2 * CROSSBEAM_CAPACITY / VEC_BATCH);
    let start = Arc::new(Barrier::new(2));
    let receiver = {
        let start = start.clone();
        thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || -> Result<()> {
                let mut expected = 0u64;
                let _pinned = pin(RECEIVER_CPU);
                start.wait();
                while expected < n {
                    let mut batch = rx
                        .recv_timeout(STALL)
                        .with_context(|| format!("recv after {expected} messages"))?;
                    for msg in batch.drain(..) {
                        let got = index_of(&msg)?;
                        ensure!(
                            got == expected,
                            "received message {got}, expected {expected}"
                        );
                        expected += 1;
                    }
                    let _ = back_tx.try_send(batch);
                }
                Ok(())
            })
            .context("spawning the receiver")?
    };
    let _pinned = pin(SENDER_CPU);
    start.wait();
    let began = Instant::now();
    let mut i = 0u64;
    while i < n {
        let mut batch = back_rx
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(VEC_BATCH));
        let end = n.min(i + VEC_BATCH as u64);
        for index in i..end {
            let mut msg = [0u8; PAYLOAD];
            stamp(&mut msg, index);
            batch.push(msg);
        }
        i = end;
        tx.send(batch)
            .map_err(|_| anyhow!("the receiver hung up at message {i}"))?;
    }
    receiver
        .join()
        .map_err(|_| anyhow!("the receiver panicked"))??;
    Ok(began.elapsed())
}

/// One-way latency of a cache line between two spinning threads: an atomic
/// ping-pong of `round_trips` round trips, halved. The floor under any
/// cross-thread handover on this machine; recorded with every bench run
/// because it moves a lot on a shared VM (where the vCPUs land on the host),
/// and peers that hand over per message suffer from it more than batching ones.
///
/// ```
/// let one_way = asyncmsg_bench::pingpong_one_way(1_000);
/// assert!(one_way.as_nanos() > 0);
/// ```
pub fn pingpong_one_way(round_trips: u64) -> Duration {
    let ball = Arc::new(AtomicU64::new(0));
    let peer = {
        let ball = ball.clone();
        thread::spawn(move || {
            for i in 0..round_trips {
                while ball.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                ball.store(2 * i + 2, Ordering::Release);
            }
        })
    };
    let began = Instant::now();
    for i in 0..round_trips {
        ball.store(2 * i + 1, Ordering::Release);
        while ball.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let took = began.elapsed();
    peer.join().expect("the ping-pong peer panicked");
    Duration::from_secs_f64(took.as_secs_f64() / (2 * round_trips.max(1)) as f64)
}

/// Median, minimum and maximum of a set of figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest figure.
    pub min: f64,
    /// The largest figure.
    pub max: f64,
}

impl Summary {
    /// Summarises `xs`; `None` when it is empty.
    ///
    /// ```
    /// let s = asyncmsg_bench::Summary::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
    /// assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
    /// ```
    pub fn of(xs: &[f64]) -> Option<Summary> {
        if xs.is_empty() {
            return None;
        }
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Summary {
            median,
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_delivers_in_order() {
        for cell in Cell::ALL {
            for n in [0, 1, 63, 64, 65, 5_000] {
                run(cell, n).unwrap_or_else(|e| panic!("{} with {n} messages: {e:#}", cell.name()));
            }
        }
    }

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<_> = Cell::ALL.iter().map(|c| c.id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), Cell::ALL.len());
    }
}
