//! The sender side of one connection: slots, sequence numbers, triggers and
//! cumulative acknowledgements.
//!
//! [`SendCore`] is a pure state machine. The driver feeds it puts, flushes,
//! acknowledgements and the current time, and acts on what it returns:
//! publishing a batch to the receiver, arming a timer, or waiting for a slot.
//!
//! Sequence numbers are per connection and start at 0. Four counters move
//! forward only and always satisfy
//! `completed <= taken <= visible <= next` and `next - completed <= max_buffers`:
//!
//! * `next`: the sequence number the next put gets (= number of puts so far),
//! * `visible`: messages below it have been triggered (published to getters),
//! * `taken`: messages below it have been taken by a get (cumulative ack),
//! * `completed`: messages below it have been called back; their slots are free.

use std::time::{Duration, Instant};

/// The triggers and limits of a connection (QNX `struct _asyncmsg_connection_attr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendConfig {
    /// Most messages put but not yet called back (QNX `max_num_buffer`). At least 1.
    pub max_buffers: u32,
    /// Count trigger (QNX `trigger_num_msg`): a put that leaves at least this many
    /// untaken messages in the connection triggers. 0 disables the count trigger.
    pub trigger_count: u32,
    /// Time trigger (QNX `trigger_time.nsec`): the first put that did not trigger arms
    /// a timer that fires this long after it. `None` disables the time trigger.
    pub trigger_time: Option<Duration>,
    /// Re-arm period of the time trigger (QNX `trigger_time.interval_nsec`) while
    /// messages remain untaken, on the schedule `deadline + k * interval`. `None`
    /// (or zero) fires once per arming.
    pub trigger_interval: Option<Duration>,
}

impl Default for SendConfig {
    fn default() -> Self {
        SendConfig {
            max_buffers: 64,
            trigger_count: 1,
            trigger_time: None,
            trigger_interval: None,
        }
    }
}

/// What a put (or flush, or timeout) asks the driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// Nothing new is visible.
    None,
    /// A trigger: messages up to `visible` are now visible; tell the channel
    /// (enqueue the connection, wake one getter or fire the event).
    Trigger {
        /// New exclusive end of the visible range.
        visible: u64,
    },
    /// The connection already has a visible batch that no get has taken yet
    /// (B05): the new message joins it. The channel already knows; the driver only
    /// publishes the new end.
    Extend {
        /// New exclusive end of the visible range.
        visible: u64,
    },
}

impl Publish {
    /// The new exclusive end of the visible range, if anything was published.
    pub fn visible(self) -> Option<u64> {
        match self {
            Publish::None => None,
            Publish::Trigger { visible } | Publish::Extend { visible } => Some(visible),
        }
    }
}

/// The result of an accepted put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOutcome {
    /// The message's sequence number; its slot is `seq % max_buffers`.
    pub seq: u64,
    /// What became visible.
    pub publish: Publish,
    /// A time trigger deadline armed by this put, for the driver's timer.
    pub armed: Option<Instant>,
}

/// Why a put was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PutRefused {
    /// Every slot holds a message not yet called back (B07).
    #[error("all {0} send buffers are in use")]
    Full(u32),
}

/// The sender-side state machine of one connection.
#[derive(Debug, Clone)]
pub struct SendCore {
    cfg: SendConfig,
    next: u64,
    visible: u64,
    taken: u64,
    completed: u64,
    deadline: Option<Instant>,
}

impl SendCore {
    /// A connection with no messages. `cfg.max_buffers` must be at least 1.
    pub fn new(cfg: SendConfig) -> Self {
        assert!(cfg.max_buffers >= 1, "max_buffers must be at least 1");
        SendCore {
            cfg,
            next: 0,
            visible: 0,
            taken: 0,
            completed: 0,
            deadline: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &SendConfig {
        &self.cfg
    }

    /// Changes the triggers from the next put on (B16). `max_buffers` cannot change
    /// on a live connection; the caller refuses that before calling.
    pub fn set_triggers(&mut self, count: u32, time: Option<Duration>, interval: Option<Duration>) {
        self.cfg.trigger_count = count;
        self.cfg.trigger_time = time;
        self.cfg.trigger_interval = interval;
        if time.is_none() {
            self.deadline = None;
        }
    }

    /// Sequence number of the next put.
    pub fn next_seq(&self) -> u64 {
        self.next
    }
    /// Exclusive end of the visible range.
    pub fn visible(&self) -> u64 {
        self.visible
    }
    /// Exclusive end of the taken range (cumulative acknowledgement).
    pub fn taken(&self) -> u64 {
        self.taken
    }
    /// Exclusive end of the called-back range.
    pub fn completed(&self) -> u64 {
        self.completed
    }
    /// Messages put but not yet called back.
    pub fn in_flight(&self) -> u64 {
        self.next - self.completed
    }
    /// Whether every slot is in use.
    pub fn is_full(&self) -> bool {
        self.in_flight() >= u64::from(self.cfg.max_buffers)
    }

    /// Accepts a message (B01–B05, B07).
    pub fn put(&mut self, now: Instant) -> Result<PutOutcome, PutRefused> {
        self.put_at(|| now)
    }

    /// Like [`put`](Self::put), reading the clock only when the put arms the time
    /// trigger: most puts of a busy connection never need the time, and reading
    /// the clock can cost more than the rest of a put.
    pub fn put_at(&mut self, now: impl FnOnce() -> Instant) -> Result<PutOutcome, PutRefused> {
        if self.is_full() {
            return Err(PutRefused::Full(self.cfg.max_buffers));
        }
        let seq = self.next;
        self.next += 1;
        // B05: a triggered batch not yet taken grows with every put.
        if self.visible > self.taken {
            self.visible = self.next;
            return Ok(PutOutcome {
                seq,
                publish: Publish::Extend {
                    visible: self.visible,
                },
                armed: None,
            });
        }
        // B01/B02: every put that leaves at least N untaken messages triggers.
        let count = u64::from(self.cfg.trigger_count);
        if count > 0 && self.next - self.taken >= count {
            return Ok(PutOutcome {
                seq,
                publish: self.trigger(),
                armed: None,
            });
        }
        // B04: the first put that did not trigger arms the timer; later puts do not
        // push the deadline back. A put that finds nothing untaken is the first of
        // a new batch: a deadline still set from an earlier one (an interval the
        // driver has not yet seen stop) does not apply to it.
        let mut armed = None;
        let first = seq == self.visible;
        if let Some(after) = self.cfg.trigger_time
            && (self.deadline.is_none() || first)
        {
            // A deadline beyond what `Instant` can hold never comes.
            self.deadline = now().checked_add(after);
            armed = self.deadline;
        }
        Ok(PutOutcome {
            seq,
            publish: Publish::None,
            armed,
        })
    }

    fn trigger(&mut self) -> Publish {
        self.deadline = None;
        if self.next > self.visible {
            self.visible = self.next;
            Publish::Trigger {
                visible: self.visible,
            }
        } else {
            Publish::None
        }
    }

    /// Flush (B12): everything put so far becomes visible at once. Returns what to
    /// publish and the sequence number a waiting flush waits to see taken.
    pub fn flush(&mut self) -> (Publish, u64) {
        let p = self.trigger();
        (p, self.next)
    }

    /// The time trigger's deadline, if armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Drives the time trigger (B04). Returns what to publish and the next deadline
    /// (re-armed by `interval` while messages are untaken).
    pub fn handle_timeout(&mut self, now: Instant) -> (Publish, Option<Instant>) {
        let at = match self.deadline {
            Some(at) if at <= now => at,
            _ => return (Publish::None, self.deadline),
        };
        let p = self.trigger();
        if let Some(every) = self.cfg.trigger_interval
            && !every.is_zero()
            && self.cfg.trigger_time.is_some()
            && self.next > self.taken
        {
            self.deadline = next_period(at, every, now);
        }
        (p, self.deadline)
    }

    /// Cumulative acknowledgement: the receiver has taken every message below
    /// `upto`. Values at or below the current one are ignored; values above
    /// `visible` are a protocol violation and are refused. Once everything put is
    /// taken, the time trigger is disarmed (an interval stops: nothing is pending).
    pub fn on_taken(&mut self, upto: u64) -> Result<(), AckError> {
        if upto > self.visible {
            return Err(AckError::Ahead {
                ack: upto,
                limit: self.visible,
            });
        }
        if upto > self.taken {
            self.taken = upto;
        }
        if self.taken == self.next {
            // Nothing untaken: no time trigger or interval has anything to do.
            self.deadline = None;
        }
        Ok(())
    }

    /// Messages below `upto` have been called back; their slots are free.
    pub fn on_completed(&mut self, upto: u64) -> Result<(), AckError> {
        if upto > self.taken {
            return Err(AckError::Ahead {
                ack: upto,
                limit: self.taken,
            });
        }
        if upto > self.completed {
            self.completed = upto;
        }
        Ok(())
    }

    /// The messages that can no longer be delivered when the link ends (detach,
    /// destroy, peer lost): the untaken range `taken..next`. Afterwards nothing is
    /// in the connection that a get could take.
    pub fn fail_untaken(&mut self) -> std::ops::Range<u64> {
        let r = self.taken..self.next;
        self.visible = self.next;
        self.taken = self.next;
        self.deadline = None;
        r
    }
}

/// The first point of the periodic schedule `at + k * every` (k >= 1) later than
/// `now`: a driver that handles a deadline late keeps the period instead of
/// drifting, and skips the periods it missed instead of firing for each. `None`
/// when that point is beyond what `Instant` can hold (it never comes).
fn next_period(at: Instant, every: Duration, now: Instant) -> Option<Instant> {
    let step = every.as_nanos();
    let periods = now.saturating_duration_since(at).as_nanos() / step + 1;
    let offset = u64::try_from(periods * step).ok()?;
    at.checked_add(Duration::from_nanos(offset))
}

/// An acknowledgement that names messages that were never published or taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The acknowledgement is beyond what the peer could have seen.
    #[error("acknowledgement {ack} is beyond {limit}")]
    Ahead {
        /// The acknowledged sequence.
        ack: u64,
        /// The highest acceptable.
        limit: u64,
    },
}
