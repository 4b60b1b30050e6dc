//! The conformance suite (SPEC rules B01–B17) over the QUIC transport: every
//! connection goes through `quic://127.0.0.1:PORT/NAME` — TLS 1.3 with both
//! nodes' certificates checked against one trust root, a stream per
//! connection, one frame per trigger, cumulative acknowledgements — between
//! two nodes of the test process. (Store and forward, faults and two real
//! processes: `crates/asyncmsg/tests/quic_*.rs`.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use asyncmsg::{Channel, Node, Target};
use asyncmsg_conformance::{Harness, conformance_suite};

struct Quic {
    receiver: Node,
    sender: Node,
    addr: SocketAddr,
}

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One trust root for the whole test process, in a temporary directory.
fn home() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("asyncmsg-conformance-quic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the trust home");
    dir
}

impl Harness for Quic {
    const IMMEDIATE: bool = false;
    const SHARED_ADDRESS_SPACE: bool = false;

    fn setup() -> Self {
        let receiver = Node::new().expect("start the receiving node");
        let sender = Node::new().expect("start the sending node");
        receiver.trust_home(home());
        sender.trust_home(home());
        let addr = receiver.listen("127.0.0.1:0").expect("listen on loopback");
        Quic {
            receiver,
            sender,
            addr,
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
        format!("quic://{}/{name}", self.addr).into()
    }

    fn name_target(&self, name: &str) -> Target {
        format!("quic://{}/{name}", self.addr).into()
    }

    // The receiving node numbers its peers from 1: the sender is its only one.
    fn sender_identity(&self) -> (u32, u32) {
        (1, std::process::id())
    }
}

conformance_suite!(Quic);
