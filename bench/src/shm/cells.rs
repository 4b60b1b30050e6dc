//! The shared-memory cells as entries of the matrix (see [`crate::matrix`]).

use super::{Kind, ShmCell, Sizes, run_cell};
use crate::matrix::{Bound, Ctx, Metric, Pattern, RatioSpec, Size, Spec, Transport, cell_id};

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

/// The shared-memory cells, in report order.
pub fn specs(ctx: &Ctx) -> Vec<Spec> {
    ShmCell::ALL.iter().map(|&c| cell_spec(ctx, c)).collect()
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

/// The shared-memory ratios, BENCH.md's targets first.
pub fn ratios() -> Vec<RatioSpec> {
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
