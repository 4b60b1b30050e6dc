//! The receiver side of one channel: which connections have visible batches, in
//! which order a get serves them, and whether a trigger wakes a getter or fires
//! the channel's event.
//!
//! [`ChannelCore`] is a pure state machine over connection keys `K`. It does not
//! count messages itself: at get time the driver tells it how many messages each
//! connection has visible (the transports publish those counts lock-free).

use std::collections::VecDeque;

/// What the driver must do after a trigger reached the channel (B13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A getter is waiting: wake exactly one.
    Getter,
    /// No getter is waiting: fire the channel's event.
    Event,
    /// Nothing to do (the connection was already queued, or the channel is destroyed).
    Nothing,
}

/// One connection's share of a get: take `count` messages from `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Take<K> {
    /// The connection.
    pub key: K,
    /// How many of its visible messages to take, from its oldest.
    pub count: u64,
}

/// The channel state machine.
#[derive(Debug, Clone)]
pub struct ChannelCore<K> {
    capacity: usize,
    ready: VecDeque<K>,
    waiting: usize,
    woken: usize,
    destroyed: bool,
}

impl<K: Clone + PartialEq> ChannelCore<K> {
    /// A channel whose get returns at most `capacity` messages (QNX `max_num_buffer`).
    pub fn new(capacity: usize) -> Self {
        assert!(capacity >= 1, "capacity must be at least 1");
        ChannelCore {
            capacity,
            ready: VecDeque::new(),
            waiting: 0,
            woken: 0,
            destroyed: false,
        }
    }

    /// Most messages one get returns.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether any connection has a visible batch queued.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Connections queued with visible batches, in service order.
    pub fn ready(&self) -> impl Iterator<Item = &K> {
        self.ready.iter()
    }

    /// Whether the channel was destroyed.
    pub fn is_destroyed(&self) -> bool {
        self.destroyed
    }

    /// A connection triggered (B06, B13). Queues it behind the connections that
    /// triggered before it and decides between waking a getter and the event. A
    /// connection already queued keeps its place and its batch was already
    /// announced (when it was queued, or by the get that left it queued):
    /// [`Wake::Nothing`].
    pub fn on_trigger(&mut self, key: K) -> Wake {
        if self.destroyed || self.ready.contains(&key) {
            return Wake::Nothing;
        }
        self.ready.push_back(key);
        self.decide()
    }

    fn decide(&mut self) -> Wake {
        if self.waiting > self.woken {
            self.woken += 1;
            Wake::Getter
        } else {
            Wake::Event
        }
    }

    /// A getter starts waiting (call only after a get found nothing).
    pub fn begin_wait(&mut self) {
        self.waiting += 1;
    }

    /// A getter stops waiting. `notified` says whether it was woken by a
    /// [`Wake::Getter`] decision (rather than a timeout or cancellation). If it gives
    /// up without taking (timeout, cancelled) while batches are still queued, the
    /// result says whom to tell, so no batch goes unannounced (B13).
    pub fn end_wait(&mut self, notified: bool, giving_up: bool) -> Wake {
        self.waiting = self.waiting.saturating_sub(1);
        if notified {
            self.woken = self.woken.saturating_sub(1);
        }
        self.woken = self.woken.min(self.waiting);
        if giving_up && !self.ready.is_empty() && !self.destroyed {
            self.decide()
        } else {
            Wake::Nothing
        }
    }

    /// Getters currently waiting.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Plans one get: walks the ready queue in trigger order and takes from each
    /// connection everything it has visible, up to the channel's capacity in all
    /// (B06). `visible(k)` says how many messages `k` has visible and untaken.
    /// Connections emptied leave the queue; one cut short by the capacity stays at
    /// its head for the next get. Returns the plan and, when messages remain
    /// queued, the wake decision for them (so they are never left unannounced).
    pub fn plan_get(&mut self, visible: impl FnMut(&K) -> u64) -> (Vec<Take<K>>, Wake) {
        let mut plan = Vec::new();
        let wake = self.plan_get_into(&mut plan, visible);
        (plan, wake)
    }

    /// [`plan_get`](Self::plan_get) into a caller's vector (cleared first), so that
    /// a driver can reuse one allocation for every get.
    pub fn plan_get_into(
        &mut self,
        plan: &mut Vec<Take<K>>,
        mut visible: impl FnMut(&K) -> u64,
    ) -> Wake {
        plan.clear();
        if self.destroyed {
            return Wake::Nothing;
        }
        let mut room = self.capacity as u64;
        while room > 0 {
            let Some(key) = self.ready.front() else { break };
            let n = visible(key);
            if n == 0 {
                self.ready.pop_front();
                continue;
            }
            let count = n.min(room);
            room -= count;
            plan.push(Take {
                key: key.clone(),
                count,
            });
            if count == n {
                self.ready.pop_front();
            }
        }
        // Connections at the head with nothing visible (their batch went away)
        // leave now, so that they are not announced to anyone.
        while let Some(key) = self.ready.front() {
            if visible(key) > 0 {
                break;
            }
            self.ready.pop_front();
        }
        if self.ready.is_empty() {
            Wake::Nothing
        } else {
            self.decide()
        }
    }

    /// Removes a connection (detach): its batch will not be served.
    pub fn remove(&mut self, key: &K) {
        self.ready.retain(|k| k != key);
    }

    /// Destroys the channel (B15): nothing is served any more. Returns how many
    /// getters were waiting; the driver wakes them all with a destroyed error.
    pub fn destroy(&mut self) -> usize {
        self.destroyed = true;
        self.ready.clear();
        self.waiting
    }
}
