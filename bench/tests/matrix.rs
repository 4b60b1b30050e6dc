//! Every cell of the matrix runs at [`Scale::Tiny`] and checks what arrived;
//! every ratio names two cells that exist; ids are unique. With
//! `--features peers` this covers every peer library too.
//!
//! A plain `main` (no libtest harness): the shared-memory cells start this
//! binary again as their second process, which [`shm::child_main`] catches
//! first thing.

use std::collections::HashSet;
use std::time::Instant;

use asyncmsg_bench::matrix::{self, Ctx, Scale, TINY_LIMIT, run_matrix};
use asyncmsg_bench::shm::{self, RUNTIME_DIR_ENV, RuntimeDir};

fn main() {
    shm::child_main();
    let runtime = RuntimeDir::create().expect("a runtime directory");
    // SAFETY: no other thread has been started yet.
    unsafe { std::env::set_var(RUNTIME_DIR_ENV, runtime.path()) };
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));

    let ctx = Ctx::new().expect("a bench context");
    let specs: Vec<_> = matrix::specs(&ctx)
        .into_iter()
        .filter(|s| filter.as_ref().is_none_or(|f| s.id.contains(f.as_str())))
        .collect();
    let ratios = matrix::ratios();

    let mut ids = HashSet::new();
    for s in matrix::specs(&ctx) {
        assert!(ids.insert(s.id.clone()), "duplicate cell id {}", s.id);
    }
    for r in &ratios {
        for id in [&r.numerator, &r.denominator] {
            assert!(ids.contains(id), "ratio names unknown cell {id}");
        }
    }

    // MATRIX_SCALE=quick (or full) runs the cells at that size and prints
    // their figures: a look at them, no benchmark (one round, no pairing).
    let scale = match std::env::var("MATRIX_SCALE").as_deref() {
        Ok("quick") => Scale::Quick,
        Ok("full") => Scale::Full,
        _ => Scale::Tiny,
    };
    let mut failed = Vec::new();
    for spec in &specs {
        let began = Instant::now();
        let report = run_matrix(std::slice::from_ref(spec), &[], 1, scale, |_| {});
        let cell = &report.cells[0];
        let took = began.elapsed();
        match &cell.error {
            Some(e) => {
                println!("cell {} ... FAILED: {e}", spec.id);
                failed.push(spec.id.clone());
            }
            None => {
                let f = cell.per_round[0].expect("a measured round");
                assert!(f.messages_per_s > 0.0, "{}", spec.id);
                if !spec.pattern.is_rate() {
                    let h = cell.samples.as_ref().expect("samples of a time cell");
                    assert_eq!(h.count(), cell.messages, "{}", spec.id);
                }
                if scale == Scale::Tiny {
                    assert!(took < TINY_LIMIT, "{} took {took:?}", spec.id);
                }
                println!(
                    "cell {} ... ok ({took:.1?}): {:.3} M msg/s, {:.1} MB/s{}",
                    spec.id,
                    f.messages_per_s / 1e6,
                    f.bytes_per_s / 1e6,
                    f.p50_ns
                        .map(|p| format!(", p50 {p:.0} ns, p99 {:.0} ns", f.p99_ns.unwrap_or(0.0)))
                        .unwrap_or_default()
                );
            }
        }
    }
    drop(runtime);
    assert!(failed.is_empty(), "cells failed: {failed:?}");
    println!("{} cells ok", specs.len());
}
