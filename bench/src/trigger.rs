//! When an asyncmsg sender's messages become visible to the receiver, in the
//! payload × trigger sweeps of every transport.

/// A count trigger, or none at all with the sender flushing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A batch every `n` puts (`trigger_count(n)`), no time trigger.
    Count(u32),
    /// No count trigger and no time trigger: the sender calls
    /// `flush(Flush::NoWait)` after every [`FLUSH_EVERY`] puts and after the
    /// last.
    FlushOnly,
}

/// Puts between two flushes of [`Trigger::FlushOnly`].
pub const FLUSH_EVERY: u32 = 64;

impl Trigger {
    /// The sweep's triggers, in report order.
    pub const SWEEP: [Trigger; 4] = [
        Trigger::Count(1),
        Trigger::Count(16),
        Trigger::Count(64),
        Trigger::FlushOnly,
    ];

    /// The variant part of a cell id: `t1`, `t64`, `flush-only`.
    pub fn variant(self) -> String {
        match self {
            Trigger::Count(n) => format!("t{n}"),
            Trigger::FlushOnly => "flush-only".into(),
        }
    }

    /// For names and tables: `trigger 64`, `flush every 64`.
    pub fn label(self) -> String {
        match self {
            Trigger::Count(n) => format!("trigger {n}"),
            Trigger::FlushOnly => format!("flush every {FLUSH_EVERY}"),
        }
    }

    /// The `trigger_count` value (0: none).
    pub fn count(self) -> u32 {
        match self {
            Trigger::Count(n) => n,
            Trigger::FlushOnly => 0,
        }
    }

    /// Messages per batch: the count, or [`FLUSH_EVERY`].
    pub fn batch(self) -> u32 {
        match self {
            Trigger::Count(n) => n,
            Trigger::FlushOnly => FLUSH_EVERY,
        }
    }
}
