//! asyncmsg between two nodes of this process over `quic://` on loopback:
//! the receiving node listens and publishes a channel, the sending node
//! connects to `quic://127.0.0.1:PORT/NAME`; the calling thread puts, a thread
//! of its own gets.
//!
//! A run's [`Shape`] sets the payload, the [`Trigger`] (a count, or none at
//! all with the sender flushing every [`FLUSH_EVERY`] puts) and the messages
//! in flight.

use std::path::Path;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use asyncmsg::{Channel, Flush, Message, Node};

use crate::shm::Run;
use crate::shm::asyncmsg::{
    Buffers, Deliveries, channel, check_message, connect, get_batch, unique_name,
};
use crate::shm::peers::stamp;

use super::{MIB, SMALL};

/// How long the last delivery callbacks may take to come back once the last
/// message was received.
const CALLBACK_LIMIT: Duration = Duration::from_secs(30);

pub use crate::trigger::{FLUSH_EVERY, Trigger};

/// Bytes in flight per connection the sweep aims at: 1024 messages up to
/// 16 KiB, 256 of 64 KiB, 16 of 1 MiB.
const IN_FLIGHT: usize = 16 << 20;

/// The shape of a throughput run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    payload: usize,
    trigger: Trigger,
    /// In flight per connection, and the most one get returns.
    max_buffers: u32,
}

impl Shape {
    /// `payload` bytes with `trigger`, [`IN_FLIGHT`] bytes in flight (16 to
    /// 1024 messages), and at least two batches, so that the sender fills
    /// the next batch while the last one travels.
    pub(crate) fn sweep(payload: usize, trigger: Trigger) -> Shape {
        let window = (IN_FLIGHT / payload.max(1)).clamp(16, 1024) as u32;
        Shape {
            payload,
            trigger,
            max_buffers: window.max(2 * trigger.batch()),
        }
    }

    /// Messages in flight per connection.
    #[cfg(test)]
    pub(crate) fn max_buffers(&self) -> u32 {
        self.max_buffers
    }
}

/// 64 B, trigger 64, 1024 in flight (as the in-process and shm cells).
pub(crate) const SMALL_T64: Shape = Shape {
    payload: SMALL,
    trigger: Trigger::Count(64),
    max_buffers: 1024,
};

/// 1 MiB, a batch every 4, 16 in flight (as the shm 1 MiB cell).
pub(crate) const MIB_T4: Shape = Shape {
    payload: MIB,
    trigger: Trigger::Count(4),
    max_buffers: 16,
};

/// A node of its own runtime, trusting the root in `home`.
fn node(home: &Path) -> Result<Node> {
    let node = Node::new().context("starting a node")?;
    node.trust_home(home);
    Ok(node)
}

/// `n` messages of `shape` from one node to the other.
pub(crate) fn throughput(home: &Path, n: u64, shape: Shape) -> Result<Run> {
    let receiving = node(home)?;
    let sending = node(home)?;
    let chan = channel(&receiving, shape.payload, shape.max_buffers, None)?;
    let name = unique_name("quic");
    chan.publish(&name).context("publishing the channel")?;
    let addr = receiving
        .listen("127.0.0.1:0")
        .context("listening on loopback")?;
    let mut buffers = Buffers::new(
        &sending,
        2 * shape.max_buffers as usize,
        shape.payload,
        false,
    );
    let seen = Arc::new(Deliveries::default());
    let (done_tx, done_rx) = mpsc::sync_channel::<()>(1);
    let conn = connect(
        &sending,
        &format!("quic://{addr}/{name}"),
        shape.max_buffers,
        shape.trigger.count(),
        &buffers,
        &seen,
        Some((n, done_tx)),
    )?;

    let start = Arc::new(Barrier::new(2));
    let receiver = {
        let start = start.clone();
        thread::Builder::new()
            .name("bench-quic-receiver".into())
            // The receiver hands the channel back when it is done, so that it
            // outlives the sender's last callbacks; if it fails, dropping the
            // channel destroys it, which fails the sender's puts.
            .spawn(move || -> Result<(Channel, Instant)> {
                let mut batch: Vec<Message> = Vec::with_capacity(shape.max_buffers as usize);
                start.wait();
                let mut expected = 0u64;
                while expected < n {
                    get_batch(&chan, &mut batch, expected)?;
                    for msg in &batch {
                        check_message(msg, shape.payload, expected)?;
                        expected += 1;
                    }
                    batch.clear(); // lets the messages go: their callbacks may run
                }
                Ok((chan, Instant::now()))
            })
            .context("spawning the receiver")?
    };

    let flush_only = shape.trigger == Trigger::FlushOnly;
    start.wait();
    let began = Instant::now();
    let mut sent = Ok(());
    for i in 0..n {
        let mut buf = buffers.take(&sending);
        stamp(&mut buf, i);
        if let Err(e) = conn.put(buf, i) {
            sent = Err(anyhow!("put of message {i}: {e}"));
            break;
        }
        if flush_only && (i + 1) % u64::from(FLUSH_EVERY) == 0 {
            if let Err(e) = conn.flush(Flush::NoWait) {
                sent = Err(anyhow!("flush after message {i}: {e}"));
                break;
            }
        }
    }
    if sent.is_ok() {
        sent = conn
            .flush(Flush::NoWait)
            .map_err(|e| anyhow!("final flush: {e}"));
    }
    let received = receiver
        .join()
        .map_err(|_| anyhow!("the receiver panicked"))?;
    let (chan, ended) = received.context("receiving")?;
    sent?;
    if n > 0 {
        done_rx
            .recv_timeout(CALLBACK_LIMIT)
            .map_err(|_| anyhow!("delivery callbacks stalled"))?;
    }
    seen.check(n)?;
    let took = ended.saturating_duration_since(began);

    // The sender detaches while the receiving node still answers.
    drop(conn);
    drop(chan);
    drop(sending);
    drop(receiving);
    Ok(Run::throughput(n, shape.payload, took))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quic::TrustHome;

    #[test]
    fn flush_only_and_trigger_one_deliver_every_message() {
        let home = TrustHome::create().expect("a trust root");
        for (payload, trigger, n) in [
            (8, Trigger::FlushOnly, 0),
            (8, Trigger::FlushOnly, 130),
            (64, Trigger::FlushOnly, 64),
            (8, Trigger::Count(1), 5),
            (1 << 10, Trigger::Count(16), 40),
        ] {
            let run = throughput(home.path(), n, Shape::sweep(payload, trigger))
                .unwrap_or_else(|e| panic!("{n} x {payload} B {trigger:?}: {e:#}"));
            assert_eq!(run.messages, n);
            assert_eq!(run.bytes, n * payload as u64);
        }
    }
}
