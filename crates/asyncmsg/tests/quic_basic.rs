//! QUIC between two nodes of this process: the basic path.

use std::time::Duration;

use asyncmsg::{ChannelConfig, ConnectionAttr, Node};

fn home() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("asyncmsg-quic-basic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn one_message_over_quic() {
    let receiver = Node::new().unwrap();
    receiver.trust_home(home());
    let sender = Node::new().unwrap();
    sender.trust_home(home());
    let chan = receiver.create_channel(ChannelConfig::default()).unwrap();
    chan.publish(&format!("basic-{}", std::process::id()))
        .unwrap();
    let addr = receiver.listen("127.0.0.1:0").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let conn = sender
        .connect(
            format!("quic://{addr}/basic-{}", std::process::id()),
            ConnectionAttr::default().on_delivered(move |d| tx.send((d.handle, d.result)).unwrap()),
        )
        .unwrap();
    conn.put("hello", 7).unwrap();
    let batch = chan.get_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(batch[0].data(), b"hello");
    drop(batch);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        (7, Ok(()))
    );
}

#[test]
fn three_puts_nonblocking_channel() {
    let receiver = Node::new().unwrap();
    receiver.trust_home(home());
    let sender = Node::new().unwrap();
    sender.trust_home(home());
    let chan = receiver
        .create_channel(ChannelConfig::default().nonblocking(true))
        .unwrap();
    let name = format!("nb-{}", std::process::id());
    chan.publish(&name).unwrap();
    let addr = receiver.listen("127.0.0.1:0").unwrap();
    let conn = sender
        .connect(
            format!("quic://{addr}/{name}"),
            ConnectionAttr::default().trigger_count(1),
        )
        .unwrap();
    for i in 0..3u64 {
        conn.put(format!("m{i}"), i).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), chan.readable())
                .await
                .unwrap_or_else(|_| panic!("put {i}: not readable; {}", chan.debug_state()))
                .unwrap();
        });
        let batch = chan.try_get().unwrap();
        assert_eq!(batch[0].data(), format!("m{i}").as_bytes());
    }
}

#[test]
fn readable_after_a_cancelled_readable_in_process() {
    let node = Node::new().unwrap();
    let chan = node
        .create_channel(ChannelConfig::default().nonblocking(true))
        .unwrap();
    let conn = node
        .connect(chan.id(), ConnectionAttr::default().trigger_count(1))
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let quiet = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(50), chan.readable())
            .await
            .is_err()
    });
    assert!(quiet);
    conn.put("x", 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), chan.readable())
            .await
            .unwrap_or_else(|_| panic!("not readable: {}", chan.debug_state()))
            .unwrap();
    });
}

#[test]
fn b01_shape_over_quic() {
    let receiver = Node::new().unwrap();
    receiver.trust_home(home());
    let sender = Node::new().unwrap();
    sender.trust_home(home());
    let addr = receiver.listen("127.0.0.1:0").unwrap();
    let chan = receiver
        .create_channel(ChannelConfig::default().nonblocking(true))
        .unwrap();
    let name = format!("b01-{}", std::process::id());
    chan.publish(&name).unwrap();
    let conn = sender
        .connect(
            format!("quic://{addr}/{name}"),
            ConnectionAttr::default().trigger_count(1),
        )
        .unwrap();
    for i in 0..3u64 {
        conn.put(format!("m{i}"), i).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), chan.readable())
                .await
                .unwrap_or_else(|_| panic!("put {i}: not readable; {}", chan.debug_state()))
                .unwrap();
        });
        let batch = chan.try_get().unwrap();
        assert_eq!(batch[0].data(), format!("m{i}").as_bytes());
        drop(batch);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let arrived = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(100), chan.readable())
                .await
                .is_ok()
        });
        assert!(!arrived);
    }
}
