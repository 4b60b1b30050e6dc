//! Hops: the ways a connection reaches a channel, one per transport.
//!
//! The demo runs over every hop the build offers. A hop makes a channel
//! reachable under a name and returns the address that connects to it; the
//! address picks the transport (SPEC B19), so the rest of the demo is the same
//! for all of them. Shared memory (`shm://NAME`) and QUIC
//! (`quic://HOST:PORT/NAME`) join here as variants when their transports exist.

use asyncmsg::Channel;
use clap::ValueEnum;

/// A transport for the demo to run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Hop {
    /// Same process: the buffer itself moves, no byte is copied.
    Inproc,
}

impl Hop {
    /// Every hop this build offers.
    pub fn all() -> &'static [Hop] {
        &[Hop::Inproc]
    }

    /// The hop's short name, as printed.
    pub fn label(self) -> &'static str {
        match self {
            Hop::Inproc => "inproc",
        }
    }

    /// Makes `chan` reachable over this hop under `name` and returns the
    /// address a connection uses to reach it.
    pub fn expose(self, chan: &Channel, name: &str) -> anyhow::Result<String> {
        match self {
            Hop::Inproc => {
                chan.publish(name)?;
                Ok(format!("inproc://{name}"))
            }
        }
    }
}
