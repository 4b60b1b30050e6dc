//! QNX example 5: a time trigger.
//!
//! The connection has no count trigger and a 2-second time trigger. The first
//! put arms the timer; later puts do not push it back. Two seconds after the
//! first put the four pending messages become visible together, the channel
//! sends its pulse, and one get returns all four.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use asyncmsg::{ChannelConfig, ChannelEvent, ConnectionAttr, Node, PulseChannel};

use crate::support::{Callbacks, check_batch, check_delivered, print_batch, waiting_for};

/// The time trigger.
pub const TRIGGER_TIME: Duration = Duration::from_secs(2);
/// How late the pulse may come before the example calls it wrong.
const LATE: Duration = Duration::from_secs(2);
/// The pulse code the channel's event carries (QNX `_PULSE_CODE_MINAVAIL`).
const PULSE_CODE: i8 = 0;
/// The pulse value the channel's event carries.
const PULSE_VALUE: i32 = 5;

/// Runs the example, printing what it does; returns the time from the first put
/// to the pulse.
pub fn run() -> anyhow::Result<Duration> {
    let node = Node::new()?;
    let pulses = PulseChannel::new();
    let chan = node.create_channel(
        ChannelConfig::default()
            .buffer_size(2048)
            .max_buffers(5)
            .event(ChannelEvent::pulse(&pulses, PULSE_CODE, PULSE_VALUE)),
    )?;

    let callbacks = Callbacks::new();
    // QNX: attr.trigger_num_msg = 0; attr.trigger_time.nsec = 2 s.
    let conn = node.connect(
        chan.id(),
        ConnectionAttr::default()
            .max_buffers(8)
            .trigger_count(0)
            .trigger_time(TRIGGER_TIME)
            .on_delivered(callbacks.callback()),
    )?;

    let texts = ["tick 1", "tick 2", "tick 3", "tick 4"];
    let first_put = Instant::now();
    for (handle, text) in (1..).zip(texts) {
        println!("put: {text:?} with handle {handle}");
        conn.put(text, handle)?;
    }

    let pulse = waiting_for(
        "pulse from the time trigger",
        pulses.receive_timeout(TRIGGER_TIME + LATE),
    )?;
    let delay = first_put.elapsed();
    println!(
        "pulse: code {} value {} from chid {}, {:.3} s after the first put",
        pulse.code,
        pulse.value,
        pulse.scoid,
        delay.as_secs_f64()
    );
    ensure!(
        (pulse.code, pulse.value, pulse.scoid) == (PULSE_CODE, PULSE_VALUE, chan.chid()),
        "unexpected pulse {pulse:?}"
    );
    ensure!(
        delay >= TRIGGER_TIME,
        "the time trigger fired after {delay:?}, before its {TRIGGER_TIME:?}"
    );

    let batch = chan
        .try_get()
        .context("the pulse came but the get found nothing")?;
    print_batch(&batch);
    check_batch(&batch, &texts)?;
    drop(batch);

    let done = callbacks.wait_for(4)?;
    check_delivered(
        &done,
        &[(1, texts[0]), (2, texts[1]), (3, texts[2]), (4, texts[3])],
    )?;
    println!("example5: ok");
    Ok(delay)
}
