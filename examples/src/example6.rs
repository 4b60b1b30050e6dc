//! QNX example 6: a server and a client, in two processes.
//!
//! The **server** waits on one synchronous channel for everything:
//!
//! 1. It creates a synchronous channel and publishes it under a name (QNX
//!    `name_attach`, which also does the `ChannelCreate`).
//! 2. It creates an asynchronous channel whose event is a pulse to that
//!    synchronous channel (QNX `asyncmsg_channel_create` with a
//!    `SIGEV_PULSE` event, code `_PULSE_CODE_MINAVAIL`).
//! 3. It loops on one receive (QNX `MsgReceive`):
//!    - the asynchronous channel's pulse: it drains the channel (gets until
//!      nothing is left, QNX `asyncmsg_get` until `EAGAIN`), prints every
//!      message and lets it go (QNX `asyncmsg_free`), which tells the client
//!      it was delivered;
//!    - a `_PULSE_CODE_DISCONNECT` pulse: a client went away (QNX
//!      `ConnectDetach` of the pulse's `scoid`);
//!    - a connect request (QNX `_IO_CONNECT`, sent by `name_open`): accepted
//!      with an empty reply (QNX `MsgReply(rcvid, EOK, NULL, 0)`);
//!    - a request of type [`ASYNC_CHID_REQUEST`]: answered with the
//!      asynchronous channel's id, 4 bytes little-endian (QNX
//!      `MsgReply(rcvid, EOK, &chid, sizeof(chid))`);
//!    - any other request: refused with `ENOSYS` (QNX `MsgError`).
//!
//! The **client**:
//!
//! 1. opens the name (QNX `name_open`: returns once the server accepted the
//!    connect request);
//! 2. asks for the asynchronous channel's id with a request of type
//!    [`ASYNC_CHID_REQUEST`] (QNX `MsgSend`, blocked until `MsgReply`);
//! 3. learns the server's process id (QNX `ConnectServerInfo`);
//! 4. attaches an asynchronous connection to `(nd 0, pid, chid)` with a
//!    delivery callback (QNX `asyncmsg_connect_attach`);
//! 5. puts `message #N` every second (QNX `asyncmsg_put`); each delivery
//!    callback shows up as `delivered message #N`;
//! 6. after `--count N` messages, waits for every delivery callback, detaches
//!    and closes the name (QNX `asyncmsg_connect_detach`, `name_close`): the
//!    server receives the disconnect pulse.
//!
//! The server runs until stopped or, with `--count N`, until it received `N`
//! messages and every client that opened its name has gone. Both programs
//! take the name as an argument (`example6` without one). The name is
//! published on the host, so the client may be another process: the request
//! travels over the node socket and the messages over shared memory. In one
//! process, `shm://NAME` sends the requests over the node socket all the same.
//!
//! ```sh
//! cargo run --example example6_server            # publishes "example6"
//! cargo run --example example6_client            # in another terminal
//! cargo run --example example6_client -- --count 3
//! ```

use std::collections::HashSet;
use std::io::Write;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use asyncmsg::sync::PULSE_CODE_DISCONNECT;
use asyncmsg::{
    Channel, ChannelConfig, ChannelEvent, ChannelId, ConnectError, ConnectionAttr, ErrorKind,
    Flush, GetError, Node, ReceiveError, Received, Request, RequestKind, SyncChannel,
    SyncConnection,
};

use crate::support::PATIENCE;

/// The name the server publishes unless told otherwise.
pub const DEFAULT_NAME: &str = "example6";
/// How often the client puts a message.
pub const PERIOD: Duration = Duration::from_secs(1);
/// The message type (first two bytes, little-endian, as QNX's `msg.i.type`)
/// of the client's request for the asynchronous channel's id.
pub const ASYNC_CHID_REQUEST: u16 = 2;
/// The errno the server refuses other requests with (Linux's `ENOSYS`).
pub const ENOSYS: i32 = 38;
/// The first pulse code free for programs (QNX `_PULSE_CODE_MINAVAIL`).
const PULSE_CODE_MINAVAIL: i8 = 0;
/// The pulse code of the asynchronous channel's event.
const PULSE_CODE_ASYNCMSG: i8 = PULSE_CODE_MINAVAIL;
/// The pulse value of the asynchronous channel's event.
const PULSE_VALUE_ASYNCMSG: i32 = 6;

/// What the programs take on their command line: `[NAME] [--count N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The name to publish or open.
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

/// A request's message type: its first two bytes, little-endian (QNX
/// `msg.i.type`); `None` for a request shorter than that.
///
/// ```
/// use asyncmsg_examples::example6::{message_type, ASYNC_CHID_REQUEST};
/// assert_eq!(message_type(&ASYNC_CHID_REQUEST.to_le_bytes()), Some(2));
/// assert_eq!(message_type(&[7]), None);
/// ```
pub fn message_type(data: &[u8]) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(..2)?.try_into().ok()?))
}

/// The server: its published synchronous channel and the asynchronous channel
/// whose event is a pulse to it.
#[derive(Debug)]
pub struct Server {
    // Dropped in this order: the asynchronous channel, then the synchronous
    // one (its name withdrawn), then the node.
    chan: Channel,
    sync: SyncChannel,
    name: String,
    _node: Node,
}

impl Server {
    /// Creates and publishes the synchronous channel, and creates the
    /// asynchronous channel with a pulse event to it.
    pub fn start(name: &str) -> anyhow::Result<Server> {
        let node = Node::new()?;
        // QNX name_attach (a ChannelCreate and a name).
        let sync = node.create_sync_channel(0o600)?;
        sync.publish(name)
            .with_context(|| format!("cannot publish {name:?}"))?;
        // QNX asyncmsg_channel_create with a SIGEV_PULSE to that channel.
        let chan = node.create_channel(
            ChannelConfig::default()
                .nonblocking(true) // a get returns WouldBlock once drained
                .buffer_size(256)
                .max_buffers(8)
                .event(ChannelEvent::pulse(
                    &sync,
                    PULSE_CODE_ASYNCMSG,
                    PULSE_VALUE_ASYNCMSG,
                )),
        )?;
        Ok(Server {
            chan,
            sync,
            name: name.to_owned(),
            _node: node,
        })
    }

    /// The asynchronous channel's id, as the server gives it to clients.
    pub fn async_chid(&self) -> i32 {
        self.chan.chid()
    }

    /// Receives pulses and requests and handles each; with `count`, stops once
    /// `count` messages arrived and every client that opened the name has gone
    /// (waiting at most [`PATIENCE`] for that after the last message), without
    /// one runs forever. Returns how many messages it received.
    pub fn serve(&self, count: Option<u64>, out: &mut impl Write) -> anyhow::Result<u64> {
        writeln!(
            out,
            "server: waiting on {:?} (pid {}, chid {}, asyncmsg chid {})",
            self.name,
            std::process::id(),
            self.sync.chid(),
            self.chan.chid()
        )?;
        out.flush()?;
        let mut received = 0u64;
        // The clients that opened the name and have not gone yet, by scoid.
        let mut clients = HashSet::new();
        let mut deadline = None;
        loop {
            let got = if count.is_some_and(|n| received >= n) {
                if clients.is_empty() {
                    break;
                }
                let until = *deadline.get_or_insert_with(|| Instant::now() + PATIENCE);
                self.sync
                    .receive_timeout(until.saturating_duration_since(Instant::now()))
            } else {
                self.sync.receive() // QNX MsgReceive
            };
            let got = match got {
                Ok(got) => got,
                Err(ReceiveError::Empty) => bail!(
                    "{} client(s) still connected {PATIENCE:?} after the last message",
                    clients.len()
                ),
                Err(e) => return Err(e).context("receive"),
            };
            match got {
                Received::Pulse(p)
                    if (p.code, p.value) == (PULSE_CODE_ASYNCMSG, PULSE_VALUE_ASYNCMSG) =>
                {
                    received += self.drain(out)?;
                }
                Received::Pulse(p) if p.code == PULSE_CODE_DISCONNECT => {
                    // QNX: ConnectDetach(scoid); here the connection is gone.
                    clients.remove(&p.scoid);
                    writeln!(out, "server: a client left (scoid {})", p.scoid)?;
                }
                Received::Pulse(p) => writeln!(out, "server: ignoring pulse {p:?}")?,
                Received::Request(req) => {
                    if let Some(scoid) = self.answer(&req, out)? {
                        clients.insert(scoid);
                    }
                }
            }
            out.flush()?;
        }
        writeln!(out, "server: {received} messages received")?;
        out.flush()?;
        Ok(received)
    }

    /// Gets until nothing is left, printing every message; returns how many.
    fn drain(&self, out: &mut impl Write) -> anyhow::Result<u64> {
        let mut n = 0;
        loop {
            let batch = match self.chan.get() {
                Ok(batch) => batch,
                Err(GetError::WouldBlock) => return Ok(n),
                Err(e) => return Err(e).context("asyncmsg get"),
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
            n += batch.len() as u64;
        } // each batch is dropped here (QNX asyncmsg_free): the client hears back
    }

    /// Answers one request; returns the client's scoid if it was a connect
    /// request.
    fn answer(&self, req: &Request, out: &mut impl Write) -> anyhow::Result<Option<i32>> {
        let (rcvid, pid) = (req.rcvid(), req.pid());
        let (answered, opened) = match (req.kind(), message_type(req.data())) {
            (RequestKind::Connect, _) => {
                writeln!(
                    out,
                    "server: pid {pid} opened the name (scoid {})",
                    req.scoid()
                )?;
                (self.sync.reply(rcvid, 0, &[]), Some(req.scoid()))
            }
            (RequestKind::Message, Some(ASYNC_CHID_REQUEST)) => {
                let chid = self.chan.chid();
                writeln!(
                    out,
                    "server: pid {pid} asked for the asyncmsg channel id: replied chid {chid}"
                )?;
                (self.sync.reply(rcvid, 0, &chid.to_le_bytes()), None)
            }
            (RequestKind::Message, ty) => {
                writeln!(out, "server: pid {pid} sent message type {ty:?}: ENOSYS")?;
                (self.sync.reply_error(rcvid, ENOSYS), None)
            }
        };
        // The client may have gone before its answer: nothing to do then.
        if let Err(e) = answered {
            writeln!(out, "server: no reply to pid {pid}: {e}")?;
            return Ok(None);
        }
        Ok(opened)
    }
}

/// Runs the server under `name`: until `count` messages arrived and their
/// clients went (forever without one).
pub fn server(name: &str, count: Option<u64>, out: &mut impl Write) -> anyhow::Result<u64> {
    Server::start(name)?.serve(count, out)
}

/// Opens `name` (a name or an address such as `shm://NAME`), asks for the
/// asynchronous channel's id, attaches a connection to it and puts
/// `message #N` every `period`, printing each delivery; stops after `count`
/// messages (never without one), then closes both connections. Returns how
/// many messages were delivered; fails if one was not.
pub fn client(
    name: &str,
    count: Option<u64>,
    period: Duration,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let node = Node::new()?;
    let server = open(&node, name)?; // QNX name_open
    let pid = server.server_pid(); // QNX ConnectServerInfo
    writeln!(out, "client: opened {name:?} (server pid {pid})")?;

    // QNX MsgSend of a type-2 request; the reply is the channel id.
    let reply = server
        .send_timeout(&ASYNC_CHID_REQUEST.to_le_bytes(), PATIENCE)
        .context("asking for the asyncmsg channel id")?;
    ensure!(
        reply.status == 0 && reply.data.len() == 4,
        "the server answered the channel id request with status {} and {} bytes",
        reply.status,
        reply.data.len()
    );
    let chid = i32::from_le_bytes(reply.data[..4].try_into()?);
    let id = ChannelId { nd: 0, pid, chid };
    writeln!(out, "client: asyncmsg channel is pid {pid} chid {chid}")?;

    let (tx, deliveries) = mpsc::channel();
    // QNX asyncmsg_connect_attach(0, pid, chid, ...).
    let conn = node
        .connect(
            id,
            ConnectionAttr::default()
                .max_buffers(8)
                .trigger_count(1)
                .on_delivered(move |d| {
                    // Runs on the node's delivery thread; the main loop prints.
                    let _ = tx.send((d.handle, d.result));
                }),
        )
        .with_context(|| format!("cannot attach to pid {pid} chid {chid}"))?;
    writeln!(out, "client: attached (coid {})", conn.coid())?;

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
    // Every message called back before the connections go.
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
    drop(conn); // QNX asyncmsg_connect_detach
    drop(server); // QNX name_close: the server receives a disconnect pulse
    writeln!(out, "client: {delivered} messages delivered")?;
    out.flush()?;
    Ok(delivered)
}

/// Opens `name` (QNX `name_open`), waiting at most [`PATIENCE`] for the
/// server to accept the connect request.
fn open(node: &Node, name: &str) -> anyhow::Result<SyncConnection> {
    match node.open_timeout(name, PATIENCE) {
        Ok(conn) => Ok(conn),
        Err(ConnectError::NotFound(_)) => {
            bail!("no server publishes {name:?} (start example6_server first)")
        }
        Err(ConnectError::TimedOut) => {
            bail!("the server of {name:?} did not accept the connection within {PATIENCE:?}")
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot open {name:?}"))),
    }
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
