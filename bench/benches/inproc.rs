//! Every in-process cell of the matrix (`asyncmsg_bench::inproc::specs`),
//! one criterion group per pattern, running exactly the matrix's code.
//!
//! - throughput and fan-in: one iteration moves [`per_iter`] messages;
//!   criterion's linear sampling runs many iterations in one run, so the fixed
//!   cost of a run (threads, the final flush) falls out of the slope;
//! - latency: one iteration is one round trip, timed as half of it (one way);
//! - time trigger: one iteration is one sample, timed as its lateness after
//!   the deadline (not the 2 ms wait). The p50 and p99 of the time cells are
//!   printed after their group (criterion reports means).
//!
//! Every run checks the count and order of what arrived; a run that fails
//! (e.g. asyncmsg [stalled](asyncmsg_bench::Stalled)) is retried up to
//! [`RETRIES`] times, reported on stderr, and not counted.
//!
//! `cargo bench -p asyncmsg-bench --bench inproc -- <filter>` picks cells by
//! their id (`throughput/64B`, `fan-in`, `latency-busy`, …); build with
//! `--features peers` for kanal and rtrb.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use asyncmsg_bench::matrix::{Ctx, Pattern, Spec};
use asyncmsg_bench::shm::{Histogram, Run};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

/// Failed runs retried within one criterion sample before the bench fails.
const RETRIES: u32 = 5;

/// Messages per criterion iteration of a rate cell, by payload.
fn per_iter(spec: &Spec) -> u64 {
    match spec.pattern {
        Pattern::Throughput | Pattern::FanIn if spec.payload >= 64 * 1024 => 4,
        Pattern::Throughput | Pattern::FanIn => 64,
        _ => 1,
    }
}

/// Runs `spec` with `n` messages, retrying failed runs.
fn run(spec: &Spec, n: u64) -> Run {
    let mut failures = 0;
    loop {
        match (spec.run)(n) {
            Ok(run) => return run,
            Err(e) if failures < RETRIES => {
                failures += 1;
                eprintln!("warning: {}: run failed and is retried: {e:#}", spec.id);
            }
            Err(e) => panic!("{}: {e:#}", spec.id),
        }
    }
}

/// The time criterion is given for `run` of `spec`.
fn criterion_time(spec: &Spec, run: &Run) -> Duration {
    match spec.pattern {
        // The sum of the samples: how late the trigger fired, in all.
        Pattern::TimeTrigger => run.rtt.as_ref().map_or(run.took, |h| {
            Duration::from_nanos((h.mean() * h.count() as f64) as u64)
        }),
        _ => run.criterion_time(),
    }
}

fn inproc(c: &mut Criterion) {
    let ctx = Ctx::new().expect("a bench context");
    let specs = asyncmsg_bench::inproc::specs(&ctx);
    for pattern in Pattern::ALL {
        if !specs.iter().any(|s| s.pattern == pattern) {
            continue;
        }
        let seen: RefCell<BTreeMap<String, Histogram>> = RefCell::default();
        let mut group = c.benchmark_group(format!("inproc_{}", pattern.id()));
        if pattern == Pattern::TimeTrigger {
            // Criterion sizes its runs by the time it is given, the lateness
            // (some 100 µs per sample), while each sample takes over 2 ms.
            group
                .sample_size(10)
                .sampling_mode(SamplingMode::Flat)
                .warm_up_time(Duration::from_millis(50))
                .measurement_time(Duration::from_millis(300));
        }
        for spec in specs.iter().filter(|s| s.pattern == pattern) {
            let per = per_iter(spec);
            let label = spec
                .id
                .split_once(&format!("{}/", pattern.id()))
                .map_or(spec.id.as_str(), |(_, rest)| rest);
            if pattern.is_rate() {
                group.throughput(if spec.payload >= 64 * 1024 {
                    Throughput::Bytes(per * spec.payload as u64)
                } else {
                    Throughput::Elements(per)
                });
            } else if pattern != Pattern::TimeTrigger {
                group.throughput(Throughput::Elements(1));
            }
            group.bench_function(BenchmarkId::from_parameter(label), |b| {
                b.iter_custom(|iters| {
                    let run = run(spec, iters * per);
                    if let Some(h) = &run.rtt {
                        seen.borrow_mut()
                            .entry(spec.id.clone())
                            .or_default()
                            .merge(h);
                    }
                    criterion_time(spec, &run)
                })
            });
        }
        group.finish();
        for (id, h) in seen.borrow().iter() {
            println!(
                "{id}: p50 {:.0} ns, p99 {:.0} ns over {} samples{}",
                pattern.reported_ns(h.quantile(0.50)),
                pattern.reported_ns(h.quantile(0.99)),
                h.count(),
                if pattern == Pattern::TimeTrigger {
                    " (late after the deadline)"
                } else {
                    " (one way)"
                }
            );
        }
    }
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
