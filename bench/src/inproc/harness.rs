//! What every in-process run shares: the index stamped into each message and
//! the receiver's check of it, bounded spinning, and the thread layouts
//! (one sender and one receiver; four senders and one receiver; a ping-pong).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::shm::{Kind, Run, latency_loop, warmup_for};
use crate::{RECEIVER_CPU, SENDER_CPU, pin};

/// How long any single wait in a run may take before the run is declared hung
/// (a blocking receive, a spin, the last delivery callbacks).
pub(crate) const STALL: Duration = Duration::from_secs(30);

/// Senders of a fan-in cell.
pub const FAN_IN_SENDERS: usize = 4;

/// Bits of a message's index word that hold the index; the sender's number
/// sits above them.
const INDEX_BITS: u32 = 48;

/// The word stamped into the first 8 bytes of message `index` of sender
/// `sender` (0 for the one sender of a one-to-one cell, so the word is then
/// the index itself).
pub(crate) fn word(sender: usize, index: u64) -> u64 {
    ((sender as u64) << INDEX_BITS) | index
}

/// Writes `word` into the first 8 bytes of `buf`.
pub(crate) fn stamp(buf: &mut [u8], word: u64) {
    buf[..8].copy_from_slice(&word.to_le_bytes());
}

/// The word in the first 8 bytes of `buf`, once its length is checked.
pub(crate) fn word_of(buf: &[u8], payload: usize) -> Result<u64> {
    ensure!(
        buf.len() == payload,
        "message of {} bytes, expected {payload}",
        buf.len()
    );
    Ok(u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")))
}

/// A receiver's check of one sender's messages: each carries the next index.
#[derive(Debug)]
pub(crate) struct InOrder {
    /// Messages seen so far (the index expected next).
    pub(crate) seen: u64,
    payload: usize,
}

impl InOrder {
    pub(crate) fn new(payload: usize) -> InOrder {
        InOrder { seen: 0, payload }
    }

    /// Checks the next message.
    pub(crate) fn check(&mut self, buf: &[u8]) -> Result<()> {
        let got = word_of(buf, self.payload)?;
        ensure!(
            got == self.seen,
            "received message {got}, expected {}",
            self.seen
        );
        self.seen += 1;
        Ok(())
    }
}

/// A fan-in receiver's check: each sender's messages arrive in that sender's
/// order (they interleave freely between senders).
#[derive(Debug)]
pub(crate) struct PerSender {
    next: [u64; FAN_IN_SENDERS],
    /// Messages seen so far, from all senders.
    pub(crate) seen: u64,
    payload: usize,
}

impl PerSender {
    pub(crate) fn new(payload: usize) -> PerSender {
        PerSender {
            next: [0; FAN_IN_SENDERS],
            seen: 0,
            payload,
        }
    }

    /// Checks the next message.
    pub(crate) fn check(&mut self, buf: &[u8]) -> Result<()> {
        let w = word_of(buf, self.payload)?;
        let sender = (w >> INDEX_BITS) as usize;
        let index = w & ((1 << INDEX_BITS) - 1);
        ensure!(
            sender < FAN_IN_SENDERS,
            "message from sender {sender} of {FAN_IN_SENDERS}"
        );
        ensure!(
            index == self.next[sender],
            "received message {index} of sender {sender}, expected {}",
            self.next[sender]
        );
        self.next[sender] += 1;
        self.seen += 1;
        Ok(())
    }

    /// Checks that sender `s` sent `share(n, s)` messages, for every sender.
    pub(crate) fn check_counts(&self, n: u64) -> Result<()> {
        for (s, &got) in self.next.iter().enumerate() {
            ensure!(
                got == share(n, s),
                "{got} messages from sender {s}, expected {}",
                share(n, s)
            );
        }
        Ok(())
    }
}

/// How many of the `n` messages of a fan-in run sender `s` sends.
pub(crate) fn share(n: u64, s: usize) -> u64 {
    let senders = FAN_IN_SENDERS as u64;
    n / senders + u64::from((s as u64) < n % senders)
}

/// The error of a wait that stopped because the other side of a ping-pong
/// failed (it has the error worth reporting).
#[derive(Debug)]
pub(crate) struct GaveUp(pub(crate) &'static str);

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gave up waiting for {}: the other side failed", self.0)
    }
}

impl std::error::Error for GaveUp {}

/// A bounded busy wait: [`spin`](Spinner::spin) once per failed look; after
/// [`STALL`] of spinning (or once `quit` is raised) it returns an error. The
/// clock is read only every few thousand spins.
#[derive(Debug)]
pub(crate) struct Spinner<'a> {
    spins: u32,
    began: Option<Instant>,
    quit: Option<&'a AtomicBool>,
    what: &'static str,
}

impl<'a> Spinner<'a> {
    /// A spinner waiting for `what`.
    pub(crate) fn new(what: &'static str) -> Spinner<'a> {
        Spinner {
            spins: 0,
            began: None,
            quit: None,
            what,
        }
    }

    /// The same, giving up as soon as `quit` is raised (the other side of
    /// a ping-pong failed).
    pub(crate) fn with_quit(mut self, quit: &'a AtomicBool) -> Spinner<'a> {
        self.quit = Some(quit);
        self
    }

    /// One more turn of the wait.
    #[inline]
    pub(crate) fn spin(&mut self) -> Result<()> {
        std::hint::spin_loop();
        if let Some(q) = self.quit
            && q.load(Ordering::Relaxed)
        {
            return Err(GaveUp(self.what).into());
        }
        self.spins = self.spins.wrapping_add(1);
        if self.spins % 4096 == 0 {
            match self.began {
                None => self.began = Some(Instant::now()),
                Some(at) if at.elapsed() > STALL => {
                    bail!("spun {STALL:?} waiting for {}", self.what)
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Runs `sender` on the calling thread and `receiver` on a new one, each
/// pinned to its own CPU, and times from the moment both are ready until both
/// are done and `settle` (timed too: e.g. waiting for the last delivery
/// callbacks) returned. The receiver's error comes first (a failed receiver
/// makes the sender fail too, with less to say), then the sender's, then
/// `settle`'s. Returns the time and what the receiver returned.
pub(crate) fn one_to_one<R: Send + 'static>(
    receiver: impl FnOnce() -> Result<R> + Send + 'static,
    sender: impl FnOnce() -> Result<()>,
    settle: impl FnOnce() -> Result<()>,
) -> Result<(Duration, R)> {
    let start = Arc::new(Barrier::new(2));
    let handle = spawn_receiver(&start, receiver)?;
    let _pinned = pin(SENDER_CPU);
    start.wait();
    let began = Instant::now();
    let sent = sender();
    let received = handle
        .join()
        .map_err(|_| anyhow!("the receiver panicked"))??;
    sent?;
    settle()?;
    Ok((began.elapsed(), received))
}

/// Starts `receiver` on a thread pinned to the receiver CPU, once every
/// party of `start` is ready.
fn spawn_receiver<R: Send + 'static>(
    start: &Arc<Barrier>,
    receiver: impl FnOnce() -> Result<R> + Send + 'static,
) -> Result<thread::JoinHandle<Result<R>>> {
    let start = start.clone();
    thread::Builder::new()
        .name("bench-receiver".into())
        .spawn(move || {
            let _pinned = pin(RECEIVER_CPU);
            start.wait();
            receiver()
        })
        .context("spawning the receiver")
}

/// A sender thread's work in a fan-in run; what it returns is kept until the
/// run is timed (e.g. a connection that must outlive its callbacks).
pub(crate) type SenderJob<S> = Box<dyn FnOnce() -> Result<S> + Send>;

/// Runs each of `senders` on a thread of its own, all pinned to the sender
/// CPU, and `receiver` on one pinned to the receiver CPU; times from the
/// moment all are ready until all are done and `settle` returned. Errors come
/// in the order of [`one_to_one`]'s. Returns the time, what the receiver
/// returned, and what the senders returned.
pub(crate) fn fan_in<S: Send + 'static, R: Send + 'static>(
    senders: Vec<SenderJob<S>>,
    receiver: impl FnOnce() -> Result<R> + Send + 'static,
    settle: impl FnOnce() -> Result<()>,
) -> Result<(Duration, R, Vec<S>)> {
    let start = Arc::new(Barrier::new(senders.len() + 2));
    let rx = spawn_receiver(&start, receiver)?;
    let mut txs = Vec::with_capacity(senders.len());
    for (s, job) in senders.into_iter().enumerate() {
        let start = start.clone();
        let spawned = thread::Builder::new()
            .name(format!("bench-sender-{s}"))
            .spawn(move || {
                let _pinned = pin(SENDER_CPU);
                start.wait();
                job()
            });
        match spawned {
            Ok(h) => txs.push(h),
            Err(e) => {
                // The barrier would never open: nothing is waited for, the
                // threads stay parked until the process ends (a failed spawn
                // ends the benchmark anyway).
                return Err(anyhow!(e).context(format!("spawning sender {s}")));
            }
        }
    }
    start.wait();
    let began = Instant::now();
    let received = rx.join().map_err(|_| anyhow!("the receiver panicked"));
    let mut kept = Vec::with_capacity(txs.len());
    let mut sent = Ok(());
    for (s, h) in txs.into_iter().enumerate() {
        match h
            .join()
            .map_err(|_| anyhow!("sender {s} panicked"))
            .and_then(|r| r.with_context(|| format!("sender {s}")))
        {
            Ok(k) => kept.push(k),
            Err(e) if sent.is_ok() => sent = Err(e),
            Err(_) => {}
        }
    }
    let received = received??;
    sent?;
    settle()?;
    Ok((began.elapsed(), received, kept))
}

/// Raises its flag when dropped unless disarmed: tells the other side of a
/// ping-pong that this one stopped early.
struct QuitOnDrop {
    quit: Arc<AtomicBool>,
    armed: bool,
}

impl Drop for QuitOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.quit.store(true, Ordering::Relaxed);
        }
    }
}

/// Round trips of a ping-pong of `n` timed ones, warm-up included.
pub(crate) fn ping_total(n: u64) -> u64 {
    warmup_for(n) + n
}

/// A ping-pong of `n` timed round trips (after [`warmup_for`]`(n)` untimed
/// ones) of `payload`-byte messages: `echo(total, quit)` runs on a thread
/// pinned to the receiver CPU and answers `total` pings; `once(i)` runs on
/// the calling thread, pinned to the sender CPU, and does round trip `i`.
/// Either side that fails raises `quit`, which the other's waits watch.
/// Returns the round trips as a latency [`Run`], and what `echo` returned.
pub(crate) fn ping_pong<E: Send + 'static>(
    n: u64,
    payload: usize,
    echo: impl FnOnce(u64, &AtomicBool) -> Result<E> + Send + 'static,
    once: impl FnMut(u64, &AtomicBool) -> Result<()>,
) -> Result<(Run, E)> {
    let mut once = once;
    let warmup = warmup_for(n);
    let total = warmup + n;
    let quit = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(2));
    let handle = {
        let start = start.clone();
        let quit = quit.clone();
        thread::Builder::new()
            .name("bench-echo".into())
            .spawn(move || {
                let mut guard = QuitOnDrop { quit, armed: true };
                let _pinned = pin(RECEIVER_CPU);
                start.wait();
                let r = echo(total, &guard.quit);
                guard.armed = r.is_err();
                r
            })
            .context("spawning the echo thread")?
    };
    let _pinned = pin(SENDER_CPU);
    start.wait();
    let run = {
        let mut guard = QuitOnDrop {
            quit: quit.clone(),
            armed: true,
        };
        let r = latency_loop(warmup, n, |i| once(i, &quit));
        guard.armed = r.is_err();
        r
    };
    // Hangs up whatever channel end `once` owns, so that an echo side
    // blocked on it sees the pinger gone.
    drop(once);
    let echoed = handle
        .join()
        .map_err(|_| anyhow!("the echo thread panicked"));
    // The side that failed first says why; the other merely gave up.
    let echoed = echoed
        .and_then(|r| r)
        .map_err(|e| e.context("the echo side"));
    let (mut run, echoed) = match (run, echoed) {
        (Ok(run), Ok(e)) => (run, e),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
        (Err(mine), Err(theirs)) => {
            return Err(if theirs.downcast_ref::<GaveUp>().is_some() {
                mine
            } else {
                theirs
            });
        }
    };
    run.bytes = n * payload as u64;
    run.kind = Kind::Latency;
    Ok((run, echoed))
}
