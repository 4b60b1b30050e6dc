//! QNX example 3: no trigger at all, a getter thread, and a flush.
//!
//! The connection has neither a count trigger (0) nor a time trigger, so puts
//! stay pending until the sender flushes. A getter thread waits for the pulse
//! the channel sends when messages become ready, then gets them. The main
//! thread puts two messages, shows that nothing arrives on its own, flushes,
//! and waits until both delivery callbacks have run.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use asyncmsg::{ChannelConfig, ChannelEvent, ConnectionAttr, Flush, Node, PulseChannel};

use crate::support::{Callbacks, PATIENCE, check_batch, check_delivered, print_batch, waiting_for};

/// The pulse code the channel's event carries (QNX `_PULSE_CODE_MINAVAIL`).
const PULSE_CODE: i8 = 0;
/// The pulse value the channel's event carries.
const PULSE_VALUE: i32 = 3;

/// Runs the example, printing what it does.
pub fn run() -> anyhow::Result<()> {
    let node = Node::new()?;
    // QNX: a ChannelCreate() channel for the pulse, and SIGEV_PULSE_INIT as the
    // asyncmsg channel's event.
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
            .trigger_count(0)
            .no_trigger_time()
            .on_delivered(callbacks.callback()),
    )?;

    let texts = ["first, held until flushed", "second, held until flushed"];
    let (woke_tx, woke_rx) = mpsc::channel();
    let expected_chid = chan.chid();

    thread::scope(|s| -> anyhow::Result<()> {
        let getter = s.spawn(|| -> anyhow::Result<()> {
            // QNX: MsgReceivePulse(), then asyncmsg_get().
            let pulse = waiting_for("pulse", pulses.receive_timeout(PATIENCE))?;
            println!(
                "getter: pulse code {} value {} from chid {}",
                pulse.code, pulse.value, pulse.scoid
            );
            let _ = woke_tx.send(());
            ensure!(
                (pulse.code, pulse.value, pulse.scoid) == (PULSE_CODE, PULSE_VALUE, expected_chid),
                "unexpected pulse {pulse:?}"
            );
            let batch = chan
                .try_get()
                .context("the pulse came but the get found nothing")?;
            print_batch(&batch);
            check_batch(&batch, &texts)
            // Dropping the batch here frees both messages.
        });

        for (handle, text) in (1..).zip(texts) {
            println!("put: {text:?} with handle {handle}");
            conn.put(text, handle)?;
        }
        // Without a trigger nothing becomes visible: the getter stays asleep.
        if woke_rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            bail!("the getter woke before the flush");
        }
        println!("no pulse within 200 ms of the puts: nothing is visible before the flush");

        println!("flush");
        // Wait mode: returns once the getter has taken both messages.
        conn.flush(Flush::WaitFor(PATIENCE))?;

        match getter.join() {
            Ok(result) => result?,
            Err(_) => bail!("the getter thread panicked"),
        }
        Ok(())
    })?;

    let done = callbacks.wait_for(2)?;
    check_delivered(&done, &[(1, texts[0]), (2, texts[1])])?;
    println!("example3: ok");
    Ok(())
}
