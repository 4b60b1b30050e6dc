//! `cargo xtask bench`: the whole matrix of `asyncmsg_bench::matrix` (every
//! transport, asyncmsg and its peers), then the memory probes, then the
//! report: `target/bench/results.json`, `REPORT.md` and SVG charts.
//!
//! Cells run interleaved, round by round (one warm-up round, then `--runs`
//! measured rounds), so that a machine that slows down for a while slows
//! every cell alike; ratios are taken per round (paired) and summarised as
//! median and min–max.
//!
//! The shared-memory cells start this program again as their second process;
//! `main` calls `asyncmsg_bench::shm::child_main` first thing for that, and
//! gives the run a runtime directory of its own. The memory probes start it
//! again too, one fresh process per probe (see [`crate::memory`]).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use asyncmsg_bench::matrix::{self, Ctx, Scale, run_matrix};
use asyncmsg_bench::{Summary, pingpong_one_way};

use crate::memory;
use crate::report::{Meta, Results};

/// What `cargo xtask bench` was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) runs: usize,
    /// Only the cells whose id contains one of these (all when empty).
    pub(crate) filters: Vec<String>,
    /// Skip the memory probes.
    pub(crate) no_memory: bool,
    /// Also write `bench/RESULTS.md` and `bench/results/*.svg`.
    pub(crate) publish: bool,
    /// Where the outputs go (default `target/bench`).
    pub(crate) out: Option<PathBuf>,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Options> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut opts = Options {
            quick,
            runs: if quick { 5 } else { 7 },
            filters: Vec::new(),
            no_memory: false,
            publish: false,
            out: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" | "--peers" | "--no-peers" => {}
                "--runs" => opts.runs = value(&mut it, "--runs")?,
                "--filter" => opts.filters.push(
                    it.next()
                        .context("--filter needs a part of a cell id")?
                        .clone(),
                ),
                "--no-memory" => opts.no_memory = true,
                "--publish" => opts.publish = true,
                "--out" => opts.out = Some(it.next().context("--out needs a directory")?.into()),
                other => bail!("unknown option {other:?} for bench"),
            }
        }
        if opts.runs < 5 {
            bail!("--runs must be at least 5 (medians of fewer runs mean little here)");
        }
        if opts.publish && (opts.quick || !opts.filters.is_empty()) {
            bail!("--publish takes a full run of every cell (no --quick, no --filter)");
        }
        Ok(opts)
    }

    pub(crate) fn scale(&self) -> Scale {
        if self.quick {
            Scale::Quick
        } else {
            Scale::Full
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

/// A one-line progress display on stderr: the step running, how many are
/// done, and an estimate of the time left (from the steps' expected sizes).
pub(crate) struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    tty: bool,
}

impl Progress {
    pub(crate) fn new(total: usize) -> Self {
        Progress {
            total,
            done: 0,
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Shows `what` as the step now running (and counts the one before as
    /// done, unless it is the first).
    pub(crate) fn step(&mut self, what: &str) {
        let elapsed = self.started.elapsed();
        let left = if self.done == 0 {
            "?".to_string()
        } else {
            let per = elapsed.as_secs_f64() / self.done as f64;
            format!("~{:.0}s", per * self.total.saturating_sub(self.done) as f64)
        };
        let width = 24;
        let filled = (self.done * width / self.total.max(1)).min(width);
        let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
        let line = format!(
            "[{bar}] {:>4}/{} {what} | {:.0}s elapsed, {left} left",
            (self.done + 1).min(self.total),
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
    let began = Instant::now();
    let ctx = Ctx::new().context("setting up the bench context")?;
    let specs: Vec<_> = matrix::specs(&ctx)
        .into_iter()
        .filter(|s| !opts.quick || s.in_quick)
        .filter(|s| opts.filters.is_empty() || opts.filters.iter().any(|f| s.id.contains(f)))
        .collect();
    if specs.is_empty() {
        bail!("no cell matches {:?}", opts.filters);
    }
    let probes = if opts.no_memory {
        Vec::new()
    } else {
        memory::probes(&specs)
    };
    let mut progress = Progress::new(specs.len() * (opts.runs + 1) + probes.len() + 2);
    progress.step("cache-line ping-pong (before)");
    let pingpong_before = pingpong_ns();
    let report = run_matrix(&specs, &matrix::ratios(), opts.runs, opts.scale(), |what| {
        progress.step(what)
    });
    progress.step("cache-line ping-pong (after)");
    let pingpong_after = pingpong_ns();
    let mut mem = Vec::new();
    for p in &probes {
        progress.step(&format!("memory {}", p.id));
        mem.push(memory::measure(p, opts.quick));
    }
    progress.finish();

    let results = Results {
        meta: Meta::collect(
            root,
            opts,
            [pingpong_before, pingpong_after],
            began.elapsed(),
            cfg!(feature = "peers"),
        ),
        report,
        memory: mem,
    };
    let dir = opts
        .out
        .clone()
        .unwrap_or_else(|| root.join("target/bench"));
    let written = results.write(&dir, "charts")?;
    print!("{}", std::fs::read_to_string(dir.join("REPORT.md"))?);
    eprintln!("wrote {}", written.join(", "));
    if opts.publish {
        let written = crate::publish::publish(&dir, &root.join("bench"))?;
        eprintln!("published {}", written.join(", "));
    }
    let failed: Vec<_> = results
        .report
        .cells
        .iter()
        .filter(|c| c.error.is_some())
        .map(|c| c.spec.id.clone())
        .collect();
    if !failed.is_empty() {
        bail!("cells failed (see the report): {}", failed.join(", "));
    }
    Ok(())
}

/// One-way cache-line latency in nanoseconds: the median of 5 ping-pongs.
fn pingpong_ns() -> f64 {
    let v: Vec<f64> = (0..5)
        .map(|_| pingpong_one_way(20_000).as_secs_f64() * 1e9)
        .collect();
    Summary::of(&v).map_or(0.0, |s| s.median)
}
