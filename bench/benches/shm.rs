//! Shared memory between two processes: asyncmsg over `shm://` beside a Unix
//! socket pair, an eventfd and an atomic ping-pong, and memcpy; and asyncmsg's
//! synchronous request/reply beside a Unix socket round trip (see
//! `asyncmsg_bench::shm`).
//!
//! The binary starts itself again as the second process of every cell, so
//! `main` first checks whether it is such a child. Then three criterion groups
//! (throughput; latency with one iteration being one one-way trip; and
//! request/reply with one iteration being one round trip; the p50 and p99 of
//! the last two are printed after each group, from histograms kept here, since
//! criterion reports means), and last the cells interleaved in rounds with the
//! ratios BENCH.md sets targets for, as a markdown table on stdout (5 short
//! rounds with `--quick`, 7 full ones otherwise; `ASYNCMSG_BENCH_MATRIX=0`
//! skips it).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use asyncmsg_bench::shm::{
    self, ALLOC, Histogram, Kind, Launcher, MIB, RUNTIME_DIR_ENV, RuntimeDir, SMALL, ShmCell,
    Sizes, run_cell,
};
use criterion::{BenchmarkId, Criterion, Throughput};

/// Messages per criterion iteration of a throughput cell, by payload.
fn per_iter(cell: ShmCell) -> u64 {
    match cell.payload() {
        SMALL => 1_000,
        ALLOC => 64,
        MIB => 4,
        _ => 1,
    }
}

fn throughput(c: &mut Criterion, launcher: &Launcher) {
    let mut group = c.benchmark_group("shm_throughput");
    for cell in ShmCell::ALL
        .into_iter()
        .filter(|c| c.kind() == Kind::Throughput)
    {
        let per = per_iter(cell);
        group.throughput(if cell.counts_bytes() {
            Throughput::Bytes(per * cell.payload() as u64)
        } else {
            Throughput::Elements(per)
        });
        group.bench_function(BenchmarkId::from_parameter(cell.name()), |b| {
            b.iter_custom(|iters| {
                run_cell(cell, iters * per, launcher)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", cell.name()))
                    .criterion_time()
            })
        });
    }
    group.finish();
}

/// The criterion group of the `kind` cells (latency or round trip), then
/// their p50 and p99 over every run, as the cells report them (`what`).
fn latency(c: &mut Criterion, launcher: &Launcher, kind: Kind, group: &str, what: &str) {
    let seen: RefCell<HashMap<ShmCell, Histogram>> = RefCell::default();
    let cells: Vec<ShmCell> = ShmCell::ALL
        .into_iter()
        .filter(|c| c.kind() == kind)
        .collect();
    let mut group = c.benchmark_group(group);
    for &cell in &cells {
        group.bench_function(BenchmarkId::from_parameter(cell.name()), |b| {
            b.iter_custom(|iters| {
                let run = run_cell(cell, iters, launcher)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", cell.name()));
                if let Some(h) = &run.rtt {
                    seen.borrow_mut().entry(cell).or_default().merge(h);
                }
                run.criterion_time()
            })
        });
    }
    group.finish();
    let seen = seen.borrow();
    println!("\n{what} over every criterion run:");
    for cell in cells {
        if let Some(h) = seen.get(&cell) {
            println!(
                "  {:<40} p50 {:>9.0} ns   p99 {:>9.0} ns   ({} round trips)",
                cell.name(),
                cell.reported_ns(h.quantile(0.50)),
                cell.reported_ns(h.quantile(0.99)),
                h.count()
            );
        }
    }
}

fn main() {
    // A child of a cell plays its role and exits here.
    shm::child_main();

    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let runtime = RuntimeDir::create().expect("creating the runtime directory");
    // SAFETY: no other thread has been started yet; children inherit it.
    unsafe { std::env::set_var(RUNTIME_DIR_ENV, runtime.path()) };
    let launcher = Launcher::current_exe().expect("finding this executable");

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args();
    throughput(&mut c, &launcher);
    latency(
        &mut c,
        &launcher,
        Kind::Latency,
        "shm_latency_one_way",
        "one-way latency (round trip / 2)",
    );
    latency(
        &mut c,
        &launcher,
        Kind::RoundTrip,
        "shm_request_reply_round_trip",
        "request/reply round trip",
    );
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
    let report = shm::run_shm_matrix(&ShmCell::ALL, rounds, &sizes, &launcher, |step| {
        eprintln!("shm matrix: {step}")
    })
    .unwrap_or_else(|e| panic!("shm matrix: {e:#}"));
    println!("\n{}", report.markdown());
}
