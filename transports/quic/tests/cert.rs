//! B18 across nodes: the trust root in the home directory, and the node
//! identities it issues.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};

use asyncmsg_quic::cert::{CertError, Fingerprint, Home, InitOutcome, NODE_NAME};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn b18_init_creates_ca_files_with_modes() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("nested/asyncmsg"));
    assert_eq!(home.init().unwrap(), InitOutcome::Created);
    assert_eq!(mode(home.path()), 0o700);
    assert_eq!(mode(&home.ca_cert_path()), 0o644);
    assert_eq!(mode(&home.ca_key_path()), 0o600);
    let pem = fs::read_to_string(home.ca_cert_path()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let key = fs::read_to_string(home.ca_key_path()).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));

    // Again: found, validated, untouched.
    assert_eq!(home.init().unwrap(), InitOutcome::Existing);
    assert_eq!(fs::read_to_string(home.ca_cert_path()).unwrap(), pem);
    assert_eq!(fs::read_to_string(home.ca_key_path()).unwrap(), key);
    // No temporary files left behind.
    let mut names: Vec<String> = fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ca.key", "ca.lock", "ca.pem"]);
}

#[test]
fn b18_concurrent_init_threads_make_one_ca() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("home"));
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let outcomes: Vec<InitOutcome> = (0..n)
        .map(|_| {
            let (home, barrier) = (home.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                home.init().unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let created = outcomes
        .iter()
        .filter(|o| **o == InitOutcome::Created)
        .count();
    assert_eq!(created, 1, "{outcomes:?}");
    home.issue_identity().unwrap();
}

const CHILD_DIR: &str = "ASYNCMSG_QUIC_TEST_INIT_DIR";

/// Not a test on its own: what `b18_concurrent_init_processes_make_one_ca`
/// runs in each child process.
#[test]
fn init_child() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        let outcome = Home::at(dir).init().unwrap();
        println!("outcome={outcome:?}");
    }
}

#[test]
fn b18_concurrent_init_processes_make_one_ca() {
    let dir = tempfile::tempdir().unwrap();
    let home_dir = dir.path().join("home");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "init_child", "--nocapture", "--test-threads=1"])
                .env(CHILD_DIR, &home_dir)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut created = 0;
    let mut existing = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        created += stdout.matches("outcome=Created").count();
        existing += stdout.matches("outcome=Existing").count();
    }
    assert_eq!((created, existing), (1, 5));
    Home::at(&home_dir).issue_identity().unwrap();
}

#[test]
fn b18_identities_are_fresh_and_fingerprinted() {
    let (_dir, home) = common::home();
    let a = home.issue_identity().unwrap();
    let b = home.issue_identity().unwrap();
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.common_name(), b.common_name());
    assert!(a.common_name().starts_with(NODE_NAME));
    assert_eq!(a.fingerprint(), Fingerprint::of(a.certificate()));
    assert_eq!(a.fingerprint(), a.clone().fingerprint());
    let hex = a.fingerprint().to_hex();
    assert_eq!(hex.len(), 64);
    assert!(
        hex.bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(
        <[u8; 32]>::from(a.fingerprint()),
        *a.fingerprint().as_bytes()
    );
    assert_eq!(a.cert_chain().len(), 1);
    // The private key does not show in debug output.
    assert!(format!("{a:?}").contains("elided"));
}

#[test]
fn b18_issue_before_init_is_not_initialized() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    assert!(matches!(
        home.issue_identity(),
        Err(CertError::NotInitialized { .. })
    ));
    assert!(matches!(
        home.ca_certificate(),
        Err(CertError::NotInitialized { .. })
    ));
}

#[test]
fn b18_bad_files_are_typed_errors() {
    let (_d1, home) = common::home();

    // Garbage certificate.
    let good_pem = fs::read(home.ca_cert_path()).unwrap();
    fs::write(home.ca_cert_path(), b"not a certificate").unwrap();
    assert!(matches!(home.init(), Err(CertError::BadPem { .. })));
    assert!(matches!(
        home.issue_identity(),
        Err(CertError::BadPem { .. })
    ));
    // A PEM block whose contents are not a certificate.
    fs::write(
        home.ca_cert_path(),
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(matches!(home.init(), Err(CertError::BadPem { .. })));
    fs::write(home.ca_cert_path(), &good_pem).unwrap();

    // Garbage and empty keys.
    let good_key = fs::read(home.ca_key_path()).unwrap();
    fs::write(home.ca_key_path(), b"").unwrap();
    assert!(matches!(home.init(), Err(CertError::BadPem { .. })));
    fs::write(
        home.ca_key_path(),
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert!(matches!(home.init(), Err(CertError::BadPem { .. })));

    // Another home's key.
    let (_d2, other) = common::home();
    fs::copy(other.ca_key_path(), home.ca_key_path()).unwrap();
    assert!(matches!(home.init(), Err(CertError::KeyMismatch { .. })));
    assert!(matches!(
        home.issue_identity(),
        Err(CertError::KeyMismatch { .. })
    ));
    fs::write(home.ca_key_path(), &good_key).unwrap();
    assert_eq!(home.init().unwrap(), InitOutcome::Existing);

    // A certificate without its key is not silently replaced.
    fs::remove_file(home.ca_key_path()).unwrap();
    assert!(matches!(home.init(), Err(CertError::Incomplete { .. })));
    assert_eq!(fs::read(home.ca_cert_path()).unwrap(), good_pem);

    // A key without a certificate is an interrupted init: replaced.
    fs::write(home.ca_key_path(), &good_key).unwrap();
    fs::remove_file(home.ca_cert_path()).unwrap();
    assert_eq!(home.init().unwrap(), InitOutcome::Created);
    home.issue_identity().unwrap();

    // A directory where the certificate should be.
    fs::remove_file(home.ca_cert_path()).unwrap();
    fs::create_dir(home.ca_cert_path()).unwrap();
    assert!(matches!(home.init(), Err(CertError::Io { .. })));

    // A file where the home should be.
    let (d3, _) = common::home();
    let file = d3.path().join("file");
    fs::write(&file, b"x").unwrap();
    assert!(matches!(Home::at(&file).init(), Err(CertError::Io { .. })));
}
