//! Stress: the harness's asyncmsg runs under CPU contention (run by
//! `cargo xtask stress`). Busy threads make the sender, the receiver and the
//! delivery thread get preempted at odd points, which is what exposed lost
//! triggers and lost wake-ups (see `asyncmsg_bench::Stalled`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use asyncmsg_bench::{Cell, is_stall, run};

/// Runs `f` while two threads spin, to steal CPU time from it.
fn under_load<T>(f: impl FnOnce() -> T) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let out = f();
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        h.join().expect("a hog thread panicked");
    }
    out
}

#[test]
#[ignore = "stress: tens of millions of messages under CPU contention; cargo xtask stress"]
fn asyncmsg_runs_never_stall_under_cpu_load() {
    let mut stalls = Vec::new();
    under_load(|| {
        for cell in [Cell::AsyncmsgTrigger64, Cell::AsyncmsgTrigger1] {
            for round in 0..30 {
                match run(cell, 500_000) {
                    Ok(_) => {}
                    Err(e) if is_stall(&e) => {
                        stalls.push(format!("{} round {round}: {e}", cell.name()))
                    }
                    Err(e) => panic!("{} round {round}: {e:#}", cell.name()),
                }
            }
        }
    });
    assert!(
        stalls.is_empty(),
        "{} stalled runs:\n{}",
        stalls.len(),
        stalls.join("\n")
    );
}
