//! What a bench run found and how it is written: `results.json` (every
//! figure with the machine and revision), `REPORT.md` (tables per transport
//! and pattern, the asyncmsg payload × trigger grid, ratios to each peer,
//! BENCH.md's targets with their measured ratios) and SVG charts beside it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use asyncmsg_bench::Summary;
use asyncmsg_bench::matrix::{
    self, Bound, CellResult, MatrixReport, Metric, Pattern, RatioResult, Transport, payload_label,
};
use serde_json::{Value, json};

use crate::bench::Options;
use crate::memory::MemoryResult;
use crate::svg::{Bar, Chart};

/// The format tag of `results.json`.
pub(crate) const SCHEMA: &str = "asyncmsg-bench/2";

/// BENCH.md: a time trigger fires within this long of its deadline at p99.
const TIME_TRIGGER_P99_NS: f64 = 1e6;
/// BENCH.md: peak RSS flat within this between the short and the long run.
const RSS_GROWTH: f64 = 0.10;
/// Allocations per message below which the steady state counts as
/// allocation-free (one allocation per 10 000 messages: a setup difference
/// between the two runs, not a per-message cost).
const ALLOCS_ZERO: f64 = 1e-4;

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
    peers: bool,
    filters: Vec<String>,
    took: Duration,
    /// One-way cache-line latency between two threads (ns), before and after.
    pingpong_ns: [f64; 2],
}

impl Meta {
    pub(crate) fn collect(
        root: &Path,
        opts: &Options,
        pingpong_ns: [f64; 2],
        took: Duration,
        peers: bool,
    ) -> Meta {
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
            peers,
            filters: opts.filters.clone(),
            took,
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
            "peers": self.peers,
            "filters": self.filters,
            "took_s": self.took.as_secs_f64(),
            "pingpong_one_way_ns": { "before": self.pingpong_ns[0], "after": self.pingpong_ns[1] },
        })
    }
}

/// A whole bench run.
#[derive(Debug, Clone)]
pub(crate) struct Results {
    pub(crate) meta: Meta,
    pub(crate) report: MatrixReport,
    pub(crate) memory: Vec<MemoryResult>,
}

/// `{median, min, max, runs}` of `xs`, or null when there are none.
fn figures(xs: &[f64]) -> Value {
    match Summary::of(xs) {
        Some(s) => json!({ "median": s.median, "min": s.min, "max": s.max, "runs": xs }),
        None => Value::Null,
    }
}

fn metric_id(m: Metric) -> &'static str {
    match m {
        Metric::Rate => "msg_per_s",
        Metric::Bytes => "bytes_per_s",
        Metric::P50 => "p50_ns",
        Metric::P99 => "p99_ns",
    }
}

fn bound_json(b: Option<Bound>) -> Value {
    match b {
        Some(Bound::AtLeast(t)) => json!({ "at_least": t }),
        Some(Bound::AtMost(t)) => json!({ "at_most": t }),
        None => Value::Null,
    }
}

fn cell_json(c: &CellResult) -> Value {
    let s = &c.spec;
    let series = |m: Metric| -> Vec<f64> {
        c.figures()
            .map(|f| f.get(m))
            .filter(|v| v.is_finite())
            .collect()
    };
    let mut v = json!({
        "id": s.id,
        "name": s.name,
        "transport": s.transport.id(),
        "pattern": s.pattern.id(),
        "payload_bytes": s.payload,
        "implementation": s.implementation,
        "asyncmsg": s.is_asyncmsg(),
        "messages_per_run": c.messages,
        "rounds": c.per_round.iter().filter(|r| r.is_some()).count(),
        "msg_per_s": figures(&series(Metric::Rate)),
        "bytes_per_s": figures(&series(Metric::Bytes)),
        "retries": c.retries,
        "error": c.error,
    });
    if !s.pattern.is_rate() {
        v["p50_ns"] = figures(&series(Metric::P50));
        v["p99_ns"] = figures(&series(Metric::P99));
        if let Some(h) = &c.samples {
            v["all_rounds"] = json!({
                "samples": h.count(),
                "p50_ns": s.pattern.reported_ns(h.quantile(0.5)),
                "p99_ns": s.pattern.reported_ns(h.quantile(0.99)),
                "p999_ns": s.pattern.reported_ns(h.quantile(0.999)),
                "mean_ns": s.pattern.reported_ns(h.mean()),
            });
        }
    }
    v
}

fn ratio_json(r: &RatioResult) -> Value {
    json!({
        "id": ratio_id(r),
        "numerator": r.spec.numerator,
        "denominator": r.spec.denominator,
        "metric": metric_id(r.spec.metric),
        "median": r.summary.median,
        "min": r.summary.min,
        "max": r.summary.max,
        "per_round": r.per_round,
        "target": bound_json(r.spec.target),
        "met": r.met(),
    })
}

fn ratio_id(r: &RatioResult) -> String {
    format!(
        "{} / {} ({})",
        r.spec.numerator,
        r.spec.denominator,
        metric_id(r.spec.metric)
    )
}

/// One row of the targets table.
#[derive(Debug, Clone)]
pub(crate) struct TargetRow {
    pub(crate) what: String,
    pub(crate) target: String,
    pub(crate) measured: String,
    pub(crate) met: Option<bool>,
}

impl Results {
    fn name_of(&self, id: &str) -> String {
        self.report
            .cell(id)
            .map_or_else(|| id.to_string(), |c| c.spec.name.clone())
    }

    /// BENCH.md's targets with what this run measured: the ratios that have
    /// one (also those whose cells did not run), the time triggers' p99, and
    /// the memory probes of asyncmsg.
    pub(crate) fn targets(&self) -> Vec<TargetRow> {
        let mut rows = Vec::new();
        for spec in matrix::ratios().into_iter().filter(|r| r.target.is_some()) {
            let found = self.report.ratios.iter().find(|r| {
                r.spec.numerator == spec.numerator
                    && r.spec.denominator == spec.denominator
                    && r.spec.metric == spec.metric
            });
            let what = format!(
                "{} / {} ({})",
                self.name_of(&spec.numerator),
                self.name_of(&spec.denominator),
                spec.metric.label()
            );
            let target = spec.target.map(|b| format!("{b}")).unwrap_or_default();
            rows.push(match found {
                Some(r) => TargetRow {
                    what,
                    target,
                    measured: format!(
                        "{:.2} ({:.2}–{:.2})",
                        r.summary.median, r.summary.min, r.summary.max
                    ),
                    met: r.met(),
                },
                None => TargetRow {
                    what,
                    target,
                    measured: "not run".into(),
                    met: None,
                },
            });
        }
        for c in self
            .report
            .cells
            .iter()
            .filter(|c| c.spec.pattern == Pattern::TimeTrigger)
        {
            let p99 = c.summary(Metric::P99);
            rows.push(TargetRow {
                what: format!("{}: p99 lateness", c.spec.name),
                target: "≤ 1 ms".into(),
                measured: p99.map_or("failed".into(), |s| {
                    format!("{} ({}–{})", ns(s.median), ns(s.min), ns(s.max))
                }),
                met: p99.map(|s| s.median <= TIME_TRIGGER_P99_NS),
            });
        }
        for m in self.memory.iter().filter(|m| m.probe.asyncmsg) {
            match &m.outcome {
                Ok(f) => {
                    rows.push(TargetRow {
                        what: format!(
                            "{}: peak RSS {} → {} messages",
                            m.probe.name,
                            count(m.probe.short),
                            count(m.probe.long)
                        ),
                        target: "≤ +10%".into(),
                        measured: format!(
                            "{:+.1}% ({} → {} KiB)",
                            f.rss_growth() * 100.0,
                            f.rss_short_kib,
                            f.rss_long_kib
                        ),
                        met: Some(f.rss_growth() <= RSS_GROWTH),
                    });
                    rows.push(TargetRow {
                        what: format!("{}: allocations per message", m.probe.name),
                        target: "0".into(),
                        measured: format!("{:.4}", f.allocs_per_message),
                        met: Some(f.allocs_per_message < ALLOCS_ZERO),
                    });
                }
                Err(e) => rows.push(TargetRow {
                    what: format!("{}: memory", m.probe.name),
                    target: "≤ +10% RSS, 0 allocations".into(),
                    measured: format!("failed: {e}"),
                    met: Some(false),
                }),
            }
        }
        rows
    }

    pub(crate) fn to_json_string(&self) -> String {
        let targets: Vec<Value> = self
            .targets()
            .iter()
            .map(|t| json!({ "what": t.what, "target": t.target, "measured": t.measured, "met": t.met }))
            .collect();
        let v = json!({
            "schema": SCHEMA,
            "meta": self.meta.to_json(),
            "cells": self.report.cells.iter().map(cell_json).collect::<Vec<_>>(),
            "ratios": self.report.ratios.iter().map(ratio_json).collect::<Vec<_>>(),
            "memory": self.memory.iter().map(MemoryResult::to_json).collect::<Vec<_>>(),
            "targets": targets,
        });
        let mut s = serde_json::to_string_pretty(&v).expect("a Value always serialises");
        s.push('\n');
        s
    }

    /// The charts of this run: one per transport, pattern and payload with
    /// at least two cells, named `transport-pattern-payload.svg`.
    pub(crate) fn charts(&self) -> Vec<(String, Chart)> {
        let mut groups: BTreeMap<(Transport, Pattern, usize), Vec<&CellResult>> = BTreeMap::new();
        for c in &self.report.cells {
            groups
                .entry((c.spec.transport, c.spec.pattern, c.spec.payload))
                .or_default()
                .push(c);
        }
        groups
            .into_iter()
            .filter(|(_, cells)| cells.len() >= 2)
            .map(|((t, p, payload), cells)| {
                let metric = cells[0].headline();
                let bars = cells
                    .iter()
                    .map(|c| {
                        let s = c.summary(metric);
                        Bar {
                            label: c.spec.name.clone(),
                            median: s.map_or(f64::NAN, |s| s.median),
                            min: s.map_or(f64::NAN, |s| s.min),
                            max: s.map_or(f64::NAN, |s| s.max),
                            highlight: c.spec.is_asyncmsg(),
                        }
                    })
                    .collect();
                let file = format!("{}-{}-{}.svg", t.id(), p.id(), payload_label(payload));
                let unit = match metric {
                    Metric::Rate => "messages/s",
                    Metric::Bytes => "bytes/s",
                    Metric::P50 => "p50, ns",
                    Metric::P99 => "p99, ns",
                };
                (
                    file,
                    Chart {
                        title: format!("{}: {}, {}", t.title(), p.title(), payload_label(payload)),
                        unit: unit.into(),
                        lower_is_better: !metric.higher_is_better(),
                        bars,
                    },
                )
            })
            .collect()
    }

    /// Writes `results.json`, `REPORT.md` and the charts (into `charts_dir`
    /// under `dir`); returns what it wrote.
    pub(crate) fn write(&self, dir: &Path, charts_dir: &str) -> Result<Vec<String>> {
        let charts = dir.join(charts_dir);
        std::fs::create_dir_all(&charts)
            .with_context(|| format!("creating {}", charts.display()))?;
        let json = dir.join("results.json");
        std::fs::write(&json, self.to_json_string())
            .with_context(|| format!("writing {}", json.display()))?;
        let report = dir.join("REPORT.md");
        std::fs::write(&report, self.markdown(charts_dir))
            .with_context(|| format!("writing {}", report.display()))?;
        let list = self.charts();
        for (file, chart) in &list {
            let p = charts.join(file);
            std::fs::write(&p, chart.render())
                .with_context(|| format!("writing {}", p.display()))?;
        }
        Ok(vec![
            json.display().to_string(),
            report.display().to_string(),
            format!("{} charts in {}", list.len(), charts.display()),
        ])
    }

    /// The report; charts are linked under `charts_dir`.
    pub(crate) fn markdown(&self, charts_dir: &str) -> String {
        let m = &self.meta;
        let mut o = String::new();
        o += "# asyncmsg benchmark report\n\n";
        let _ = writeln!(
            o,
            "{} of `cargo xtask bench{}` on `{}` ({}, {} CPUs, Linux {}), git `{}`{}, {}, {}; \
             {} measured rounds per cell after one warm-up round, cells interleaved round by round; \
             {:.0} s in all.{}\n",
            if m.quick { "A quick run" } else { "A full run" },
            if m.quick { " --quick" } else { "" },
            m.host,
            m.cpu,
            m.cpus,
            m.kernel,
            short_rev(&m.git_rev),
            if m.git_dirty {
                " (with local changes)"
            } else {
                ""
            },
            m.date,
            m.rustc,
            m.runs,
            m.took.as_secs_f64(),
            if m.peers {
                ""
            } else {
                " Built without the `peers` feature: kanal, rtrb, iceoryx2 and zmq are missing."
            }
        );
        if !m.filters.is_empty() {
            let _ = writeln!(o, "Only cells whose id contains {:?}.\n", m.filters);
        }
        let _ = writeln!(
            o,
            "Absolute figures on a shared VM drift 2–10× between runs; the ratios, paired per \
             round within this run, are what to read. Every cell checks the count and order of \
             what arrived. Cache-line one-way latency between two spinning threads: {:.0} ns \
             before, {:.0} ns after.\n",
            m.pingpong_ns[0], m.pingpong_ns[1]
        );

        o += "## BENCH.md targets\n\n| what | target | measured: median (min–max) | met |\n|---|---|---|:---:|\n";
        for t in self.targets() {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                t.what,
                t.target,
                t.measured,
                met_mark(t.met)
            );
        }
        o += "\n";

        let failed: Vec<&CellResult> = self
            .report
            .cells
            .iter()
            .filter(|c| c.error.is_some())
            .collect();
        if !failed.is_empty() {
            o += "## Cells that failed\n\n";
            for c in failed {
                let _ = writeln!(o, "- `{}`: {}", c.spec.id, c.error.as_deref().unwrap_or(""));
            }
            o += "\n";
        }

        let charts: BTreeMap<String, ()> =
            self.charts().into_iter().map(|(f, _)| (f, ())).collect();
        for t in Transport::ALL {
            let cells: Vec<&CellResult> = self
                .report
                .cells
                .iter()
                .filter(|c| c.spec.transport == t)
                .collect();
            if cells.is_empty() {
                continue;
            }
            let _ = writeln!(o, "## {}\n", t.title());
            for p in Pattern::ALL {
                let mut in_p: Vec<&CellResult> = cells
                    .iter()
                    .copied()
                    .filter(|c| c.spec.pattern == p)
                    .collect();
                if in_p.is_empty() {
                    continue;
                }
                in_p.sort_by_key(|c| c.spec.payload);
                let _ = writeln!(o, "### {}\n", p.title());
                if p.is_rate() {
                    o += "| cell | payload | msg/s: median (min–max) | bytes/s (median) | messages per run |\n|---|---:|---|---:|---:|\n";
                    for c in &in_p {
                        let _ = writeln!(
                            o,
                            "| {}{} | {} | {} | {}B/s | {} |",
                            bold_if(c),
                            c.spec.name,
                            payload_label(c.spec.payload),
                            spread(c.summary(Metric::Rate), rate),
                            c.summary(Metric::Bytes)
                                .map_or("–".into(), |s| rate(s.median)),
                            count(c.messages),
                        );
                    }
                } else {
                    o += "| cell | payload | p50: median (min–max) | p99: median (min–max) | p99.9 (all rounds) | samples per run |\n|---|---:|---|---|---:|---:|\n";
                    for c in &in_p {
                        let p999 = c
                            .samples
                            .as_ref()
                            .map_or("–".into(), |h| ns(p.reported_ns(h.quantile(0.999))));
                        let _ = writeln!(
                            o,
                            "| {}{} | {} | {} | {} | {p999} | {} |",
                            bold_if(c),
                            c.spec.name,
                            payload_label(c.spec.payload),
                            spread(c.summary(Metric::P50), ns),
                            spread(c.summary(Metric::P99), ns),
                            count(c.messages),
                        );
                    }
                }
                o += "\n";
                let mut payloads: Vec<usize> = in_p.iter().map(|c| c.spec.payload).collect();
                payloads.dedup();
                for payload in payloads {
                    let file = format!("{}-{}-{}.svg", t.id(), p.id(), payload_label(payload));
                    if charts.contains_key(&file) {
                        let _ = writeln!(
                            o,
                            "![{} {}]({charts_dir}/{file})",
                            p.title(),
                            payload_label(payload)
                        );
                    }
                }
                o += "\n";
                if p == Pattern::Throughput {
                    self.grid(&mut o, &in_p);
                }
            }
            let ratios: Vec<&RatioResult> = self
                .report
                .ratios
                .iter()
                .filter(|r| r.spec.numerator.starts_with(&format!("{}/", t.id())))
                .collect();
            if !ratios.is_empty() {
                o += "### Ratios (paired per round)\n\n| numerator | denominator | figure | median (min–max) | target | met |\n|---|---|---|---|---|:---:|\n";
                for r in ratios {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | {:.2}× ({:.2}–{:.2}) | {} | {} |",
                        self.name_of(&r.spec.numerator),
                        self.name_of(&r.spec.denominator),
                        r.spec.metric.label(),
                        r.summary.median,
                        r.summary.min,
                        r.summary.max,
                        r.spec.target.map_or(String::new(), |b| format!("{b}")),
                        met_mark(r.met())
                    );
                }
                o += "\n";
            }
        }

        if !self.memory.is_empty() {
            o += "## Memory\n\nEach probe runs its cell in a fresh process: a short run, then a ten times longer one. \
                  Allocations per message = (allocations of the long run − the short run's) / (difference in messages), \
                  counted by a counting global allocator over every thread of the process (for shared-memory cells: \
                  the receiving process). Peak RSS (`VmHWM`) after the short run, then reset and read after the long one.\n\n\
                  | cell | allocations per message | bytes allocated per message | peak RSS short → long | growth |\n|---|---:|---:|---:|---:|\n";
            for mr in &self.memory {
                match &mr.outcome {
                    Ok(f) => {
                        let _ = writeln!(
                            o,
                            "| {}{} | {:.4} | {:.1} | {} → {} KiB ({} → {} msgs) | {:+.1}% |",
                            if mr.probe.asyncmsg { "▶ " } else { "" },
                            mr.probe.name,
                            f.allocs_per_message,
                            f.bytes_per_message,
                            f.rss_short_kib,
                            f.rss_long_kib,
                            count(mr.probe.short),
                            count(mr.probe.long),
                            f.rss_growth() * 100.0
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(o, "| {} | failed: {e} | | | |", mr.probe.name);
                    }
                }
            }
            o += "\n";
        }
        o
    }

    /// asyncmsg's throughput cells of one transport as a payload × variant
    /// grid (msg/s medians), when they span several payloads and variants.
    fn grid(&self, o: &mut String, cells: &[&CellResult]) {
        let ours: Vec<&&CellResult> = cells.iter().filter(|c| c.spec.is_asyncmsg()).collect();
        let variant = |c: &CellResult| {
            c.spec
                .id
                .rsplit('/')
                .next()
                .unwrap_or("")
                .trim_start_matches("asyncmsg")
                .trim_start_matches('-')
                .to_string()
        };
        let mut variants: Vec<String> = Vec::new();
        let mut payloads: Vec<usize> = Vec::new();
        for c in &ours {
            let v = variant(c);
            if !variants.contains(&v) {
                variants.push(v);
            }
            if !payloads.contains(&c.spec.payload) {
                payloads.push(c.spec.payload);
            }
        }
        if variants.len() < 2 || payloads.len() < 2 {
            return;
        }
        payloads.sort_unstable();
        o.push_str(
            "asyncmsg by payload (rows) and setting (columns), msg/s median:\n\n| payload |",
        );
        for v in &variants {
            let _ = write!(o, " {} |", if v.is_empty() { "default" } else { v });
        }
        o.push_str("\n|---|");
        o.push_str(&"---:|".repeat(variants.len()));
        o.push('\n');
        for p in payloads {
            let _ = write!(o, "| {} |", payload_label(p));
            for v in &variants {
                let cell = ours
                    .iter()
                    .find(|c| c.spec.payload == p && &variant(c) == v)
                    .and_then(|c| c.summary(Metric::Rate));
                let _ = write!(o, " {} |", cell.map_or("".into(), |s| rate(s.median)));
            }
            o.push('\n');
        }
        o.push('\n');
    }
}

fn bold_if(c: &CellResult) -> &'static str {
    if c.spec.is_asyncmsg() { "▶ " } else { "" }
}

fn met_mark(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "",
    }
}

fn spread(s: Option<Summary>, f: impl Fn(f64) -> String) -> String {
    match s {
        Some(s) => format!("{} ({}–{})", f(s.median), f(s.min), f(s.max)),
        None => "failed".into(),
    }
}

/// A count with a k/M suffix where it is round.
fn count(n: u64) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{} M", n / 1_000_000)
    } else if n >= 1_000 && n % 1_000 == 0 {
        format!("{} k", n / 1_000)
    } else {
        n.to_string()
    }
}

fn short_rev(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

/// `x` per second, readable.
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

/// Nanoseconds, readable.
pub(crate) fn ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} µs", v / 1e3)
    } else {
        format!("{v:.0} ns")
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
pub(crate) mod tests {
    use super::*;
    use asyncmsg_bench::matrix::{Ctx, Figures, RatioSpec, pair_ratios};
    use asyncmsg_bench::shm::Launcher;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_453), (2025, 12, 31));
    }

    #[test]
    fn rates_read_well() {
        assert_eq!(rate(12_345_678.0), "12.35 M");
        assert_eq!(rate(999.0), "999");
        assert_eq!(ns(1_500.0), "1.50 µs");
        assert_eq!(count(1_000_000), "1 M");
    }

    /// Results of a made-up run over every cell of the matrix (nothing is
    /// run): asyncmsg twice as fast as every peer, latencies 1 µs.
    pub(crate) fn fake_results() -> Results {
        let ctx = Ctx::with_launcher(Launcher::new("true", Vec::<String>::new())).unwrap();
        let cells: Vec<CellResult> = matrix::specs(&ctx)
            .into_iter()
            .map(|spec| {
                let k = if spec.is_asyncmsg() { 2.0 } else { 1.0 };
                let per_round = (0..5)
                    .map(|r| {
                        let rate = 1e6 * k * (1.0 + f64::from(r) / 100.0);
                        let t = (!spec.pattern.is_rate()).then_some(1_000.0 / k);
                        Some(Figures {
                            messages_per_s: rate,
                            bytes_per_s: rate * spec.payload as f64,
                            p50_ns: t,
                            p99_ns: t.map(|t| t * 2.0),
                            p999_ns: t.map(|t| t * 3.0),
                        })
                    })
                    .collect();
                CellResult {
                    messages: spec.size.quick,
                    spec,
                    per_round,
                    samples: None,
                    retries: 0,
                    error: None,
                }
            })
            .collect();
        let ratios = pair_ratios(&cells, &matrix::ratios());
        let opts = Options::parse(&["--quick".to_string()]).unwrap();
        Results {
            meta: Meta::collect(
                Path::new("."),
                &opts,
                [100.0, 110.0],
                Duration::from_secs(3),
                true,
            ),
            report: MatrixReport { cells, ratios },
            memory: Vec::new(),
        }
    }

    #[test]
    fn the_report_names_every_cell_every_target_and_links_its_charts() {
        let r = fake_results();
        let md = r.markdown("charts");
        for c in &r.report.cells {
            assert!(md.contains(&c.spec.name), "{} missing", c.spec.name);
        }
        let targets: Vec<RatioSpec> = matrix::ratios()
            .into_iter()
            .filter(|r| r.target.is_some())
            .collect();
        assert!(!targets.is_empty());
        assert!(r.targets().len() >= targets.len());
        for (file, _) in r.charts() {
            assert!(
                md.contains(&format!("(charts/{file})")),
                "{file} not linked"
            );
        }
        let v: Value = serde_json::from_str(&r.to_json_string()).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["cells"].as_array().unwrap().len(), r.report.cells.len());
        assert!(v["meta"]["git_rev"].is_string());
        assert!(
            v["ratios"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["median"].is_number())
        );
    }

    #[test]
    fn write_puts_the_three_outputs_in_place() {
        let r = fake_results();
        let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        r.write(&dir, "charts").unwrap();
        assert!(dir.join("results.json").is_file());
        assert!(dir.join("REPORT.md").is_file());
        let svgs = std::fs::read_dir(dir.join("charts")).unwrap().count();
        assert_eq!(svgs, r.charts().len());
        assert!(svgs > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
