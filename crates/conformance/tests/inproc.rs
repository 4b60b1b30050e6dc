//! The conformance suite (SPEC rules B01–B17) on the in-process transport: one
//! node owns both the channel and the connection.

use asyncmsg::Node;
use asyncmsg_conformance::{Harness, conformance_suite};

/// One node per test: channels and connections live in the same process and
/// address space.
struct InProc {
    node: Node,
}

impl Harness for InProc {
    // A trigger is published before put or flush returns.
    const IMMEDIATE: bool = true;
    // The receiver reads the sender's own buffer.
    const SHARED_ADDRESS_SPACE: bool = true;

    fn setup() -> Self {
        InProc {
            node: Node::new().expect("start a node"),
        }
    }

    fn receiver(&self) -> &Node {
        &self.node
    }

    fn sender(&self) -> &Node {
        &self.node
    }
}

conformance_suite!(InProc);
