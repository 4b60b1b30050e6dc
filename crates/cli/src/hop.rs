//! Hops: the ways a connection reaches a channel, one per transport.
//!
//! The demo runs over every hop the build offers. A hop makes a channel
//! reachable under a name and returns the address that connects to it; the
//! address picks the transport (SPEC B19), so the rest of the demo is the same
//! for all of them.
//!
//! Over shared memory and QUIC the receiver can also be another process: a
//! [`ChildServer`] is this very program run as `asyncmsg serve NAME` (with
//! `--listen 127.0.0.1:0` for QUIC), which the demo's senders reach at
//! `shm://NAME` or `quic://127.0.0.1:PORT/NAME`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use asyncmsg::{Channel, Node};
use clap::ValueEnum;

/// Where QUIC hops listen: loopback, a port the system picks.
pub const LOOPBACK: &str = "127.0.0.1:0";

/// A transport for the demo to run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Hop {
    /// Same process: the buffer itself moves, no byte is copied.
    Inproc,
    /// Shared memory: messages travel through a ring in a shared segment. The
    /// tour runs in this process; throughput is measured against a child
    /// process that serves the channel.
    Shm,
    /// QUIC on loopback: messages travel in TLS 1.3 over UDP, between nodes
    /// that trust the same root. The tour's senders are a second node of
    /// this process; throughput is measured against a child process that
    /// listens.
    Quic,
}

impl Hop {
    /// Every hop this build offers.
    pub fn all() -> &'static [Hop] {
        &[Hop::Inproc, Hop::Shm, Hop::Quic]
    }

    /// The hop's short name, as printed.
    pub fn label(self) -> &'static str {
        match self {
            Hop::Inproc => "inproc",
            Hop::Shm => "shm",
            Hop::Quic => "quic",
        }
    }

    /// Makes `chan`, a channel of `node`, reachable over this hop under
    /// `name` and returns the address a connection uses to reach it (over
    /// QUIC, `node` listens on loopback for it).
    pub fn expose(self, node: &Node, chan: &Channel, name: &str) -> anyhow::Result<String> {
        chan.publish(name)?;
        Ok(match self {
            Hop::Inproc => format!("inproc://{name}"),
            Hop::Shm => format!("shm://{name}"),
            Hop::Quic => {
                let addr = node
                    .listen(LOOPBACK)
                    .with_context(|| format!("cannot listen on {LOOPBACK}"))?;
                format!("quic://{addr}/{name}")
            }
        })
    }

    /// The node whose connections reach a channel of `node` over this hop:
    /// `node` itself, or over QUIC a second node (another machine's, as far
    /// as the receiver can tell).
    pub fn sending_node(self, node: &Node) -> anyhow::Result<Node> {
        Ok(match self {
            Hop::Quic => Node::new()?,
            Hop::Inproc | Hop::Shm => node.clone(),
        })
    }

    /// Whether the throughput run's receiver is a child process.
    pub fn receives_in_child(self) -> bool {
        matches!(self, Hop::Shm | Hop::Quic)
    }
}

/// A name no other run on the host uses: the program, its pid, a counter.
pub fn unique_name(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "asyncmsg-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a child server is asked to do.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// How its channel is reached: over shared memory, or QUIC on loopback.
    pub hop: Hop,
    /// The name it publishes.
    pub name: String,
    /// Messages it takes before it exits.
    pub count: u64,
    /// Its channel's buffer size.
    pub buffer_size: usize,
    /// Most messages per get.
    pub max_buffers: usize,
}

/// A child process running `asyncmsg serve NAME --count N --quiet` (with
/// `--listen 127.0.0.1:0` over QUIC), with its order checks on. It is killed
/// and reaped when dropped before it finished.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    address: String,
    count: u64,
    stdout: Option<JoinHandle<String>>,
    stderr: Arc<Mutex<String>>,
    finished: bool,
}

impl ChildServer {
    /// Starts the child and waits (at most `patience`) until it serves.
    pub fn spawn(spec: &ChildSpec, patience: Duration) -> anyhow::Result<ChildServer> {
        let exe = std::env::current_exe().context("cannot find this program to run it again")?;
        let listen: &[&str] = match spec.hop {
            Hop::Quic => &["--listen", LOOPBACK],
            Hop::Inproc | Hop::Shm => &[],
        };
        let mut child = Command::new(&exe)
            .args(["serve", &spec.name, "--quiet", "--check-order"])
            .args(listen)
            .args(["--count", &spec.count.to_string()])
            .args(["--buffer-size", &spec.buffer_size.to_string()])
            .args(["--max-buffers", &spec.max_buffers.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        let out = child.stdout.take();
        let err = child.stderr.take();
        let stderr = Arc::new(Mutex::new(String::new()));
        // From here on, `server` owns the child: an early return kills it.
        let mut server = ChildServer {
            child,
            address: format!("shm://{}", spec.name),
            count: spec.count,
            stdout: out.map(|mut out| {
                std::thread::spawn(move || {
                    let mut s = String::new();
                    let _ = out.read_to_string(&mut s);
                    s
                })
            }),
            stderr: stderr.clone(),
            finished: false,
        };
        let (serving_tx, serving_rx) = mpsc::channel();
        if let Some(err) = err {
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with("serving ") {
                        let _ = serving_tx.send(line.clone());
                    }
                    let mut all = stderr.lock().unwrap_or_else(|e| e.into_inner());
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        match serving_rx.recv_timeout(patience) {
            Ok(line) if spec.hop == Hop::Quic => {
                // `serving NAME (pid P, chid C) on quic://HOST:PORT`
                let Some((_, at)) = line.rsplit_once(" on quic://") else {
                    bail!("the child server listens nowhere: {line:?}");
                };
                server.address = format!("quic://{at}/{}", spec.name);
                Ok(server)
            }
            Ok(_) => Ok(server),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!(
                    "the child server did not start serving within {patience:?}{}",
                    server.stderr_text()
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = server.wait_exit(patience);
                bail!(
                    "the child server ended before serving ({}){}",
                    describe_exit(status),
                    server.stderr_text()
                )
            }
        }
    }

    /// The address that reaches the child's channel.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `patience`) for the child to take its messages and exit;
    /// returns how many it received.
    pub fn finish(mut self, patience: Duration) -> anyhow::Result<u64> {
        let status = self.wait_exit(patience);
        let stdout = self
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        match status {
            Some(s) if s.success() => {}
            other => bail!(
                "the child server {}; it printed:\n{stdout}{}",
                describe_exit(other),
                self.stderr_text()
            ),
        }
        let received = stdout
            .lines()
            .find_map(|l| {
                l.strip_prefix("received ")?
                    .strip_suffix(" messages")?
                    .parse::<u64>()
                    .ok()
            })
            .with_context(|| format!("the child server printed no count:\n{stdout}"))?;
        if received != self.count {
            bail!(
                "the child server received {received} messages, {} were sent",
                self.count
            );
        }
        Ok(received)
    }

    /// Waits at most `patience` for the child to exit; kills it if it does not.
    /// `None` when it had to be killed (or could not be waited for).
    fn wait_exit(&mut self, patience: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + patience;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.finished = true;
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    self.kill();
                    return None;
                }
            }
        }
    }

    fn kill(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.finished = true;
        }
    }

    /// What the child wrote to stderr, for an error message.
    fn stderr_text(&self) -> String {
        let text = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        if text.trim().is_empty() {
            String::new()
        } else {
            format!("; its stderr:\n{}", text.trim_end())
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => format!("exited with {s}"),
        None => "did not exit in time and was killed".to_owned(),
    }
}
