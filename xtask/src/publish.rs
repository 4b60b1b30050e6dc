//! `cargo xtask publish [DIR]` (and `bench --publish`): copies a finished
//! full run's outputs from `DIR` (default `target/bench`) into the
//! repository: `REPORT.md` as `bench/RESULTS.md` (its chart links pointing
//! at `results/`), the charts and `results.json` into `bench/results/`.
//! A quick or filtered run is refused: what is committed covers everything.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::report::SCHEMA;

/// Copies the run in `from` into `bench_dir`; returns what it wrote.
pub(crate) fn publish(from: &Path, bench_dir: &Path) -> Result<Vec<String>> {
    let json_path = from.join("results.json");
    let json = std::fs::read_to_string(&json_path)
        .with_context(|| format!("reading {}", json_path.display()))?;
    let v: Value = serde_json::from_str(&json).context("parsing results.json")?;
    if v["schema"] != SCHEMA {
        bail!(
            "{}: schema {} is not {SCHEMA:?}",
            json_path.display(),
            v["schema"]
        );
    }
    let meta = &v["meta"];
    if meta["quick"] != false
        || meta["filters"].as_array().is_none_or(|f| !f.is_empty())
        || meta["peers"] != true
    {
        bail!(
            "only a full run of every cell with the peers is published (no --quick, --filter or --no-peers)"
        );
    }
    let report = std::fs::read_to_string(from.join("REPORT.md")).context("reading REPORT.md")?;
    let out = bench_dir.join("results");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for e in std::fs::read_dir(&out)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "svg") {
            std::fs::remove_file(&p)?;
        }
    }
    let mut charts = 0;
    let chart_dir = from.join("charts");
    if chart_dir.is_dir() {
        for e in std::fs::read_dir(&chart_dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "svg") {
                let name = p.file_name().context("a chart's name")?;
                std::fs::copy(&p, out.join(name))?;
                charts += 1;
            }
        }
    }
    std::fs::write(out.join("results.json"), json)?;
    let results = bench_dir.join("RESULTS.md");
    std::fs::write(&results, report.replace("](charts/", "](results/"))
        .with_context(|| format!("writing {}", results.display()))?;
    Ok(vec![
        results.display().to_string(),
        format!("{charts} charts and results.json in {}", out.display()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_run_is_copied_and_a_quick_one_refused() {
        let base = std::env::temp_dir().join(format!("xtask-publish-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (from, bench) = (base.join("run"), base.join("bench"));
        let quick = crate::report::tests::fake_results();
        quick.write(&from, "charts").unwrap();
        assert!(publish(&from, &bench).is_err(), "a quick run was published");

        // The same run, as a full one.
        let text = std::fs::read_to_string(from.join("results.json")).unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v["meta"]["quick"] = Value::Bool(false);
        std::fs::write(from.join("results.json"), v.to_string()).unwrap();
        publish(&from, &bench).unwrap();
        let md = std::fs::read_to_string(bench.join("RESULTS.md")).unwrap();
        assert!(md.contains("](results/"));
        assert!(!md.contains("](charts/"));
        let svgs = std::fs::read_dir(bench.join("results"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "svg")
            })
            .count();
        assert_eq!(svgs, quick.charts().len());
        assert!(bench.join("results/results.json").is_file());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
