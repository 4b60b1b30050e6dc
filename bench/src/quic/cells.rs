//! The network cells as entries of the matrix (see [`crate::matrix`]): the
//! [`QuicCell`]s (asyncmsg 64 B trigger 64 and 1 MiB trigger 4, raw quinn),
//! asyncmsg's payload × trigger sweep, TCP, and (with the `peers` feature)
//! zmq.

use super::asyncmsg::{Shape, Trigger};
use super::{MIB, QUIC_RATIOS, QuicCell, SMALL, Sizes, run_cell};
use crate::matrix::{Bound, Ctx, Metric, Pattern, RatioSpec, Size, Spec, Transport, cell_id};

/// The payloads of asyncmsg's sweep: 8 B, 64 B, 1 KiB, 64 KiB, 1 MiB.
pub const SWEEP_PAYLOADS: [usize; 5] = [8, SMALL, 1 << 10, 64 << 10, MIB];

/// Frames per write in the batched TCP cell.
pub const TCP_BATCH: usize = 64;

/// The implementation and its variant, as they appear in the id.
fn implementation(cell: QuicCell) -> (&'static str, &'static str) {
    match cell {
        QuicCell::AsyncmsgSmallTrigger64 => ("asyncmsg", "quic-t64"),
        QuicCell::AsyncmsgMib => ("asyncmsg", "quic-t4"),
        QuicCell::RawBatch64 => ("raw-quinn", "64-per-write"),
        QuicCell::RawPerMessage => ("raw-quinn", "1-per-write"),
        QuicCell::RawMib => ("raw-quinn", ""),
    }
}

/// The id of `cell` in the matrix.
pub(crate) fn id(cell: QuicCell) -> String {
    let (imp, variant) = implementation(cell);
    cell_id(
        Transport::Network,
        Pattern::Throughput,
        cell.payload(),
        imp,
        variant,
    )
}

fn net_id(payload: usize, implementation: &str, variant: &str) -> String {
    cell_id(
        Transport::Network,
        Pattern::Throughput,
        payload,
        implementation,
        variant,
    )
}

/// The id of asyncmsg's sweep cell of `payload` and `trigger`
/// (`net/throughput/8B/asyncmsg-quic-t64`, `…/asyncmsg-quic-flush-only`).
pub fn sweep_id(payload: usize, trigger: Trigger) -> String {
    net_id(payload, "asyncmsg", &format!("quic-{}", trigger.variant()))
}

/// The id of a TCP cell: `tcp-64-per-write`, `tcp-1-per-write` at 64 B,
/// plain `tcp` for 1 MiB frames.
pub fn tcp_id(payload: usize, per_write: usize) -> String {
    net_id(payload, "tcp", &tcp_variant(payload, per_write))
}

fn tcp_variant(payload: usize, per_write: usize) -> String {
    if payload >= MIB {
        String::new()
    } else {
        format!("{per_write}-per-write")
    }
}

/// The id of a zmq cell.
pub fn zmq_id(payload: usize) -> String {
    net_id(payload, "zmq", "")
}

/// The spec of one [`QuicCell`].
pub(crate) fn cell_spec(ctx: &Ctx, cell: QuicCell) -> Spec {
    let (imp, variant) = implementation(cell);
    let trust = ctx.trust.clone();
    let size = Size {
        full: Sizes::FULL.of(cell),
        quick: Sizes::QUICK.of(cell),
        tiny: Sizes::TINY.of(cell),
    };
    Spec::new(
        Transport::Network,
        Pattern::Throughput,
        cell.payload(),
        imp,
        variant,
        cell.name(),
        size,
        move |n| run_cell(cell, n, &trust),
    )
    .quick()
}

/// Messages per run of a sweep cell: about a second's worth in the full
/// matrix on an idle 2-vCPU machine (a sixth of that for `quick`, which only
/// 8 B trigger 64 runs in the quick matrix).
fn sweep_size(payload: usize, trigger: Trigger) -> Size {
    let per_message = trigger == Trigger::Count(1);
    match payload {
        p if p >= MIB => Size {
            full: 1_000,
            quick: 150,
            tiny: 4,
        },
        p if p >= 64 << 10 => Size {
            full: 10_000,
            quick: 1_500,
            tiny: 16,
        },
        p if p >= 1 << 10 => Size {
            full: 500_000,
            quick: 75_000,
            tiny: 500,
        },
        _ if per_message => Size {
            full: 500_000,
            quick: 75_000,
            tiny: 500,
        },
        _ => Size {
            full: 2_000_000,
            quick: 300_000,
            tiny: 1_000,
        },
    }
}

/// One cell of asyncmsg's sweep.
fn sweep_spec(ctx: &Ctx, payload: usize, trigger: Trigger) -> Spec {
    let trust = ctx.trust.clone();
    let shape = Shape::sweep(payload, trigger);
    let name = format!(
        "asyncmsg quic {} {}",
        crate::matrix::payload_label(payload),
        match trigger {
            Trigger::Count(n) => format!("t{n}"),
            Trigger::FlushOnly => "flush-only".into(),
        }
    );
    let context = name.clone();
    Spec::new(
        Transport::Network,
        Pattern::Throughput,
        payload,
        "asyncmsg",
        &format!("quic-{}", trigger.variant()),
        name,
        sweep_size(payload, trigger),
        move |n| {
            use anyhow::Context as _;
            super::asyncmsg::throughput(trust.path(), n, shape).context(context.clone())
        },
    )
}

/// One TCP cell.
fn tcp_spec(payload: usize, per_write: usize, size: Size) -> Spec {
    let name = if payload >= MIB {
        format!("tcp {}", crate::matrix::payload_label(payload))
    } else {
        format!("tcp {} x{per_write}", crate::matrix::payload_label(payload))
    };
    Spec::new(
        Transport::Network,
        Pattern::Throughput,
        payload,
        "tcp",
        &tcp_variant(payload, per_write),
        name,
        size,
        move |n| super::tcp::throughput(n, payload, per_write),
    )
    .quick()
}

/// One zmq cell.
#[cfg(feature = "peers")]
fn zmq_spec(payload: usize, size: Size) -> Spec {
    Spec::new(
        Transport::Network,
        Pattern::Throughput,
        payload,
        "zmq",
        "",
        format!("zmq {}", crate::matrix::payload_label(payload)),
        size,
        move |n| super::zmq::throughput(n, payload),
    )
    .quick()
}

/// The network cells, in report order: the [`QuicCell`]s, asyncmsg 8 B
/// trigger 64, TCP, zmq (with the `peers` feature) — the quick matrix's —
/// then the rest of asyncmsg's payload × trigger sweep (full matrix only).
pub fn specs(ctx: &Ctx) -> Vec<Spec> {
    let mut all: Vec<Spec> = QuicCell::ALL.iter().map(|&c| cell_spec(ctx, c)).collect();
    all.push(sweep_spec(ctx, 8, Trigger::Count(64)).quick());
    all.push(tcp_spec(SMALL, TCP_BATCH, Size::scaled(30_000_000)));
    all.push(tcp_spec(SMALL, 1, Size::scaled(1_000_000)));
    all.push(tcp_spec(MIB, 1, Size::scaled(15_000)));
    #[cfg(feature = "peers")]
    {
        all.push(zmq_spec(SMALL, Size::scaled(5_000_000)));
        all.push(zmq_spec(
            MIB,
            Size {
                full: 3_000,
                quick: 300,
                tiny: 4,
            },
        ));
    }
    let taken: Vec<String> = all.iter().map(|s| s.id.clone()).collect();
    for payload in SWEEP_PAYLOADS {
        for trigger in Trigger::SWEEP {
            let spec = sweep_spec(ctx, payload, trigger);
            if !taken.contains(&spec.id) {
                all.push(spec);
            }
        }
    }
    all
}

/// The network ratios: BENCH.md's targets first (asyncmsg against raw
/// quinn), then asyncmsg against TCP and zmq (informative, no target).
pub fn ratios() -> Vec<RatioSpec> {
    let mut all: Vec<RatioSpec> = QUIC_RATIOS
        .iter()
        .map(|r| {
            let metric = if r.numerator.counts_bytes() {
                Metric::Bytes
            } else {
                Metric::Rate
            };
            let spec = RatioSpec::new(&id(r.numerator), &id(r.denominator), metric);
            match r.target {
                Some(t) => spec.target(Bound::AtLeast(t)),
                None => spec,
            }
        })
        .collect();
    let small = id(QuicCell::AsyncmsgSmallTrigger64);
    let mib = id(QuicCell::AsyncmsgMib);
    all.push(RatioSpec::new(
        &small,
        &tcp_id(SMALL, TCP_BATCH),
        Metric::Rate,
    ));
    all.push(RatioSpec::new(&mib, &tcp_id(MIB, 1), Metric::Bytes));
    if cfg!(feature = "peers") {
        all.push(RatioSpec::new(&small, &zmq_id(SMALL), Metric::Rate));
        all.push(RatioSpec::new(&mib, &zmq_id(MIB), Metric::Bytes));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quic::RAW_BATCH;

    #[test]
    fn ids_read_as_documented() {
        assert_eq!(
            sweep_id(8, Trigger::Count(64)),
            "net/throughput/8B/asyncmsg-quic-t64"
        );
        assert_eq!(
            sweep_id(64 << 10, Trigger::FlushOnly),
            "net/throughput/64KiB/asyncmsg-quic-flush-only"
        );
        assert_eq!(
            sweep_id(SMALL, Trigger::Count(64)),
            id(QuicCell::AsyncmsgSmallTrigger64)
        );
        assert_eq!(
            tcp_id(SMALL, TCP_BATCH),
            "net/throughput/64B/tcp-64-per-write"
        );
        assert_eq!(tcp_id(SMALL, 1), "net/throughput/64B/tcp-1-per-write");
        assert_eq!(tcp_id(MIB, 1), "net/throughput/1MiB/tcp");
        assert_eq!(zmq_id(MIB), "net/throughput/1MiB/zmq");
        assert_eq!(RAW_BATCH, TCP_BATCH);
    }

    #[test]
    fn the_sweep_is_complete_and_only_part_of_it_is_quick() {
        let ctx = Ctx::new().expect("a bench context");
        let specs = specs(&ctx);
        for payload in SWEEP_PAYLOADS {
            for trigger in Trigger::SWEEP {
                let id = sweep_id(payload, trigger);
                let spec = specs
                    .iter()
                    .find(|s| s.id == id)
                    .unwrap_or_else(|| panic!("no cell {id}"));
                let quick = (payload, trigger) == (8, Trigger::Count(64))
                    || (payload, trigger) == (SMALL, Trigger::Count(64));
                assert_eq!(spec.in_quick, quick, "{id}");
            }
        }
        for r in ratios() {
            for id in [&r.numerator, &r.denominator] {
                assert!(specs.iter().any(|s| &s.id == id), "unknown cell {id}");
            }
        }
    }

    #[test]
    fn flush_only_and_large_triggers_keep_two_batches_in_flight() {
        for payload in SWEEP_PAYLOADS {
            for trigger in Trigger::SWEEP {
                let shape = Shape::sweep(payload, trigger);
                assert!(
                    shape.max_buffers() >= 2 * trigger.batch(),
                    "{payload} B {trigger:?}"
                );
            }
        }
    }
}
