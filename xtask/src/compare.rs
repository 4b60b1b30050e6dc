//! `cargo xtask compare A.json B.json`: the change from run A to run B as
//! markdown tables (in-process cells by messages/s and the asyncmsg/peer
//! ratios; then the shared-memory cells by messages/s and p50 latency, and
//! their ratios; then the QUIC cells by messages/s and bytes/s, and their
//! ratios).
//!
//! Absolute figures drift 2–10× between runs on a shared VM; the ratio rows,
//! each measured within one run, are the ones to read.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::report::{SCHEMA, rate};

fn load(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if v["schema"] != SCHEMA {
        bail!(
            "{}: schema {} is not {SCHEMA:?}",
            path.display(),
            v["schema"]
        );
    }
    Ok(v)
}

/// `(id, median, min, max)` of every entry of the array `list`: of the
/// entry itself, or of its object `figure` (for example `msg_per_s` or
/// `p50_ns`), skipping entries without it.
fn extract(list: &Value, figure: Option<&str>) -> Vec<(String, f64, f64, f64)> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    let f = match figure {
                        Some(name) => e.get(name)?,
                        None => e,
                    };
                    Some((
                        e["id"].as_str()?.to_string(),
                        f["median"].as_f64()?,
                        f["min"].as_f64()?,
                        f["max"].as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `(id, median, min, max)` of every entry of `v[key]`.
fn rows(v: &Value, key: &str) -> Vec<(String, f64, f64, f64)> {
    extract(&v[key], None)
}

/// `(id, median, min, max)` of the shared-memory cells' `figure`, for the
/// cells that have it.
fn shm_rows(v: &Value, figure: &str) -> Vec<(String, f64, f64, f64)> {
    extract(&v["shm"]["cells"], Some(figure))
}

/// `(id, median, min, max)` of the QUIC cells' `figure`.
fn quic_rows(v: &Value, figure: &str) -> Vec<(String, f64, f64, f64)> {
    extract(&v["quic"]["cells"], Some(figure))
}

/// `x` bytes/s, readable.
fn bytes_rate(x: f64) -> String {
    format!("{}B/s", rate(x))
}

/// One markdown table of `rows` from A and B (nothing when both are empty),
/// each figure shown by `show`; `labels` names the first three columns.
fn table(
    o: &mut String,
    labels: [&str; 3],
    ra: &[(String, f64, f64, f64)],
    rb: &[(String, f64, f64, f64)],
    show: impl Fn(f64) -> String,
) {
    if ra.is_empty() && rb.is_empty() {
        return;
    }
    let [first, a, b] = labels;
    *o += &format!("\n| {first} | {a} | {b} | change | B min – max |\n");
    *o += "|---|---:|---:|---:|---:|\n";
    for id in union(ra, rb) {
        let x = ra.iter().find(|r| r.0 == id);
        let y = rb.iter().find(|r| r.0 == id);
        *o += &format!(
            "| {id} | {} | {} | {} | {} |\n",
            x.map_or("—".into(), |r| show(r.1)),
            y.map_or("—".into(), |r| show(r.1)),
            match (x, y) {
                (Some(x), Some(y)) => change(x.1, y.1),
                _ => "—".into(),
            },
            y.map_or("—".into(), |r| format!("{} – {}", show(r.2), show(r.3))),
        );
    }
}

fn describe(v: &Value) -> String {
    let m = &v["meta"];
    let rev = m["git_rev"].as_str().unwrap_or("?");
    format!(
        "git `{}`{} on `{}`, {}{}",
        rev.get(..12).unwrap_or(rev),
        if m["git_dirty"] == true {
            " (dirty)"
        } else {
            ""
        },
        m["host"].as_str().unwrap_or("?"),
        m["date"].as_str().unwrap_or("?"),
        if m["quick"] == true { ", quick" } else { "" }
    )
}

fn change(a: f64, b: f64) -> String {
    if a == 0.0 {
        return "n/a".into();
    }
    format!("{:+.1}%", (b / a - 1.0) * 100.0)
}

/// The comparison as markdown.
pub(crate) fn compare(a_path: &Path, b_path: &Path) -> Result<String> {
    let (a, b) = (load(a_path)?, load(b_path)?);
    let mut o = String::new();
    o += &format!("A: {} ({})\n\n", describe(&a), a_path.display());
    o += &format!("B: {} ({})\n", describe(&b), b_path.display());
    let times = |x: f64| format!("{x:.2}×");
    let cells = ["cell", "A msg/s (median)", "B msg/s (median)"];
    table(&mut o, cells, &rows(&a, "cells"), &rows(&b, "cells"), rate);
    let ratio = ["ratio", "A (median)", "B (median)"];
    table(
        &mut o,
        ratio,
        &rows(&a, "ratios"),
        &rows(&b, "ratios"),
        times,
    );
    // The shared-memory matrix, when either run has it.
    let (ma, mb) = (shm_rows(&a, "msg_per_s"), shm_rows(&b, "msg_per_s"));
    table(
        &mut o,
        ["shm cell (msg/s)", "A (median)", "B (median)"],
        &ma,
        &mb,
        rate,
    );
    let (pa, pb) = (shm_rows(&a, "p50_ns"), shm_rows(&b, "p50_ns"));
    let us = |x: f64| format!("{:.2} µs", x / 1e3);
    table(
        &mut o,
        ["shm cell (p50)", "A (median)", "B (median)"],
        &pa,
        &pb,
        us,
    );
    table(
        &mut o,
        ["shm ratio", "A (median)", "B (median)"],
        &rows(&a["shm"], "ratios"),
        &rows(&b["shm"], "ratios"),
        times,
    );
    // The QUIC matrix, when either run has it.
    table(
        &mut o,
        ["quic cell (msg/s)", "A (median)", "B (median)"],
        &quic_rows(&a, "msg_per_s"),
        &quic_rows(&b, "msg_per_s"),
        rate,
    );
    table(
        &mut o,
        ["quic cell (bytes/s)", "A (median)", "B (median)"],
        &quic_rows(&a, "bytes_per_s"),
        &quic_rows(&b, "bytes_per_s"),
        bytes_rate,
    );
    table(
        &mut o,
        ["quic ratio", "A (median)", "B (median)"],
        &rows(&a["quic"], "ratios"),
        &rows(&b["quic"], "ratios"),
        times,
    );
    Ok(o)
}

/// Ids of `a` in order, then those only in `b`.
fn union(a: &[(String, f64, f64, f64)], b: &[(String, f64, f64, f64)]) -> Vec<String> {
    let mut ids: Vec<String> = a.iter().map(|r| r.0.clone()).collect();
    for r in b {
        if !ids.contains(&r.0) {
            ids.push(r.0.clone());
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shared_memory_rows_are_compared() {
        let run = |rate: f64, p50: f64, ratio: f64| {
            json!({
                "cells": [],
                "ratios": [],
                "shm": {
                    "cells": [
                        { "id": "shm/64B/x", "msg_per_s": { "median": rate, "min": rate, "max": rate } },
                        { "id": "shm-latency/64B/y", "p50_ns": { "median": p50, "min": p50, "max": p50 } }
                    ],
                    "ratios": [ { "id": "x / z", "median": ratio, "min": ratio, "max": ratio } ]
                }
            })
        };
        let (a, b) = (run(1e6, 2000.0, 0.5), run(2e6, 1000.0, 1.0));
        let mut o = String::new();
        table(
            &mut o,
            ["shm cell (msg/s)", "A (median)", "B (median)"],
            &shm_rows(&a, "msg_per_s"),
            &shm_rows(&b, "msg_per_s"),
            rate,
        );
        table(
            &mut o,
            ["shm cell (p50)", "A (median)", "B (median)"],
            &shm_rows(&a, "p50_ns"),
            &shm_rows(&b, "p50_ns"),
            |x| format!("{x}"),
        );
        table(
            &mut o,
            ["shm ratio", "A (median)", "B (median)"],
            &rows(&a["shm"], "ratios"),
            &rows(&b["shm"], "ratios"),
            |x| format!("{x:.2}×"),
        );
        assert!(o.contains("| shm/64B/x |") && o.contains("+100.0%"), "{o}");
        assert!(
            o.contains("| shm-latency/64B/y | 2000 | 1000 | -50.0% |"),
            "{o}"
        );
        assert!(o.contains("| x / z | 0.50× | 1.00× | +100.0% |"), "{o}");
        // Runs without the matrix add nothing.
        let mut empty = String::new();
        table(
            &mut empty,
            ["t", "a", "b"],
            &shm_rows(&json!({}), "msg_per_s"),
            &[],
            rate,
        );
        assert!(empty.is_empty());
    }

    #[test]
    fn quic_rows_and_ratios_are_compared() {
        let run = |rate: f64, ratio: f64| {
            json!({
                "schema": SCHEMA,
                "meta": { "git_rev": "0123456789abcdef", "host": "h", "date": "d" },
                "cells": [],
                "ratios": [],
                "quic": {
                    "cells": [
                        {
                            "id": "quic/64B/asyncmsg-trigger-64",
                            "msg_per_s": { "median": rate, "min": rate, "max": rate },
                            "bytes_per_s": { "median": rate * 64.0, "min": rate * 64.0, "max": rate * 64.0 }
                        }
                    ],
                    "ratios": [ { "id": "q / r (throughput)", "median": ratio, "min": ratio, "max": ratio } ]
                }
            })
        };
        let dir = std::env::temp_dir().join(format!("xtask-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.json"), dir.join("b.json"));
        std::fs::write(&a, run(2e6, 0.25).to_string()).unwrap();
        std::fs::write(&b, run(3e6, 0.5).to_string()).unwrap();
        let o = compare(&a, &b).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            o.contains("| quic/64B/asyncmsg-trigger-64 | 2.00 M | 3.00 M | +50.0% |"),
            "{o}"
        );
        assert!(o.contains("| quic cell (bytes/s) |"), "{o}");
        assert!(o.contains("| 128.00 MB/s | 192.00 MB/s |"), "{o}");
        assert!(
            o.contains("| q / r (throughput) | 0.25× | 0.50× | +100.0% |"),
            "{o}"
        );
        // A run without the QUIC matrix (older results) compares too.
        let old = json!({ "schema": SCHEMA, "meta": {}, "cells": [], "ratios": [] });
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&a, old.to_string()).unwrap();
        let o = compare(&a, &a).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!o.contains("quic"), "{o}");
    }
}
