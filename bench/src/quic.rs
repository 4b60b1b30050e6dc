//! Network cells on loopback: asyncmsg between two nodes over `quic://`,
//! beside raw quinn with the same TLS and transport settings
//! (`asyncmsg_quic`'s endpoint), TCP, and zmq PUSH/PULL over TCP, measured by
//! the same code for the criterion bench (`benches/quic.rs`) and for
//! `cargo xtask bench` (through [`specs`] and [`ratios`]).
//!
//! Both ends of every cell live in this process, on loopback (`127.0.0.1`,
//! ports picked by the system). The QUIC ends run on tokio runtimes of their
//! own under one trust root in a temporary directory ([`TrustHome`]); nothing
//! of theirs is pinned: asyncmsg's nodes start their own runtimes (two worker
//! threads each), and the raw quinn ends get the same (one runtime of two
//! workers per end).
//!
//! * **asyncmsg** ([`QuicCell::AsyncmsgSmallTrigger64`],
//!   [`QuicCell::AsyncmsgMib`], and the payload × trigger sweep: 8 B, 64 B,
//!   1 KiB, 64 KiB, 1 MiB × trigger 1, 16, 64 and flush-only, see [`Trigger`]):
//!   a sending node connects to a channel published by a listening node; the
//!   program's sending thread puts `n` messages (buffers recycled through the
//!   delivery callback), a receiving thread gets batches and checks every
//!   message's index (its first 8 bytes), in order. Timed from the first put
//!   until the receiving thread took the last message; then every delivery
//!   callback must have come back `Ok`, in put order (checked, not timed).
//! * **raw quinn** ([`QuicCell::RawBatch64`], [`QuicCell::RawPerMessage`],
//!   [`QuicCell::RawMib`]): one bidirectional stream; the client writes
//!   frames of a little-endian `u32` length and the payload (its index in its
//!   first 8 bytes), 64 frames per `write_all`, one per `write_all`, or one
//!   1 MiB frame per `write_all`; the server reads the stream in the chunks
//!   quinn hands out and checks every frame's length and index, in order.
//!   Timed from the first write until the server read the last frame.
//! * **TCP**: the same frames over one loopback connection between two
//!   threads (not pinned: pinning slowed TCP down here, see `quic/tcp.rs`), std
//!   blocking sockets with `TCP_NODELAY`: 64 B frames 64 per `write_all` and
//!   one per `write_all`, 1 MiB frames one per `write_all`; the reader reads
//!   up to 64 KiB per call and checks every frame. No TLS.
//! * **zmq** (with the `peers` feature): PUSH/PULL over
//!   `tcp://127.0.0.1`, one zmq message per payload (64 B and 1 MiB), a
//!   context per side, the two threads pinned; PUSH blocks at the high-water
//!   mark, so nothing is dropped; every message is checked in order.
//!
//! Setup (nodes, certificates, handshakes, the stream's first exchange) and
//! teardown are not timed. Every wait is bounded: a run that hangs fails.

pub(crate) mod asyncmsg;
mod cells;
pub(crate) mod raw;
pub(crate) mod tcp;
#[cfg(feature = "peers")]
pub(crate) mod zmq;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use crate::shm::MIB;
use crate::shm::Run;
pub use asyncmsg::{FLUSH_EVERY, Trigger};
pub use cells::{SWEEP_PAYLOADS, TCP_BATCH, ratios, specs, sweep_id, tcp_id, zmq_id};

/// Bytes per message of the small cells.
pub const SMALL: usize = 64;

/// Frames per `write_all` in the batched raw quinn cell.
pub const RAW_BATCH: usize = 64;

/// One cell of the QUIC matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuicCell {
    /// asyncmsg over `quic://`, 64 B messages, `trigger_count(64)`, 1024 in
    /// flight.
    AsyncmsgSmallTrigger64,
    /// asyncmsg over `quic://`, 1 MiB messages, `trigger_count(4)`, 16 in
    /// flight.
    AsyncmsgMib,
    /// raw quinn, one stream, 64 B frames, 64 per `write_all`.
    RawBatch64,
    /// raw quinn, one stream, 64 B frames, one `write_all` each.
    RawPerMessage,
    /// raw quinn, one stream, 1 MiB frames, one `write_all` each.
    RawMib,
}

impl QuicCell {
    /// Every cell, in report order.
    pub const ALL: [QuicCell; 5] = [
        QuicCell::AsyncmsgSmallTrigger64,
        QuicCell::AsyncmsgMib,
        QuicCell::RawBatch64,
        QuicCell::RawPerMessage,
        QuicCell::RawMib,
    ];

    /// A stable identifier, for `results.json` and `compare`.
    pub fn id(self) -> &'static str {
        match self {
            QuicCell::AsyncmsgSmallTrigger64 => "quic/64B/asyncmsg-trigger-64",
            QuicCell::AsyncmsgMib => "quic/1MiB/asyncmsg",
            QuicCell::RawBatch64 => "quic/64B/raw-quinn-64-per-write",
            QuicCell::RawPerMessage => "quic/64B/raw-quinn-1-per-write",
            QuicCell::RawMib => "quic/1MiB/raw-quinn",
        }
    }

    /// A short name for criterion and tables.
    pub fn name(self) -> &'static str {
        match self {
            QuicCell::AsyncmsgSmallTrigger64 => "asyncmsg quic 64B t64",
            QuicCell::AsyncmsgMib => "asyncmsg quic 1MiB",
            QuicCell::RawBatch64 => "raw quinn 64B x64",
            QuicCell::RawPerMessage => "raw quinn 64B x1",
            QuicCell::RawMib => "raw quinn 1MiB",
        }
    }

    /// Bytes per message.
    pub fn payload(self) -> usize {
        match self {
            QuicCell::AsyncmsgMib | QuicCell::RawMib => MIB,
            _ => SMALL,
        }
    }

    /// Whether the cell measures asyncmsg (the others are raw quinn).
    pub fn is_asyncmsg(self) -> bool {
        matches!(
            self,
            QuicCell::AsyncmsgSmallTrigger64 | QuicCell::AsyncmsgMib
        )
    }

    /// Whether bytes/s is the figure that matters (large messages).
    pub fn counts_bytes(self) -> bool {
        self.payload() >= MIB
    }
}

/// Messages per run, per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// 64 B cells that batch (asyncmsg, raw quinn 64 per write).
    pub small: u64,
    /// raw quinn with one write per 64 B message (two orders of magnitude
    /// slower).
    pub per_message: u64,
    /// 1 MiB cells.
    pub mib: u64,
}

impl Sizes {
    /// A run of well under a second per cell (with setup), for about 30 s
    /// for the whole matrix in 5 rounds.
    pub const QUICK: Sizes = Sizes {
        small: 300_000,
        per_message: 30_000,
        mib: 300,
    };

    /// The full matrix.
    pub const FULL: Sizes = Sizes {
        small: 2_000_000,
        per_message: 200_000,
        mib: 2_000,
    };

    /// A handful, to check that each cell works.
    pub const TINY: Sizes = Sizes {
        small: 1_000,
        per_message: 200,
        mib: 4,
    };

    /// How many messages a run of `cell` moves.
    pub fn of(&self, cell: QuicCell) -> u64 {
        match cell {
            QuicCell::RawPerMessage => self.per_message,
            c if c.payload() == MIB => self.mib,
            _ => self.small,
        }
    }
}

/// A trust root in a temporary directory of its own, shared by both ends of
/// every cell, removed when dropped.
#[derive(Debug)]
pub struct TrustHome {
    path: PathBuf,
}

impl TrustHome {
    /// Creates the directory and the trust root in it.
    pub fn create() -> Result<TrustHome> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "asyncmsg-bench-quic-{}-{nanos:09}",
            std::process::id()
        ));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        let home = TrustHome { path };
        asyncmsg_quic::cert::Home::at(home.path.clone())
            .init()
            .with_context(|| format!("making a trust root in {}", home.path.display()))?;
        Ok(home)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TrustHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs `cell` once, moving `n` messages, and checks what arrived.
pub fn run_cell(cell: QuicCell, n: u64, home: &TrustHome) -> Result<Run> {
    let home = home.path();
    match cell {
        QuicCell::AsyncmsgSmallTrigger64 => asyncmsg::throughput(home, n, asyncmsg::SMALL_T64),
        QuicCell::AsyncmsgMib => asyncmsg::throughput(home, n, asyncmsg::MIB_T4),
        QuicCell::RawBatch64 => raw::throughput(home, n, SMALL, RAW_BATCH),
        QuicCell::RawPerMessage => raw::throughput(home, n, SMALL, 1),
        QuicCell::RawMib => raw::throughput(home, n, MIB, 1),
    }
    .with_context(|| cell.name().to_owned())
}

/// A ratio of two cells' messages/s in the same round (bytes/s give the same
/// ratio: the payloads are equal), with BENCH.md's lower bound where it sets
/// one.
#[derive(Debug, Clone, Copy)]
pub struct QuicRatio {
    /// The asyncmsg cell.
    pub numerator: QuicCell,
    /// The raw quinn cell it is compared with.
    pub denominator: QuicCell,
    /// The least acceptable ratio, if any.
    pub target: Option<f64>,
}

/// The ratios reported with every run, in report order.
pub const QUIC_RATIOS: [QuicRatio; 3] = [
    QuicRatio {
        numerator: QuicCell::AsyncmsgSmallTrigger64,
        denominator: QuicCell::RawBatch64,
        target: Some(0.5),
    },
    QuicRatio {
        numerator: QuicCell::AsyncmsgSmallTrigger64,
        denominator: QuicCell::RawPerMessage,
        target: Some(20.0),
    },
    QuicRatio {
        numerator: QuicCell::AsyncmsgMib,
        denominator: QuicCell::RawMib,
        target: Some(0.8),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_runs_and_checks_what_arrived() {
        let home = TrustHome::create().expect("a trust root");
        for cell in QuicCell::ALL {
            let n = Sizes::TINY.of(cell);
            let run = run_cell(cell, n, &home).unwrap_or_else(|e| panic!("{}: {e:#}", cell.name()));
            assert_eq!(run.messages, n, "{}", cell.name());
            assert_eq!(run.bytes, n * cell.payload() as u64, "{}", cell.name());
            assert!(run.messages_per_s() > 0.0, "{}", cell.name());
        }
    }

    #[test]
    fn a_partial_last_batch_arrives_too() {
        let home = TrustHome::create().expect("a trust root");
        for cell in [QuicCell::AsyncmsgSmallTrigger64, QuicCell::RawBatch64] {
            let run =
                run_cell(cell, 130, &home).unwrap_or_else(|e| panic!("{}: {e:#}", cell.name()));
            assert_eq!(run.messages, 130, "{}", cell.name());
        }
    }
}
