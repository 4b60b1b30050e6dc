//! What the examples share: recording delivery callbacks and waiting for them.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use asyncmsg::{Delivery, ErrorKind, Message};

/// How long any example waits for anything before it gives up.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// One delivery callback as it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRecord {
    /// The handle given to the put.
    pub handle: u64,
    /// The message's sequence number on its connection.
    pub seq: u64,
    /// `Ok` once the receiver took the message and let it go.
    pub result: Result<(), ErrorKind>,
    /// The buffer the callback got back, as text.
    pub text: String,
}

/// Delivery callbacks that print themselves (QNX's examples print from the
/// callback) and report to the main thread, which can then wait for them.
///
/// ```
/// use asyncmsg::*;
/// use asyncmsg_examples::support::Callbacks;
/// let callbacks = Callbacks::new();
/// let node = Node::new()?;
/// let chan = node.create_channel(ChannelConfig::default())?;
/// let conn = node.connect(chan.id(), ConnectionAttr::default().on_delivered(callbacks.callback()))?;
/// conn.put("hi", 1)?;
/// drop(chan.get()?);
/// let done = callbacks.wait_for(1)?;
/// assert_eq!(done[0].handle, 1);
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug)]
pub struct Callbacks {
    tx: Sender<CallbackRecord>,
    rx: Receiver<CallbackRecord>,
}

impl Default for Callbacks {
    fn default() -> Self {
        Self::new()
    }
}

impl Callbacks {
    /// No callback has run yet.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Callbacks { tx, rx }
    }

    /// A delivery callback for [`ConnectionAttr::on_delivered`](asyncmsg::ConnectionAttr::on_delivered):
    /// it runs on the node's delivery thread, prints what it got and records it.
    pub fn callback(&self) -> impl Fn(Delivery) + Send + Sync + 'static {
        let tx = self.tx.clone();
        move |d: Delivery| {
            let text = String::from_utf8_lossy(&d.buf).into_owned();
            println!(
                "callback: handle {} (coid {}, seq {}) {}, buffer {:?} back",
                d.handle,
                d.coid,
                d.seq,
                match d.result {
                    Ok(()) => "delivered".to_owned(),
                    Err(e) => format!("failed: {e}"),
                },
                text,
            );
            // The receiving side is gone only if the example already failed.
            let _ = tx.send(CallbackRecord {
                handle: d.handle,
                seq: d.seq,
                result: d.result,
                text,
            });
        }
    }

    /// Waits (at most [`PATIENCE`]) until `n` callbacks have run, and returns them.
    pub fn wait_for(&self, n: usize) -> anyhow::Result<Vec<CallbackRecord>> {
        let deadline = Instant::now() + PATIENCE;
        let mut done = Vec::with_capacity(n);
        while done.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(r) => done.push(r),
                Err(RecvTimeoutError::Timeout) => bail!(
                    "only {} of {n} delivery callbacks ran within {PATIENCE:?}",
                    done.len()
                ),
                Err(RecvTimeoutError::Disconnected) => unreachable!("we hold a sender"),
            }
        }
        Ok(done)
    }

    /// Checks that no further callback runs within `quiet`.
    pub fn expect_none(&self, quiet: Duration) -> anyhow::Result<()> {
        match self.rx.recv_timeout(quiet) {
            Ok(r) => bail!("unexpected delivery callback: {r:?}"),
            Err(_) => Ok(()),
        }
    }
}

/// Checks that `callbacks` are successful deliveries of `expected` (handle,
/// text) in this order.
pub fn check_delivered(
    callbacks: &[CallbackRecord],
    expected: &[(u64, &str)],
) -> anyhow::Result<()> {
    ensure!(
        callbacks.len() == expected.len(),
        "{} callbacks ran, expected {}",
        callbacks.len(),
        expected.len()
    );
    for (i, (got, (handle, text))) in callbacks.iter().zip(expected).enumerate() {
        ensure!(got.result.is_ok(), "callback {i} reports {:?}", got.result);
        ensure!(
            got.handle == *handle && got.text == *text,
            "callback {i} is for handle {} {:?}, expected handle {handle} {text:?}",
            got.handle,
            got.text
        );
    }
    Ok(())
}

/// Prints a received batch the way the examples show it.
pub fn print_batch(batch: &[Message]) {
    println!("get: {} message(s)", batch.len());
    for msg in batch {
        let i = msg.info();
        println!(
            "  {:?} ({} bytes, pid {}, chid {}, coid {}, seq {})",
            msg.text(),
            i.msglen,
            i.pid,
            i.chid,
            i.coid,
            i.seq
        );
    }
}

/// Checks that `batch` holds exactly `expected`, in this order.
pub fn check_batch(batch: &[Message], expected: &[&str]) -> anyhow::Result<()> {
    let got: Vec<_> = batch.iter().map(|m| m.text()).collect();
    ensure!(
        got == expected,
        "the get returned {got:?}, expected {expected:?}"
    );
    for (i, m) in batch.iter().enumerate() {
        let info = m.info();
        ensure!(
            info.msglen == m.len() && info.srcmsglen == m.len(),
            "message {i}: msglen {} / srcmsglen {} for {} bytes",
            info.msglen,
            info.srcmsglen,
            m.len()
        );
    }
    Ok(())
}

/// Adds what was being waited for to a timeout.
pub fn waiting_for<T>(what: &str, got: Option<T>) -> anyhow::Result<T> {
    got.with_context(|| format!("no {what} within {PATIENCE:?}"))
}
