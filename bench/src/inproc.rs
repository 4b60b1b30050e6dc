//! In-process cells of the matrix: asyncmsg between two threads of one
//! process beside the channels people use instead (see [`crate::matrix`]).

use crate::matrix::{Bound, Ctx, Metric, Pattern, RatioSpec, Size, Spec, Transport};
use crate::shm::Run;
use crate::{Cell, PAYLOAD, run_retrying};

/// Stalled asyncmsg runs retried within one run before it fails.
const STALL_RETRIES: u32 = 3;

/// Messages per run of the 64 B throughput cells.
const SMALL: Size = Size {
    full: 2_000_000,
    quick: 500_000,
    tiny: 1_000,
};

fn cell_spec(cell: Cell, implementation: &'static str, variant: &str) -> Spec {
    Spec::new(
        Transport::InProcess,
        Pattern::Throughput,
        PAYLOAD,
        implementation,
        variant,
        cell.name(),
        SMALL,
        move |n| {
            let (took, _) = run_retrying(cell, n, STALL_RETRIES)?;
            Ok(Run::throughput(n, PAYLOAD, took))
        },
    )
    .quick()
}

/// The in-process cells, in report order.
pub fn specs(_ctx: &Ctx) -> Vec<Spec> {
    vec![
        cell_spec(Cell::AsyncmsgTrigger1, "asyncmsg", "t1"),
        cell_spec(Cell::AsyncmsgTrigger64, "asyncmsg", "t64"),
        cell_spec(Cell::Crossbeam, "crossbeam-channel", "bounded-4096"),
        cell_spec(
            Cell::CrossbeamVecBatch64,
            "crossbeam-channel",
            "vec-batch-64",
        ),
    ]
}

/// The in-process ratios, BENCH.md's targets first.
pub fn ratios() -> Vec<RatioSpec> {
    let id = |imp: &str| format!("inproc/throughput/64B/{imp}");
    vec![
        RatioSpec::new(
            &id("asyncmsg-t64"),
            &id("crossbeam-channel-bounded-4096"),
            Metric::Rate,
        )
        .target(Bound::AtLeast(3.0)),
        RatioSpec::new(
            &id("asyncmsg-t64"),
            &id("crossbeam-channel-vec-batch-64"),
            Metric::Rate,
        )
        .target(Bound::AtLeast(1.0)),
        RatioSpec::new(
            &id("asyncmsg-t1"),
            &id("crossbeam-channel-bounded-4096"),
            Metric::Rate,
        )
        .target(Bound::AtLeast(0.8)),
    ]
}
