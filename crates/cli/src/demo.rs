//! `asyncmsg demo`: a tour of a few messages, then a throughput run, over each
//! hop.

mod companion;
mod throughput;
mod tour;

use std::time::Duration;

use asyncmsg::Node;
use clap::Args;

use crate::hop::Hop;

/// How long any step of the demo waits before it reports a failure.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Arguments of `asyncmsg demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Messages in each throughput run.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Payload size in bytes (at least 12: sender and sequence number).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(12..=65536))]
    pub size: u32,
    /// Count trigger of the throughput connections (messages per batch).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub trigger: u32,
    /// Sender threads in the throughput run, one connection each.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub senders: u32,
    /// Messages in flight per connection (its max_buffers).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub window: u32,
    /// Transports to run over (repeat or comma-separate); all by default.
    #[arg(long = "hop", value_enum, value_delimiter = ',')]
    pub hops: Vec<Hop>,
    /// Skip the tour of a few messages; only measure throughput.
    #[arg(long)]
    pub no_tour: bool,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let node = Node::new()?;
    let hops = if args.hops.is_empty() {
        Hop::all()
    } else {
        &args.hops[..]
    };
    println!("asyncmsg demo: pid {}", node.pid());
    for &hop in hops {
        if !args.no_tour {
            tour::run(&node, hop)?;
        }
        let report = throughput::run(&node, hop, &throughput::Settings::from(args))?;
        println!("{report}");
    }
    if !args.no_tour && hops.contains(&Hop::Shm) {
        companion::run(&node)?;
    }
    Ok(())
}
