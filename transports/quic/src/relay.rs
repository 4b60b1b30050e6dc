//! A UDP relay for fault tests: sits between a client and a server, forwards
//! datagrams both ways, and can drop everything (a network partition) or
//! send to a new server address (a server killed and restarted elsewhere).
//!
//! The client sends to [`UdpRelay::local_addr`]; the relay learns the client's
//! address from the datagrams it receives (the latest sender is the client)
//! and forwards the target's answers back to it. The target sees the relay's
//! own second socket as its peer. Datagrams from anything but the current
//! target are not forwarded to the client (a killed server's last words are
//! lost, as they would be).
//!
//! ```
//! use asyncmsg_quic::relay::UdpRelay;
//! use std::net::UdpSocket;
//! use std::time::Duration;
//!
//! let server = UdpSocket::bind("127.0.0.1:0")?;
//! let relay = UdpRelay::start(server.local_addr()?)?;
//! let client = UdpSocket::bind("127.0.0.1:0")?;
//! client.send_to(b"ping", relay.local_addr())?;
//! let mut buf = [0u8; 16];
//! let (n, relay_side) = server.recv_from(&mut buf)?;
//! assert_eq!(&buf[..n], b"ping");
//! server.send_to(b"pong", relay_side)?;
//! let (n, _) = client.recv_from(&mut buf)?;
//! assert_eq!(&buf[..n], b"pong");
//! assert!(relay.wait_for(Duration::from_secs(5), |s| s.to_client == 1));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the relay's threads block in a receive before looking at the
/// stop flag again (dropping the relay also wakes them at once).
const POLL: Duration = Duration::from_millis(200);

/// The largest datagram relayed.
const MAX_DATAGRAM: usize = 65_536;

/// Datagram counts since the relay started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Forwarded from the client to the target.
    pub to_target: u64,
    /// Forwarded from the target to the client.
    pub to_client: u64,
    /// Dropped because the blackhole was on.
    pub dropped: u64,
}

#[derive(Debug)]
struct State {
    target: SocketAddr,
    client: Option<SocketAddr>,
    stats: RelayStats,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    blackhole: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A two-way UDP relay between one client and a target; stops when dropped.
#[derive(Debug)]
pub struct UdpRelay {
    front_addr: SocketAddr,
    back_addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpRelay {
    /// Starts relaying to `target`, listening on 127.0.0.1 (any port).
    pub fn start(target: SocketAddr) -> io::Result<UdpRelay> {
        let front = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let back = match target {
            SocketAddr::V4(_) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?,
            SocketAddr::V6(_) => UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?,
        };
        for s in [&front, &back] {
            crate::endpoint::set_socket_buffers(s, crate::endpoint::DEFAULT_SOCKET_BUFFER);
            s.set_read_timeout(Some(POLL))?;
        }
        let front_addr = front.local_addr()?;
        let back_addr = back.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                target,
                client: None,
                stats: RelayStats::default(),
            }),
            changed: Condvar::new(),
            blackhole: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let front = Arc::new(front);
        let back = Arc::new(back);
        let mut threads = Vec::new();
        {
            let (front, back, shared) = (front.clone(), back.clone(), shared.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("udp-relay-up".into())
                    .spawn(move || client_to_target(&front, &back, &shared))?,
            );
        }
        {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("udp-relay-down".into())
                    .spawn(move || target_to_client(&front, &back, &shared))?,
            );
        }
        Ok(UdpRelay {
            front_addr,
            back_addr,
            shared,
            threads,
        })
    }

    /// Where clients send (127.0.0.1, the port chosen at start).
    pub fn local_addr(&self) -> SocketAddr {
        self.front_addr
    }

    /// Where datagrams currently go.
    pub fn target(&self) -> SocketAddr {
        self.shared.state().target
    }

    /// While on, every datagram in either direction is dropped (and
    /// counted in [`RelayStats::dropped`]).
    pub fn set_blackhole(&self, on: bool) {
        self.shared.blackhole.store(on, Ordering::SeqCst);
    }

    /// Sends the client's datagrams to `target` from now on, and forwards
    /// only `target`'s datagrams back (a server restarted on a new port).
    /// A server restarted on the same port needs no retarget. The new
    /// target must be of the first one's address family.
    pub fn retarget(&self, target: SocketAddr) {
        self.shared.state().target = target;
    }

    /// The counts so far.
    pub fn stats(&self) -> RelayStats {
        self.shared.state().stats
    }

    /// Waits until `done` holds for the counts, up to `timeout`; tells
    /// whether it did.
    pub fn wait_for(&self, timeout: Duration, mut done: impl FnMut(&RelayStats) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state();
        loop {
            if done(&state.stats) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake both threads now rather than at their next receive timeout.
        if let Ok(waker) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) {
            let _ = waker.send_to(&[], self.front_addr);
            let back = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.back_addr.port());
            let _ = waker.send_to(&[], back);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn client_to_target(front: &UdpSocket, back: &UdpSocket, shared: &Shared) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shared.stop.load(Ordering::SeqCst) {
        let (n, from) = match front.recv_from(&mut buf) {
            Ok(r) => r,
            Err(_) => continue,
        };
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let target = {
            let mut state = shared.state();
            state.client = Some(from);
            if shared.blackhole.load(Ordering::SeqCst) {
                state.stats.dropped += 1;
                shared.changed.notify_all();
                continue;
            }
            state.target
        };
        if back.send_to(&buf[..n], target).is_ok() {
            shared.state().stats.to_target += 1;
            shared.changed.notify_all();
        }
    }
}

fn target_to_client(front: &UdpSocket, back: &UdpSocket, shared: &Shared) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shared.stop.load(Ordering::SeqCst) {
        let (n, from) = match back.recv_from(&mut buf) {
            Ok(r) => r,
            Err(_) => continue,
        };
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let client = {
            let mut state = shared.state();
            if from != state.target {
                continue;
            }
            if shared.blackhole.load(Ordering::SeqCst) {
                state.stats.dropped += 1;
                shared.changed.notify_all();
                continue;
            }
            match state.client {
                Some(c) => c,
                None => continue,
            }
        };
        if front.send_to(&buf[..n], client).is_ok() {
            shared.state().stats.to_client += 1;
            shared.changed.notify_all();
        }
    }
}
