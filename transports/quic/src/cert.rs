//! The trust root and node identities (SPEC B18 across nodes).
//!
//! A node trusts exactly one certificate authority: the one in its asyncmsg
//! *home* directory (`ca.pem` + `ca.key`, see [`Home`]). Every node process
//! gets a fresh, in-memory [`Identity`] signed by that CA, and accepts only
//! peers whose identity chains to the same CA. To let nodes on several
//! machines talk, give them the same `ca.pem` and `ca.key` (copy the home
//! directory's two files).
//!
//! ```no_run
//! use asyncmsg_quic::cert::{Home, InitOutcome};
//!
//! let home = Home::from_env()?;
//! if home.init()? == InitOutcome::Created {
//!     println!("new trust root in {}", home.path().display());
//! }
//! let identity = home.issue_identity()?;
//! println!("this node is {}", identity.fingerprint());
//! # Ok::<(), asyncmsg_quic::cert::CertError>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The DNS name every node certificate carries, and the server name clients
/// verify: nodes are told apart by their certificate, not by their address.
pub const NODE_NAME: &str = "asyncmsg-node";

/// The CA certificate's file name in the home directory (PEM, mode 0644).
pub const CA_CERT_FILE: &str = "ca.pem";

/// The CA private key's file name in the home directory (PKCS#8 PEM, mode
/// 0600).
pub const CA_KEY_FILE: &str = "ca.key";

/// The lock file serializing [`Home::init`] between processes.
const LOCK_FILE: &str = "ca.lock";

/// How far back certificates' validity starts (clock skew between nodes).
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// How long a node identity is valid.
const IDENTITY_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// How long the trust root is valid.
const CA_VALIDITY: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// What went wrong with the trust root or an identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// None of `$ASYNCMSG_HOME`, `$XDG_DATA_HOME` and `$HOME` is set.
    #[error("no asyncmsg home: set ASYNCMSG_HOME (or XDG_DATA_HOME or HOME)")]
    NoHome,
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// A file does not hold what it should (no PEM block of the right kind,
    /// or one that does not parse).
    #[error("{}: {reason}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `ca.key` is not the private key of `ca.pem`.
    #[error("{} does not belong to {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// `ca.pem` and `ca.key` parse but cannot serve as the trust root
    /// (identities they issue do not verify).
    #[error("{}: not a usable trust root: {reason}", path.display())]
    BadCa {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The trust root does not exist yet: run `asyncmsg cert init` (or
    /// [`Home::init`]).
    #[error("{}: no trust root yet (run `asyncmsg cert init`)", path.display())]
    NotInitialized {
        /// The missing file.
        path: PathBuf,
    },
    /// `ca.pem` exists without `ca.key`; the trust root is not replaced
    /// automatically.
    #[error("{} is missing (its certificate exists; restore it or remove both files)", missing.display())]
    Incomplete {
        /// The missing file.
        missing: PathBuf,
    },
    /// A key or certificate could not be generated or signed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

impl CertError {
    fn io(path: &Path, source: io::Error) -> CertError {
        CertError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn bad_pem(path: &Path, reason: impl fmt::Display) -> CertError {
        CertError::BadPem {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    fn bad_ca(path: &Path, reason: impl fmt::Display) -> CertError {
        CertError::BadCa {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

fn generate_error(e: rcgen::Error) -> CertError {
    CertError::Generate(e.to_string())
}

/// What [`Home::init`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    /// A new trust root was written.
    Created,
    /// The trust root was already there, and it loads and validates.
    Existing,
}

/// The asyncmsg home directory, where the trust root lives.
///
/// It is `$ASYNCMSG_HOME`, else `$XDG_DATA_HOME/asyncmsg`, else
/// `$HOME/.local/share/asyncmsg`; [`Home::init`] creates it with mode 0700.
///
/// ```
/// use asyncmsg_quic::cert::Home;
///
/// let home = Home::at("/tmp/example-asyncmsg-home");
/// assert!(home.ca_cert_path().ends_with("ca.pem"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// The home named by the environment: `$ASYNCMSG_HOME`, else
    /// `$XDG_DATA_HOME/asyncmsg` (if absolute), else
    /// `$HOME/.local/share/asyncmsg`. Empty variables count as unset.
    /// Nothing is created.
    pub fn from_env() -> Result<Home, CertError> {
        Home::resolve(|name| std::env::var_os(name))
    }

    fn resolve(var: impl Fn(&str) -> Option<OsString>) -> Result<Home, CertError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        if let Some(dir) = var("ASYNCMSG_HOME") {
            return Ok(Home::at(dir));
        }
        if let Some(data) = var("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
        {
            return Ok(Home::at(data.join("asyncmsg")));
        }
        if let Some(home) = var("HOME") {
            return Ok(Home::at(PathBuf::from(home).join(".local/share/asyncmsg")));
        }
        Err(CertError::NoHome)
    }

    /// The home at `dir` (nothing is created).
    pub fn at(dir: impl Into<PathBuf>) -> Home {
        Home { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the CA certificate is (`<home>/ca.pem`).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// Where the CA private key is (`<home>/ca.key`).
    pub fn ca_key_path(&self) -> PathBuf {
        self.dir.join(CA_KEY_FILE)
    }

    /// Creates the trust root if it is missing, or loads and validates it.
    ///
    /// A new trust root is an ECDSA P-256 key pair (`ca.key`, mode 0600) and
    /// a self-signed CA certificate (`ca.pem`, mode 0644), each written to a
    /// temporary file and renamed into place. Processes and threads calling
    /// this at once are serialized by an `flock` on `<home>/ca.lock`: one
    /// creates, the others find it [`Existing`](InitOutcome::Existing).
    ///
    /// A `ca.key` without `ca.pem` is what an interrupted first `init`
    /// leaves (nothing can have been issued from it): it is replaced. A
    /// `ca.pem` without `ca.key` is an error ([`CertError::Incomplete`]).
    pub fn init(&self) -> Result<InitOutcome, CertError> {
        self.create_dir()?;
        let _lock = DirLock::acquire(&self.dir.join(LOCK_FILE))?;
        let cert_path = self.ca_cert_path();
        let key_path = self.ca_key_path();
        match (exists(&cert_path)?, exists(&key_path)?) {
            (true, true) => {
                let ca = CaMaterial::load(&cert_path, &key_path)?;
                // Validate end to end: what the CA issues verifies against it.
                ca.issue()?;
                Ok(InitOutcome::Existing)
            }
            (true, false) => Err(CertError::Incomplete { missing: key_path }),
            (false, _) => {
                let (cert_pem, key_pem) = new_ca()?;
                // The key first: a certificate is never published without it.
                write_atomically(&self.dir, CA_KEY_FILE, key_pem.as_bytes(), 0o600)?;
                write_atomically(&self.dir, CA_CERT_FILE, cert_pem.as_bytes(), 0o644)?;
                sync_dir(&self.dir)?;
                Ok(InitOutcome::Created)
            }
        }
    }

    /// Issues a fresh node identity signed by this home's CA (in memory;
    /// nothing is written). The trust root must exist ([`Home::init`]).
    ///
    /// The certificate names [`NODE_NAME`] as its DNS name, has a unique
    /// common name, and is valid for a year (from five minutes ago, for clock
    /// skew between nodes).
    pub fn issue_identity(&self) -> Result<Identity, CertError> {
        CaMaterial::load(&self.ca_cert_path(), &self.ca_key_path())?.issue()
    }

    /// The CA certificate (what peers' identities must chain to), read from
    /// `ca.pem`. The key is not needed for this.
    pub fn ca_certificate(&self) -> Result<CertificateDer<'static>, CertError> {
        read_ca_cert(&self.ca_cert_path())
    }

    fn create_dir(&self) -> Result<(), CertError> {
        if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| CertError::io(parent, e))?;
        }
        match DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => fs::set_permissions(&self.dir, Permissions::from_mode(0o700))
                .map_err(|e| CertError::io(&self.dir, e)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if fs::metadata(&self.dir)
                    .map_err(|e| CertError::io(&self.dir, e))?
                    .is_dir()
                {
                    Ok(())
                } else {
                    Err(CertError::io(
                        &self.dir,
                        io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                    ))
                }
            }
            Err(e) => Err(CertError::io(&self.dir, e)),
        }
    }
}

/// A SHA-256 digest of a certificate's DER encoding: a node identity's stable
/// name.
///
/// ```
/// use asyncmsg_quic::cert::Fingerprint;
///
/// let f = Fingerprint::of(b"not really a certificate");
/// assert_eq!(f.to_string().len(), 64);
/// assert_eq!(f.to_string(), f.to_hex());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate given as DER.
    pub fn of(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters (the same as `to_string()`).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl From<Fingerprint> for [u8; 32] {
    fn from(f: Fingerprint) -> [u8; 32] {
        f.0
    }
}

impl From<[u8; 32]> for Fingerprint {
    fn from(bytes: [u8; 32]) -> Fingerprint {
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// A node's identity: a certificate chain and its private key, in rustls
/// types. Made by [`Home::issue_identity`]; never written to disk.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    fingerprint: Fingerprint,
    name: String,
}

impl Identity {
    /// The certificate chain, leaf first (the CA itself is not included:
    /// peers hold it as their trust anchor).
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The private key of the leaf certificate.
    pub fn private_key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The SHA-256 fingerprint of the leaf certificate: what peers see of
    /// this node (see [`endpoint::peer_fingerprint`](crate::endpoint::peer_fingerprint)).
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The certificate's (unique) common name.
    pub fn common_name(&self) -> &str {
        &self.name
    }
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            fingerprint: self.fingerprint,
            name: self.name.clone(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("common_name", &self.name)
            .field("fingerprint", &self.fingerprint)
            .field("private_key", &"[elided]")
            .finish()
    }
}

/// The loaded trust root: the CA certificate and an issuer built from it
/// and its key.
struct CaMaterial {
    cert: CertificateDer<'static>,
    cert_path: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl CaMaterial {
    fn load(cert_path: &Path, key_path: &Path) -> Result<CaMaterial, CertError> {
        let cert = read_ca_cert(cert_path)?;
        let key = read_key(key_path)?;
        let provider = crate::tls::crypto_provider();
        let signing = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| CertError::bad_pem(key_path, e))?;
        match rustls::sign::CertifiedKey::new(vec![cert.clone()], signing).keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(CertError::KeyMismatch {
                    cert: cert_path.to_path_buf(),
                    key: key_path.to_path_buf(),
                });
            }
            Err(e) => return Err(CertError::bad_ca(cert_path, e)),
        }
        let key_pair = KeyPair::try_from(&key).map_err(|e| CertError::bad_pem(key_path, e))?;
        let issuer = Issuer::from_ca_cert_der(&cert, key_pair)
            .map_err(|e| CertError::bad_ca(cert_path, e))?;
        Ok(CaMaterial {
            cert,
            cert_path: cert_path.to_path_buf(),
            issuer,
        })
    }

    /// A fresh identity, checked to verify against the CA both as a server
    /// and as a client.
    fn issue(&self) -> Result<Identity, CertError> {
        let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;
        let spki = ring::digest::digest(&ring::digest::SHA256, key_pair.public_key_raw());
        let name = format!("{NODE_NAME}-{}", hex(&spki.as_ref()[..12]));
        let mut params =
            CertificateParams::new(vec![NODE_NAME.to_owned()]).map_err(generate_error)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, name.as_str());
        set_validity(&mut params, IDENTITY_VALIDITY);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key_pair, &self.issuer)
            .map_err(generate_error)?;
        let leaf = cert.der().clone();
        let identity = Identity {
            fingerprint: Fingerprint::of(&leaf),
            chain: vec![leaf],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())),
            name,
        };
        crate::tls::verify_identity(&self.cert, &identity)
            .map_err(|e| CertError::bad_ca(&self.cert_path, e))?;
        Ok(identity)
    }
}

/// A new CA: (certificate PEM, key PEM).
fn new_ca() -> Result<(String, String), CertError> {
    let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;
    let spki = ring::digest::digest(&ring::digest::SHA256, key_pair.public_key_raw());
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "asyncmsg");
    params.distinguished_name.push(
        DnType::CommonName,
        format!("asyncmsg trust root {}", hex(&spki.as_ref()[..8])),
    );
    set_validity(&mut params, CA_VALIDITY);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key_pair).map_err(generate_error)?;
    Ok((cert.pem(), key_pair.serialize_pem()))
}

/// Makes `params` valid from now − [`BACKDATE`] to now + `length`.
fn set_validity(params: &mut CertificateParams, length: Duration) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_before = now - BACKDATE;
    params.not_after = now + length;
}

fn read_ca_cert(path: &Path) -> Result<CertificateDer<'static>, CertError> {
    let bytes = read_existing(path)?;
    let first = rustls_pemfile::certs(&mut bytes.as_slice())
        .next()
        .ok_or_else(|| CertError::bad_pem(path, "no CERTIFICATE block"))?;
    let cert = first.map_err(|e| CertError::bad_pem(path, e))?;
    // The certificate must at least make a trust anchor.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.clone())
        .map_err(|e| CertError::bad_pem(path, e))?;
    Ok(cert)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let bytes = read_existing(path)?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| CertError::bad_pem(path, e))?
        .ok_or_else(|| CertError::bad_pem(path, "no PRIVATE KEY block"))
}

fn read_existing(path: &Path) -> Result<Vec<u8>, CertError> {
    fs::read(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            CertError::NotInitialized {
                path: path.to_path_buf(),
            }
        } else {
            CertError::io(path, e)
        }
    })
}

fn exists(path: &Path) -> Result<bool, CertError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CertError::io(path, e)),
    }
}

/// Writes `<dir>/<name>` with `mode` through a temporary file and a rename,
/// so readers see either nothing or the whole file.
fn write_atomically(dir: &Path, name: &str, contents: &[u8], mode: u32) -> Result<(), CertError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let target = dir.join(name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| CertError::io(&tmp, e))?;
        // The umask may have taken bits away; the mode is meant exactly.
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| CertError::io(&tmp, e))?;
        file.write_all(contents)
            .map_err(|e| CertError::io(&tmp, e))?;
        file.sync_all().map_err(|e| CertError::io(&tmp, e))?;
        fs::rename(&tmp, &target).map_err(|e| CertError::io(&target, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<(), CertError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CertError::io(dir, e))
}

/// An exclusive `flock` on a lock file, released when dropped (the file is
/// closed).
struct DirLock {
    _file: File,
}

impl DirLock {
    fn acquire(path: &Path) -> Result<DirLock, CertError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| CertError::io(path, e))?;
        loop {
            // SAFETY: flock on a descriptor this function owns, open for the
            // call's duration.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(DirLock { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(CertError::io(path, e));
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)]) -> Result<Home, CertError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Home::resolve(|name| map.get(name).cloned())
    }

    #[test]
    fn home_precedence() {
        let all = [
            ("ASYNCMSG_HOME", "/a"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(resolve(&all).unwrap().path(), Path::new("/a"));
        assert_eq!(resolve(&all[1..]).unwrap().path(), Path::new("/x/asyncmsg"));
        assert_eq!(
            resolve(&all[2..]).unwrap().path(),
            Path::new("/h/.local/share/asyncmsg")
        );
        // Empty counts as unset; a relative XDG_DATA_HOME is ignored (XDG).
        assert_eq!(
            resolve(&[
                ("ASYNCMSG_HOME", ""),
                ("XDG_DATA_HOME", "rel"),
                ("HOME", "/h")
            ])
            .unwrap()
            .path(),
            Path::new("/h/.local/share/asyncmsg")
        );
        assert!(matches!(resolve(&[]), Err(CertError::NoHome)));
    }

    #[test]
    fn hex_digits() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
