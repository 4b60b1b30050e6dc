//! `asyncmsg serve NAME`: a receiver. It publishes a channel under NAME (on the
//! host, so `asyncmsg send` in another process finds it), takes the messages in
//! batches and prints each one, or only counts them with `--quiet`; it stops
//! after `--count` messages, or on SIGINT or SIGTERM, and prints
//! `received N messages`.
//!
//! With `--listen HOST:PORT` the process also listens for other nodes over
//! QUIC (port 0 picks one), and a sender anywhere that shares the trust root
//! (`asyncmsg cert init`) reaches the channel as `quic://HOST:PORT/NAME`.
//!
//! The start line `serving NAME (pid P, chid C)` goes to stderr, so that a
//! script can wait for it before it starts a sender; with `--listen` it ends
//! in ` on quic://HOST:PORT`, the address bound.
//!
//! On the way out it destroys its channel, so that senders still connected
//! fail at once what it did not take; with `--listen` it then stays up for a
//! moment, for the senders on other nodes to hear what it took.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use asyncmsg::{Channel, ChannelConfig, GetError, Message, Node};
use clap::Args;

/// How often a waiting get looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// Most characters of a message's text printed on its line.
const TEXT_WIDTH: usize = 60;
/// How long a listening server stays up after its channel is gone, so that
/// its last acknowledgements reach the senders on other nodes (the node
/// stops its transport at once when the process ends).
const LINGER: Duration = Duration::from_millis(500);

/// Arguments of `asyncmsg serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The name to publish the channel under (no '/').
    pub name: String,
    /// Stop after this many messages (default: run until SIGINT or SIGTERM).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Print nothing per message, only the final count.
    #[arg(long)]
    pub quiet: bool,
    /// Largest message the channel accepts, in bytes.
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..=16 << 20))]
    pub buffer_size: u32,
    /// Most messages one get returns.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_buffers: u32,
    /// Also listen for other nodes over QUIC on HOST:PORT (port 0 picks one).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Where the QUIC trust root lives (default: $ASYNCMSG_HOME, else
    /// $XDG_DATA_HOME/asyncmsg, else ~/.local/share/asyncmsg).
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Fail if a connection's messages arrive out of sequence (used by `demo`).
    #[arg(long, hide = true)]
    pub check_order: bool,
}

/// Runs `asyncmsg serve`.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    signals::install().context("cannot install the SIGINT/SIGTERM handlers")?;
    let node = Node::new()?;
    if let Some(dir) = &args.home {
        node.trust_home(dir);
    }
    let server = Server::start(&node, args)?;
    let on = match &args.listen {
        Some(addr) => {
            let bound = node
                .listen(addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
            format!(" on quic://{bound}")
        }
        None => String::new(),
    };
    eprintln!(
        "serving {} (pid {}, chid {}){on}",
        args.name,
        node.pid(),
        server.chan.chid()
    );
    let mut out = BufWriter::new(io::stdout().lock());
    let result = server.run(&signals::STOP, &mut out);
    let received = match &result {
        Ok(n) => *n,
        Err(failure) => failure.received,
    };
    // Senders still connected hear that the channel is gone, and what its
    // getters took.
    server.chan.destroy();
    writeln!(out, "received {received} messages")?;
    out.flush()?;
    if args.listen.is_some() {
        // Senders on other nodes learn what was taken from frames this
        // process writes; they need a moment to leave before it exits.
        std::thread::sleep(LINGER);
    }
    result.map(drop).map_err(|f| f.error)
}

/// A published channel, ready to serve.
#[derive(Debug)]
pub struct Server {
    chan: Channel,
    count: Option<u64>,
    quiet: bool,
    check_order: bool,
}

/// Why a run stopped early, and how far it got.
#[derive(Debug)]
pub struct Failure {
    /// Messages taken before the failure.
    pub received: u64,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl Server {
    /// Creates the channel and publishes it under `args.name`.
    pub fn start(node: &Node, args: &ServeArgs) -> anyhow::Result<Server> {
        let chan = node.create_channel(
            ChannelConfig::default()
                .buffer_size(args.buffer_size as usize)
                .max_buffers(args.max_buffers as usize),
        )?;
        chan.publish(&args.name)
            .with_context(|| format!("cannot publish {:?}", args.name))?;
        Ok(Server {
            chan,
            count: args.count,
            quiet: args.quiet,
            check_order: args.check_order,
        })
    }

    /// The published channel.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn channel(&self) -> &Channel {
        &self.chan
    }

    /// Takes batches until the count is reached or `stop` is set, writing one
    /// line per message to `out` unless quiet; returns the number of messages.
    pub fn run(&self, stop: &AtomicBool, out: &mut impl Write) -> Result<u64, Failure> {
        let mut batch: Vec<Message> = Vec::with_capacity(self.chan.max_buffers());
        let mut next_seq: HashMap<(u32, u32, i32), u64> = HashMap::new();
        let mut received = 0u64;
        let fail = |received, error| Failure { received, error };
        while self.count.is_none_or(|n| received < n) && !stop.load(Ordering::SeqCst) {
            match self.chan.get_into(&mut batch, Some(POLL)) {
                Ok(()) => {}
                Err(GetError::TimedOut) => continue,
                Err(e) => return Err(fail(received, anyhow::Error::new(e).context("get"))),
            }
            if self.check_order {
                for msg in &batch {
                    if let Err(e) = check_order(msg, &mut next_seq) {
                        return Err(fail(received, e));
                    }
                }
            }
            if !self.quiet {
                let written = batch
                    .iter()
                    .try_for_each(|msg| writeln!(out, "{}", describe(msg)))
                    .and_then(|()| out.flush());
                if let Err(e) = written {
                    return Err(fail(
                        received,
                        anyhow::Error::new(e).context("cannot write to stdout"),
                    ));
                }
            }
            received += batch.len() as u64;
            batch.clear(); // frees the messages: their senders hear back
        }
        Ok(received)
    }
}

/// Checks that `msg` is the next message of its connection.
fn check_order(msg: &Message, next: &mut HashMap<(u32, u32, i32), u64>) -> anyhow::Result<()> {
    let i = msg.info();
    let expected = next.entry((i.nd, i.pid, i.coid)).or_insert(0);
    if i.seq != *expected {
        bail!(
            "pid {} coid {}: message seq {} arrived, expected seq {}",
            i.pid,
            i.coid,
            i.seq,
            *expected
        );
    }
    *expected += 1;
    Ok(())
}

/// One line for a message: who sent it (`nd N` first when from another
/// node), its sequence number, its size (and `redelivered` when an earlier
/// instance of this node may have had it) and its text.
pub fn describe(msg: &Message) -> String {
    let i = msg.info();
    let nd = if i.nd != 0 {
        format!("nd {} ", i.nd)
    } else {
        String::new()
    };
    let again = if i.redelivered { ", redelivered" } else { "" };
    format!(
        "{nd}pid {} coid {} seq {} ({} B{again}): {}",
        i.pid,
        i.coid,
        i.seq,
        msg.len(),
        printable(msg.data(), TEXT_WIDTH)
    )
}

/// The bytes as text: invalid UTF-8 and control characters replaced, trailing
/// padding (spaces, NULs) dropped, cut to `width` characters.
pub fn printable(data: &[u8], width: usize) -> String {
    let text = String::from_utf8_lossy(data);
    let text = text.trim_end_matches([' ', '\0']);
    let mut out: String = text
        .chars()
        .take(width)
        .map(|c| {
            if c.is_control() {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect();
    if text.chars().nth(width).is_some() {
        out.push('…');
    }
    out
}

/// SIGINT and SIGTERM set a flag that the serve loop looks at.
mod signals {
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Set by SIGINT or SIGTERM.
    pub static STOP: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_signal(_: libc::c_int) {
        // Only an atomic store: async-signal-safe.
        STOP.store(true, Ordering::SeqCst);
    }

    /// Installs the handler for SIGINT and SIGTERM. It is reset to the default
    /// action after it ran once, so a second signal ends the process at once.
    pub fn install() -> io::Result<()> {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
            // we then set a handler that only stores to an atomic, which is
            // async-signal-safe, and pass valid pointers to sigemptyset and
            // sigaction.
            let rc = unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut())
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_trims_pads_and_control_characters() {
        assert_eq!(printable(b"message #1      ", 60), "message #1");
        assert_eq!(printable(b"abc\0\0", 60), "abc");
        assert_eq!(printable(b"a\nb", 60), "a\u{fffd}b");
        assert_eq!(printable(b"abcdef", 3), "abc…");
        assert_eq!(printable(&[0xff, b'x'], 60), "\u{fffd}x");
        assert_eq!(printable(b"", 60), "");
    }
}
