//! What a bench run found: the host it ran on, every figure, the ratios, and
//! how they are written (`results.json`, `REPORT.md`).

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use asyncmsg_bench::quic::{self, QuicCellResult, QuicRatioResult, QuicReport, RAW_BATCH};
use asyncmsg_bench::shm::{
    ALLOC, Kind, MIB, Metric, SMALL, ShmCellResult, ShmRatioResult, ShmReport, Sizes,
};
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

/// The shared-memory (two-process) matrix of a run.
#[derive(Debug, Clone)]
pub(crate) struct ShmSection {
    /// Measured rounds (after one warm-up round).
    pub(crate) rounds: usize,
    /// Messages or round trips per run of each cell.
    pub(crate) sizes: Sizes,
    pub(crate) report: ShmReport,
}

/// `{median, min, max, runs}` of `xs`, or null when there are none.
fn figures(xs: &[f64]) -> Value {
    match Summary::of(xs) {
        Some(s) => json!({ "median": s.median, "min": s.min, "max": s.max, "runs": xs }),
        None => Value::Null,
    }
}

fn kind_id(kind: Kind) -> &'static str {
    match kind {
        Kind::Throughput => "throughput",
        Kind::Latency => "latency",
        Kind::RoundTrip => "round_trip",
    }
}

fn metric_id(metric: Metric) -> &'static str {
    match metric {
        Metric::Rate => "throughput",
        Metric::P50 => "p50_latency",
        Metric::P99 => "p99_latency",
    }
}

impl ShmSection {
    fn cell_json(&self, c: &ShmCellResult) -> Value {
        let cell = c.cell;
        let mut v = json!({
            "id": cell.id(),
            "name": cell.name(),
            "transport": "shm",
            "kind": kind_id(cell.kind()),
            "payload_bytes": cell.payload(),
            "asyncmsg": cell.is_asyncmsg(),
            "per_run": self.sizes.of(cell),
        });
        let o = v.as_object_mut().expect("an object");
        match cell.kind() {
            Kind::Throughput => {
                o.insert("msg_per_s".into(), figures(&c.messages_per_s));
                o.insert("bytes_per_s".into(), figures(&c.bytes_per_s));
            }
            Kind::Latency | Kind::RoundTrip => {
                o.insert(
                    "latency_reported".into(),
                    json!(if cell.kind() == Kind::Latency {
                        "one way (round trip / 2)"
                    } else {
                        "whole round trip"
                    }),
                );
                o.insert("p50_ns".into(), figures(&c.p50_ns));
                o.insert("p99_ns".into(), figures(&c.p99_ns));
                if let Some(h) = &c.rtt {
                    o.insert(
                        "p999_ns_all_rounds".into(),
                        json!(cell.reported_ns(h.quantile(0.999))),
                    );
                    o.insert(
                        "mean_ns_all_rounds".into(),
                        json!(cell.reported_ns(h.mean())),
                    );
                    o.insert("round_trips_all_rounds".into(), json!(h.count()));
                }
            }
        }
        v
    }

    fn ratio_json(r: &ShmRatioResult) -> Value {
        let ratio = r.ratio;
        json!({
            "id": format!(
                "{} / {} ({})",
                ratio.numerator.id(),
                ratio.denominator.id(),
                metric_id(ratio.metric)
            ),
            "numerator": ratio.numerator.id(),
            "denominator": ratio.denominator.id(),
            "metric": metric_id(ratio.metric),
            "median": r.summary.median,
            "min": r.summary.min,
            "max": r.summary.max,
            "target": ratio.target,
            "target_bound": ratio.target.map(|_| match ratio.metric {
                Metric::Rate => "at_least",
                Metric::P50 | Metric::P99 => "at_most",
            }),
            "meets_target": r.met(),
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "rounds": self.rounds,
            "warm_up_rounds": 1,
            "sizes": {
                "small_messages": self.sizes.small,
                "alloc_messages": self.sizes.alloc,
                "mib_messages": self.sizes.mib,
                "round_trips": self.sizes.round_trips,
            },
            "cells": self.report.cells.iter().map(|c| self.cell_json(c)).collect::<Vec<_>>(),
            "ratios": self.report.ratios.iter().map(ShmSection::ratio_json).collect::<Vec<_>>(),
        })
    }

    fn markdown(&self) -> String {
        let s = &self.sizes;
        let mut o = String::new();
        o += "## Shared memory (two processes)\n\n";
        o += &format!(
            "asyncmsg over `shm://` between this program and a copy of it started as a \
             child, beside a Unix socket pair, eventfd and atomic ping-pong floors and \
             memcpy; the sending (or pinging) side pinned to CPU 0, the receiving (or \
             echoing) side to CPU 1 (memcpy: one thread on CPU 0). One warm-up round, \
             then {} rounds, cells interleaved; per run {} messages of {SMALL} B, {} of \
             {} KiB, {} of {} MiB, or {} timed round trips. Median (min–max) over the \
             rounds. Latency is one way (round trip / 2), request/reply the whole round \
             trip; a latency ratio's target is an upper bound, a throughput ratio's a \
             lower one.\n\n",
            self.rounds,
            s.small,
            s.alloc,
            ALLOC / 1024,
            s.mib,
            MIB / (1024 * 1024),
            s.round_trips
        );
        o += &self.report.markdown();
        o
    }
}

/// The QUIC (loopback) matrix of a run.
#[derive(Debug, Clone)]
pub(crate) struct QuicSection {
    /// Measured rounds (after one warm-up round).
    pub(crate) rounds: usize,
    /// Messages per run of each cell.
    pub(crate) sizes: quic::Sizes,
    pub(crate) report: QuicReport,
}

impl QuicSection {
    fn cell_json(&self, c: &QuicCellResult) -> Value {
        let cell = c.cell;
        json!({
            "id": cell.id(),
            "name": cell.name(),
            "transport": "quic",
            "kind": "throughput",
            "payload_bytes": cell.payload(),
            "asyncmsg": cell.is_asyncmsg(),
            "per_run": self.sizes.of(cell),
            "msg_per_s": figures(&c.messages_per_s),
            "bytes_per_s": figures(&c.bytes_per_s),
        })
    }

    fn ratio_json(r: &QuicRatioResult) -> Value {
        let ratio = r.ratio;
        json!({
            "id": format!(
                "{} / {} (throughput)",
                ratio.numerator.id(),
                ratio.denominator.id()
            ),
            "numerator": ratio.numerator.id(),
            "denominator": ratio.denominator.id(),
            "metric": "throughput",
            "median": r.summary.median,
            "min": r.summary.min,
            "max": r.summary.max,
            "target": ratio.target,
            "target_bound": ratio.target.map(|_| "at_least"),
            "meets_target": r.met(),
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "rounds": self.rounds,
            "warm_up_rounds": 1,
            "placement": "both nodes (or quinn ends) in this process, each on a tokio runtime of its own with two workers, unpinned; loopback",
            "sizes": {
                "small_messages": self.sizes.small,
                "per_message_write_messages": self.sizes.per_message,
                "mib_messages": self.sizes.mib,
            },
            "cells": self.report.cells.iter().map(|c| self.cell_json(c)).collect::<Vec<_>>(),
            "ratios": self.report.ratios.iter().map(QuicSection::ratio_json).collect::<Vec<_>>(),
        })
    }

    fn markdown(&self) -> String {
        let s = &self.sizes;
        let mut o = String::new();
        o += "## QUIC (loopback)\n\n";
        o += &format!(
            "asyncmsg between two nodes of this process over `quic://127.0.0.1:PORT/NAME` \
             (TLS 1.3, one trust root in a temporary directory), beside raw quinn with the \
             same TLS and transport settings: one stream of length-prefixed frames, \
             {RAW_BATCH} frames per `write_all` or one per `write_all`. Each node (each \
             quinn end) runs on a tokio runtime of its own with two workers, all in this \
             process, unpinned; asyncmsg's putting and getting threads are two more. \
             Timed from the first put (write) until the receiving side had the last \
             message; every message's index is checked in order, and every asyncmsg \
             delivery callback must come back `Ok`. One warm-up round, then {} rounds, \
             cells interleaved; per run {} messages of {} B ({} with one write each), or \
             {} of {} MiB. Median (min–max) over the rounds; ratios paired per round.\n\n",
            self.rounds,
            s.small,
            quic::SMALL,
            s.per_message,
            s.mib,
            quic::MIB / (1024 * 1024),
        );
        o += &self.report.markdown();
        o
    }
}

/// A whole bench run.
#[derive(Debug, Clone)]
pub(crate) struct Results {
    pub(crate) meta: Meta,
    pub(crate) cells: Vec<CellResult>,
    pub(crate) ratios: Vec<RatioResult>,
    pub(crate) shm: ShmSection,
    pub(crate) quic: QuicSection,
}

impl Results {
    pub(crate) fn to_json_string(&self) -> String {
        let v = json!({
            "schema": SCHEMA,
            "meta": self.meta.to_json(),
            "cells": self.cells.iter().map(CellResult::to_json).collect::<Vec<_>>(),
            "ratios": self.ratios.iter().map(RatioResult::to_json).collect::<Vec<_>>(),
            "shm": self.shm.to_json(),
            "quic": self.quic.to_json(),
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
        o += "\n";
        o += &self.shm.markdown();
        o += "\n";
        o += &self.quic.markdown();
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
    fn the_shm_section_has_its_tables_and_figures() {
        use asyncmsg_bench::shm::{SHM_RATIOS, ShmCell};

        let cell = |cell: ShmCell, rate: f64, p50: Vec<f64>| ShmCellResult {
            cell,
            messages_per_s: vec![rate; p50.len().max(5)],
            bytes_per_s: vec![rate * cell.payload() as f64; p50.len().max(5)],
            p99_ns: p50.iter().map(|v| v * 3.0).collect(),
            p50_ns: p50,
            rtt: None,
        };
        let ratio = SHM_RATIOS[0];
        let section = ShmSection {
            rounds: 5,
            sizes: Sizes::QUICK,
            report: ShmReport {
                cells: vec![
                    cell(ShmCell::AsyncmsgSmallTrigger64, 2e6, Vec::new()),
                    cell(ShmCell::UnixSocketBatch64, 4e6, Vec::new()),
                    cell(ShmCell::EventfdPingPong, 1e5, vec![4e3, 5e3, 6e3, 5e3, 5e3]),
                ],
                ratios: vec![ShmRatioResult {
                    ratio,
                    summary: Summary::of(&[0.5, 0.4, 0.6]).unwrap(),
                }],
            },
        };
        let md = section.markdown();
        assert!(
            md.starts_with("## Shared memory (two processes)\n\n"),
            "{md}"
        );
        for part in ["throughput", "one-way latency", "Ratios", "**no**"] {
            assert!(md.contains(part), "{part:?} missing from\n{md}");
        }
        let v = section.to_json();
        assert_eq!(v["rounds"], 5);
        let cells = v["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 3);
        assert_eq!(cells[0]["msg_per_s"]["median"], 2e6);
        assert_eq!(cells[0]["bytes_per_s"]["median"], 2e6 * 64.0);
        assert!(cells[0].get("p50_ns").is_none());
        assert_eq!(cells[2]["p50_ns"]["median"], 5e3);
        assert_eq!(cells[2]["p99_ns"]["max"], 18e3);
        assert!(cells[2].get("msg_per_s").is_none());
        let r = &v["ratios"][0];
        assert_eq!(r["median"], 0.5);
        assert_eq!(r["target_bound"], "at_least");
        assert_eq!(r["meets_target"], false);
    }

    #[test]
    fn the_quic_section_has_its_tables_and_figures() {
        use asyncmsg_bench::quic::{QUIC_RATIOS, QuicCell};

        let cell = |cell: QuicCell, rate: f64| QuicCellResult {
            cell,
            messages_per_s: vec![rate; 5],
            bytes_per_s: vec![rate * cell.payload() as f64; 5],
        };
        let section = QuicSection {
            rounds: 5,
            sizes: quic::Sizes::QUICK,
            report: QuicReport {
                cells: vec![
                    cell(QuicCell::AsyncmsgSmallTrigger64, 2e6),
                    cell(QuicCell::RawBatch64, 8e6),
                    cell(QuicCell::RawMib, 600.0),
                ],
                ratios: vec![QuicRatioResult {
                    ratio: QUIC_RATIOS[0],
                    summary: Summary::of(&[0.25, 0.2, 0.3]).unwrap(),
                }],
            },
        };
        let md = section.markdown();
        assert!(md.starts_with("## QUIC (loopback)\n\n"), "{md}");
        for part in ["raw quinn 64B x64", "QUIC ratios", "≥ 0.5", "**no**"] {
            assert!(md.contains(part), "{part:?} missing from\n{md}");
        }
        let v = section.to_json();
        assert_eq!(v["rounds"], 5);
        let cells = v["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 3);
        assert_eq!(cells[0]["id"], "quic/64B/asyncmsg-trigger-64");
        assert_eq!(cells[0]["msg_per_s"]["median"], 2e6);
        assert_eq!(cells[2]["bytes_per_s"]["median"], 600.0 * MIB as f64);
        assert_eq!(cells[2]["per_run"], quic::Sizes::QUICK.mib);
        let r = &v["ratios"][0];
        assert_eq!(r["median"], 0.25);
        assert_eq!(r["target"], 0.5);
        assert_eq!(r["meets_target"], false);
    }

    #[test]
    fn rates_read_well() {
        assert_eq!(rate(16_400_000.0), "16.40 M");
        assert_eq!(rate(1_500.0), "1.5 k");
    }
}
