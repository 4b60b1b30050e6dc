//! How late asyncmsg's time trigger fires over `shm://`: the child's
//! connection has a time trigger of [`DELAY`] and a count trigger it never
//! reaches; for each sample the child puts one message (once the parent let
//! the previous one go, which its delivery callback tells it) carrying its
//! index and the `CLOCK_MONOTONIC` time just before the put, and the parent,
//! blocked in a get, notes the time the message arrived. Both processes read
//! the same clock, so the lateness of a sample is `arrival − (put + DELAY)`:
//! the trigger's own delay past its deadline plus the parent's wake-up.

use std::os::fd::AsFd;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use asyncmsg::{ConnectionAttr, Message, Node};

use super::asyncmsg::{
    Buffers, Deliveries, address, channel, check_message, get_batch, unique_name,
};
use super::peers::stamp;
use super::process::{ChildEnv, ChildProc, Control, Launcher, STEP_LIMIT, Step};
use super::{Histogram, Kind, RECEIVER_CPU, Run, SENDER_CPU, SMALL};
use crate::pin;

/// The time trigger of the child's connection.
pub(crate) const DELAY: Duration = Duration::from_millis(2);

/// Messages in flight at most on the child's connection (one is used).
const MAX_BUFFERS: u32 = 64;

/// The count trigger: never reached, one message being in flight at a time.
const COUNT_TRIGGER: u32 = MAX_BUFFERS;

/// Samples before the recorded ones.
const WARMUP: u64 = 5;

/// Nanoseconds of `CLOCK_MONOTONIC`, which every process of the host shares.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a live local timespec; CLOCK_MONOTONIC always exists.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `n` samples (after a warm-up) of the lateness of a [`DELAY`] time trigger.
pub(crate) fn asyncmsg(launcher: &Launcher, n: u64) -> Result<Run> {
    let total = WARMUP + n;
    let node = Node::new().context("starting a node")?;
    let chan = channel(&node, SMALL, MAX_BUFFERS, None)?;
    let name = unique_name("time-trigger");
    chan.publish(&name).context("publishing the channel")?;
    let (mut control, their_control) = Control::pair()?;
    let mut child = ChildProc::spawn(
        launcher,
        "asyncmsg-timed",
        &[name, total.to_string(), DELAY.as_nanos().to_string()],
        &[their_control.as_fd()],
    )?;
    drop(their_control);
    let _pinned = pin(RECEIVER_CPU);
    let mut batch: Vec<Message> = Vec::with_capacity(MAX_BUFFERS as usize);
    control.expect_from(Step::Ready, &mut child)?;

    let delay = DELAY.as_nanos() as u64;
    let mut late = Histogram::new();
    let mut began = Instant::now();
    let received = (|| -> Result<()> {
        for i in 0..total {
            if i == WARMUP {
                began = Instant::now();
            }
            get_batch(&chan, &mut batch, i)?;
            let arrived = monotonic_ns();
            ensure!(batch.len() == 1, "{} messages at sample {i}", batch.len());
            check_message(&batch[0], SMALL, i)?;
            let put_at = u64::from_le_bytes(batch[0].data()[8..16].try_into()?);
            let deadline = put_at + delay;
            ensure!(
                arrived >= deadline,
                "sample {i} arrived {} ns before its deadline",
                deadline - arrived
            );
            if i >= WARMUP {
                late.record(arrived - deadline);
            }
            batch.clear(); // lets it go: the child's callback runs, it puts the next
        }
        Ok(())
    })();
    received.map_err(|e| e.context(child.failure()))?;
    let took = began.elapsed();
    control.expect_from(Step::Done, &mut child)?;
    control.send(Step::Bye)?;
    child.finish()?;
    drop(chan);
    drop(node);
    Ok(Run {
        messages: n,
        bytes: n * SMALL as u64,
        took,
        rtt: Some(late),
        kind: Kind::RoundTrip,
    })
}

pub(crate) fn child_asyncmsg(mut env: ChildEnv) -> Result<()> {
    let name = env.arg(0)?.to_owned();
    let total = env.num(1)?;
    let delay = Duration::from_nanos(env.num(2)?);
    let mut control = Control::from_fd(env.fd(0)?);

    let node = Node::new().context("starting a node")?;
    let mut buffers = Buffers::new(&node, 4, SMALL, false);
    let seen = Arc::new(Deliveries::default());
    let (taken_tx, taken_rx) = mpsc::sync_channel::<u64>(1);
    let recycler = buffers.recycler();
    let callbacks = seen.clone();
    let conn = node
        .connect(
            address(&name),
            ConnectionAttr::default()
                .max_buffers(MAX_BUFFERS)
                .trigger_count(COUNT_TRIGGER)
                .trigger_time(delay)
                .on_delivered(move |d| {
                    callbacks.saw(d.handle, d.result.is_ok(), || {
                        format!("delivery callback for handle {} ({:?})", d.handle, d.result)
                    });
                    recycler.push(d.buf);
                    let _ = taken_tx.try_send(d.handle);
                }),
        )
        .with_context(|| format!("connecting to {name}"))?;
    let _pinned = pin(SENDER_CPU);
    control.send(Step::Ready)?;
    for i in 0..total {
        let mut buf = buffers.take(&node);
        stamp(&mut buf, i);
        let now = monotonic_ns();
        buf[8..16].copy_from_slice(&now.to_le_bytes());
        conn.put(buf, i)
            .map_err(|e| anyhow!("put of sample {i}: {e}"))?;
        let taken = taken_rx
            .recv_timeout(STEP_LIMIT)
            .map_err(|_| anyhow!("sample {i} was never taken"))?;
        ensure!(
            taken == i,
            "the callback of sample {taken} came for sample {i}"
        );
    }
    seen.check(total)?;
    control.send(Step::Done)?;
    control.expect(Step::Bye)?;
    drop(conn);
    drop(node);
    Ok(())
}
