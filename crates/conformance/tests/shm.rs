//! The conformance suite (SPEC rules B01–B17) over the shared-memory
//! transport: every connection goes through `shm://` — the Unix socket
//! handshake, a sealed memfd segment per connection, the futex bells and the
//! buffer pool — between two nodes of the test process. (The same rules across
//! two real processes: `crates/asyncmsg/tests/shm_processes.rs`.)

use std::sync::atomic::{AtomicU64, Ordering};

use asyncmsg::{Channel, Node, Target};
use asyncmsg_conformance::{Harness, conformance_suite};

struct Shm {
    receiver: Node,
    sender: Node,
}

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Harness for Shm {
    // A put publishes into the segment before it returns, and every get looks
    // at the segments.
    const IMMEDIATE: bool = true;
    // Payloads are copied into shared memory.
    const SHARED_ADDRESS_SPACE: bool = false;

    fn setup() -> Self {
        Shm {
            receiver: Node::new().expect("start the receiving node"),
            sender: Node::new().expect("start the sending node"),
        }
    }

    fn receiver(&self) -> &Node {
        &self.receiver
    }

    fn sender(&self) -> &Node {
        &self.sender
    }

    fn target(&self, chan: &Channel) -> Target {
        let name = unique("conf");
        chan.publish(&name).expect("publish the channel");
        format!("shm://{name}").into()
    }

    fn name_target(&self, name: &str) -> Target {
        format!("shm://{name}").into()
    }
}

conformance_suite!(Shm);

/// B11, B14 over shared memory: a connection detached (here: dropped) while
/// the receiver still holds a message it took still calls that message back
/// `Ok` once the receiver lets it go.
#[test]
fn b14_dropped_connection_still_calls_back_held_messages() {
    use asyncmsg::{ChannelConfig, ConnectionAttr};
    use std::sync::mpsc;
    let h = Shm::setup();
    let chan = h.channel(ChannelConfig::default());
    let (tx, rx) = mpsc::channel();
    let conn = h.connect(
        &chan,
        ConnectionAttr::default().on_delivered(move |d| tx.send((d.handle, d.result)).unwrap()),
    );
    conn.put("held", 1).unwrap();
    conn.put("held too", 2).unwrap();
    let batch = chan.get().unwrap();
    assert_eq!(batch.len(), 2);
    drop(conn);
    assert!(rx.try_recv().is_err(), "nothing called back while held");
    drop(batch);
    let wait = std::time::Duration::from_secs(10);
    assert_eq!(rx.recv_timeout(wait).unwrap(), (1, Ok(())));
    assert_eq!(rx.recv_timeout(wait).unwrap(), (2, Ok(())));
}
