//! The QUIC cells as entries of the matrix (see [`crate::matrix`]).

use super::{QUIC_RATIOS, QuicCell, Sizes, run_cell};
use crate::matrix::{Bound, Ctx, Metric, Pattern, RatioSpec, Size, Spec, Transport, cell_id};

/// The implementation and its variant, as they appear in the id.
fn implementation(cell: QuicCell) -> (&'static str, &'static str) {
    match cell {
        QuicCell::AsyncmsgSmallTrigger64 => ("asyncmsg", "quic-t64"),
        QuicCell::AsyncmsgMib => ("asyncmsg", "quic-t4"),
        QuicCell::RawBatch64 => ("raw-quinn", "64-per-write"),
        QuicCell::RawPerMessage => ("raw-quinn", "1-per-write"),
        QuicCell::RawMib => ("raw-quinn", ""),
    }
}

/// The id of `cell` in the matrix.
pub(crate) fn id(cell: QuicCell) -> String {
    let (imp, variant) = implementation(cell);
    cell_id(
        Transport::Network,
        Pattern::Throughput,
        cell.payload(),
        imp,
        variant,
    )
}

/// The spec of one [`QuicCell`].
pub(crate) fn cell_spec(ctx: &Ctx, cell: QuicCell) -> Spec {
    let (imp, variant) = implementation(cell);
    let trust = ctx.trust.clone();
    let size = Size {
        full: Sizes::FULL.of(cell),
        quick: Sizes::QUICK.of(cell),
        tiny: Sizes::TINY.of(cell),
    };
    Spec::new(
        Transport::Network,
        Pattern::Throughput,
        cell.payload(),
        imp,
        variant,
        cell.name(),
        size,
        move |n| run_cell(cell, n, &trust),
    )
    .quick()
}

/// The network cells, in report order.
pub fn specs(ctx: &Ctx) -> Vec<Spec> {
    QuicCell::ALL.iter().map(|&c| cell_spec(ctx, c)).collect()
}

/// The network ratios, BENCH.md's targets first.
pub fn ratios() -> Vec<RatioSpec> {
    QUIC_RATIOS
        .iter()
        .map(|r| {
            let metric = if r.numerator.counts_bytes() {
                Metric::Bytes
            } else {
                Metric::Rate
            };
            let spec = RatioSpec::new(&id(r.numerator), &id(r.denominator), metric);
            match r.target {
                Some(t) => spec.target(Bound::AtLeast(t)),
                None => spec,
            }
        })
        .collect()
}
