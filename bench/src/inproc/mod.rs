//! In-process cells of the matrix: asyncmsg between threads of one process
//! beside the channels people use instead (see [`crate::matrix`]).
//!
//! - **throughput** (one sender thread → one receiver thread, each pinned to
//!   its own CPU): asyncmsg over the payload × trigger sweep (8 B, 64 B,
//!   1 KiB, 64 KiB, 1 MiB × trigger 1, 16, 64 and flush-only); at 64 B
//!   crossbeam-channel `bounded(4096)`, crossbeam carrying reused `Vec`
//!   batches of 64, kanal `bounded(4096)`, tokio `mpsc::channel(4096)` and an
//!   rtrb ring of 4096 (busy-polling: the SPSC ceiling); crossbeam also at
//!   8 B and 1 KiB, so that every small payload has a peer.
//! - **fan-in** ([`FAN_IN_SENDERS`] sender threads, all pinned to the sender
//!   CPU, → one receiver on the other): asyncmsg (one connection per sender,
//!   trigger 64), crossbeam, kanal, tokio mpsc.
//! - **latency** (ping-pong over two channels, 64 B, round trip per sample,
//!   reported halved): busy-polling (asyncmsg `try_get_into`, crossbeam
//!   `try_recv`, rtrb `pop`, all spinning) and blocking (asyncmsg `get_into`,
//!   crossbeam `recv_timeout`).
//! - **time trigger**: how late a 2 ms time trigger delivers after its
//!   deadline ([`asyncmsg_runs::time_trigger`]).
//!
//! What a throughput run times: from the moment all threads are ready (after
//! they, the node and the channel exist) until the receiver took the last
//! message and, for asyncmsg, the last delivery callback ran. Every run checks
//! the count and order of what arrived (each message carries its index, and
//! in a fan-in its sender's number, in its first 8 bytes; the rest of a
//! message is left as allocated, so with asyncmsg, which hands the sender's
//! buffer itself to the receiver, a 1 MiB message costs what a 64 B one does
//! but for the buffer's size: its bytes/s are handovers × size, not a copy
//! rate) and, for asyncmsg, that every delivery callback came back `Ok` in put
//! order. The peers behind the `peers` feature (kanal, rtrb) are left out
//! without it.

pub mod asyncmsg_runs;
mod harness;
pub mod peers;

use std::time::Duration;

pub use asyncmsg_runs::{Shape, Trigger, Wait};
pub use harness::FAN_IN_SENDERS;

use crate::matrix::{Bound, Ctx, Metric, Pattern, RatioSpec, Size, Spec, Transport, cell_id};
use crate::shm::Run;
use crate::{Cell, PAYLOAD};

/// The payloads of the asyncmsg sweep, in bytes.
pub const PAYLOADS: [usize; 5] = [8, 64, 1024, 64 * 1024, 1024 * 1024];

/// Messages per run of the three 64 B cells BENCH.md sets targets on and of
/// the crossbeam batch peer.
const SMALL: Size = Size {
    full: 2_000_000,
    quick: 500_000,
    tiny: 1_000,
};

/// `quick` messages per quick run, six times as many per full run, a
/// 250th (10 to 1000) in tests.
const fn sized(quick: u64) -> Size {
    let tiny = quick / 250;
    Size {
        full: 6 * quick,
        quick,
        tiny: if tiny < 10 {
            10
        } else if tiny > 1_000 {
            1_000
        } else {
            tiny
        },
    }
}

/// A throughput (or fan-in) cell.
#[allow(clippy::too_many_arguments)]
fn rate_spec(
    pattern: Pattern,
    payload: usize,
    implementation: &'static str,
    variant: &str,
    name: String,
    size: Size,
    run: impl Fn(u64) -> anyhow::Result<Duration> + Send + Sync + 'static,
) -> Spec {
    Spec::new(
        Transport::InProcess,
        pattern,
        payload,
        implementation,
        variant,
        name,
        size,
        move |n| Ok(Run::throughput(n, payload, run(n)?)),
    )
}

/// One of the four legacy cells (same run as `crate::run`).
fn cell_spec(cell: Cell, implementation: &'static str, variant: &str) -> Spec {
    rate_spec(
        Pattern::Throughput,
        PAYLOAD,
        implementation,
        variant,
        cell.name().into(),
        SMALL,
        move |n| crate::run(cell, n),
    )
    .quick()
}

/// Messages per quick run of an asyncmsg sweep cell: as many as the 64 B
/// cells BENCH.md sets targets on move with batches (fewer with a batch per
/// put, and for the large payloads, whose runs are slower); well under 0.3 s
/// each on an idle 2-vCPU machine.
fn sweep_quick(payload: usize, trigger: Trigger) -> u64 {
    let per_put = match trigger {
        Trigger::Count(1) => 200_000,
        _ => SMALL.quick,
    };
    match payload {
        0..=1024 => per_put,
        1025..=65536 => per_put / 4,
        _ => per_put / 10,
    }
}

/// The asyncmsg sweep cell of `payload` and `trigger`.
fn sweep_spec(payload: usize, trigger: Trigger) -> Spec {
    let shape = Shape::new(payload, trigger);
    let spec = rate_spec(
        Pattern::Throughput,
        payload,
        "asyncmsg",
        &trigger.variant(),
        format!("asyncmsg {}", trigger.label()),
        sized(sweep_quick(payload, trigger)),
        move |n| asyncmsg_runs::throughput(n, shape),
    );
    let quick = payload == PAYLOAD
        || (trigger == Trigger::Count(64) && (payload == 8 || payload == 1024 * 1024));
    if quick { spec.quick() } else { spec }
}

/// crossbeam `bounded(4096)` at `N` bytes (not 64 B: that is a legacy cell).
fn crossbeam_spec<const N: usize>() -> Spec {
    rate_spec(
        Pattern::Throughput,
        N,
        "crossbeam-channel",
        "bounded-4096",
        "crossbeam bounded(4096)".into(),
        sized(500_000),
        peers::crossbeam::<N>,
    )
}

/// A latency cell.
fn latency_spec(
    pattern: Pattern,
    implementation: &'static str,
    variant: &str,
    name: &str,
    size: Size,
    run: impl Fn(u64) -> anyhow::Result<Run> + Send + Sync + 'static,
) -> Spec {
    Spec::new(
        Transport::InProcess,
        pattern,
        PAYLOAD,
        implementation,
        variant,
        name,
        size,
        run,
    )
    .quick()
}

/// Round trips per run of a busy-polling ping-pong, and of a blocking one.
const BUSY_ROUND_TRIPS: Size = sized(20_000);
const BLOCKING_ROUND_TRIPS: Size = sized(10_000);

/// Samples per run of the time-trigger cell.
const TRIGGER_SAMPLES: Size = Size {
    full: 300,
    quick: 50,
    tiny: 10,
};

/// The in-process cells, in report order.
pub fn specs(_ctx: &Ctx) -> Vec<Spec> {
    // Throughput at 64 B: BENCH.md's cells, the rest of the sweep, the peers.
    let mut all = vec![
        cell_spec(Cell::AsyncmsgTrigger1, "asyncmsg", "t1"),
        sweep_spec(PAYLOAD, Trigger::Count(16)),
        cell_spec(Cell::AsyncmsgTrigger64, "asyncmsg", "t64"),
        sweep_spec(PAYLOAD, Trigger::FlushOnly),
        cell_spec(Cell::Crossbeam, "crossbeam-channel", "bounded-4096"),
        cell_spec(
            Cell::CrossbeamVecBatch64,
            "crossbeam-channel",
            "vec-batch-64",
        ),
    ];
    #[cfg(feature = "peers")]
    all.push(
        rate_spec(
            Pattern::Throughput,
            PAYLOAD,
            "kanal",
            "bounded-4096",
            "kanal bounded(4096)".into(),
            SMALL,
            peers::kanal,
        )
        .quick(),
    );
    all.push(
        rate_spec(
            Pattern::Throughput,
            PAYLOAD,
            "tokio-mpsc",
            "bounded-4096",
            "tokio mpsc(4096)".into(),
            SMALL,
            peers::tokio_mpsc,
        )
        .quick(),
    );
    #[cfg(feature = "peers")]
    all.push(
        rate_spec(
            Pattern::Throughput,
            PAYLOAD,
            "rtrb",
            "4096",
            "rtrb ring(4096), busy-polling".into(),
            sized(1_000_000),
            peers::rtrb,
        )
        .quick(),
    );

    // The rest of the sweep, with crossbeam beside the other small payloads.
    for payload in PAYLOADS.into_iter().filter(|&p| p != PAYLOAD) {
        for trigger in Trigger::SWEEP {
            all.push(sweep_spec(payload, trigger));
        }
        match payload {
            8 => all.push(crossbeam_spec::<8>()),
            1024 => all.push(crossbeam_spec::<1024>()),
            _ => {}
        }
    }

    // Four senders into one receiver.
    let fan_in = |imp: &'static str, variant: &str, name: &str, run: fn(u64) -> _| {
        rate_spec(
            Pattern::FanIn,
            PAYLOAD,
            imp,
            variant,
            format!("{name}, {FAN_IN_SENDERS} senders"),
            SMALL,
            run,
        )
        .quick()
    };
    all.push(fan_in("asyncmsg", "t64", "asyncmsg trigger 64", |n| {
        asyncmsg_runs::fan_in_throughput(n, Shape::new(PAYLOAD, Trigger::Count(64)))
    }));
    all.push(fan_in(
        "crossbeam-channel",
        "bounded-4096",
        "crossbeam bounded(4096)",
        peers::crossbeam_fan_in,
    ));
    #[cfg(feature = "peers")]
    all.push(fan_in(
        "kanal",
        "bounded-4096",
        "kanal bounded(4096)",
        peers::kanal_fan_in,
    ));
    all.push(fan_in(
        "tokio-mpsc",
        "bounded-4096",
        "tokio mpsc(4096)",
        peers::tokio_fan_in,
    ));

    // Ping-pong latency, busy-polling and blocking.
    all.push(latency_spec(
        Pattern::LatencyBusy,
        "asyncmsg",
        "t1",
        "asyncmsg trigger 1, try_get spinning",
        BUSY_ROUND_TRIPS,
        |n| asyncmsg_runs::latency(n, PAYLOAD, Wait::Busy),
    ));
    all.push(latency_spec(
        Pattern::LatencyBusy,
        "crossbeam-channel",
        "try-recv",
        "crossbeam try_recv spinning",
        BUSY_ROUND_TRIPS,
        |n| peers::crossbeam_latency(n, Wait::Busy),
    ));
    #[cfg(feature = "peers")]
    all.push(latency_spec(
        Pattern::LatencyBusy,
        "rtrb",
        "pop",
        "rtrb pop spinning",
        BUSY_ROUND_TRIPS,
        peers::rtrb_latency,
    ));
    all.push(latency_spec(
        Pattern::LatencyBlocking,
        "asyncmsg",
        "t1",
        "asyncmsg trigger 1, blocking get",
        BLOCKING_ROUND_TRIPS,
        |n| asyncmsg_runs::latency(n, PAYLOAD, Wait::Blocking),
    ));
    all.push(latency_spec(
        Pattern::LatencyBlocking,
        "crossbeam-channel",
        "recv",
        "crossbeam recv",
        BLOCKING_ROUND_TRIPS,
        |n| peers::crossbeam_latency(n, Wait::Blocking),
    ));

    // The time trigger's lateness.
    all.push(latency_spec(
        Pattern::TimeTrigger,
        "asyncmsg",
        &format!("{}ms", asyncmsg_runs::TRIGGER_TIME.as_millis()),
        &format!("asyncmsg time trigger {:?}", asyncmsg_runs::TRIGGER_TIME),
        TRIGGER_SAMPLES,
        asyncmsg_runs::time_trigger,
    ));
    all
}

/// The id of an in-process cell.
fn id(pattern: Pattern, payload: usize, imp: &str, variant: &str) -> String {
    cell_id(Transport::InProcess, pattern, payload, imp, variant)
}

/// The in-process ratios, BENCH.md's targets first.
pub fn ratios() -> Vec<RatioSpec> {
    let tp = |imp: &str| format!("inproc/throughput/64B/{imp}");
    let mut all = vec![
        RatioSpec::new(
            &tp("asyncmsg-t64"),
            &tp("crossbeam-channel-bounded-4096"),
            Metric::Rate,
        )
        .target(Bound::AtLeast(3.0)),
        RatioSpec::new(
            &tp("asyncmsg-t64"),
            &tp("crossbeam-channel-vec-batch-64"),
            Metric::Rate,
        )
        .target(Bound::AtLeast(1.0)),
        RatioSpec::new(
            &tp("asyncmsg-t1"),
            &tp("crossbeam-channel-bounded-4096"),
            Metric::Rate,
        )
        .target(Bound::AtLeast(0.8)),
    ];

    // 64 B against the other peers.
    #[cfg(feature = "peers")]
    all.push(RatioSpec::new(
        &tp("asyncmsg-t64"),
        &tp("kanal-bounded-4096"),
        Metric::Rate,
    ));
    all.push(RatioSpec::new(
        &tp("asyncmsg-t64"),
        &tp("tokio-mpsc-bounded-4096"),
        Metric::Rate,
    ));
    #[cfg(feature = "peers")]
    all.push(RatioSpec::new(
        &tp("asyncmsg-t64"),
        &tp("rtrb-4096"),
        Metric::Rate,
    ));

    // 8 B and 1 KiB against crossbeam, as at 64 B.
    for payload in [8, 1024] {
        let crossbeam = id(
            Pattern::Throughput,
            payload,
            "crossbeam-channel",
            "bounded-4096",
        );
        for variant in ["t64", "t1"] {
            all.push(RatioSpec::new(
                &id(Pattern::Throughput, payload, "asyncmsg", variant),
                &crossbeam,
                Metric::Rate,
            ));
        }
    }

    // Fan-in.
    all.push(RatioSpec::new(
        &id(Pattern::FanIn, PAYLOAD, "asyncmsg", "t64"),
        &id(Pattern::FanIn, PAYLOAD, "crossbeam-channel", "bounded-4096"),
        Metric::Rate,
    ));

    // Latency, each mode against crossbeam in the same mode.
    for (pattern, theirs) in [
        (Pattern::LatencyBusy, "try-recv"),
        (Pattern::LatencyBlocking, "recv"),
    ] {
        for metric in [Metric::P50, Metric::P99] {
            all.push(RatioSpec::new(
                &id(pattern, PAYLOAD, "asyncmsg", "t1"),
                &id(pattern, PAYLOAD, "crossbeam-channel", theirs),
                metric,
            ));
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sweep_shape_delivers_in_order() {
        for payload in PAYLOADS {
            for trigger in Trigger::SWEEP {
                let shape = Shape::new(payload, trigger);
                for n in [0, 1, 63, 64, 65, 300] {
                    asyncmsg_runs::throughput(n, shape).unwrap_or_else(|e| {
                        panic!("{payload} B {} with {n} messages: {e:#}", trigger.label())
                    });
                }
            }
        }
    }

    #[test]
    fn fan_ins_deliver_every_senders_messages_in_order() {
        let shape = Shape::new(PAYLOAD, Trigger::Count(64));
        for n in [0, 1, 3, 4, 5, 1_001] {
            asyncmsg_runs::fan_in_throughput(n, shape)
                .unwrap_or_else(|e| panic!("asyncmsg with {n} messages: {e:#}"));
            peers::crossbeam_fan_in(n)
                .unwrap_or_else(|e| panic!("crossbeam with {n} messages: {e:#}"));
            peers::tokio_fan_in(n).unwrap_or_else(|e| panic!("tokio with {n} messages: {e:#}"));
            #[cfg(feature = "peers")]
            peers::kanal_fan_in(n).unwrap_or_else(|e| panic!("kanal with {n} messages: {e:#}"));
        }
    }

    #[test]
    fn one_to_one_peers_deliver_in_order() {
        for n in [0, 1, 4_097] {
            peers::crossbeam::<8>(n).unwrap();
            peers::crossbeam::<1024>(n).unwrap();
            peers::tokio_mpsc(n).unwrap();
            #[cfg(feature = "peers")]
            {
                peers::kanal(n).unwrap();
                peers::rtrb(n).unwrap();
            }
        }
    }

    #[test]
    fn ping_pongs_record_one_sample_per_round_trip() {
        for wait in [Wait::Busy, Wait::Blocking] {
            for run in [
                asyncmsg_runs::latency(20, PAYLOAD, wait).unwrap(),
                peers::crossbeam_latency(20, wait).unwrap(),
            ] {
                assert_eq!(run.rtt.as_ref().map(|h| h.count()), Some(20));
                assert_eq!(run.bytes, 20 * PAYLOAD as u64);
            }
        }
        #[cfg(feature = "peers")]
        assert_eq!(peers::rtrb_latency(20).unwrap().messages, 20);
    }

    #[test]
    fn time_trigger_is_never_early() {
        let run = asyncmsg_runs::time_trigger(5).unwrap();
        let late = run.rtt.expect("samples");
        assert_eq!(late.count(), 5);
        // Each sample waited the trigger time; the lateness is what follows.
        assert!(run.took >= asyncmsg_runs::TRIGGER_TIME * 5);
    }

    #[test]
    fn ids_are_unique_and_ratios_name_cells() {
        let ctx = Ctx::new().unwrap();
        let ids: Vec<String> = specs(&ctx).into_iter().map(|s| s.id).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        for id in [
            "inproc/throughput/64B/asyncmsg-t64",
            "inproc/throughput/64B/asyncmsg-t1",
            "inproc/throughput/64B/crossbeam-channel-bounded-4096",
            "inproc/throughput/64B/crossbeam-channel-vec-batch-64",
            "inproc/time-trigger/64B/asyncmsg-2ms",
        ] {
            assert!(ids.iter().any(|i| i == id), "{id}");
        }
        for r in ratios() {
            assert!(ids.contains(&r.numerator), "{}", r.numerator);
            assert!(ids.contains(&r.denominator), "{}", r.denominator);
        }
    }
}
