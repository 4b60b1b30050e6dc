//! Shared memory between two processes: every shared-memory cell of the
//! matrix (`asyncmsg_bench::shm::specs`: asyncmsg over `shm://` and its
//! payload × trigger sweep, iceoryx2 with the `peers` feature, POSIX message
//! queues, Unix sockets, the eventfd and atomic floors, memcpy) as criterion
//! benchmarks, one group per pattern. The runs are the matrix's own, so the
//! figures mean what they mean in `cargo xtask bench`, which also runs the
//! cells interleaved and reports the ratios.
//!
//! The binary starts itself again as the second process of every cell, so
//! `main` first checks whether it is such a child. An iteration is one
//! message (rate cells; bytes for payloads of 64 KiB and more), one one-way
//! trip (latency cells: half a round trip), one round trip, or one
//! time-trigger sample (its lateness); after each time group the p50 and p99 over every run
//! are printed, since criterion reports means.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use asyncmsg_bench::matrix::{Ctx, Pattern, Spec};
use asyncmsg_bench::shm::{self, Histogram, Launcher, RUNTIME_DIR_ENV, Run, RuntimeDir};
use criterion::{BenchmarkId, Criterion, Throughput};

/// Messages per criterion iteration of a rate cell, by payload.
fn per_iter(spec: &Spec) -> u64 {
    if !spec.pattern.is_rate() {
        1
    } else if spec.payload >= shm::MIB {
        4
    } else if spec.payload >= shm::ALLOC {
        64
    } else {
        1_000
    }
}

/// The time criterion is given for `run`: its timed span, half of it for a
/// ping-pong (one way), and for the time trigger the lateness of its samples
/// together (not the 2 ms each waits by design).
fn criterion_time(pattern: Pattern, run: &Run) -> Duration {
    match (pattern, &run.rtt) {
        (Pattern::LatencyBusy | Pattern::LatencyBlocking, _) => run.took / 2,
        (Pattern::TimeTrigger, Some(late)) => {
            Duration::from_nanos((late.mean() * late.count() as f64) as u64)
        }
        _ => run.took,
    }
}

fn group(c: &mut Criterion, pattern: Pattern, specs: &[&Spec]) {
    let seen: RefCell<HashMap<String, Histogram>> = RefCell::default();
    let mut group = c.benchmark_group(format!("shm_{}", pattern.id()));
    for spec in specs {
        let per = per_iter(spec);
        if pattern.is_rate() {
            group.throughput(if spec.payload >= shm::ALLOC {
                Throughput::Bytes(per * spec.payload as u64)
            } else {
                Throughput::Elements(per)
            });
        }
        group.bench_function(BenchmarkId::from_parameter(&spec.name), |b| {
            b.iter_custom(|iters| {
                let run = (spec.run)(iters * per).unwrap_or_else(|e| panic!("{}: {e:#}", spec.id));
                if let Some(h) = &run.rtt {
                    seen.borrow_mut()
                        .entry(spec.id.clone())
                        .or_default()
                        .merge(h);
                }
                criterion_time(pattern, &run)
            })
        });
    }
    group.finish();
    let seen = seen.borrow();
    if pattern.is_rate() || seen.is_empty() {
        return;
    }
    println!("\n{} over every criterion run:", pattern.title());
    for spec in specs {
        if let Some(h) = seen.get(&spec.id) {
            println!(
                "  {:<44} p50 {:>9.0} ns   p99 {:>9.0} ns   ({} samples)",
                spec.id,
                pattern.reported_ns(h.quantile(0.50)),
                pattern.reported_ns(h.quantile(0.99)),
                h.count()
            );
        }
    }
}

fn main() {
    // A child of a cell plays its role and exits here.
    shm::child_main();

    let runtime = RuntimeDir::create().expect("creating the runtime directory");
    // SAFETY: no other thread has been started yet; children inherit it.
    unsafe { std::env::set_var(RUNTIME_DIR_ENV, runtime.path()) };
    let launcher = Launcher::current_exe().expect("finding this executable");
    let ctx = Ctx::with_launcher(launcher).expect("a bench context");
    let specs = shm::specs(&ctx);

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args();
    for pattern in Pattern::ALL {
        let cells: Vec<&Spec> = specs.iter().filter(|s| s.pattern == pattern).collect();
        if !cells.is_empty() {
            group(&mut c, pattern, &cells);
        }
    }
    c.final_summary();
    drop(runtime);
}
