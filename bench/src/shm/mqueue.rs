//! POSIX message queues between processes (`mq_open`, `mq_send`,
//! `mq_receive` through `libc`), one 64 B message per call: throughput (one
//! sender, or several into one queue), and a blocking ping-pong over two
//! queues.
//!
//! A queue holds [`depth`] messages: `/proc/sys/fs/mqueue/msg_max`, the most
//! a process without `CAP_SYS_RESOURCE` may ask for (10 by default), so that
//! the figure is the one an ordinary program gets. Every queue has a name of
//! its own (pid and a counter) and is unlinked as soon as the child has
//! opened it (and on every error path), so nothing outlives a run. Every
//! wait ends at the run's deadline (`mq_timedsend`, `mq_timedreceive`).

use std::ffi::CString;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use super::peers::{index_of, sender_of, stamp, stamp_sender};
use super::process::{ChildEnv, ChildProc, Control, Launcher, Step};
use super::{LATENCY_LIMIT, RECEIVER_CPU, Run, SENDER_CPU, SMALL, latency_loop, warmup_for};
use crate::pin;

/// Messages a queue holds when `/proc/sys/fs/mqueue/msg_max` cannot be read
/// (the kernel's default for it).
const DEFAULT_DEPTH: i64 = 10;

/// Messages a queue of these cells holds: the limit for unprivileged
/// processes, `/proc/sys/fs/mqueue/msg_max` (capped at 1024).
pub(crate) fn depth() -> i64 {
    std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|&d| d > 0)
        .unwrap_or(DEFAULT_DEPTH)
        .min(1024)
}

/// An absolute `CLOCK_REALTIME` time (what `mq_timed*` take) `after` from now.
fn deadline_after(after: Duration) -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a live local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    let ns = now.tv_nsec as u64 + u64::from(after.subsec_nanos());
    libc::timespec {
        tv_sec: now.tv_sec + after.as_secs() as libc::time_t + (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// One open message queue; unlinked on drop if this process created it and
/// has not unlinked it yet.
#[derive(Debug)]
struct Queue {
    mqd: libc::mqd_t,
    name: CString,
    linked: bool,
}

impl Queue {
    /// Creates a new queue of [`depth`] messages of [`SMALL`] bytes, for
    /// reading and writing, under a name unique to this process and call.
    fn create(tag: &str) -> Result<Queue> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "/asyncmsg-bench-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let name = CString::new(name).context("a queue name")?;
        // SAFETY: mq_attr is plain data.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = depth() as _;
        attr.mq_msgsize = SMALL as _;
        // SAFETY: a valid C string, flags, a mode and a live mq_attr, as
        // mq_open(3) takes them with O_CREAT.
        let mqd = unsafe {
            libc::mq_open(
                name.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
                &attr as *const libc::mq_attr,
            )
        };
        ensure!(
            mqd >= 0,
            "mq_open({name:?}, {} × {SMALL} B): {}",
            depth(),
            std::io::Error::last_os_error()
        );
        Ok(Queue {
            mqd,
            name,
            linked: true,
        })
    }

    /// Opens the queue `name` another process created.
    fn open(name: &str) -> Result<Queue> {
        let name = CString::new(name).context("a queue name")?;
        // SAFETY: a valid C string and flags without O_CREAT.
        let mqd = unsafe { libc::mq_open(name.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        ensure!(
            mqd >= 0,
            "mq_open({name:?}): {}",
            std::io::Error::last_os_error()
        );
        Ok(Queue {
            mqd,
            name,
            linked: false,
        })
    }

    fn name(&self) -> String {
        self.name.to_string_lossy().into_owned()
    }

    /// Removes the name (the queue lives on while open).
    fn unlink(&mut self) -> Result<()> {
        if self.linked {
            self.linked = false;
            // SAFETY: a valid C string.
            let r = unsafe { libc::mq_unlink(self.name.as_ptr()) };
            ensure!(
                r == 0,
                "mq_unlink({:?}): {}",
                self.name,
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// Sends `msg`, waiting at most until `deadline` for room.
    fn send(&self, msg: &[u8], deadline: &libc::timespec) -> Result<()> {
        loop {
            // SAFETY: `msg` is live for the call; `deadline` is a valid
            // timespec; the descriptor is open.
            let r = unsafe {
                libc::mq_timedsend(self.mqd, msg.as_ptr().cast(), msg.len(), 0, deadline)
            };
            if r == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(anyhow!("mq_timedsend: {e}"));
            }
        }
    }

    /// Receives one message into `buf` (at least [`SMALL`] bytes), waiting
    /// at most until `deadline`; its length.
    fn receive(&self, buf: &mut [u8], deadline: &libc::timespec) -> Result<usize> {
        loop {
            // SAFETY: `buf` is live and writable for its length, which is
            // at least the queue's message size; the descriptor is open.
            let r = unsafe {
                libc::mq_timedreceive(
                    self.mqd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    std::ptr::null_mut(),
                    deadline,
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(anyhow!("mq_timedreceive: {e}"));
            }
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        let _ = self.unlink();
        // SAFETY: closes the descriptor this value owns.
        unsafe { libc::mq_close(self.mqd) };
    }
}

/// `n` 64 B messages in all from `senders` child processes into one queue,
/// one message per `mq_send`; the parent receives and checks every sender's
/// messages arrive in its order. Timed from the first go until the last
/// message was received.
pub(crate) fn throughput(launcher: &Launcher, n: u64, senders: u64) -> Result<Run> {
    let mut queue = Queue::create("throughput")?;
    let mut children = Vec::new();
    for k in 0..senders {
        let (control, their_control) = Control::pair()?;
        let child = ChildProc::spawn(
            launcher,
            "mq-send",
            &[
                queue.name(),
                super::asyncmsg::share_of(n, senders, k).to_string(),
                k.to_string(),
            ],
            &[their_control.as_fd()],
        )?;
        children.push((control, child));
    }
    let _pinned = pin(RECEIVER_CPU);
    for (control, child) in &mut children {
        control.expect_from(Step::Ready, child)?;
    }
    queue.unlink()?; // every child has it open

    let deadline = deadline_after(LATENCY_LIMIT);
    let began = Instant::now();
    for (control, _) in &mut children {
        control.send(Step::Go)?;
    }
    let mut expected = vec![0u64; senders as usize];
    let mut msg = [0u8; SMALL];
    let outcome = (|| -> Result<()> {
        for received in 0..n {
            let len = queue
                .receive(&mut msg, &deadline)
                .with_context(|| format!("after {received} of {n} messages"))?;
            ensure!(len == SMALL, "a message of {len} bytes, expected {SMALL}");
            let k = sender_of(&msg);
            let next = expected
                .get_mut(k as usize)
                .with_context(|| format!("a message from sender {k} of {senders}"))?;
            let got = index_of(&msg);
            ensure!(
                got == *next,
                "received message {got} of sender {k}, expected {next}"
            );
            *next += 1;
        }
        Ok(())
    })();
    let took = began.elapsed();
    super::asyncmsg::explain_fan_in(outcome, &mut children)?;
    super::asyncmsg::check_shares(&expected, n)?;
    super::asyncmsg::say_bye(children)?;
    Ok(Run::throughput(n, SMALL, took))
}

pub(crate) fn child_send(mut env: ChildEnv) -> Result<()> {
    let queue = Queue::open(env.arg(0)?)?;
    let n = env.num(1)?;
    let sender = env.num(2)?;
    let mut control = Control::from_fd(env.fd(0)?);
    let _pinned = pin(SENDER_CPU);
    let mut msg = [0u8; SMALL];
    stamp_sender(&mut msg, sender);
    control.send(Step::Ready)?;
    control.expect(Step::Go)?;
    let deadline = deadline_after(LATENCY_LIMIT);
    for i in 0..n {
        stamp(&mut msg, i);
        queue
            .send(&msg, &deadline)
            .with_context(|| format!("message {i}"))?;
    }
    control.expect(Step::Bye)
}

/// Ping-pong of 64 B messages over two queues (one per direction), both
/// sides blocking in `mq_timedreceive`: `n` timed round trips after a
/// warm-up.
pub(crate) fn latency(launcher: &Launcher, n: u64) -> Result<Run> {
    let warmup = warmup_for(n);
    let mut ping = Queue::create("ping")?;
    let mut pong = Queue::create("pong")?;
    let (mut control, their_control) = Control::pair()?;
    let mut child = ChildProc::spawn(
        launcher,
        "mq-echo",
        &[ping.name(), pong.name(), (warmup + n).to_string()],
        &[their_control.as_fd()],
    )?;
    drop(their_control);
    let _pinned = pin(SENDER_CPU);
    control.expect_from(Step::Ready, &mut child)?;
    ping.unlink()?;
    pong.unlink()?;
    let deadline = deadline_after(LATENCY_LIMIT);
    let mut msg = [0u8; SMALL];
    let run = latency_loop(warmup, n, |i| {
        stamp(&mut msg, i);
        ping.send(&msg, &deadline)?;
        let len = pong.receive(&mut msg, &deadline)?;
        ensure!(len == SMALL, "a pong of {len} bytes");
        let back = index_of(&msg);
        if back != i {
            bail!("pong {back}, expected {i}");
        }
        Ok(())
    });
    let run = run.map_err(|e| e.context(child.failure()))?;
    control.send(Step::Bye)?;
    child.finish()?;
    Ok(run)
}

pub(crate) fn child_echo(mut env: ChildEnv) -> Result<()> {
    let ping = Queue::open(env.arg(0)?)?;
    let pong = Queue::open(env.arg(1)?)?;
    let total = env.num(2)?;
    let mut control = Control::from_fd(env.fd(0)?);
    let _pinned = pin(RECEIVER_CPU);
    control.send(Step::Ready)?;
    let deadline = deadline_after(LATENCY_LIMIT);
    let mut msg = [0u8; SMALL];
    for i in 0..total {
        let len = ping
            .receive(&mut msg, &deadline)
            .with_context(|| format!("ping {i}"))?;
        ensure!(len == SMALL, "ping {i}: {len} bytes");
        let got = index_of(&msg);
        ensure!(got == i, "ping {got}, expected {i}");
        pong.send(&msg, &deadline)
            .with_context(|| format!("pong {i}"))?;
    }
    control.expect(Step::Bye)
}
