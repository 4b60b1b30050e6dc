//! The channels asyncmsg is compared with in process, run by the same thread
//! layouts and checks as asyncmsg: every message carries its index in its
//! first 8 bytes, and the receiver checks each one, in order (per sender in a
//! fan-in), and the count.
//!
//! Messages travel by value (`[u8; N]`), as such channels are used; waits are
//! bounded by a timeout (blocking channels) or by a bounded spin (busy-polling
//! ones), so that a hung run becomes an error.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use crossbeam_channel::{RecvTimeoutError, TryRecvError};

use super::asyncmsg_runs::Wait;
use super::harness::{
    FAN_IN_SENDERS, GaveUp, InOrder, PerSender, STALL, SenderJob, Spinner, fan_in, one_to_one,
    ping_pong, share, stamp, word, word_of,
};
use crate::shm::Run;

/// Capacity of the bounded channel peers, in messages.
pub const CAPACITY: usize = 4096;

/// Messages per batch for the crossbeam batch peer.
pub const VEC_BATCH: usize = 64;

/// Capacity of the ping-pong peers' channels (one message at a time is used).
const PING_CAPACITY: usize = 8;

/// Message `i` of sender `s`, `N` bytes.
#[inline]
fn message<const N: usize>(s: usize, i: u64) -> [u8; N] {
    let mut msg = [0u8; N];
    stamp(&mut msg, word(s, i));
    msg
}

/// crossbeam-channel `bounded(4096)` carrying `[u8; N]` by value: the sender
/// `send`s each message, the receiver takes each with `recv_timeout`.
pub fn crossbeam<const N: usize>(n: u64) -> Result<Duration> {
    let (tx, rx) = crossbeam_channel::bounded::<[u8; N]>(CAPACITY);
    let (took, ()) = one_to_one(
        move || {
            let mut order = InOrder::new(N);
            while order.seen < n {
                let msg = rx
                    .recv_timeout(STALL)
                    .with_context(|| format!("recv after {} messages", order.seen))?;
                order.check(&msg)?;
            }
            Ok(())
        },
        move || {
            for i in 0..n {
                tx.send(message::<N>(0, i))
                    .map_err(|_| anyhow!("the receiver hung up at message {i}"))?;
            }
            Ok(())
        },
        || Ok(()),
    )?;
    Ok(took)
}

/// crossbeam-channel carrying reused `Vec`s of [`VEC_BATCH`] 64 B messages
/// (`bounded(4096 / 64)`): the receiver drains each batch and sends the empty
/// `Vec` back for the sender to refill (the best hand-rolled batching).
pub fn crossbeam_batches(n: u64) -> Result<Duration> {
    const N: usize = 64;
    type Batch = Vec<[u8; N]>;
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(CAPACITY / VEC_BATCH);
    // Drained batches go back; never blocks the receiver (a surplus is dropped).
    let (back_tx, back_rx) = crossbeam_channel::bounded::<Batch>(2 * CAPACITY / VEC_BATCH);
    let (took, ()) = one_to_one(
        move || {
            let mut order = InOrder::new(N);
            while order.seen < n {
                let mut batch = rx
                    .recv_timeout(STALL)
                    .with_context(|| format!("recv after {} messages", order.seen))?;
                for msg in batch.drain(..) {
                    order.check(&msg)?;
                }
                let _ = back_tx.try_send(batch);
            }
            Ok(())
        },
        move || {
            let mut i = 0u64;
            while i < n {
                let mut batch = back_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(VEC_BATCH));
                let end = n.min(i + VEC_BATCH as u64);
                batch.extend((i..end).map(|index| message::<N>(0, index)));
                i = end;
                tx.send(batch)
                    .map_err(|_| anyhow!("the receiver hung up at message {i}"))?;
            }
            Ok(())
        },
        || Ok(()),
    )?;
    Ok(took)
}

/// kanal `bounded(4096)` through its blocking API, 64 B by value: `send`
/// per message, `recv_timeout` per message.
#[cfg(feature = "peers")]
pub fn kanal(n: u64) -> Result<Duration> {
    const N: usize = 64;
    let (tx, rx) = kanal::bounded::<[u8; N]>(CAPACITY);
    let (took, ()) = one_to_one(
        move || {
            let mut order = InOrder::new(N);
            while order.seen < n {
                let msg = rx
                    .recv_timeout(STALL)
                    .map_err(|e| anyhow!("recv after {} messages: {e}", order.seen))?;
                order.check(&msg)?;
            }
            Ok(())
        },
        move || {
            for i in 0..n {
                tx.send(message::<N>(0, i))
                    .map_err(|e| anyhow!("send of message {i}: {e}"))?;
            }
            Ok(())
        },
        || Ok(()),
    )?;
    Ok(took)
}

/// A current-thread tokio runtime (with timers) for a receiver.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("building a tokio runtime")
}

/// Receives `n` messages from `rx` in `rt`'s `block_on`, up to [`CAPACITY`]
/// per `recv_many`, handing each to `check`.
fn tokio_receive<const N: usize>(
    rt: &tokio::runtime::Runtime,
    mut rx: tokio::sync::mpsc::Receiver<[u8; N]>,
    n: u64,
    mut check: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    rt.block_on(async {
        let mut batch = Vec::with_capacity(CAPACITY);
        let mut received = 0u64;
        while received < n {
            let got = tokio::time::timeout(STALL, rx.recv_many(&mut batch, CAPACITY))
                .await
                .map_err(|_| anyhow!("recv_many waited {STALL:?} after {received} messages"))?;
            ensure!(got > 0, "the senders hung up after {received} messages");
            for msg in batch.drain(..) {
                check(&msg)?;
            }
            received += got as u64;
        }
        Ok(())
    })
}

/// tokio `sync::mpsc::channel(4096)`, 64 B by value: the sender, a plain
/// thread, calls `blocking_send` per message; the receiver runs a
/// current-thread runtime's `block_on` around a loop of `recv_many` (up to
/// 4096 at a time).
pub fn tokio_mpsc(n: u64) -> Result<Duration> {
    const N: usize = 64;
    let (tx, rx) = tokio::sync::mpsc::channel::<[u8; N]>(CAPACITY);
    let rt = runtime()?;
    let (took, ()) = one_to_one(
        move || {
            let mut order = InOrder::new(N);
            tokio_receive(&rt, rx, n, |m| order.check(m))
        },
        move || {
            for i in 0..n {
                tx.blocking_send(message::<N>(0, i))
                    .map_err(|_| anyhow!("the receiver hung up at message {i}"))?;
            }
            Ok(())
        },
        || Ok(()),
    )?;
    Ok(took)
}

/// An rtrb ring of 4096 64 B messages, both sides busy-polling (`push` and
/// `pop` per message, spinning while full or empty): the single-producer
/// single-consumer ceiling.
#[cfg(feature = "peers")]
pub fn rtrb(n: u64) -> Result<Duration> {
    const N: usize = 64;
    let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; N]>::new(CAPACITY);
    let (took, ()) = one_to_one(
        move || {
            let mut order = InOrder::new(N);
            while order.seen < n {
                let mut spinner = Spinner::new("a message");
                let msg = loop {
                    match rx.pop() {
                        Ok(m) => break m,
                        Err(_) if rx.is_abandoned() => {
                            bail!("the sender hung up after {} messages", order.seen)
                        }
                        Err(_) => spinner.spin()?,
                    }
                };
                order.check(&msg)?;
            }
            Ok(())
        },
        move || {
            for i in 0..n {
                let mut msg = message::<N>(0, i);
                let mut spinner = Spinner::new("a free slot");
                loop {
                    match tx.push(msg) {
                        Ok(()) => break,
                        Err(_) if tx.is_abandoned() => {
                            bail!("the receiver hung up at message {i}")
                        }
                        Err(rtrb::PushError::Full(m)) => {
                            msg = m;
                            spinner.spin()?;
                        }
                    }
                }
            }
            Ok(())
        },
        || Ok(()),
    )?;
    Ok(took)
}

/// Sender jobs for a fan-in: sender `s` calls `send(s, i)` for each of its
/// messages, with whatever `make(s)` gave it.
fn fan_in_jobs<T: Send + 'static>(
    n: u64,
    mut make: impl FnMut(usize) -> T,
    send: fn(&T, usize, u64) -> Result<()>,
) -> Vec<SenderJob<()>> {
    (0..FAN_IN_SENDERS)
        .map(|s| {
            let tx = make(s);
            let job: SenderJob<()> = Box::new(move || {
                for i in 0..share(n, s) {
                    send(&tx, s, i)?;
                }
                Ok(())
            });
            job
        })
        .collect()
}

/// crossbeam-channel `bounded(4096)` shared by [`FAN_IN_SENDERS`] senders
/// (64 B by value; `send` and `recv_timeout` per message).
pub fn crossbeam_fan_in(n: u64) -> Result<Duration> {
    const N: usize = 64;
    let (tx, rx) = crossbeam_channel::bounded::<[u8; N]>(CAPACITY);
    let jobs = fan_in_jobs(
        n,
        |_| tx.clone(),
        |tx, s, i| {
            tx.send(message::<N>(s, i))
                .map_err(|_| anyhow!("the receiver hung up at message {i}"))
        },
    );
    drop(tx);
    let (took, (), _) = fan_in(
        jobs,
        move || {
            let mut order = PerSender::new(N);
            while order.seen < n {
                let msg = rx
                    .recv_timeout(STALL)
                    .with_context(|| format!("recv after {} messages", order.seen))?;
                order.check(&msg)?;
            }
            order.check_counts(n)
        },
        || Ok(()),
    )?;
    Ok(took)
}

/// kanal `bounded(4096)` shared by [`FAN_IN_SENDERS`] senders (blocking API,
/// 64 B by value; `send` and `recv_timeout` per message).
#[cfg(feature = "peers")]
pub fn kanal_fan_in(n: u64) -> Result<Duration> {
    const N: usize = 64;
    let (tx, rx) = kanal::bounded::<[u8; N]>(CAPACITY);
    let jobs = fan_in_jobs(
        n,
        |_| tx.clone(),
        |tx, s, i| {
            tx.send(message::<N>(s, i))
                .map_err(|e| anyhow!("send of message {i}: {e}"))
        },
    );
    drop(tx);
    let (took, (), _) = fan_in(
        jobs,
        move || {
            let mut order = PerSender::new(N);
            while order.seen < n {
                let msg = rx
                    .recv_timeout(STALL)
                    .map_err(|e| anyhow!("recv after {} messages: {e}", order.seen))?;
                order.check(&msg)?;
            }
            order.check_counts(n)
        },
        || Ok(()),
    )?;
    Ok(took)
}

/// tokio `sync::mpsc::channel(4096)` shared by [`FAN_IN_SENDERS`] plain
/// sender threads (`blocking_send`), received as in [`tokio_mpsc`].
pub fn tokio_fan_in(n: u64) -> Result<Duration> {
    const N: usize = 64;
    let (tx, rx) = tokio::sync::mpsc::channel::<[u8; N]>(CAPACITY);
    let rt = runtime()?;
    let jobs = fan_in_jobs(
        n,
        |_| tx.clone(),
        |tx, s, i| {
            tx.blocking_send(message::<N>(s, i))
                .map_err(|_| anyhow!("the receiver hung up at message {i}"))
        },
    );
    drop(tx);
    let (took, (), _) = fan_in(
        jobs,
        move || {
            let mut order = PerSender::new(N);
            tokio_receive(&rt, rx, n, |m| order.check(m))?;
            order.check_counts(n)
        },
        || Ok(()),
    )?;
    Ok(took)
}

/// Waits for the next message on a crossbeam channel as `wait` says.
fn crossbeam_wait<const N: usize>(
    rx: &crossbeam_channel::Receiver<[u8; N]>,
    wait: Wait,
    quit: &AtomicBool,
) -> Result<[u8; N]> {
    match wait {
        Wait::Busy => {
            let mut spinner = Spinner::new("a message").with_quit(quit);
            loop {
                match rx.try_recv() {
                    Ok(m) => return Ok(m),
                    Err(TryRecvError::Empty) => spinner.spin()?,
                    Err(TryRecvError::Disconnected) => bail!("the other side hung up"),
                }
            }
        }
        Wait::Blocking => match rx.recv_timeout(STALL) {
            Ok(m) => Ok(m),
            Err(RecvTimeoutError::Disconnected) => Err(GaveUp("a message").into()),
            Err(RecvTimeoutError::Timeout) => bail!("recv waited {STALL:?}"),
        },
    }
}

/// `n` timed round trips of 64 B over two crossbeam-channel `bounded(8)`
/// channels, both getters waiting as `wait` says (`try_recv` spinning, or
/// `recv_timeout`).
pub fn crossbeam_latency(n: u64, wait: Wait) -> Result<Run> {
    const N: usize = 64;
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<[u8; N]>(PING_CAPACITY);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<[u8; N]>(PING_CAPACITY);
    let (run, ()) = ping_pong(
        n,
        N,
        move |total, quit| {
            let mut order = InOrder::new(N);
            while order.seen < total {
                let i = order.seen;
                let msg = crossbeam_wait(&ping_rx, wait, quit)?;
                order.check(&msg)?;
                pong_tx
                    .send(message::<N>(0, i))
                    .map_err(|_| anyhow!("the pinger hung up at pong {i}"))?;
            }
            Ok(())
        },
        move |i, quit| {
            ping_tx
                .send(message::<N>(0, i))
                .map_err(|_| GaveUp("the echo side"))?;
            let pong = crossbeam_wait(&pong_rx, wait, quit)?;
            let got = word_of(&pong, N)?;
            ensure!(got == i, "pong {got} for ping {i}");
            Ok(())
        },
    )?;
    Ok(run)
}

/// `n` timed round trips of 64 B over two rtrb rings of 8, both sides
/// spinning on `pop`.
#[cfg(feature = "peers")]
pub fn rtrb_latency(n: u64) -> Result<Run> {
    const N: usize = 64;
    let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<[u8; N]>::new(PING_CAPACITY);
    let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<[u8; N]>::new(PING_CAPACITY);
    fn pop<const N: usize>(rx: &mut rtrb::Consumer<[u8; N]>, quit: &AtomicBool) -> Result<[u8; N]> {
        let mut spinner = Spinner::new("a message").with_quit(quit);
        loop {
            match rx.pop() {
                Ok(m) => return Ok(m),
                Err(_) if rx.is_abandoned() => bail!("the other side hung up"),
                Err(_) => spinner.spin()?,
            }
        }
    }
    let (run, ()) = ping_pong(
        n,
        N,
        move |total, quit| {
            let mut order = InOrder::new(N);
            while order.seen < total {
                let i = order.seen;
                let msg = pop(&mut ping_rx, quit)?;
                order.check(&msg)?;
                // One message at a time: the ring is never full.
                pong_tx
                    .push(message::<N>(0, i))
                    .map_err(|_| anyhow!("the pong ring was full at pong {i}"))?;
            }
            Ok(())
        },
        move |i, quit| {
            ping_tx
                .push(message::<N>(0, i))
                .map_err(|_| anyhow!("the ping ring was full at ping {i}"))?;
            let pong = pop(&mut pong_rx, quit)?;
            let got = word_of(&pong, N)?;
            ensure!(got == i, "pong {got} for ping {i}");
            Ok(())
        },
    )?;
    Ok(run)
}
