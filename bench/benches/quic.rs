//! The network cells on loopback, one criterion group: every cell of
//! `asyncmsg_bench::quic::specs` (asyncmsg over `quic://` at 64 B trigger 64
//! and 1 MiB, and its payload × trigger sweep; raw quinn with the same TLS;
//! TCP; zmq PUSH/PULL with the `peers` feature), see `asyncmsg_bench::quic`.
//!
//! One iteration moves a cell's tiny-scale count of messages; each sample is
//! one run, with its own nodes, endpoints or sockets, whose setup is not
//! timed. Bytes/s for payloads of 64 KiB and more, messages/s below. The
//! cells interleaved in rounds, with their ratios, are `cargo xtask bench`'s
//! job.

use std::time::Duration;

use asyncmsg_bench::matrix::{Ctx, Scale};
use asyncmsg_bench::quic;
use asyncmsg_bench::shm::{RUNTIME_DIR_ENV, RuntimeDir};
use criterion::{BenchmarkId, Criterion, Throughput};

fn main() {
    // asyncmsg publishes channel names host-wide too: under a runtime
    // directory of this run's own.
    let runtime = RuntimeDir::create().expect("creating the runtime directory");
    // SAFETY: no other thread has been started yet.
    unsafe { std::env::set_var(RUNTIME_DIR_ENV, runtime.path()) };
    let ctx = Ctx::new().expect("a bench context");

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args();
    let mut group = c.benchmark_group("net_throughput");
    for spec in quic::specs(&ctx) {
        let per = spec.size.of(Scale::Tiny).max(1);
        group.throughput(if spec.payload >= 64 << 10 {
            Throughput::Bytes(per * spec.payload as u64)
        } else {
            Throughput::Elements(per)
        });
        group.bench_function(BenchmarkId::from_parameter(&spec.id), |b| {
            b.iter_custom(|iters| {
                (spec.run)(iters * per)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", spec.id))
                    .criterion_time()
            })
        });
    }
    group.finish();
    c.final_summary();
    drop(runtime);
}
