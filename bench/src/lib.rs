//! # asyncmsg-bench
//!
//! The benchmark harness shared by the criterion benches (`benches/`), the
//! matrix test and `cargo xtask bench`, so that all of them measure exactly
//! the same code. The matrix ([`matrix`]) gathers the cells of each transport:
//! in process ([`inproc`]), shared memory ([`shm`]) and QUIC ([`quic`]).
//!
//! At the crate root: the four original in-process cells ([`Cell`], run by
//! [`run`]: asyncmsg with trigger 1 and 64 beside crossbeam-channel, moving
//! [`PAYLOAD`]-byte messages from one thread to another; the stress test
//! runs them), and what every transport shares: CPU pinning ([`pin`]),
//! stalled-run detection ([`Stalled`]) and the [`Summary`] of rounds. The
//! allocation counter of the memory probes is in [`alloc`].
//!
//! Every run checks that all `n` messages arrived, in order (each message
//! carries its index in its first 8 bytes), and for asyncmsg also that every
//! delivery callback came back `Ok`, in put order. A run that sees anything
//! else returns an error instead of a figure.
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
pub mod trigger;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;

use inproc::{Shape, Trigger, asyncmsg_runs, peers};

/// Message size in bytes for every in-process cell.
pub const PAYLOAD: usize = 64;

/// Messages an asyncmsg connection of a [`Cell`] may have in flight (put and
/// not yet called back); also the most messages one get returns. Crossbeam's
/// channel is bounded at 4096 messages, and the batch peer at 4096 / 64
/// batches.
pub const ASYNCMSG_MAX_BUFFERS: u32 = 1024;

/// Capacity of the crossbeam-channel peer, in messages.
pub const CROSSBEAM_CAPACITY: usize = peers::CAPACITY;

/// Messages per batch for the crossbeam batch peer.
pub const VEC_BATCH: usize = peers::VEC_BATCH;

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

/// Whether `e` is a [`Stalled`] run.
pub fn is_stall(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Stalled>().is_some()
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

/// Moves `n` messages through `cell` once, verifies them, and returns the time
/// it took (setup excluded).
pub fn run(cell: Cell, n: u64) -> Result<Duration> {
    let asyncmsg = |trigger| {
        let shape = Shape {
            max_buffers: ASYNCMSG_MAX_BUFFERS,
            ..Shape::new(PAYLOAD, Trigger::Count(trigger))
        };
        asyncmsg_runs::throughput(n, shape)
    };
    match cell {
        Cell::AsyncmsgTrigger1 => asyncmsg(1),
        Cell::AsyncmsgTrigger64 => asyncmsg(64),
        Cell::Crossbeam => peers::crossbeam::<PAYLOAD>(n),
        Cell::CrossbeamVecBatch64 => peers::crossbeam_batches(n),
    }
}

/// The CPU the sender side of every in-process cell runs on, and the
/// receiver's.
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
