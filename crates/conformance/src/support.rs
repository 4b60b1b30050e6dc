//! Helpers shared by the suite: payloads, callback recorders, bounded waits.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::task::Poll;
use std::thread::ThreadId;
use std::time::Duration;

use asyncmsg::{Channel, Delivery, ErrorKind, GetError, Message, SendBuf};

use crate::Harness;

/// How long the suite waits for something that should happen.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// How long the suite watches for something that should not happen.
pub(crate) const QUIET: Duration = Duration::from_millis(150);

/// The payload of message `i`.
pub(crate) fn msg(i: u64) -> SendBuf {
    SendBuf::from(format!("m{i}"))
}

/// The payloads of messages `range`, as [`payloads`] reports them.
pub(crate) fn names(range: Range<u64>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

/// The payloads of a batch, as text.
pub(crate) fn payloads(batch: &[Message]) -> Vec<String> {
    batch.iter().map(|m| m.text().into_owned()).collect()
}

/// A name no other test uses.
pub(crate) fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "conformance-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One delivery callback, as a recorder saw it.
#[derive(Debug)]
pub(crate) struct Called {
    pub(crate) handle: u64,
    pub(crate) result: Result<(), ErrorKind>,
    pub(crate) buf: SendBuf,
    pub(crate) thread: ThreadId,
}

impl Called {
    pub(crate) fn of(d: Delivery) -> Self {
        Called {
            handle: d.handle,
            result: d.result,
            buf: d.buf,
            thread: std::thread::current().id(),
        }
    }
}

/// A delivery callback that reports every call, and the receiving end.
pub(crate) fn recorder() -> (
    impl Fn(Delivery) + Send + Sync + 'static,
    mpsc::Receiver<Called>,
) {
    let (tx, rx) = mpsc::channel();
    (
        move |d: Delivery| {
            let _ = tx.send(Called::of(d));
        },
        rx,
    )
}

/// Waits for the next `n` callbacks.
pub(crate) fn expect_calls(rx: &mpsc::Receiver<Called>, n: usize) -> Vec<Called> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(WAIT).unwrap_or_else(|e| {
                panic!(
                    "delivery callback {} of {n} did not come within {WAIT:?}: {e}",
                    i + 1
                )
            })
        })
        .collect()
}

/// Checks that no further callback comes.
pub(crate) fn expect_no_call(rx: &mpsc::Receiver<Called>) {
    if let Ok(c) = rx.recv_timeout(QUIET) {
        panic!("unexpected delivery callback: {c:?}");
    }
}

/// The `(handle, result)` pairs of some callbacks.
pub(crate) fn outcomes(calls: &[Called]) -> Vec<(u64, Result<(), ErrorKind>)> {
    calls.iter().map(|c| (c.handle, c.result)).collect()
}

/// Runs a future to completion on a fresh current-thread runtime (on a
/// thread of its own when called from inside a runtime, as the async checks
/// do when a transport is not immediate).
pub(crate) fn block_on<F: Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    let run = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("build a tokio runtime")
            .block_on(f)
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(run).join().expect("the waiting thread"))
    } else {
        run()
    }
}

/// Polls `fut` once with the calling task's context.
pub(crate) async fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let mut fut = Some(fut);
    std::future::poll_fn(move |cx| Poll::Ready(fut.take().expect("polled once").as_mut().poll(cx)))
        .await
}

/// Waits (bounded) until a get on `chan` would find messages.
pub(crate) fn wait_readable(chan: &Channel) {
    block_on(async {
        match tokio::time::timeout(WAIT, chan.readable()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("waiting for a visible batch: {e}"),
            Err(_) => panic!("no batch became visible within {WAIT:?}"),
        }
    })
}

/// Waits (bounded) until `n` connections have a batch waiting for a get.
pub(crate) fn wait_ready(chan: &Channel, n: usize) {
    poll_until(chan, &format!("{n} connections to become ready"), || {
        chan.debug_ready() >= n
    });
}

/// Polls `done` until it holds, failing (with the channel's state) after
/// [`WAIT`]. For states no event announces, such as a second connection
/// becoming ready or messages still in flight arriving.
fn poll_until(chan: &Channel, what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {WAIT:?} for {what}: {}",
            chan.debug_state()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Takes the batch that must be visible now: at once on an immediate transport,
/// within [`WAIT`] otherwise.
pub(crate) fn visible<H: Harness>(chan: &Channel) -> Vec<Message> {
    if !H::IMMEDIATE {
        wait_readable(chan);
    }
    chan.try_get()
        .unwrap_or_else(|e| panic!("expected a visible batch, the get said: {e}"))
}

/// Takes a batch of at least `n` messages: on a transport that is not
/// immediate, once `n` messages have arrived (several triggers in flight
/// arrive one by one).
pub(crate) fn visible_n<H: Harness>(chan: &Channel, n: u64) -> Vec<Message> {
    if !H::IMMEDIATE {
        poll_until(chan, &format!("{n} messages to become visible"), || {
            chan.debug_visible() >= n
        });
    }
    visible::<H>(chan)
}

/// Checks that nothing is visible: a non-blocking get says would-block. On a
/// transport that is not immediate, a wrongly sent batch is first given
/// [`QUIET`] to arrive.
pub(crate) fn not_visible<H: Harness>(chan: &Channel) {
    if !H::IMMEDIATE {
        let arrived =
            block_on(async { tokio::time::timeout(QUIET, chan.readable()).await.is_ok() });
        assert!(!arrived, "a batch became visible that should not have");
    }
    match chan.try_get() {
        Err(GetError::WouldBlock) => {}
        Ok(batch) => panic!(
            "expected nothing visible, a get returned {:?}",
            payloads(&batch)
        ),
        Err(e) => panic!("expected would-block, the get said: {e}"),
    }
}

/// Takes batches until `n` messages are in hand (each batch must be visible).
pub(crate) fn take_n<H: Harness>(chan: &Channel, n: usize) -> Vec<Message> {
    let mut out = Vec::new();
    while out.len() < n {
        out.extend(visible::<H>(chan));
    }
    assert_eq!(
        out.len(),
        n,
        "more messages than expected: {:?}",
        payloads(&out)
    );
    out
}

/// Runs `f` on a thread of its own and hands its result back through a
/// channel, for calls that block without a bound: the test waits on the
/// channel with a timeout, so a call that never returns fails the test instead
/// of hanging it (the thread is left behind).
pub(crate) fn spawn_detached<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}
