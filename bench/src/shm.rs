//! Shared-memory cells: asyncmsg between two processes over `shm://`, beside
//! the baselines BENCH.md sets its shared-memory targets against, all measured
//! by the same code for the criterion bench (`benches/shm.rs`) and for
//! `cargo xtask bench`.
//!
//! Every cell runs two processes, the parent (this program) and a child (this
//! program started again, see [`Launcher`] and [`child_main`]), with the
//! sending side pinned to CPU 0 and the receiving side to CPU 1, as the
//! in-process cells are (the one exception is memcpy, a single thread on
//! CPU 0).
//!
//! * **Throughput** ([`Kind::Throughput`]): the child sends `n` messages, the
//!   parent receives them and checks every message's index (its first 8
//!   bytes), in order. Timed from the parent's go until the parent took the
//!   last message and, for asyncmsg, the child's last delivery callback ran.
//! * **Latency** ([`Kind::Latency`]): the parent pings, the child echoes; a
//!   warm-up, then `n` timed round trips, each timed on its own into a
//!   [`Histogram`]; one-way latency is half the round trip. asyncmsg pings over
//!   two channels (one per direction) with trigger 1.
//! * **Round trip** ([`Kind::RoundTrip`]): request/reply, the server in the
//!   child: the parent sends a request and waits for the answer; a warm-up,
//!   then `n` timed round trips into a [`Histogram`], reported whole (not
//!   halved). asyncmsg opens the child's synchronous channel by name and
//!   `send`s; the child `receive`s and `reply`s.
//!
//! A binary that runs these cells must call [`child_main`] first thing in
//! `main`; and, for the asyncmsg cells, give the run a runtime directory of
//! its own ([`RuntimeDir`]) before it starts any thread.

pub(crate) mod asyncmsg;
mod cells;
#[cfg(feature = "peers")]
mod iceoryx;
mod mqueue;
pub(crate) mod peers;
mod process;
mod request_reply;
mod time_trigger;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use cells::{ratios, specs};
pub use peers::{MIB, UDS_BATCH};
pub use process::{ARGS_ENV, CHILD_ENV, FDS_ENV, Launcher};

/// The environment variable naming asyncmsg's runtime directory (where
/// published names live).
pub const RUNTIME_DIR_ENV: &str = "ASYNCMSG_RUNTIME_DIR";

/// Bytes per message of the small cells.
pub const SMALL: usize = 64;

/// Bytes per message of the `alloc` cells.
pub const ALLOC: usize = 64 * 1024;

/// The CPU the sending (or pinging) side runs on, and the receiving (or
/// echoing) side's.
pub(crate) const SENDER_CPU: usize = 0;
pub(crate) const RECEIVER_CPU: usize = 1;

/// Upper bound on one run of a latency cell whose wait no timeout reaches.
pub(crate) const LATENCY_LIMIT: Duration = Duration::from_secs(120);

/// Round trips before the timed ones in a latency run of `n`.
pub(crate) fn warmup_for(n: u64) -> u64 {
    (n / 10).clamp(10, 1_000)
}

/// What a cell measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Messages (and bytes) per second, one way.
    Throughput,
    /// Round trips; one-way latency is half of one.
    Latency,
    /// Request/reply round trips, reported whole.
    RoundTrip,
}

/// One cell of the shared-memory matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShmCell {
    /// asyncmsg over `shm://`, 64 B messages, `trigger_count(64)`.
    AsyncmsgSmallTrigger64,
    /// asyncmsg over `shm://`, 64 KiB buffers from `node.alloc` (only their
    /// offset crosses), recycled through the delivery callback.
    AsyncmsgAllocThroughput,
    /// asyncmsg over `shm://`, 1 MiB heap buffers (the put copies them into
    /// shared memory), recycled through the delivery callback.
    AsyncmsgMibCopied,
    /// A Unix stream socket pair, one 64 B message per write.
    UnixSocketPerMessage,
    /// A Unix stream socket pair, 64 messages of 64 B per write.
    UnixSocketBatch64,
    /// Single-thread memcpy of 1 MiB (one process).
    Memcpy,
    /// asyncmsg ping-pong, 64 B, getters busy-polling.
    AsyncmsgLatencyBusy,
    /// asyncmsg ping-pong, 64 B, getters sleeping at once (futex).
    AsyncmsgLatencyBlocking,
    /// asyncmsg ping-pong, 64 KiB `alloc` buffers, getters busy-polling.
    AsyncmsgLatencyAlloc,
    /// An atomic word on a shared page, both sides spinning.
    AtomicPingPong,
    /// Two eventfds, both sides blocking in `read`.
    EventfdPingPong,
    /// A Unix stream socket pair, 64 B each way, blocking reads.
    UnixSocketPingPong,
    /// asyncmsg synchronous channel: a 64 B `send` answered by a 64 B
    /// `reply`, the server in the child.
    AsyncmsgSyncRequestReply,
    /// A Unix stream socket pair: a 64 B request, a 64 B answer, blocking
    /// reads on both sides.
    UnixSocketRoundTrip,
}

impl ShmCell {
    /// Every cell, in report order.
    pub const ALL: [ShmCell; 14] = [
        ShmCell::AsyncmsgSmallTrigger64,
        ShmCell::AsyncmsgAllocThroughput,
        ShmCell::AsyncmsgMibCopied,
        ShmCell::UnixSocketPerMessage,
        ShmCell::UnixSocketBatch64,
        ShmCell::Memcpy,
        ShmCell::AsyncmsgLatencyBusy,
        ShmCell::AsyncmsgLatencyBlocking,
        ShmCell::AsyncmsgLatencyAlloc,
        ShmCell::AtomicPingPong,
        ShmCell::EventfdPingPong,
        ShmCell::UnixSocketPingPong,
        ShmCell::AsyncmsgSyncRequestReply,
        ShmCell::UnixSocketRoundTrip,
    ];

    /// The cells that do not involve asyncmsg.
    pub const BASELINES: [ShmCell; 7] = [
        ShmCell::UnixSocketPerMessage,
        ShmCell::UnixSocketBatch64,
        ShmCell::Memcpy,
        ShmCell::AtomicPingPong,
        ShmCell::EventfdPingPong,
        ShmCell::UnixSocketPingPong,
        ShmCell::UnixSocketRoundTrip,
    ];

    /// A stable identifier, for `results.json` and `compare`.
    pub fn id(self) -> &'static str {
        match self {
            ShmCell::AsyncmsgSmallTrigger64 => "shm/64B/asyncmsg-trigger-64",
            ShmCell::AsyncmsgAllocThroughput => "shm/64KiB/asyncmsg-alloc",
            ShmCell::AsyncmsgMibCopied => "shm/1MiB/asyncmsg-copied-put",
            ShmCell::UnixSocketPerMessage => "shm/64B/unix-socket-1-per-write",
            ShmCell::UnixSocketBatch64 => "shm/64B/unix-socket-64-per-write",
            ShmCell::Memcpy => "shm/1MiB/memcpy-single-thread",
            ShmCell::AsyncmsgLatencyBusy => "shm-latency/64B/asyncmsg-busy-poll",
            ShmCell::AsyncmsgLatencyBlocking => "shm-latency/64B/asyncmsg-blocking",
            ShmCell::AsyncmsgLatencyAlloc => "shm-latency/64KiB/asyncmsg-alloc-busy-poll",
            ShmCell::AtomicPingPong => "shm-latency/atomic-ping-pong",
            ShmCell::EventfdPingPong => "shm-latency/eventfd-ping-pong",
            ShmCell::UnixSocketPingPong => "shm-latency/64B/unix-socket",
            ShmCell::AsyncmsgSyncRequestReply => "shm-round-trip/64B/asyncmsg-sync-request-reply",
            ShmCell::UnixSocketRoundTrip => "shm-round-trip/64B/unix-socket",
        }
    }

    /// A short name for criterion and tables.
    pub fn name(self) -> &'static str {
        match self {
            ShmCell::AsyncmsgSmallTrigger64 => "asyncmsg shm 64 B trigger 64",
            ShmCell::AsyncmsgAllocThroughput => "asyncmsg shm 64 KiB alloc",
            ShmCell::AsyncmsgMibCopied => "asyncmsg shm 1 MiB copied put",
            ShmCell::UnixSocketPerMessage => "unix socket 64 B 1 per write",
            ShmCell::UnixSocketBatch64 => "unix socket 64 B 64 per write",
            ShmCell::Memcpy => "memcpy 1 MiB single thread",
            ShmCell::AsyncmsgLatencyBusy => "asyncmsg shm 64 B busy-poll",
            ShmCell::AsyncmsgLatencyBlocking => "asyncmsg shm 64 B blocking",
            ShmCell::AsyncmsgLatencyAlloc => "asyncmsg shm 64 KiB alloc busy-poll",
            ShmCell::AtomicPingPong => "atomic ping-pong (busy floor)",
            ShmCell::EventfdPingPong => "eventfd ping-pong (blocking floor)",
            ShmCell::UnixSocketPingPong => "unix socket 64 B ping-pong",
            ShmCell::AsyncmsgSyncRequestReply => "asyncmsg sync request/reply",
            ShmCell::UnixSocketRoundTrip => "unix socket round trip",
        }
    }

    /// Throughput, latency or round trip.
    pub fn kind(self) -> Kind {
        match self {
            ShmCell::AsyncmsgSmallTrigger64
            | ShmCell::AsyncmsgAllocThroughput
            | ShmCell::AsyncmsgMibCopied
            | ShmCell::UnixSocketPerMessage
            | ShmCell::UnixSocketBatch64
            | ShmCell::Memcpy => Kind::Throughput,
            ShmCell::AsyncmsgSyncRequestReply | ShmCell::UnixSocketRoundTrip => Kind::RoundTrip,
            _ => Kind::Latency,
        }
    }

    /// The time this cell reports for a round trip of `rtt_ns`: half of it
    /// (one way) for a latency cell, all of it for a round-trip cell.
    pub fn reported_ns(self, rtt_ns: f64) -> f64 {
        match self.kind() {
            Kind::RoundTrip => rtt_ns,
            Kind::Latency | Kind::Throughput => rtt_ns / 2.0,
        }
    }

    /// Bytes per message (0 for the eventfd and atomic ping-pongs, which carry
    /// none).
    pub fn payload(self) -> usize {
        match self {
            ShmCell::AsyncmsgAllocThroughput | ShmCell::AsyncmsgLatencyAlloc => ALLOC,
            ShmCell::AsyncmsgMibCopied | ShmCell::Memcpy => MIB,
            ShmCell::AtomicPingPong | ShmCell::EventfdPingPong => 0,
            _ => SMALL,
        }
    }

    /// Whether the cell measures asyncmsg (the others are baselines).
    pub fn is_asyncmsg(self) -> bool {
        !ShmCell::BASELINES.contains(&self)
    }

    /// Whether bytes/s is the figure that matters (large messages).
    pub fn counts_bytes(self) -> bool {
        self.payload() >= ALLOC
    }
}

/// Messages (throughput) or round trips (latency) per run, per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// 64 B throughput cells.
    pub small: u64,
    /// 64 KiB throughput cells.
    pub alloc: u64,
    /// 1 MiB cells (asyncmsg and memcpy).
    pub mib: u64,
    /// Timed round trips of a latency or round-trip cell (warm-up not
    /// included).
    pub round_trips: u64,
}

impl Sizes {
    /// A run of about a second or less per cell.
    pub const QUICK: Sizes = Sizes {
        small: 300_000,
        alloc: 20_000,
        mib: 1_000,
        round_trips: 20_000,
    };

    /// The full matrix.
    pub const FULL: Sizes = Sizes {
        small: 2_000_000,
        alloc: 100_000,
        mib: 5_000,
        round_trips: 100_000,
    };

    /// A handful, to check that each cell works.
    pub const TINY: Sizes = Sizes {
        small: 1_000,
        alloc: 100,
        mib: 10,
        round_trips: 50,
    };

    /// How many messages or round trips a run of `cell` moves.
    pub fn of(&self, cell: ShmCell) -> u64 {
        match cell.kind() {
            Kind::Latency | Kind::RoundTrip => self.round_trips,
            Kind::Throughput => match cell.payload() {
                SMALL => self.small,
                ALLOC => self.alloc,
                _ => self.mib,
            },
        }
    }
}

/// Round-trip times in nanoseconds, in log-linear buckets (64 per power of
/// two above 128 ns: within 1.6% of the true value; exact below 128 ns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const LINEAR: u64 = 2 * SUB;
const BUCKETS: usize = (LINEAR + (64 - SUB_BITS as u64 - 1) * SUB) as usize;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    fn bucket(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // v in [2^e, 2^(e+1)), e >= SUB_BITS + 1
        let shift = e - SUB_BITS;
        let m = v >> shift; // in [SUB, 2 * SUB)
        (LINEAR + u64::from(e - SUB_BITS - 1) * SUB + (m - SUB)) as usize
    }

    /// The smallest and largest value of bucket `i`.
    fn bounds(i: usize) -> (u64, u64) {
        let i = i as u64;
        if i < LINEAR {
            return (i, i);
        }
        let e = (i - LINEAR) / SUB + u64::from(SUB_BITS) + 1;
        let m = (i - LINEAR) % SUB + SUB;
        let shift = e - u64::from(SUB_BITS);
        (m << shift, ((m + 1) << shift) - 1)
    }

    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        self.counts[Histogram::bucket(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// How many values were counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The mean value; 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1): the middle of the bucket holding the
    /// `ceil(q * count)`-th smallest value, within the recorded range; 0 when
    /// empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = Histogram::bounds(i);
                let mid = (lo as f64 + hi as f64) / 2.0;
                return mid.clamp(self.min as f64, self.max as f64);
            }
        }
        self.max as f64
    }
}

/// What one run of a cell measured.
#[derive(Debug, Clone)]
pub struct Run {
    /// Messages moved (throughput) or timed round trips (latency).
    pub messages: u64,
    /// Payload bytes moved, one way.
    pub bytes: u64,
    /// The timed span: the whole transfer, or the sum of the round trips.
    pub took: Duration,
    /// Round-trip times in ns (latency and round-trip cells).
    pub rtt: Option<Histogram>,
    /// What the run measured.
    pub kind: Kind,
}

impl Run {
    pub fn throughput(messages: u64, payload: usize, took: Duration) -> Run {
        Run {
            messages,
            bytes: messages * payload as u64,
            took,
            rtt: None,
            kind: Kind::Throughput,
        }
    }

    /// Messages per second.
    pub fn messages_per_s(&self) -> f64 {
        self.messages as f64 / self.took.max(Duration::from_nanos(1)).as_secs_f64()
    }

    /// Payload bytes per second.
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 / self.took.max(Duration::from_nanos(1)).as_secs_f64()
    }

    /// The time criterion is given for this run: the whole span for
    /// throughput, for latency half the round trips' sum (so that one
    /// iteration is one one-way trip), and for a round-trip cell the round
    /// trips' sum (one iteration is one round trip).
    pub fn criterion_time(&self) -> Duration {
        match self.kind {
            Kind::Latency => self.took / 2,
            Kind::Throughput | Kind::RoundTrip => self.took,
        }
    }

    /// One-way latency at quantile `q` in ns (half the round trip), for a
    /// latency run.
    pub fn one_way_ns(&self, q: f64) -> Option<f64> {
        self.rtt.as_ref().map(|h| h.quantile(q) / 2.0)
    }
}

/// Runs `warmup` untimed and then `n` timed round trips of `once(index)`,
/// each timed into a histogram (one clock read per round trip: each sample
/// spans from the end of the previous round trip to the end of this one).
pub(crate) fn latency_loop(
    warmup: u64,
    n: u64,
    mut once: impl FnMut(u64) -> Result<()>,
) -> Result<Run> {
    for i in 0..warmup {
        once(i).with_context(|| format!("warm-up round trip {i}"))?;
    }
    let mut rtt = Histogram::new();
    let began = Instant::now();
    let mut last = began;
    for i in warmup..warmup + n {
        once(i).with_context(|| format!("round trip {i}"))?;
        let now = Instant::now();
        rtt.record((now - last).as_nanos() as u64);
        last = now;
    }
    Ok(Run {
        messages: n,
        bytes: 0, // set by `run_cell`, which knows the payload
        took: last - began,
        rtt: Some(rtt),
        kind: Kind::Latency, // set by `run_cell`, which knows the cell
    })
}

/// Runs `cell` once, moving `n` messages (or timing `n` round trips), with
/// the child started through `launcher`, and checks what arrived.
pub fn run_cell(cell: ShmCell, n: u64, launcher: &Launcher) -> Result<Run> {
    let run = match cell {
        ShmCell::AsyncmsgSmallTrigger64 => asyncmsg::throughput(launcher, n, asyncmsg::SMALL_T64),
        ShmCell::AsyncmsgAllocThroughput => asyncmsg::throughput(launcher, n, asyncmsg::ALLOC_THRU),
        ShmCell::AsyncmsgMibCopied => asyncmsg::throughput(launcher, n, asyncmsg::MIB_COPIED),
        ShmCell::UnixSocketPerMessage => peers::uds_throughput(launcher, n, 1),
        ShmCell::UnixSocketBatch64 => peers::uds_throughput(launcher, n, UDS_BATCH),
        ShmCell::Memcpy => peers::memcpy(n),
        ShmCell::AsyncmsgLatencyBusy => asyncmsg::latency(launcher, n, asyncmsg::SMALL_BUSY),
        ShmCell::AsyncmsgLatencyBlocking => {
            asyncmsg::latency(launcher, n, asyncmsg::SMALL_BLOCKING)
        }
        ShmCell::AsyncmsgLatencyAlloc => asyncmsg::latency(launcher, n, asyncmsg::ALLOC_BUSY),
        ShmCell::AtomicPingPong => peers::atomic_latency(launcher, n),
        ShmCell::EventfdPingPong => peers::eventfd_latency(launcher, n),
        ShmCell::UnixSocketPingPong => peers::uds_latency(launcher, n),
        ShmCell::AsyncmsgSyncRequestReply => request_reply::asyncmsg_sync(launcher, n),
        ShmCell::UnixSocketRoundTrip => request_reply::uds(launcher, n),
    };
    let mut run = run.with_context(|| cell.name().to_owned())?;
    if cell.kind() != Kind::Throughput {
        run.bytes = run.messages * cell.payload() as u64;
    }
    run.kind = cell.kind();
    Ok(run)
}

/// If this process was started as a child of a cell ([`CHILD_ENV`] is set),
/// plays its role and exits; otherwise returns at once. Call it first thing in
/// `main` of any program that runs shared-memory cells.
pub fn child_main() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let result = process::ChildEnv::from_env().and_then(|env| match role.as_str() {
        "uds-send" => peers::child_uds_send(env),
        "uds-dgram-send" => peers::child_uds_dgram_send(env),
        "uds-echo" => peers::child_uds_echo(env),
        "eventfd-echo" => peers::child_eventfd_echo(env),
        "atomic-echo" => peers::child_atomic_echo(env),
        "asyncmsg-send" => asyncmsg::child_send(env),
        "asyncmsg-echo" => asyncmsg::child_echo(env),
        "asyncmsg-sync-server" => request_reply::child_asyncmsg_sync(env),
        "uds-reply" => request_reply::child_uds(env),
        "asyncmsg-timed" => time_trigger::child_asyncmsg(env),
        "mq-send" => mqueue::child_send(env),
        "mq-echo" => mqueue::child_echo(env),
        #[cfg(feature = "peers")]
        "iox-publish" => iceoryx::child_publish(env),
        #[cfg(feature = "peers")]
        "iox-echo" => iceoryx::child_echo(env),
        other => Err(anyhow::anyhow!("unknown role {other:?}")),
    });
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("bench child ({role}): {e:#}");
            std::process::exit(1);
        }
    }
}

/// A runtime directory of a bench run's own, removed when dropped. The caller
/// points [`RUNTIME_DIR_ENV`] at it before starting any thread (children
/// inherit the environment).
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
}

impl RuntimeDir {
    /// Creates a new, empty directory under the system's temporary directory.
    pub fn create() -> Result<RuntimeDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("asyncmsg-bench-{}-{nanos:09}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(RuntimeDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Which figure of a cell a ratio compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Messages per second (bytes per second give the same ratio when the
    /// payloads are equal).
    Rate,
    /// Latency as the cells report it (one way, or the whole round trip for
    /// round-trip cells), median.
    P50,
    /// The same, 99th percentile.
    P99,
}

/// A ratio of two cells' figures in the same round, with BENCH.md's target
/// where it sets one.
#[derive(Debug, Clone, Copy)]
pub struct ShmRatio {
    /// The asyncmsg cell.
    pub numerator: ShmCell,
    /// The cell it is compared with.
    pub denominator: ShmCell,
    /// The figure compared.
    pub metric: Metric,
    /// BENCH.md's bound on the ratio, if any: at least (throughput) or at most
    /// (latency).
    pub target: Option<f64>,
}

/// The ratios reported with every run, in report order.
pub const SHM_RATIOS: [ShmRatio; 12] = [
    ShmRatio {
        numerator: ShmCell::AsyncmsgSmallTrigger64,
        denominator: ShmCell::UnixSocketBatch64,
        metric: Metric::Rate,
        target: Some(1.0),
    },
    ShmRatio {
        numerator: ShmCell::AsyncmsgSmallTrigger64,
        denominator: ShmCell::UnixSocketPerMessage,
        metric: Metric::Rate,
        target: None,
    },
    ShmRatio {
        numerator: ShmCell::AsyncmsgLatencyBusy,
        denominator: ShmCell::AtomicPingPong,
        metric: Metric::P50,
        target: None,
    },
    ShmRatio {
        numerator: ShmCell::AsyncmsgLatencyBusy,
        denominator: ShmCell::AtomicPingPong,
        metric: Metric::P99,
        target: None,
    },
    ShmRatio {
        numerator: ShmCell::AsyncmsgLatencyBlocking,
        denominator: ShmCell::EventfdPingPong,
        metric: Metric::P50,
        target: Some(1.5),
    },
    ShmRatio {
        numerator: ShmCell::AsyncmsgLatencyBlocking,
        denominator: ShmCell::EventfdPingPong,
        metric: Metric::P99,
        target: None,
    },
    ShmRatio {
        numerator: ShmCell::AsyncmsgLatencyAlloc,
        denominator: ShmCell::AsyncmsgLatencyBusy,
        metric: Metric::P50,
        target: Some(1.5),
    },
    ShmRatio {
        numerator: ShmCell::AsyncmsgLatencyAlloc,
        denominator: ShmCell::AsyncmsgLatencyBusy,
        metric: Metric::P99,
        target: None,
    },
    ShmRatio {
        numerator: ShmCell::AsyncmsgLatencyBusy,
        denominator: ShmCell::UnixSocketPingPong,
        metric: Metric::P50,
        target: None,
    },
    ShmRatio {
        numerator: ShmCell::AsyncmsgSyncRequestReply,
        denominator: ShmCell::UnixSocketRoundTrip,
        metric: Metric::P50,
        target: None,
    },
    ShmRatio {
        numerator: ShmCell::AsyncmsgMibCopied,
        denominator: ShmCell::Memcpy,
        metric: Metric::Rate,
        target: Some(0.5),
    },
    ShmRatio {
        numerator: ShmCell::AsyncmsgAllocThroughput,
        denominator: ShmCell::AsyncmsgSmallTrigger64,
        metric: Metric::Rate,
        target: None,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Re-runs this test binary as a child: only the `child_entry` test, which
    /// plays the role.
    fn launcher() -> Launcher {
        let exe = std::env::current_exe().expect("the test executable");
        Launcher::new(
            exe,
            [
                "shm::tests::child_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ],
        )
    }

    /// The child's entry point when this test binary runs as a child; does
    /// nothing otherwise.
    #[test]
    fn child_entry() {
        child_main();
    }

    #[test]
    fn every_baseline_runs_and_checks_what_arrived() {
        let launcher = launcher();
        for cell in ShmCell::BASELINES {
            let n = Sizes::TINY.of(cell);
            let run =
                run_cell(cell, n, &launcher).unwrap_or_else(|e| panic!("{}: {e:#}", cell.name()));
            assert_eq!(run.messages, n, "{}", cell.name());
            assert!(run.took > Duration::ZERO, "{}", cell.name());
            assert_eq!(run.kind, cell.kind(), "{}", cell.name());
            match cell.kind() {
                Kind::Latency | Kind::RoundTrip => {
                    let h = run.rtt.as_ref().expect("a latency histogram");
                    assert_eq!(h.count(), n, "{}", cell.name());
                    assert!(h.quantile(0.5) > 0.0, "{}", cell.name());
                }
                Kind::Throughput => assert!(run.rtt.is_none()),
            }
        }
    }

    #[test]
    fn every_asyncmsg_cell_runs_and_checks_what_arrived() {
        let launcher = launcher();
        for cell in ShmCell::ALL.into_iter().filter(|c| c.is_asyncmsg()) {
            let n = Sizes::TINY.of(cell);
            let run =
                run_cell(cell, n, &launcher).unwrap_or_else(|e| panic!("{}: {e:#}", cell.name()));
            assert_eq!(run.messages, n, "{}", cell.name());
            assert_eq!(run.bytes, n * cell.payload() as u64, "{}", cell.name());
            assert_eq!(run.kind, cell.kind(), "{}", cell.name());
            if cell.kind() != Kind::Throughput {
                assert_eq!(run.rtt.as_ref().map(Histogram::count), Some(n));
            }
        }
    }

    #[test]
    fn a_failing_child_is_reported_not_waited_for() {
        let launcher = Launcher::new("false", Vec::<String>::new());
        let began = Instant::now();
        let err = run_cell(ShmCell::UnixSocketPingPong, 10, &launcher).unwrap_err();
        assert!(format!("{err:#}").contains("exited"), "{err:#}");
        assert!(began.elapsed() < Duration::from_secs(5));
        let err = run_cell(ShmCell::AtomicPingPong, 10, &launcher).unwrap_err();
        assert!(format!("{err:#}").contains("exited"), "{err:#}");
    }

    #[test]
    fn histogram_buckets_are_tight() {
        for v in [
            0u64,
            1,
            127,
            128,
            129,
            1_000,
            4_095,
            4_096,
            123_456,
            u64::MAX / 3,
        ] {
            let (lo, hi) = Histogram::bounds(Histogram::bucket(v));
            assert!(lo <= v && v <= hi, "{v} outside [{lo}, {hi}]");
            assert!(
                (hi - lo) as f64 <= v as f64 / 60.0 + 1.0,
                "{v}: [{lo}, {hi}]"
            );
        }
        assert!(Histogram::bucket(u64::MAX) < BUCKETS);
        let mut h = Histogram::new();
        for v in 1..=1_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((p50 - 500.0).abs() <= 8.0, "p50 {p50}");
        assert!((p99 - 990.0).abs() <= 16.0, "p99 {p99}");
        assert_eq!(h.quantile(1.0), 1_000.0_f64.min(h.quantile(1.0)));
        let mut twice = h.clone();
        twice.merge(&h);
        assert_eq!(twice.count(), 2_000);
        assert_eq!(twice.quantile(0.5), p50);
    }
}
