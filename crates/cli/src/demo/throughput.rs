//! The throughput run: sender threads put small messages as fast as they can,
//! one receiver takes them in batches, and the buffers return to their senders
//! through the delivery callbacks to be filled again.
//!
//! Every message carries its sender's index and its number on that sender's
//! connection; the receiver checks that each connection's messages arrive
//! complete and in order, and each connection's callbacks check that every
//! message is called back `Ok`, once, in put order.
//!
//! On a hop whose receiver is a child process (shared memory, QUIC), the child
//! is `asyncmsg serve NAME --count N` (listening on loopback for QUIC): it
//! checks each connection's sequence numbers and reports its count, and the
//! senders here are measured against it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use asyncmsg::{
    ChannelConfig, Connection, ConnectionAttr, Delivery, Flush, Message, Node, SendBuf,
};

use super::{DemoArgs, PATIENCE};
use crate::hop::{ChildServer, ChildSpec, Hop, unique_name};

/// Bytes of the header every message starts with: sender index (u32 LE) and
/// message number on its connection (u64 LE).
const HEADER: usize = 12;
/// Most messages one get returns.
const GET_BATCH: usize = 1024;

/// What a throughput run does.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Messages in all.
    pub count: u64,
    /// Bytes per message.
    pub size: usize,
    /// Count trigger.
    pub trigger: u32,
    /// Sender threads (one connection each).
    pub senders: u32,
    /// Messages in flight per connection.
    pub window: u32,
}

impl From<&DemoArgs> for Settings {
    fn from(a: &DemoArgs) -> Self {
        Settings {
            count: a.count,
            size: a.size as usize,
            trigger: a.trigger,
            senders: a.senders,
            window: a.window,
        }
    }
}

/// What a throughput run measured, after every check passed.
#[derive(Debug, Clone)]
pub struct Report {
    /// The hop's name.
    pub hop: &'static str,
    /// Messages delivered.
    pub count: u64,
    /// From the first put to the last delivery callback.
    pub elapsed: Duration,
    /// Gets that returned messages (`None`: a child process got them).
    pub gets: Option<u64>,
    /// The receiving child process, if the receiver was not this process.
    pub child: Option<u32>,
    /// Send buffers allocated (the rest of the puts reused a returned one).
    pub allocated: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        match (self.gets, self.child) {
            (Some(gets), _) => writeln!(
                f,
                "  {} gets, {:.1} messages per get, {} send buffers allocated for {} puts",
                gets,
                self.count as f64 / gets.max(1) as f64,
                self.allocated,
                self.count
            )?,
            (None, child) => writeln!(
                f,
                "  child process {} took every message, {} send buffers allocated for {} puts",
                child.map(|p| p.to_string()).unwrap_or_default(),
                self.allocated,
                self.count
            )?,
        }
        write!(
            f,
            "{}: {} messages in {:.2} s = {:.1} M msg/s, all delivered in order",
            self.hop,
            self.count,
            secs,
            self.count as f64 / secs.max(1e-9) / 1e6
        )
    }
}

/// One connection's delivery bookkeeping, kept by its callback (which runs on
/// the node's delivery thread, one call at a time).
#[derive(Debug, Default)]
struct Callbacks {
    /// Callbacks that ran.
    done: AtomicU64,
    /// Callbacks out of put order, or not `Ok`.
    wrong: AtomicU64,
    /// The first wrong one, described.
    first_wrong: Mutex<Option<String>>,
}

impl Callbacks {
    fn record(&self, d: &Delivery, total: u64, finished: &Sender<()>) {
        let n = self.done.load(Ordering::Relaxed);
        if d.result.is_err() || d.seq != n || d.handle != n {
            self.wrong.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_wrong.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| {
                format!(
                    "coid {}: callback #{n} was for seq {} handle {} with {:?}",
                    d.coid, d.seq, d.handle, d.result
                )
            });
        }
        self.done.store(n + 1, Ordering::Release);
        if n + 1 == total {
            let _ = finished.send(());
        }
    }
}

/// One sender: its connection, its message count and its buffer pool.
struct Sending {
    index: u32,
    conn: Connection,
    count: u64,
    pool: Receiver<SendBuf>,
    callbacks: Arc<Callbacks>,
}

/// Runs the throughput measurement over `hop`.
pub fn run(node: &Node, hop: Hop, s: &Settings) -> anyhow::Result<Report> {
    ensure!(s.size >= HEADER, "messages need at least {HEADER} bytes");
    // A count trigger above max_buffers acts as no count trigger (as in QNX):
    // the run would fill its window and never make a batch visible.
    ensure!(
        s.trigger <= s.window,
        "--trigger {} is above --window {}: the count trigger could never fire",
        s.trigger,
        s.window
    );
    let name = unique_name(&format!("demo-throughput-{}", hop.label()));
    // The receiver: a channel of this process, or a child process serving one.
    let (chan, child, address) = if hop.receives_in_child() {
        let child = ChildServer::spawn(
            &ChildSpec {
                hop,
                name,
                count: s.count,
                buffer_size: s.size,
                max_buffers: GET_BATCH,
            },
            PATIENCE,
        )?;
        let address = child.address();
        (None, Some(child), address)
    } else {
        let chan = node.create_channel(
            ChannelConfig::default()
                .buffer_size(s.size)
                .max_buffers(GET_BATCH),
        )?;
        let address = hop.expose(node, &chan, &name)?;
        (Some(chan), None, address)
    };
    let to = match &child {
        Some(c) if hop == Hop::Quic => {
            let at = address.trim_start_matches("quic://");
            let at = at.split_once('/').map_or(at, |(host, _)| host);
            format!(" to child process {} (asyncmsg serve) at {at}", c.pid())
        }
        Some(c) => format!(" to child process {} (asyncmsg serve)", c.pid()),
        None => String::new(),
    };
    println!(
        "\n{}: {} messages of {} B from {} sender thread(s){to}, trigger {}, window {}",
        hop.label(),
        s.count,
        s.size,
        s.senders,
        s.trigger,
        s.window
    );

    let (finished_tx, finished_rx) = mpsc::channel();
    let mut senders = Vec::new();
    for index in 0..s.senders {
        let count = s.count / u64::from(s.senders)
            + u64::from(u64::from(index) < s.count % u64::from(s.senders));
        let (pool_tx, pool_rx) = mpsc::channel::<SendBuf>();
        let callbacks = Arc::new(Callbacks::default());
        let cb = callbacks.clone();
        let finished = finished_tx.clone();
        let conn = node
            .connect(
                address.as_str(),
                ConnectionAttr::default()
                    .max_buffers(s.window)
                    .trigger_count(s.trigger)
                    .on_delivered(move |d| {
                        cb.record(&d, count, &finished);
                        // The buffer goes back to its sender to be filled again.
                        let _ = pool_tx.send(d.buf);
                    }),
            )
            .with_context(|| format!("cannot connect to {address}"))?;
        senders.push(Sending {
            index,
            conn,
            count,
            pool: pool_rx,
            callbacks,
        });
    }
    let coids: Vec<i32> = senders.iter().map(|x| x.conn.coid()).collect();
    let active = senders.iter().filter(|x| x.count > 0).count();

    let start = Instant::now();
    let (gets, allocated) = thread::scope(|sc| -> anyhow::Result<(Option<u64>, u64)> {
        let handles: Vec<_> = senders
            .iter_mut()
            .map(|snd| sc.spawn(move || send_all(snd, s.size)))
            .collect();
        let received = match &chan {
            Some(chan) => receive_all(chan, s, &coids).map(Some),
            None => Ok(None),
        };
        let mut allocated = 0;
        let mut failed = Vec::new();
        for h in handles {
            match h.join() {
                Ok(Ok(n)) => allocated += n,
                Ok(Err(e)) => failed.push(format!("{e:#}")),
                Err(_) => failed.push("a sender thread panicked".to_owned()),
            }
        }
        match (received, failed.is_empty()) {
            (Ok(gets), true) => Ok((gets, allocated)),
            (received, _) => {
                let mut why = failed;
                if let Err(e) = received {
                    why.insert(0, format!("{e:#}"));
                }
                bail!("{}", why.join("; "))
            }
        }
    })?;
    for _ in 0..active {
        finished_rx.recv_timeout(PATIENCE).with_context(|| {
            let done: u64 = senders
                .iter()
                .map(|x| x.callbacks.done.load(Ordering::Acquire))
                .sum();
            format!("only {done} of {} delivery callbacks ran", s.count)
        })?;
    }
    let elapsed = start.elapsed();
    let child_pid = child.as_ref().map(ChildServer::pid);
    if let Some(child) = child {
        child.finish(PATIENCE)?;
    }

    for snd in &senders {
        let wrong = snd.callbacks.wrong.load(Ordering::Acquire);
        if wrong > 0 {
            let first = snd
                .callbacks
                .first_wrong
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            bail!(
                "{wrong} delivery callbacks wrong on coid {}; first: {}",
                snd.conn.coid(),
                first.unwrap_or_default()
            );
        }
    }
    Ok(Report {
        hop: hop.label(),
        count: s.count,
        elapsed,
        gets,
        child: child_pid,
        allocated,
    })
}

/// Puts a sender's messages, reusing the buffers its callbacks return; returns
/// how many buffers it had to allocate.
fn send_all(snd: &mut Sending, size: usize) -> anyhow::Result<u64> {
    let mut allocated = 0;
    for n in 0..snd.count {
        let mut buf = snd.pool.try_recv().unwrap_or_else(|_| {
            allocated += 1;
            SendBuf::zeroed(size)
        });
        buf[..4].copy_from_slice(&snd.index.to_le_bytes());
        buf[4..HEADER].copy_from_slice(&n.to_le_bytes());
        snd.conn.put_timeout(buf, n, PATIENCE).with_context(|| {
            format!(
                "sender {} (coid {}): put #{n} found no free slot within {PATIENCE:?}",
                snd.index,
                snd.conn.coid()
            )
        })?;
    }
    // The last partial batch: trigger it now. A child receiver that already
    // took every message may have closed its channel before this flush (it
    // exits after its count): then there is nothing left to trigger, and the
    // delivery callbacks, which the run checks, tell each message's fate.
    match snd.conn.flush(Flush::NoWait) {
        Ok(()) | Err(asyncmsg::FlushError::Destroyed | asyncmsg::FlushError::PeerLost) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(allocated)
}

/// Takes every message, checking each connection's order; returns the number
/// of gets.
fn receive_all(chan: &asyncmsg::Channel, s: &Settings, coids: &[i32]) -> anyhow::Result<u64> {
    let mut next = vec![0u64; coids.len()];
    let mut batch: Vec<Message> = Vec::with_capacity(GET_BATCH);
    let mut received = 0;
    let mut gets = 0;
    while received < s.count {
        chan.get_into(&mut batch, Some(PATIENCE))
            .with_context(|| format!("received {received} of {} messages", s.count))?;
        gets += 1;
        for msg in &batch {
            check(msg, s.size, coids, &mut next)?;
        }
        received += batch.len() as u64;
        batch.clear(); // frees the messages: their buffers go back to the senders
    }
    ensure!(
        received == s.count,
        "received {received} messages, {} were sent",
        s.count
    );
    Ok(gets)
}

/// Checks one message against the order of its connection.
fn check(msg: &Message, size: usize, coids: &[i32], next: &mut [u64]) -> anyhow::Result<()> {
    let info = msg.info();
    ensure!(
        msg.len() == size,
        "a message of {} B, expected {size}",
        msg.len()
    );
    let sender = u32::from_le_bytes(msg[..4].try_into()?) as usize;
    let n = u64::from_le_bytes(msg[4..HEADER].try_into()?);
    ensure!(
        sender < coids.len(),
        "a message from unknown sender {sender}"
    );
    ensure!(
        info.coid == coids[sender],
        "sender {sender}'s message arrived with coid {}, its connection is {}",
        info.coid,
        coids[sender]
    );
    ensure!(
        n == next[sender] && info.seq == n,
        "coid {}: got message #{n} (seq {}), expected #{}",
        info.coid,
        info.seq,
        next[sender]
    );
    next[sender] += 1;
    Ok(())
}
