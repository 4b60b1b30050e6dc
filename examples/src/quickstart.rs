//! The shortest useful program: a channel published under a name, a connection
//! to it by name, one put, one get, and the delivery callback.

use std::sync::mpsc;

use anyhow::ensure;
use asyncmsg::{ChannelConfig, ConnectionAttr, Flush, Node};

use crate::support::PATIENCE;

/// Runs the quickstart, printing what it does.
pub fn run() -> anyhow::Result<()> {
    let node = Node::new()?;
    let chan = node.create_channel(ChannelConfig::default().buffer_size(2048).max_buffers(5))?;
    chan.publish("quickstart")?; // QNX name_attach

    let (delivered, callbacks) = mpsc::channel();
    let conn = node.connect(
        "quickstart",
        ConnectionAttr::default()
            .trigger_count(16)
            .on_delivered(move |d| {
                println!("callback: handle {} {:?}", d.handle, d.result);
                let _ = delivered.send(d.result);
            }),
    )?;

    conn.put("hello, asyncmsg", 42)?; // returns at once: the buffer is lent
    conn.flush(Flush::NoWait)?; // trigger now rather than after 16 puts

    for msg in chan.get_timeout(PATIENCE)? {
        let info = msg.info();
        println!(
            "got {:?} from pid {} coid {} seq {}",
            msg.text(),
            info.pid,
            info.coid,
            info.seq
        );
        ensure!(msg.data() == b"hello, asyncmsg", "got the wrong message");
    } // each message is freed as it goes out of scope

    ensure!(callbacks.recv_timeout(PATIENCE)? == Ok(()), "not delivered");
    Ok(())
}
