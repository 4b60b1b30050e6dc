//! The benchmark matrix as one list: every cell of every transport (asyncmsg
//! and its peers) is a [`Spec`], every comparison a [`RatioSpec`] between two
//! cells by id, and [`run_matrix`] runs them interleaved round by round and
//! pairs the ratios per round.
//!
//! The transport modules each contribute their cells ([`crate::inproc::specs`],
//! [`crate::shm::specs`], [`crate::quic::specs`]) and ratios; [`specs`] and
//! [`ratios`] gather them. `cargo xtask bench`, the criterion benches and the
//! tests all run cells through this list, so a figure means the same wherever
//! it appears.
//!
//! ```no_run
//! use asyncmsg_bench::matrix::{self, Ctx, Scale, run_matrix};
//! let ctx = Ctx::new().unwrap();
//! let specs: Vec<_> = matrix::specs(&ctx)
//!     .into_iter()
//!     .filter(|s| s.in_quick)
//!     .collect();
//! let report = run_matrix(&specs, &matrix::ratios(), 5, Scale::Quick, |_| {});
//! assert!(report.cells.iter().all(|c| !c.per_round.is_empty() || c.error.is_some()));
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::Summary;
use crate::quic::TrustHome;
use crate::shm::{Histogram, Launcher, Run};

/// What a cell moves messages over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// Two threads of one process.
    InProcess,
    /// Two processes on one host.
    SharedMemory,
    /// Two nodes over the network (loopback).
    Network,
}

impl Transport {
    /// Every transport, in report order.
    pub const ALL: [Transport; 3] = [
        Transport::InProcess,
        Transport::SharedMemory,
        Transport::Network,
    ];

    /// The first part of every cell id of this transport.
    pub fn id(self) -> &'static str {
        match self {
            Transport::InProcess => "inproc",
            Transport::SharedMemory => "shm",
            Transport::Network => "net",
        }
    }

    /// A title for reports.
    pub fn title(self) -> &'static str {
        match self {
            Transport::InProcess => "In process (two threads)",
            Transport::SharedMemory => "Shared memory (two processes)",
            Transport::Network => "Network (QUIC and peers, loopback)",
        }
    }
}

/// What a cell measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    /// One sender, one receiver: messages/s and bytes/s.
    Throughput,
    /// Four senders into one receiver: messages/s and bytes/s.
    FanIn,
    /// Ping-pong, both sides spinning; one-way latency (round trip / 2).
    LatencyBusy,
    /// Ping-pong, both sides sleeping in the kernel; one-way latency.
    LatencyBlocking,
    /// Request/reply; the whole round trip.
    RoundTrip,
    /// How late a time trigger fires after its deadline.
    TimeTrigger,
}

impl Pattern {
    /// Every pattern, in report order.
    pub const ALL: [Pattern; 6] = [
        Pattern::Throughput,
        Pattern::FanIn,
        Pattern::LatencyBusy,
        Pattern::LatencyBlocking,
        Pattern::RoundTrip,
        Pattern::TimeTrigger,
    ];

    /// The second part of every cell id of this pattern.
    pub fn id(self) -> &'static str {
        match self {
            Pattern::Throughput => "throughput",
            Pattern::FanIn => "fan-in-4",
            Pattern::LatencyBusy => "latency-busy",
            Pattern::LatencyBlocking => "latency-blocking",
            Pattern::RoundTrip => "round-trip",
            Pattern::TimeTrigger => "time-trigger",
        }
    }

    /// A title for reports.
    pub fn title(self) -> &'static str {
        match self {
            Pattern::Throughput => "throughput, one sender",
            Pattern::FanIn => "throughput, four senders into one receiver",
            Pattern::LatencyBusy => "one-way latency, busy-polling (round trip / 2)",
            Pattern::LatencyBlocking => "one-way latency, blocking wake-ups (round trip / 2)",
            Pattern::RoundTrip => "request/reply round trip",
            Pattern::TimeTrigger => "time trigger: lateness after the deadline",
        }
    }

    /// Whether the cell's figure is a rate (else a time distribution).
    pub fn is_rate(self) -> bool {
        matches!(self, Pattern::Throughput | Pattern::FanIn)
    }

    /// The time reported for a recorded sample of `ns`: half of it for the
    /// ping-pongs (one way), all of it otherwise.
    pub fn reported_ns(self, ns: f64) -> f64 {
        match self {
            Pattern::LatencyBusy | Pattern::LatencyBlocking => ns / 2.0,
            _ => ns,
        }
    }
}

/// How long the runs of a matrix are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// A handful of messages: checks that every cell works (tests).
    Tiny,
    /// `cargo xtask bench --quick`.
    Quick,
    /// The full matrix.
    Full,
}

/// Messages (or round trips, or time-trigger samples) per measured run of a
/// cell, by [`Scale`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Per run of the full matrix.
    pub full: u64,
    /// Per run of the quick matrix.
    pub quick: u64,
    /// Per run in tests.
    pub tiny: u64,
}

impl Size {
    /// `full` for the full matrix, a tenth of it for the quick one, a
    /// thousandth (at least 10) for tests.
    pub const fn scaled(full: u64) -> Size {
        Size {
            full,
            quick: if full / 10 > 0 { full / 10 } else { 1 },
            tiny: if full / 1000 > 10 { full / 1000 } else { 10 },
        }
    }

    /// The count for `scale`.
    pub fn of(self, scale: Scale) -> u64 {
        match scale {
            Scale::Tiny => self.tiny,
            Scale::Quick => self.quick,
            Scale::Full => self.full,
        }
    }
}

/// Runs a cell once with `n` messages and checks what arrived.
pub type Runner = Arc<dyn Fn(u64) -> Result<Run> + Send + Sync>;

/// One cell: one implementation, one transport, one pattern, one payload.
#[derive(Clone)]
pub struct Spec {
    /// Stable id, `transport/pattern/payload/implementation-and-variant`, e.g.
    /// `inproc/throughput/64B/asyncmsg-t64`; `results.json` and `compare` key
    /// on it.
    pub id: String,
    /// A short label for tables and charts, e.g. `asyncmsg trigger 64`.
    pub name: String,
    /// What it moves messages over.
    pub transport: Transport,
    /// What it measures.
    pub pattern: Pattern,
    /// Bytes per message (0 for pure wake-up ping-pongs).
    pub payload: usize,
    /// `asyncmsg`, or the peer's name (`crossbeam-channel`, `iceoryx2`, …).
    pub implementation: &'static str,
    /// Messages per run.
    pub size: Size,
    /// Whether `cargo xtask bench --quick` runs it.
    pub in_quick: bool,
    /// Runs it.
    pub run: Runner,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("size", &self.size)
            .field("in_quick", &self.in_quick)
            .finish_non_exhaustive()
    }
}

impl Spec {
    /// A cell with the id made of its parts; `variant` names the
    /// implementation's setting (`t64`, `64-per-write`, …; empty for none).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        transport: Transport,
        pattern: Pattern,
        payload: usize,
        implementation: &'static str,
        variant: &str,
        name: impl Into<String>,
        size: Size,
        run: impl Fn(u64) -> Result<Run> + Send + Sync + 'static,
    ) -> Spec {
        Spec {
            id: cell_id(transport, pattern, payload, implementation, variant),
            name: name.into(),
            transport,
            pattern,
            payload,
            implementation,
            size,
            in_quick: false,
            run: Arc::new(run),
        }
    }

    /// The same cell, part of the quick matrix.
    pub fn quick(mut self) -> Spec {
        self.in_quick = true;
        self
    }

    /// Whether the cell measures asyncmsg (the others are peers or floors).
    pub fn is_asyncmsg(&self) -> bool {
        self.implementation == "asyncmsg"
    }
}

/// The id of a cell: `transport/pattern/payload/implementation[-variant]`.
pub fn cell_id(
    transport: Transport,
    pattern: Pattern,
    payload: usize,
    implementation: &str,
    variant: &str,
) -> String {
    let sep = if variant.is_empty() { "" } else { "-" };
    format!(
        "{}/{}/{}/{implementation}{sep}{variant}",
        transport.id(),
        pattern.id(),
        payload_label(payload)
    )
}

/// `8B`, `64B`, `1KiB`, `64KiB`, `1MiB`: a payload as it appears in ids.
pub fn payload_label(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{}MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{}KiB", bytes >> 10)
    } else {
        format!("{bytes}B")
    }
}

/// Which figure of a cell a ratio compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Messages per second.
    Rate,
    /// Bytes per second.
    Bytes,
    /// The reported time at the median.
    P50,
    /// The reported time at the 99th percentile.
    P99,
}

impl Metric {
    /// A label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Rate => "msg/s",
            Metric::Bytes => "bytes/s",
            Metric::P50 => "p50",
            Metric::P99 => "p99",
        }
    }

    /// Whether a larger figure is better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Rate | Metric::Bytes)
    }
}

/// A bound BENCH.md sets on a ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The ratio must be at least this.
    AtLeast(f64),
    /// The ratio must be at most this.
    AtMost(f64),
}

impl Bound {
    /// Whether `v` meets the bound.
    pub fn met(self, v: f64) -> bool {
        match self {
            Bound::AtLeast(t) => v >= t,
            Bound::AtMost(t) => v <= t,
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::AtLeast(t) => write!(f, "≥ {t}"),
            Bound::AtMost(t) => write!(f, "≤ {t}"),
        }
    }
}

/// `numerator / denominator` of one figure, paired per round, with BENCH.md's
/// target where it sets one.
#[derive(Debug, Clone)]
pub struct RatioSpec {
    /// The cell id on top (asyncmsg).
    pub numerator: String,
    /// The cell id below (a peer, a floor, or another asyncmsg cell).
    pub denominator: String,
    /// The figure compared.
    pub metric: Metric,
    /// BENCH.md's target, if any.
    pub target: Option<Bound>,
}

impl RatioSpec {
    /// A ratio without a target.
    pub fn new(numerator: &str, denominator: &str, metric: Metric) -> RatioSpec {
        RatioSpec {
            numerator: numerator.into(),
            denominator: denominator.into(),
            metric,
            target: None,
        }
    }

    /// The same ratio with a target.
    pub fn target(mut self, bound: Bound) -> RatioSpec {
        self.target = Some(bound);
        self
    }
}

/// What the cells of a bench run need: how to start the second process of a
/// shared-memory cell, and a trust root for the QUIC cells.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Starts this program again as a shared-memory cell's child.
    pub launcher: Launcher,
    /// The QUIC cells' certificates.
    pub trust: Arc<TrustHome>,
}

impl Ctx {
    /// The running executable as the launcher, a fresh trust root.
    pub fn new() -> Result<Ctx> {
        Ok(Ctx {
            launcher: Launcher::current_exe()?,
            trust: Arc::new(TrustHome::create()?),
        })
    }

    /// `launcher` as the launcher, a fresh trust root.
    pub fn with_launcher(launcher: Launcher) -> Result<Ctx> {
        Ok(Ctx {
            launcher,
            trust: Arc::new(TrustHome::create()?),
        })
    }
}

/// Every cell of every transport, in report order.
pub fn specs(ctx: &Ctx) -> Vec<Spec> {
    let mut all = crate::inproc::specs(ctx);
    all.extend(crate::shm::specs(ctx));
    all.extend(crate::quic::specs(ctx));
    all
}

/// Every ratio reported, in report order (those whose cells did not run are
/// left out of a report).
pub fn ratios() -> Vec<RatioSpec> {
    let mut all = crate::inproc::ratios();
    all.extend(crate::shm::ratios());
    all.extend(crate::quic::ratios());
    all
}

/// One measured run's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Messages per second.
    pub messages_per_s: f64,
    /// Payload bytes per second.
    pub bytes_per_s: f64,
    /// Reported time at p50, p99, p99.9 (ns), for time cells.
    pub p50_ns: Option<f64>,
    /// See `p50_ns`.
    pub p99_ns: Option<f64>,
    /// See `p50_ns`.
    pub p999_ns: Option<f64>,
}

impl Figures {
    /// The figures of `run` of a cell measuring `pattern`.
    pub fn of(run: &Run, pattern: Pattern) -> Figures {
        let q = |q: f64| run.rtt.as_ref().map(|h| pattern.reported_ns(h.quantile(q)));
        Figures {
            messages_per_s: run.messages_per_s(),
            bytes_per_s: run.bytes_per_s(),
            p50_ns: q(0.50),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
        }
    }

    /// The figure `metric` names (NaN when the run has none).
    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Rate => self.messages_per_s,
            Metric::Bytes => self.bytes_per_s,
            Metric::P50 => self.p50_ns.unwrap_or(f64::NAN),
            Metric::P99 => self.p99_ns.unwrap_or(f64::NAN),
        }
    }
}

/// One cell's results over the rounds of a matrix run.
#[derive(Debug, Clone)]
pub struct CellResult {
    /// The cell.
    pub spec: Spec,
    /// Messages per measured run.
    pub messages: u64,
    /// One entry per measured round, `None` for a round whose run failed.
    pub per_round: Vec<Option<Figures>>,
    /// Every round's samples together (time cells).
    pub samples: Option<Histogram>,
    /// Runs that failed and were retried (a retried run that then worked
    /// counts here, not as an error).
    pub retries: u32,
    /// The error of a run that failed every attempt, if any.
    pub error: Option<String>,
}

impl CellResult {
    /// The figures of the rounds that ran.
    pub fn figures(&self) -> impl Iterator<Item = &Figures> {
        self.per_round.iter().flatten()
    }

    /// Median and range of `metric` over the rounds that ran.
    pub fn summary(&self, metric: Metric) -> Option<Summary> {
        let xs: Vec<f64> = self
            .figures()
            .map(|f| f.get(metric))
            .filter(|v| v.is_finite())
            .collect();
        Summary::of(&xs)
    }

    /// The figure that matters for this cell: msg/s for rates (bytes/s for
    /// payloads of 64 KiB and more that cross a process or a network; in
    /// process a buffer changes hands without a copy, so its bytes/s is only
    /// handovers × size), p50 for time cells.
    pub fn headline(&self) -> Metric {
        if self.spec.pattern.is_rate() {
            if self.spec.payload >= 64 * 1024 && self.spec.transport != Transport::InProcess {
                Metric::Bytes
            } else {
                Metric::Rate
            }
        } else {
            Metric::P50
        }
    }
}

/// A ratio over the rounds of a matrix run.
#[derive(Debug, Clone)]
pub struct RatioResult {
    /// What is compared.
    pub spec: RatioSpec,
    /// The ratio in each round in which both cells ran.
    pub per_round: Vec<f64>,
    /// Their median and range.
    pub summary: Summary,
}

impl RatioResult {
    /// Whether the median meets the target; `None` without one.
    pub fn met(&self) -> Option<bool> {
        self.spec.target.map(|b| b.met(self.summary.median))
    }
}

/// Everything a matrix run measured.
#[derive(Debug, Clone)]
pub struct MatrixReport {
    /// One entry per cell, in the order run.
    pub cells: Vec<CellResult>,
    /// The ratios whose two cells both ran.
    pub ratios: Vec<RatioResult>,
}

impl MatrixReport {
    /// The result of the cell with id `id`.
    pub fn cell(&self, id: &str) -> Option<&CellResult> {
        self.cells.iter().find(|c| c.spec.id == id)
    }
}

/// Attempts per run before a cell is reported as failed.
pub const ATTEMPTS: u32 = 4;

/// Runs `specs` interleaved: one warm-up round (a tenth of each size, not
/// recorded), then `rounds` measured rounds, so that a machine that slows
/// down for a while slows every cell alike. A run that fails is retried (up
/// to [`ATTEMPTS`] in all); a cell whose run fails every attempt keeps its
/// error, is left out of later rounds, and the others go on. `progress`
/// hears of each step before it runs. Ratios are paired per round.
pub fn run_matrix(
    specs: &[Spec],
    ratios: &[RatioSpec],
    rounds: usize,
    scale: Scale,
    mut progress: impl FnMut(&str),
) -> MatrixReport {
    let mut cells: Vec<CellResult> = specs
        .iter()
        .map(|s| CellResult {
            spec: s.clone(),
            messages: s.size.of(scale),
            per_round: Vec::new(),
            samples: None,
            retries: 0,
            error: None,
        })
        .collect();
    for round in 0..=rounds {
        for cell in cells.iter_mut() {
            let warm = round == 0;
            if cell.error.is_some() {
                if !warm {
                    cell.per_round.push(None);
                }
                progress(&format!("skip {} (failed)", cell.spec.name));
                continue;
            }
            let n = if warm {
                (cell.messages / 10).max(1)
            } else {
                cell.messages
            };
            let step = if warm {
                "warm-up".to_string()
            } else {
                format!("round {round}/{rounds}")
            };
            progress(&format!("{step} {} ({n})", cell.spec.id));
            let mut attempt = 0;
            let outcome = loop {
                attempt += 1;
                match (cell.spec.run)(n) {
                    Ok(run) => break Ok(run),
                    Err(e) if attempt < ATTEMPTS => {
                        cell.retries += 1;
                        let _ = e;
                    }
                    Err(e) => break Err(e),
                }
            };
            match outcome {
                Ok(run) => {
                    if !warm {
                        cell.per_round
                            .push(Some(Figures::of(&run, cell.spec.pattern)));
                        if let Some(h) = &run.rtt {
                            cell.samples.get_or_insert_with(Histogram::new).merge(h);
                        }
                    }
                }
                Err(e) => {
                    cell.error = Some(format!("{e:#}"));
                    if !warm {
                        cell.per_round.push(None);
                    }
                }
            }
        }
    }
    let ratios = pair_ratios(&cells, ratios);
    MatrixReport { cells, ratios }
}

/// The ratios of `specs` whose cells are both among `cells`, paired per round.
pub fn pair_ratios(cells: &[CellResult], specs: &[RatioSpec]) -> Vec<RatioResult> {
    specs
        .iter()
        .filter_map(|r| {
            let num = cells.iter().find(|c| c.spec.id == r.numerator)?;
            let den = cells.iter().find(|c| c.spec.id == r.denominator)?;
            let per_round: Vec<f64> = num
                .per_round
                .iter()
                .zip(&den.per_round)
                .filter_map(|(a, b)| Some(a.as_ref()?.get(r.metric) / b.as_ref()?.get(r.metric)))
                .filter(|v| v.is_finite())
                .collect();
            let summary = Summary::of(&per_round)?;
            Some(RatioResult {
                spec: r.clone(),
                per_round,
                summary,
            })
        })
        .collect()
}

/// Time a run of `spec` may take at most in tests before it is suspect.
pub const TINY_LIMIT: Duration = Duration::from_secs(60);
