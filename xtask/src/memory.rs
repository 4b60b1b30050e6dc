//! The memory probes of `cargo xtask bench`: for a few throughput cells,
//! allocations per message in the steady state and peak RSS after a short and
//! a ten times longer run.
//!
//! Each probe runs in a fresh process (this program started again with
//! [`PROBE_ENV`] naming the cell), so that no other cell's memory is in its
//! figures. The child runs the cell with `short` and then `long` messages:
//!
//! * **allocations per message** = (allocations of the long run − those of
//!   the short run) / (long − short). Setup and teardown allocate the same in
//!   both runs and cancel out; what remains is what each message costs. The
//!   counts come from the counting global allocator xtask installs
//!   (`asyncmsg_bench::alloc::Counting`) and cover every thread of the
//!   process — for shared-memory cells that is the receiving process (the
//!   sender is the cell's own child process).
//! * **peak RSS**: `VmHWM` after the short run, then reset
//!   (`/proc/self/clear_refs`) and read again after the long run. Flat memory
//!   means the long run peaks no higher than the short one: bounded by the
//!   configured buffers, not by the messages moved.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use asyncmsg_bench::alloc;
use asyncmsg_bench::matrix::{self, Ctx, Pattern, Spec};
use serde_json::{Value, json};

/// Set (to a cell id) in the environment of a probe's process.
pub(crate) const PROBE_ENV: &str = "ASYNCMSG_XTASK_MEMORY_PROBE";
/// The probe's message counts, `short,long`.
const COUNTS_ENV: &str = "ASYNCMSG_XTASK_MEMORY_COUNTS";

/// Messages of the short and the long run (BENCH.md: 100 k and 1 M).
pub(crate) const SHORT: u64 = 100_000;
pub(crate) const LONG: u64 = 1_000_000;

/// The longest a probe may take.
const PROBE_LIMIT: Duration = Duration::from_secs(300);

/// A probe to run: which cell, and how many messages.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) asyncmsg: bool,
    pub(crate) short: u64,
    pub(crate) long: u64,
}

/// What a probe measured.
#[derive(Debug, Clone)]
pub(crate) struct MemoryResult {
    pub(crate) probe: Probe,
    pub(crate) outcome: Result<Measured, String>,
}

/// The figures of one probe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    pub(crate) allocs_per_message: f64,
    pub(crate) bytes_per_message: f64,
    pub(crate) rss_short_kib: u64,
    pub(crate) rss_long_kib: u64,
}

impl Measured {
    /// Peak RSS of the long run over the short one's, minus one.
    pub(crate) fn rss_growth(&self) -> f64 {
        self.rss_long_kib as f64 / self.rss_short_kib.max(1) as f64 - 1.0
    }
}

impl MemoryResult {
    pub(crate) fn to_json(&self) -> Value {
        let p = &self.probe;
        match &self.outcome {
            Ok(m) => json!({
                "id": p.id, "name": p.name, "asyncmsg": p.asyncmsg,
                "short_messages": p.short, "long_messages": p.long,
                "allocations_per_message": m.allocs_per_message,
                "bytes_allocated_per_message": m.bytes_per_message,
                "peak_rss_short_kib": m.rss_short_kib,
                "peak_rss_long_kib": m.rss_long_kib,
                "peak_rss_growth": m.rss_growth(),
            }),
            Err(e) => json!({ "id": p.id, "name": p.name, "error": e }),
        }
    }
}

/// The probes for a run of `specs`: the 64 B one-sender throughput cells of
/// every transport (asyncmsg and peers), one asyncmsg cell per other payload
/// run, at most one cell per id.
pub(crate) fn probes(specs: &[Spec]) -> Vec<Probe> {
    let chosen = specs.iter().filter(|s| {
        s.pattern == Pattern::Throughput
            && s.payload == 64
            && !s.id.contains("1-per-write")
            && !s.id.contains("memcpy")
    });
    chosen
        .map(|s| Probe {
            id: s.id.clone(),
            name: s.name.clone(),
            asyncmsg: s.is_asyncmsg(),
            short: SHORT,
            long: LONG,
        })
        .collect()
}

/// Runs `probe` in a fresh process of this program.
pub(crate) fn measure(probe: &Probe, _quick: bool) -> MemoryResult {
    let outcome = run_child(probe).map_err(|e| format!("{e:#}"));
    MemoryResult {
        probe: probe.clone(),
        outcome,
    }
}

fn run_child(probe: &Probe) -> Result<Measured> {
    let exe = std::env::current_exe().context("finding the running executable")?;
    let child = Command::new(exe)
        .env(PROBE_ENV, &probe.id)
        .env(COUNTS_ENV, format!("{},{}", probe.short, probe.long))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the probe's process")?;
    // A probe is a few seconds of work; one that hangs must not hang the run.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(PROBE_LIMIT) {
        Ok(out) => out.context("waiting for the probe")?,
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            bail!("the probe took more than {PROBE_LIMIT:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the probe failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the probe printed no figures")?;
    let v: Value = serde_json::from_str(line).context("parsing the probe's figures")?;
    let get = |k: &str| v[k].as_u64().with_context(|| format!("probe figure {k}"));
    let (a1, a2, b1, b2) = (
        get("allocs_short")?,
        get("allocs_long")?,
        get("bytes_short")?,
        get("bytes_long")?,
    );
    let span = (probe.long - probe.short) as f64;
    Ok(Measured {
        allocs_per_message: (a2 as f64 - a1 as f64).max(0.0) / span,
        bytes_per_message: (b2 as f64 - b1 as f64).max(0.0) / span,
        rss_short_kib: get("rss_short_kib")?,
        rss_long_kib: get("rss_long_kib")?,
    })
}

/// If this process is a memory probe ([`PROBE_ENV`] set), runs it, prints
/// its figures as one JSON line and exits; otherwise returns at once.
pub(crate) fn child_main() {
    let Ok(id) = std::env::var(PROBE_ENV) else {
        return;
    };
    match probe_child(&id) {
        Ok(line) => {
            println!("{line}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("memory probe {id}: {e:#}");
            std::process::exit(1);
        }
    }
}

fn probe_child(id: &str) -> Result<String> {
    if !alloc::installed() {
        bail!("the counting allocator is not installed");
    }
    let counts = std::env::var(COUNTS_ENV).context("the probe's counts")?;
    let (short, long) = counts
        .split_once(',')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .context("malformed probe counts")?;
    let ctx = Ctx::new()?;
    let spec = matrix::specs(&ctx)
        .into_iter()
        .find(|s| s.id == id)
        .with_context(|| format!("no cell {id}"))?;
    let c0 = alloc::counts();
    (spec.run)(short).context("the short run")?;
    let c1 = alloc::counts();
    let rss_short = alloc::peak_rss_kib().context("reading VmHWM")?;
    if !alloc::reset_peak_rss() {
        bail!("cannot reset the peak RSS (/proc/self/clear_refs)");
    }
    (spec.run)(long).context("the long run")?;
    let c2 = alloc::counts();
    let rss_long = alloc::peak_rss_kib().context("reading VmHWM")?;
    Ok(json!({
        "allocs_short": c1.allocations - c0.allocations,
        "allocs_long": c2.allocations - c1.allocations,
        "bytes_short": c1.bytes - c0.bytes,
        "bytes_long": c2.bytes - c1.bytes,
        "rss_short_kib": rss_short,
        "rss_long_kib": rss_long,
    })
    .to_string())
}
