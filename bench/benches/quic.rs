//! QUIC on loopback: asyncmsg between two nodes over `quic://` (64 B with
//! trigger 64, and 1 MiB) beside raw quinn with the same TLS and transport
//! settings (64 B frames 64 per `write_all` and one per `write_all`, and
//! 1 MiB frames), see `asyncmsg_bench::quic`.
//!
//! One criterion group (one iteration moves a fixed number of messages; each
//! sample is one run, with its own nodes or endpoints, whose setup is not
//! timed), then the cells interleaved in rounds with the ratios BENCH.md sets
//! targets for, as a markdown table on stdout (5 short rounds with `--quick`,
//! 7 full ones otherwise; `ASYNCMSG_BENCH_MATRIX=0` skips it).

use std::time::Duration;

use asyncmsg_bench::quic::{self, MIB, QuicCell, RAW_BATCH, Sizes, TrustHome, run_cell};
use asyncmsg_bench::shm::{RUNTIME_DIR_ENV, RuntimeDir};
use criterion::{BenchmarkId, Criterion, Throughput};

/// Messages per criterion iteration of a cell.
fn per_iter(cell: QuicCell) -> u64 {
    match cell {
        QuicCell::RawPerMessage => 100,
        c if c.payload() == MIB => 4,
        _ => 50 * RAW_BATCH as u64,
    }
}

fn throughput(c: &mut Criterion, home: &TrustHome) {
    let mut group = c.benchmark_group("quic_throughput");
    for cell in QuicCell::ALL {
        let per = per_iter(cell);
        group.throughput(if cell.counts_bytes() {
            Throughput::Bytes(per * cell.payload() as u64)
        } else {
            Throughput::Elements(per)
        });
        group.bench_function(BenchmarkId::from_parameter(cell.name()), |b| {
            b.iter_custom(|iters| {
                run_cell(cell, iters * per, home)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", cell.name()))
                    .criterion_time()
            })
        });
    }
    group.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // asyncmsg publishes channel names host-wide too: under a runtime
    // directory of this run's own.
    let runtime = RuntimeDir::create().expect("creating the runtime directory");
    // SAFETY: no other thread has been started yet.
    unsafe { std::env::set_var(RUNTIME_DIR_ENV, runtime.path()) };
    let home = TrustHome::create().expect("creating the trust root");

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args();
    throughput(&mut c, &home);
    c.final_summary();

    let listing = has("--list") || has("--test");
    if listing || std::env::var("ASYNCMSG_BENCH_MATRIX").is_ok_and(|v| v == "0") {
        return;
    }
    let (rounds, sizes) = if has("--quick") {
        (5, Sizes::QUICK)
    } else {
        (7, Sizes::FULL)
    };
    let report = quic::run_quic_matrix(&QuicCell::ALL, rounds, &sizes, &home, |step| {
        eprintln!("quic matrix: {step}")
    })
    .unwrap_or_else(|e| panic!("quic matrix: {e:#}"));
    println!("\n{}", report.markdown());
}
