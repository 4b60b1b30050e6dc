//! asyncmsg's QUIC transport between nodes.
//!
//! The low-level pieces live here:
//!
//! - [`cert`]: the trust root (a CA under the asyncmsg home directory) and the
//!   node identities it issues; only peers holding an identity issued by the
//!   same CA are let in (SPEC B18 across nodes).
//! - [`tls`]: rustls and quinn configurations (TLS 1.3, mutual authentication,
//!   ALPN `asyncmsg/1`, ring as the only crypto provider) and transport tuning.
//! - [`endpoint`]: [`QuicEndpoint`](endpoint::QuicEndpoint), one UDP socket that
//!   both accepts and connects, with typed errors that tell an untrusted peer
//!   apart from an unreachable one.
//!
//! Everything async runs on tokio; endpoints must be created inside a tokio
//! runtime.

pub mod cert;
pub mod endpoint;
#[doc(hidden)]
pub mod relay;
pub mod tls;
