//! `cargo xtask compare A.json B.json`: the change from run A to run B as a
//! markdown table (cells by messages/s, then the asyncmsg/peer ratios).
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

/// `(id, median, min, max)` of every entry of `v[key]`.
fn rows(v: &Value, key: &str) -> Vec<(String, f64, f64, f64)> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some((
                        e["id"].as_str()?.to_string(),
                        e["median"].as_f64()?,
                        e["min"].as_f64()?,
                        e["max"].as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
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
    o += &format!("B: {} ({})\n\n", describe(&b), b_path.display());

    o += "| cell | A msg/s (median) | B msg/s (median) | change | B min – max |\n";
    o += "|---|---:|---:|---:|---:|\n";
    let (ca, cb) = (rows(&a, "cells"), rows(&b, "cells"));
    for id in union(&ca, &cb) {
        let x = ca.iter().find(|r| r.0 == id);
        let y = cb.iter().find(|r| r.0 == id);
        o += &format!(
            "| {id} | {} | {} | {} | {} |\n",
            x.map_or("—".into(), |r| rate(r.1)),
            y.map_or("—".into(), |r| rate(r.1)),
            match (x, y) {
                (Some(x), Some(y)) => change(x.1, y.1),
                _ => "—".into(),
            },
            y.map_or("—".into(), |r| format!("{} – {}", rate(r.2), rate(r.3))),
        );
    }

    o += "\n| ratio | A (median) | B (median) | change | B min – max |\n";
    o += "|---|---:|---:|---:|---:|\n";
    let (ra, rb) = (rows(&a, "ratios"), rows(&b, "ratios"));
    for id in union(&ra, &rb) {
        let x = ra.iter().find(|r| r.0 == id);
        let y = rb.iter().find(|r| r.0 == id);
        o += &format!(
            "| {id} | {} | {} | {} | {} |\n",
            x.map_or("—".into(), |r| format!("{:.2}×", r.1)),
            y.map_or("—".into(), |r| format!("{:.2}×", r.1)),
            match (x, y) {
                (Some(x), Some(y)) => change(x.1, y.1),
                _ => "—".into(),
            },
            y.map_or("—".into(), |r| format!("{:.2}× – {:.2}×", r.2, r.3)),
        );
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
