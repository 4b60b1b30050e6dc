//! QUIC between two nodes of this process: addressing by name and by
//! `(nd, pid, chid)`, and what a message carries (B09, B19). The SPEC rules
//! over QUIC: `crates/conformance/tests/quic.rs`; faults and processes:
//! `quic_faults.rs`, `quic_processes.rs`.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use asyncmsg::{Channel, ChannelConfig, ChannelId, ConnectionAttr, Node};

const WAIT: Duration = Duration::from_secs(5);

/// A temporary trust root, removed when dropped.
struct Home(std::path::PathBuf);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A receiving node listening on loopback with a channel published as
/// `name`, and a sending node; both trust one root in a temporary directory.
fn pair(name: &str) -> (Node, Node, Channel, SocketAddr, Home) {
    let home =
        std::env::temp_dir().join(format!("asyncmsg-quic-basic-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let receiver = Node::new().unwrap();
    receiver.trust_home(&home);
    let sender = Node::new().unwrap();
    sender.trust_home(&home);
    let chan = receiver.create_channel(ChannelConfig::default()).unwrap();
    chan.publish(&format!("{name}-{}", std::process::id()))
        .unwrap();
    let addr = receiver.listen("127.0.0.1:0").unwrap();
    (receiver, sender, chan, addr, Home(home))
}

#[test]
fn b19_by_name_one_message_and_its_callback() {
    let (_receiver, sender, chan, addr, _home) = pair("basic");
    let (tx, rx) = mpsc::channel();
    let conn = sender
        .connect(
            format!("quic://{addr}/basic-{}", std::process::id()),
            ConnectionAttr::default().on_delivered(move |d| tx.send((d.handle, d.result)).unwrap()),
        )
        .unwrap();
    conn.put("hello", 7).unwrap();
    let batch = chan.get_timeout(WAIT).unwrap();
    assert_eq!(batch[0].data(), b"hello");
    let info = batch[0].info();
    // The receiving node numbers the sending node from 1; the pid and coid
    // are the sender's.
    assert_eq!(
        (info.nd, info.pid, info.coid),
        (1, std::process::id(), conn.coid())
    );
    assert!(!info.redelivered);
    drop(batch);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), (7, Ok(())));
}

#[test]
fn b19_by_node_descriptor_pid_and_chid() {
    let (_receiver, sender, chan, addr, _home) = pair("by-id");
    let nd = sender.node_descriptor(&addr.to_string()).unwrap();
    assert!(nd > 0);
    let id = ChannelId {
        nd,
        pid: std::process::id(),
        chid: chan.chid(),
    };
    let conn = sender.connect(id, ConnectionAttr::default()).unwrap();
    conn.put("by id", 1).unwrap();
    assert_eq!(chan.get_timeout(WAIT).unwrap()[0].data(), b"by id");
    // A pid that does not own the channel is no channel.
    let wrong = ChannelId { pid: 1, ..id };
    assert!(matches!(
        sender.connect(wrong, ConnectionAttr::default()),
        Err(asyncmsg::ConnectError::NotFound(_))
    ));
}

#[test]
fn a_receiving_node_going_away_right_after_its_gets_still_acknowledges_them() {
    let (receiver, sender, chan, addr, _home) = pair("going");
    let (tx, rx) = mpsc::channel();
    let conn = sender
        .connect(
            format!("quic://{addr}/going-{}", std::process::id()),
            ConnectionAttr::default()
                .max_buffers(1024)
                .trigger_count(16)
                .retry_for(Duration::from_secs(60))
                .on_delivered(move |d| tx.send(d.result).unwrap()),
        )
        .unwrap();
    const N: usize = 1000;
    for i in 0..N {
        conn.put(format!("m{i}"), i as u64).unwrap();
    }
    conn.flush(asyncmsg::Flush::NoWait).unwrap();
    let mut got = 0;
    while got < N {
        got += chan.get_timeout(WAIT).unwrap().len();
    }
    // Everything taken and let go: the receiving side goes away at once.
    drop(chan);
    drop(receiver);
    for _ in 0..N {
        assert_eq!(rx.recv_timeout(WAIT).expect("a callback"), Ok(()));
    }
}

#[test]
fn b19_over_ipv6_loopback_too() {
    let (receiver, sender, chan, _addr, _home) = pair("ipv6");
    // The same node listens on ::1 as well, where the host has it.
    let Ok(addr6) = receiver.listen("[::1]:0") else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    let conn = sender
        .connect(
            format!("quic://{addr6}/ipv6-{}", std::process::id()),
            ConnectionAttr::default(),
        )
        .unwrap();
    conn.put("over ::1", 1).unwrap();
    assert_eq!(chan.get_timeout(WAIT).unwrap()[0].data(), b"over ::1");
}
