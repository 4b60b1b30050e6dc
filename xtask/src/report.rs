//! What a bench run found: the host it ran on, every figure, the ratios, and
//! how they are written (`results.json`, `REPORT.md`).

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use asyncmsg_bench::{Cell, PAYLOAD, Summary};
use serde_json::{Value, json};

use crate::bench::Options;

/// The format tag of `results.json`.
pub(crate) const SCHEMA: &str = "asyncmsg-bench/1";

/// Where and how a run was made.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    host: String,
    cpu: String,
    cpus: usize,
    kernel: String,
    git_rev: String,
    git_dirty: bool,
    date: String,
    rustc: String,
    quick: bool,
    runs: usize,
    messages: u64,
    /// One-way cache-line latency between two threads (ns), before and after.
    pingpong_ns: [f64; 2],
}

impl Meta {
    pub(crate) fn collect(root: &Path, opts: &Options, pingpong_ns: [f64; 2]) -> Meta {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        };
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(root)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        Meta {
            host: read("/proc/sys/kernel/hostname"),
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease"),
            git_rev: git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
            git_dirty: git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty()),
            date: utc_now(),
            rustc: Command::new("rustc")
                .arg("-V")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "unknown".into()),
            quick: opts.quick,
            runs: opts.runs,
            messages: opts.messages,
            pingpong_ns,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "host": self.host,
            "cpu": self.cpu,
            "cpus": self.cpus,
            "kernel": self.kernel,
            "git_rev": self.git_rev,
            "git_dirty": self.git_dirty,
            "date": self.date,
            "rustc": self.rustc,
            "quick": self.quick,
            "runs": self.runs,
            "messages_per_run": self.messages,
            "pingpong_one_way_ns": { "before": self.pingpong_ns[0], "after": self.pingpong_ns[1] },
        })
    }
}

/// One cell's figures.
#[derive(Debug, Clone)]
pub(crate) struct CellResult {
    cell: Cell,
    /// Messages per second, one per run, in run order.
    rates: Vec<f64>,
    summary: Summary,
    /// Runs that stalled and were retried.
    stalls: u32,
}

impl CellResult {
    pub(crate) fn new(cell: Cell, rates: Vec<f64>, stalls: u32) -> Self {
        let summary = Summary::of(&rates).expect("at least one run per cell");
        CellResult {
            cell,
            rates,
            summary,
            stalls,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.cell.id(),
            "name": self.cell.name(),
            "transport": "inproc",
            "payload_bytes": PAYLOAD,
            "asyncmsg": self.cell.is_asyncmsg(),
            "unit": "msg/s",
            "median": self.summary.median,
            "min": self.summary.min,
            "max": self.summary.max,
            "bytes_per_s_median": self.summary.median * PAYLOAD as f64,
            "runs": self.rates,
            "stalled_runs_retried": self.stalls,
        })
    }
}

/// asyncmsg's messages/s over a peer's, paired by round.
#[derive(Debug, Clone)]
pub(crate) struct RatioResult {
    numerator: Cell,
    denominator: Cell,
    ratios: Vec<f64>,
    summary: Summary,
    target: Option<f64>,
}

impl RatioResult {
    pub(crate) fn new(
        numerator: Cell,
        denominator: Cell,
        ratios: Vec<f64>,
        target: Option<f64>,
    ) -> Self {
        let summary = Summary::of(&ratios).expect("at least one run per cell");
        RatioResult {
            numerator,
            denominator,
            ratios,
            summary,
            target,
        }
    }

    fn meets(&self) -> Option<bool> {
        self.target.map(|t| self.summary.median >= t)
    }

    fn to_json(&self) -> Value {
        json!({
            "id": format!("{} / {}", self.numerator.id(), self.denominator.id()),
            "numerator": self.numerator.id(),
            "denominator": self.denominator.id(),
            "median": self.summary.median,
            "min": self.summary.min,
            "max": self.summary.max,
            "per_round": self.ratios,
            "target": self.target,
            "meets_target": self.meets(),
        })
    }
}

/// A whole bench run.
#[derive(Debug, Clone)]
pub(crate) struct Results {
    pub(crate) meta: Meta,
    pub(crate) cells: Vec<CellResult>,
    pub(crate) ratios: Vec<RatioResult>,
}

impl Results {
    pub(crate) fn to_json_string(&self) -> String {
        let v = json!({
            "schema": SCHEMA,
            "meta": self.meta.to_json(),
            "cells": self.cells.iter().map(CellResult::to_json).collect::<Vec<_>>(),
            "ratios": self.ratios.iter().map(RatioResult::to_json).collect::<Vec<_>>(),
        });
        let mut s = serde_json::to_string_pretty(&v).expect("a Value always serialises");
        s.push('\n');
        s
    }

    pub(crate) fn markdown(&self) -> String {
        let m = &self.meta;
        let mut o = String::new();
        o += "# asyncmsg benchmark report\n\n";
        o += &format!(
            "{} on `{}` ({}, {} CPUs, Linux {}), git `{}`{}, {}, {}.\n\n",
            if m.quick { "Quick run" } else { "Run" },
            m.host,
            m.cpu,
            m.cpus,
            m.kernel,
            short_rev(&m.git_rev),
            if m.git_dirty { " (dirty)" } else { "" },
            m.date,
            m.rustc
        );
        o += &format!(
            "Cache-line one-way latency between two spinning threads: {:.0} ns before, \
             {:.0} ns after (it moves a lot on a shared VM; per-message handovers such as \
             crossbeam's suffer from it more than batched ones).\n\n",
            m.pingpong_ns[0], m.pingpong_ns[1]
        );
        o += &format!(
            "## In-process throughput, {PAYLOAD} B messages\n\n\
             One sender thread and one receiver thread, pinned to CPUs 0 and 1 (asyncmsg's delivery thread unpinned), {} messages per run, {} runs per \
             cell, interleaved; every run checks count and order. Median and min–max.\n\n",
            m.messages, m.runs
        );
        o += "| cell | msg/s (median) | min – max | MB/s (median) | stalled runs retried |\n";
        o += "|---|---:|---:|---:|---:|\n";
        for c in &self.cells {
            o += &format!(
                "| {} | {} | {} – {} | {:.0} | {} |\n",
                c.cell.name(),
                rate(c.summary.median),
                rate(c.summary.min),
                rate(c.summary.max),
                c.summary.median * PAYLOAD as f64 / 1e6,
                c.stalls
            );
        }
        o += "\n## Ratios asyncmsg / peer (paired per round)\n\n";
        o += "| asyncmsg | peer | ratio (median) | min – max | target | met |\n";
        o += "|---|---|---:|---:|---:|:---:|\n";
        for r in &self.ratios {
            o += &format!(
                "| {} | {} | {:.2}× | {:.2}× – {:.2}× | {} | {} |\n",
                r.numerator.name(),
                r.denominator.name(),
                r.summary.median,
                r.summary.min,
                r.summary.max,
                r.target.map_or("".into(), |t| format!("≥ {t}×")),
                match r.meets() {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                }
            );
        }
        let stalled: u32 = self.cells.iter().map(|c| c.stalls).sum();
        if stalled > 0 {
            o += &format!(
                "\n**{stalled} asyncmsg run(s) stalled** (a get waited {:?} while messages \
                 were in flight: a lost trigger or wake-up) and were retried; their time \
                 is not counted.\n",
                asyncmsg_bench::GET_STALL
            );
        }
        o
    }
}

fn short_rev(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

/// `x` messages/s, readable.
pub(crate) fn rate(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_453), (2025, 12, 31));
    }

    #[test]
    fn rates_read_well() {
        assert_eq!(rate(16_400_000.0), "16.40 M");
        assert_eq!(rate(1_500.0), "1.5 k");
    }
}
