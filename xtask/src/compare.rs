//! `cargo xtask compare A.json B.json`: the change from run A to run B as
//! markdown tables: the ratios first (each measured within one run, the rows
//! to read), then the rate cells by messages/s and bytes/s, then the time
//! cells by p50 and p99. Cells and ratios are matched by id; one only in A
//! or only in B shows a dash on the other side.
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

/// `(id, median, min, max)` of the cells' `figure`, for the cells that
/// have it.
fn cell_rows(v: &Value, figure: &str) -> Vec<(String, f64, f64, f64)> {
    extract(&v["cells"], Some(figure))
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
    let us = |x: f64| format!("{:.2} µs", x / 1e3);
    table(
        &mut o,
        ["ratio", "A (median)", "B (median)"],
        &rows(&a, "ratios"),
        &rows(&b, "ratios"),
        times,
    );
    for (figure, label, show) in [
        ("msg_per_s", "cell (msg/s)", &rate as &dyn Fn(f64) -> String),
        ("bytes_per_s", "cell (bytes/s)", &bytes_rate),
        ("p50_ns", "cell (p50)", &us),
        ("p99_ns", "cell (p99)", &us),
    ] {
        let (ra, rb) = (cell_rows(&a, figure), cell_rows(&b, figure));
        // bytes/s only for the cells whose payload makes it the figure.
        let keep = |r: &(String, f64, f64, f64)| {
            figure != "bytes_per_s" || r.0.contains("KiB/") || r.0.contains("MiB/")
        };
        let ra: Vec<_> = ra.into_iter().filter(keep).collect();
        let rb: Vec<_> = rb.into_iter().filter(keep).collect();
        table(&mut o, [label, "A (median)", "B (median)"], &ra, &rb, show);
    }
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

    #[test]
    fn two_runs_are_compared_by_id() {
        let r = crate::report::tests::fake_results();
        let dir = std::env::temp_dir().join(format!("xtask-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.json");
        std::fs::write(&a, r.to_json_string()).unwrap();
        let mut v: Value = serde_json::from_str(&r.to_json_string()).unwrap();
        // B: the first cell twice as fast, the last cell gone.
        let cells = v["cells"].as_array_mut().unwrap();
        let first = cells[0]["id"].as_str().unwrap().to_string();
        let m = cells[0]["msg_per_s"]["median"].as_f64().unwrap();
        cells[0]["msg_per_s"]["median"] = serde_json::json!(m * 2.0);
        let gone = cells.pop().unwrap()["id"].as_str().unwrap().to_string();
        let b = dir.join("b.json");
        std::fs::write(&b, serde_json::to_string(&v).unwrap()).unwrap();
        let out = compare(&a, &b).unwrap();
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("| {first} |")))
            .unwrap();
        assert!(row.contains("+100.0%"), "{row}");
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("| {gone} |")) && l.contains("—"))
        );
        assert!(out.contains("| ratio |"));
        let mut bad = v.clone();
        bad["schema"] = serde_json::json!("other");
        std::fs::write(&b, serde_json::to_string(&bad).unwrap()).unwrap();
        assert!(compare(&a, &b).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
