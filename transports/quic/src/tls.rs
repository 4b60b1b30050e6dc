//! TLS and QUIC configurations for nodes.
//!
//! Both sides authenticate: the server requires a client certificate chaining
//! to the home's CA, the client verifies the server's chain to the same CA for
//! the name [`NODE_NAME`]. TLS 1.3 only, ALPN [`ALPN`], and the ring crypto
//! provider passed explicitly (no process-wide default provider is needed or
//! installed). Session resumption and 0-RTT are off: every connection is
//! fully authenticated.
//!
//! ```
//! use asyncmsg_quic::tls::TransportOptions;
//! use std::time::Duration;
//!
//! let mut options = TransportOptions::default();
//! options.idle_timeout = Duration::from_secs(3);
//! let transport = options.transport_config()?;
//! # let _ = transport;
//! # Ok::<(), asyncmsg_quic::tls::TlsError>(())
//! ```

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::cert::{Identity, NODE_NAME};

/// The ALPN protocol both sides offer and require.
pub const ALPN: &[u8] = b"asyncmsg/1";

/// A configuration that could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the identity or the CA certificate.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The certificate verifier could not be built (e.g. an unusable CA
    /// certificate).
    #[error("certificate verifier: {0}")]
    Verifier(String),
    /// The TLS configuration lacks what QUIC needs (TLS 1.3's
    /// `TLS13_AES_128_GCM_SHA256`).
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(String),
    /// A transport option is out of range.
    #[error("transport option out of range: {0}")]
    Option(String),
}

/// QUIC transport tuning shared by both sides of a connection.
///
/// The defaults suit bulk message streams on a LAN: a keep-alive every
/// second, connections given up after 10 s without a packet from the peer,
/// 16 MiB per stream and 64 MiB per connection of receive window, and 1024
/// concurrent bidirectional streams.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportOptions {
    /// How long a connection lives without hearing from the peer (the
    /// smaller of both sides' values applies; it also bounds a handshake
    /// with a peer that does not answer). quinn stretches it to at least
    /// three probe timeouts, which is ~3 s before the first round trip was
    /// measured: bound connection attempts with a connect timeout instead.
    /// Zero means never. Default 10 s.
    pub idle_timeout: Duration,
    /// How often to send a keep-alive when nothing else is sent; keep it
    /// well below `idle_timeout`. `None`: never. Default 1 s.
    pub keep_alive: Option<Duration>,
    /// Bytes a peer may send on one stream ahead of the reader. Default
    /// 16 MiB.
    pub stream_receive_window: u32,
    /// Bytes a peer may send on all streams together ahead of the readers.
    /// Default 64 MiB.
    pub receive_window: u32,
    /// Bytes this side buffers unacknowledged across all streams. Default
    /// 64 MiB.
    pub send_window: u64,
    /// Bidirectional streams the peer may have open at once. Default 1024.
    pub max_concurrent_bidi_streams: u32,
    /// Unidirectional streams the peer may have open at once. Default 16.
    pub max_concurrent_uni_streams: u32,
}

impl Default for TransportOptions {
    fn default() -> TransportOptions {
        TransportOptions {
            idle_timeout: Duration::from_secs(10),
            keep_alive: Some(Duration::from_secs(1)),
            stream_receive_window: 16 << 20,
            receive_window: 64 << 20,
            send_window: 64 << 20,
            max_concurrent_bidi_streams: 1024,
            max_concurrent_uni_streams: 16,
        }
    }
}

impl TransportOptions {
    /// The quinn transport configuration these options describe.
    pub fn transport_config(&self) -> Result<TransportConfig, TlsError> {
        let idle = IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| TlsError::Option(format!("idle_timeout {:?}", self.idle_timeout)))?;
        let mut t = TransportConfig::default();
        t.max_idle_timeout(Some(idle))
            .keep_alive_interval(self.keep_alive)
            .stream_receive_window(VarInt::from_u32(self.stream_receive_window))
            .receive_window(VarInt::from_u32(self.receive_window))
            .send_window(self.send_window)
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_concurrent_bidi_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(self.max_concurrent_uni_streams));
        Ok(t)
    }
}

/// The ring crypto provider every configuration here is built with.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    Ok(Arc::new(roots))
}

/// The rustls server side: presents `identity`, requires a client
/// certificate chaining to `ca`, TLS 1.3, ALPN [`ALPN`], no session tickets.
pub fn server_crypto(
    identity: &Identity,
    ca: &CertificateDer<'static>,
) -> Result<ServerConfig, TlsError> {
    let provider = crypto_provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            identity.cert_chain().to_vec(),
            identity.private_key().clone_key(),
        )?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// The rustls client side: verifies the server's chain to `ca` for
/// [`NODE_NAME`], presents `identity`, TLS 1.3, ALPN [`ALPN`], no
/// resumption.
pub fn client_crypto(
    identity: &Identity,
    ca: &CertificateDer<'static>,
) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(
            identity.cert_chain().to_vec(),
            identity.private_key().clone_key(),
        )?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// A quinn server configuration from [`server_crypto`] and `options`.
pub fn server_config(
    identity: &Identity,
    ca: &CertificateDer<'static>,
    options: &TransportOptions,
) -> Result<quinn::ServerConfig, TlsError> {
    let crypto = QuicServerConfig::try_from(server_crypto(identity, ca)?)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(options.transport_config()?));
    Ok(config)
}

/// A quinn client configuration from [`client_crypto`] and `options`.
pub fn client_config(
    identity: &Identity,
    ca: &CertificateDer<'static>,
    options: &TransportOptions,
) -> Result<quinn::ClientConfig, TlsError> {
    let crypto = QuicClientConfig::try_from(client_crypto(identity, ca)?)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(options.transport_config()?));
    Ok(config)
}

/// Checks that `identity` verifies against `ca` the way peers will check it:
/// as a server named [`NODE_NAME`] and as a client.
pub(crate) fn verify_identity(
    ca: &CertificateDer<'static>,
    identity: &Identity,
) -> Result<(), TlsError> {
    let provider = crypto_provider();
    let roots = roots(ca)?;
    let now = UnixTime::now();
    let (leaf, intermediates) = identity
        .cert_chain()
        .split_first()
        .ok_or_else(|| TlsError::Verifier("empty certificate chain".into()))?;
    let server = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let name = ServerName::try_from(NODE_NAME).map_err(|e| TlsError::Verifier(e.to_string()))?;
    server.verify_server_cert(leaf, intermediates, &name, &[], now)?;
    let client = WebPkiClientVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    client.verify_client_cert(leaf, intermediates, now)?;
    Ok(())
}
