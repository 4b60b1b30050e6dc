//! ZeroMQ PUSH/PULL over `tcp://127.0.0.1` (libzmq through the `zmq`
//! crate): one message per payload, between two threads of this process.
//!
//! Each side has a context of its own (one I/O thread each, as two processes
//! would have), and the sending and receiving threads are pinned to
//! different CPUs (unpinned measured the same at 64 B and no better at
//! 1 MiB; libzmq's I/O threads are left to the scheduler): the PULL socket binds `tcp://127.0.0.1:*` (a port from the
//! system, read back with `get_last_endpoint`) and the PUSH socket connects to
//! it. Nothing is dropped: PUSH blocks when [`HWM`] messages are queued (the
//! high-water mark of both sockets). Every message is sent from one reused
//! buffer (`zmq_send` copies it into a message of its own) and received into
//! one reused `zmq::Message`; the receiver checks every message's length and
//! index (its first 8 bytes), in order.
//!
//! Before the timed part the sender sends an empty message and waits until
//! the receiver has it (so that the connection is up); timed from the first
//! send until the receiver has message `n`; then the sender's empty end
//! message must come next (checked, not timed). Every send and receive is
//! bounded by [`IO_LIMIT`] (`ZMQ_SNDTIMEO`, `ZMQ_RCVTIMEO`).

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};

use crate::pin;
use crate::shm::peers::{index_of, stamp};
use crate::shm::{RECEIVER_CPU, Run, SENDER_CPU};

/// The longest one send or receive may block before the run is declared
/// hung (the other side failed or stopped).
const IO_LIMIT: Duration = Duration::from_secs(10);

/// High-water mark (messages queued per socket) for `payload`: 10 000 for
/// small messages (libzmq's default is 1 000; 1 000, 10 000 and 100 000
/// measured alike at 64 B), 16 (16 MiB, as asyncmsg's 1 MiB cell has in
/// flight) for 1 MiB ones.
pub(crate) fn hwm(payload: usize) -> i32 {
    const BYTES: usize = 16 << 20;
    (BYTES / payload.max(1)).clamp(16, 10_000) as i32
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// A socket of `kind` in a context of its own, its high-water marks,
/// timeouts and linger set.
fn socket(kind: zmq::SocketType, payload: usize) -> Result<zmq::Socket> {
    let ctx = zmq::Context::new();
    let s = ctx.socket(kind).context("creating a socket")?;
    s.set_sndhwm(hwm(payload)).context("setting ZMQ_SNDHWM")?;
    s.set_rcvhwm(hwm(payload)).context("setting ZMQ_RCVHWM")?;
    s.set_sndtimeo(millis(IO_LIMIT))
        .context("setting ZMQ_SNDTIMEO")?;
    s.set_rcvtimeo(millis(IO_LIMIT))
        .context("setting ZMQ_RCVTIMEO")?;
    // Closing never waits for unsent messages (a failed run leaves some).
    s.set_linger(0).context("setting ZMQ_LINGER")?;
    Ok(s)
}

/// The receiver: binds, tells the sender where, takes the hello, says ready,
/// receives and checks `n` messages and the end. Returns when it had message
/// `n`.
fn receive(
    n: u64,
    payload: usize,
    endpoint_tx: mpsc::SyncSender<String>,
    ready_tx: mpsc::SyncSender<()>,
) -> Result<Instant> {
    let pull = socket(zmq::PULL, payload)?;
    pull.bind("tcp://127.0.0.1:*")
        .context("binding tcp://127.0.0.1:*")?;
    let endpoint = pull
        .get_last_endpoint()
        .context("reading the bound endpoint")?
        .map_err(|raw| anyhow!("a bound endpoint that is not UTF-8: {raw:?}"))?;
    let _pinned = pin(RECEIVER_CPU);
    endpoint_tx
        .send(endpoint)
        .map_err(|_| anyhow!("the sender is gone"))?;
    let mut msg = zmq::Message::new();
    pull.recv(&mut msg, 0).context("receiving the hello")?;
    ensure!(msg.is_empty(), "a hello of {} bytes", msg.len());
    ready_tx
        .send(())
        .map_err(|_| anyhow!("the sender is gone"))?;
    for expected in 0..n {
        pull.recv(&mut msg, 0)
            .with_context(|| format!("receiving after {expected} messages"))?;
        ensure!(
            msg.len() == payload,
            "message {expected}: {} bytes, expected {payload}",
            msg.len()
        );
        let got = index_of(&msg);
        ensure!(
            got == expected,
            "received message {got}, expected {expected}"
        );
    }
    let ended = Instant::now();
    pull.recv(&mut msg, 0)
        .context("receiving the end message")?;
    ensure!(
        msg.is_empty(),
        "a message of {} bytes after the last one",
        msg.len()
    );
    Ok(ended)
}

/// `n` messages of `payload` bytes from a PUSH socket to a PULL socket over
/// loopback TCP.
pub(crate) fn throughput(n: u64, payload: usize) -> Result<Run> {
    ensure!(payload >= 8, "a message carries its 8-byte index");
    let (endpoint_tx, endpoint_rx) = mpsc::sync_channel::<String>(1);
    let (ready_tx, ready_rx) = mpsc::sync_channel::<()>(1);
    let receiver = thread::Builder::new()
        .name("bench-zmq-pull".into())
        .spawn(move || receive(n, payload, endpoint_tx, ready_tx))
        .context("spawning the receiver")?;

    let mut buf = vec![0u8; payload];
    // Kept open until the receiver is done: closing it discards what it has
    // not sent yet.
    let push = socket(zmq::PUSH, payload);
    let sent = (|| -> Result<Instant> {
        let push = push.as_ref().map_err(|e| anyhow!("{e:#}"))?;
        let endpoint = endpoint_rx
            .recv_timeout(IO_LIMIT)
            .map_err(|_| anyhow!("the receiver did not bind"))?;
        push.connect(&endpoint)
            .with_context(|| format!("connecting to {endpoint}"))?;
        let _pinned = pin(SENDER_CPU);
        push.send(&[][..], 0).context("sending the hello")?;
        ready_rx
            .recv_timeout(IO_LIMIT)
            .map_err(|_| anyhow!("the receiver did not take the hello"))?;
        let began = Instant::now();
        for i in 0..n {
            stamp(&mut buf, i);
            push.send(&buf[..], 0)
                .with_context(|| format!("sending message {i}"))?;
        }
        push.send(&[][..], 0).context("sending the end message")?;
        Ok(began)
    })();
    // A failed receiver closes its socket, which makes the sends time out;
    // its own error says more, so it comes first.
    let ended = receiver
        .join()
        .map_err(|_| anyhow!("the receiver panicked"))?
        .context("receiving")?;
    let began = sent?;
    drop(push);
    Ok(Run::throughput(
        n,
        payload,
        ended.saturating_duration_since(began),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_arrives_in_order() {
        for (n, payload) in [(0, 64), (1, 64), (5_000, 64), (3, 1 << 20), (40, 8)] {
            let run = throughput(n, payload).unwrap_or_else(|e| panic!("{n} x {payload} B: {e:#}"));
            assert_eq!(run.messages, n);
            assert_eq!(run.bytes, n * payload as u64);
        }
    }

    #[test]
    fn high_water_marks_bound_what_is_queued() {
        assert_eq!(hwm(64), 10_000);
        assert_eq!(hwm(8), 10_000);
        assert_eq!(hwm(1 << 20), 16);
    }
}
