//! A node's QUIC endpoint: one UDP socket that accepts and connects.
//!
//! Connections are mutually authenticated under the home's CA (see
//! [`tls`]). A connection is handed out only once the server has
//! verified the client's certificate: the server admits a client by sending
//! a short token on the first server-initiated unidirectional stream, and
//! [`QuicEndpoint::connect`] returns after reading it (in TLS 1.3 the
//! client's handshake ends before the server has judged the client's
//! certificate, so without it a refused client would first see a connection
//! that dies a moment later). Applications therefore get a connection whose
//! bidirectional streams are all theirs; the unidirectional stream the
//! admission used is consumed here.
//!
//! ```no_run
//! use asyncmsg_quic::cert::Home;
//! use asyncmsg_quic::endpoint::QuicEndpoint;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let home = Home::from_env()?;
//! home.init()?;
//! let identity = home.issue_identity()?;
//! let server = QuicEndpoint::bind("127.0.0.1:0".parse()?, &identity, &home)?;
//! let client = QuicEndpoint::bind("127.0.0.1:0".parse()?, &identity, &home)?;
//! let addr = server.local_addr()?;
//! tokio::spawn(async move {
//!     while let Some(incoming) = server.accept().await {
//!         if let Ok(conn) = incoming.await {
//!             // serve conn.accept_bi() ...
//! #           drop(conn);
//!         }
//!     }
//! });
//! let conn = client.connect(addr).await?;
//! let (mut send, _recv) = conn.open_bi().await?;
//! send.write_all(b"hello").await?;
//! # Ok(()) }
//! ```

use std::future::{Future, IntoFuture};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, ConnectionError, EndpointConfig, TransportErrorCode, VarInt};
use rustls::pki_types::CertificateDer;
use tokio::time::{Instant, timeout_at};

use crate::cert::{CertError, Fingerprint, Home, Identity, NODE_NAME};
use crate::tls::{self, TlsError, TransportOptions};

/// The UDP socket buffer size endpoints ask for (each way): the kernel's
/// default (~208 KiB) drops packets on loopback at full speed.
pub const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;

/// What the server sends on its first unidirectional stream once it has
/// accepted the client's certificate.
const ADMISSION: &[u8] = b"asyncmsg/1 admitted";

/// TLS alerts that mean a certificate was refused (RFC 8446 §6.2).
const CERTIFICATE_ALERTS: &[u8] = &[
    42,  // bad_certificate
    43,  // unsupported_certificate
    44,  // certificate_revoked
    45,  // certificate_expired
    46,  // certificate_unknown
    48,  // unknown_ca
    49,  // access_denied
    51,  // decrypt_error (a signature over the handshake did not verify)
    116, // certificate_required
];

/// Why a QUIC operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// A certificate was refused: the peer's identity does not chain to
    /// this node's trust root, or the peer refused this node's identity
    /// (B18; callers report a permission error).
    #[error("peer not trusted: {0}")]
    Untrusted(String),
    /// The address cannot be used to reach a peer from this endpoint (e.g.
    /// an IPv6 address from an IPv4 socket, port 0).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No answer in time (nobody listens there, the network is down, or the
    /// peer stopped answering for longer than the idle timeout).
    #[error("timed out")]
    TimedOut,
    /// The peer's endpoint refused the connection (it does not accept, or
    /// is overloaded).
    #[error("connection refused by the peer")]
    Refused,
    /// The peer no longer knows the connection (stateless reset: it
    /// restarted).
    #[error("connection reset by the peer")]
    Reset,
    /// The peer closed the connection with an error code.
    #[error("closed by the peer: code {code}: {reason}")]
    Closed {
        /// The code the peer gave.
        code: u64,
        /// The reason the peer gave.
        reason: String,
    },
    /// This side closed the connection or its endpoint.
    #[error("closed locally")]
    LocallyClosed,
    /// The peer broke the protocol (QUIC or TLS error other than a refused
    /// certificate, wrong ALPN, bad admission).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The TLS or transport configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The trust root could not be read.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// Endpoints need a tokio runtime: create them inside one (or with its
    /// handle entered).
    #[error("no tokio runtime: create QUIC endpoints inside a tokio runtime")]
    NoRuntime,
}

impl QuicError {
    fn io(context: impl Into<String>, source: io::Error) -> QuicError {
        QuicError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The TLS alert carried by a QUIC crypto error code, if it is one.
fn tls_alert(code: TransportErrorCode) -> Option<u8> {
    let code = u64::from(code);
    (0x100..0x200).contains(&code).then(|| (code - 0x100) as u8)
}

fn refused_certificate(code: TransportErrorCode) -> bool {
    tls_alert(code).is_some_and(|a| CERTIFICATE_ALERTS.contains(&a))
}

impl From<ConnectionError> for QuicError {
    /// Classifies a quinn connection error: refused certificates (ours or
    /// the peer's) become [`QuicError::Untrusted`].
    fn from(e: ConnectionError) -> QuicError {
        match e {
            ConnectionError::TransportError(t) if refused_certificate(t.code) => {
                QuicError::Untrusted(format!("this node refused the peer's certificate: {t}"))
            }
            ConnectionError::ConnectionClosed(c) if refused_certificate(c.error_code) => {
                QuicError::Untrusted(format!("the peer refused this node's certificate: {c}"))
            }
            ConnectionError::ConnectionClosed(c)
                if c.error_code == TransportErrorCode::CONNECTION_REFUSED =>
            {
                QuicError::Refused
            }
            ConnectionError::ApplicationClosed(a) => QuicError::Closed {
                code: a.error_code.into_inner(),
                reason: String::from_utf8_lossy(&a.reason).into_owned(),
            },
            ConnectionError::Reset => QuicError::Reset,
            ConnectionError::TimedOut => QuicError::TimedOut,
            ConnectionError::LocallyClosed => QuicError::LocallyClosed,
            other => QuicError::Protocol(other.to_string()),
        }
    }
}

impl From<quinn::ConnectError> for QuicError {
    fn from(e: quinn::ConnectError) -> QuicError {
        match e {
            quinn::ConnectError::InvalidRemoteAddress(a) => {
                QuicError::Unreachable(format!("invalid remote address {a}"))
            }
            quinn::ConnectError::EndpointStopping => QuicError::LocallyClosed,
            other => QuicError::Protocol(other.to_string()),
        }
    }
}

impl From<quinn::ReadToEndError> for QuicError {
    fn from(e: quinn::ReadToEndError) -> QuicError {
        match e {
            quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(c)) => c.into(),
            other => QuicError::Protocol(format!("admission: {other}")),
        }
    }
}

impl From<quinn::WriteError> for QuicError {
    fn from(e: quinn::WriteError) -> QuicError {
        match e {
            quinn::WriteError::ConnectionLost(c) => c.into(),
            other => QuicError::Protocol(format!("admission: {other}")),
        }
    }
}

/// How an endpoint is set up.
///
/// ```
/// use asyncmsg_quic::endpoint::EndpointOptions;
/// use std::time::Duration;
///
/// let mut options = EndpointOptions::default();
/// options.transport.idle_timeout = Duration::from_secs(2);
/// options.connect_timeout = Duration::from_secs(2);
/// options.accept = false; // a client-only endpoint
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EndpointOptions {
    /// QUIC transport tuning (idle timeout, keep-alive, windows, streams).
    pub transport: TransportOptions,
    /// UDP receive and send buffer size asked of the kernel, each. Default
    /// [`DEFAULT_SOCKET_BUFFER`] (4 MiB).
    pub socket_buffer: usize,
    /// Whether the endpoint accepts connections. Default `true`; a
    /// client-only endpoint does not answer connection attempts (they time
    /// out) and [`QuicEndpoint::accept`] returns `None` at once.
    pub accept: bool,
    /// The most [`QuicEndpoint::connect`] and an accepted
    /// [`QuicIncoming`] wait for the handshake and admission. Default 10 s.
    pub connect_timeout: Duration,
}

impl Default for EndpointOptions {
    fn default() -> EndpointOptions {
        EndpointOptions {
            transport: TransportOptions::default(),
            socket_buffer: DEFAULT_SOCKET_BUFFER,
            accept: true,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A QUIC endpoint: accepts connections from trusted nodes and connects to
/// them, over one UDP socket.
#[derive(Debug)]
pub struct QuicEndpoint {
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    options: EndpointOptions,
    buffers: (usize, usize),
}

impl QuicEndpoint {
    /// Binds `addr` (port 0: any free port) with `identity`, trusting the
    /// CA in `home`, with default [`EndpointOptions`]. Must be called inside
    /// a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        identity: &Identity,
        home: &Home,
    ) -> Result<QuicEndpoint, QuicError> {
        QuicEndpoint::bind_with(addr, identity, home, &EndpointOptions::default())
    }

    /// [`bind`](QuicEndpoint::bind) with `options`.
    pub fn bind_with(
        addr: SocketAddr,
        identity: &Identity,
        home: &Home,
        options: &EndpointOptions,
    ) -> Result<QuicEndpoint, QuicError> {
        let ca = home.ca_certificate()?;
        QuicEndpoint::bind_with_ca(addr, identity, &ca, options)
    }

    /// [`bind_with`](QuicEndpoint::bind_with), trusting the CA certificate
    /// `ca` given directly.
    pub fn bind_with_ca(
        addr: SocketAddr,
        identity: &Identity,
        ca: &CertificateDer<'static>,
        options: &EndpointOptions,
    ) -> Result<QuicEndpoint, QuicError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(QuicError::NoRuntime);
        }
        let client = tls::client_config(identity, ca, &options.transport)?;
        let server = if options.accept {
            Some(tls::server_config(identity, ca, &options.transport)?)
        } else {
            None
        };
        let (socket, buffers) = udp_socket(addr, options.socket_buffer)?;
        let endpoint = quinn::Endpoint::new(
            EndpointConfig::default(),
            server,
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| QuicError::io(format!("QUIC endpoint on {addr}"), e))?;
        Ok(QuicEndpoint {
            endpoint,
            client,
            options: options.clone(),
            buffers,
        })
    }

    /// The bound address (with the port chosen if 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The UDP receive and send buffer sizes, as the kernel reports them
    /// (Linux reports twice what it was asked, up to its limits).
    pub fn socket_buffers(&self) -> (usize, usize) {
        self.buffers
    }

    /// Connects to the node at `addr` and waits until it has admitted this
    /// node's certificate.
    ///
    /// Fails with [`QuicError::Untrusted`] if either side refuses the
    /// other's certificate, [`QuicError::TimedOut`] if nobody answers within
    /// the idle timeout (or the connect timeout), [`QuicError::Unreachable`]
    /// for an address this endpoint cannot send to.
    pub async fn connect(&self, addr: SocketAddr) -> Result<Connection, QuicError> {
        let deadline = Instant::now() + self.options.connect_timeout;
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), addr, NODE_NAME)?;
        let conn = match timeout_at(deadline, connecting).await {
            Ok(conn) => conn?,
            Err(_) => return Err(QuicError::TimedOut),
        };
        match timeout_at(deadline, await_admission(&conn)).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(e)) => {
                conn.close(VarInt::from_u32(0), b"not admitted");
                Err(e)
            }
            Err(_) => {
                conn.close(VarInt::from_u32(0), b"admission timed out");
                Err(QuicError::TimedOut)
            }
        }
    }

    /// The next incoming connection attempt; `None` once the endpoint is
    /// closed, or at once for a client-only endpoint. Await the
    /// [`QuicIncoming`] (or call [`QuicIncoming::accept`]) to run the
    /// handshake.
    pub async fn accept(&self) -> Option<QuicIncoming> {
        if !self.options.accept {
            return None;
        }
        let incoming = self.endpoint.accept().await?;
        Some(QuicIncoming {
            incoming,
            timeout: self.options.connect_timeout,
        })
    }

    /// Closes every connection and stops accepting (pending
    /// [`accept`](QuicEndpoint::accept) calls return `None`).
    pub fn close(&self) {
        self.endpoint.close(VarInt::from_u32(0), b"endpoint closed");
    }

    /// Waits until every connection is fully closed (after
    /// [`close`](QuicEndpoint::close), so that peers were told).
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }

    /// The quinn endpoint underneath.
    pub fn inner(&self) -> &quinn::Endpoint {
        &self.endpoint
    }
}

async fn await_admission(conn: &Connection) -> Result<(), QuicError> {
    let mut recv = conn.accept_uni().await?;
    let token = recv.read_to_end(ADMISSION.len()).await?;
    if token != ADMISSION {
        return Err(QuicError::Protocol("bad admission token".into()));
    }
    Ok(())
}

/// A connection attempt to a [`QuicEndpoint`]: await it (or call
/// [`accept`](QuicIncoming::accept)) to run the handshake; the result is a
/// connection from a trusted node, or [`QuicError::Untrusted`] for a
/// refused one.
#[derive(Debug)]
pub struct QuicIncoming {
    incoming: quinn::Incoming,
    timeout: Duration,
}

impl QuicIncoming {
    /// Where the attempt comes from.
    pub fn remote_address(&self) -> SocketAddr {
        self.incoming.remote_address()
    }

    /// Runs the handshake (the client's certificate must chain to this
    /// node's CA) and admits the client.
    pub async fn accept(self) -> Result<Connection, QuicError> {
        let deadline = Instant::now() + self.timeout;
        let connecting = self.incoming.accept()?;
        let conn = match timeout_at(deadline, connecting).await {
            Ok(conn) => conn?,
            Err(_) => return Err(QuicError::TimedOut),
        };
        match timeout_at(deadline, admit(&conn)).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(e)) => {
                conn.close(VarInt::from_u32(0), b"admission failed");
                Err(e)
            }
            Err(_) => {
                conn.close(VarInt::from_u32(0), b"admission timed out");
                Err(QuicError::TimedOut)
            }
        }
    }

    /// Refuses the attempt (the client sees [`QuicError::Refused`]).
    pub fn refuse(self) {
        self.incoming.refuse();
    }

    /// Drops the attempt without answering (the client times out).
    pub fn ignore(self) {
        self.incoming.ignore();
    }
}

impl IntoFuture for QuicIncoming {
    type Output = Result<Connection, QuicError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.accept())
    }
}

async fn admit(conn: &Connection) -> Result<(), QuicError> {
    let mut send = conn.open_uni().await?;
    send.write_all(ADMISSION).await?;
    send.finish()
        .map_err(|e| QuicError::Protocol(format!("admission: {e}")))?;
    Ok(())
}

/// The SHA-256 fingerprint of the certificate the peer of `conn` presented
/// (its [`Identity::fingerprint`]).
pub fn peer_fingerprint(conn: &Connection) -> Option<Fingerprint> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.first().map(|leaf| Fingerprint::of(leaf))
}

/// A UDP socket bound to `addr`, non-blocking, with receive and send buffers
/// of `buffer` bytes if the kernel allows; also returns the sizes the kernel
/// reports.
fn udp_socket(addr: SocketAddr, buffer: usize) -> Result<(UdpSocket, (usize, usize)), QuicError> {
    let socket = UdpSocket::bind(addr).map_err(|e| QuicError::io(format!("bind {addr}"), e))?;
    set_socket_buffers(&socket, buffer);
    socket
        .set_nonblocking(true)
        .map_err(|e| QuicError::io("set_nonblocking", e))?;
    let sizes = socket_buffer_sizes(&socket);
    Ok((socket, sizes))
}

/// Asks for `size`-byte receive and send buffers on `socket`: beyond the
/// system's limit if this process may (`SO_RCVBUFFORCE`), else up to it.
/// Best effort: a refusal leaves the kernel's size.
pub(crate) fn set_socket_buffers(socket: &UdpSocket, size: usize) {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if setsockopt_int(socket, force, size).is_err() {
            let _ = setsockopt_int(socket, plain, size);
        }
    }
}

fn setsockopt_int(socket: &UdpSocket, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a c_int that outlives the call; the descriptor is
    // open (borrowed from `socket`).
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn socket_buffer_sizes(socket: &UdpSocket) -> (usize, usize) {
    let get = |option| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid for writes of their sizes; the
        // descriptor is open (borrowed from `socket`).
        let r = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if r == 0 {
            usize::try_from(value).unwrap_or(0)
        } else {
            0
        }
    };
    (get(libc::SO_RCVBUF), get(libc::SO_SNDBUF))
}
