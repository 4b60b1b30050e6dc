//! The baselines measured beside asyncmsg's shared-memory transport, each
//! between two processes (except memcpy): a Unix domain socket pair carrying
//! 64 B messages (throughput, one write per message or 64 per write; and a
//! ping-pong), a bare eventfd ping-pong (the blocking wake-up floor), an atomic
//! ping-pong on a shared memfd page (the busy-poll floor), and single-thread
//! memcpy bandwidth (the floor under a copied put); and for the fan-in cells a
//! Unix datagram socket pair whose sending end four children share.
//!
//! Each parent function runs one side and starts the other as a child process;
//! the child functions (`child_*`) are the other side.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

use super::process::{
    ChildEnv, ChildProc, Control, Launcher, STEP_LIMIT, SharedPage, Step, Watchdog, eventfd,
    read_u64, write_u64,
};
use super::{LATENCY_LIMIT, RECEIVER_CPU, Run, SENDER_CPU, SMALL, latency_loop, warmup_for};
use crate::pin;

/// Bytes per message of the memcpy floor.
pub const MIB: usize = 1 << 20;

/// Messages per write in the batched Unix socket cell.
pub const UDS_BATCH: usize = 64;

/// Bytes the Unix socket receiver asks for per read.
const UDS_READ: usize = 64 * 1024;

/// Single-thread memcpy of `n` 1 MiB buffers (one source, one destination,
/// both touched first), on the sender's CPU.
pub(crate) fn memcpy(n: u64) -> Result<Run> {
    let src: Vec<u8> = (0..MIB).map(|i| i as u8).collect();
    let mut dst = vec![0u8; MIB];
    let _pinned = pin(SENDER_CPU);
    dst.copy_from_slice(&src);
    let began = Instant::now();
    for _ in 0..n {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    let took = began.elapsed();
    ensure!(dst == src, "memcpy copied the wrong bytes");
    Ok(Run::throughput(n, MIB, took))
}

/// `n` 64 B messages from a child over a Unix stream socket pair,
/// `per_write` messages per write; the parent receives, reading up to 64 KiB
/// per call, and checks every message's index.
pub(crate) fn uds_throughput(launcher: &Launcher, n: u64, per_write: usize) -> Result<Run> {
    let (mut data, theirs) = UnixStream::pair().context("creating the socket pair")?;
    data.set_read_timeout(Some(STEP_LIMIT))
        .context("setting the read timeout")?;
    let (mut control, their_control) = Control::pair()?;
    let mut child = ChildProc::spawn(
        launcher,
        "uds-send",
        &[n.to_string(), per_write.to_string()],
        &[theirs.as_fd(), their_control.as_fd()],
    )?;
    drop((theirs, their_control));
    let _pinned = pin(RECEIVER_CPU);
    let mut buf = vec![0u8; UDS_READ];
    control.expect_from(Step::Ready, &mut child)?;

    let began = Instant::now();
    control.send(Step::Go)?;
    let mut expected = 0u64;
    let mut filled = 0usize;
    while expected < n {
        let got = data
            .read(&mut buf[filled..])
            .with_context(|| format!("read after {expected} messages"))?;
        if got == 0 {
            bail!(
                "end of stream after {expected} of {n} messages ({})",
                child.failure()
            );
        }
        filled += got;
        let whole = filled / SMALL * SMALL;
        for msg in buf[..whole].chunks_exact(SMALL) {
            let index = index_of(msg);
            ensure!(
                index == expected,
                "received message {index}, expected {expected}"
            );
            expected += 1;
        }
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
    let took = began.elapsed();
    ensure!(filled == 0, "{filled} bytes beyond the last message");

    control.send(Step::Bye)?;
    child.finish()?;
    Ok(Run::throughput(n, SMALL, took))
}

pub(crate) fn child_uds_send(mut env: ChildEnv) -> Result<()> {
    let n = env.num(0)?;
    let per_write = env.num(1)? as usize;
    ensure!(per_write > 0, "zero messages per write");
    let mut data = UnixStream::from(env.fd(0)?);
    let mut control = Control::from_fd(env.fd(1)?);
    let _pinned = pin(SENDER_CPU);
    let mut chunk = vec![0u8; SMALL * per_write];
    control.send(Step::Ready)?;
    control.expect(Step::Go)?;
    let mut i = 0u64;
    while i < n {
        let count = (n - i).min(per_write as u64) as usize;
        for (k, msg) in chunk[..count * SMALL].chunks_exact_mut(SMALL).enumerate() {
            stamp(msg, i + k as u64);
        }
        data.write_all(&chunk[..count * SMALL])
            .with_context(|| format!("write at message {i}"))?;
        i += count as u64;
    }
    control.expect(Step::Bye)
}

/// `n` 64 B messages in all from `senders` child processes over one Unix
/// datagram socket pair, whose sending end they all share (a datagram keeps
/// its boundaries, so the writers' messages do not mix the way they would on
/// a shared stream socket), `per_write` messages per datagram; the parent
/// receives one datagram per read and checks every sender's messages arrive
/// in its order.
pub(crate) fn uds_fan_in(
    launcher: &Launcher,
    n: u64,
    per_write: usize,
    senders: u64,
) -> Result<Run> {
    let (data, theirs) = UnixDatagram::pair().context("creating the socket pair")?;
    data.set_read_timeout(Some(STEP_LIMIT))
        .context("setting the read timeout")?;
    let mut children = Vec::new();
    for k in 0..senders {
        let (control, their_control) = Control::pair()?;
        let child = ChildProc::spawn(
            launcher,
            "uds-dgram-send",
            &[
                super::asyncmsg::share_of(n, senders, k).to_string(),
                per_write.to_string(),
                k.to_string(),
            ],
            &[theirs.as_fd(), their_control.as_fd()],
        )?;
        children.push((control, child));
    }
    drop(theirs);
    let _pinned = pin(RECEIVER_CPU);
    let mut buf = vec![0u8; SMALL * per_write + 1];
    for (control, child) in &mut children {
        control.expect_from(Step::Ready, child)?;
    }

    let began = Instant::now();
    for (control, _) in &mut children {
        control.send(Step::Go)?;
    }
    let mut expected = vec![0u64; senders as usize];
    let mut received = 0u64;
    let outcome = (|| -> Result<()> {
        while received < n {
            let got = data
                .recv(&mut buf)
                .with_context(|| format!("read after {received} of {n} messages"))?;
            ensure!(
                got > 0 && got % SMALL == 0 && got <= SMALL * per_write,
                "a datagram of {got} bytes"
            );
            for msg in buf[..got].chunks_exact(SMALL) {
                let k = sender_of(msg);
                let next = expected
                    .get_mut(k as usize)
                    .with_context(|| format!("a message from sender {k} of {senders}"))?;
                let index = index_of(msg);
                ensure!(
                    index == *next,
                    "received message {index} of sender {k}, expected {next}"
                );
                *next += 1;
                received += 1;
            }
        }
        Ok(())
    })();
    let took = began.elapsed();
    super::asyncmsg::explain_fan_in(outcome, &mut children)?;
    super::asyncmsg::check_shares(&expected, n)?;
    super::asyncmsg::say_bye(children)?;
    Ok(Run::throughput(n, SMALL, took))
}

pub(crate) fn child_uds_dgram_send(mut env: ChildEnv) -> Result<()> {
    let n = env.num(0)?;
    let per_write = env.num(1)? as usize;
    let sender = env.num(2)?;
    ensure!(per_write > 0, "zero messages per write");
    let data = UnixDatagram::from(env.fd(0)?);
    data.set_write_timeout(Some(STEP_LIMIT))
        .context("setting the write timeout")?;
    let mut control = Control::from_fd(env.fd(1)?);
    let _pinned = pin(SENDER_CPU);
    let mut chunk = vec![0u8; SMALL * per_write];
    for msg in chunk.chunks_exact_mut(SMALL) {
        stamp_sender(msg, sender);
    }
    control.send(Step::Ready)?;
    control.expect(Step::Go)?;
    let mut i = 0u64;
    while i < n {
        let count = (n - i).min(per_write as u64) as usize;
        for (k, msg) in chunk[..count * SMALL].chunks_exact_mut(SMALL).enumerate() {
            stamp(msg, i + k as u64);
        }
        let sent = data
            .send(&chunk[..count * SMALL])
            .with_context(|| format!("write at message {i}"))?;
        ensure!(sent == count * SMALL, "a short datagram at message {i}");
        i += count as u64;
    }
    control.expect(Step::Bye)
}

/// Ping-pong of 64 B messages over a Unix stream socket pair: `n` timed round
/// trips after a warm-up, each message carrying its index back and forth.
pub(crate) fn uds_latency(launcher: &Launcher, n: u64) -> Result<Run> {
    uds_round_trips(launcher, n, "uds-echo", |msg, i| {
        let back = index_of(msg);
        ensure!(back == i, "pong {back}, expected {i}");
        Ok(())
    })
}

pub(crate) fn child_uds_echo(env: ChildEnv) -> Result<()> {
    serve_uds(env, |_, _| Ok(()))
}

/// `n` timed round trips (after a warm-up) over a Unix stream socket pair with
/// the child in `role`: each writes 64 B stamped with the round's index and
/// reads 64 B back, which `check` verifies; both sides block in `read`.
pub(crate) fn uds_round_trips(
    launcher: &Launcher,
    n: u64,
    role: &str,
    check: impl Fn(&[u8; SMALL], u64) -> Result<()>,
) -> Result<Run> {
    let warmup = warmup_for(n);
    let (mut data, theirs) = UnixStream::pair().context("creating the socket pair")?;
    data.set_read_timeout(Some(STEP_LIMIT))
        .context("setting the read timeout")?;
    let (mut control, their_control) = Control::pair()?;
    let mut child = ChildProc::spawn(
        launcher,
        role,
        &[(warmup + n).to_string()],
        &[theirs.as_fd(), their_control.as_fd()],
    )?;
    drop((theirs, their_control));
    let _pinned = pin(SENDER_CPU);
    control.expect_from(Step::Ready, &mut child)?;
    let mut msg = [0u8; SMALL];
    let run = latency_loop(warmup, n, |i| {
        stamp(&mut msg, i);
        data.write_all(&msg).with_context(|| format!("ping {i}"))?;
        data.read_exact(&mut msg)
            .with_context(|| format!("pong {i}"))?;
        check(&msg, i)
    });
    let run = run.map_err(|e| e.context(child.failure()))?;
    control.send(Step::Bye)?;
    child.finish()?;
    Ok(run)
}

/// The child side of [`uds_round_trips`]: reads each 64 B message, lets
/// `answer` turn it into the reply in place (given the round's index), and
/// writes it back.
pub(crate) fn serve_uds(
    mut env: ChildEnv,
    answer: impl Fn(&mut [u8; SMALL], u64) -> Result<()>,
) -> Result<()> {
    let total = env.num(0)?;
    let mut data = UnixStream::from(env.fd(0)?);
    let mut control = Control::from_fd(env.fd(1)?);
    let _pinned = pin(RECEIVER_CPU);
    let mut msg = [0u8; SMALL];
    control.send(Step::Ready)?;
    for i in 0..total {
        data.read_exact(&mut msg)
            .with_context(|| format!("ping {i}"))?;
        answer(&mut msg, i)?;
        data.write_all(&msg).with_context(|| format!("pong {i}"))?;
    }
    control.expect(Step::Bye)
}

/// A count the watchdog adds to the pong eventfd to wake a parent blocked in
/// its read; a real pong adds 1.
const POISON: u64 = 1 << 40;

/// Ping-pong over two eventfds (one per direction), each side blocking in
/// `read`: the wake-up latency floor with no payload.
pub(crate) fn eventfd_latency(launcher: &Launcher, n: u64) -> Result<Run> {
    let warmup = warmup_for(n);
    let ping = eventfd()?;
    let pong = Arc::new(eventfd()?);
    let (mut control, their_control) = Control::pair()?;
    let mut child = ChildProc::spawn(
        launcher,
        "eventfd-echo",
        &[(warmup + n).to_string()],
        &[ping.as_fd(), pong.as_fd(), their_control.as_fd()],
    )?;
    drop(their_control);
    let _pinned = pin(SENDER_CPU);
    control.expect_from(Step::Ready, &mut child)?;
    let watchdog = {
        let pong = pong.clone();
        Watchdog::start(&control, LATENCY_LIMIT, move || {
            let _ = write_u64(pong.as_fd(), POISON);
        })?
    };
    let run = latency_loop(warmup, n, |i| {
        write_u64(ping.as_fd(), 1).with_context(|| format!("ping {i}"))?;
        let v = read_u64(pong.as_fd()).with_context(|| format!("pong {i}"))?;
        ensure!(
            v == 1,
            "pong {i}: count {v} (the child is gone or the run timed out)"
        );
        Ok(())
    });
    let tripped = watchdog.stop();
    let run = run.map_err(|e| e.context(child.failure()))?;
    ensure!(!tripped, "the watchdog tripped ({})", child.failure());
    control.send(Step::Bye)?;
    child.finish()?;
    Ok(run)
}

pub(crate) fn child_eventfd_echo(mut env: ChildEnv) -> Result<()> {
    let total = env.num(0)?;
    let ping = env.fd(0)?;
    let pong = env.fd(1)?;
    let mut control = Control::from_fd(env.fd(2)?);
    let _pinned = pin(RECEIVER_CPU);
    control.send(Step::Ready)?;
    for i in 0..total {
        let v = read_u64(ping.as_fd()).with_context(|| format!("ping {i}"))?;
        ensure!(v == 1, "ping {i}: count {v}");
        write_u64(pong.as_fd(), 1).with_context(|| format!("pong {i}"))?;
    }
    control.expect(Step::Bye)
}

/// Spins between watchdog checks in the atomic ping-pong.
const SPINS_PER_CHECK: u32 = 1 << 12;

/// Ping-pong of one atomic word on a memfd page both processes map, each side
/// spinning: the busy-poll floor (one cache line crossing per direction).
pub(crate) fn atomic_latency(launcher: &Launcher, n: u64) -> Result<Run> {
    let warmup = warmup_for(n);
    let page = SharedPage::create(4096)?;
    let (mut control, their_control) = Control::pair()?;
    let mut child = ChildProc::spawn(
        launcher,
        "atomic-echo",
        &[(warmup + n).to_string()],
        &[page.fd(), their_control.as_fd()],
    )?;
    drop(their_control);
    let _pinned = pin(SENDER_CPU);
    control.expect_from(Step::Ready, &mut child)?;
    let watchdog = Watchdog::start(&control, LATENCY_LIMIT, || {})?;
    let ball = page.word();
    let run = latency_loop(warmup, n, |i| {
        ball.store(2 * i + 1, Ordering::Release);
        let mut spins = 0u32;
        while ball.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % SPINS_PER_CHECK == 0 && watchdog.flag().load(Ordering::Relaxed) {
                bail!("pong {i} never came (the child is gone or the run timed out)");
            }
        }
        Ok(())
    });
    let tripped = watchdog.stop();
    let run = run.map_err(|e| e.context(child.failure()))?;
    ensure!(!tripped, "the watchdog tripped ({})", child.failure());
    control.send(Step::Bye)?;
    child.finish()?;
    Ok(run)
}

pub(crate) fn child_atomic_echo(mut env: ChildEnv) -> Result<()> {
    let total = env.num(0)?;
    let page = SharedPage::map(env.fd(0)?, 4096)?;
    let mut control = Control::from_fd(env.fd(1)?);
    let _pinned = pin(RECEIVER_CPU);
    let ball = page.word();
    control.send(Step::Ready)?;
    // A parent that fails stops answering; it then kills this process.
    for i in 0..total {
        while ball.load(Ordering::Acquire) != 2 * i + 1 {
            std::hint::spin_loop();
        }
        ball.store(2 * i + 2, Ordering::Release);
    }
    control.expect(Step::Bye)
}

/// Writes message index `i` into the first 8 bytes.
pub(crate) fn stamp(msg: &mut [u8], i: u64) {
    msg[..8].copy_from_slice(&i.to_le_bytes());
}

/// The message index in the first 8 bytes.
pub(crate) fn index_of(msg: &[u8]) -> u64 {
    u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"))
}

/// Writes sender number `k` into bytes 8..16 (fan-in cells).
pub(crate) fn stamp_sender(msg: &mut [u8], k: u64) {
    msg[8..16].copy_from_slice(&k.to_le_bytes());
}

/// The sender number in bytes 8..16.
pub(crate) fn sender_of(msg: &[u8]) -> u64 {
    u64::from_le_bytes(msg[8..16].try_into().expect("8 bytes"))
}
