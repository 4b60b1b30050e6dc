//! Pulse channels: small fixed-size notifications (QNX pulses), the target of a
//! channel's [`ChannelEvent::Pulse`](crate::ChannelEvent::Pulse) event.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use event_listener::Event;

use crate::link::{deadline_after, lock, wait_for, wait_for_async};

/// A pulse (QNX `struct _pulse`).
///
/// ```
/// use asyncmsg::PulseChannel;
/// use std::time::Duration;
/// let pulses = PulseChannel::new();
/// pulses.sender().send(3, 99);                 // QNX MsgSendPulse
/// let p = pulses.receive_timeout(Duration::from_secs(1)).unwrap();
/// assert_eq!((p.code, p.value), (3, 99));
/// assert!(pulses.try_receive().is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pulse {
    /// The pulse code (QNX `code`; user codes from `_PULSE_CODE_MINAVAIL` = 0).
    pub code: i8,
    /// The pulse value (QNX `value.sival_int`).
    pub value: i32,
    /// Who sent it: for a channel event, the channel id (QNX `scoid`).
    pub scoid: i32,
}

struct Inner {
    queue: Mutex<VecDeque<Pulse>>,
    ready: Event,
}

/// A channel that receives pulses (QNX: a channel from `ChannelCreate`, read with
/// `MsgReceivePulse`).
///
/// ```
/// use asyncmsg::*;
/// let node = Node::new().unwrap();
/// let pulses = PulseChannel::new();
/// let chan = node.create_channel(
///     ChannelConfig::default().event(ChannelEvent::pulse(&pulses, 5, 42))).unwrap();
/// let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
/// conn.put("ready?", 0).unwrap();
/// let p = pulses.receive();
/// assert_eq!((p.code, p.value, p.scoid), (5, 42, chan.chid()));
/// assert_eq!(chan.try_get().unwrap().len(), 1);
/// ```
#[derive(Clone)]
pub struct PulseChannel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PulseChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulseChannel").finish_non_exhaustive()
    }
}

impl Default for PulseChannel {
    fn default() -> Self {
        Self::new()
    }
}

impl PulseChannel {
    /// An empty pulse channel.
    pub fn new() -> Self {
        PulseChannel {
            inner: Arc::new(Inner {
                queue: Mutex::new(VecDeque::new()),
                ready: Event::new(),
            }),
        }
    }

    /// A handle that sends pulses here.
    pub fn sender(&self) -> PulseSender {
        PulseSender {
            to: To::Pulses(self.inner.clone()),
        }
    }

    /// Waits for the next pulse (QNX `MsgReceivePulse`).
    pub fn receive(&self) -> Pulse {
        wait_for(&self.inner.ready, None, || self.try_receive()).expect("no deadline")
    }

    /// Waits at most `timeout` for the next pulse.
    pub fn receive_timeout(&self, timeout: Duration) -> Option<Pulse> {
        wait_for(&self.inner.ready, deadline_after(timeout), || {
            self.try_receive()
        })
    }

    /// The next pulse if one is queued.
    pub fn try_receive(&self) -> Option<Pulse> {
        lock(&self.inner.queue).pop_front()
    }

    /// Waits for the next pulse without a thread.
    pub async fn recv(&self) -> Pulse {
        wait_for_async(&self.inner.ready, || self.try_receive()).await
    }
}

/// Sends pulses to a [`PulseChannel`] (QNX `MsgSendPulse`).
///
/// ```
/// use asyncmsg::PulseChannel;
/// let pulses = PulseChannel::new();
/// let sender = pulses.sender();
/// std::thread::spawn(move || sender.send(1, 2)).join().unwrap();
/// assert_eq!(pulses.receive().value, 2);
/// ```
#[derive(Clone)]
pub struct PulseSender {
    to: To,
}

#[derive(Clone)]
enum To {
    Pulses(Arc<Inner>),
    /// A synchronous channel; weak, so an event does not keep it alive.
    Sync(Weak<crate::sync::SyncShared>),
    /// A synchronous channel of another process, through a client's link.
    Remote(Weak<crate::sync::ClientPeer>),
}

/// Where pulses can go: a [`PulseChannel`] or a
/// [`SyncChannel`](crate::SyncChannel) (whose `receive` returns them among its
/// requests). [`ChannelEvent::pulse`](crate::ChannelEvent::pulse) takes either.
pub trait PulseTarget {
    /// A handle that sends pulses here.
    fn pulse_sender(&self) -> PulseSender;
}

impl PulseTarget for PulseChannel {
    fn pulse_sender(&self) -> PulseSender {
        self.sender()
    }
}

impl PulseSender {
    pub(crate) fn to_sync(chan: &Arc<crate::sync::SyncShared>) -> Self {
        Self::to_sync_weak(Arc::downgrade(chan))
    }

    pub(crate) fn to_sync_weak(chan: Weak<crate::sync::SyncShared>) -> Self {
        PulseSender { to: To::Sync(chan) }
    }

    pub(crate) fn to_remote(peer: &Arc<crate::sync::ClientPeer>) -> Self {
        PulseSender {
            to: To::Remote(Arc::downgrade(peer)),
        }
    }
}

impl std::fmt::Debug for PulseSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulseSender").finish_non_exhaustive()
    }
}

impl PulseSender {
    /// Sends a pulse.
    pub fn send(&self, code: i8, value: i32) {
        self.send_from(code, value, 0)
    }

    pub(crate) fn send_from(&self, code: i8, value: i32, scoid: i32) {
        let pulse = Pulse { code, value, scoid };
        match &self.to {
            To::Pulses(inner) => {
                lock(&inner.queue).push_back(pulse);
                inner.ready.notify_additional(1);
            }
            To::Sync(chan) => {
                // A pulse to a channel that is gone goes nowhere, as in QNX.
                if let Some(chan) = chan.upgrade() {
                    chan.push_pulse(pulse);
                }
            }
            To::Remote(peer) => {
                // As above: a server that is gone gets nothing. The server
                // sees the link's own scoid.
                if let Some(peer) = peer.upgrade() {
                    let _ = peer.send_pulse(code, value);
                }
            }
        }
    }
}
