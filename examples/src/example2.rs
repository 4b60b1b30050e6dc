//! QNX example 2: a count trigger of 3 turns three puts into one batch.
//!
//! The first two puts stay pending (a get would find nothing); the third makes
//! all three visible at once, and one get returns them in put order.

use anyhow::ensure;
use asyncmsg::{ChannelConfig, ConnectionAttr, GetError, Node};

use crate::support::{Callbacks, PATIENCE, check_batch, check_delivered, print_batch};

/// Runs the example, printing what it does.
pub fn run() -> anyhow::Result<()> {
    let node = Node::new()?;
    let chan = node.create_channel(ChannelConfig::default().buffer_size(2048).max_buffers(5))?;

    let callbacks = Callbacks::new();
    let conn = node.connect(
        chan.id(),
        ConnectionAttr::default()
            .max_buffers(8)
            .trigger_count(3)
            .on_delivered(callbacks.callback()),
    )?;

    let texts = ["message 1", "message 2", "message 3"];
    for (handle, text) in (1..).zip(texts) {
        if handle == 3 {
            // Before the third put nothing is visible yet.
            let early = chan.try_get();
            ensure!(
                matches!(early, Err(GetError::WouldBlock)),
                "two puts with trigger 3 were already visible: {early:?}"
            );
            println!("try_get after two puts: nothing visible yet, as expected");
        }
        println!("put: {text:?} with handle {handle}");
        conn.put(text, handle)?;
    }

    let batch = chan.get_timeout(PATIENCE)?;
    print_batch(&batch);
    check_batch(&batch, &texts)?;
    drop(batch);

    let done = callbacks.wait_for(3)?;
    check_delivered(&done, &[(1, texts[0]), (2, texts[1]), (3, texts[2])])?;
    println!("example2: ok");
    Ok(())
}
