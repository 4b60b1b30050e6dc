//! `asyncmsg send TARGET`: a sender. It connects to TARGET (a published name,
//! `shm://NAME`, `inproc://NAME`, or `quic://HOST:PORT/NAME` for a channel
//! of another node, such as `asyncmsg serve NAME --listen HOST:PORT`), puts
//! `--count` messages, flushes, waits until every message has been called back
//! and prints `delivered N, failed M`. It exits non-zero when a message failed.
//!
//! Failures are counted, never hidden: a delivery callback with an error counts
//! as failed; a put that fails (the receiver died, say) counts as failed, and
//! so does every message after it, which is not sent; a message still not
//! called back when the sender gives up waiting counts as failed too.
//!
//! Over QUIC the connection stores and forwards: while the receiving node
//! cannot be reached, puts go on up to `--window` messages, the link
//! reconnects and sends again what the node did not take (in order, once).
//! `--retry-for SECS` bounds how long it tries, from the start as well: when
//! no node answers at HOST:PORT within that time, `send` fails with
//! `cannot reach ...` and sends nothing (no `delivered` line, like any target
//! that cannot be connected to); when the link breaks mid-run and does not
//! come back in time, the messages it still held count as failed.

use std::fmt::Write as _;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use asyncmsg::{ConnectError, Connection, ConnectionAttr, ErrorKind, Flush, Node, SendBuf};
use clap::Args;

/// Progress lines on stderr come at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long a broken QUIC link may go unnoticed (the transport's idle
/// timeout, a few seconds) before its `retry_for` starts, with a margin.
const LINK_SILENCE: Duration = Duration::from_secs(15);
/// Pauses between attempts to reach a node that did not answer: from the
/// first to the longest.
const CONNECT_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// Arguments of `asyncmsg send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// Where to send: a published name, `shm://NAME`, `inproc://NAME`, or
    /// `quic://HOST:PORT/NAME` (a channel of the node listening there).
    pub target: String,
    /// Messages to send.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Bytes per message: the text is padded with spaces or cut to this size.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=16 << 20))]
    pub size: Option<u32>,
    /// Count trigger: a batch every this many puts (the last batch goes by flush).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub trigger: u32,
    /// Messages in flight (the connection's max_buffers).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub window: u32,
    /// The text of every message (default: `message #I`, I counting from 1).
    #[arg(long)]
    pub message: Option<String>,
    /// Give up when no put and no delivery callback made progress for this
    /// many seconds; the messages not called back by then count as failed.
    /// For `quic://` it is at least --retry-for plus 15 s (a broken link
    /// takes a few seconds to be noticed).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: u64,
    /// For `quic://`: how long to keep trying to reach the receiving node,
    /// first to connect and then whenever the link breaks, holding the
    /// messages meanwhile [default: 30].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub retry_for: Option<u64>,
    /// Where the QUIC trust root lives (default: $ASYNCMSG_HOME, else
    /// $XDG_DATA_HOME/asyncmsg, else ~/.local/share/asyncmsg).
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
}

/// What a send run ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Messages called back `Ok`.
    pub delivered: u64,
    /// Messages that failed, for whatever reason.
    pub failed: u64,
    /// Why they failed, one line per reason (empty when none did).
    pub reasons: Vec<String>,
}

/// Runs `asyncmsg send`.
pub fn run(args: &SendArgs) -> anyhow::Result<()> {
    let node = Node::new()?;
    if let Some(dir) = &args.home {
        node.trust_home(dir);
    }
    let outcome = send(&node, args, |line| eprintln!("send: {line}"))?;
    println!("delivered {}, failed {}", outcome.delivered, outcome.failed);
    for reason in &outcome.reasons {
        eprintln!("send: {reason}");
    }
    if outcome.failed > 0 {
        bail!("{} of {} messages failed", outcome.failed, args.count);
    }
    Ok(())
}

/// The payload of message `i` (counting from 1).
pub fn payload(args: &SendArgs, i: u64) -> Vec<u8> {
    let mut text = match &args.message {
        Some(t) => t.clone().into_bytes(),
        None => format!("message #{i}").into_bytes(),
    };
    if let Some(size) = args.size {
        text.resize(size as usize, b' ');
    }
    text
}

/// Delivery callbacks, counted; the sender waits on them.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    err: AtomicU64,
    /// How many callbacks the sender waits for (u64::MAX while still putting).
    target: AtomicU64,
    first_err: Mutex<Option<ErrorKind>>,
    lock: Mutex<()>,
    done: Condvar,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            target: AtomicU64::new(u64::MAX),
            ..Tally::default()
        }
    }

    fn called_back(&self) -> u64 {
        self.ok.load(Ordering::SeqCst) + self.err.load(Ordering::SeqCst)
    }

    fn record(&self, result: Result<(), ErrorKind>) {
        match result {
            Ok(()) => self.ok.fetch_add(1, Ordering::SeqCst),
            Err(kind) => {
                lock(&self.first_err).get_or_insert(kind);
                self.err.fetch_add(1, Ordering::SeqCst)
            }
        };
        if self.called_back() >= self.target.load(Ordering::SeqCst) {
            // Under the lock, so the waiter is either before its check or asleep.
            let _guard = lock(&self.lock);
            self.done.notify_all();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Connects to `args.target` and sends; `progress` gets a line at most once a
/// second on long runs. Fails only when it could not start (no such target,
/// messages too large); failed messages are in the [`Outcome`].
pub fn send(
    node: &Node,
    args: &SendArgs,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Outcome> {
    if args.trigger > args.window {
        bail!(
            "--trigger {} is above --window {}: the count trigger could never fire",
            args.trigger,
            args.window
        );
    }
    let tally = Arc::new(Tally::new());
    let t = tally.clone();
    let trigger = u64::from(args.trigger).min(args.count) as u32;
    let mut attr = ConnectionAttr::default()
        .max_buffers(args.window)
        .trigger_count(trigger)
        .on_delivered(move |d| t.record(d.result));
    if let Some(secs) = args.retry_for {
        attr = attr.retry_for(Duration::from_secs(secs));
    }
    let retry_for = attr.get_retry_for();
    let quic = args.target.starts_with("quic://");
    let mut patience = Duration::from_secs(args.timeout);
    if quic {
        // The link's own verdict (the messages it held fail after
        // `retry_for`) comes before the sender gives up waiting.
        patience = patience.max(retry_for + LINK_SILENCE);
    }
    let conn = if quic {
        connect_retrying(node, &args.target, attr, retry_for)?
    } else {
        node.connect(args.target.as_str(), attr)
            .map_err(|e| connect_error(&args.target, e))?
    };
    let longest = payload(args, args.count).len().max(payload(args, 1).len());
    if longest > conn.max_message() {
        bail!(
            "messages of {longest} bytes exceed the channel's buffer size of {} bytes",
            conn.max_message()
        );
    }

    let start = Instant::now();
    let mut last_report = start;
    let mut report = |accepted: u64, progress: &mut dyn FnMut(&str)| {
        let now = Instant::now();
        if now.duration_since(last_report) >= PROGRESS_EVERY {
            last_report = now;
            progress(&format!(
                "{accepted} put, {} delivered, {} failed",
                tally.ok.load(Ordering::SeqCst),
                tally.err.load(Ordering::SeqCst)
            ));
        }
    };

    let mut accepted = 0u64;
    let mut reasons = Vec::new();
    let mut not_sent = 0u64;
    for i in 1..=args.count {
        let data = payload(args, i);
        let mut buf: SendBuf = conn.alloc(data.len());
        buf.copy_from_slice(&data);
        if let Err(e) = conn.put_timeout(buf, i, patience) {
            let why = match e.kind() {
                ErrorKind::WouldBlock => format!("found no free slot within {patience:?}"),
                _ => e.to_string(),
            };
            not_sent = args.count - accepted;
            let mut line = format!("put of message #{i} failed: {why}");
            if not_sent > 1 {
                let _ = write!(
                    line,
                    "; the {} messages after it were not sent and count as failed",
                    not_sent - 1
                );
            }
            reasons.push(line);
            break;
        }
        accepted += 1;
        if i % 1024 == 0 {
            report(accepted, &mut progress);
        }
    }
    if accepted > 0
        && not_sent == 0
        && let Err(e) = conn.flush(Flush::NoWait)
    {
        reasons.push(format!("flush failed: {e}"));
    }

    // Wait for every accepted message's callback; give up only when nothing
    // moves for `patience`.
    tally.target.store(accepted, Ordering::SeqCst);
    let mut seen = tally.called_back();
    let mut moved = Instant::now();
    let mut guard = lock(&tally.lock);
    while tally.called_back() < accepted {
        let now = Instant::now();
        let done = tally.called_back();
        if done != seen {
            seen = done;
            moved = now;
        }
        let stalled_for = now.duration_since(moved);
        if stalled_for >= patience {
            break;
        }
        let wait = PROGRESS_EVERY.min(patience - stalled_for);
        guard = tally
            .done
            .wait_timeout(guard, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        drop(guard);
        report(accepted, &mut progress);
        guard = lock(&tally.lock);
    }
    drop(guard);

    let delivered = tally.ok.load(Ordering::SeqCst);
    let errors = tally.err.load(Ordering::SeqCst);
    let missing = accepted.saturating_sub(delivered + errors);
    if errors > 0 {
        let first = lock(&tally.first_err).map(|k| k.to_string());
        reasons.push(format!(
            "{errors} delivery callbacks reported an error (first: {})",
            first.unwrap_or_default()
        ));
    }
    if missing > 0 {
        reasons.push(format!(
            "{missing} messages were not called back within {patience:?} of the last progress"
        ));
    }
    Ok(Outcome {
        delivered,
        failed: errors + missing + not_sent,
        reasons,
    })
}

/// Connects to a `quic://` target, trying again while its node cannot be
/// reached, for at most `retry_for` in all. An attempt still under way at the
/// deadline is left to end on its own (a connection it makes then is dropped).
fn connect_retrying(
    node: &Node,
    target: &str,
    attr: ConnectionAttr,
    retry_for: Duration,
) -> anyhow::Result<Connection> {
    let (host, name) = quic_parts(target);
    // A name that does not resolve is not worth waiting for.
    host.to_socket_addrs()
        .with_context(|| format!("cannot connect to {target:?}: bad address {host:?}"))?;
    let deadline = Instant::now() + retry_for;
    let mut backoff = CONNECT_BACKOFF.0;
    let mut last: Option<ConnectError> = None;
    loop {
        let (tx, rx) = mpsc::channel();
        let (node, target_owned, attr) = (node.clone(), target.to_owned(), attr.clone());
        std::thread::Builder::new()
            .name("asyncmsg-connect".into())
            .spawn(move || {
                let _ = tx.send(node.connect(target_owned.as_str(), attr));
            })
            .context("cannot start a thread to connect")?;
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) if unreachable(&e) => last = Some(e),
            Ok(Err(e)) => return Err(connect_error(target, e)),
            Err(_) => break,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(backoff.min(left));
        backoff = (backoff * 2).min(CONNECT_BACKOFF.1);
    }
    let why = last.map(|e| format!(" ({e})")).unwrap_or_default();
    bail!(
        "cannot reach {target:?}: no node answered at {host} within {retry_for:?} \
         (--retry-for){why}; is `asyncmsg serve {name} --listen {host}` running?"
    )
}

/// Whether a connect failed only because no node answered (worth trying
/// again), not because of what one answered or of this node's own setup.
fn unreachable(e: &ConnectError) -> bool {
    match e {
        ConnectError::TimedOut => true,
        ConnectError::Io(io) => io.kind() == std::io::ErrorKind::HostUnreachable,
        _ => false,
    }
}

/// `quic://HOST:PORT/NAME` as (`HOST:PORT`, `NAME`).
fn quic_parts(target: &str) -> (&str, &str) {
    let rest = target.strip_prefix("quic://").unwrap_or(target);
    rest.split_once('/').unwrap_or((rest, ""))
}

/// A connect failure, said plainly.
fn connect_error(target: &str, e: ConnectError) -> anyhow::Error {
    match e {
        ConnectError::NotFound(_) if target.starts_with("inproc://") => anyhow::anyhow!(
            "no channel of this process is published as {target:?} (inproc:// reaches only \
             this process; use NAME or shm://NAME to reach `asyncmsg serve NAME`)"
        ),
        ConnectError::NotFound(_) if target.starts_with("quic://") => {
            let (host, name) = quic_parts(target);
            anyhow::anyhow!(
                "the node at {host} has no channel published as {name:?} \
                 (is `asyncmsg serve {name} --listen {host}` running there?)"
            )
        }
        ConnectError::NotFound(_) => anyhow::anyhow!(
            "no channel is published as {target:?} (is `asyncmsg serve {}` running?)",
            target.rsplit("://").next().unwrap_or(target)
        ),
        ConnectError::PermissionDenied if target.starts_with("quic://") => anyhow::anyhow!(
            "cannot connect to {target:?}: the nodes do not trust each other; they need the \
             same trust root (`asyncmsg cert init`, then copy ca.pem and ca.key of its \
             directory to the other machine's)"
        ),
        e => anyhow::Error::new(e).context(format!("cannot connect to {target:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::{ServeArgs, Server};
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    fn unique(what: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        format!(
            "cli-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn send_args(target: &str, count: u64) -> SendArgs {
        SendArgs {
            target: target.to_owned(),
            count,
            size: None,
            trigger: 64,
            window: 256,
            message: None,
            timeout: 10,
            retry_for: None,
            home: None,
        }
    }

    fn serve_args(name: &str, count: Option<u64>, quiet: bool) -> ServeArgs {
        ServeArgs {
            name: name.to_owned(),
            count,
            quiet,
            buffer_size: 4096,
            max_buffers: 256,
            listen: None,
            home: None,
            check_order: true,
        }
    }

    #[test]
    fn payloads_are_numbered_padded_and_cut() {
        let mut a = send_args("x", 1);
        assert_eq!(payload(&a, 7), b"message #7");
        a.size = Some(12);
        assert_eq!(payload(&a, 7), b"message #7  ");
        a.size = Some(4);
        assert_eq!(payload(&a, 7), b"mess");
        a.message = Some("hi".into());
        assert_eq!(payload(&a, 7), b"hi  ");
        a.size = None;
        assert_eq!(payload(&a, 7), b"hi");
    }

    #[test]
    fn quic_targets_split_into_host_and_name() {
        assert_eq!(
            quic_parts("quic://127.0.0.1:47001/demo"),
            ("127.0.0.1:47001", "demo")
        );
        assert_eq!(quic_parts("quic://[::1]:5/a"), ("[::1]:5", "a"));
        assert_eq!(quic_parts("quic://host:5"), ("host:5", ""));
    }

    #[test]
    fn only_silence_is_worth_another_connect() {
        let io = |kind| ConnectError::Io(std::io::Error::new(kind, "x"));
        assert!(unreachable(&io(std::io::ErrorKind::HostUnreachable)));
        assert!(unreachable(&ConnectError::TimedOut));
        assert!(!unreachable(&io(std::io::ErrorKind::Other)));
        assert!(!unreachable(&ConnectError::NotFound("x".into())));
        assert!(!unreachable(&ConnectError::PermissionDenied));
    }

    /// Runs `serve` on a thread and `send` here, in one process, over `target`.
    fn serve_and_send(name: &str, target: &str, count: u64, size: Option<u32>, quiet: bool) {
        let node = Node::new().unwrap();
        let server = Server::start(&node, &serve_args(name, Some(count), quiet)).unwrap();
        let stop = AtomicBool::new(false);
        let (received, lines, outcome) = std::thread::scope(|s| {
            let serving = s.spawn(|| {
                let mut out = Vec::new();
                let n = server.run(&stop, &mut out).map_err(|f| f.error);
                (n, String::from_utf8(out).unwrap())
            });
            let mut args = send_args(target, count);
            args.size = size;
            let outcome = send(&node, &args, |_| {});
            if outcome.is_err() {
                stop.store(true, Ordering::SeqCst);
            }
            let (n, lines) = serving.join().unwrap();
            (n, lines, outcome)
        });
        let outcome = outcome.unwrap();
        assert_eq!(received.unwrap(), count);
        assert_eq!(
            outcome,
            Outcome {
                delivered: count,
                failed: 0,
                reasons: vec![]
            }
        );
        if quiet {
            assert!(lines.is_empty(), "{lines}");
        } else {
            let lines: Vec<_> = lines.lines().collect();
            assert_eq!(lines.len() as u64, count);
            let pid = std::process::id();
            assert!(
                lines[0].starts_with(&format!("pid {pid} coid ")),
                "{}",
                lines[0]
            );
            assert!(lines[0].ends_with(": message #1"), "{}", lines[0]);
            assert!(lines[0].contains(" seq 0 "), "{}", lines[0]);
        }
    }

    #[test]
    fn serve_and_send_in_one_process_by_name() {
        let name = unique("byname");
        serve_and_send(&name, &name, 10_000, Some(64), true);
    }

    #[test]
    fn serve_prints_each_message() {
        let name = unique("lines");
        serve_and_send(&name, &format!("inproc://{name}"), 100, None, false);
    }

    #[test]
    fn send_to_an_unknown_name_says_so() {
        let node = Node::new().unwrap();
        let name = unique("nobody");
        let err = send(&node, &send_args(&name, 1), |_| {}).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("no channel is published"), "{text}");
        assert!(text.contains(&name), "{text}");
    }

    #[test]
    fn send_refuses_messages_larger_than_the_channel_takes() {
        let node = Node::new().unwrap();
        let name = unique("small");
        let _server = Server::start(&node, &serve_args(&name, Some(1), true)).unwrap();
        let mut args = send_args(&name, 1);
        args.size = Some(8192);
        let err = send(&node, &args, |_| {}).unwrap_err();
        assert!(
            format!("{err:#}").contains("exceed the channel's buffer size of 4096"),
            "{err:#}"
        );
    }

    #[test]
    fn a_destroyed_channel_counts_every_message_failed() {
        let node = Node::new().unwrap();
        let name = unique("destroyed");
        let server = Server::start(&node, &serve_args(&name, None, true)).unwrap();
        // Nobody gets: the window fills; then the channel goes away.
        let mut args = send_args(&name, 1000);
        args.window = 16;
        args.trigger = 4;
        let outcome = std::thread::scope(|s| {
            let sender = s.spawn(|| send(&node, &args, |_| {}));
            // The channel goes once the sender's connection is attached (its
            // puts then fail, or wait for a slot that never frees); bounded.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !server.channel().debug_state().contains(" | ") {
                assert!(Instant::now() < deadline, "the sender never connected");
                std::thread::sleep(Duration::from_millis(1));
            }
            server.channel().destroy();
            sender.join().unwrap()
        })
        .unwrap();
        assert_eq!(outcome.delivered, 0);
        assert_eq!(outcome.failed, 1000);
        assert!(
            outcome
                .reasons
                .iter()
                .any(|r| r.contains("were not sent and count as failed")),
            "{:?}",
            outcome.reasons
        );
    }
}
