//! In-process throughput at 64 B: asyncmsg (trigger 1 and 64) against
//! crossbeam-channel and crossbeam carrying reused `Vec` batches of 64, in one
//! criterion group.
//!
//! One iteration moves [`PER_ITER`] messages; criterion's linear sampling runs
//! many iterations in one [`asyncmsg_bench::run`], so the fixed cost of a run
//! (thread wake-ups, the final flush) falls out of the slope. Every run checks
//! the count and order of what arrived. A run in which asyncmsg lost a trigger
//! ([`asyncmsg_bench::Stalled`]) is retried and reported on stderr; its time is
//! not counted.

use std::time::Duration;

use asyncmsg_bench::{Cell, PAYLOAD, run_retrying};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Messages per criterion iteration.
const PER_ITER: u64 = 64;

fn inproc(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("inproc_{PAYLOAD}B"));
    group.throughput(Throughput::Elements(PER_ITER));
    for cell in Cell::ALL {
        group.bench_function(BenchmarkId::from_parameter(cell.name()), |b| {
            b.iter_custom(|iters| {
                let (took, stalls) = run_retrying(cell, iters * PER_ITER, 5)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", cell.name()));
                if stalls > 0 {
                    eprintln!(
                        "warning: {}: {stalls} run(s) stalled (lost trigger or wake-up) and were retried",
                        cell.name()
                    );
                }
                took
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = inproc
}
criterion_main!(benches);
