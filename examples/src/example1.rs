//! QNX example 1: one message, one get, one callback.
//!
//! The connection triggers on every put (count trigger 1), so the message is
//! visible to the very next get. The receiver prints it and drops it, which
//! frees it (QNX `asyncmsg_free`); then the sender's delivery callback runs on
//! the node's delivery thread with the buffer back.

use asyncmsg::{ChannelConfig, ConnectionAttr, Node};

use crate::support::{Callbacks, PATIENCE, check_batch, check_delivered, print_batch};

/// Runs the example, printing what it does.
pub fn run() -> anyhow::Result<()> {
    let node = Node::new()?;
    // QNX: asyncmsg_channel_create(_NTO_CHF_SENDER_LEN, 0666, 2048, 5, NULL, NULL)
    let chan = node.create_channel(ChannelConfig::default().buffer_size(2048).max_buffers(5))?;

    let callbacks = Callbacks::new();
    // QNX: asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr) with
    // attr.max_num_buffer = 8, attr.trigger_num_msg = 1.
    let conn = node.connect(
        chan.id(),
        ConnectionAttr::default()
            .max_buffers(8)
            .trigger_count(1)
            .on_delivered(callbacks.callback()),
    )?;

    let text = "Hello Asynchronous Messaging";
    println!("put: {text:?} with handle 1000");
    conn.put(text, 1000)?;

    let batch = chan.get_timeout(PATIENCE)?;
    print_batch(&batch);
    check_batch(&batch, &[text])?;
    drop(batch); // frees the message: its callback may run now

    let done = callbacks.wait_for(1)?;
    check_delivered(&done, &[(1000, text)])?;
    println!("example1: ok");
    Ok(())
}
