//! QNX example 4: count trigger 1 and a pulse event.
//!
//! The channel announces ready messages with a pulse. The main thread puts a
//! message, waits for the pulse (QNX `MsgReceivePulse`), then gets the message
//! without blocking: the pulse promised it is there.

use anyhow::{Context, ensure};
use asyncmsg::{ChannelConfig, ChannelEvent, ConnectionAttr, Node, PulseChannel};

use crate::support::{Callbacks, PATIENCE, check_batch, check_delivered, print_batch, waiting_for};

/// The pulse code the channel's event carries (QNX `_PULSE_CODE_MINAVAIL`).
const PULSE_CODE: i8 = 0;
/// The pulse value the channel's event carries.
const PULSE_VALUE: i32 = 4;

/// Runs the example, printing what it does.
pub fn run() -> anyhow::Result<()> {
    let node = Node::new()?;
    let pulses = PulseChannel::new();
    let chan = node.create_channel(
        ChannelConfig::default()
            .buffer_size(2048)
            .max_buffers(5)
            .event(ChannelEvent::pulse(&pulses, PULSE_CODE, PULSE_VALUE)),
    )?;

    let callbacks = Callbacks::new();
    let conn = node.connect(
        chan.id(),
        ConnectionAttr::default()
            .max_buffers(8)
            .trigger_count(1)
            .on_delivered(callbacks.callback()),
    )?;

    let text = "announced by a pulse";
    println!("put: {text:?} with handle 4");
    conn.put(text, 4)?;

    let pulse = waiting_for("pulse", pulses.receive_timeout(PATIENCE))?;
    println!(
        "pulse: code {} value {} from chid {}",
        pulse.code, pulse.value, pulse.scoid
    );
    ensure!(
        (pulse.code, pulse.value, pulse.scoid) == (PULSE_CODE, PULSE_VALUE, chan.chid()),
        "unexpected pulse {pulse:?}"
    );

    let batch = chan
        .try_get()
        .context("the pulse came but the get found nothing")?;
    print_batch(&batch);
    check_batch(&batch, &[text])?;
    drop(batch);

    let done = callbacks.wait_for(1)?;
    check_delivered(&done, &[(4, text)])?;
    println!("example4: ok");
    Ok(())
}
