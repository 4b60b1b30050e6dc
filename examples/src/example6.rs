//! QNX example 6: a server and a client, in two processes.
//!
//! The **server** creates an asynchronous channel whose event is a pulse to
//! its own pulse channel (QNX `SIGEV_PULSE` to the channel it `MsgReceive`s
//! on), publishes it under a name (QNX `name_attach`), and then waits for
//! pulses. Each pulse says a get will find messages: the server drains the
//! channel (gets until nothing is left) and prints every message.
//!
//! The **client** finds the name (QNX `name_open`), attaches an asynchronous
//! connection to the channel with a delivery callback, and puts
//! `message #N` every second; each delivery callback prints
//! `delivered message #N`.
//!
//! Both run until stopped, or for `--count N` messages. The server publishes
//! on the host, so the client may be another process: it reaches the channel
//! over shared memory (`shm://NAME` forces that route even in one process).
//!
//! How this differs from QNX's program: there, the client opens the name,
//! asks the server for the asynchronous channel's id with a synchronous
//! request (`MsgSend`, answered by `MsgReply`), and attaches to that id. The
//! synchronous companion channel comes later in this project; here the
//! published name resolves to the asynchronous channel directly.
//!
//! ```sh
//! cargo run --example example6_server            # publishes "example6"
//! cargo run --example example6_client            # in another terminal
//! cargo run --example example6_client -- --count 3
//! ```

use std::io::Write;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use asyncmsg::{
    Channel, ChannelConfig, ChannelEvent, ConnectError, ConnectionAttr, ErrorKind, Flush, GetError,
    Node, PulseChannel,
};

use crate::support::PATIENCE;

/// The name the server publishes unless told otherwise.
pub const DEFAULT_NAME: &str = "example6";
/// How often the client puts a message.
pub const PERIOD: Duration = Duration::from_secs(1);
/// The pulse code of the channel's event (QNX `_PULSE_CODE_MINAVAIL`).
const PULSE_CODE: i8 = 0;
/// The pulse value of the channel's event.
const PULSE_VALUE: i32 = 6;

/// What the programs take on their command line: `[NAME] [--count N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The name to publish or find.
    pub name: String,
    /// Stop after this many messages; `None` runs until stopped.
    pub count: Option<u64>,
}

impl Args {
    /// Parses the arguments after the program name.
    ///
    /// ```
    /// use asyncmsg_examples::example6::Args;
    /// let a = Args::parse(["--count", "3"].map(String::from)).unwrap();
    /// assert_eq!((a.name.as_str(), a.count), ("example6", Some(3)));
    /// let a = Args::parse(["sensors"].map(String::from)).unwrap();
    /// assert_eq!((a.name.as_str(), a.count), ("sensors", None));
    /// assert!(Args::parse(["--count", "many"].map(String::from)).is_err());
    /// ```
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Args> {
        let mut name = None;
        let mut count = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--count" => {
                    let n = args.next().context("--count needs a number")?;
                    let n: u64 = n
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .with_context(|| format!("--count {n:?}: not a positive number"))?;
                    count = Some(n);
                }
                "-h" | "--help" => {
                    bail!("usage: [NAME] [--count N] (NAME defaults to {DEFAULT_NAME:?})")
                }
                flag if flag.starts_with('-') => bail!("unknown option {flag:?}"),
                _ if name.is_some() => bail!("more than one name: {arg:?}"),
                _ => name = Some(arg),
            }
        }
        Ok(Args {
            name: name.unwrap_or_else(|| DEFAULT_NAME.to_owned()),
            count,
        })
    }
}

/// The server: its channel, published, and the pulse channel its event goes to.
#[derive(Debug)]
pub struct Server {
    // Dropped before the node: the channel is withdrawn first.
    chan: Channel,
    pulses: PulseChannel,
    name: String,
    _node: Node,
}

impl Server {
    /// Creates the channel with a pulse event and publishes it under `name`.
    pub fn start(name: &str) -> anyhow::Result<Server> {
        let node = Node::new()?;
        let pulses = PulseChannel::new(); // QNX ChannelCreate
        let chan = node.create_channel(
            ChannelConfig::default()
                .buffer_size(256)
                .max_buffers(8)
                .event(ChannelEvent::pulse(&pulses, PULSE_CODE, PULSE_VALUE)),
        )?;
        chan.publish(name) // QNX name_attach
            .with_context(|| format!("cannot publish {name:?}"))?;
        Ok(Server {
            chan,
            pulses,
            name: name.to_owned(),
            _node: node,
        })
    }

    /// Waits for pulses and prints every message, until `count` messages
    /// (forever without one); returns how many it received.
    pub fn serve(&self, count: Option<u64>, out: &mut impl Write) -> anyhow::Result<u64> {
        writeln!(
            out,
            "server: waiting on {:?} (pid {}, chid {})",
            self.name,
            std::process::id(),
            self.chan.chid()
        )?;
        out.flush()?;
        let mut received = 0u64;
        while count.is_none_or(|n| received < n) {
            let pulse = self.pulses.receive(); // QNX MsgReceive: a pulse
            if (pulse.code, pulse.value) != (PULSE_CODE, PULSE_VALUE) {
                writeln!(out, "server: ignoring pulse {pulse:?}")?;
                continue;
            }
            // Drain: the pulse promised messages; take every batch there is.
            loop {
                let batch = match self.chan.try_get() {
                    Ok(batch) => batch,
                    Err(GetError::WouldBlock) => break,
                    Err(e) => return Err(e).context("get"),
                };
                for msg in &batch {
                    let i = msg.info();
                    writeln!(
                        out,
                        "server: received {:?} from pid {} (coid {}, seq {})",
                        msg.text(),
                        i.pid,
                        i.coid,
                        i.seq
                    )?;
                }
                received += batch.len() as u64;
            } // each batch is dropped here (QNX asyncmsg_free): the client hears back
            out.flush()?;
        }
        writeln!(out, "server: {received} messages received")?;
        Ok(received)
    }
}

/// Runs the server under `name` for `count` messages (forever without one).
pub fn server(name: &str, count: Option<u64>, out: &mut impl Write) -> anyhow::Result<u64> {
    Server::start(name)?.serve(count, out)
}

/// Finds `name` (a name or an address such as `shm://NAME`), attaches a
/// connection and puts `message #N` every `period`, printing each delivery;
/// stops after `count` messages (never without one). Returns how many were
/// delivered; fails if one was not.
pub fn client(
    name: &str,
    count: Option<u64>,
    period: Duration,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let node = Node::new()?;
    let (tx, deliveries) = mpsc::channel();
    // QNX name_open, then asyncmsg_connect_attach.
    let conn = node
        .connect(
            name,
            ConnectionAttr::default()
                .max_buffers(8)
                .trigger_count(1)
                .on_delivered(move |d| {
                    // Runs on the node's delivery thread; the main loop prints.
                    let _ = tx.send((d.handle, d.result));
                }),
        )
        .map_err(|e| match e {
            ConnectError::NotFound(_) => {
                anyhow::anyhow!("no server publishes {name:?} (start example6_server first)")
            }
            e => anyhow::Error::new(e).context(format!("cannot connect to {name:?}")),
        })?;
    writeln!(out, "client: connected to {name:?} (coid {})", conn.coid())?;

    let mut put = 0u64;
    let mut delivered = 0u64;
    let mut next = Instant::now();
    while count.is_none_or(|n| put < n) {
        delivered += show_deliveries(&deliveries, out, next)?;
        put += 1;
        let text = format!("message #{put}");
        writeln!(out, "client: put {text:?}")?;
        out.flush()?;
        conn.put_timeout(text, put, PATIENCE)
            .with_context(|| format!("put of message #{put}"))?;
        next += period;
    }
    conn.flush(Flush::NoWait)?;
    // Every message called back before the connection goes.
    let deadline = Instant::now() + PATIENCE;
    while delivered < put {
        match deliveries.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(d) => delivered += show(d, out)?,
            Err(RecvTimeoutError::Timeout) => {
                bail!("only {delivered} of {put} messages called back within {PATIENCE:?}")
            }
            Err(RecvTimeoutError::Disconnected) => bail!("the connection went away"),
        }
    }
    writeln!(out, "client: {delivered} messages delivered")?;
    Ok(delivered)
}

/// Prints the delivery callbacks that come until `until`; returns how many.
fn show_deliveries(
    deliveries: &Receiver<(u64, Result<(), ErrorKind>)>,
    out: &mut impl Write,
    until: Instant,
) -> anyhow::Result<u64> {
    let mut n = 0;
    loop {
        match deliveries.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(d) => n += show(d, out)?,
            Err(RecvTimeoutError::Timeout) => return Ok(n),
            Err(RecvTimeoutError::Disconnected) => bail!("the connection went away"),
        }
    }
}

/// Prints one delivery callback; fails on an undelivered message.
fn show(d: (u64, Result<(), ErrorKind>), out: &mut impl Write) -> anyhow::Result<u64> {
    match d {
        (handle, Ok(())) => {
            writeln!(out, "client: delivered message #{handle}")?;
            Ok(1)
        }
        (handle, Err(e)) => bail!("message #{handle} was not delivered: {e}"),
    }
}
