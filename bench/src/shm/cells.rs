//! The shared-memory cells as entries of the matrix (see [`crate::matrix`]).

use super::asyncmsg::{self, Shape, Trigger};
use super::peers::{MIB, UDS_BATCH};
use super::process::Launcher;
use super::{ALLOC, Kind, Run, SMALL, ShmCell, Sizes, run_cell};
use crate::matrix::{
    Bound, Ctx, Metric, Pattern, RatioSpec, Size, Spec, Transport, cell_id, payload_label,
};

/// The matrix pattern `cell` measures.
fn pattern(cell: ShmCell) -> Pattern {
    match (cell.kind(), cell) {
        (Kind::Throughput, _) => Pattern::Throughput,
        (Kind::RoundTrip, _) => Pattern::RoundTrip,
        (Kind::Latency, ShmCell::AsyncmsgLatencyBlocking | ShmCell::EventfdPingPong) => {
            Pattern::LatencyBlocking
        }
        // A Unix socket ping-pong blocks in read; it is compared with both.
        (Kind::Latency, ShmCell::UnixSocketPingPong) => Pattern::LatencyBlocking,
        (Kind::Latency, _) => Pattern::LatencyBusy,
    }
}

/// The implementation and its variant, as they appear in the id.
fn implementation(cell: ShmCell) -> (&'static str, &'static str) {
    match cell {
        ShmCell::AsyncmsgSmallTrigger64 => ("asyncmsg", "t64"),
        ShmCell::AsyncmsgAllocThroughput => ("asyncmsg", "alloc"),
        ShmCell::AsyncmsgMibCopied => ("asyncmsg", "copied-put"),
        ShmCell::UnixSocketPerMessage => ("unix-socket", "1-per-write"),
        ShmCell::UnixSocketBatch64 => ("unix-socket", "64-per-write"),
        ShmCell::Memcpy => ("memcpy", "single-thread"),
        ShmCell::AsyncmsgLatencyBusy => ("asyncmsg", ""),
        ShmCell::AsyncmsgLatencyBlocking => ("asyncmsg", ""),
        ShmCell::AsyncmsgLatencyAlloc => ("asyncmsg", "alloc"),
        ShmCell::AtomicPingPong => ("atomic", "floor"),
        ShmCell::EventfdPingPong => ("eventfd", "floor"),
        ShmCell::UnixSocketPingPong => ("unix-socket", ""),
        ShmCell::AsyncmsgSyncRequestReply => ("asyncmsg", "sync"),
        ShmCell::UnixSocketRoundTrip => ("unix-socket", ""),
    }
}

/// The spec of one [`ShmCell`].
pub(crate) fn cell_spec(ctx: &Ctx, cell: ShmCell) -> Spec {
    let (imp, variant) = implementation(cell);
    let launcher = ctx.launcher.clone();
    let size = Size {
        full: Sizes::FULL.of(cell),
        quick: Sizes::QUICK.of(cell),
        tiny: Sizes::TINY.of(cell),
    };
    Spec::new(
        Transport::SharedMemory,
        pattern(cell),
        cell.payload(),
        imp,
        variant,
        cell.name(),
        size,
        move |n| run_cell(cell, n, &launcher),
    )
    .quick()
}

/// The shared-memory cells, in report order: the [`ShmCell`]s, the peers
/// iceoryx2 (with the `peers` feature) and POSIX message queues, asyncmsg's
/// payload × trigger sweep, four senders into one channel, and the time
/// trigger's lateness.
pub fn specs(ctx: &Ctx) -> Vec<Spec> {
    let mut all: Vec<Spec> = ShmCell::ALL.iter().map(|&c| cell_spec(ctx, c)).collect();
    all.extend(peer_specs(ctx));
    all.extend(sweep_specs(ctx));
    all.extend(fan_in_specs(ctx));
    all.push(time_trigger_spec(ctx));
    all
}

/// Messages per run of a throughput cell carrying `payload` bytes.
const fn size_for(payload: usize) -> Size {
    if payload >= MIB {
        Size {
            full: 5_000,
            quick: 1_000,
            tiny: 10,
        }
    } else if payload >= ALLOC {
        Size {
            full: 100_000,
            quick: 20_000,
            tiny: 100,
        }
    } else {
        Size {
            full: 2_000_000,
            quick: 300_000,
            tiny: 1_000,
        }
    }
}

/// Round trips per run of a ping-pong of a peer (the quick run is shorter
/// than asyncmsg's: the child's start takes its share).
const PEER_ROUND_TRIPS: Size = Size {
    full: 100_000,
    quick: 5_000,
    tiny: 50,
};

/// Messages per run of the peers that move a few hundred thousand messages
/// per second: the POSIX message queue (one system call per message on each
/// side, a queue of 10), a datagram per message, iceoryx2 with four
/// publishers.
const SLOW_MESSAGES: Size = Size {
    full: 1_000_000,
    quick: 50_000,
    tiny: 1_000,
};

/// Messages per run of iceoryx2's 64 B throughput cells (about a tenth of
/// asyncmsg's rate).
#[cfg(feature = "peers")]
const IOX_SMALL: Size = Size {
    full: 1_000_000,
    quick: 100_000,
    tiny: 1_000,
};

/// Samples per run of the time-trigger cell (each takes its 2 ms).
const TIME_SAMPLES: Size = Size {
    full: 1_000,
    quick: 150,
    tiny: 10,
};

/// Senders of the fan-in cells.
const SENDERS: u64 = 4;

#[allow(clippy::too_many_arguments)]
fn spec(
    ctx: &Ctx,
    pattern: Pattern,
    payload: usize,
    implementation: &'static str,
    variant: &str,
    name: String,
    size: Size,
    run: impl Fn(&Launcher, u64) -> anyhow::Result<Run> + Send + Sync + 'static,
) -> Spec {
    let launcher = ctx.launcher.clone();
    Spec::new(
        Transport::SharedMemory,
        pattern,
        payload,
        implementation,
        variant,
        name,
        size,
        move |n| run(&launcher, n),
    )
}

/// A payload as cell names spell it: `8 B`, `64 KiB`, `1 MiB`.
fn human(payload: usize) -> String {
    let label = payload_label(payload);
    let unit = label.trim_start_matches(|c: char| c.is_ascii_digit());
    format!("{} {unit}", &label[..label.len() - unit.len()])
}

/// Sets a latency run's bytes (the loops do not know the payload).
fn with_payload(mut run: Run, payload: usize) -> Run {
    run.bytes = run.messages * payload as u64;
    run
}

/// iceoryx2 (with the `peers` feature) and POSIX message queues.
fn peer_specs(ctx: &Ctx) -> Vec<Spec> {
    #[allow(unused_mut)]
    let mut all = Vec::new();
    #[cfg(feature = "peers")]
    {
        use super::iceoryx;
        for payload in [SMALL, ALLOC] {
            all.push(
                spec(
                    ctx,
                    Pattern::Throughput,
                    payload,
                    "iceoryx2",
                    "",
                    format!("iceoryx2 {} loan", human(payload)),
                    if payload == SMALL {
                        IOX_SMALL
                    } else {
                        size_for(payload)
                    },
                    move |l, n| iceoryx::throughput(l, n, payload, 1),
                )
                .quick(),
            );
        }
        all.push(
            spec(
                ctx,
                Pattern::LatencyBusy,
                SMALL,
                "iceoryx2",
                "",
                "iceoryx2 64 B busy-poll".into(),
                PEER_ROUND_TRIPS,
                |l, n| Ok(with_payload(iceoryx::latency(l, n)?, SMALL)),
            )
            .quick(),
        );
    }
    use super::mqueue;
    all.push(
        spec(
            ctx,
            Pattern::Throughput,
            SMALL,
            "posix-mq",
            "",
            "POSIX mq 64 B".into(),
            SLOW_MESSAGES,
            |l, n| mqueue::throughput(l, n, 1),
        )
        .quick(),
    );
    all.push(
        spec(
            ctx,
            Pattern::LatencyBlocking,
            SMALL,
            "posix-mq",
            "",
            "POSIX mq 64 B ping-pong".into(),
            PEER_ROUND_TRIPS,
            |l, n| Ok(with_payload(mqueue::latency(l, n)?, SMALL)),
        )
        .quick(),
    );
    all
}

/// The payloads of the sweep.
const SWEEP_PAYLOADS: [usize; 5] = [8, SMALL, 1024, ALLOC, MIB];

/// asyncmsg's payload × trigger sweep, heap buffers copied by the put (full
/// matrix only, but for 8 B trigger 64). 64 B trigger 64 is
/// [`ShmCell::AsyncmsgSmallTrigger64`], already among the cells.
fn sweep_specs(ctx: &Ctx) -> Vec<Spec> {
    let mut all = Vec::new();
    for payload in SWEEP_PAYLOADS {
        for trigger in Trigger::SWEEP {
            if payload == SMALL && trigger == Trigger::Count(64) {
                continue;
            }
            let shape = Shape::sweep(payload, trigger);
            let cell = spec(
                ctx,
                Pattern::Throughput,
                payload,
                "asyncmsg",
                &trigger.variant(),
                format!("asyncmsg shm {} {}", human(payload), trigger.label()),
                size_for(payload),
                move |l, n| asyncmsg::throughput(l, n, shape),
            );
            all.push(if payload == 8 && trigger == Trigger::Count(64) {
                cell.quick()
            } else {
                cell
            });
        }
    }
    all
}

/// Four senders, one process each, into one channel (or queue, or service).
fn fan_in_specs(ctx: &Ctx) -> Vec<Spec> {
    let mut all = vec![
        spec(
            ctx,
            Pattern::FanIn,
            SMALL,
            "asyncmsg",
            "t64",
            "asyncmsg shm 64 B trigger 64, 4 senders".into(),
            size_for(SMALL),
            |l, n| asyncmsg::fan_in(l, n, asyncmsg::SMALL_T64, SENDERS),
        )
        .quick(),
        spec(
            ctx,
            Pattern::FanIn,
            SMALL,
            "posix-mq",
            "",
            "POSIX mq 64 B, 4 senders".into(),
            SLOW_MESSAGES,
            |l, n| super::mqueue::throughput(l, n, SENDERS),
        )
        .quick(),
    ];
    for per_write in [1, UDS_BATCH] {
        all.push(
            spec(
                ctx,
                Pattern::FanIn,
                SMALL,
                "unix-socket",
                &format!("dgram-{per_write}-per-write"),
                format!("unix datagram socket 64 B {per_write} per write, 4 senders"),
                if per_write == 1 {
                    SLOW_MESSAGES
                } else {
                    size_for(SMALL)
                },
                move |l, n| super::peers::uds_fan_in(l, n, per_write, SENDERS),
            )
            .quick(),
        );
    }
    #[cfg(feature = "peers")]
    all.push(
        spec(
            ctx,
            Pattern::FanIn,
            SMALL,
            "iceoryx2",
            "",
            "iceoryx2 64 B loan, 4 publishers".into(),
            SLOW_MESSAGES,
            |l, n| super::iceoryx::throughput(l, n, SMALL, SENDERS),
        )
        .quick(),
    );
    all
}

/// The lateness of a 2 ms time trigger.
fn time_trigger_spec(ctx: &Ctx) -> Spec {
    spec(
        ctx,
        Pattern::TimeTrigger,
        SMALL,
        "asyncmsg",
        "2ms",
        "asyncmsg shm 2 ms time trigger".into(),
        TIME_SAMPLES,
        super::time_trigger::asyncmsg,
    )
    .quick()
}

/// The id of `cell` in the matrix.
pub(crate) fn id(cell: ShmCell) -> String {
    let (imp, variant) = implementation(cell);
    cell_id(
        Transport::SharedMemory,
        pattern(cell),
        cell.payload(),
        imp,
        variant,
    )
}

/// The shared-memory ratios: those of the [`ShmCell`]s (BENCH.md's targets
/// first), then those against iceoryx2 (with the `peers` feature) and the
/// POSIX message queue.
pub fn ratios() -> Vec<RatioSpec> {
    let mut all = cell_ratios();
    #[cfg(feature = "peers")]
    all.extend([
        RatioSpec::new(
            "shm/throughput/64B/asyncmsg-t64",
            "shm/throughput/64B/iceoryx2",
            Metric::Rate,
        )
        .target(Bound::AtLeast(10.0)),
        RatioSpec::new(
            "shm/latency-busy/64B/asyncmsg",
            "shm/latency-busy/64B/iceoryx2",
            Metric::P50,
        )
        .target(Bound::AtMost(1.0)),
        RatioSpec::new(
            "shm/latency-busy/64B/asyncmsg",
            "shm/latency-busy/64B/iceoryx2",
            Metric::P99,
        ),
        RatioSpec::new(
            "shm/throughput/64KiB/asyncmsg-alloc",
            "shm/throughput/64KiB/iceoryx2",
            Metric::Rate,
        )
        .target(Bound::AtLeast(1.0)),
        RatioSpec::new(
            "shm/fan-in-4/64B/asyncmsg-t64",
            "shm/fan-in-4/64B/iceoryx2",
            Metric::Rate,
        ),
    ]);
    all.extend([
        RatioSpec::new(
            "shm/throughput/64B/asyncmsg-t64",
            "shm/throughput/64B/posix-mq",
            Metric::Rate,
        ),
        RatioSpec::new(
            "shm/latency-blocking/64B/asyncmsg",
            "shm/latency-blocking/64B/posix-mq",
            Metric::P50,
        ),
        RatioSpec::new(
            "shm/fan-in-4/64B/asyncmsg-t64",
            "shm/fan-in-4/64B/posix-mq",
            Metric::Rate,
        ),
        RatioSpec::new(
            "shm/fan-in-4/64B/asyncmsg-t64",
            "shm/fan-in-4/64B/unix-socket-dgram-64-per-write",
            Metric::Rate,
        ),
        RatioSpec::new(
            "shm/fan-in-4/64B/asyncmsg-t64",
            "shm/throughput/64B/asyncmsg-t64",
            Metric::Rate,
        ),
    ]);
    all
}

/// The ratios of the [`ShmCell`]s ([`super::SHM_RATIOS`]).
fn cell_ratios() -> Vec<RatioSpec> {
    super::SHM_RATIOS
        .iter()
        .map(|r| {
            let metric = match r.metric {
                super::Metric::Rate => Metric::Rate,
                super::Metric::P50 => Metric::P50,
                super::Metric::P99 => Metric::P99,
            };
            let spec = RatioSpec::new(&id(r.numerator), &id(r.denominator), metric);
            match r.target {
                Some(t) if metric.higher_is_better() => spec.target(Bound::AtLeast(t)),
                Some(t) => spec.target(Bound::AtMost(t)),
                None => spec,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn payloads_are_spelled_for_names() {
        assert_eq!(human(8), "8 B");
        assert_eq!(human(64), "64 B");
        assert_eq!(human(1024), "1 KiB");
        assert_eq!(human(ALLOC), "64 KiB");
        assert_eq!(human(MIB), "1 MiB");
    }

    #[test]
    fn cells_are_named_once_per_pattern_and_the_sweep_is_full_only() {
        let ctx = Ctx::with_launcher(Launcher::new("false", Vec::<String>::new())).unwrap();
        let specs = specs(&ctx);
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        for s in &specs {
            assert!(names.insert((s.pattern, s.name.clone())), "{}", s.name);
            assert!(ids.insert(s.id.clone()), "{}", s.id);
        }
        for r in ratios() {
            assert!(ids.contains(&r.numerator), "{}", r.numerator);
            assert!(ids.contains(&r.denominator), "{}", r.denominator);
        }
        // The sweep: 5 payloads × 4 triggers, 64 B trigger 64 being the
        // existing cell; of it only 8 B trigger 64 in the quick matrix.
        let sweep: Vec<&Spec> = specs
            .iter()
            .filter(|s| {
                s.pattern == Pattern::Throughput
                    && s.is_asyncmsg()
                    && (s.id.ends_with("-t1")
                        || s.id.ends_with("-t16")
                        || s.id.ends_with("-t64")
                        || s.id.ends_with("-flush-only"))
            })
            .collect();
        assert_eq!(sweep.len(), 20);
        let quick: Vec<&str> = sweep
            .iter()
            .filter(|s| s.in_quick)
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(
            quick,
            [
                "shm/throughput/64B/asyncmsg-t64",
                "shm/throughput/8B/asyncmsg-t64"
            ]
        );
        assert!(ids.contains("shm/time-trigger/64B/asyncmsg-2ms"));
        assert!(ids.contains("shm/fan-in-4/64B/asyncmsg-t64"));
    }
}
