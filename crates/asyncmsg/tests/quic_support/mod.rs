//! What the QUIC fault and process tests share: unique names, a temporary
//! trust root, numbered payloads, and values to wait on with a deadline.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use asyncmsg::{ConnectionAttr, ErrorKind, Node};

/// Bytes per message: a sequence number, then a filler derived from it.
pub const PAYLOAD: usize = 64;

pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A trust root in a temporary directory, removed when dropped.
pub struct TrustHome(pub PathBuf);

impl TrustHome {
    pub fn new() -> TrustHome {
        let dir = std::env::temp_dir().join(unique("asyncmsg-quic-tests"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TrustHome(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The directory as a command-line argument.
    pub fn arg(&self) -> String {
        self.0.to_str().expect("a UTF-8 temp dir").to_owned()
    }

    /// A node whose trust root is this one.
    pub fn node(&self) -> Node {
        let node = Node::new().expect("node");
        node.trust_home(self.path());
        node
    }
}

impl Drop for TrustHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn payload(seq: u64) -> Vec<u8> {
    let mut v = seq.to_le_bytes().to_vec();
    v.resize(PAYLOAD, (seq % 251) as u8);
    v
}

/// The sequence number a [`payload`] carries (checking the filler).
pub fn seq_of(data: &[u8]) -> u64 {
    assert_eq!(data.len(), PAYLOAD, "payload length");
    let seq = u64::from_le_bytes(data[..8].try_into().unwrap());
    assert!(
        data[8..].iter().all(|&b| b == (seq % 251) as u8),
        "payload {seq} corrupted"
    );
    seq
}

/// A value threads update and others wait on (with a deadline).
pub struct Watched<T> {
    value: Mutex<T>,
    changed: Condvar,
}

impl<T> Watched<T> {
    pub fn new(value: T) -> Arc<Self> {
        Arc::new(Watched {
            value: Mutex::new(value),
            changed: Condvar::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.value.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn update(&self, f: impl FnOnce(&mut T)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits until `done` holds, up to `timeout`; tells whether it did.
    pub fn wait_for(&self, timeout: Duration, mut done: impl FnMut(&T) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut v = self.lock();
        loop {
            if done(&v) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            v = self
                .changed
                .wait_timeout(v, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Delivery callbacks of one connection, in the order they ran.
pub type Calls = Arc<Watched<Vec<(u64, Result<(), ErrorKind>, Instant)>>>;

pub fn recording(calls: &Calls, attr: ConnectionAttr) -> ConnectionAttr {
    let calls = calls.clone();
    attr.on_delivered(move |d| calls.update(|v| v.push((d.handle, d.result, Instant::now()))))
}
