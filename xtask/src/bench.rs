//! `cargo xtask bench`: the in-process throughput matrix, then the
//! shared-memory (two-process) matrix, then the QUIC (loopback) matrix, run
//! through the same harness as the criterion benches (`asyncmsg_bench`,
//! `asyncmsg_bench::shm`, `asyncmsg_bench::quic`).
//!
//! Cells run interleaved, round by round, so that a machine that slows down
//! for a while slows every cell alike; ratios are taken per round (paired) and
//! summarised as median and min–max.
//!
//! The shared-memory cells start this program again as their second process;
//! `main` calls `asyncmsg_bench::shm::child_main` first thing for that, and
//! gives the run a runtime directory of its own.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use asyncmsg_bench::quic::{self, QuicCell, TrustHome, run_quic_matrix};
use asyncmsg_bench::shm::{Launcher, ShmCell, Sizes, run_shm_matrix};
use asyncmsg_bench::{Cell, Summary, TARGETS, pingpong_one_way, run_retrying};

use crate::report::{CellResult, Meta, QuicSection, RatioResult, Results, ShmSection};

/// Stalled runs retried per run before giving up.
const RETRIES: u32 = 10;

/// What `cargo xtask bench` was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) runs: usize,
    pub(crate) messages: u64,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Options> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut opts = Options {
            quick,
            runs: if quick { 5 } else { 7 },
            messages: if quick { 500_000 } else { 2_000_000 },
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => {}
                "--runs" => opts.runs = value(&mut it, "--runs")?,
                "--messages" => opts.messages = value(&mut it, "--messages")?,
                other => bail!("unknown option {other:?} for bench"),
            }
        }
        if opts.runs < 5 {
            bail!("--runs must be at least 5 (medians of fewer runs mean little here)");
        }
        if opts.messages == 0 {
            bail!("--messages must be at least 1");
        }
        Ok(opts)
    }

    /// Messages or round trips per run of each shared-memory cell.
    pub(crate) fn shm_sizes(&self) -> Sizes {
        if self.quick {
            Sizes::QUICK
        } else {
            Sizes::FULL
        }
    }

    /// Messages per run of each QUIC cell.
    pub(crate) fn quic_sizes(&self) -> quic::Sizes {
        if self.quick {
            quic::Sizes::QUICK
        } else {
            quic::Sizes::FULL
        }
    }
}

fn value<T: std::str::FromStr>(it: &mut std::slice::Iter<'_, String>, name: &str) -> Result<T> {
    let v = it.next().with_context(|| format!("{name} needs a value"))?;
    v.replace('_', "")
        .parse()
        .ok()
        .with_context(|| format!("{name}: {v:?} is not a number"))
}

/// A one-line progress display on stderr.
struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    tty: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress {
            total,
            done: 0,
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Shows `what` as the step now running.
    fn show(&self, what: &str) {
        let elapsed = self.started.elapsed();
        let left = if self.done == 0 {
            "?".to_string()
        } else {
            let per = elapsed.as_secs_f64() / self.done as f64;
            format!("~{:.0}s", per * (self.total - self.done) as f64)
        };
        let line = format!(
            "[{:>3}/{}] {what} | {:.0}s elapsed, {left} left",
            self.done + 1,
            self.total,
            elapsed.as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn step_done(&mut self) {
        self.done += 1;
    }

    fn finish(&self) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(
            err,
            "bench: {} steps in {:.1}s",
            self.total,
            self.started.elapsed().as_secs_f64()
        );
    }
}

pub(crate) fn run(opts: &Options, root: &Path) -> Result<()> {
    let cells = Cell::ALL;
    let shm_cells = ShmCell::ALL;
    let quic_cells = QuicCell::ALL;
    let n = opts.messages;
    let warmup = (n / 10).max(1_000);
    let mut progress =
        Progress::new((cells.len() + shm_cells.len() + quic_cells.len()) * (opts.runs + 1) + 2);
    progress.show("cache-line ping-pong (before)");
    let pingpong_before = pingpong_ns();
    progress.step_done();
    let mut rates: HashMap<Cell, Vec<f64>> = HashMap::new();
    let mut stalls: HashMap<Cell, u32> = HashMap::new();

    for &cell in &cells {
        progress.show(&format!("warm-up {}", cell.name()));
        let (_, s) = run_retrying(cell, warmup, RETRIES)
            .with_context(|| format!("warm-up of {}", cell.name()))?;
        *stalls.entry(cell).or_default() += s;
        progress.step_done();
    }
    for round in 1..=opts.runs {
        for &cell in &cells {
            progress.show(&format!(
                "round {round}/{} {} ({n} messages)",
                opts.runs,
                cell.name()
            ));
            let (took, s) = run_retrying(cell, n, RETRIES)
                .with_context(|| format!("{} in round {round}", cell.name()))?;
            *stalls.entry(cell).or_default() += s;
            rates
                .entry(cell)
                .or_default()
                .push(n as f64 / took.max(Duration::from_nanos(1)).as_secs_f64());
            progress.step_done();
        }
    }
    progress.show("cache-line ping-pong (after)");
    let pingpong_after = pingpong_ns();
    progress.step_done();

    // The shared-memory matrix: one warm-up round, then `runs` rounds, every
    // step announced before it runs.
    let shm_sizes = opts.shm_sizes();
    let launcher = Launcher::current_exe()?;
    let mut announced = false;
    let shm_report = run_shm_matrix(&shm_cells, opts.runs, &shm_sizes, &launcher, |step| {
        if announced {
            progress.step_done();
        }
        announced = true;
        progress.show(&format!("shm {step}"));
    })
    .context("the shared-memory matrix")?;
    if announced {
        progress.step_done();
    }

    // The QUIC matrix, under a trust root of its own, the same way.
    let quic_sizes = opts.quic_sizes();
    let home = TrustHome::create().context("a trust root for the QUIC matrix")?;
    let mut announced = false;
    let quic_report = run_quic_matrix(&quic_cells, opts.runs, &quic_sizes, &home, |step| {
        if announced {
            progress.step_done();
        }
        announced = true;
        progress.show(&format!("quic {step}"));
    })
    .context("the QUIC matrix")?;
    if announced {
        progress.step_done();
    }
    drop(home);
    progress.finish();

    let cell_results: Vec<CellResult> = cells
        .iter()
        .map(|&c| CellResult::new(c, rates[&c].clone(), stalls[&c]))
        .collect();
    let mut ratios = Vec::new();
    for &num in cells.iter().filter(|c| c.is_asyncmsg()) {
        for &den in cells.iter().filter(|c| !c.is_asyncmsg()) {
            let paired: Vec<f64> = rates[&num]
                .iter()
                .zip(&rates[&den])
                .map(|(a, b)| a / b)
                .collect();
            let target = TARGETS
                .iter()
                .find(|t| t.numerator == num && t.denominator == den)
                .map(|t| t.target);
            ratios.push(RatioResult::new(num, den, paired, target));
        }
    }
    let results = Results {
        meta: Meta::collect(root, opts, [pingpong_before, pingpong_after]),
        cells: cell_results,
        ratios,
        shm: ShmSection {
            rounds: opts.runs,
            sizes: shm_sizes,
            report: shm_report,
        },
        quic: QuicSection {
            rounds: opts.runs,
            sizes: quic_sizes,
            report: quic_report,
        },
    };

    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("results.json");
    std::fs::write(&json, results.to_json_string())
        .with_context(|| format!("writing {}", json.display()))?;
    let md = results.markdown();
    let report = dir.join("REPORT.md");
    std::fs::write(&report, &md).with_context(|| format!("writing {}", report.display()))?;
    print!("{md}");
    eprintln!("wrote {} and {}", json.display(), report.display());
    Ok(())
}

/// One-way cache-line latency in nanoseconds: the median of 5 ping-pongs.
fn pingpong_ns() -> f64 {
    let v: Vec<f64> = (0..5)
        .map(|_| pingpong_one_way(20_000).as_secs_f64() * 1e9)
        .collect();
    Summary::of(&v).map_or(0.0, |s| s.median)
}
